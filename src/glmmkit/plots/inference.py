"""Figures of a fit: caterpillar, coefficients, effects, fitted vs observed, likelihood profiles.

Each function returns the matplotlib figure and, given ``path``, saves it there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .figure import axes_for, finish, plt_module as _plt
from ..errors import InputError


def caterpillar(fit, group: str | None = None, level: float = 0.95, path=None, max_levels: int = 200, ax=None):
    """Conditional modes of one grouping factor's random effects, sorted, with +- z x conditional SD.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    group : str, optional
        The grouping factor (default: the first).
    level : float
        The intervals' level.
    path : str or path-like, optional
        Save there (atomically).
    max_levels : int
        Most levels drawn (the extremes kept).
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        One axes per random-effect column (a new figure otherwise).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    modes, sds = fit.ranef, fit.ranef_condsd
    group = group or next(iter(modes))
    if group not in modes:
        raise InputError(f"no random effects for {group!r}; groups: {list(modes)}")
    b, s = modes[group], sds[group]
    z = stats.norm.ppf(0.5 + level / 2)
    cols = list(b.columns)
    shown = min(len(b), max_levels)
    fig, axes = axes_for(ax, len(cols), (4.2 * len(cols), min(0.16 * shown + 1.6, 16)))
    for a, c in zip(axes, cols):
        order = np.argsort(b[c].to_numpy())
        if len(order) > max_levels:  # thin evenly, keep both ends
            order = order[np.linspace(0, len(order) - 1, max_levels).astype(int)]
        y = np.arange(len(order))
        a.errorbar(b[c].to_numpy()[order], y, xerr=z * s[c].to_numpy()[order], fmt="o", ms=3, color="k",
                   ecolor="grey", lw=0.8)
        a.axvline(0, color="tab:red", lw=0.8)
        # every level labelled up to 80; beyond, every k-th (both ends kept)
        step = 1 if len(y) <= 80 else int(np.ceil(len(y) / 60))
        ticks = np.unique(np.r_[y[::step], y[-1]])
        a.set_yticks(ticks)
        a.set_yticklabels(np.asarray(b.index).astype(str)[order][ticks], fontsize=7 if len(y) <= 40 else 6)
        a.set_ylim(-1, len(y))
        a.set_title(f"{group}: {c}", fontsize=9)
        a.set_xlabel(f"conditional mode, {int(level * 100)}% interval")
    return finish(fig, path, dpi=110)


def coef_plot(fit, level: float = 0.95, path=None, intercept: bool = False, ax=None):
    """Fixed-effect estimates with Wald intervals.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    level : float
        The intervals' level.
    path : str or path-like, optional
        Save there (atomically).
    intercept : bool
        Draw the intercept too.
    ax : matplotlib.axes.Axes, optional
        Draw here (a new figure sized to the coefficients otherwise).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    ct = fit.coef_table
    if not intercept and len(ct) > 1:
        ct = ct.drop(index="(Intercept)", errors="ignore")
    df = ct["df"].to_numpy(float) if "df" in ct else np.full(len(ct), np.inf)
    crit = stats.t.ppf(0.5 + level / 2, np.where(np.isfinite(df), df, np.inf))
    fig, (ax,) = axes_for(ax, 1, (7.0, max(0.5 * len(ct) + 1.6, 3.2)))
    y = np.arange(len(ct))[::-1]
    ax.errorbar(ct["estimate"], y, xerr=crit * ct["std_error"], fmt="o", ms=6, color="k", ecolor="grey", lw=1.5,
                capsize=3)
    ax.axvline(0, color="tab:red", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([str(i) for i in ct.index], fontsize=10)
    ax.tick_params(axis="x", labelsize=9)
    ax.set_ylim(-0.7, len(ct) - 0.3)
    ax.set_xlabel(f"estimate ({'link' if not fit.is_lmm else 'response'} scale), {int(level * 100)}% interval"
                  + (" (Satterthwaite df)" if "df" in ct else ""), fontsize=10)
    ax.set_title("Fixed effects", fontsize=11)
    return finish(fig, path, dpi=110)


def effects_plot(fit, predictor: str, level: float = 0.95, path=None, n: int = 60, type: str = "response",
                 ax=None, re_form: str | None = "~0", newdata: pd.DataFrame | None = None):
    """Predictions against one predictor (others at their mean or reference level), with a pointwise
    confidence band from ``fit.predict(..., se_fit=True)``; the data as points where they fit the scale.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    predictor : str
        A predictor of the fixed effects (numeric: a curve and band; a factor: points and intervals).
    level : float
        The band's level.
    path : str or path-like, optional
        Save there (atomically).
    n : int
        Points along the predictor.
    type : {"response", "link"}
        The scale.
    ax : matplotlib.axes.Axes, optional
        Draw here (a new figure otherwise).
    re_form : str, optional
        ``"~0"`` (population level, the default) or None / a term formula to condition on random effects
        (then ``newdata`` must name the levels).
    newdata : pandas.DataFrame, optional
        One row of values for the other variables (default: means and first levels).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    data = fit.spec.data
    if predictor not in data.columns:
        raise InputError(f"predictor {predictor!r} is not a column of the fitted data")
    base = {}
    for c in data.columns:
        col = data[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            base[c] = float(col.mean())
        else:
            base[c] = col.cat.categories[0] if isinstance(col.dtype, pd.CategoricalDtype) else col.iloc[0]
    if newdata is not None:
        base.update({c: newdata[c].iloc[0] for c in newdata.columns})
    x = data[predictor]
    numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
    grid = np.linspace(x.min(), x.max(), n) if numeric else (
        list(x.cat.categories) if isinstance(x.dtype, pd.CategoricalDtype) else sorted(x.unique()))
    new = pd.DataFrame({c: [v] * len(grid) for c, v in base.items()})
    new[predictor] = grid
    for c in data.columns:
        if isinstance(data[c].dtype, pd.CategoricalDtype):
            new[c] = pd.Categorical(new[c], categories=data[c].cat.categories)
    kind = "link" if (fit.is_lmm or type == "link") else "response"
    pred = fit.predict(new, re_form=re_form, type=kind, se_fit=True, level=level)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
    else:
        fig = ax.figure
    if numeric:
        ax.fill_between(grid, pred["lower"], pred["upper"], color="tab:blue", alpha=0.25,
                        label=f"{int(level * 100)}% confidence band")
        ax.plot(grid, pred["estimate"], color="tab:blue")
        if type == "response" and not fit.spec.offset.any():
            ax.plot(x, fit.spec.y, ".", color="k", alpha=0.15, ms=3)
    else:
        pos = np.arange(len(grid))
        est = pred["estimate"].to_numpy()
        ax.errorbar(pos, est, yerr=[est - pred["lower"].to_numpy(), pred["upper"].to_numpy() - est], fmt="o",
                    capsize=3)
        ax.set_xticks(pos)
        ax.set_xticklabels([str(g) for g in grid])
    ax.set_xlabel(predictor)
    ax.set_ylabel("predicted " + ("response" if type == "response" else "linear predictor")
                  + (" (offset at its mean)" if fit.spec.offset.any() else ""))
    what = "random effects at 0" if re_form == "~0" else "conditional on the random effects"
    ax.set_title(f"Effect of {predictor} ({what}; {int(level * 100)}% confidence band)", fontsize=9)
    return finish(fig, path, dpi=110)


def fitted_observed(fit, path=None, ax=None, bins: int = 10):
    """Observed against fitted, the identity line marked.  A binary response (0/1 without trials) gets a
    calibration plot instead: the observed share in bins of the fitted probability (deciles), with binomial
    intervals, against the bins' mean fitted probability.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    path : str or path-like, optional
        Save there (atomically).
    ax : matplotlib.axes.Axes, optional
        Draw here (a new figure otherwise).
    bins : int
        Bins of the calibration plot.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    fig, (ax,) = axes_for(ax, 1, (5.6, 4.8))
    y, mu = fit.spec.y, np.asarray(fit.fitted)
    binary = (not fit.is_lmm and fit.family.name in ("binomial", "bernoulli") and np.all(fit.spec.wt == 1)
              and np.all(np.isin(y, (0.0, 1.0))))
    if binary:
        edges = np.unique(np.quantile(mu, np.linspace(0, 1, bins + 1)))
        which = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, len(edges) - 2)
        n = np.bincount(which, minlength=len(edges) - 1)
        ok = n > 0
        k = np.bincount(which, weights=y, minlength=len(edges) - 1)[ok]
        n = n[ok]
        m = (np.bincount(which, weights=mu, minlength=len(edges) - 1)[ok]) / n
        p = k / n
        lo = stats.beta.ppf(0.025, k, n - k + 1)
        hi = stats.beta.ppf(0.975, k + 1, n - k)
        lo, hi = np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=1.0)
        ax.errorbar(m, p, yerr=[p - lo, hi - p], fmt="o", color="k", ecolor="grey", capsize=3)
        ax.plot([0, 1], [0, 1], color="tab:red", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("fitted probability (bin mean)")
        ax.set_ylabel("observed share (95% interval)")
        ax.set_title(f"Calibration: {len(n)} bins of the fitted probability", fontsize=10)
        return finish(fig, path, dpi=110)
    ax.plot(mu, y, ".", alpha=0.4, ms=4, color="k")
    lo, hi = float(min(mu.min(), y.min())), float(max(mu.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1)
    ax.set_xlabel("fitted (conditional mean)")
    ax.set_ylabel("observed")
    ax.set_title("Fitted vs observed", fontsize=10)
    return finish(fig, path, dpi=110)


def profile_plot(table: pd.DataFrame, level: float = 0.95, path=None, ax=None):
    """zeta against each parameter (lme4's ``xyplot`` of a profile), with the interval's quantiles dashed.

    Parameters
    ----------
    table : pandas.DataFrame
        ``Fit.profile()``'s table.
    level : float
        The interval's level.
    path : str or path-like, optional
        Save there (atomically).
    ax : sequence of matplotlib.axes.Axes, optional
        One axes per parameter (a new grid otherwise).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    params = list(dict.fromkeys(table["parameter"]))
    ncol = min(3, len(params))
    nrow = int(np.ceil(len(params) / ncol))
    if ax is None:
        fig, grid = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), squeeze=False)
        axes = grid.ravel()
    else:
        fig, axes = axes_for(ax, len(params), None)
    z = stats.norm.ppf(0.5 + level / 2)
    for ax, p in zip(axes, params):
        t = table[table["parameter"] == p].sort_values("value")
        ax.plot(t["value"], t["zeta"], "o-", ms=3)
        for q in (-z, 0, z):
            ax.axhline(q, color="grey", lw=0.7, ls="--" if q else "-")
        ax.set_title(p, fontsize=8)
        ax.set_ylabel("zeta")
    for ax in list(axes)[len(params):]:
        ax.axis("off")
    return finish(fig, path, dpi=110)


def interval_plot(labels, estimate, lower, upper, *, group=None, xlabel: str = "estimate", reference=None,
                  ax=None, path=None, log: bool = False):
    """Estimates with intervals, one row each (marginal means, contrasts), grouped by colour.

    Parameters
    ----------
    labels : array-like
        One label per row.
    estimate, lower, upper : array-like
        The estimates and their interval limits.
    group : array-like, optional
        A group per row (each ``by`` level), drawn in its own colour.
    xlabel : str
        The axis label.
    reference : float, optional
        A vertical line (0 for differences, 1 for ratios).
    ax : matplotlib.axes.Axes, optional
        Draw here (a new figure sized to the rows otherwise).
    path : str or path-like, optional
        Save there (atomically).
    log : bool
        A logarithmic axis (ratios).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    labels = np.asarray(labels).astype(str)
    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, lower, upper))
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(labels) + 1.4))
    else:
        fig = ax.figure
    y = np.arange(len(labels))[::-1]
    groups = [None] if group is None else list(dict.fromkeys(np.asarray(group).astype(str)))
    for i, g in enumerate(groups):
        sel = np.ones(len(labels), bool) if g is None else np.asarray(group).astype(str) == g
        ax.errorbar(est[sel], y[sel], xerr=[est[sel] - lo[sel], hi[sel] - est[sel]], fmt="o", ms=4, capsize=2,
                    color=f"C{i % 10}", label=g)
    if reference is not None:
        ax.axvline(reference, color="grey", lw=0.8, ls="--")
    if log:
        ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(xlabel)
    if group is not None:
        ax.legend(fontsize=7, frameon=False, loc="best")
    return finish(fig, path, dpi=110)


def influence_plot(infl, which: str = "cooks", ax=None, path=None):
    """Cook's distance of each deleted group, sorted, or the change in each fixed effect (``gk.influence``).

    Parameters
    ----------
    infl : Influence
        From ``gk.influence``.
    which : {"cooks", "dfbeta"}
        What to draw.
    ax : matplotlib.axes.Axes, optional
        Draw here (Cook's distance only).
    path : str or path-like, optional
        Save there (atomically).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    if which not in ("cooks", "dfbeta"):
        raise InputError(f"which must be 'cooks' or 'dfbeta', got {which!r}")
    t = infl.table
    labels = np.asarray(t.index).astype(str)
    if which == "cooks":
        d = t["cooks_distance"].to_numpy(float)
        order = np.argsort(np.nan_to_num(d, nan=-1.0))
        if ax is None:
            fig, ax = plt.subplots(figsize=(5.6, min(0.22 * len(d) + 1.4, 14)))
        else:
            fig = ax.figure
        y = np.arange(len(d))
        ax.hlines(y, 0, d[order], color="grey", lw=0.8)
        ax.plot(d[order], y, "o", color="k", ms=4)
        ax.axvline(4 / len(d), color="tab:red", lw=0.8, ls="--", label="4 / n")
        ax.set_yticks(y if len(y) <= 60 else [])
        if len(y) <= 60:
            ax.set_yticklabels(labels[order], fontsize=7)
        ax.set_xlabel("Cook's distance (leave one group out)")
        ax.legend(fontsize=7, frameon=False)
        return finish(fig, path, dpi=110)
    db = infl.dfbeta
    fig, axes = plt.subplots(1, db.shape[1], figsize=(3.2 * db.shape[1], min(0.22 * len(db) + 1.4, 14)),
                             squeeze=False, sharey=True)
    y = np.arange(len(db))
    for a, c in zip(axes[0], db.columns):
        a.plot(db[c].to_numpy(), y, "o", ms=3, color="k")
        a.axvline(0, color="tab:red", lw=0.8)
        a.set_title(c, fontsize=8)
        a.set_xlabel("change without the group", fontsize=8)
    axes[0][0].set_yticks(y if len(y) <= 60 else [])
    if len(y) <= 60:
        axes[0][0].set_yticklabels(labels, fontsize=7)
    return finish(fig, path, dpi=110)
