"""Likelihood profiles and profile confidence intervals (lme4's ``profile`` / ``confint(method="profile")``).

The parameters are profiled on lme4's scale: per random-effects term the standard deviations and
correlations (lme4's ``.sig01, .sig02, ...`` in the order of theta), the residual SD ``sigma`` of an
LMM, then the fixed effects (and a family's own parameters, held free but not profiled). For a value v
of parameter i the deviance -2 log L is minimised over all the others (BOBYQA from the neighbouring
solution); the signed root zeta(v) = sign(v - v_hat) sqrt(dev(v) - dev_min) is compared with normal
quantiles: the interval at level 1 - alpha is {v : |zeta(v)| <= z_{1 - alpha/2}}. An SD whose profile
does not reach the quantile before 0 gets the lower limit 0; a correlation, -1 or 1.

LMMs are profiled on the ML deviance, REML fits included (refitted by ML first), as lme4 does:
-2 log L(theta, sigma, beta) = n log(2 pi sigma^2) + log|L_theta|^2 + (r^2_theta + ||R_X (beta - beta_theta)||^2) / sigma^2.
GLMMs use the fit's own Laplace / quadrature deviance with the modes u re-solved by PIRLS.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import interpolate, stats

from ..engine.optimize import minimize
from ..errors import FitError, InputError
from ..fitting import optimize


class ProfileProblem:
    """The deviance of a fit as a function of (SDs and correlations, [sigma], beta, [psi])."""

    def __init__(self, fit):
        if not fit.estimates_finite:
            raise FitError("a likelihood profile needs finite estimates, log-likelihood and standard errors; "
                           "this fit has not: " + ("; ".join(fit.messages) or "non-finite values"))
        if fit.is_lmm and fit.reml:
            fit = _refit_ml(fit)
        self._names(fit)
        # a fresh objective of the same model: the fit's own is never called back (a Fit is immutable)
        if fit.is_lmm:
            self.obj = fit.spec.lmm_objective(reml=False)
        else:
            self.obj = fit.spec.objective(nagq=fit.nagq, laplace=fit.optsummary.laplace,
                                          quad_stop=fit.optsummary.control.quad_stop)
            self.obj.reset(u=fit._u)
        if self.is_lmm:
            self.n = self.obj.n
        self.z_hat = self._z_from_fit()
        self.dev_min = self.deviance(self.z_hat)
        se = np.sqrt(np.clip(np.diag(fit.vcov.to_numpy()), 1e-300, None))
        self.scale = np.concatenate([np.maximum(0.1 * np.abs(self.z_hat[: self.n_vc]), 0.05),
                                     [max(0.05 * fit.sigma, 1e-3)] if self.is_lmm else [], se, np.full(self.m, 0.1)])
        for i, k in enumerate(self.kinds):
            if k == "cor":
                self.scale[i] = 0.1

    def _names(self, fit) -> None:
        """Names, kinds and bounds of the parameters (no objective needed)."""
        self.fit = fit
        self.terms = fit._all_terms  # the conditional model's terms, then the zero model's
        self.is_lmm = fit.is_lmm
        keys = fit._term_keys()
        names, lower, upper, kinds = [], [], [], []
        for key, t in zip(keys, self.terms):
            # the covariance class names its natural parameters and their bounds (SDs, correlations, ...)
            lo, hi, kd = t.cov.natural_bounds()
            names += [f"{nm}|{key}" for nm in t.cov.natural_names(t.columns)]
            lower += list(lo)
            upper += list(hi)
            kinds += list(kd)
        self.n_vc = len(names)
        if self.is_lmm:
            names.append("sigma")
            lower.append(1e-10), upper.append(np.inf), kinds.append("sigma")
        self.beta_names = list(fit.fixef.index)
        names += self.beta_names
        p = len(self.beta_names)
        lower += [-np.inf] * p
        upper += [np.inf] * p
        kinds += ["beta"] * p
        self.psi = np.zeros(0) if self.is_lmm else fit._psi
        m = len(self.psi)
        names += list(fit.family.param_names()) if m else []
        lower += [-np.inf] * m
        upper += [np.inf] * m
        kinds += ["psi"] * m
        self.names, self.kinds = names, kinds
        self.lower, self.upper = np.array(lower, dtype=float), np.array(upper, dtype=float)
        self.p, self.m = p, m

    # -- parameter maps -----------------------------------------------------------------
    def _z_from_fit(self) -> np.ndarray:
        fit = self.fit
        s = fit.sigma if self.is_lmm else 1.0
        vc = [t.cov.natural(th, s) for t, th in zip(self.terms, fit._theta_by_term())]
        vc = np.concatenate(vc) if vc else np.zeros(0)
        return np.concatenate([vc, [fit.sigma] if self.is_lmm else [], np.asarray(fit._beta, dtype=float), self.psi])

    def theta(self, z) -> np.ndarray | None:
        """theta from the natural-scale parameters.

        Parameters
        ----------
        z : numpy.ndarray
            SDs, correlations (and sigma) in ``names``' order.

        Returns
        -------
        numpy.ndarray or None
            theta, or None when the correlations give no valid covariance.
        """
        s = z[self.n_vc] if self.is_lmm else 1.0
        out, i = [], 0
        for t in self.terms:
            nt = t.cov.n_theta
            th = t.cov.from_natural(z[i : i + nt], s)
            i += nt
            if th is None:
                return None
            out.append(np.asarray(th, dtype=float))
        return np.concatenate(out) if out else np.zeros(0)

    def deviance(self, z) -> float:
        """-2 log L at the natural-scale parameters z (the others' optimum for an LMM's beta and sigma).

        Parameters
        ----------
        z : numpy.ndarray
            SDs, correlations, sigma and fixed effects in ``names``' order.

        Returns
        -------
        float
            -2 log L (inf outside the parameter space).
        """
        z = np.asarray(z, dtype=float)
        theta = self.theta(z)
        if theta is None:
            return np.inf
        beta = z[self.n_vc + self.is_lmm : self.n_vc + self.is_lmm + self.p]
        if self.is_lmm:
            sigma = z[self.n_vc]
            try:
                f = self.obj.factor(theta)
            except np.linalg.LinAlgError:
                return np.inf
            qt = self.obj.structure.Qtt
            sol = f.solve_last_column()
            beta_t = sol[self.obj.structure.Q:]
            rx = f.Lt[qt : qt + self.p, qt : qt + self.p]
            r2 = f.Lt[-1, -1] ** 2 + float(np.sum((rx.T @ (beta - beta_t)) ** 2))  # vcov ~ (rx rx')^-1
            return float(self.n * np.log(2 * np.pi * sigma ** 2) + f.logdet_re() + r2 / sigma ** 2 - self.obj._logw)
        psi = z[self.n_vc + self.p :] if self.m else None
        return float(self.obj.evaluate(theta, beta, psi)[0])

    # -- profiling -----------------------------------------------------------------------
    def minimise_with(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """min over the other parameters of the deviance with parameter i held at ``value``.

        Parameters
        ----------
        i : int
            The parameter held.
        value : float
            Its value.
        start : numpy.ndarray
            Where the search starts (the last profile point).

        Returns
        -------
        tuple
            (the minimum, the parameters there).
        """
        free = np.array([j for j in range(len(self.names)) if j != i])

        def full(x):
            z = np.array(start, dtype=float)
            z[free] = x
            z[i] = value
            return z

        f = lambda x: self.deviance(full(x))  # noqa: E731
        x0 = np.clip(np.asarray(start, dtype=float)[free], self.lower[free], self.upper[free])
        x, fv, _, _ = minimize(f, x0, self.lower[free], self.scale[free] * 0.5, upper=self.upper[free],
                               ftol_abs=1e-9, xtol_rel=1e-8, maxeval=200 * len(free) + 200)
        if not self.is_lmm:
            self.obj.reset(u=self.fit._u)
        return fv, full(x)

    def zeta(self, i: int, value: float, start=None) -> tuple[float, np.ndarray]:
        """The signed square root of the profile deviance's rise: sign(value - estimate) sqrt(dev - dev_min).

        Parameters
        ----------
        i : int
            The parameter.
        value : float
            Its value.
        start : numpy.ndarray, optional
            The search's start.

        Returns
        -------
        tuple
            (zeta, the parameters at the profile point).
        """
        dev, z = self.minimise_with(i, value, self.z_hat if start is None else start)
        d = max(dev - self.dev_min, 0.0)
        return float(np.sign(value - self.z_hat[i]) * np.sqrt(d)), z

    def profile_one(self, i: int, zmax: float = 2.6, max_points: int = 12) -> pd.DataFrame:
        """zeta on a grid of values on both sides of the estimate, until |zeta| > zmax or a bound.

        Parameters
        ----------
        i : int
            The parameter.
        zmax : float
            How far to go.
        max_points : int
            Most points per side.

        Returns
        -------
        pandas.DataFrame
            ``value`` and ``zeta``, sorted by value.
        """
        rows = [(self.z_hat[i], 0.0)]
        for direction in (-1, 1):
            v, z = self.z_hat[i], self.z_hat.copy()
            step = self.scale[i]
            last_zeta = 0.0
            for _ in range(max_points):
                nv = v + direction * step
                bound = self.lower[i] if direction < 0 else self.upper[i]
                hit = (nv <= bound) if direction < 0 else (nv >= bound)
                if hit:
                    nv = bound
                zt, z = self.zeta(i, nv, z)
                rows.append((nv, zt))
                if abs(zt) >= zmax or hit:
                    break
                gain = abs(zt) - abs(last_zeta)
                step = step * float(np.clip(0.5 / max(gain, 1e-3), 0.5, 4.0))
                v, last_zeta = nv, zt
        tab = pd.DataFrame(rows, columns=["value", "zeta"]).sort_values("value").drop_duplicates("value")
        tab.insert(0, "parameter", self.names[i])
        return tab.reset_index(drop=True)

    def interval(self, i: int, level: float = 0.95) -> tuple[float, float]:
        """Profile interval of parameter i by the one profile-interval routine (``profile_interval``).

        Parameters
        ----------
        i : int
            The parameter's position in ``names``.
        level : float
            Confidence level.

        Returns
        -------
        tuple
            (lower, upper) on the natural scale; a limit not reached before the parameter's bound is the bound.
        """
        state = {"z": self.z_hat.copy()}

        def dev(v):
            d, z = self.minimise_with(i, v, state["z"])
            state["z"] = z  # warm start the next point from this one
            return d

        return profile_interval(dev, float(self.z_hat[i]), self.dev_min, level, lower=float(self.lower[i]),
                                upper=float(self.upper[i]), step=float(self.scale[i]))


def _refit_ml(fit):
    spec = fit.spec
    opt = optimize(spec.lmm_objective(reml=False))
    return type(fit)(spec, opt)


def _select(prob: ProfileProblem, parm) -> list[int]:
    profiled = [i for i, k in enumerate(prob.kinds) if k != "psi"]
    if parm is None:
        return profiled
    if isinstance(parm, str):
        parm = [parm]
    idx = []
    for p in parm:
        if p == "beta_":
            idx += [i for i in profiled if prob.kinds[i] == "beta"]
        elif p == "theta_":
            idx += [i for i in profiled if prob.kinds[i] in ("sd", "cor", "par", "sigma")]
        elif p in prob.names:
            idx.append(prob.names.index(p))
        else:
            raise InputError(f"unknown parameter {p!r}; profiled parameters: {[prob.names[i] for i in profiled]}")
    return idx


def profile(fit, parm=None, zmax: float = 2.6) -> pd.DataFrame:
    """The profile table: parameter, value, zeta (lme4's ``profile``), for every parameter or ``parm``.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    parm : str or list of str, optional
        Parameters.
    zmax : float
        How far each profile goes.

    Returns
    -------
    pandas.DataFrame
        ``parameter``, ``value``, ``zeta``.
    """
    prob = ProfileProblem(fit)
    return pd.concat([prob.profile_one(i, zmax=zmax) for i in _select(prob, parm)], ignore_index=True)


def confint_profile(fit, parm=None, level: float = 0.95) -> pd.DataFrame:
    """Profile-likelihood intervals (lme4's ``confint(method = "profile")``).

    Parameters
    ----------
    fit : Fit
        The fitted model (an LMM is profiled on its ML deviance, as lme4).
    parm : str or list of str, optional
        Parameters (``"beta_"``, ``"theta_"`` or names).
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``lower`` and ``upper`` per parameter.
    """
    prob = ProfileProblem(fit)
    rows = {}
    for i in _select(prob, parm):
        rows[prob.names[i]] = prob.interval(i, level)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])


def profile_deviance(fit, j: int, value: float) -> float:
    """min over the other parameters of -2 log L with the j-th parameter held at ``value``.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    j : int
        The parameter's position.
    value : float
        Its value.

    Returns
    -------
    float
        The profile deviance.
    """
    prob = ProfileProblem(fit)
    dev, _ = prob.minimise_with(j, value, prob.z_hat)
    return dev


def profile_interval(dev, x_hat: float, dev_hat: float, level: float = 0.95, lower: float = 0.0,
                     upper: float = np.inf, step: float | None = None) -> tuple[float, float]:
    """The profile-likelihood interval of one parameter: the roots of dev(x) - dev_hat = chi2_1(level).

    The one profile-interval routine of glmmkit (``Fit.confint(method="profile")``, the meta-analysis'
    tau interval): from x_hat, steps grow outward (the first at the quadratic approximation's limit) until
    the profile deviance passes the critical value (a bracket), then Brent's method finds the root to 1e-4
    steps; a side whose bound is reached first gives the bound.

    Parameters
    ----------
    dev : callable
        dev(x): -2 log L minimised over the other parameters with this one held at x.
    x_hat : float
        The estimate.
    dev_hat : float
        The minimum of -2 log L.
    level : float
        Confidence level.
    lower, upper : float
        The parameter's bounds (0 for an SD, -inf / inf for a coefficient).
    step : float, optional
        The parameter's scale, about one standard error (default: max(|x_hat|, 0.5)).

    Returns
    -------
    tuple
        (lower limit, upper limit).
    """
    from scipy import optimize

    crit = stats.chi2.ppf(level, 1)
    g = lambda x: dev(x) - dev_hat - crit  # noqa: E731
    step = float(step) if step else max(abs(x_hat), 0.5)
    # step is about one standard error: the first probe sits near the quadratic approximation's limit, and
    # the root is found to 1e-4 standard errors (a zeta error of about 1e-4)
    tol = 1e-4 * step
    out = []
    for direction, bound in ((-1, lower), (1, upper)):
        limit = _one_side(g, x_hat, direction, bound, np.sqrt(crit) * step, crit, step, tol)
        out.append(bound if limit is None else float(limit))
    return out[0], out[1]


#: a profile side is searched this far at most (in steps of about one standard error) and with this many
#: probes before its limit is taken to be the parameter's bound (a flat profile: the data do not bound it)
MAX_REACH, MAX_PROBES = 60.0, 14


def _one_side(g, x_hat, direction, bound, first, crit, step, tol):
    """The root of g on one side of x_hat, or None when the side is not bounded by the data."""
    from scipy import optimize

    inner, s = x_hat, first
    for _ in range(MAX_PROBES):
        outer = x_hat + direction * s
        at_bound = (outer <= bound) if direction < 0 else (outer >= bound)
        if at_bound:
            outer = bound
            if not np.isfinite(bound):
                return None
            gv = g(bound)
            if not gv > 0:  # the profile never reaches the value before the bound
                return None
        else:
            gv = g(outer)
            if not gv > 0:
                # not there yet: step to where the quadratic through this probe reaches the value
                rise = gv + crit
                grow = 1.15 * np.sqrt(crit / rise) if rise > 0 else 2.0
                inner, s = outer, s * float(np.clip(grow, 1.2, 4.0))
                if s > MAX_REACH * step:
                    return None
                continue
        for _ in range(30):  # an infeasible outer probe (inf): pull it in until g is finite there
            if np.isfinite(gv):
                break
            outer = 0.5 * (inner + outer)
            gv = g(outer)
            if not gv > 0:
                inner = outer
                break
        if not (np.isfinite(gv) and gv > 0):
            return None
        a, b = sorted((inner, outer))
        return optimize.brentq(g, a, b, xtol=tol)
    return None
