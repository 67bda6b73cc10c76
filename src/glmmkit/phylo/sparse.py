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

from ..engine.covariance import KnownMatrix
from ..engine.resystem import RandomEffectsSystem, SystemFactor
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
            (m,) right-hand side.

        Returns
        -------
        numpy.ndarray
            (m,) solution.
        """
        alg = self.alg
        z = np.zeros(alg.m)
        acc = np.zeros(alg.m)
        for idx in alg.up_levels:
            z[idx] = r[idx] - acc[idx]
            np.add.at(acc, alg.parent[idx], self.lpv[idx] * z[idx])
        y = np.zeros(alg.m)
        y[1:] = z[1:] / self.d[1:]
        x = np.zeros(alg.m)
        for idx in alg.down_levels:
            x[idx] = y[idx] - self.lpv[idx] * x[alg.parent[idx]]
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
    """The weights summed at each node (the tree system's assembled cross-products)."""

    w_node: np.ndarray
    G1: None = None  # no level Gram (the analytic gradient does not apply)


@dataclass
class TreeSystemFactor(SystemFactor):
    """P = diag(W at the tips) + tau Q, factored, with the prior's log-determinant."""

    F: TreeFactor | None  # None: the term is off (theta below TINY_THETA)
    logdet_prior: float

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """x with P x = rhs (zero when the term is off)."""
        return np.zeros_like(rhs) if self.F is None else self.F.solve(rhs)

    def logdet_re(self) -> float:
        """log det P - log det(tau Q): the Laplace log-determinant."""
        return 0.0 if self.F is None else self.F.logdet() - self.logdet_prior

    def inverse_diagonal(self) -> np.ndarray:
        """diag(P^{-1}) over the nodes (zeros when the term is off).

        Returns
        -------
        numpy.ndarray
            (m,).
        """
        return np.zeros(len(self.F.d)) if self.F is None else self.F.inverse_diagonal()


class TreeSystem(RandomEffectsSystem):
    """Brownian motion on a tree as the engine's random-effects system, in node space.

    u is the vector a of node values (the root fixed at 0), the tips' values enter eta, and the prior
    precision is tau Q with tau = c / theta^2.  Then

        zlam_u = a[tip of each row],   penalty = tau a'Qa,   P = Z'WZ + tau Q   (tree-structured),
        logdet_re = log det P - log det(tau Q),

    which is the Laplace value of ``glmer(..., relmat={g: K})`` at O(nodes) per evaluation.  The joint
    (u, beta) system is not offered (``supports_joint = False``): the optimiser starts stage 2 from the
    GLM.

    Parameters
    ----------
    terms : list of RandomTerm
        Exactly one term, a scalar intercept whose covariance is a ``TreeCovariance``.
    """

    name = "tree (node space)"
    supports_joint = False
    Qtt = 0
    Q1 = 0
    first = None
    tail_diagonal = False

    def __init__(self, terms):
        if len(terms) != 1 or not isinstance(terms[0].cov, TreeCovariance) or terms[0].k != 1:
            raise InputError("the tree path takes one random intercept (1 | group) whose levels are the tips; "
                             "for a tree beside other random-effects terms use glmer(..., relmat={group: "
                             "vcv(tree, corr=True)}) (the dense path)")
        self.terms = list(terms)
        self.order = [0]
        t = terms[0]
        self.alg = t.cov.algebra
        self.level_nodes = t.cov.level_nodes
        self.node = self.level_nodes[t.codes]
        self.c = t.cov.c
        self.Q = self.alg.m

    def _orig_terms(self):
        return self.terms

    def split_theta(self, theta) -> list[np.ndarray]:
        """theta per term (one term).

        Parameters
        ----------
        theta : numpy.ndarray
            The variance parameter.

        Returns
        -------
        list of numpy.ndarray
            ``[theta]``.
        """
        return [np.asarray(theta, dtype=float)]

    def _tau(self, theta) -> float:
        return self.c / float(theta[0]) ** 2

    def zlam_u(self, theta, u) -> np.ndarray:
        """The tip values of the rows, a[tip]."""
        return u[self.node]

    def lam_zt(self, theta, v) -> np.ndarray:
        """v summed at each node."""
        return np.bincount(self.node, weights=v, minlength=self.alg.m)

    def penalty(self, theta, u) -> float:
        """tau a'Qa (0 at a = 0 when the term is off, infinite elsewhere)."""
        if float(theta[0]) < TINY_THETA:
            return 0.0 if not np.any(u) else np.inf
        return self._tau(theta) * self.alg.quad(u)

    def raw(self, w, D) -> TreeRaw:
        """The weights summed at each node (D must be None: no joint system)."""
        if D is not None:
            raise FitError("the tree system has no joint (u, beta) solve")
        return TreeRaw(np.bincount(self.node, weights=w, minlength=self.alg.m))

    def factor(self, raw: TreeRaw, theta) -> TreeSystemFactor:
        """LDL' of P = diag(w at the tips) + tau Q."""
        if float(theta[0]) < TINY_THETA:
            return TreeSystemFactor(None, 0.0)
        tau = self._tau(theta)
        F = self.alg.factor(raw.w_node, tau)
        return TreeSystemFactor(F, (self.alg.m - 1) * np.log(tau) + self.alg.logdet_q)

    def ranef_condvar(self, theta, u, factor) -> tuple[list, list]:
        """The tip modes and their conditional variances (the diagonal of P^{-1})."""
        if factor.F is None:
            q = len(self.level_nodes)
            return [np.zeros((q, 1))], [np.zeros((q, 1, 1))]
        v = factor.inverse_diagonal()[self.level_nodes]
        return [u[self.level_nodes][:, None]], [v[:, None, None]]


#: a tree term is carried by the tree system (ModelSpec.random_effects_system asks the covariance class)
TreeCovariance.system = TreeSystem
