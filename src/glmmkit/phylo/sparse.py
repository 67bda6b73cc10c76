"""Tree-structured linear algebra for Brownian motion on a tree, with internal nodes included.

With a value a_v at every node (the root fixed at 0, its value absorbed by the intercept) and
a_v | a_parent ~ N(a_parent, l_v / tau), the prior precision is tau Q with

    a'Qa = sum over non-root v of (a_v - a_parent(v))^2 / l_v,    log det Q = -sum log l_v,

which is tree-structured (nonzeros on the diagonal and between a node and its parent). So is
P = diag(W at the tips) + tau Q, the Laplace system of a GLMM whose random effect lives on the tips:
eliminating nodes leaves-first gives P = L D L' with no fill-in,

    d_v = P_vv - sum over children c of P_vc^2 / d_c,     L_{parent(c), c} = P_{parent(c), c} / d_c,

solves are one sweep up the tree and one down, and the diagonal of P^{-1} follows from one more sweep
down (Sigma_vv = 1/d_v + L_pv^2 Sigma_pp). Every sweep is vectorised level by level (nodes of equal
height up, of equal depth down), so one factorisation costs O(number of nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import scipy.linalg as sla
import scipy.sparse as sp

from ..engine.covariance import KnownMatrix
from ..engine.resystem import OwnAlgebraSystem, SystemFactor
from ..errors import FitError, InputError
from .tree import Tree


class TreeAlgebra:
    """The levels of a tree and its precision Q, analysed once."""

    def __init__(self, tree: Tree):
        m = len(tree.parent)
        self.m = m
        self.parent = tree.parent.copy()
        self.length = tree.length.copy()
        if np.any(self.length[1:] <= 0):
            raise InputError("the sparse tree path needs positive branch lengths (collapse zero-length branches)")
        self.inv_len = np.zeros(m)
        self.inv_len[1:] = 1.0 / self.length[1:]
        # Q's diagonal: 1/l_v + sum over children 1/l_c (the root row is not part of the system)
        self.q_diag = self.inv_len.copy()
        np.add.at(self.q_diag, self.parent[1:], self.inv_len[1:])
        self.logdet_q = -float(np.sum(np.log(self.length[1:])))
        # heights (edges to the deepest tip below), for the upward sweeps
        height = np.zeros(m, dtype=np.int64)
        for v in range(m - 1, 0, -1):  # pre-order reversed: children before parents
            p = self.parent[v]
            height[p] = max(height[p], height[v] + 1)
        edge_depth = np.zeros(m, dtype=np.int64)
        for v in range(1, m):
            edge_depth[v] = edge_depth[self.parent[v]] + 1
        nonroot = np.arange(1, m)
        self.up_levels = [nonroot[height[1:] == h] for h in range(int(height[1:].max()) + 1)]
        self.down_levels = [nonroot[edge_depth[1:] == k] for k in range(1, int(edge_depth.max()) + 1)]
        self.tip_nodes = np.flatnonzero(tree.is_tip)

    def quad(self, a: np.ndarray) -> float:
        """a'Qa with a[0] = 0 at the root.

        Parameters
        ----------
        a : numpy.ndarray
            (m,) node values.

        Returns
        -------
        float
            The quadratic form.
        """
        diff = a[1:] - a[self.parent[1:]]
        return float(diff @ (diff * self.inv_len[1:]))

    def factor(self, w_node: np.ndarray, tau: float) -> "TreeFactor":
        """LDL' of P = diag(w_node) + tau Q over the non-root nodes.

        Parameters
        ----------
        w_node : numpy.ndarray
            (m,) weights at the nodes (zero at internal nodes).
        tau : float
            The prior precision's scale.

        Returns
        -------
        TreeFactor
            The pivots and the off-diagonal factor entries.
        """
        pdiag = w_node + tau * self.q_diag
        poff = -tau * self.inv_len  # P_{parent(v), v}
        d = np.zeros(self.m)
        acc = np.zeros(self.m)
        for idx in self.up_levels:
            d[idx] = pdiag[idx] - acc[idx]
            np.add.at(acc, self.parent[idx], poff[idx] ** 2 / d[idx])
        if np.any(d[1:] <= 0):
            raise np.linalg.LinAlgError("tree system not positive definite")
        lpv = np.zeros(self.m)
        lpv[1:] = poff[1:] / d[1:]
        return TreeFactor(self, d, lpv)


@dataclass
class TreeFactor:
    alg: TreeAlgebra
    d: np.ndarray  # (m,) pivots (d[0] unused)
    lpv: np.ndarray  # (m,) L_{parent(v), v}

    def logdet(self) -> float:
        """log det P.

        Returns
        -------
        float
            The sum of the log pivots.
        """
        return float(np.sum(np.log(self.d[1:])))

    def solve(self, r: np.ndarray) -> np.ndarray:
        """x with P x = r (r, x over all nodes; the root entry is ignored and returned as 0).

        Parameters
        ----------
        r : numpy.ndarray
            (m,) right-hand side, or (m, k) for k of them.

        Returns
        -------
        numpy.ndarray
            The solution, shaped as r.
        """
        alg = self.alg
        r = np.asarray(r, dtype=float)
        lpv, d = (self.lpv, self.d) if r.ndim == 1 else (self.lpv[:, None], self.d[:, None])  # (m,) or (m, k)
        z = np.zeros(r.shape)
        acc = np.zeros(r.shape)
        for idx in alg.up_levels:
            z[idx] = r[idx] - acc[idx]
            np.add.at(acc, alg.parent[idx], lpv[idx] * z[idx])
        y = np.zeros(r.shape)
        y[1:] = z[1:] / d[1:]
        x = np.zeros(r.shape)
        for idx in alg.down_levels:
            x[idx] = y[idx] - lpv[idx] * x[alg.parent[idx]]
        return x

    def inverse_diagonal(self) -> np.ndarray:
        """diag(P^{-1}) (0 at the root).

        Returns
        -------
        numpy.ndarray
            (m,).
        """
        alg = self.alg
        s = np.zeros(alg.m)
        for idx in alg.down_levels:
            s[idx] = 1.0 / self.d[idx] + self.lpv[idx] ** 2 * s[alg.parent[idx]]
        return s


# ---- the tree as a random-effects system of the engine (engine/resystem.py) -------------------------

#: below this tip SD the phylogenetic term is off (tau = c / theta^2 would overflow): the GLM
TINY_THETA = 1e-8


class TreeCovariance(KnownMatrix):
    """cov(b) = theta^2 K with K = vcv(tree[, corr]) over the term's levels, held as the tree.

    A known-covariance term (``is_known``) whose matrix is never formed unless asked for (``factor``,
    for dense uses on small trees): the engine reaches it through ``TreeSystem``.

    Parameters
    ----------
    tree : Tree
        The tree (branch lengths positive).
    levels : sequence of str
        The term's levels, each a tip of the tree.
    corr : bool
        K = vcv(tree, corr=True) (an ultrametric tree: vcv / height) or the plain vcv.
    group : str
        The grouping factor's name (for messages).
    """

    def __init__(self, tree: Tree, levels, corr: bool = True, group: str = "species"):
        self.k = 1
        self.tree = tree
        self.algebra = TreeAlgebra(tree)
        tips = {name: i for i, name in enumerate(tree.names) if tree.is_tip[i]}
        missing = [str(lv) for lv in levels if str(lv) not in tips]
        if missing:
            raise InputError(f"levels of {group!r} missing from the tree: {missing[:10]}"
                             + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
        self.level_nodes = np.array([tips[str(lv)] for lv in levels], dtype=np.int64)
        if corr:
            if not tree.is_ultrametric():
                raise InputError("corr=True on the tree path needs an ultrametric tree (vcv(corr=True) then is "
                                 "vcv / height); use corr=False or glmer(..., relmat={group: vcv(tree, corr=True)})")
            self.c = float(tree.depth[tree.is_tip].max())
        else:
            self.c = 1.0
        self.corr = corr
        self._factor = None

    @property
    def factor(self) -> np.ndarray:
        """A dense factor L with L L' = K over the levels (formed on first use; O(levels^2) memory)."""
        if self._factor is None:
            from ..engine.covariance import factor_psd
            from .tree import vcv

            K = vcv(self.tree, corr=False).to_numpy() / self.c
            pos = np.cumsum(self.tree.is_tip) - 1  # node -> tip order
            idx = pos[self.level_nodes]
            self._factor = factor_psd(K[np.ix_(idx, idx)], "tree")
        return self._factor

    def diag_covariance(self) -> np.ndarray:
        """diag(K) over the levels: root-to-tip depth / c."""
        return self.tree.depth[self.level_nodes] / self.c

    def draw(self, theta, rng, k: int) -> np.ndarray:
        """k draws of b over the levels: Brownian motion down the tree with rate theta^2 / c, (q, k)."""
        alg = self.algebra
        rate = float(theta[0]) ** 2 / self.c
        v = np.zeros((alg.m, k))
        step = rng.standard_normal((alg.m, k)) * np.sqrt(rate * alg.length)[:, None]
        for idx in alg.down_levels:  # level by level from the root
            v[idx] = v[alg.parent[idx]] + step[idx]
        return v[self.level_nodes]

    def __repr__(self):
        return f"TreeCovariance(tips={self.tree.n_tips}, levels={len(self.level_nodes)}, corr={self.corr})"


@dataclass
class TreeRaw:
    """The tree system's assembled cross-products: W summed at each node, and with other terms their blocks."""

    w_node: np.ndarray  # (m,) W summed at each node
    zt_w_zb: object = None  # (m, qb) sparse: W between each node and the other terms' columns
    zb_w_zb: object = None  # (qb, qb) sparse: the other terms' Z'WZ
    G1: None = None  # no level Gram (the analytic gradient does not apply)


@dataclass
class TreeSystemFactor(SystemFactor):
    """The factored system [[P_T, C], [C', P_B]] by the tree's LDL' and a dense Schur complement.

    P_T = diag(W at the tips) + tau Q (tree-structured), P_B = Lambda_B'Z_B'WZ_B Lambda_B + I the other
    terms' block, C = Z_T'WZ_B Lambda_B; X = P_T^-1 C and S = P_B - C'X = L_S L_S'.
    """

    F: TreeFactor | None  # None: the tree term is off (theta below TINY_THETA)
    logdet_prior: float  # log det(tau Q)
    m: int  # nodes
    X: np.ndarray | None = None  # (m, qb) P_T^-1 C
    C: np.ndarray | None = None  # (m, qb)
    LS: np.ndarray | None = None  # (qb, qb) Cholesky factor of the Schur complement

    def _tree_solve(self, r):
        return np.zeros_like(r) if self.F is None else self.F.solve(r)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """x with P x = rhs, by block elimination.

        Parameters
        ----------
        rhs : numpy.ndarray
            (m + qb,) right-hand side: the nodes, then the other terms.

        Returns
        -------
        numpy.ndarray
            x (the root and, when the tree term is off, every node at 0).
        """
        r_t, r_b = rhs[: self.m], rhs[self.m :]
        y_t = self._tree_solve(r_t)
        if self.LS is None:
            return y_t
        x_b = sla.cho_solve((self.LS, True), r_b - (self.C.T @ y_t if self.F is not None else 0.0),
                            check_finite=False)
        x_t = y_t - self.X @ x_b if self.F is not None else y_t
        return np.concatenate([x_t, x_b])

    def logdet_re(self) -> float:
        """log det P - log det(tau Q): the Laplace log-determinant.

        Returns
        -------
        float
            The tree's part plus 2 sum log diag L_S.
        """
        tree = 0.0 if self.F is None else self.F.logdet() - self.logdet_prior
        other = 0.0 if self.LS is None else 2.0 * float(np.sum(np.log(np.diag(self.LS))))
        return tree + other

    def inverse_diagonal(self) -> np.ndarray:
        """diag(P^{-1}) over the nodes (zeros when the tree term is off).

        Returns
        -------
        numpy.ndarray
            (m,): diag(P_T^-1) + diag(X S^-1 X').
        """
        if self.F is None:
            return np.zeros(self.m)
        d = self.F.inverse_diagonal()
        if self.LS is not None:
            W = sla.solve_triangular(self.LS, self.X.T, lower=True, check_finite=False)  # L_S^-1 X'
            d = d + np.sum(W * W, axis=0)
        return d

    def inverse_other_block(self) -> np.ndarray:
        """S^-1: the other terms' block of P^-1.

        Returns
        -------
        numpy.ndarray
            (qb, qb).
        """
        return sla.cho_solve((self.LS, True), np.eye(self.LS.shape[0]), check_finite=False)


#: the other terms' columns beside a tree are held densely against the nodes: at most this many numbers
MAX_TREE_CROSS = 50_000_000


class TreeSystem(OwnAlgebraSystem):
    """Brownian motion on a tree as the engine's random-effects system, in node space, with any other
    random-effects terms beside it.

    For the tree term, u is the vector a of node values (the root fixed at 0), the tips' values enter eta,
    and the prior precision is tau Q with tau = c / theta^2; the other terms keep the engine's spherical
    u_B (b = Lambda_B u_B).  Then

        zlam_u = a[tip of each row] + Z_B Lambda_B u_B,   penalty = tau a'Qa + |u_B|^2,
        P = [[Z_T'WZ_T + tau Q, C], [C', Lambda_B'Z_B'WZ_B Lambda_B + I]],   C = Z_T'WZ_B Lambda_B,
        logdet_re = log det P - log det(tau Q),

    factored by the tree's LDL' (leaves first, no fill-in) and the dense Schur complement of the other
    terms, S = P_B - C' P_T^-1 C (q_B x q_B).  This is the Laplace value of ``glmer(..., relmat={g: K})``
    with the same other terms, at O(nodes x q_B) per evaluation instead of O(tips^3).  The joint (u, beta)
    system is not offered (``supports_joint = False``): the optimiser starts stage 2 from the GLM.

    Parameters
    ----------
    terms : list of RandomTerm
        The model's terms in the formula's order: one scalar intercept whose covariance is a
        ``TreeCovariance``, and any others.
    """

    name = "tree (node space)"
    def __init__(self, terms):
        trees = [i for i, t in enumerate(terms) if isinstance(t.cov, TreeCovariance)]
        if len(trees) != 1 or terms[trees[0]].k != 1:
            raise InputError("the tree path takes one random intercept (1 | group) whose levels are the tips, "
                             "beside any other terms; for several trees use glmer(..., relmat=...)")
        self.terms = list(terms)
        self.tree_pos = trees[0]
        t = terms[self.tree_pos]
        self.alg = t.cov.algebra
        self.level_nodes = t.cov.level_nodes
        self.node = self.level_nodes[t.codes]
        self.c = t.cov.c
        self.m = self.alg.m
        self.others = [u for i, u in enumerate(terms) if i != self.tree_pos]
        sizes = [u.size for u in self.others]
        self.b_off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.qb = int(self.b_off[-1])
        self.Q = self.m + self.qb
        if self.qb and self.m * self.qb > MAX_TREE_CROSS:
            raise InputError(f"the terms beside the tree have {self.qb} columns and the tree {self.m} nodes: the "
                             f"cross block would hold {self.m * self.qb:,} numbers (more than {MAX_TREE_CROSS:,}); "
                             "use fewer levels beside the tree or glmer(..., relmat=...)")
        if self.qb:
            n = len(t.codes)
            self.Zb = sp.hstack([u.csr() for u in self.others], format="csr")  # (n, qb)
            self.Zt = sp.csr_matrix((np.ones(n), (np.arange(n), self.node)), shape=(n, self.m))  # rows -> tip node
        sizes_theta = [u.cov.n_theta for u in terms]
        self.theta_off = np.concatenate([[0], np.cumsum(sizes_theta)]).astype(int)

    def split_theta(self, theta) -> list[np.ndarray]:
        """theta per term, in the formula's order.

        Parameters
        ----------
        theta : numpy.ndarray
            All variance parameters.

        Returns
        -------
        list of numpy.ndarray
            One array per term.
        """
        theta = np.asarray(theta, dtype=float)
        return [theta[a:b] for a, b in zip(self.theta_off[:-1], self.theta_off[1:])]

    def _tree_theta(self, theta) -> float:
        return float(np.asarray(theta, dtype=float)[self.theta_off[self.tree_pos]])

    def _lambda_b(self, theta) -> sp.csr_matrix:
        """Lambda of the other terms, block-diagonal (sparse)."""
        thetas = self.split_theta(theta)
        blocks = []
        for i, u in enumerate(self.terms):
            if i == self.tree_pos:
                continue
            th = thetas[i]
            if u.is_known:
                blocks.append(sp.csr_matrix(u.cov.dense_lambda(th)))
            else:
                blocks.append(sp.kron(sp.identity(u.q, format="csr"), sp.csr_matrix(u.cov.template(th)), format="csr"))
        return sp.block_diag(blocks, format="csr")

    def zlam_u(self, theta, u) -> np.ndarray:
        """a[tip] + Z_B Lambda_B u_B.

        Parameters
        ----------
        theta, u : numpy.ndarray
            Variance parameters and (m + qb,) random effects.

        Returns
        -------
        numpy.ndarray
            (n,).
        """
        out = u[: self.m][self.node]
        if self.qb:
            out = out + self.Zb @ (self._lambda_b(theta) @ u[self.m :])
        return out

    def lam_zt(self, theta, v) -> np.ndarray:
        """v summed at each node, then Lambda_B' Z_B' v.

        Parameters
        ----------
        theta, v : numpy.ndarray
            Variance parameters and (n,) values.

        Returns
        -------
        numpy.ndarray
            (m + qb,).
        """
        tree = np.bincount(self.node, weights=v, minlength=self.m)
        if not self.qb:
            return tree
        return np.concatenate([tree, self._lambda_b(theta).T @ (self.Zb.T @ v)])

    def penalty(self, theta, u) -> float:
        """tau a'Qa + |u_B|^2 (the tree's part 0 at a = 0 when the term is off, infinite elsewhere).

        Parameters
        ----------
        theta, u : numpy.ndarray
            Variance parameters and random effects.

        Returns
        -------
        float
            The penalty.
        """
        a, ub = u[: self.m], u[self.m :]
        th = self._tree_theta(theta)
        if th < TINY_THETA:
            tree = 0.0 if not np.any(a) else np.inf
        else:
            tree = self.c / th ** 2 * self.alg.quad(a)
        return tree + float(ub @ ub)

    def raw(self, w, D) -> TreeRaw:
        """W summed at each node, and the blocks of the other terms (D must be None: no joint system).

        Parameters
        ----------
        w : numpy.ndarray
            (n,) weights.
        D : None
            The tree system has no joint (u, beta) solve.

        Returns
        -------
        TreeRaw
            The assembled cross-products.
        """
        if D is not None:
            raise FitError("the tree system has no joint (u, beta) solve")
        w_node = np.bincount(self.node, weights=w, minlength=self.m)
        if not self.qb:
            return TreeRaw(w_node)
        WZb = self.Zb.multiply(w[:, None]).tocsr()
        return TreeRaw(w_node, (self.Zt.T @ WZb).tocsr(), (self.Zb.T @ WZb).tocsr())

    def factor(self, raw: TreeRaw, theta) -> TreeSystemFactor:
        """The tree's LDL' and the Schur complement of the other terms.

        Parameters
        ----------
        raw : TreeRaw
            From ``raw``.
        theta : numpy.ndarray
            Variance parameters.

        Returns
        -------
        TreeSystemFactor
            The factor (``LinAlgError`` when P is not positive definite).
        """
        th = self._tree_theta(theta)
        if th < TINY_THETA:
            F, logprior = None, 0.0
        else:
            tau = self.c / th ** 2
            F = self.alg.factor(raw.w_node, tau)
            logprior = (self.m - 1) * np.log(tau) + self.alg.logdet_q
        if not self.qb:
            return TreeSystemFactor(F, logprior, self.m)
        lam = self._lambda_b(theta)
        C = np.asarray((raw.zt_w_zb @ lam).todense())  # (m, qb)
        PB = np.asarray((lam.T @ raw.zb_w_zb @ lam).todense()) + np.eye(self.qb)
        if F is None:
            X = np.zeros_like(C)
            S = PB
        else:
            X = F.solve(C)
            S = PB - C.T @ X
        LS = np.linalg.cholesky(0.5 * (S + S.T))
        return TreeSystemFactor(F, logprior, self.m, X, C, LS)

    def ranef_condvar(self, theta, u, factor) -> tuple[list, list]:
        """The modes and conditional variances per term, in the formula's order.

        Parameters
        ----------
        theta, u : numpy.ndarray
            Variance parameters and the mode.
        factor : TreeSystemFactor
            The factor at the mode.

        Returns
        -------
        tuple
            (list of (q, k) modes, list of (q, k, k) conditional covariances).
        """
        q_t = len(self.level_nodes)
        b, v = [None] * len(self.terms), [None] * len(self.terms)
        if factor.F is None:
            b[self.tree_pos], v[self.tree_pos] = np.zeros((q_t, 1)), np.zeros((q_t, 1, 1))
        else:
            b[self.tree_pos] = u[: self.m][self.level_nodes][:, None]
            v[self.tree_pos] = factor.inverse_diagonal()[self.level_nodes][:, None, None]
        if self.qb:
            thetas = self.split_theta(theta)
            Sinv = factor.inverse_other_block()
            ub = u[self.m :]
            j = 0
            for i, t in enumerate(self.terms):
                if i == self.tree_pos:
                    continue
                o, size, th = self.b_off[j], t.size, thetas[i]
                j += 1
                blk = Sinv[o : o + size, o : o + size]
                uu = ub[o : o + size]
                if t.is_known:
                    lam = t.cov.dense_lambda(th)
                    b[i] = (lam @ uu)[:, None]
                    v[i] = np.einsum("ij,jk,ik->i", lam, blk, lam)[:, None, None]
                    continue
                T = t.cov.template(th)
                b[i] = uu.reshape(t.q, t.k) @ T.T
                idx = np.arange(size).reshape(t.q, t.k)
                vu = blk[idx[:, :, None], idx[:, None, :]]
                v[i] = np.einsum("ij,qjk,lk->qil", T, vu, T)
        return b, v


#: a tree term is carried by the tree system (ModelSpec.random_effects_system asks the covariance class)
TreeCovariance.system = TreeSystem
