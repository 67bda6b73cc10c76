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
from .blocked import level_gram

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

MAX_CROSS_INVERSE = 4_000_000  # Q1 x Qtt entries of the selected inverse held densely


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
    return (len(st.terms) > 1 and st.first is not None and st.Qtt > 0 and obj.nagq <= 1 and obj.n_psi == 0
            and _entry_theta(st.terms) and (fam.name, fam.link.name) in CANONICAL
            and type(fam).__name__ in ("Binomial", "Poisson") and st.Q1 * st.Qtt <= MAX_CROSS_INVERSE
            and st.Qtt <= 1500 and not st.tail_diagonal)


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


def laplace_gradient_general(obj, theta, beta, res):
    """The analytic gradient of the Laplace -2 log L for several terms.

    The same three parts as the single-term gradient, with A^-1 restricted to the coordinates each row
    touches: term 1's diagonal blocks, the cross block P_1t = -L11^-T V Lt^-1 (V = M Lt^-T) and the trailing
    block P_tt = (Lt Lt')^-1.

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
    import scipy.linalg as sla

    d = obj.data
    st = d.structure
    fam = d.family
    f = res.factor
    thetas = st.split_theta(theta)
    q1, k1, Q1, Qtt = st.first.q, st.first.k, st.Q1, st.Qtt
    M = f.Mt if isinstance(f.Mt, np.ndarray) else (f.Mt.toarray() if f.Mt is not None else np.zeros((Q1, Qtt)))
    Lt = f.Lt[:Qtt, :Qtt]
    Lt_inv = sla.solve_triangular(Lt, np.eye(Qtt), lower=True, check_finite=False)
    V = M @ Lt_inv.T  # M Lt^-T
    Ptt = Lt_inv.T @ Lt_inv
    VL = (V @ Lt_inv).reshape(q1, k1, Qtt)
    P1t = -np.einsum("qji,qjm->qim", f.L11inv, VL).reshape(Q1, Qtt)
    Vb = V.reshape(q1, k1, Qtt)
    P11 = np.einsum("qki,qkl,qlj->qij", f.L11inv, np.eye(k1)[None] + np.einsum("qim,qjm->qij", Vb, Vb), f.L11inv)

    idx, zt, pos_of, col_of = _entries(st, thetas)
    n, e = idx.shape
    # the local block of A^-1 for every row: entries 0..k1-1 are term 1's, the rest the tail's
    Ploc = np.empty((n, e, e))
    j = st.first.codes
    Ploc[:, :k1, :k1] = P11[j]
    tail = idx[:, k1:] - Q1
    for c in range(k1):
        Ploc[:, c, k1:] = P1t[(j * k1 + c)[:, None], tail]
    Ploc[:, k1:, :k1] = np.transpose(Ploc[:, :k1, k1:], (0, 2, 1))
    Ploc[:, k1:, k1:] = Ptt[tail[:, :, None], tail[:, None, :]]
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
