"""``gk.clmm``: cumulative-link mixed models for ordered responses (ordinal::clmm's model).

    fit = gk.clmm("rating ~ temp + contact + (1 | judge)", wine)        # logit link, flexible thresholds
    fit.family_params                                                   # the thresholds "1|2", "2|3", ...
    fit.predict(newdata, type="prob")                                   # category probabilities

The response's categories are read in their order: an ordered pandas Categorical's, or a numeric column's
sorted values. The model is P(Y <= j) = F(theta_j - eta) with eta = X beta + Z b without an intercept (the
thresholds hold it); the family (families/ordinal.py) gives the engine its log-likelihood in eta, and the
fit is the engine's Laplace (or AGQ) like any GLMM's.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from .api import _fit_failures, _warn
from .checks import check_choice, check_int
from .engine.control import as_control
from .errors import InputError
from .families.ordinal import CDFS, CumulativeLink
from .fitting import optimize
from .formula.parse import check_formula_text, parse_formula
from .formula.spec import ModelSpec
from .results import Fit
from .warnings import ModelChangeWarning


def ordered_codes(values: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    """Codes 1..J of an ordered response and its category labels.

    Parameters
    ----------
    values : pandas.Series
        The response column.
    name : str
        Its name, for messages.

    Returns
    -------
    tuple
        (codes as floats, NaN where missing; labels in order). Unused categories of a Categorical are
        dropped with a warning naming them.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        if not values.cat.ordered:
            warnings.warn(f"ordinal response {name!r} is an unordered Categorical: its categories are taken in the "
                          f"order {list(values.cat.categories)}", ModelChangeWarning, stacklevel=3)
        used = values.cat.remove_unused_categories()
        unused = [c for c in values.cat.categories if c not in set(used.cat.categories)]
        if unused:
            warnings.warn(f"ordinal response {name!r}: categories without observations dropped: {unused}",
                          ModelChangeWarning, stacklevel=3)
        codes = used.cat.codes.to_numpy().astype(float) + 1.0
        codes[used.isna().to_numpy()] = np.nan
        return codes, [str(c) for c in used.cat.categories]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.to_numpy(dtype=float)
        levels = np.unique(v[np.isfinite(v)])
        codes = np.full(len(v), np.nan)
        ok = np.isfinite(v)
        codes[ok] = np.searchsorted(levels, v[ok]) + 1.0
        return codes, [f"{x:g}" for x in levels]
    raise InputError(f"ordinal response {name!r} has dtype {values.dtype}: give an ordered pandas Categorical "
                     "(pd.Categorical(x, categories=[...], ordered=True)) or numbers, so that the categories' "
                     "order is known")


def clmm(formula: str, data: pd.DataFrame, *, link: str = "logit", threshold: str = "flexible", nagq: int = 1,
         weights=None, na_action: str = "drop", control=None) -> Fit:
    """Fit a cumulative-link mixed model (ordinal::clmm) by maximum likelihood.

    Parameters
    ----------
    formula : str
        e.g. ``"rating ~ temp + contact + (1 | judge)"``; the response an ordered Categorical or numbers.
    data : pandas.DataFrame
        The columns the formula names.
    link : {"logit", "probit"}
        The latent distribution (cumulative logit or probit).
    threshold : {"flexible"}
        Thresholds free and ordered (ordinal's default; "symmetric" and "equidistant" are not available).
    nagq : int
        1 for the Laplace approximation (clmm's default), more for adaptive Gauss-Hermite quadrature with a
        single scalar random-effect term.
    weights : str or array, optional
        Frequency weights.
    na_action : {"drop", "raise"}
        Rows with missing values dropped and counted, or refused.
    control : Control or dict, optional
        The optimiser's switches and tolerances.

    Returns
    -------
    Fit
        The fit; ``family_params`` holds the thresholds, ``fixef`` the effects on the latent scale (positive:
        higher categories), ``predict(type="prob"|"cumprob"|"response"|"link")``.
    """
    t0 = time.perf_counter()
    check_choice("link", link, CDFS)
    if threshold != "flexible":
        raise InputError(f"threshold={threshold!r} is not available; thresholds are 'flexible' (free and ordered)")
    nagq = check_int("nagq", nagq, 1, 25)
    check_formula_text(formula)
    from .frames import as_pandas

    data = as_pandas(data)
    parsed = parse_formula(formula)
    resp = parsed.response.strip().strip("`")
    if resp not in data.columns:
        raise InputError(f"the response {resp!r} is not a column of the data")
    codes, labels = ordered_codes(data[resp], resp)
    if len(labels) < 2:
        raise InputError(f"ordinal response {resp!r} has {len(labels)} category; at least 2 are needed")
    data = data.copy()
    data[resp] = codes
    fam = CumulativeLink(len(labels), link)
    fam.labels = labels
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fixed-effect model matrix is rank deficient")
        spec = ModelSpec.from_formula(formula, data, fam, weights=weights, na_action=na_action)
    _drop_intercept(spec, formula)
    control = as_control(control)
    with _fit_failures(spec):
        opt = optimize(spec.objective(nagq=nagq, laplace="observed", quad_stop=control.quad_stop), control=control)
        fit = Fit(spec, opt, time_s=time.perf_counter() - t0)
    _warn(fit)
    return fit


def _drop_intercept(spec: ModelSpec, formula: str) -> None:
    """The thresholds hold the intercept: remove its column (a formula without one is refused, since its
    factor codes would then be aliased with the thresholds)."""
    if "(Intercept)" not in spec.x_names:
        raise InputError(f"{formula!r} has no intercept: write the fixed part with it (e.g. 'rating ~ temp'); the "
                         "thresholds take its place")
    j = spec.x_names.index("(Intercept)")
    keep = [i for i in range(len(spec.x_names)) if i != j]
    spec.X = spec.X[:, keep]
    spec.x_names = [spec.x_names[i] for i in keep]
    spec._kept_cols = np.asarray(spec._kept_cols)[keep]
