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
pbkrtest's ``vcovAdj`` and ``.KR_adjust``).  Sigma is dense (n x n): Kenward-Roger is refused above
``MAX_KR_ROWS`` rows (use Satterthwaite there).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..engine.covariance import Diagonal, KnownMatrix, Unstructured
from ..engine.numderiv import hessian, jacobian
from ..errors import InputError

#: Kenward-Roger holds n x n matrices, one per variance component: refused above this many rows
MAX_KR_ROWS = 5000
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


def _same_level(codes: np.ndarray) -> np.ndarray:
    return (codes[:, None] == codes[None, :]).astype(float)


def variance_components(fit) -> tuple[list[np.ndarray], np.ndarray]:
    """The marginal covariance of y as sum_r gamma_r G_r, linear in the variance components.

    Parameters
    ----------
    fit : Fit
        An ``lmer`` fit whose terms' covariances are linear in their entries (lme4's unstructured and
        diagonal terms, known-covariance terms).

    Returns
    -------
    tuple
        (list of dense (n, n) G_r, gamma): per term the lower-triangle entries of its covariance (column by
        column), then the residual variance with G = diag(1 / weights).
    """
    G, gamma = [], []
    s2 = fit.sigma**2
    for t, th in zip(fit._all_terms, fit._theta_by_term()):
        cov = t.cov
        if isinstance(cov, KnownMatrix):
            K = cov.factor @ cov.factor.T
            x = t.X[:, 0]
            G.append(K[np.ix_(t.codes, t.codes)] * np.outer(x, x))
            gamma.append(s2 * float(th[0]) ** 2)
            continue
        if type(cov) not in (Unstructured, Diagonal):
            raise InputError(f"Kenward-Roger needs covariances linear in their parameters; the term {t.label} has "
                             f"a {type(cov).__name__} structure: use ddf='satterthwaite'")
        T = cov.template(th)
        C = s2 * T @ T.T
        same = _same_level(t.codes)
        for b in range(t.k):
            for a in range(b, t.k):
                if a != b and isinstance(cov, Diagonal):
                    continue
                xa, xb = t.X[:, a], t.X[:, b]
                outer = np.outer(xa, xa) if a == b else np.outer(xa, xb) + np.outer(xb, xa)
                G.append(same * outer)
                gamma.append(C[a, b])
    G.append(np.diag(1.0 / fit.spec.wt))
    gamma.append(s2)
    return G, np.asarray(gamma)


class KenwardRoger:
    """pbkrtest's adjusted covariance of the fixed effects of an LMM fitted by REML, with the pieces of
    its F test.

    Parameters
    ----------
    fit : Fit
        An ``lmer`` fit by REML with at most ``MAX_KR_ROWS`` rows and positive weights.
    """

    def __init__(self, fit):
        lmm_only(fit, "Kenward-Roger")
        if not fit.reml:
            raise InputError("Kenward-Roger's method is for REML fits (as lmerTest and pbkrtest): refit with "
                             "reml=True, or use ddf='satterthwaite'")
        n = fit.spec.n
        if n > MAX_KR_ROWS:
            raise InputError(f"Kenward-Roger holds n x n matrices; this model has {n} rows (limit {MAX_KR_ROWS}): "
                             "use ddf='satterthwaite'")
        if np.any(fit.spec.wt <= 0):
            raise InputError("Kenward-Roger needs positive weights on every row")
        X = fit.spec.X
        G, gamma = variance_components(fit)
        Sigma = sum(g * Gr for g, Gr in zip(gamma, G))
        cf = sla.cho_factor(Sigma, lower=True)
        Sinv = sla.cho_solve(cf, np.eye(n))
        Phi = np.asarray(fit._vcov, dtype=float)
        TT = Sinv @ X
        HH = [Gr @ Sinv for Gr in G]
        OO = [H @ X for H in HH]
        m = len(G)
        P = []
        for r in range(m):
            Pr = -OO[r].T @ TT
            P.append((Pr + Pr.T) / 2)
        SO = [Sinv @ O for O in OO]
        Q = {(r, s): OO[r].T @ SO[s] for r in range(m) for s in range(r, m)}
        IE2 = np.empty((m, m))
        for r in range(m):
            PhiPr = Phi @ P[r]
            for s in range(r, m):
                ktrace = float(np.sum(HH[r].T * HH[s]))  # tr(H_r H_s)
                IE2[r, s] = IE2[s, r] = (ktrace - 2 * float(np.sum(Phi * Q[r, s]))
                                         + float(np.sum(PhiPr * (P[s] @ Phi))))
        condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
        W = 2 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
        W = (W + W.T) / 2
        U = np.zeros_like(Phi)
        for r in range(m - 1):
            for s in range(r + 1, m):
                U += W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s])
        U = U + U.T
        for r in range(m):
            U += W[r, r] * (Q[r, r] - P[r] @ Phi @ P[r])
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
