"""Residual figures."""

from __future__ import annotations

import numpy as np

from .figure import axes_for, finish




def plot_simulated_residuals(res, path=None, title: str = "", ax=None):
    """QQ plot of the scaled residuals against U(0, 1), and the residuals against the ranked prediction.

    Parameters
    ----------
    res : SimulatedResiduals
        From ``simulate_residuals``.
    path : str or path-like, optional
        Save there (atomically).
    title : str
        The title.
    ax : sequence of two matplotlib.axes.Axes, optional
        The QQ panel and the residual panel (a new figure otherwise).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    fig, (a, b) = axes_for(ax, 2, (9, 4))
    r = np.sort(res.scaled)
    expected = (np.arange(1, len(r) + 1) - 0.5) / len(r)
    a.plot(expected, r, ".", ms=3, alpha=0.6)
    a.plot([0, 1], [0, 1], "r-", lw=1)
    t = res.tests()
    a.set_title(f"QQ plot: KS p = {t.loc['uniformity (KS)', 'p']:.3g}, dispersion p = {t.loc['dispersion', 'p']:.3g}",
                fontsize=9)
    a.set_xlabel("expected (uniform)")
    a.set_ylabel("observed scaled residual")
    rank = np.argsort(np.argsort(res.fitted)) / max(len(res.fitted) - 1, 1)
    b.plot(rank, res.scaled, ".", ms=3, alpha=0.5)
    for qline in (0.25, 0.5, 0.75):
        b.axhline(qline, color="grey", lw=0.8, ls="--")
    b.set_xlabel("model prediction (rank-transformed)")
    b.set_ylabel("scaled residual")
    b.set_ylim(-0.02, 1.02)
    b.set_title("residuals vs predicted", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return finish(fig, path, dpi=110)
