"""Single-cell DE figures: volcano plot, and one method's statistics against another's (GLMM vs pseudobulk)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .figure import axes_for, finish, plt_module as _plt


def volcano(table: pd.DataFrame, ax=None, fdr: float = 0.05, label: int = 10, path=None, title: str = ""):
    """log2 fold change against -log10 p; genes at FDR <= ``fdr`` coloured, the ``label`` smallest p named.

    Parameters
    ----------
    table : pandas.DataFrame
        A DE table (``log2_fc``, ``p``, ``fdr``).
    ax : matplotlib.axes.Axes, optional
        Draw there.
    fdr : float
        The colouring threshold.
    label : int
        Genes named.
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
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4.5))
    t = table[np.isfinite(table["p"])]
    lp = -np.log10(np.clip(t["p"].to_numpy(), 1e-300, 1))
    sig = (t["fdr"] <= fdr).to_numpy()
    ax.scatter(t["log2_fc"][~sig], lp[~sig], s=5, color="0.6", alpha=0.6, lw=0, label="not significant")
    ax.scatter(t["log2_fc"][sig], lp[sig], s=7, color="tab:red", lw=0, label=f"FDR <= {fdr:g} ({int(sig.sum())})")
    for name in t.index[np.argsort(-lp)[:label]]:
        ax.annotate(str(name), (t.loc[name, "log2_fc"], -np.log10(max(t.loc[name, "p"], 1e-300))), fontsize=6)
    ax.set_xlabel("log2 fold change")
    ax.set_ylabel("-log10 p")
    ax.set_title(title or "Volcano plot")
    ax.legend(fontsize=7, frameon=False)
    return finish(fig, path, dpi=120)


def compare_methods(a: pd.DataFrame, b: pd.DataFrame, labels=("GLMM", "pseudobulk"), path=None, truth=None, ax=None):
    """Signed -log10 p of two methods on the same genes, and their log fold changes; ``truth``: DE flags.

    Parameters
    ----------
    a, b : pandas.DataFrame
        Two DE tables on the same genes.
    labels : tuple of str
        Their names.
    path : str or path-like, optional
        Save there (atomically).
    truth : pandas.Series, optional
        Which genes are truly DE.
    ax : sequence of two matplotlib.axes.Axes, optional
        The two panels (a new figure otherwise).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    genes = a.index.intersection(b.index)
    a, b = a.loc[genes], b.loc[genes]
    ok = np.isfinite(a["p"]) & np.isfinite(b["p"])
    a, b = a[ok], b[ok]
    sa = np.sign(a["log_fc"]) * -np.log10(np.clip(a["p"], 1e-300, 1))
    sb = np.sign(b["log_fc"]) * -np.log10(np.clip(b["p"], 1e-300, 1))
    fig, axes = axes_for(ax, 2, (10, 4.5))
    colour = np.where(truth.loc[a.index].to_numpy(), "tab:red", "0.5") if truth is not None else "tab:blue"
    for ax, (x, y, what) in zip(axes, [(sb, sa, "signed -log10 p"), (b["log_fc"], a["log_fc"], "log fold change")]):
        ax.scatter(x, y, s=5, c=colour, lw=0, alpha=0.7)
        lim = np.nanmax(np.abs(np.concatenate([x, y])))
        ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.7)
        ax.set_xlabel(f"{labels[1]}: {what}")
        ax.set_ylabel(f"{labels[0]}: {what}")
    if truth is not None:
        axes[0].set_title("red: truly differentially expressed", fontsize=9)
    return finish(fig, path, dpi=120)
