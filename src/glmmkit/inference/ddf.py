"""Denominator degrees of freedom for a linear mixed model's fixed effects: Satterthwaite's (lmerTest's
method) and Kenward-Roger's (pbkrtest's adjusted covariance).

Satterthwaite.  The variance parameters are varpar = (theta, sigma).  With beta profiled out,

    D(theta, sigma) = log|L_theta|^2 + r^2(theta) / sigma^2 + n log(2 pi sigma^2)
                      [REML: + log|R_X|^2 - p log(2 pi sigma^2)]

and A = 2 H^-1 (H the Hessian of D at the estimates) is the asymptotic covariance of varpar.  For a
contrast l, var(l'beta) = l' V(varpar) l with V = sigma^2 (R_X'R_X)^-1, its gradient g_k = l' dV/dvarpar_k l,
and

    df = 2 (l' V l)^2 / (g' A g).

An F test of q rows L uses the eigenvectors of L V L': one df nu_m per direction, and
den_df = 2E / (E - q) with E = sum nu_m / (nu_m - 2) (2 when some nu_m <= 2), as lmerTest does.
The derivatives are Richardson-extrapolated differences (engine/numderiv.py), as numDeriv's in lmerTest.

Kenward-Roger.  With Sigma = sum_r gamma_r G_r the marginal covariance of y, linear in the variance
components gamma (each term's covariance entries and sigma^2), P_r = -X' Sigma^-1 G_r Sigma^-1 X,
Q_rs = X' Sigma^-1 G_r Sigma^-1 G_s Sigma^-1 X and W = 2 I_E^-1 (the expected information of gamma),

    V_A = Phi + 2 Phi [sum_rs W_rs (Q_rs - P_r Phi P_s)] Phi,     Phi = (X' Sigma^-1 X)^-1,

and the F statistic of L is scaled by lambda and referred to F(q, m) (Kenward & Roger 1997; the formulas of
pbkrtest's ``vcovAdj`` and ``.KR_adjust``), computed in the random effects' space (Q x Q; pbkrtest holds
n x n matrices): refused above ``MAX_KR_LEVELS`` random effects (use Satterthwaite there).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..engine.covariance import Diagonal, KnownMatrix, Unstructured
from ..engine.numderiv import hessian, jacobian
from ..errors import InputError

#: Kenward-Roger holds Q x Q matrices (Q random effects): refused above this many
MAX_KR_LEVELS = 8000
#: eigenvalues of the deviance's Hessian below this are dropped from its inverse (lmerTest's tol)
HESSIAN_TOL = 1e-8


def lmm_only(fit, what: str) -> None:
    """Refuse a method that needs a linear mixed model fitted by ``lmer``.

    Parameters
    ----------
    fit : Fit
        The fit.
    what : str
        The method, for the message.
    """
    if not fit.is_lmm:
        raise InputError(f"{what} degrees of freedom are for linear mixed models (lmer fits); this "
                         f"{fit.family.name} GLMM's tests are asymptotic (ddf='asymptotic')")


class Satterthwaite:
    """lmerTest's pieces at an LMM's estimates: the covariance of varpar = (theta, sigma) and the Jacobian of
    vcov(beta) in varpar.

    Parameters
    ----------
    fit : Fit
        An ``lmer`` fit.
    """

    def __init__(self, fit):
        lmm_only(fit, "Satterthwaite")
        self.obj = fit.optsummary.objective
        self.p = fit.spec.p
        self.vcov = np.asarray(fit._vcov, dtype=float)
        self.varpar = np.r_[fit.theta, fit.sigma]
        self.messages: list[str] = []
        # theta are relative standard deviations (order 0.1 to 10): steps relative to at least 0.1 of them
        floor = np.r_[np.full(len(fit.theta), 0.1), 0.0]
        H = hessian(self._deviance, self.varpar, floor=floor)
        evals, evecs = np.linalg.eigh((H + H.T) / 2)
        pos = evals > HESSIAN_TOL
        if np.any(evals < -HESSIAN_TOL):
            self.messages.append(f"the deviance's Hessian in (theta, sigma) has {int(np.sum(evals < -HESSIAN_TOL))} "
                                 "negative eigenvalue(s): the variance parameters may not be at an optimum")
        self.vcov_varpar = 2 * (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
        J = jacobian(self._vcov_beta, self.varpar, floor=floor)
        self.jac = [J[:, k].reshape(self.p, self.p) for k in range(J.shape[1])]

    def _deviance(self, varpar) -> float:
        theta, s2 = varpar[:-1], varpar[-1] ** 2
        try:
            f = self.obj.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        n, p = self.obj.n, self.p
        dev = f.logdet_re() + f.Lt[-1, -1] ** 2 / s2 + n * np.log(2 * np.pi * s2)
        if self.obj.reml:
            dev += f.logdet_tail(0, p) - p * np.log(2 * np.pi * s2)
        return float(dev)

    def _vcov_beta(self, varpar) -> np.ndarray:
        f = self.obj.factor(varpar[:-1])
        return varpar[-1] ** 2 * self.obj.unscaled_vcov(f)

    def df(self, l: np.ndarray) -> float:
        """Satterthwaite's df of one contrast.

        Parameters
        ----------
        l : numpy.ndarray
            (p,) the contrast.

        Returns
        -------
        float
            2 (l'Vl)^2 / (g' A g).
        """
        var = float(l @ self.vcov @ l)
        g = np.array([l @ J @ l for J in self.jac])
        den = float(g @ self.vcov_varpar @ g)
        return 2 * var**2 / den if den > 0 else np.inf

    def f_test(self, L: np.ndarray, beta: np.ndarray) -> tuple[float, int, float]:
        """lmerTest's F test of L beta = 0.

        Parameters
        ----------
        L : numpy.ndarray
            (q, p) the hypothesis.
        beta : numpy.ndarray
            (p,) the estimates (less ginv(L) rhs for a non-zero right-hand side).

        Returns
        -------
        tuple
            (F, numerator df, denominator df).
        """
        d, P = np.linalg.eigh(L @ self.vcov @ L.T)
        order = np.argsort(d)[::-1]
        d, P = d[order], P[:, order]
        pos = d > max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
        q = int(np.sum(pos))
        if q == 0:
            return np.nan, 0, np.nan
        PtL = P[:, :q].T @ L
        t2 = (PtL @ beta) ** 2 / d[:q]
        nu = np.array([self.df(PtL[m]) for m in range(q)])
        return float(np.sum(t2) / q), q, f_statistic_ddf(nu)


def f_statistic_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """The denominator df of an F test from the df of its q orthogonal directions (lmerTest's rule).

    Parameters
    ----------
    nu : numpy.ndarray
        (q,) Satterthwaite df of each direction.
    tol : float
        Directions whose df all agree to this are averaged.

    Returns
    -------
    float
        nu itself for q = 1; 2 if any nu <= 2; else 2E / (E - q) with E = sum nu / (nu - 2).
    """
    nu = np.asarray(nu, dtype=float)
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - len(nu))


def variance_components(fit):
    """The random-effects columns of an LMM and its variance components, for Kenward-Roger.

    Sigma = sigma^2 W^-1 + sum_r gamma_r Z E_r Z' with Z the raw columns of all terms (per term, per coefficient a,
    per level) and E_r selecting the entries (a, b) of a term's covariance (Z_a Z_b' + Z_b Z_a'), or a known
    covariance K over the term's levels.

    Parameters
    ----------
    fit : Fit
        An ``lmer`` fit whose terms' covariances are linear in their entries (lme4's unstructured and
        diagonal terms, known-covariance terms).

    Returns
    -------
    tuple
        (Z sparse (n, Q), Lambda sparse (Q, Q) with Z Lambda Lambda' Z' sigma^2 the random part of Sigma, the list
        of sparse (Q, Q) selectors E_r, gamma: per term the lower-triangle entries of its covariance column by
        column, then sigma^2 for the residual).
    """
    import scipy.sparse as sp

    n = fit.spec.n
    rows = np.arange(n)
    s2 = fit.sigma**2
    blocks, lams, sel_parts, gamma = [], [], [], []
    off = 0
    for t, th in zip(fit._all_terms, fit._theta_by_term()):
        cov = t.cov
        if isinstance(cov, KnownMatrix):
            blocks.append(sp.csr_matrix((t.X[:, 0], (rows, t.codes)), shape=(n, t.q)))
            lams.append(sp.csr_matrix(float(th[0]) * cov.factor))
            sel_parts.append((off, t.q, [(0, 0, sp.csr_matrix(cov.factor @ cov.factor.T))]))
            gamma.append(s2 * float(th[0]) ** 2)
            off += t.q
            continue
        if type(cov) not in (Unstructured, Diagonal):
            raise InputError(f"Kenward-Roger needs covariances linear in their parameters; the term {t.label} has "
                             f"a {type(cov).__name__} structure: use ddf='satterthwaite'")
        T = cov.template(th)
        C = s2 * T @ T.T
        for a in range(t.k):  # columns ordered (coefficient, level): Lambda = T kron I_q
            blocks.append(sp.csr_matrix((t.X[:, a], (rows, t.codes)), shape=(n, t.q)))
        lams.append(sp.kron(sp.csr_matrix(T), sp.identity(t.q)).tocsr())
        entries = []
        for b in range(t.k):
            for a in range(b, t.k):
                if a != b and isinstance(cov, Diagonal):
                    continue
                entries.append((a, b, None))
                gamma.append(C[a, b])
        sel_parts.append((off, t.q, entries))
        off += t.k * t.q
    Z = sp.hstack(blocks).tocsc() if blocks else sp.csc_matrix((n, 0))
    Lam = sp.block_diag(lams).tocsr() if lams else sp.csr_matrix((0, 0))
    E = []
    for start, q, entries in sel_parts:
        for a, b, K in entries:
            if K is not None:  # a known covariance over the term's levels
                Er = sp.lil_matrix((off, off))
                Er[start:start + q, start:start + q] = K
            else:
                ia, ib = start + a * q + np.arange(q), start + b * q + np.arange(q)
                rr = np.r_[ia, ib] if a != b else ia
                cc = np.r_[ib, ia] if a != b else ia
                Er = sp.csr_matrix((np.ones(len(rr)), (rr, cc)), shape=(off, off))
            E.append(sp.csr_matrix(Er))
    gamma.append(s2)
    return Z, Lam, E, np.asarray(gamma)


class KenwardRoger:
    """pbkrtest's adjusted covariance of the fixed effects of an LMM fitted by REML, with the pieces of
    its F test.

    Everything is computed in the random effects' space (Q x Q), never n x n: with S = Sigma^-1 =
    (W - W Z~ F^-1 Z~' W) / sigma^2 (Woodbury; Z~ = Z Lambda, F = Z~'WZ~ + I, the penalised system),
    K = Z'SZ, C = Z'SX,

        P_r = -C' E_r C,   Q_rs = C' E_r K E_s C,   tr(G_r S G_s S) = tr(E_r K E_s K),

    and the residual component (G = W^-1) through S X, W^-1 S X and S W^-1 S X (n x p) and
    tr((S W^-1)^2) = (n - 2 tr(F^-1 A) + tr((F^-1 A)^2)) / sigma^4, A = Z~'WZ~.

    Parameters
    ----------
    fit : Fit
        An ``lmer`` fit by REML with positive weights and at most ``MAX_KR_LEVELS`` random effects.
    """

    def __init__(self, fit):
        lmm_only(fit, "Kenward-Roger")
        if not fit.reml:
            raise InputError("Kenward-Roger's method is for REML fits (as lmerTest and pbkrtest): refit with "
                             "reml=True, or use ddf='satterthwaite'")
        if np.any(fit.spec.wt <= 0):
            raise InputError("Kenward-Roger needs positive weights on every row")
        Z, Lam, E, gamma = variance_components(fit)
        Q = Z.shape[1]
        if Q > MAX_KR_LEVELS:
            raise InputError(f"Kenward-Roger holds Q x Q matrices; this model has {Q} random effects (limit "
                             f"{MAX_KR_LEVELS}): use ddf='satterthwaite'")
        X, w, s2, n = fit.spec.X, fit.spec.wt, fit.sigma**2, fit.spec.n
        WZ = Z.multiply(w[:, None]).tocsc()
        Hr = (Z.T @ WZ).toarray()  # Z'WZ
        ZWX = np.asarray(WZ.T @ X)  # Z'WX
        LH = np.asarray(Lam.T @ Hr)  # Lambda'Z'WZ
        A = np.asarray(LH @ Lam)  # Z~'WZ~
        Fi = np.linalg.inv(np.eye(Q) + A)
        HLF = LH.T @ Fi  # Z'WZ~ F^-1
        K = (Hr - HLF @ LH) / s2
        C = (ZWX - HLF @ (Lam.T @ ZWX)) / s2

        def S_apply(Y):
            WY = w[:, None] * Y
            return (WY - w[:, None] * np.asarray(Z @ (Lam @ (Fi @ (Lam.T @ np.asarray(Z.T @ WY)))))) / s2

        V1 = S_apply(X)  # S X
        R1 = V1 / w[:, None]  # W^-1 S X
        V2 = S_apply(R1)  # S W^-1 S X
        ZV2 = np.asarray(Z.T @ V2)
        # Z' S W^-1 S Z = (Hr - 2 Z'WZ~ F^-1 Z~'WZ + Z'WZ~ F^-1 A F^-1 Z~'WZ) / sigma^4
        Ke = (Hr - 2 * HLF @ LH + HLF @ A @ HLF.T) / s2**2
        FA = Fi @ A
        m = len(gamma)
        e = m - 1  # the residual component is last
        EC = [Er @ C for Er in E]  # (Q, p)
        EK = [np.asarray(Er @ K) for Er in E]  # (Q, Q)
        P = [-(C.T @ ec) for ec in EC] + [-(V1.T @ R1)]
        P = [(Pr + Pr.T) / 2 for Pr in P]
        Qm = {}
        for r in range(e):
            for s_ in range(r, e):
                Qm[r, s_] = EC[r].T @ (K @ EC[s_])
            Qm[r, e] = EC[r].T @ ZV2
        Qm[e, e] = R1.T @ V2
        Ktr = np.empty((m, m))
        for r in range(e):
            for s_ in range(r, e):
                Ktr[r, s_] = Ktr[s_, r] = float(np.sum(EK[r] * EK[s_].T))
            Ktr[r, e] = Ktr[e, r] = float(np.asarray(E[r].multiply(Ke).sum()))
        Ktr[e, e] = (n - 2 * np.trace(FA) + np.sum(FA * FA.T)) / s2**2
        Phi = np.asarray(fit._vcov, dtype=float)
        IE2 = np.empty((m, m))
        for r in range(m):
            PhiPr = Phi @ P[r]
            for s_ in range(r, m):
                IE2[r, s_] = IE2[s_, r] = (Ktr[r, s_] - 2 * float(np.sum(Phi * Qm[r, s_]))
                                           + float(np.sum(PhiPr * (P[s_] @ Phi))))
        condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
        W = 2 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
        W = (W + W.T) / 2
        U = np.zeros_like(Phi)
        for r in range(m - 1):
            for s_ in range(r + 1, m):
                U += W[r, s_] * (Qm[r, s_] - P[r] @ Phi @ P[s_])
        U = U + U.T
        for r in range(m):
            U += W[r, r] * (Qm[r, r] - P[r] @ Phi @ P[r])
        self.phi = Phi
        self.vcov_adjusted = Phi + 2 * Phi @ U @ Phi
        self.P, self.W = P, W

    def adjust(self, L: np.ndarray, beta: np.ndarray) -> dict:
        """The Kenward-Roger F test of L beta = 0 (pbkrtest's ``.KR_adjust``).

        Parameters
        ----------
        L : numpy.ndarray
            (q, p) of full row rank.
        beta : numpy.ndarray
            (p,) the estimates less the hypothesised values.

        Returns
        -------
        dict
            ``F`` (scaled), ``num_df``, ``den_df``, ``scaling`` and the unscaled ``F_unscaled``.
        """
        Phi, PhiA = self.phi, self.vcov_adjusted
        q = L.shape[0]
        try:
            Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        except np.linalg.LinAlgError:  # L beta has no variance: nothing to test
            return {"F": np.nan, "num_df": q, "den_df": np.nan, "scaling": np.nan, "F_unscaled": np.nan}
        TP = Theta @ Phi
        u = [TP @ Pr @ Phi for Pr in self.P]
        A1 = A2 = 0.0
        m = len(self.P)
        for i in range(m):
            for j in range(i, m):
                e = 1.0 if i == j else 2.0
                A1 += e * self.W[i, j] * np.trace(u[i]) * np.trace(u[j])
                A2 += e * self.W[i, j] * float(np.sum(u[i] * u[j].T))
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0, V1, V2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
        V0 = 0.0 if abs(V0) < 1e-10 else V0
        ratio = (1 - A2 / q) / V1 if abs(V1) >= 1e-14 else 0.0
        rho = ratio**2 * V0 / V2 / q
        df2 = 4 + (q + 2) / (q * rho - 1)
        scaling = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
        Lb = L @ beta
        wald = float(Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb))
        return {"F": scaling * wald / q, "num_df": q, "den_df": float(df2), "scaling": float(scaling),
                "F_unscaled": wald / q}
