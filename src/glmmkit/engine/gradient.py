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

Any family and link: r, the Laplace information W_L (expected or observed) with W'_L, and the observed
information W_O come from ``Family.laplace_gradient_terms``.  The log-determinant and h use W_L; the mode
moves with the Hessian of the penalised deviance, A_O = Lambda'Z'W_O Z Lambda + I, so du/dphi = A_O^-1 c
(one more factor when W_O differs from W_L: a non-canonical link under the expected Laplace, NB2).  The
family's own parameters psi (NB2's log theta) add, with (dl, dr, dW_L)/dpsi from
``Family.param_gradient_terms``,

    dD/dpsi = -2 sum_i dl_i/dpsi + sum_i h_i dW_L,i/dpsi + sum_i (Z Lambda a)_i dr_i/dpsi,
    a = A_O^-1 Lambda'Z' g,  g_i = W'_L,i h_i.
"""

from __future__ import annotations

import numpy as np

from .covariance import KnownMatrix
from .reterm import SMALL_K
from .blocked import Structure, level_gram, level_sandwich, row_quadratic, sandwich, symmetric_from_lower


def _gradient_terms_ok(terms, known: bool = False) -> bool:
    """Whether every term's factor is a k x k template per level (any covariance class: the gradient is
    taken in T's entries and carried to theta by the class's ``factor_derivatives``), or (with ``known``)
    a known matrix's factor times theta. Terms on a system of their own (tree, sparse known) are not."""
    return all(t.cov.system is None and (not t.is_known or (known and type(t.cov) is KnownMatrix)) for t in terms)


def _factor_gradient(cov, theta, GT: np.ndarray) -> np.ndarray:
    """dD/dtheta = sum_ij dD/dT_ij dT_ij/dtheta: the chain rule from the factor's entries (GT = dD/dT)."""
    return np.einsum("mij,ij->m", cov.factor_derivatives(theta), GT)


def family_supports_gradient(obj) -> bool:
    """Whether the objective's family gives the Laplace gradient's terms (and its parameters' terms).

    Parameters
    ----------
    obj : GlmmObjective
        The objective.

    Returns
    -------
    bool
        True when ``Family.laplace_gradient_terms`` and ``param_gradient_terms`` answer for its Laplace.
    """
    fam = obj.data.family
    probe = fam.with_params(np.zeros(obj.n_psi)) if obj.n_psi else fam
    # a point inside every family's domain: the question is only whether the terms are given
    y, eta, mu, wt = np.full(1, 0.5), np.full(1, 0.1), np.full(1, 0.5), np.ones(1)
    with np.errstate(all="ignore"):
        return (probe.laplace_gradient_terms(y, eta, mu, wt, obj.laplace) is not None
                and probe.param_gradient_terms(y, eta, mu, wt, obj.laplace) is not None)


def supports_gradient(obj) -> bool:
    """Whether the fast analytic gradient applies: one non-known term, no trailing block, Laplace, and a
    family that gives the gradient's terms.

    Parameters
    ----------
    obj : GlmmObjective
        The objective.

    Returns
    -------
    bool
        True when ``laplace_gradient`` may be used.
    """
    st = obj.data.structure
    return (len(st.terms) == 1 and _gradient_terms_ok(st.terms) and st.Qtt == 0 and obj.nagq <= 1
            and isinstance(st, Structure) and family_supports_gradient(obj))


def gradient_terms(obj, res, psi=None):
    """(r, W_L, W'_L, W_O, per-psi terms) at the mode ``res``.

    Parameters
    ----------
    obj : GlmmObjective
        The objective.
    res : PirlsResult
        The mode.
    psi : numpy.ndarray, optional
        The family's parameters.

    Returns
    -------
    tuple
        (r, W_L, dW_L/deta, W_O, list of (dl, dr, dW_L) per psi).
    """
    d = obj.data
    fam = obj.family_at(psi)
    r, w_l, dw_l, w_o = fam.laplace_gradient_terms(d.y, res.eta, res.mu, d.wt, obj.laplace)
    return r, w_l, dw_l, w_o, fam.param_gradient_terms(d.y, res.eta, res.mu, d.wt, obj.laplace)


def _psi_gradient(terms_psi, h, z_a) -> np.ndarray:
    """dD/dpsi = -2 sum dl/dpsi + sum h dW_L/dpsi + sum (Z Lambda a) dr/dpsi (module docstring)."""
    return np.array([-2 * float(np.sum(dl)) + float(h @ dw) + float(z_a @ dr) for dl, dr, dw in terms_psi])


def laplace_gradient(obj, theta, beta, res, du: bool = False, psi=None):
    """The analytic gradient of the Laplace -2 log L for one scalar or vector term.

    Parameters
    ----------
    obj : GlmmObjective
        The objective (``supports_gradient(obj)``).
    theta, beta : numpy.ndarray
        The point.
    res : PirlsResult
        The result of ``obj.evaluate(theta, beta, psi)``.
    du : bool
        Also return d u-hat / d(theta, beta) (a first-order warm start for PIRLS).
    psi : numpy.ndarray, optional
        The family's parameters (NB2's log theta).

    Returns
    -------
    tuple
        (dD/dtheta, dD/dbeta, dD/dpsi[, (Q, n_theta + p) Jacobian of u-hat]).
    """
    d = obj.data
    t = d.structure.terms[0]
    k, q = t.k, t.q
    codes, Z = t.codes, t.X
    T = t.cov.template(theta)
    U = res.u.reshape(q, k)
    r, w_l, dw_l, w_o, terms_psi = gradient_terms(obj, res, psi)
    G = res.gram1 if res.gram1 is not None else level_gram(t, w_l)  # (q, k, k), Laplace weights
    Linv = res.factor.L11inv  # (q, k, k): A_j = L L'
    Ainv = np.matmul(np.transpose(Linv, (0, 2, 1)), Linv)
    # the mode moves with A_O = T'G_O T + I (the same as A when W_O = W_L)
    if w_o is w_l:
        G_o, Ainv_o = G, Ainv
    else:
        G_o = level_gram(t, w_o)
        Ainv_o = np.linalg.inv(sandwich(T, G_o, transpose_first=True) + np.eye(k))
    P = sandwich(T, Ainv)  # T A^-1 T'
    h = row_quadratic(Z, codes, P, csr=t.csr_nonzero() if k > SMALL_K else None)  # h_i = x_i' P_j x_i
    g = dw_l * h  # d logdet / d eta-hat_i
    # v_j = T' sum_{i in j} g_i x_i, a_j = A_O,j^-1 v_j
    zg = t.zt(g)
    v = zg @ T  # rows: (T' zg_j)' = zg_j' T
    a = np.einsum("qij,qj->qi", Ainv_o, v)

    # beta
    X = d.X
    p = X.shape[1]
    grad_b = -2 * (X.T @ r) + X.T @ g
    J = np.zeros((q * k, len(theta) + p)) if du else None
    if p:
        S = t.zt_matrix(w_o[:, None] * X)  # (q, k, p) = sum W_O x X'
        cb = -np.einsum("ca,qcs->qas", T, S)  # -T' S_j   (q, k, p)
        grad_b = grad_b + np.einsum("qa,qas->s", a, cb)
        if du:
            J[:, len(theta):] = np.einsum("qab,qbs->qas", Ainv_o, cb).reshape(q * k, p)

    # theta: dD/dT as a (k, k) matrix, then the class's dT/dtheta. For the entry (ra, cb) of T,
    # d eta_i / dT[ra, cb] |_u = x_i[ra] u_j[cb], so (W_qr = sum_i a_qi (T'G_O)_q[i, r])
    #   dD/dT[ra, cb] = sum_q u_q[cb] (zg - 2 s - W)_q[ra] + 2 sum_q (A^-1 T'G)_q[cb, ra] + sum_q s_q[ra] a_q[cb],
    # and the mode moves by A_O^-1 c(D), c_q(D) = D' s_q - T'G_O,q D u_q for a direction D of T
    s_lev = t.zt(r)  # (q, k)
    AtG = np.matmul(np.matmul(Ainv, T.T), G)  # A^-1 T' G  (q, k, k): the log-determinant's direct term
    TtG = np.matmul(T.T, G_o)  # T' G_O (q, k, k): the mode's move
    W = np.einsum("qi,qir->qr", a, TtG)
    GT = (zg - 2 * s_lev - W).T @ U + s_lev.T @ a + 2 * AtG.sum(axis=0).T
    dT = t.cov.factor_derivatives(theta)  # (n_theta, k, k)
    grad_t = np.einsum("mij,ij->m", dT, GT)
    if du:
        DU = np.einsum("mbc,qc->mqb", dT, U)  # D_m u_q
        C = np.einsum("qr,mrc->mqc", s_lev, dT) - np.einsum("qab,mqb->mqa", TtG, DU)  # (n_theta, q, k)
        J[:, : len(theta)] = np.einsum("qab,mqb->qam", Ainv_o, C).reshape(q * k, len(theta))
    grad_psi = np.zeros(0)
    if terms_psi:
        z_a = np.einsum("nk,nk->n", Z, (a @ T.T)[codes])  # (Z Lambda a)_i = x_i' T a_j
        grad_psi = _psi_gradient(terms_psi, h, z_a)
        if du:  # du/dpsi = A_O^-1 T' sum_i x_i dr_i/dpsi
            cols = [np.einsum("qab,qb->qa", Ainv_o, np.stack(
                [np.bincount(codes, weights=dr * Z[:, c], minlength=q) for c in range(k)], axis=1) @ T).ravel()
                for _dl, dr, _dw in terms_psi]
            J = np.column_stack([J] + cols)
    return (grad_t, grad_b, grad_psi, J) if du else (grad_t, grad_b, grad_psi)


# ----------------------------------------------------------------------------------------------
# several terms: term 1 block-diagonal, the others in the dense trailing block
# ----------------------------------------------------------------------------------------------

MAX_GRADIENT_TAIL = 3000  # trailing columns inverted densely per gradient (potri: 2/3 Qtt^3 flops)


def supports_general_gradient(obj) -> bool:
    """Whether the analytic gradient through the blocked factor applies: Laplace, a family that gives the
    gradient's terms, no known-covariance term, a block-diagonal term 1 and a trailing block small enough to
    invert densely.

    Parameters
    ----------
    obj : GlmmObjective
        The objective.

    Returns
    -------
    bool
        True when ``laplace_gradient_general`` may be used.
    """
    st = obj.data.structure
    return (isinstance(st, Structure) and st.Qtt > 0 and obj.nagq <= 1 and _gradient_terms_ok(st.terms, known=True)
            and st.Qtt <= MAX_GRADIENT_TAIL and family_supports_gradient(obj))


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
        self.st = st
        q1, k1 = (st.first.q, st.first.k) if st.first is not None else (0, 0)
        Q1, Qtt = st.Q1, st.Qtt
        Mt = f.Mt
        self.diag_tail = st.tail_diagonal
        if self.diag_tail:
            self.Sdiag = 1.0 / (f.Lt.diagonal() if hasattr(f.Lt, 'l') else np.diag(f.Lt))[:Qtt] ** 2
            self.S = None
        else:
            self.S = symmetric_from_lower(f.tail_inverse_lower(Qtt))
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
                sd = pr.gather_lower(self.S)
                nnz = len(m)
                ms = np.bincount(pr.pb, weights=np.take(m, pr.pa) * sd, minlength=nnz)
                off = pr.twice > 1.0
                ms += np.bincount(pr.pa[off], weights=np.take(m, pr.pb[off]) * sd[off], minlength=nnz)
            rows = st._c1t_row_of
            G = np.bincount(rows, weights=m * ms, minlength=Q1)[:, None, None]
            self.p1t_pattern = -f.L11inv[rows, 0, 0] * ms
        elif st.first is None:  # every term in the trailing block
            self.P11 = None
            self._known_to_b_space(st)
            return
        else:
            Sfull = self.S if not self.diag_tail else np.diag(self.Sdiag)
            MS = np.asarray(Mt @ Sfull) if Mt is not None else np.zeros((Q1, Qtt))
            Md = Mt if isinstance(Mt, np.ndarray) else (Mt.toarray() if Mt is not None else np.zeros((Q1, Qtt)))
            if k1 == 1:  # rowwise products, no k x k blocks
                G = np.einsum("ij,ij->i", MS, Md)[:, None, None]
                MS *= -f.L11inv[:, 0, 0][:, None]
                self.p1t_dense = MS
            else:
                MS3 = MS.reshape(q1, k1, Qtt)
                G = np.matmul(MS3, np.transpose(Md.reshape(q1, k1, Qtt), (0, 2, 1)))
                self.p1t_dense = -np.matmul(np.transpose(f.L11inv, (0, 2, 1)), MS3).reshape(Q1, Qtt)
        self.P11 = level_sandwich(f.L11inv, np.eye(k1)[None] + G)
        self._known_to_b_space(st)

    def _known_to_b_space(self, st):
        """A known-matrix term's rows touch every level through L (Lambda = theta L): in b-space they touch
        one, its own level j, with the value theta z_i, and the inverse's blocks become L P (and P L' and
        L P L').  The dense tail inverse and cross block are transformed once; the rest of the gradient
        then treats the term as a scalar one."""
        off = 1 if st.first is not None else 0
        for j, t in enumerate(st.tail):
            if not t.is_known:
                continue
            L = t.cov.factor
            r = slice(st.tail_off[j], st.tail_off[j + 1])
            self.S[:, r] = self.S[:, r] @ L.T
            self.S[r, :] = L @ self.S[r, :]
            if off and not self.pattern:
                self.p1t_dense[:, r] = self.p1t_dense[:, r] @ L.T

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


def laplace_gradient_general(obj, theta, beta, res, psi=None):
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
        The result of ``obj.evaluate(theta, beta, psi)``.
    psi : numpy.ndarray, optional
        The family's parameters.

    Returns
    -------
    tuple
        (dD/dtheta, dD/dbeta, dD/dpsi).
    """
    d = obj.data
    st = d.structure
    f = res.factor
    thetas = st.split_theta(theta)
    k1, Q1 = (st.first.k if st.first is not None else 0), st.Q1
    sel = SelectedInverse(st, f)

    idx, zt, pos_of, col_of = _entries(st, thetas)
    n, e = idx.shape
    # the local block of A^-1 for every row: entries 0..k1-1 are term 1's, the rest the tail's
    Ploc = np.empty((n, e, e))
    j = st.first.codes if st.first is not None else None
    if k1:
        Ploc[:, :k1, :k1] = sel.P11[j]
    tail = idx[:, k1:] - Q1
    tail_term = np.array(pos_of[k1:]) - (1 if st.first is not None else 0)  # each tail entry's term in the tail
    for c in range(k1):
        for ee in range(e - k1):
            Ploc[:, c, k1 + ee] = sel.cross(j * k1 + c, tail[:, ee], tail_term[ee], st.row_pattern_positions)
    Ploc[:, k1:, :k1] = np.transpose(Ploc[:, :k1, k1:], (0, 2, 1))
    for a_ in range(e - k1):
        for b_ in range(e - k1):
            Ploc[:, k1 + a_, k1 + b_] = sel.tail(tail[:, a_], tail[:, b_])
    y = np.matmul(Ploc, zt[:, :, None])[:, :, 0]  # (A^-1 Lambda'z_i) on the touched coordinates
    h = np.sum(zt * y, axis=1)

    r, w_l, dw_l, w_o, terms_psi = gradient_terms(obj, res, psi)
    w = w_l
    g = dw_l * h
    # the mode moves with A_O (a second factor when the observed information differs from W_L)
    f_o = f if w_o is w_l else st.factor(st.raw(w_o, None), theta)
    a = f_o.solve(st.lam_zt(theta, g))  # A_O^-1 Lambda'Z'g
    z_a = st.zlam_u(theta, a)
    X = d.X
    grad_b = -2 * (X.T @ r) + X.T @ g - X.T @ (w_o * z_a)

    # theta, per layout term, back in the model's order
    sizes = [t.cov.n_theta for t in st._orig_terms()]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    grad_t = np.zeros(len(theta))
    u = res.u
    entry_of = {(p, c): i for i, (p, c) in enumerate(zip(pos_of, col_of))}
    for pos, t in enumerate(st.terms):
        U = u[st.u_off[pos] : st.u_off[pos + 1]].reshape(t.q, t.k)
        A_ = a[st.u_off[pos] : st.u_off[pos + 1]].reshape(t.q, t.k)
        if t.is_known:  # b-space (SelectedInverse._known_to_b_space): dEta/dtheta = z (L u)_j
            U, A_ = t.cov.factor @ U, t.cov.factor @ A_
        base = starts[st.order[pos]]
        # dD/dT[ra, cb] = sum_i x_i[ra] ((g - 2 r - w_O Z Lambda a)_i u_j[cb] + 2 w_i y_i[cb] + a_j[cb] r_i)
        Y = y[:, [entry_of[(pos, c)] for c in range(t.k)]]
        v = g - 2 * r - z_a * w_o
        GT = t.X.T @ (v[:, None] * U[t.codes] + 2 * w[:, None] * Y + r[:, None] * A_[t.codes])
        th = theta[base : base + t.cov.n_theta]
        grad_t[base : base + t.cov.n_theta] = _factor_gradient(t.cov, th, GT)
    return grad_t, grad_b, _psi_gradient(terms_psi, h, z_a) if terms_psi else np.zeros(0)


# ----------------------------------------------------------------------------------------------
# adaptive Gauss-Hermite quadrature (nAGQ > 1, one scalar term)
# ----------------------------------------------------------------------------------------------

def supports_agq_gradient(obj) -> bool:
    """Whether the analytic gradient of the AGQ deviance applies (nagq > 1: one scalar term; a family
    without its own parameters that gives the gradient's terms under the expected Laplace).

    Parameters
    ----------
    obj : GlmmObjective
        The objective.

    Returns
    -------
    bool
        True when ``agq_gradient`` may be used.
    """
    st = obj.data.structure
    return (obj.nagq > 1 and isinstance(st, Structure) and len(st.terms) == 1 and st.terms[0].k == 1
            and not st.terms[0].is_known and obj.n_psi == 0 and obj.laplace == "expected"
            and family_supports_gradient(obj))


def agq_gradient(obj, theta, beta, res):
    """The analytic gradient of the AGQ -2 log L (objective.py) for one scalar term.

    Per level j with nodes U_jk = u_j + x_k / s_j, s_j^2 = theta^2 sum_i W_L,i z_i^2 + 1 and softmax
    weights pi_jk of the quadrature sum,

        d log I_j / dphi = -ds_j/dphi / s_j + sum_k pi_jk [dLL_jk/dphi |_U + (theta R_jk - U_jk) dU_jk/dphi],

    R_jk = sum_i r_i(eta_ijk) z_i, dU_jk = du_j - x_k ds_j / s_j^2; du_j/dphi = c_j / a_j from the mode's
    condition (a_j = theta^2 sum W_O z^2 + 1) and ds_j from W_L's change along the mode
    (W'_L dEta-hat).  The nodes' sums are (q x n) indicator products of (n x K) arrays.

    Parameters
    ----------
    obj : GlmmObjective
        The objective (``supports_agq_gradient(obj)``).
    theta, beta : numpy.ndarray
        The point.
    res : PirlsResult
        The result of ``obj.evaluate(theta, beta)``.

    Returns
    -------
    tuple
        (dD/dtheta, dD/dbeta, dD/dpsi (empty), (q, 1 + p) Jacobian of u-hat).
    """
    d = obj.data
    fam = d.family
    t = d.structure.terms[0]
    z, codes, q = t.X[:, 0], t.codes, t.q
    th = float(theta[0])
    ind = obj._indicator  # (q, n)
    X = d.X
    p = X.shape[1]
    nodes = obj._nodes
    u = res.u
    s = res.factor.L11[:, 0, 0]
    r_hat, w_l, dw_l, w_o, _ = gradient_terms(obj, res)
    # the mode's move: du/dphi = c / a
    a = th * th * np.bincount(codes, weights=w_o * z * z, minlength=q) + 1.0
    c_th = np.bincount(codes, weights=z * r_hat, minlength=q) - th * np.bincount(codes, weights=w_o * z * z,
                                                                             minlength=q) * u
    c_b = -th * np.asarray(ind @ ((w_o * z)[:, None] * X)) if p else np.zeros((q, 0))  # (q, p)
    du_th, du_b = c_th / a, c_b / a[:, None]
    # s_j's move: d(s^2) = 2 theta G_L [theta only] + theta^2 sum W'_L z^2 deta-hat
    GL = np.bincount(codes, weights=w_l * z * z, minlength=q)
    H3 = np.bincount(codes, weights=dw_l * z ** 3, minlength=q)
    H2X = np.asarray(ind @ ((dw_l * z * z)[:, None] * X)) if p else np.zeros((q, 0))
    ds2_th = 2 * th * GL + th * th * H3 * (u + th * du_th)
    ds2_b = th * th * (H2X + H3[:, None] * th * du_b)
    ds_th, ds_b = ds2_th / (2 * s), ds2_b / (2 * s)[:, None]
    # the nodes, as the objective left them
    U, eta, mu, g = res.agq_nodes
    yk, wk = d.y[:, None], d.wt[:, None]
    pi = np.exp(g - g.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    rk = fam.score_eta(yk, eta, mu, wk)  # (n, K)
    R = np.asarray(ind @ (rk * z[:, None]))  # (q, K)
    slope = th * R - U  # d g_jk / dU_jk
    # theta: dLL/dtheta |_U = R U
    dU_th = du_th[:, None] - nodes[None, :] * (ds_th / s ** 2)[:, None]
    dlogI_th = -ds_th / s + np.sum(pi * (R * U + slope * dU_th), axis=1)
    grad_t = np.array([-2 * float(np.sum(dlogI_th))])
    grad_b = np.zeros(p)
    for j in range(p):
        B = np.asarray(ind @ (rk * X[:, j][:, None]))  # dLL/dbeta_j |_U
        dU = du_b[:, j][:, None] - nodes[None, :] * (ds_b[:, j] / s ** 2)[:, None]
        grad_b[j] = -2 * float(np.sum(-ds_b[:, j] / s + np.sum(pi * (B + slope * dU), axis=1)))
    J = np.column_stack([du_th, du_b])
    return grad_t, grad_b, np.zeros(0), J
