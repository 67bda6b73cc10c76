"""Analytic gradient of the Laplace deviance for one block-diagonal term with a canonical link.

D(theta, beta) = -2 sum_i l_i(eta_i) + |u|^2 + sum_j log det A_j,   A_j = T'G_jT + I,
eta = offset + X beta + Z T u-hat,  G_j = sum_{i in j} W_i x_i x_i',  T = T(theta) (k x k, lower).

With r_i = dl_i/deta_i = wt_i (y_i - mu_i) and W_i = -dr_i/deta_i (canonical link: the expected and
observed information agree), for a parameter phi (an entry of theta or beta):

    dD/dphi = -2 sum_i r_i deta_i/dphi |_u                       (envelope: dF/du = 0 at u-hat)
              + sum_j tr(A_j^-1 dA_j/dphi) |_W                    (theta only: 2 [A_j^-1 T'G_j]_(b, a))
              + sum_i W'_i h_i deta-hat_i/dphi                     (W moves with the mode)

h_i = x_i' T A_j^-1 T' x_i, W'_i = dW_i/deta_i, deta-hat_i/dphi = deta_i/dphi|_u + x_i'T du_j/dphi, and
by the implicit function theorem du_j/dphi = A_j^-1 c_j with
    c_j = -T' sum_{i in j} W_i x_i X_is                             (phi = beta_s)
    c_j = e_b s_j[a] - T' G_j[:, a] u_j[b],  s_j = sum_{i in j} r_i x_i   (phi = theta for T[a, b])
Everything is per level (q x k x k arrays); one gradient costs a few passes over the rows.
"""

from __future__ import annotations

import numpy as np

from .covariance import Diagonal, Unstructured
from .blocked import Structure, level_gram

CANONICAL = {("binomial", "logit"), ("poisson", "log")}


def _entry_theta(terms) -> bool:
    """Whether every term's theta is the entries of its factor T (Unstructured, Diagonal): the gradient's
    dT/dtheta assumes it; other covariance classes take the derivative-free path."""
    return all(type(t.cov) in (Unstructured, Diagonal) for t in terms)


def supports_gradient(obj) -> bool:
    """Whether the fast analytic gradient applies: one non-known term, no trailing block, canonical link, Laplace.

    Parameters
    ----------
    obj : GlmmObjective
        The objective.

    Returns
    -------
    bool
        True when ``laplace_gradient`` may be used.
    """
    d = obj.data
    st = d.structure
    fam = d.family
    return (len(st.terms) == 1 and _entry_theta(st.terms) and st.Qtt == 0 and obj.nagq <= 1
            and obj.n_psi == 0 and (fam.name, fam.link.name) in CANONICAL
            and type(fam).__name__ in ("Binomial", "Poisson"))


def _w_prime(fam, mu, wt):
    if fam.name == "binomial":
        return wt * mu * (1 - mu) * (1 - 2 * mu)
    return wt * mu


def laplace_gradient(obj, theta, beta, res, du: bool = False):
    """The analytic gradient of the Laplace -2 log L for one scalar or vector term.

    Parameters
    ----------
    obj : GlmmObjective
        The objective (``supports_gradient(obj)``).
    theta, beta : numpy.ndarray
        The point.
    res : PirlsResult
        The result of ``obj.evaluate(theta, beta)``.
    du : bool
        Also return d u-hat / d(theta, beta) (a first-order warm start for PIRLS).

    Returns
    -------
    tuple
        (dD/dtheta, dD/dbeta[, (Q, n_theta + p) Jacobian of u-hat]).
    """
    d = obj.data
    fam = d.family
    t = d.structure.terms[0]
    k, q = t.k, t.q
    codes, Z = t.codes, t.X
    T = t.cov.template(theta)
    U = res.u.reshape(q, k)
    mu, w = res.mu, res.w
    r = d.wt * (d.y - mu)
    G = res.gram1 if res.gram1 is not None else level_gram(t, w)  # (q, k, k)
    Linv = res.factor.L11inv  # (q, k, k): A_j = L L'
    Ainv = np.einsum("qki,qkj->qij", Linv, Linv)
    P = np.einsum("ab,qbc,dc->qad", T, Ainv, T)  # T A^-1 T'
    h = np.zeros(len(codes))
    for i in range(k):  # h_i = x_i' P_j x_i, by per-level scalars (cheaper than gathering (n, k, k))
        for j in range(i, k):
            h += (P[:, i, j] * (1.0 if i == j else 2.0))[codes] * Z[:, i] * Z[:, j]
    g = _w_prime(fam, mu, d.wt) * h  # d logdet / d eta-hat_i
    # v_j = T' sum_{i in j} g_i x_i, a_j = A_j^-1 v_j
    zg = np.stack([np.bincount(codes, weights=g * Z[:, c], minlength=q) for c in range(k)], axis=1)
    v = zg @ T  # rows: (T' zg_j)' = zg_j' T
    a = np.einsum("qij,qj->qi", Ainv, v)

    # beta
    X = d.X
    p = X.shape[1]
    grad_b = -2 * (X.T @ r) + X.T @ g
    J = np.zeros((q * k, len(theta) + p)) if du else None
    if p:
        S = np.stack([np.stack([np.bincount(codes, weights=w * Z[:, c] * X[:, s], minlength=q) for s in range(p)],
                               axis=1) for c in range(k)], axis=1)  # (q, k, p) = sum W x X'
        cb = -np.einsum("ca,qcs->qas", T, S)  # -T' S_j   (q, k, p)
        grad_b = grad_b + np.einsum("qa,qas->s", a, cb)
        if du:
            J[:, len(theta):] = np.einsum("qab,qbs->qas", Ainv, cb).reshape(q * k, p)

    # theta: entries T[a_, b_] in the covariance's theta order
    cov = t.cov
    if hasattr(cov, "_rows"):
        rows, cols = cov._rows, cov._cols
    else:  # diagonal
        rows = cols = np.arange(k)
    s_lev = np.stack([np.bincount(codes, weights=r * Z[:, c], minlength=q) for c in range(k)], axis=1)  # (q, k)
    AtG = np.einsum("qij,kj,qkl->qil", Ainv, T, G)  # A^-1 T' G  (q, k, k)
    TtG = np.einsum("ca,qcd->qad", T, G)  # T' G (q, k, k)
    grad_t = np.zeros(len(theta))
    for idx, (ra, cb_) in enumerate(zip(rows, cols)):
        # d eta_i / d T[ra, cb_] |_u = x_i[ra] u_j[cb_]: its sums against r and g are per-level sums
        val = float(U[:, cb_] @ (zg[:, ra] - 2 * s_lev[:, ra]))
        val += 2 * float(np.sum(AtG[:, cb_, ra]))
        c = -TtG[:, :, ra] * U[:, cb_][:, None]
        c[:, cb_] += s_lev[:, ra]
        val += float(np.sum(a * c))
        grad_t[idx] = val
        if du:
            J[:, idx] = np.einsum("qab,qb->qa", Ainv, c).ravel()
    return (grad_t, grad_b, J) if du else (grad_t, grad_b)


# ----------------------------------------------------------------------------------------------
# several terms: term 1 block-diagonal, the others in the dense trailing block
# ----------------------------------------------------------------------------------------------

MAX_GRADIENT_TAIL = 3000  # trailing columns inverted densely per gradient (potri: 2/3 Qtt^3 flops)


def supports_general_gradient(obj) -> bool:
    """Whether the analytic gradient through the blocked factor applies: canonical link, Laplace, no
    known-covariance term, a block-diagonal term 1 and a trailing block small enough to invert densely.

    Parameters
    ----------
    obj : GlmmObjective
        The objective.

    Returns
    -------
    bool
        True when ``laplace_gradient_general`` may be used.
    """
    d = obj.data
    st = d.structure
    fam = d.family
    return (len(st.terms) > 1 and isinstance(st, Structure) and st.first is not None and st.Qtt > 0
            and obj.nagq <= 1 and obj.n_psi == 0 and _entry_theta(st.terms)
            and (fam.name, fam.link.name) in CANONICAL and type(fam).__name__ in ("Binomial", "Poisson")
            and st.Qtt <= MAX_GRADIENT_TAIL)


def _entries(st, thetas):
    """Per row, the random-effect coordinates it touches: (global index (n, e), value of Lambda'z (n, e),
    layout position, column) for every term column, term 1 first."""
    idx, val, pos_of, col_of = [], [], [], []
    for pos, (t, th) in enumerate(zip(st.terms, thetas)):
        T = t.cov.template(th)
        zt = t.X @ T  # rows: (T' x_i)'
        for c in range(t.k):
            idx.append(st.u_off[pos] + t.codes * t.k + c)
            val.append(zt[:, c])
            pos_of.append(pos)
            col_of.append(c)
    return np.stack(idx, axis=1), np.stack(val, axis=1), pos_of, col_of


class SelectedInverse:
    """The entries of A^-1 = (L L')^-1 that the rows touch, from the blocked factor (stage 2: no D columns).

    With L = [[L11, 0], [M', Lt]] and S^-1 = (Lt Lt')^-1:

        term 1's blocks  P11_l = L11_l^-T (I + M_l S^-1 M_l') L11_l^-1,
        the cross block  P1t   = -L11^-T M S^-1          (wanted only at the observed level pairs),
        the tail         Ptt   = S^-1.

    The storage decides the algebra: a diagonal trailing block (nesting) inverts elementwise; a sparse M
    with the pairs' pattern gives M S^-1 at its own pattern from the precomputed pairs (no dense
    Q1 x Qtt array); otherwise M S^-1 is one dense product.
    """

    def __init__(self, st, f):
        import scipy.linalg as sla

        self.st = st
        q1, k1, Q1, Qtt = st.first.q, st.first.k, st.Q1, st.Qtt
        Mt = f.Mt
        self.diag_tail = st.tail_diagonal
        if self.diag_tail:
            self.Sdiag = 1.0 / (f.Lt.diagonal() if hasattr(f.Lt, 'l') else np.diag(f.Lt))[:Qtt] ** 2
            self.S = None
        else:
            inv, info = sla.lapack.dpotri(f.Lt[:Qtt, :Qtt], lower=1)
            if info != 0:
                raise np.linalg.LinAlgError("trailing block is singular")
            S = np.tril(inv)
            S += np.tril(S, -1).T
            self.S = S
        # M keeps C1t's pattern (scalar terms): M S^-1 at that pattern only, and G_l = M_l S^-1 M_l'
        self.pattern = (Mt is not None and not isinstance(Mt, np.ndarray) and k1 == 1
                        and (self.diag_tail or st._schur_pairs is not None))
        if self.pattern:
            m = Mt.data
            if self.diag_tail:
                ms = m * self.Sdiag[Mt.indices]
            else:
                # pair (a, b) of a row, a >= b: M[a] S[a, b] adds to (M S)[b], and M[b] S[a, b] to (M S)[a]
                pr = st._schur_pairs
                sd = np.take(np.tril(self.S).ravel(), pr.dest)
                nnz = len(m)
                ms = np.bincount(pr.pb, weights=np.take(m, pr.pa) * sd, minlength=nnz)
                off = pr.twice > 1.0
                ms += np.bincount(pr.pa[off], weights=np.take(m, pr.pb[off]) * sd[off], minlength=nnz)
            rows = st._c1t_row_of
            G = np.bincount(rows, weights=m * ms, minlength=Q1)[:, None, None]
            self.p1t_pattern = -f.L11inv[rows, 0, 0] * ms
        else:
            Sfull = self.S if not self.diag_tail else np.diag(self.Sdiag)
            MS = np.asarray(Mt @ Sfull) if Mt is not None else np.zeros((Q1, Qtt))
            Md = Mt if isinstance(Mt, np.ndarray) else (Mt.toarray() if Mt is not None else np.zeros((Q1, Qtt)))
            G = np.einsum("qim,qjm->qij", MS.reshape(q1, k1, Qtt), Md.reshape(q1, k1, Qtt))
            self.p1t_dense = -np.einsum("qji,qjm->qim", f.L11inv, MS.reshape(q1, k1, Qtt)).reshape(Q1, Qtt)
        self.P11 = np.einsum("qki,qkl,qlj->qij", f.L11inv, np.eye(k1)[None] + G, f.L11inv)

    def cross(self, first_coord: np.ndarray, tail_coord: np.ndarray, term: int, rows_pidx) -> np.ndarray:
        """P1t at (term-1 coordinate, tail coordinate) for every row.

        Parameters
        ----------
        first_coord, tail_coord : numpy.ndarray
            (n,) coordinates (term 1's, the tail's).
        term : int
            The tail term (index among the tail) whose coordinate this is.
        rows_pidx : callable
            rows_pidx(term) -> (n,) CSR positions of each row's (level, tail level) pair in M.

        Returns
        -------
        numpy.ndarray
            (n,).
        """
        if self.pattern:
            return self.p1t_pattern[rows_pidx(term)]
        return self.p1t_dense[first_coord, tail_coord]

    def tail(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Ptt at (a, b) for every row.

        Parameters
        ----------
        a, b : numpy.ndarray
            (n,) tail coordinates.

        Returns
        -------
        numpy.ndarray
            (n,).
        """
        if self.diag_tail:
            return np.where(a == b, self.Sdiag[a], 0.0)
        return self.S[a, b]


def laplace_gradient_general(obj, theta, beta, res):
    """The analytic gradient of the Laplace -2 log L for several terms.

    The same three parts as the single-term gradient, with A^-1 restricted to the coordinates each row
    touches (``SelectedInverse``: term 1's diagonal blocks, the cross block at the observed level pairs,
    the trailing block).

    Parameters
    ----------
    obj : GlmmObjective
        The objective (``supports_general_gradient(obj)``).
    theta, beta : numpy.ndarray
        The point.
    res : PirlsResult
        The result of ``obj.evaluate(theta, beta)``.

    Returns
    -------
    tuple
        (dD/dtheta, dD/dbeta).
    """
    d = obj.data
    st = d.structure
    fam = d.family
    f = res.factor
    thetas = st.split_theta(theta)
    k1, Q1 = st.first.k, st.Q1
    sel = SelectedInverse(st, f)

    idx, zt, pos_of, col_of = _entries(st, thetas)
    n, e = idx.shape
    # the local block of A^-1 for every row: entries 0..k1-1 are term 1's, the rest the tail's
    Ploc = np.empty((n, e, e))
    j = st.first.codes
    Ploc[:, :k1, :k1] = sel.P11[j]
    tail = idx[:, k1:] - Q1
    tail_term = np.array(pos_of[k1:]) - 1  # each tail entry's term among the tail
    for c in range(k1):
        for ee in range(e - k1):
            Ploc[:, c, k1 + ee] = sel.cross(j * k1 + c, tail[:, ee], tail_term[ee], st.row_pattern_positions)
    Ploc[:, k1:, :k1] = np.transpose(Ploc[:, :k1, k1:], (0, 2, 1))
    for a_ in range(e - k1):
        for b_ in range(e - k1):
            Ploc[:, k1 + a_, k1 + b_] = sel.tail(tail[:, a_], tail[:, b_])
    y = np.einsum("nab,nb->na", Ploc, zt)  # (A^-1 Lambda'z_i) on the touched coordinates
    h = np.einsum("na,na->n", zt, y)

    mu, w = res.mu, res.w
    r = d.wt * (d.y - mu)
    g = _w_prime(fam, mu, d.wt) * h
    a = f.solve(st.lam_zt(theta, g))  # A^-1 Lambda'Z'g
    z_a = st.zlam_u(theta, a)
    X = d.X
    grad_b = -2 * (X.T @ r) + X.T @ g - X.T @ (w * z_a)

    # theta, per layout term, back in the model's order
    sizes = [t.cov.n_theta for t in st._orig_terms()]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    grad_t = np.zeros(len(theta))
    u = res.u
    entry_of = {(p, c): i for i, (p, c) in enumerate(zip(pos_of, col_of))}
    for pos, t in enumerate(st.terms):
        U = u[st.u_off[pos] : st.u_off[pos + 1]].reshape(t.q, t.k)
        A_ = a[st.u_off[pos] : st.u_off[pos + 1]].reshape(t.q, t.k)
        cov = t.cov
        rows, cols = (cov._rows, cov._cols) if hasattr(cov, "_rows") else (np.arange(t.k), np.arange(t.k))
        base = starts[st.order[pos]]
        for i_th, (ra, cb) in enumerate(zip(rows, cols)):
            xa = t.X[:, ra]
            ub = U[t.codes, cb]
            val = np.sum(xa * ((g - 2 * r - z_a * w) * ub + 2 * w * y[:, entry_of[(pos, cb)]] + A_[t.codes, cb] * r))
            grad_t[base + i_th] = float(val)
    return grad_t, grad_b
