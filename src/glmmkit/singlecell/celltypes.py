"""Differential expression in every cell type of one AnnData file, in one call (``de(..., celltype="cell_type")``).

The file is read once; each cell type with enough cells and donors is tested by ``de`` on its own cells (its
own genes filtered, its own empirical-Bayes prior, Benjamini-Hochberg within the cell type as the convention
is); a cell type with too few donors in a condition, or too few cells, is skipped and counted in the
summary, never dropped silently.  The results: one table with a ``cell_type`` column, and one row per cell
type in ``celltypes`` (cells, donors per condition, genes tested, significant at FDR 0.05, or why skipped).
"""

from __future__ import annotations

import pandas as pd

from ..errors import InputError
from ..parallel import shared_pool
from ..protocol import Result
from .data import CONDITION_NAMES, SUBJECT_NAMES, _load, default_workers, resolve_column


class CellTypeDE(Result):
    """Differential expression per cell type.

    Attributes
    ----------
    table : pandas.DataFrame
        Every tested cell type's gene table (``DEResult.table``) with ``cell_type`` first.
    celltypes : pandas.DataFrame
        One row per cell type: ``status`` (tested / skipped), ``n_cells``, ``n_donors``, donors per condition,
        ``n_tested``, ``n_fdr05``, ``reason``.
    results : dict
        Cell type to its ``DEResult``.
    """

    def __init__(self, table: pd.DataFrame, celltypes: pd.DataFrame, results: dict, column: str):
        self.table, self.celltypes, self.results, self.column = table, celltypes, results, column

    @property
    def n_skipped(self) -> int:
        """Cell types that were not tested."""
        return int((self.celltypes["status"] != "tested").sum())

    def summary(self) -> str:
        """The per-cell-type table.

        Returns
        -------
        str
            Several lines.
        """
        head = (f"Differential expression per {self.column}: {len(self.celltypes) - self.n_skipped} cell types "
                f"tested, {self.n_skipped} skipped (BH within each cell type)")
        return head + "\n" + self.celltypes.to_string()

    def _as_dict(self) -> dict:
        return {"column": self.column, "celltypes": self.celltypes.reset_index().to_dict(orient="records"),
                "table": self.table.to_dict(orient="records")}

    def to_adata(self, adata, key: str = "glmmkit_de") -> None:
        """Write each cell type's gene table into ``adata.varm[f"{key}_{cell type}"]`` and the per-cell-type summary
        into ``adata.uns[key]`` (scverse's places).

        Parameters
        ----------
        adata : anndata.AnnData
            The object the cells came from.
        key : str
            The key prefix.
        """
        from .results import write_to_adata

        for ct, res in self.results.items():
            write_to_adata(adata, res.table, f"{key}_{ct}", {"model": res.model, "cell_type": ct})
        adata.uns[key] = {"column": self.column, "celltypes": self.celltypes.reset_index().astype(str).to_dict(orient="list")}

    def to_tsv(self, path) -> None:
        """Write the combined gene table (TSV, atomically; ``.gz`` compresses).

        Parameters
        ----------
        path : str or path-like
            The file.
        """
        from ..output import write_table

        write_table(self.table, path, sep="\t", index=False, float_format="%.6g")


def de_by_celltype(run, data, subject: str, condition: str, covariates=(), *, celltype: str, layer=None,
                   min_donors: int = 2, min_type_cells: int = 50, progress_bar: bool = True, **kwargs) -> CellTypeDE:
    """``de`` in every cell type of ``obs[celltype]`` (module text).

    Parameters
    ----------
    run : callable
        ``de`` itself (passed in, so that this layer imports nothing of it).
    data : AnnData or str
        The cells (read once).
    subject, condition : str
        Columns of ``obs``.
    covariates : sequence of str
        Covariates.
    celltype : str
        The ``obs`` column of cell types.
    layer : str, optional
        The counts' layer.
    min_donors : int
        Donors needed in each condition level within a cell type.
    min_type_cells : int
        Cells needed in a cell type.
    progress_bar : bool
        A progress bar per cell type.
    **kwargs
        Passed to ``de`` (family, prior, workers, client, min_cells, ...).

    Returns
    -------
    CellTypeDE
        ``.table`` (with ``cell_type``), ``.celltypes``, ``.results``.
    """
    adata, _, _ = _load(data, layer)
    obs = adata.obs
    subject = resolve_column(obs, subject, SUBJECT_NAMES, "subject")
    condition = resolve_column(obs, condition, CONDITION_NAMES, "condition")
    for col in (celltype, subject, condition):
        if col not in obs.columns:
            raise InputError(f"column {col!r} not in obs; columns: {list(obs.columns)}")
    types = obs[celltype]
    levels = list(types.cat.categories) if isinstance(types.dtype, pd.CategoricalDtype) else sorted(
        pd.unique(types.dropna().astype(str)))
    cond_levels = sorted(pd.unique(obs[condition].dropna().astype(str)))
    rows, tables, results = [], [], {}
    # one worker pool for every cell type (sized from the whole file, as ``de`` would size it)
    X = adata.layers[layer] if layer is not None and layer in adata.layers else adata.X
    workers = default_workers(kwargs.pop("workers", None), X.nnz if hasattr(X, "nnz") else X.size, 2 ** 31)
    with shared_pool(workers if kwargs.get("client") is None else 1):
        for ct in levels:
            mask = (types.astype(str) == str(ct)).to_numpy()
            sub_obs = obs.loc[mask]
            donors = sub_obs.groupby(sub_obs[condition].astype(str), observed=True)[subject].nunique()
            per = {f"donors_{c}": int(donors.get(c, 0)) for c in cond_levels}
            row = {"cell_type": str(ct), "n_cells": int(mask.sum()), "n_donors": int(sub_obs[subject].nunique()), **per}
            few = [c for c in cond_levels if donors.get(c, 0) < min_donors]
            if row["n_cells"] < min_type_cells or few:
                why = (f"{row['n_cells']} cells (< {min_type_cells})" if row["n_cells"] < min_type_cells else
                       f"fewer than {min_donors} donors in {few}")
                rows.append({**row, "status": "skipped", "n_tested": 0, "n_fdr05": 0, "reason": why})
                continue
            if progress_bar:
                print(f"cell type {ct}: {row['n_cells']} cells, {row['n_donors']} donors", flush=True)
            try:
                res = run(adata[mask], subject, condition, covariates, layer=layer, progress_bar=progress_bar,
                          workers=workers, **kwargs)
            except InputError as err:  # a cell type whose design cannot be tested: said, not fatal
                rows.append({**row, "status": "skipped", "n_tested": 0, "n_fdr05": 0, "reason": str(err)[:200]})
                continue
            results[str(ct)] = res
            t = res.table.copy()
            t.insert(0, "cell_type", str(ct))
            if "gene" not in t.columns:
                t.insert(1, "gene", res.table.index.astype(str))
            tables.append(t.reset_index(drop=True))
            rows.append({**row, "status": "tested", "n_tested": res.n_tested,
                         "n_fdr05": int((res.table["fdr"] <= 0.05).sum()), "reason": ""})
    if not results:
        raise InputError(f"no cell type of {celltype!r} could be tested: "
                         + "; ".join(f"{r['cell_type']}: {r['reason']}" for r in rows))
    table = pd.concat(tables, ignore_index=True)
    summary = pd.DataFrame(rows).set_index("cell_type")
    return CellTypeDE(table, summary, results, celltype)

