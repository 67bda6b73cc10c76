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

from .blocked import level_gram

CANONICAL = {("binomial", "logit"), ("poisson", "log")}


def supports_gradient(obj) -> bool:
    """The fast analytic gradient applies: one non-known term, no trailing block, canonical link, Laplace."""
    d = obj.data
    st = d.structure
    fam = d.family
    return (len(st.terms) == 1 and not st.terms[0].is_known and st.Qtt == 0 and obj.nagq <= 1
            and obj.n_psi == 0 and (fam.name, fam.link.name) in CANONICAL
            and type(fam).__name__ in ("Binomial", "Poisson"))


def _w_prime(fam, mu, wt):
    if fam.name == "binomial":
        return wt * mu * (1 - mu) * (1 - 2 * mu)
    return wt * mu


def laplace_gradient(obj, theta, beta, res, du: bool = False):
    """(dD/dtheta, dD/dbeta) at the PIRLS result ``res`` of ``obj.evaluate(theta, beta)``; with ``du=True``
    also d u-hat / d(theta, beta) as a (Q, n_theta + p) matrix (a first-order warm start for PIRLS)."""
    d = obj.data
    fam = d.family
    t = d.structure.terms[0]
    k, q = t.k, t.q
    codes, Z = t.codes, t.X
    T = t.cov.template(theta)
    U = res.u.reshape(q, k)
    mu, w = res.mu, res.w
    r = d.wt * (d.y - mu)
    G = level_gram(t, w)  # (q, k, k)
    Linv = res.factor.L11inv  # (q, k, k): A_j = L L'
    Ainv = np.einsum("qki,qkj->qij", Linv, Linv)
    P = np.einsum("ab,qbc,dc->qad", T, Ainv, T)  # T A^-1 T'
    h = np.einsum("ia,iab,ib->i", Z, P[codes], Z)
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
        # d eta / d T[ra, cb_] |_u = x_i[ra] u_j[cb_]
        deta = Z[:, ra] * U[codes, cb_]
        val = -2 * float(r @ deta) + float(g @ deta)
        val += 2 * float(np.sum(AtG[:, cb_, ra]))
        c = -TtG[:, :, ra] * U[:, cb_][:, None]
        c[:, cb_] += s_lev[:, ra]
        val += float(np.sum(a * c))
        grad_t[idx] = val
        if du:
            J[:, idx] = np.einsum("qab,qb->qa", Ainv, c).ravel()
    return (grad_t, grad_b, J) if du else (grad_t, grad_b)
