"""The result of a differential-expression run: one table per model, a summary, plots."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..output import write_table
from ..protocol import Result


def bh_fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN stays NaN and is not counted.

    Parameters
    ----------
    p : numpy.ndarray
        p-values.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok) == 0:
        return out
    order = ok[np.argsort(p[ok])]
    m = len(order)
    adj = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(adj[::-1])[::-1])
    return out


def power_at_fdp(p: np.ndarray, truth: np.ndarray, q: float = 0.05) -> float:
    """With known truth (simulations): the share of true positives in the largest top-ranked set of genes
    (by p) whose false-discovery proportion is at most ``q`` -- power with calibration taken out.

    Parameters
    ----------
    p : numpy.ndarray
        p-values.
    truth : numpy.ndarray
        Which genes are truly DE.
    q : float
        The false-discovery proportion.

    Returns
    -------
    float
        The power.
    """
    p, truth = np.asarray(p, dtype=float), np.asarray(truth, dtype=bool)
    o = np.argsort(np.where(np.isfinite(p), p, np.inf), kind="stable")
    fdp = np.cumsum(~truth[o]) / np.arange(1, len(p) + 1)
    good = np.flatnonzero(fdp <= q)
    return float(truth[o][: good.max() + 1].sum() / truth.sum()) if len(good) and truth.any() else 0.0


@dataclass(repr=False)
class DEResult(Result):
    """Differential expression, one row per gene in ``table`` (the GLMM) and ``cell_glm`` (no subject effect)."""

    table: pd.DataFrame                 # GLMM, one row per gene (filtered genes kept, with NaN statistics)
    cell_glm: pd.DataFrame | None       # the same model without the subject effect
    data: object = field(repr=False)    # the CellData the run used
    model: str = ""
    n_filtered: int = 0
    min_cells: int = 0
    pvalue: str = "t"
    df: float = np.inf                  # degrees of freedom of the fast path's t (the largest in the table)
    prior: object = None                # the VariancePrior used (prior.py), or None

    @property
    def n_tested(self) -> int:
        """Genes with a p-value."""
        return int(np.isfinite(self.table["p"]).sum())

    def significant(self, fdr: float = 0.05) -> pd.DataFrame:
        """The genes at or below a false-discovery rate.

        Parameters
        ----------
        fdr : float
            The rate.

        Returns
        -------
        pandas.DataFrame
            Rows of ``table`` by p-value.
        """
        t = self.table
        return t[t["fdr"] <= fdr].sort_values("p")

    def _as_dict(self) -> dict:
        t = self.table
        return {"model": self.model, "genes": len(t), "tested": self.n_tested, "filtered": self.n_filtered,
                "min_cells": self.min_cells, "pvalue": self.pvalue, "df": self.df,
                "significant_fdr_0.05": int((t["fdr"] <= 0.05).sum()),
                "not_converged": int((~t["converged"] & t["p"].notna()).sum()),
                "genes_table": t.reset_index().to_dict(orient="records")}

    def _prior_text(self) -> str:
        p = self.prior
        if p is None or not p.active:
            return "per gene" + (f" ({p.note})" if p is not None and p.note else "")
        scale = (f"a trend in mean expression ({np.min(p.s2):.3g} to {np.max(p.s2):.3g})" if p.trend
                 else f"{p.s2:.3g}")
        return (f"empirical-Bayes prior, d0 = {p.d0:.3g} pseudo-subjects at sigma^2 = {scale} "
                f"(fitted to {p.n_informative} genes)")

    def summary(self, fdr: float = 0.05) -> str:
        """The run as text.

        Parameters
        ----------
        fdr : float
            The false-discovery rate for the counts of significant genes.

        Returns
        -------
        str
            Genes tested and filtered, methods, convergence, the p-value reference and the discoveries.
        """
        t = self.table
        m = t["method"].value_counts()
        lines = [
            f"Differential expression: {self.model}",
            f"  genes: {len(t)}; tested {self.n_tested}; filtered {self.n_filtered} (expressed in < {self.min_cells} cells)",
            "  fitted by: " + ", ".join(f"{k} {v}" for k, v in m.items()),
            f"  not converged: {int((~t['converged'] & t['p'].notna()).sum())}",
            "  p-values: " + (f"Wald with the REML-scaled variance, t with {self.df:g} df (between subjects"
                              + (" + the prior's)" if self.prior is not None and self.prior.active else ")")
                              if self.pvalue == "t" else "Wald z, normal"),
            "  subject variance: " + self._prior_text(),
            f"  significant at FDR {fdr:g}: {int((t['fdr'] <= fdr).sum())}",
        ]
        if self.cell_glm is not None:
            lines.append(f"  cell-level GLM (no subject effect) at FDR {fdr:g}: {int((self.cell_glm['fdr'] <= fdr).sum())}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<glmmkit DEResult {self.model}: {len(self.table)} genes, {self.n_tested} tested>"

    def to_tsv(self, path) -> None:
        """Write the per-gene table as TSV, atomically.

        Parameters
        ----------
        path : str or path-like
            The file (``.gz`` for gzip).

        Returns
        -------
        None
        """
        write_table(self.table, path, sep="\t", float_format="%.6g")

    def to_adata(self, adata, key: str = "glmmkit_de") -> None:
        """Write the results back into an AnnData object (scverse's places): ``adata.varm[key]`` the gene
        table aligned to ``var_names`` (genes the run did not see get NaN), ``adata.uns[key]`` the model and
        its settings.

        Parameters
        ----------
        adata : anndata.AnnData
            The object the cells came from (its genes matched by name).
        key : str
            The key under ``varm`` and ``uns``.
        """
        write_to_adata(adata, self.table, key, {"model": self.model, "pvalue": self.pvalue, "min_cells": self.min_cells,
                                                "n_tested": self.n_tested, "n_filtered": self.n_filtered})

    def volcano(self, path=None, ax=None, fdr: float = 0.05, label: int = 10):
        """Volcano plot of the GLMM table (``gk.plots.volcano``); saved to ``path`` when given.

        Parameters
        ----------
        path : str or path-like, optional
            Save there (atomically).
        ax : matplotlib.axes.Axes, optional
            Draw there.
        fdr : float
            The colouring threshold.
        label : int
            Genes labelled.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from ..plots.singlecell import volcano

        return volcano(self.table, ax=ax, fdr=fdr, label=label, path=path)


def write_to_adata(adata, table: pd.DataFrame, key: str, info: dict) -> None:
    """``adata.varm[key]`` = the table's numeric columns aligned to ``adata.var_names``; ``adata.uns[key]`` = info.

    Parameters
    ----------
    adata : anndata.AnnData
        The object.
    table : pandas.DataFrame
        One row per gene, indexed by gene name (or with a ``gene`` column).
    key : str
        The key.
    info : dict
        Plain values for ``uns``.
    """
    from ..errors import InputError

    if not (hasattr(adata, "varm") and hasattr(adata, "uns") and hasattr(adata, "var_names")):
        raise InputError(f"to_adata needs an AnnData object, got {type(adata).__name__}")
    t = table.set_index("gene") if "gene" in table.columns else table
    num = t.select_dtypes(include=[np.number, bool]).astype(float)
    aligned = num.reindex(pd.Index(adata.var_names.astype(str)))
    aligned.index = adata.var_names
    adata.varm[key] = aligned
    adata.uns[key] = {k: (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in info.items()}
