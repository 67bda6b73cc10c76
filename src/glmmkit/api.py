"""glmer / lmer: the composition of the public stages

    spec = ModelSpec.from_formula(...)   ->   obj = spec.objective()   ->
    opt = optimize(obj)                  ->   fit = Fit(spec, opt)
"""

from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np
import pandas as pd

from .engine.control import as_control
from .frames import as_pandas
from .fitting import optimize
from .families import Family, get_family
from .formula.spec import ModelSpec
from .results import Fit
from .warnings import ConvergenceWarning, SingularFitWarning
from .checks import check_choice, check_int
from .errors import FitError, InputError


def refit(fit: Fit, y, *, calc_derivs: bool = False) -> Fit:
    """lme4's ``refit(fit, y)``: the function form of ``Fit.refit``.

    Parameters
    ----------
    fit : Fit
        The fitted model; ``y`` and ``calc_derivs`` as in ``Fit.refit``.

    Returns
    -------
    Fit
        The same model fitted to ``y``.
    """
    return fit.refit(y, calc_derivs=calc_derivs)


#: a fixed-effect column beyond this has squares that overflow double precision (1e154^2 > 1.8e308)
OVERFLOW_SCALE = 1e150


@contextlib.contextmanager
def _fit_failures(spec: ModelSpec):
    """Turn a numerical failure of the fit into a FitError that says what in the data caused it."""
    if spec.X.size and np.max(np.abs(spec.X)) > OVERFLOW_SCALE:
        # X'WX overflows double precision before any search starts: refuse, naming the column
        raise FitError(_why_no_fit(spec, OverflowError("the fixed-effect cross-products overflow double precision")))
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            yield
    except (FitError, np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError, OverflowError) as err:
        raise FitError(_why_no_fit(spec, err)) from None


def _why_no_fit(spec: ModelSpec, err: Exception) -> str:
    """A message for a fit that failed numerically, naming the column whose scale is the likely cause."""
    msg = f"the model cannot be fitted to these data ({type(err).__name__}: {err})"
    if spec.X.size:
        big = np.max(np.abs(spec.X), axis=0)
        j = int(np.argmax(big))
        if big[j] > 1e8:
            return (f"{msg}: the fixed-effect column {spec.x_names[j]!r} reaches {big[j]:.3g}; rescale it "
                    "(centre and divide by its standard deviation)")
    for t in spec.terms:
        big = float(np.max(np.abs(t.X))) if t.X.size else 0.0
        if big > 1e8:
            return f"{msg}: the random-effects term ({t.lhs} | {t.group}) has values up to {big:.3g}; rescale them"
    if np.max(np.abs(spec.offset), initial=0) > 700:
        return f"{msg}: the offset reaches {np.max(np.abs(spec.offset)):.3g} on the link scale; check its units"
    return msg + ": check the response's scale and for perfectly separated or degenerate data"


def _warn(fit: Fit) -> None:
    if not fit.converged:
        warnings.warn("; ".join(m for m in fit.messages if "converge" in m), ConvergenceWarning, stacklevel=3)
    if fit.singular:
        warnings.warn("boundary (singular) fit: see fit.varcorr", SingularFitWarning, stacklevel=3)


def add_olre(formula: str, data: pd.DataFrame, name: str = "obs") -> tuple[str, pd.DataFrame]:
    """Add an observation-level random intercept.

    An existing column of that name is used only if it has one level per row; otherwise a free name
    (``obs_``, ``obs__``, ...) is taken.

    Parameters
    ----------
    formula : str
        The model's formula.
    data : pandas.DataFrame
        The data.
    name : str
        The observation factor's name.

    Returns
    -------
    tuple
        (formula + ``(1 | name)``, data with that column).
    """
    data = as_pandas(data)
    col = name
    while col in data.columns and data[col].nunique() != len(data):
        col += "_"
    if col not in data.columns:
        data = data.assign(**{col: np.arange(len(data))})
    return f"{formula} + (1 | {col})", data


def glmer(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    *,
    link: str | None = None,
    nagq: int = 1,
    weights=None,
    offset=None,
    relmat: dict | None = None,
    na_action: str = "drop",
    laplace: str | None = None,
    olre: bool = False,
    ziformula: str | None = None,
    dispformula: str | None = None,
    reml: bool = False,
    calc_derivs: bool = True,
    control=None,
    start: dict | None = None,
) -> Fit:
    """Fit a generalized linear mixed model by maximum likelihood (Laplace or adaptive Gauss-Hermite), or by
    REML.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``.
    data : pandas.DataFrame
        The columns the formula names.
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"nbinom2"``, ``"nbinom1"``, ``"Gamma"``, ``"inverse.gaussian"``,
        ``"gaussian"``, glmmTMB's ``"beta"``, ``"betabinomial"``, ``"tweedie"``, ``"t"``, ``"genpois"``,
        ``"compois"``, ``"truncated_poisson"``, ``"truncated_nbinom1"``, ``"truncated_nbinom2"``, or a family
        object (docs/families.md).
    link : str, optional
        A link overriding the family's default (``"probit"``, ``"cloglog"``, ...).
    nagq : int
        1 for the Laplace approximation, up to 25 for adaptive Gauss-Hermite quadrature (a single term on one
        grouping factor with up to 3 random effects per level: nagq^k nodes per level), 0 for the fast
        joint-mode approximation.
    weights : str or array, optional
        Prior weights (number of trials for a binomial proportion) as a column name or array.
    offset : str or array, optional
        An offset added to the linear predictor, beside ``offset()`` terms.
    relmat : dict, optional
        ``{grouping factor: K}`` known covariance (up to a variance) of that factor's levels.
    na_action : {"drop", "raise"}
        Rows with missing values dropped and counted, or refused.
    laplace : {"expected", "observed"}, optional
        Fisher information in the log-determinant (lme4) or the Hessian of the log-likelihood (glmmTMB);
        identical for canonical links. The default is the family's: expected, except NB1 (observed).
    olre : bool
        Add an observation-level random intercept ``(1 | obs)`` (see ``add_olre``).
    ziformula : str, optional
        Zero-inflation model, e.g. ``"~1"`` or ``"~ mined"`` (glmmTMB's ``zi=``): logit P(structural zero)
        = X_zi gamma; with a ``truncated_*`` family, a hurdle model.
    dispformula : str, optional
        Fixed effects on the log dispersion, e.g. ``"~ x"`` (glmmTMB's ``dispformula``; coefficients on
        glmmTMB's scale, reported as ``disp:`` rows of ``family_params``). With the Gaussian family and the
        identity link the model is fitted by maximum likelihood (heteroscedastic residuals).
    reml : bool
        Restricted maximum likelihood as glmmTMB's ``REML = TRUE``: the fixed effects are integrated with the
        random effects by one Laplace approximation over both, the variance parameters maximise that
        criterion, and the fixed effects are the joint mode there (``fit.loglik`` is the REML criterion).
        Laplace only (nagq=1); for the Gaussian family with the identity link it is lme4's REML.
    calc_derivs : bool
        Compute the Hessian at the optimum (convergence check, standard errors).
    control : Control or dict, optional
        The optimiser's switches and tolerances (``gk.Control``, e.g. ``Control(optimizer="nelder-mead")``),
        recorded as ``fit.optsummary.control``.
    start : dict, optional
        Start values ``{"theta": ..., "beta": ..., "psi": ...}`` (lme4's ``start``; e.g. a previous fit's
        ``fit.theta`` and ``fit.fixef``) in place of the moment and GLM starts.

    Returns
    -------
    Fit
        The fitted model.
    """
    data = as_pandas(data)
    call = {"fn": glmer, "glmer": glmer, "formula": formula, "data": data, "family": family,
            "kw": dict(link=link, nagq=nagq, weights=weights, offset=offset, relmat=relmat, na_action=na_action,
                       laplace=laplace, olre=olre, ziformula=ziformula, dispformula=dispformula, reml=reml,
                       calc_derivs=calc_derivs, control=control, start=start)}
    t0 = time.perf_counter()
    fam = get_family(family, link)
    if not isinstance(reml, (bool, np.bool_)):
        raise InputError(f"reml must be True or False, got {reml!r}")
    if reml and nagq != 1:
        raise InputError("reml=True integrates the fixed effects by the Laplace approximation: use nagq=1")
    nagq = check_int("nagq", nagq, 0, 25)
    if laplace is not None:
        check_choice("laplace", laplace, ("expected", "observed"))
    for arg, val in (("olre", olre), ("calc_derivs", calc_derivs)):
        if not isinstance(val, (bool, np.bool_)):
            raise InputError(f"{arg} must be True or False, got {val!r}")
    if olre:
        formula, data = add_olre(formula, data)
    if dispformula is not None and nagq > 1:
        raise InputError("adaptive quadrature (nagq > 1) is not available with a dispformula; use nagq=1")
    if fam.name == "gaussian" and fam.link.name == "identity" and dispformula is None:
        if ziformula is not None:
            from .zeroinflated import ZI_FAMILIES
            raise InputError(f"ziformula is available for the families {list(ZI_FAMILIES)}, not 'gaussian'")
        if nagq != 1:
            raise InputError("nagq is for GLMMs: a gaussian model with the identity link is a linear mixed model, "
                             "fitted exactly (use lmer(..., reml=False))")
        if start is not None and set(start) - {"theta"}:
            raise InputError("a gaussian model with the identity link is a linear mixed model, whose fixed "
                             "effects are profiled out: start takes theta only")
        return lmer(formula, data, reml=bool(reml), weights=weights, offset=offset, relmat=relmat,
                    na_action=na_action, control=control, start=start)
    spec = ModelSpec.from_formula(formula, data, fam, weights=weights, offset=offset, relmat=relmat,
                                  na_action=na_action, ziformula=ziformula, dispformula=dispformula)
    laplace = laplace or spec.family.default_laplace
    control = as_control(control)
    with _fit_failures(spec):
        opt = optimize(spec.objective(nagq=nagq, laplace=laplace, quad_stop=control.quad_stop, reml=bool(reml)),
                       calc_derivs=calc_derivs, control=control, start=start)
        fit = Fit(spec, opt, time_s=time.perf_counter() - t0)
    fit._call = call
    _warn(fit)
    return fit


def lmer(
    formula: str,
    data: pd.DataFrame,
    *,
    reml: bool = True,
    weights=None,
    offset=None,
    relmat: dict | None = None,
    na_action: str = "drop",
    dispformula: str | None = None,
    control=None,
    start: dict | None = None,
) -> Fit:
    """Fit a linear mixed model by REML (default) or ML, with the closed-form profiled deviance.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
        The columns the formula names.
    reml : bool
        REML (default) or maximum likelihood.
    weights, offset : str or array, optional
        Precision weights and an offset, as column names or arrays.
    relmat : dict, optional
        ``{grouping factor: K}`` known covariance of that factor's levels.
    na_action : {"drop", "raise"}
        Rows with missing values dropped and counted, or refused.
    dispformula : str, optional
        Fixed effects on the log residual variance (heteroscedastic residuals, glmmTMB's ``dispformula``):
        fitted through ``glmer`` with the Gaussian family, by ML or (``reml=True``) glmmTMB's REML.
    control : Control or dict, optional
        The search (``gk.Control(optimizer=...)``; ``maxfev`` bounds it), recorded on the fit.
    start : dict, optional
        ``{"theta": ...}``: a start for the relative covariance parameters (lme4's ``start``).

    Returns
    -------
    Fit
        The fitted model.
    """
    data = as_pandas(data)
    call = {"fn": lmer, "glmer": glmer, "formula": formula, "data": data, "family": "gaussian",
            "kw": dict(reml=reml, weights=weights, offset=offset, relmat=relmat, na_action=na_action,
                       dispformula=dispformula, control=control, start=start)}
    t0 = time.perf_counter()
    if not isinstance(reml, (bool, np.bool_)):
        raise InputError(f"reml must be True or False, got {reml!r}")
    if dispformula is not None:
        # heteroscedastic residuals: the GLMM engine's Gaussian family, whose Laplace is exact (REML as
        # glmmTMB's: the fixed effects integrated with the random effects)
        fit = glmer(formula, data, "gaussian", weights=weights, offset=offset, relmat=relmat, na_action=na_action,
                    dispformula=dispformula, reml=bool(reml), control=control, start=start)
        fit._call = call
        return fit
    spec = ModelSpec.from_formula(formula, data, "gaussian", weights=weights, offset=offset, relmat=relmat,
                                  na_action=na_action, lmm=True)
    with _fit_failures(spec):
        opt = optimize(spec.lmm_objective(reml=reml), control=control, start=start)
        fit = Fit(spec, opt, time_s=time.perf_counter() - t0)
    fit._call = call
    _warn(fit)
    return fit

