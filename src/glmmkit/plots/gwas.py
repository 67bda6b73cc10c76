"""GWAS figures: Manhattan plot and QQ plot with the genomic-control lambda."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .figure import finish, plt_module as _plt


def manhattan(results: pd.DataFrame, path=None, threshold: float = 5e-8, title: str = "", ax=None):
    """-log10 P by position, chromosomes side by side in alternating colours; the genome-wide line.

    Parameters
    ----------
    results : pandas.DataFrame or ScanResult
        Step 2's table (CHR, POS, P).
    path : str or path-like, optional
        Save there (atomically).
    threshold : float
        The genome-wide line.
    title : str
        The title.
    ax : matplotlib.axes.Axes, optional
        Draw there.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(10, 3.8))
    from ..gwas.results import ScanResult

    table = results.table if isinstance(results, ScanResult) else results
    r = table[np.isfinite(table["P"])].copy()
    chrom = r["CHR"].astype(str)
    order = sorted(chrom.unique(), key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
    offset, ticks, x = 0.0, [], np.empty(len(r))
    for k, c in enumerate(order):
        m = (chrom == c).to_numpy()
        pos = r["POS"].to_numpy()[m].astype(float)
        x[m] = offset + pos - pos.min()
        ticks.append(offset + (pos.max() - pos.min()) / 2)
        offset += pos.max() - pos.min() + max(1.0, 0.02 * (pos.max() - pos.min() + 1))
        ax.scatter(x[m], -np.log10(r["P"].to_numpy()[m]), s=4, lw=0, color=("tab:blue", "tab:gray")[k % 2])
    ax.axhline(-np.log10(threshold), color="tab:red", lw=0.8, ls="--")
    ax.set_xticks(ticks)
    ax.set_xticklabels(order, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 P")
    ax.set_title(title or "Manhattan plot")
    return finish(fig, path, dpi=120)


def qq(p_values, path=None, labels=None, title: str = "", ax=None):
    """Observed against expected -log10 p (one or several sets), with each set's lambda_GC.

    Parameters
    ----------
    p_values : array-like or list of array-like
        One or several sets of p-values.
    path : str or path-like, optional
        Save there (atomically).
    labels : list of str, optional
        The sets' names.
    title : str
        The title.
    ax : matplotlib.axes.Axes, optional
        Draw there.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.8, 4.8))
    sets = p_values if isinstance(p_values, (list, tuple)) else [p_values]
    labels = labels or [None] * len(sets)
    top = 0.0
    for p, lab in zip(sets, labels):
        p = np.sort(np.asarray(p, dtype=float)[np.isfinite(p)])
        exp = -np.log10((np.arange(1, len(p) + 1) - 0.5) / len(p))
        lam = np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1)
        ax.scatter(exp, -np.log10(p), s=5, lw=0, label=f"{lab + ': ' if lab else ''}lambda = {lam:.3f}")
        top = max(top, exp.max())
    ax.plot([0, top], [0, top], color="k", lw=0.7)
    ax.set_xlabel("expected -log10 p")
    ax.set_ylabel("observed -log10 p")
    ax.set_title(title or "QQ plot")
    ax.legend(fontsize=7, frameon=False)
    return finish(fig, path, dpi=120)
