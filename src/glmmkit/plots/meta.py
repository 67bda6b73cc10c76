"""Meta-analysis figures: forest plot and funnel plot."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..output import save_figure
from .figure import axes_for, finish


def _arm_columns(s, measure: str) -> list[tuple[str, list[str]]]:
    """metafor's count columns of a forest plot: events / total per arm (or events / person-time)."""
    def frac(a, b):
        return [f"{int(x)}/{int(y)}" if np.isfinite(x) and np.isfinite(y) else "" for x, y in zip(a, b)]

    if {"ai", "bi", "ci", "di"} <= set(s.columns):
        return [("treated", frac(s["ai"], s["ai"] + s["bi"])), ("control", frac(s["ci"], s["ci"] + s["di"]))]
    if {"x1i", "t1i", "x2i", "t2i"} <= set(s.columns):
        return [("events/time 1", [f"{int(x)}/{y:g}" for x, y in zip(s["x1i"], s["t1i"])]),
                ("events/time 2", [f"{int(x)}/{y:g}" for x, y in zip(s["x2i"], s["t2i"])])]
    if {"xi", "mi"} <= set(s.columns):
        return [("events", frac(s["xi"], s["xi"] + s["mi"]))]
    return []


def _width_in(fig, texts, fontsize: float = 8) -> float:
    """The width in inches of the widest of some texts (bold, at fontsize) on this figure."""
    renderer = fig.canvas.get_renderer()
    widest = 0.0
    for t in texts:
        h = fig.text(0, 0, t, fontsize=fontsize, fontweight="bold")
        widest = max(widest, h.get_window_extent(renderer).width / fig.dpi)
        h.remove()
    return widest


def forest_plot(fit, path=None, title: str = "", ax=None):
    """Forest plot as metafor's: per-study estimates and intervals with the pooled diamond and the
    prediction interval, and text columns for each study's counts per arm, its estimate [CI] on the natural
    scale and its weight.

    Parameters
    ----------
    fit : MetaFit
        The pooled analysis.
    path : str or path-like, optional
        Save there (atomically).
    title : str
        The title.
    ax : matplotlib.axes.Axes, optional
        Draw here (the text columns sit left and right of it; a new figure with room for them otherwise).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    s = fit.studies
    k = len(s)
    arms = _arm_columns(s, fit.measure)
    note = ""
    new = ax is None
    fig, (ax,) = axes_for(ax, 1, (11.5, 0.34 * k + 2.6))
    cols_left = [("study", [str(x) for x in s.index])] + arms
    pct = int(round(fit.level * 100))
    f = (lambda x: 1 / (1 + np.exp(-x))) if fit.measure == "PLO" else np.exp
    ci = [f"{f(a):.2f} [{f(b):.2f}, {f(c):.2f}]" if np.isfinite(a) else "not estimable"
          for a, b, c in zip(s["yi"], s["lower"], s["upper"])]
    cols_right = [(f"estimate [{pct}% CI]", ci + ["0.00 [0.00, 0.00]"]),
                  ("weight", [f"{w:.1f}%" if np.isfinite(w) else "" for w in s["weight"]] + ["100%"])]
    # each text column as wide as its longest entry, measured (inches), plus a gap
    left_in = [_width_in(fig, [name] + vals) + 0.15 for name, vals in cols_left]
    right_in = [_width_in(fig, [name] + vals) + 0.15 for name, vals in cols_right]
    W = fig.get_size_inches()[0]
    if new:  # room for the text columns: labels and counts left, estimate [CI] and weight right
        fig.subplots_adjust(left=(sum(left_in) + 0.2) / W, right=1 - (sum(right_in) + 0.2) / W, top=0.86,
                            bottom=0.12)
    ax_w = ax.get_position().width * W
    ys = np.arange(k, 0, -1) + 1.5
    ok = s["yi"].notna().to_numpy()
    w = s["weight"].fillna(0).to_numpy()
    size = 20 + 180 * w / max(w.max(), 1e-12)
    ax.hlines(ys[ok], s["lower"][ok], s["upper"][ok], color="k", lw=1)
    ax.scatter(s["yi"][ok], ys[ok], s=size[ok], marker="s", color="k", zorder=3)
    if "model_estimate" in s.columns:
        ax.scatter(s["model_estimate"], ys, s=14, marker="o", facecolors="none", edgecolors="tab:blue", zorder=4,
                   label="study estimate from the model")
        note = "  (open circles: the model's estimate of each study)"
    est, lo, hi = fit.estimate, fit.coef["lower"].iloc[0], fit.coef["upper"].iloc[0]
    ax.fill([lo, est, hi, est], [0.9, 1.2, 0.9, 0.6], color="tab:red", zorder=3)
    if fit.tau2 > 0:
        plo, phi = fit.prediction_interval()
        ax.hlines(0.35, plo, phi, color="tab:red", lw=2)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks([])
    ax.set_ylim(0, k + 2.5)
    lim = np.nanmax(np.abs(np.r_[s["lower"][ok], s["upper"][ok], lo, hi]))
    ax.set_xlim(-lim * 1.05, lim * 1.05)
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
    # the text columns, in axes-fraction x and data y (metafor's layout)
    tr = ax.get_yaxis_transform()
    head = k + 2.0
    for i, (name, vals) in enumerate(cols_left):
        x = -sum(left_in[i:]) / ax_w
        ax.text(x, head, name, transform=tr, fontsize=8, fontweight="bold", ha="left", va="center")
        for y, v in zip(ys, vals):
            ax.text(x, y, v, transform=tr, fontsize=8, ha="left", va="center")
    x1 = 1 + 0.15 / ax_w
    x2 = x1 + right_in[0] / ax_w
    x0 = -sum(left_in) / ax_w
    ax.text(x1, head, cols_right[0][0], transform=tr, fontsize=8, fontweight="bold", va="center")
    ax.text(x2, head, "weight", transform=tr, fontsize=8, fontweight="bold", va="center")
    for y, v, wt in zip(ys, ci, cols_right[1][1]):
        ax.text(x1, y, v, transform=tr, fontsize=8, va="center")
        ax.text(x2, y, wt, transform=tr, fontsize=8, va="center")
    ax.text(x0, 0.9, "pooled", transform=tr, fontsize=8, fontweight="bold", va="center")
    ax.text(x1, 0.9, f"{f(est):.2f} [{f(lo):.2f}, {f(hi):.2f}]", transform=tr, fontsize=8, fontweight="bold",
            va="center")
    ax.text(x2, 0.9, "100%", transform=tr, fontsize=8, fontweight="bold", va="center")
    if fit.tau2 > 0:
        ax.text(x0, 0.35, "prediction interval", transform=tr, fontsize=7, color="tab:red", va="center")
        ax.text(x1, 0.35, f"[{f(plo):.2f}, {f(phi):.2f}]", transform=tr, fontsize=7, color="tab:red", va="center")
    ax.set_title(title or f"{fit.method}: tau^2 = {fit.tau2:.3f}{note}", fontsize=9, loc="left")
    if new:
        if path is not None:
            save_figure(fig, path, dpi=120)
        return fig
    return finish(fig, path, dpi=120)


def funnel_plot(fit, path=None, title: str = "", ax=None):
    """Funnel plot: per-study estimates against their standard errors, with pseudo-confidence limits.

    Parameters
    ----------
    fit : MetaFit
        The pooled analysis.
    path : str or path-like, optional
        Save there (atomically).
    title : str
        The title.
    ax : matplotlib.axes.Axes, optional
        Draw here (a new figure otherwise).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    s = fit.studies.dropna(subset=["yi"])
    se = np.sqrt(s["vi"].to_numpy())
    fig, (ax,) = axes_for(ax, 1, (5.5, 4.5))
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
