"""Analytic gradient of the profiled ML deviance and REML criterion of a linear mixed model.

With A = Lambda'Z'WZ Lambda + I and the dense columns [X, y] appended, the profiled deviance is

    ML:   d(theta) = log det A + n log r^2 + const,
    REML: d(theta) = log det F + (n - p) log r^2 + const,   F = [A, Lambda'Z'WX; X'WZ Lambda, X'WX],

with r^2 the penalised residual sum of squares at the joint solution (u, beta).  For a parameter theta_c
of term j, whose factor is Lambda_j = I_(q_j) (x) T_j (or theta L for a known matrix), write
K_c = T_j^-1 dT_j/dtheta_c.  Because Lambda'Z'WZ Lambda = A - I,

    d log det A / dtheta_c = 2 tr(A^-1 Lambda'Z'WZ dLambda) = 2 [q_j tr(K_c) - sum_l tr(B_l K_c)],

B_l the diagonal blocks of A^-1 (ML) or of the random-effects part of F^-1 (REML: the same identity with
F, since the X block carries no Lambda).  By the envelope theorem and the normal equations
Lambda'Z'W r = u,

    d r^2 / dtheta_c = -2 sum_l u_l' K_c u_l.

The blocks B_l come from the blocked factor without a per-row pass: with F restricted to the leading
variables, L = [[L11, 0], [M', Lt]] and S^-1 = (Lt Lt')^-1,

    term 1:    B_l = L11_l^-T (I + V_l V_l') L11_l^-1,  V = M Lt^-T,
               so sum_l tr(B_l K) = sum_l tr(H_l) + sum_l tr(H_l M_l S^-1 M_l'),  H_l = L11_l^-1 K L11_l^-T;
    the tail:  B_l = the term's diagonal blocks of S^-1.

M_l S^-1 M_l' is one k1 x k1 block per level: a sum over the observed pairs of each row of a sparse M
(``SchurPairs.row_quadratic``) or one product with a dense M.  One gradient costs an inverse of the
trailing block (LAPACK potri) and about one Schur update.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .blocked import Structure, level_sandwich, symmetric_from_lower
from .covariance import Diagonal, Unstructured


def supports_lmm_gradient(obj) -> bool:
    """Whether the analytic gradient applies to an LMM objective.

    Parameters
    ----------
    obj : LmmObjective
        The profiled objective.

    Returns
    -------
    bool
        True for the blocked system (any covariance class: dT/dtheta is the class's ``factor_derivatives``).
    """
    st = obj.structure
    return isinstance(st, Structure) and all(t.cov.system is None for t in st.terms)


def _first_term_quadratic(st, f, raw, thetas, S0_lower: np.ndarray, n_x: int) -> np.ndarray:
    """G_l = M0_l S0 M0_l' per level of term 1, M0 = [Mt, MD[:, :n_x]]: (q1, k1, k1).

    S0 is given by its lower triangle; the pairs' path reads only that, the dense paths symmetrise it.
    """
    q1, k1, Qtt = st.first.q, st.first.k, st.Qtt
    G = np.zeros((q1, k1, k1))
    Mt = f.Mt
    pairs = Mt is not None and not isinstance(Mt, np.ndarray) and raw.pair_products is not None
    S0 = None if pairs and n_x == 0 else symmetric_from_lower(S0_lower)
    if Mt is not None and Qtt:
        if pairs:
            # M = diag(b) C1t Lambda_t: M_r S M_r' = b_r^2 C_r (Lambda_t S Lambda_t) C_r'
            lam = st.tail_lambda_diag(thetas)
            b = f.L11inv[:, 0, 0] * float(thetas[0][0])
            # Lambda_t S Lambda_t, made C-ordered (the pairs' gather reads it by rows without a copy)
            SL = np.multiply(S0_lower[:Qtt, :Qtt], lam[:, None], order="C")
            SL *= lam[None, :]
            G[:, 0, 0] += b * b * st._schur_pairs.row_quadratic(raw.pair_products, SL, st.Q1)
        else:
            Y = np.asarray(Mt @ S0[:Qtt, :Qtt])  # (Q1, Qtt), dense
            Md = Mt if isinstance(Mt, np.ndarray) else Mt.toarray()
            G += np.einsum("qim,qjm->qij", Y.reshape(q1, k1, Qtt), Md.reshape(q1, k1, Qtt))
    if n_x:
        MX = f.MD[:, :n_x].reshape(q1, k1, n_x)
        if Mt is not None and Qtt:
            # the cross terms M_t S_tX MX' and their transposes
            Y = np.asarray(Mt @ S0[:Qtt, Qtt:]).reshape(q1, k1, n_x)
            c = np.einsum("qim,qjm->qij", Y, MX)
            G += c + np.transpose(c, (0, 2, 1))
        G += np.einsum("qim,mn,qjn->qij", MX, S0[Qtt:, Qtt:], MX)
    return G


def lmm_gradient(obj, theta) -> tuple[float, np.ndarray]:
    """The profiled (RE)ML deviance and its analytic gradient in theta.

    Parameters
    ----------
    obj : LmmObjective
        The profiled objective (``supports_lmm_gradient(obj)``).
    theta : numpy.ndarray
        Variance parameters (the formula's order of terms).

    Returns
    -------
    tuple
        (value, gradient); (inf, None) where the system is not positive definite. The gradient is None
        where it is not defined analytically (a vector term's singular T): the caller takes differences.
    """
    theta = np.asarray(theta, dtype=float)
    st = obj.structure
    try:
        f = obj.factor(theta)
    except np.linalg.LinAlgError:
        return np.inf, None
    obj.fevals += 1
    value = obj.value_from_factor(f)
    p = obj.p
    n_x = p if obj.reml else 0
    nr = obj.n - p if obj.reml else obj.n
    r2 = f.Lt[-1, -1] ** 2
    u = f.solve_last_column()[: st.Q]
    n0 = st.Qtt + n_x
    try:
        S0 = f.tail_inverse_lower(n0)
    except np.linalg.LinAlgError:
        return value, None
    thetas = st.split_theta(theta)
    sizes = [t.cov.n_theta for t in st._orig_terms()]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    grad = np.zeros(len(theta))
    G = None
    for pos, (t, th) in enumerate(zip(st.terms, thetas)):
        base = starts[st.order[pos]]
        ut = u[st.u_off[pos] : st.u_off[pos + 1]]
        is_first = pos == 0 and st.first is not None
        if not is_first:
            o = st.tail_off[pos - (1 if st.first is not None else 0)]
            blk = S0[o : o + t.size, o : o + t.size]  # lower triangle valid: its diagonal and blocks
        if t.is_known or (t.k == 1 and type(t.cov) in (Unstructured, Diagonal)):
            # Lambda_j = theta (I or L): K = I / theta
            th0 = float(th[0])
            if th0 == 0.0:
                continue  # the deviance is even in theta: the derivative is 0 at 0
            if is_first:
                l2inv = f.L11inv[:, 0, 0] ** 2
                if G is None:
                    G = _first_term_quadratic(st, f, obj.raw, thetas, S0, n_x)
                tr_b = float(np.sum(l2inv * (1.0 + G[:, 0, 0])))
            else:
                tr_b = float(np.trace(blk))
            dlogdet = 2.0 * (t.size - tr_b) / th0
            dr2 = -2.0 * float(ut @ ut) / th0
            grad[base] = dlogdet + nr * dr2 / r2
            continue
        T = t.cov.template(th)
        if np.any(np.abs(np.diag(T)) < 1e-12):
            return value, None
        Tinv = sla.solve_triangular(T, np.eye(t.k), lower=True)
        U = ut.reshape(t.q, t.k)
        UU = U.T @ U
        if is_first:
            if G is None:
                G = _first_term_quadratic(st, f, obj.raw, thetas, S0, n_x)
            Li = f.L11inv  # (q, k, k)
            # sum_l tr(H_l (I + G_l)), H_l = Li_l K Li_l'  ->  sum_l tr(K Li_l' (I + G_l) Li_l)
            Bsum = level_sandwich(Li, np.eye(t.k)[None] + G).sum(axis=0)
        else:
            idx = np.arange(t.size).reshape(t.q, t.k)
            # the level's k x k blocks from the lower triangle: entry (i, j), i >= j, and its mirror
            lo = np.maximum(idx[:, :, None], idx[:, None, :])
            hi = np.minimum(idx[:, :, None], idx[:, None, :])
            Bsum = blk[lo, hi].sum(axis=0)
        K = Tinv @ t.cov.factor_derivatives(th)  # (n_theta, k, k): K_c = T^-1 dT/dtheta_c
        dlogdet = 2.0 * (t.q * np.trace(K, axis1=1, axis2=2) - np.einsum("ij,cji->c", Bsum, K))
        dr2 = -2.0 * np.einsum("ij,cji->c", UU, K)
        grad[base : base + len(K)] = dlogdet + nr * dr2 / r2
    return value, grad
