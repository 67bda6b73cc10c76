"""Fit: the estimates of a fitted (G)LMM and what users ask of them.

Built from a ModelSpec and an OptSummary (``gk.Fit(spec, opt)``); holds no
optimisation code.  Names follow formulaic (``period[T.2]``); ``lme4_name``
maps them to R's (``period2``).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
import time

import numpy as np
import pandas as pd
from scipy import special, stats

from .engine.blocked import Structure
from .engine.covariance import Diagonal, Unstructured
from .engine.structured import StructuredCovariance
from .protocol import Result
from .engine.optimize import OptSummary
from .fitting import optimize
from .formula.spec import ModelSpec
from .checks import check_choice, check_int, check_level
from .errors import FitError, InputError
from .output import json_safe


#: an LMM's coef_table computes Satterthwaite df when that costs less than this (seconds, estimated)
DDF_BUDGET_S = 20.0

def lme4_name(name: str) -> str:
    """A formulaic coefficient name as lme4 writes it: ``period[T.2]`` -> ``period2``, ``Intercept`` -> ``(Intercept)``.

    Parameters
    ----------
    name : str
        The coefficient's name in glmmkit (formulaic's coding).

    Returns
    -------
    str
        R's name for the same coefficient.
    """
    if name in ("Intercept", "(Intercept)"):
        return "(Intercept)"
    # treatment coding (``period[T.2]``) and full-rank coding without an intercept (``study[t01]``)
    return re.sub(r"([^\[\]:]+)\[(?:T\.)?([^\]]+)\]", r"\1\2", name)


class InformationCriteria:
    """AIC and BIC from ``loglik``, ``n_params`` and ``nobs`` (shared by the fits that have them)."""

    @property
    def aic(self) -> float:
        """Akaike's criterion, -2 log L + 2 (number of parameters)."""
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        """Schwarz's criterion, -2 log L + log(n) (number of parameters)."""
        return -2 * self.loglik + np.log(self.nobs) * self.n_params


class Fit(InformationCriteria, Result):
    """A fitted mixed model.

    Attributes (all pandas where tabular): ``fixef``, ``vcov``, ``coef_table``,
    ``varcorr``, ``ranef``, ``ranef_condsd``, ``loglik``, ``aic``, ``bic``,
    ``deviance``, ``df_resid``, ``nobs``, ``ngroups``, ``converged``,
    ``singular``, ``messages``, ``optsummary``.
    """

    def __init__(self, spec: ModelSpec, opt: OptSummary, *, time_s: float | None = None):
        self.spec = spec
        self.optsummary = opt
        self.family = spec.family
        self.is_lmm = opt.kind == "lmm"
        self.reml = bool(opt.reml)
        self.nagq = int(opt.nagq)
        self.time_s = opt.time_s if time_s is None else time_s
        obj = opt.objective
        self._structure: Structure = obj.structure if self.is_lmm else obj.data.structure
        self.theta = np.asarray(opt.theta, dtype=float)
        if self.is_lmm:
            try:
                beta, u, sigma2, vcov, _ = obj.estimates(self.theta)
            except np.linalg.LinAlgError:
                raise FitError("the linear mixed model's system is singular at the estimates: the fixed "
                               "effects are not identified by the rows with positive weight") from None
            self.sigma = float(np.sqrt(sigma2))
            self._u = u / self.sigma  # spherical u with b = sigma Lambda u
            self._b_scale = self.sigma
            self._beta = beta
            self._vcov = vcov
            self.vcov_method = "sigma^2 (R_X' R_X)^-1"
            self.phi = sigma2
            self._ranef_factor = self._structure.factor(self._structure.raw(spec.wt, None), self.theta)
            self._mu = spec.X @ beta + spec.offset + self._structure.zlam_u(self.theta, u)
            self._eta = self._mu
        else:
            res = opt.result
            self.family = opt.family if opt.family is not None else spec.family
            self._beta = np.asarray(opt.beta, dtype=float)
            self._u = res.u
            self._b_scale = 1.0
            self._psi = np.zeros(0) if opt.psi is None else np.asarray(opt.psi, dtype=float)
            scale_family = self.family.dispersion_name and self.family.dispersion_scales
            self.phi = self.family.dispersion if self.family.dispersion_name else None
            if np.ndim(self.phi):  # a dispersion model: one dispersion per row (glmmTMB's sigma() is NA then)
                self.sigma = float("nan") if scale_family else 1.0
            else:
                self.sigma = float(np.sqrt(self.phi)) if scale_family else 1.0
            self._mu, self._eta = res.mu, res.eta
            if getattr(self.family, "stacked", False):
                # random effects in the zero model: the engine's rows were stacked (zeroinflated.py); the fit
                # speaks of the data's n rows, with the zero model's random part at the modes in pi
                self.family = self.family.on_rows(res.eta)
                self._mu, self._eta = res.mu[: spec.n], res.eta[: spec.n]
            self._ranef_factor = res.factor
            self._vcov, self.vcov_method = _glmm_vcov(opt, res, spec, self._structure, self.theta)
        self.singular = bool(opt.singular)
        self.messages = list(spec.messages) + list(opt.messages)
        self.fval = float(opt.fval)
        problems = self._unusable()
        self.messages += problems
        self.converged = bool(opt.converged) and not problems

    def refit(self, y, *, calc_derivs: bool = False) -> "Fit":
        """The same model (design, family, method) fitted to a new response (lme4's ``refit``).

        Parameters
        ----------
        y : array-like
            The new response, on the scale of ``spec.y`` (proportions for a binomial fit with trials as
            weights), as ``simulate`` returns it.
        calc_derivs : bool
            Compute standard errors (skipped by default).

        Returns
        -------
        Fit
            The refitted model.
        """
        y = np.asarray(y, dtype=float)
        if y.shape != self.spec.y.shape:
            raise InputError(f"refit needs {self.spec.y.shape[0]} responses, got {y.shape}")
        spec = dataclasses.replace(self.spec, y=y)
        spec._kept_cols = self.spec._kept_cols
        t0 = time.perf_counter()
        control = self.optsummary.control
        if self.is_lmm:
            opt = optimize(spec.lmm_objective(reml=self.reml), calc_derivs=calc_derivs, control=control)
        else:
            opt = optimize(spec.objective(nagq=self.nagq, laplace=self.optsummary.laplace, quad_stop=control.quad_stop,
                                          reml=self.reml), calc_derivs=calc_derivs, control=control)
        return type(self)(spec, opt, time_s=time.perf_counter() - t0)

    def update(self, formula: str | None = None, data=None, family=None, **kwargs) -> "Fit":
        """The model refitted with changes (lme4's ``update``).

        Parameters
        ----------
        formula : str, optional
            The new formula, where ``.`` stands for the old sides: ``"~ . - x"`` drops x, ``"~ . + (0 + x | g)"``
            adds a term, ``"log(y) ~ ."`` changes the response.
        data : DataFrame, optional
            New data (default: the data the fit was given).
        family : str or Family, optional
            A new family (a gaussian LMM given another family is refitted by ``glmer``).
        **kwargs
            Any other argument of ``gk.glmer`` / ``gk.lmer`` (``reml``, ``nagq``, ``control``, ``start``, ...).

        Returns
        -------
        Fit
            The new fit.
        """
        from .formula.update import update_formula

        call = getattr(self, "_call", None)
        if call is None:
            raise InputError("update() refits a model made by gk.glmer or gk.lmer; this fit was made another way")
        new_formula = call["formula"] if formula is None else update_formula(call["formula"], formula)
        kw = dict(call["kw"])
        fn = call["fn"]
        if family is not None:
            same = str(getattr(family, "name", family)) == "gaussian" and fn is not call["glmer"]
            if not same:
                fn = call["glmer"]
                kw = {k: v for k, v in kw.items() if k in inspect.signature(fn).parameters}
                if call["fn"] is not call["glmer"]:
                    kw["reml"] = False  # lmer's REML default does not carry over to a GLMM
        kw.update(kwargs)
        args = (new_formula, call["data"] if data is None else data)
        if fn is call["glmer"]:
            args = args + (call["family"] if family is None else family,)
        try:
            return fn(*args, **kw)
        except TypeError as err:
            raise InputError(f"update(): {err}") from None

    @property
    def estimates_finite(self) -> bool:
        """Whether the estimates, the log-likelihood and the standard errors are all finite (a profile, a
        bootstrap or a report's intervals start from them)."""
        vals = [np.atleast_1d(self.fval), self._beta, self.theta, np.diag(self._vcov)]
        return all(np.all(np.isfinite(v)) for v in vals)

    def _unusable(self) -> list[str]:
        """Why these estimates cannot be reported as converged: a non-finite estimate, logLik or standard
        error, standard errors that say the estimate is not identified, or a response whose maximum-likelihood
        estimate is infinite (all zeros for counts, all 0 or all 1 for a binomial)."""
        out = []
        if not np.isfinite(self.fval):
            out.append("Model failed to converge: the log-likelihood is not finite")
        parts = {"fixed effects": self._beta, "variance parameters": self.theta}
        if not self.is_lmm:
            parts["family parameters"] = self._psi
        for what, v in parts.items():
            if not np.all(np.isfinite(v)):
                out.append(f"Model failed to converge: non-finite {what}")
        se = np.sqrt(np.abs(np.diag(self._vcov))) if self._vcov is not None else np.zeros(0)
        if not np.all(np.isfinite(se)):
            out.append("Model failed to converge: non-finite standard errors")
        elif len(se) and np.any(se > 1e6 * np.maximum(1.0, np.abs(self._beta))):
            j = int(np.argmax(se / np.maximum(1.0, np.abs(self._beta))))
            out.append(f"Model failed to converge: the estimate of {self.spec.x_names[j]!r} is not identified "
                       f"(standard error {se[j]:.3g}): separation or a degenerate response")
        fam = self.spec.family.name if not self.is_lmm else "gaussian"
        y, wt = self.spec.y, self.spec.wt
        used = wt > 0
        if fam in ("poisson", "nbinom1", "nbinom2") and used.any() and np.all(y[used] == 0):
            out.append("Model failed to converge: the response is zero in every row, so the maximum-likelihood "
                       "intercept is -infinity (no model can be fitted to these counts)")
        if fam == "binomial" and used.any() and (np.all(y[used] == 0) or np.all(y[used] == 1)):
            out.append(f"Model failed to converge: the response is {int(y[used][0])} in every row, so the "
                       "maximum-likelihood intercept is infinite")
        return out

    # ---- fixed effects --------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:
        """The fixed-effects estimates (a Series named by coefficient)."""
        return pd.Series(self._beta, index=self.spec.x_names, name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """The fixed effects' covariance matrix (a DataFrame; ``vcov_method`` says how it was obtained)."""
        return pd.DataFrame(self._vcov, index=self.spec.x_names, columns=self.spec.x_names)

    @property
    def coef_table(self) -> pd.DataFrame:
        """Estimates, standard errors and Wald tests: ``estimate``, ``std_error``, then ``df``, ``t`` and ``p``
        with Satterthwaite's df (LMM, as lmerTest) or ``z`` and ``p`` (GLMM).

        An LMM whose df would take more than ``DDF_BUDGET_S`` seconds (a few hundred evaluations of the
        objective) reports NaN df and p here, with a message; ``fixef_table(ddf=...)`` computes them."""
        se = np.sqrt(np.diag(self._vcov))
        z = self._beta / se
        if self.is_lmm:
            per_eval = self.optsummary.time_s / max(self.optsummary.fevals, 1)
            m = len(self.theta) + 1
            if per_eval * (8 * m * m + 16 * m) > DDF_BUDGET_S and "_ddf_cache" not in self.__dict__:
                out = pd.DataFrame({"estimate": self._beta, "std_error": se, "df": np.nan, "t": z, "p": np.nan},
                                   index=self.spec.x_names)
                return out
            try:
                return self.fixef_table()
            except (np.linalg.LinAlgError, FloatingPointError, ValueError, InputError):
                return pd.DataFrame({"estimate": self._beta, "std_error": se, "df": np.nan, "t": z, "p": np.nan},
                                    index=self.spec.x_names)
        out = pd.DataFrame({"estimate": self._beta, "std_error": se}, index=self.spec.x_names)
        out["z"] = z
        out["p"] = 2 * stats.norm.sf(np.abs(z))
        return out

    def fixef_table(self, ddf: str | None = None, level: float | None = None) -> pd.DataFrame:
        """The fixed-effects table with the chosen denominator degrees of freedom (lmerTest's
        ``summary(fit, ddf=...)``).

        Parameters
        ----------
        ddf : {"satterthwaite", "kenward-roger", "residual", "none"}, optional
            LMMs: Satterthwaite's df (the default), Kenward-Roger's (with its adjusted standard errors, REML
            fits), n - p, or none (normal reference). GLMMs take only "none" (their tests are Wald z).
        level : float, optional
            Add ``lower`` and ``upper`` confidence limits on the same df.

        Returns
        -------
        pandas.DataFrame
            ``estimate``, ``std_error``, ``df``, ``t``, ``p`` (LMM) or ``estimate``, ``std_error``, ``z``,
            ``p`` (GLMM), one row per coefficient.
        """
        from .inference.wald import t_tests

        out = t_tests(self, np.eye(self.spec.p), 0.0, ddf, level)
        out.index = self.spec.x_names
        return out

    def contest(self, L, rhs=0.0, ddf: str | None = None, joint: bool = True) -> pd.DataFrame:
        """Test contrasts of the fixed effects, L beta = rhs (lmerTest's ``contest``).

        Parameters
        ----------
        L : array-like, dict or DataFrame
            One contrast (length p), several (q x p), or ``{coefficient: weight}``.
        rhs : float or array
            The hypothesised values.
        ddf : str, optional
            As for ``fixef_table``.
        joint : bool
            One joint F (LMM) or chi-square (GLMM) test of all rows; False: one t or z test per row.

        Returns
        -------
        pandas.DataFrame
            joint: one row with ``F``, ``num_df``, ``den_df``, ``p`` (LMM) or ``chisq``, ``df``, ``p``;
            otherwise one row per contrast with ``estimate``, ``std_error``, (``df``), ``t``/``z``, ``p``.
        """
        from .inference.wald import contrast_matrix, f_test, t_tests

        M = contrast_matrix(self, L)
        rhs_arr = np.asarray(rhs, dtype=float)
        if rhs_arr.ndim and rhs_arr.shape != (M.shape[0],):
            raise InputError(f"rhs has {rhs_arr.size} values for {M.shape[0]} contrast rows")
        if not isinstance(joint, (bool, np.bool_)):
            raise InputError(f"joint must be True or False, got {joint!r}")
        if joint:
            return pd.DataFrame([f_test(self, M, rhs_arr, ddf)])
        return t_tests(self, M, rhs_arr, ddf)

    # ---- random effects ---------------------------------------------------------
    @property
    def _all_terms(self) -> list:
        """The random-effects terms in theta's order: the conditional model's, then the zero model's."""
        return list(self.spec.terms) + list(self.spec.zi_terms)

    def _term_keys(self) -> list[str]:
        keys, seen = [], {}
        for i, t in enumerate(self._all_terms):
            group = t.group if i < len(self.spec.terms) else f"zi:{t.group}"  # glmmTMB prints the zero model apart
            c = seen.get(group, 0)
            keys.append(group if c == 0 else f"{group}.{c}")
            seen[group] = c + 1
        return keys

    def _theta_by_term(self) -> list[np.ndarray]:
        sizes = [t.cov.n_theta for t in self._all_terms]
        return np.split(self.theta, np.cumsum(sizes)[:-1])

    @property
    def varcorr(self) -> pd.DataFrame:
        """One row per variance (sd in ``sd``) and per correlation (in ``corr``), as lme4's VarCorr."""
        rows = []
        scale2 = self._b_scale ** 2
        for key, t, th in zip(self._term_keys(), self._all_terms, self._theta_by_term()):
            if isinstance(t.cov, StructuredCovariance):
                # glmmTMB's structures: their SDs (one shared or one per coefficient) and correlation
                # parameters (rho, the lags' correlations); ranges and smoothness are in covpars
                values = t.cov.natural(th, self._b_scale)
                _, _, kinds = t.cov.natural_bounds()
                for nm, v, kd in zip(t.cov.natural_names(t.columns), values, kinds):
                    if kd == "sd":
                        term1 = nm[3:] if nm.startswith("sd_") else t.lhs
                        rows.append(dict(group=key, term1=term1, term2=None, variance=v * v, sd=v, corr=np.nan))
                    elif kd == "cor":
                        rows.append(dict(group=key, term1=f"{t.structure}({t.lhs})", term2=nm, variance=np.nan,
                                         sd=np.nan, corr=v))
                continue
            cov = t.cov.covariance(th) * scale2
            sd = np.sqrt(np.diag(cov))
            for i, c in enumerate(t.columns):
                rows.append(dict(group=key, term1=c, term2=None, variance=cov[i, i], sd=sd[i], corr=np.nan))
            correlated = t.cov.correlation_pairs()
            for j in range(len(t.columns) if correlated else 0):
                for i in range(j + 1, len(t.columns)):
                    corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                    rows.append(dict(group=key, term1=t.columns[j], term2=t.columns[i], variance=np.nan,
                                     sd=np.nan, corr=corr))
        if self.is_lmm or (self.family.dispersion_name and self.family.dispersion_scales):
            rows.append(dict(group="Residual", term1=None, term2=None, variance=self.sigma ** 2,
                             sd=self.sigma, corr=np.nan))
        return pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd", "corr"])

    @property
    def covpars(self) -> pd.DataFrame:
        """Every random-effects term's parameters on their natural scales: SDs, correlations, and for
        glmmTMB's structures their own (``rho`` of ar1 and cs, the lags' correlations of toep, ``rate`` of ou,
        ``range`` and ``smoothness`` of the spatial classes, the loadings of rr). Columns ``group``,
        ``structure``, ``parameter``, ``estimate``."""
        rows = []
        for key, t, th in zip(self._term_keys(), self._all_terms, self._theta_by_term()):
            kind = t.structure or ("known" if t.is_known else "diag" if isinstance(t.cov, Diagonal) and t.k > 1
                                   else "us" if isinstance(t.cov, (Unstructured, Diagonal)) else type(t.cov).__name__)
            for nm, v in zip(t.cov.natural_names(t.columns), t.cov.natural(th, self._b_scale)):
                rows.append(dict(group=key, structure=kind, parameter=nm, estimate=float(v)))
        return pd.DataFrame(rows, columns=["group", "structure", "parameter", "estimate"])

    def _b_and_condvar(self):
        b, v = self._structure.ranef_condvar(self.theta, self._u, self._ranef_factor)
        return [bb * self._b_scale for bb in b], [vv * self._b_scale ** 2 for vv in v]

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes b per grouping factor (rows: levels, columns: coefficients)."""
        b, _ = self._b_and_condvar()
        return {
            key: pd.DataFrame(bb, index=pd.Index(t.levels, name=t.group), columns=t.columns)
            for key, t, bb in zip(self._term_keys(), self._all_terms, b)
        }

    @property
    def ranef_condsd(self) -> dict[str, pd.DataFrame]:
        """Conditional standard deviations of b (square roots of the conditional variances)."""
        _, v = self._b_and_condvar()
        return {
            key: pd.DataFrame(np.sqrt(np.diagonal(vv, axis1=1, axis2=2)), index=pd.Index(t.levels, name=t.group),
                              columns=t.columns)
            for key, t, vv in zip(self._term_keys(), self._all_terms, v)
        }

    def ranef_table(self) -> pd.DataFrame:
        """The conditional modes in one long table.

        Returns
        -------
        pandas.DataFrame
            Columns ``group``, ``level``, ``term``, ``estimate`` (conditional mode) and ``condsd``.
        """
        b, v = self._b_and_condvar()
        frames = []
        for key, t, bb, vv in zip(self._term_keys(), self._all_terms, b, v):
            sd = np.sqrt(np.diagonal(vv, axis1=1, axis2=2))
            for j, c in enumerate(t.columns):
                frames.append(pd.DataFrame({"group": key, "level": t.levels, "term": c,
                                            "estimate": bb[:, j], "condsd": sd[:, j]}))
        return pd.concat(frames, ignore_index=True)

    # ---- likelihood summaries ----------------------------------------------------
    @property
    def loglik(self) -> float:
        """The maximised log-likelihood (Laplace or AGQ for GLMMs; the REML criterion's value for REML fits)."""
        return -0.5 * self.fval

    @property
    def n_params(self) -> int:
        """Parameters counted for AIC: variance parameters, fixed effects and the family's (or sigma)."""
        extra = 1 if self.is_lmm else len(self._psi)
        return len(self.theta) + len(self._beta) + extra

    @property
    def family_params(self) -> pd.DataFrame:
        """The family's own parameters (NB theta or phi, a dispersion, zero-inflation coefficients)
        with standard errors from the Hessian and 95% Wald intervals (on the log scale for positive ones)."""
        cols = ["estimate", "std_error", "lower", "upper"]
        if self.is_lmm or not len(self._psi):
            return pd.DataFrame(columns=cols)
        nt, p = len(self.theta), len(self._beta)
        cov = None
        H = self.optsummary.hessian
        free = self.optsummary._free
        if H is not None and free is not None:
            Vf, _ = _flat_ridge_inverse(H[np.ix_(free, free)], [], None)
            if Vf is not None:
                V = np.full_like(H, np.nan)
                V[np.ix_(free, free)] = 2 * Vf
                cov = V[nt + p :, nt + p :]
        elif getattr(self.optsummary, "reml_cov_psi", None) is not None:  # REML: the criterion's Hessian
            cov = self.optsummary.reml_cov_psi
        rows = self.family.param_table(self._psi, cov)
        return pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=cols)

    @property
    def deviance(self) -> float:
        """lme4's deviance: -2 log L for an LMM; for a GLMM the sum of squared deviance residuals."""
        if self.is_lmm:
            return -2 * self.loglik
        return float(np.sum(self.family.unit_deviance(self.spec.y, self._mu, self.spec.wt)))

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom, nobs - n_params (lme4's ``df.residual``)."""
        return self.nobs - self.n_params

    @property
    def nobs(self) -> int:
        """The number of observations used (rows dropped for missing values are not counted)."""
        return self.spec.n

    @property
    def ngroups(self) -> dict[str, int]:
        """The number of levels of each grouping factor (keys as in ``varcorr``'s ``group``)."""
        return {key: t.q for key, t in zip(self._term_keys(), self._all_terms)}

    # ---- fitted values, residuals, prediction --------------------------------------
    @property
    def fitted(self) -> np.ndarray:
        """Fitted means at the conditional modes (response scale; (1 - pi) mu for zero-inflated fits)."""
        return np.asarray(self._mu) if self.is_lmm else np.asarray(self.family.response_mean(self._mu))

    def residuals(self, type: str = "deviance") -> np.ndarray:
        """Residuals at the conditional modes.

        Parameters
        ----------
        type : {"deviance", "pearson", "response"}
            Signed square roots of the unit deviances, (y - mu) / sqrt(V(mu) / wt), or y - mu.

        Returns
        -------
        numpy.ndarray
            One residual per observation.
        """
        y, mu, wt = self.spec.y, self._mu, self.spec.wt
        if type == "response":
            return y - self.fitted
        if type == "pearson":
            if self.is_lmm:
                return (y - mu) * np.sqrt(wt)
            return (y - self.fitted) / np.sqrt(self.family.response_variance(mu, wt))
        if type == "deviance":
            if self.is_lmm:
                return (y - mu) * np.sqrt(wt)
            d = self.family.unit_deviance(y, mu, wt)
            return np.sign(y - mu) * np.sqrt(np.maximum(d, 0))
        raise InputError(f"residual type must be 'deviance', 'pearson' or 'response', got {type!r}")

    def predict(self, newdata: pd.DataFrame | None = None, re_form: str | None = None, type: str = "response",
                allow_new_levels: bool = False, offset=None, se_fit: bool = False, level: float = 0.95):
        """Predictions, with or without the random effects, optionally with standard errors.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            New rows (coded as the fitted data); None: the fitted rows.
        re_form : {None, "~0"} or str
            None conditions on all random effects, ``"~0"`` gives the population level, and a formula of
            bars such as ``"~ (1 | herd)"`` keeps the named terms only (the others at b = 0).
        type : {"response", "link", "conditional", "zprob", "prob", "cumprob"}
            As glmmTMB's: "response" is E y ((1 - pi) times the count part's mean with a zero model),
            "conditional" the count part's mean (mu, or mu / P(y > 0) for a zero-truncated family), "zprob" the
            zero model's probability pi (0 without one), "link" the linear predictor. For an ordinal fit
            (``gk.clmm``): "prob" the category probabilities and "cumprob" P(Y <= j), as DataFrames with a
            column per category or threshold; "response" the expected category number (1..J).
        allow_new_levels : bool
            Give b = 0 to levels not seen in the fit (otherwise an InputError names them).
        offset : array-like, optional
            An offset added to the new rows' linear predictor.
        se_fit : bool
            Return standard errors (glmmTMB's ``predict(se.fit = TRUE)``): from vcov(beta) at the population
            level, and with random effects from the joint precision of (beta, b) at the mode
            (inference/prediction.py); on the response scale by the delta method. ``type`` "link" or
            "response" only.
        level : float
            The confidence level of the intervals returned with ``se_fit``.

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            One prediction per row; with ``se_fit`` a DataFrame with ``estimate``, ``std_error``, ``lower`` and
            ``upper`` (a Wald interval on the link scale, mapped to the response scale).
        """
        from .frames import as_pandas
        from .inference.prediction import link_standard_errors, parse_re_form

        if newdata is not None:
            newdata = as_pandas(newdata, "newdata")
        ordinal = not self.is_lmm and hasattr(self.family, "category_probabilities")
        kinds = ("link", "response", "conditional", "zprob") + (("prob", "cumprob") if ordinal else ())
        if type not in kinds:
            raise InputError(f"type must be one of {kinds}, got {type!r}")
        if not isinstance(se_fit, (bool, np.bool_)):
            raise InputError(f"se_fit must be True or False, got {se_fit!r}")
        kept = parse_re_form(self, re_form)
        use_re = kept != []
        if kept is not None and len(kept) == len(self.spec.terms):
            kept = None
        if se_fit:
            if type not in ("link", "response") or ordinal:
                raise InputError("se_fit=True gives standard errors of type='link' or type='response' predictions")
            if self.spec.zi_terms or (not self.is_lmm and hasattr(self.family, "pi_new")) and type == "response":
                raise InputError("se_fit for a zero-inflated or hurdle model is available on the link scale of the "
                                 "conditional model (type='link')")
        if newdata is None and (kept is not None or se_fit):
            newdata = self.spec.data
            if offset is None:  # the fitted rows keep the offset the fit was given (an offset= argument too)
                offset = self.spec.offset - self.spec.new_offset(newdata)
        if newdata is None:
            eta = self._eta if use_re else self.spec.X @ self._beta + self.spec.offset
        else:
            X = self.spec.new_fixed_matrix(newdata)
            eta = X @ self._beta + self.spec.new_offset(newdata)
            if offset is not None:
                eta = eta + np.asarray(offset, dtype=float)
            if use_re:
                b, _ = self._b_and_condvar()
                for i, (t, bb) in enumerate(zip(self.spec.terms, b)):
                    if kept is None or i in kept:
                        eta = eta + _term_contribution(t, bb, newdata, allow_new_levels)
        if se_fit:
            level = check_level(level)
            se = link_standard_errors(self, newdata, [] if not use_re else kept, allow_new_levels)
            z = stats.norm.ppf(0.5 + level / 2)
            eta = np.asarray(eta, dtype=float)
            lo, hi = eta - z * se, eta + z * se
            if type == "response" and not self.is_lmm:
                link = self.family.link
                est, se = link.inverse(eta), np.abs(link.mu_eta(eta)) * se
                lo, hi = np.sort(np.vstack([link.inverse(lo), link.inverse(hi)]), axis=0)
                eta = est
            return pd.DataFrame({"estimate": eta, "std_error": se, "lower": lo, "upper": hi})
        zero_model = not self.is_lmm and hasattr(self.family, "pi_new")
        if zero_model:
            pi = self._zero_probability(newdata, use_re, allow_new_levels)
        if type == "zprob":
            return pi if zero_model else np.zeros(len(eta))
        if type == "link" or self.is_lmm:
            return np.asarray(eta)
        if type in ("prob", "cumprob"):  # an ordinal response (gk.clmm): a column per category or threshold
            fam = self.family
            if type == "prob":
                return pd.DataFrame(fam.category_probabilities(np.asarray(eta)), columns=fam.labels)
            return pd.DataFrame(fam.cumulative_probabilities(np.asarray(eta)),
                                columns=[f"P(<= {lab})" for lab in fam.labels[:-1]])
        mu = self.family.link.inverse(np.asarray(eta))
        if zero_model:  # E y = (1 - pi) times the count part's mean
            cond = self.family.conditional_mean(mu)
            if type == "conditional":
                return cond
            return (1 - pi) * cond
        return self.family.response_mean(mu)

    def _zero_probability(self, newdata, use_re: bool, allow_new_levels: bool) -> np.ndarray:
        """P(structural zero) of the fitted or new rows, with the zero model's random effects (modes) or without."""
        if newdata is None:
            if use_re or not self.spec.zi_terms:
                return self.family.pi
            return special.expit(self.family.X_zi @ self.family.gamma)
        x = self.family.for_newdata(newdata).zi_eta()
        if use_re and self.spec.zi_terms:
            x = x + self._zi_random_part(newdata, allow_new_levels)
        return special.expit(x)

    def _zi_random_part(self, newdata, allow_new_levels: bool = True) -> np.ndarray:
        """Z_zi b_zi at the modes for new rows (the zero model's random part)."""
        b, _ = self._b_and_condvar()
        total = np.zeros(len(newdata))
        for t, bb in zip(self.spec.zi_terms, b[len(self.spec.terms):]):
            total = total + _term_contribution(t, bb, newdata, allow_new_levels)
        return total

    def simulate(self, nsim: int = 1, seed=None, newdata: pd.DataFrame | None = None,
                 re_form: str | None = "~0") -> pd.DataFrame:
        """Simulate responses from the fitted model, one column per simulation.

        Parameters
        ----------
        nsim : int
            Simulations.
        seed : int or numpy.random.Generator, optional
            Seed.
        newdata : pandas.DataFrame, optional
            Simulate for new rows (prior weights 1).
        re_form : {"~0", None}
            ``"~0"`` (the default, as lme4's ``simulate``) draws new random effects for every simulation
            (Brownian motion on the tree for a tree term); None conditions on the fitted modes.

        Returns
        -------
        pandas.DataFrame
            Columns ``sim_1`` ... ``sim_nsim``; binomial responses on the fit's scale (proportions of ``weights``).
        """
        from .frames import as_pandas

        nsim = check_int("nsim", nsim, 1)
        rng = np.random.default_rng(seed)
        if newdata is not None:
            newdata = as_pandas(newdata, "newdata")
        uncond = re_form is not None
        if uncond and str(re_form).replace(" ", "") not in ("~0", "0", "NA", "~NA"):
            raise InputError("re_form must be '~0' (new random effects) or None (the fitted ones)")
        if newdata is None:
            eta_fix = self.spec.X @ self._beta + self.spec.offset
            wt = self.spec.wt
            eta_cond = np.asarray(self._eta)
        else:
            eta_fix = self.predict(newdata, re_form="~0", type="link")
            wt = np.ones(len(newdata))
            eta_cond = None if uncond else self.predict(newdata, type="link", allow_new_levels=True)
        n = len(eta_fix)
        fam = None if self.is_lmm else (self.family if newdata is None else self.family.for_newdata(newdata))
        zi_re = bool(self.spec.zi_terms) and not self.is_lmm
        if zi_re:  # the zero model's random part: fresh draws (below) or the modes
            fam = copy.copy(fam)
            fam.zi_offset = 0.0 if uncond else (self.family.zi_offset if newdata is None
                                                else self._zi_random_part(newdata, True))
        out = np.empty((n, nsim))
        chunk = max(1, int(2e7 // max(n, 1)))
        for start in range(0, nsim, chunk):
            k = min(chunk, nsim - start)
            if uncond:
                eta = eta_fix[:, None] + self._new_re_contribution(k, rng, newdata)
                if zi_re:
                    fam.zi_offset = self._new_re_contribution(k, rng, newdata, zero_model=True)
            else:
                eta = np.repeat(eta_cond[:, None], k, axis=1)
            if self.is_lmm:
                out[:, start:start + k] = eta + rng.normal(size=eta.shape) * self.sigma / np.sqrt(wt)[:, None]
            else:
                mu = self.family.link.inverse(eta)
                out[:, start:start + k] = fam.simulate(mu, np.broadcast_to(wt[:, None], mu.shape), rng)
        return pd.DataFrame(out, columns=[f"sim_{i + 1}" for i in range(nsim)])

    def _new_re_contribution(self, k: int, rng, newdata, zero_model: bool = False) -> np.ndarray:
        """Z b for k fresh draws b = Lambda u, u ~ N(0, I): (n, k); the zero model's terms with ``zero_model``."""
        total = 0.0
        nt = len(self.spec.terms)
        pairs = (zip(self.spec.zi_terms, self._theta_by_term()[nt:]) if zero_model
                 else zip(self.spec.terms, self._theta_by_term()[:nt]))
        for t, th in pairs:
            if newdata is None:
                codes, q, X = t.codes, t.q, t.X
            else:
                codes, uniq = pd.factorize(t.labels_in(newdata))
                q = len(uniq)
                X = t.new_matrix(newdata)
                if t.is_known:
                    raise InputError("simulating new levels of a known-covariance term needs the fitted levels")
            if t.is_known:
                b = t.cov.draw(th, rng, k)[:, None, :]
            else:
                u = rng.standard_normal((q, t.k, k))
                b = np.einsum("ij,qjs->qis", t.cov.template(th), u)
            b = b * self._b_scale
            total = total + np.einsum("nr,nrs->ns", X, b[codes])
        return total

    # ---- inference (glmmkit.inference) -----------------------------------------------
    def confint(self, method: str = "wald", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
        """Confidence intervals on lme4's scale (SDs, correlations, sigma, fixed effects).

        Parameters
        ----------
        method : {"wald", "profile", "boot"}
            Wald intervals of the fixed effects (variance parameters NaN, as lme4), likelihood profiles (LMMs
            on the ML deviance, as lme4) or parametric-bootstrap percentiles.
        level : float
            Confidence level.
        parm : str or list of str, optional
            The parameters to return (names as the table's index).
        **kwargs
            For ``"boot"``: ``nsim``, ``seed``, ``workers``, ``client``, ``type``.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper``, one row per parameter.
        """
        from .inference.bootstrap import confint_boot, natural_parameters
        from .inference.profile import confint_profile

        level = check_level(level)
        check_choice("method", method, ("wald", "profile", "boot"))
        if method == "profile":
            return confint_profile(self, parm, level)
        if method == "boot":
            return confint_boot(self, level, parm=parm, **kwargs)
        if method != "wald":
            raise InputError(f"method must be 'wald', 'profile' or 'boot', got {method!r}")
        z = stats.norm.ppf(0.5 + level / 2)
        names = natural_parameters(self).index
        lo = pd.Series(np.nan, index=names)
        hi = pd.Series(np.nan, index=names)
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        lo[self.fixef.index], hi[self.fixef.index] = self._beta - z * se, self._beta + z * se
        out = pd.DataFrame({"lower": lo, "upper": hi})
        if parm is None:
            return out
        want = [parm] if isinstance(parm, str) else list(parm)
        unknown = [p for p in want if p not in out.index]
        if unknown:
            raise InputError(f"unknown parameter {unknown[0]!r}; parameters: {list(out.index)}")
        return out.loc[want]

    def profile(self, parm=None) -> pd.DataFrame:
        """The likelihood profile of the parameters.

        Parameters
        ----------
        parm : str or list of str, optional
            Parameters to profile (default: all but the family's).

        Returns
        -------
        pandas.DataFrame
            Columns ``parameter``, ``value``, ``zeta`` (draw it with ``gk.plots.profile_plot``).
        """
        from .inference.profile import profile

        return profile(self, parm)

    def r2(self) -> pd.Series:
        """Marginal and conditional R^2 (Nakagawa & Schielzeth) with the variance components.

        Returns
        -------
        pandas.Series
            ``R2_marginal``, ``R2_conditional``, ``var_fixed``, ``var_random``, ``var_distribution``.
        """
        from .inference.r2 import r2

        return r2(self)

    def icc(self) -> pd.Series:
        """Adjusted intra-class correlation (overall, and per grouping factor when there are several).

        Returns
        -------
        pandas.Series
            ``ICC`` and ``ICC[group]`` for each grouping factor.
        """
        from .inference.r2 import icc

        return icc(self)

    def predict_interval(self, newdata: pd.DataFrame, nsim: int = 1000, level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Prediction intervals by simulation (fixed effects, random effects and the response drawn).

        Parameters
        ----------
        newdata : pandas.DataFrame
            The rows to predict.
        nsim : int
            Simulations.
        level : float
            Interval level.
        **kwargs
            ``re_form``, ``which`` ("observation" or "mean"), ``type``, ``seed``.

        Returns
        -------
        pandas.DataFrame
            Columns ``fit``, ``lower``, ``upper`` and ``mean``, one row per new row.
        """
        from .inference.prediction import predict_interval

        return predict_interval(self, newdata, nsim, level, **kwargs)

    def report(self, path, **kwargs):
        """Write a self-contained HTML report (tables, intervals, figures), atomically.

        Parameters
        ----------
        path : str or path-like
            The HTML file.
        **kwargs
            ``intervals`` ("profile", "wald" or "boot") and ``title``.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        from .report import write_report

        return write_report(self, path, **kwargs)

    # ---- reporting ---------------------------------------------------------------
    def summary(self) -> str:
        """lme4's summary as text (``print(fit.summary())`` or ``print(fit)`` shows it).

        Returns
        -------
        str
            The report: formula, family, method, information criteria, random effects, fixed effects,
            convergence messages.
        """
        from .summary import format_summary

        return format_summary(self)

    def __repr__(self) -> str:
        kind = "LMM" if self.is_lmm else f"GLMM {self.family.name}({self.family.link.name})"
        return f"<glmmkit Fit {kind}: {self.spec.formula!r}, logLik {self.loglik:.4f}, n={self.nobs}>"

    def to_dict(self, names: str = "formulaic") -> dict:
        """The fit as strict JSON (non-finite numbers are null).

        Parameters
        ----------
        names : {"formulaic", "lme4"}
            Coefficient names: formulaic's (``period[T.2]``) or R's (``period2``).

        Returns
        -------
        dict
            Only str, int, float (finite), bool, None, lists and dicts: ``json.dumps(..., allow_nan=False)``
            accepts it.
        """
        check_choice("names", names, ("formulaic", "lme4"))
        return json_safe(self._as_dict(names))

    def _as_dict(self, names: str) -> dict:
        conv = (lambda s: lme4_name(s)) if names == "lme4" else (lambda s: s)
        ct = self.coef_table
        fixef = {}
        for nm, row in ct.iterrows():
            fixef[conv(nm)] = {
                "estimate": float(row["estimate"]),
                "std_error": float(row["std_error"]),
                "z": float(row["t"] if self.is_lmm else row["z"]),
                "p": None if self.is_lmm else float(row["p"]),
            }
        vc = []
        for _, r in self.varcorr.iterrows():
            row = {k: (None if (isinstance(v, float) and np.isnan(v)) else v) for k, v in r.items()}
            for k in ("term1", "term2"):
                if isinstance(row.get(k), str):
                    row[k] = conv(row[k])
            vc.append(row)
        return {
            "formula": self.spec.formula,
            "family": "gaussian" if self.is_lmm else self.family.name,
            "link": "identity" if self.is_lmm else self.family.link.name,
            "method": ("REML" if self.reml else "ML") if self.is_lmm else (
                "REML (Laplace)" if self.reml else "Laplace" if self.nagq == 1 else f"AGQ({self.nagq})"),
            "nobs": self.nobs,
            "ngroups": self.ngroups,
            "fixef": fixef,
            "varcorr": vc,
            "covpars": [dict(r, parameter=conv(r["parameter"])) for r in self.covpars.to_dict("records")],
            "sigma": self.sigma,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "deviance": self.deviance,
            "df_resid": self.df_resid,
            "converged": self.converged,
            "singular": self.singular,
            "messages": self.messages,
            "vcov_method": self.vcov_method,
            "optimizer": self.optsummary.to_dict(),
            "n_dropped": self.spec.n_dropped,
            "time_s": self.time_s,
        }


def _term_contribution(t, b: np.ndarray, newdata: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
    from .inference.prediction import new_level_positions

    pos = new_level_positions(t, newdata, allow_new_levels)
    new = pos < 0
    Xr = t.new_matrix(newdata)
    bb = np.where(new[:, None], 0.0, b[np.maximum(pos, 0)])
    return np.einsum("ik,ik->i", Xr, bb)


#: an eigenvalue of the Hessian below this share of the largest is a flat direction (finite differences' noise)
FLAT_EIGEN = 1e-7
#: a flat direction that moves no fixed effect by more than this (unit eigenvector) leaves their variance defined
FLAT_BETA_WEIGHT = 1e-3


def _flat_ridge_inverse(H: np.ndarray, beta_rows: list, names: list | None) -> tuple[np.ndarray | None, str]:
    """H^-1, or where H is singular only along directions that leave the fixed effects alone, its inverse on
    the other directions (a pseudo-inverse), with a message naming the flat parameters.

    A dispersion model's level whose dispersion runs off to its limit (glmmTMB's compois on Salamanders: the
    mined = "yes" dispersion at 18 with a standard error of 3,139) makes -2 log L flat along that parameter;
    its finite-difference curvature is 0 up to noise of either sign.  The fixed effects' variances do not
    involve that direction and are what glmmTMB reports; the flat parameter has no finite variance.

    Parameters
    ----------
    H : numpy.ndarray
        The Hessian of -2 log L over the free parameters.
    beta_rows : list
        The rows of H that are fixed effects.
    names : list or None
        The free parameters' names.

    Returns
    -------
    (numpy.ndarray or None, str)
        The inverse, NaN in the rows and columns of the parameters on the flat ridge (None where H is not
        usable), and a message ("" for a positive-definite H).
    """
    try:
        np.linalg.cholesky(H)
        return np.linalg.inv(H), ""
    except np.linalg.LinAlgError:
        pass
    if not np.all(np.isfinite(H)):
        return None, ""
    w, U = np.linalg.eigh((H + H.T) / 2)
    flat = w <= FLAT_EIGEN * max(float(w.max()), 0.0)
    if flat.all() or np.any(w[flat] < -FLAT_EIGEN * float(w.max()) * 100):
        return None, ""  # a clearly negative curvature: not an optimum, not a flat ridge
    if np.max(np.abs(U[np.ix_(beta_rows, np.flatnonzero(flat))]), initial=0.0) > FLAT_BETA_WEIGHT:
        return None, ""
    keep = ~flat
    on_ridge = np.max(np.abs(U[:, flat]), axis=1) > FLAT_BETA_WEIGHT
    V = (U[:, keep] / w[keep]) @ U[:, keep].T
    V[on_ridge, :] = np.nan  # no finite variance along the ridge
    V[:, on_ridge] = np.nan
    who = [names[i] for i in np.flatnonzero(on_ridge)] if names else []
    return V, (f"the Hessian is flat along {', '.join(who) or 'a non-fixed-effect direction'} (not identified "
               "there: no finite variance); the fixed effects' standard errors from the other directions")


def _glmm_vcov(opt, res, spec, st: Structure, theta) -> tuple[np.ndarray, str]:
    """vcov(beta) from the Hessian of -2 log L over (theta, beta[, log phi]); PIRLS-based fallback."""
    p = spec.p
    nt = len(theta)
    H = opt.hessian
    if H is not None and opt._free is not None:
        free = opt._free
        Hf = H[np.ix_(free, free)]
        idx = np.flatnonzero(free) if np.asarray(free).dtype == bool else np.asarray(free, dtype=int)
        names = list(opt.param_names)
        Vf, how = _flat_ridge_inverse(Hf, [i for i, j in enumerate(idx) if nt <= j < nt + p],
                                      [names[j] for j in idx] if len(names) == len(H) else None)
        if Vf is not None:
            V = np.zeros_like(H)
            V[np.ix_(free, free)] = 2 * Vf
            s = opt._scale
            vb = V[nt : nt + p, nt : nt + p] * np.outer(s, s)
            if np.all(np.diag(vb) > 0):
                if how:
                    opt.messages.append(how)
                return vb, "Hessian of -2 log L (finite differences)"
        opt.messages.append("Hessian not positive definite: standard errors from the PIRLS fit instead")
    if not st.supports_joint:
        opt.messages.append(f"no standard errors: the Hessian failed and the {st.name} system has no joint "
                            "(u, beta) solve to fall back on")
        return np.full((p, p), np.nan), "not available (Hessian not positive definite)"
    try:
        f = st.factor(st.raw(res.w, opt.objective.data.X), theta)  # the engine's rows (stacked for a zi model)
        rx = f.Lt[st.Qtt : st.Qtt + p, st.Qtt : st.Qtt + p]
        rinv = np.linalg.inv(rx)
    except np.linalg.LinAlgError:
        # the fixed effects' information is singular at the mode (separation, weights that vanish): no
        # standard errors, and the fit is reported as not converged (Fit._unusable)
        opt.messages.append("the fixed effects' information matrix is singular at the mode: no standard errors")
        return np.full((p, p), np.nan), "not available (singular information)"
    extra = getattr(opt, "reml_beta_extra", None)
    if extra is not None:  # REML: the variance parameters' uncertainty carried into beta (glmmTMB's)
        return rinv.T @ rinv + extra, "REML: (R_X' R_X)^-1 at the joint mode + J V_theta J'"
    return rinv.T @ rinv, "PIRLS (R_X' R_X)^-1 at the mode"
