"""Meta-analysis figures: forest plot and funnel plot."""

from __future__ import annotations

import numpy as np
from scipy import stats

from .figure import finish, plt_module as _plt


def forest_plot(fit, path=None, title: str = ""):
    """Forest plot: per-study estimates and intervals, the pooled diamond, the prediction interval.

    Parameters
    ----------
    fit : MetaFit
        The pooled analysis.
    path : str or path-like, optional
        Save there (atomically).
    title : str
        The title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    s = fit.studies
    k = len(s)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * k + 2.2))
    ys = np.arange(k, 0, -1) + 1.5
    ok = s["yi"].notna().to_numpy()
    w = s["weight"].fillna(0).to_numpy()
    size = 20 + 180 * w / max(w.max(), 1e-12)
    ax.hlines(ys[ok], s["lower"][ok], s["upper"][ok], color="k", lw=1)
    ax.scatter(s["yi"][ok], ys[ok], s=size[ok], marker="s", color="k", zorder=3)
    if "model_estimate" in s.columns:
        ax.scatter(s["model_estimate"], ys, s=14, marker="o", facecolors="none", edgecolors="tab:blue", zorder=4,
                   label="study estimate from the model")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    est, lo, hi = fit.estimate, fit.coef["lower"].iloc[0], fit.coef["upper"].iloc[0]
    ax.fill([lo, est, hi, est], [0.9, 1.2, 0.9, 0.6], color="tab:red", zorder=3)
    if fit.tau2 > 0:
        plo, phi = fit.prediction_interval()
        ax.hlines(0.35, plo, phi, color="tab:red", lw=2)
        ax.text(phi, 0.35, "  prediction interval", va="center", fontsize=7, color="tab:red")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(list(ys) + [0.9])
    ax.set_yticklabels([str(x) for x in s.index] + ["pooled"], fontsize=8)
    ax.set_ylim(0, k + 2.5)
    lim = np.nanmax(np.abs(np.r_[s["lower"][ok], s["upper"][ok], lo, hi]))
    ax.set_xlim(-lim * 1.05, lim * 1.05)
    f = (lambda x: 1 / (1 + np.exp(-x))) if fit.measure == "PLO" else np.exp
    if fit.measure == "PLO":
        nice = np.array([0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999])
        ticks = np.log(nice / (1 - nice))
    else:
        nice = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100])
        ticks = np.log(nice)
    keep = np.abs(ticks) <= lim * 1.05
    ax.set_xticks(ticks[keep])
    ax.set_xticklabels([f"{v:g}" for v in nice[keep]], fontsize=8)
    from ..meta.measures import NATURAL

    ax.set_xlabel(f"{NATURAL[fit.measure]} (log scale)")
    pct = int(round(fit.level * 100))
    ax.set_title(title or f"{fit.method}\npooled {f(est):.3f} ({pct}% CI {f(lo):.3f} to {f(hi):.3f}), "
                 f"tau^2 = {fit.tau2:.3f}", fontsize=9)
    return finish(fig, path, dpi=120)


def funnel_plot(fit, path=None, title: str = ""):
    """Funnel plot: per-study estimates against their standard errors, with pseudo-confidence limits.

    Parameters
    ----------
    fit : MetaFit
        The pooled analysis.
    path : str or path-like, optional
        Save there (atomically).
    title : str
        The title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    s = fit.studies.dropna(subset=["yi"])
    se = np.sqrt(s["vi"].to_numpy())
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = se.max() * 1.1
    z = stats.norm.ppf(0.975)
    grid = np.linspace(0, top, 50)
    ax.plot(fit.estimate - z * grid, grid, color="grey", lw=0.8)
    ax.plot(fit.estimate + z * grid, grid, color="grey", lw=0.8)
    ax.axvline(fit.estimate, color="tab:red", lw=1)
    ax.scatter(s["yi"], se, color="k", s=18, zorder=3)
    ax.set_ylim(top, 0)
    ax.set_xlabel(f"per-study estimate ({'log' if fit.measure != 'PLO' else 'logit'} scale)")
    ax.set_ylabel("standard error")
    ax.set_title(title or f"Funnel plot ({fit.k} studies)", fontsize=9)
    return finish(fig, path, dpi=120)
