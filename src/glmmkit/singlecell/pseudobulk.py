"""Pseudobulk: sum each subject's cells, then a bulk RNA-seq test across subjects.

``method="deseq2"`` runs DESeq2's method through pydeseq2 (size factors, shrunken dispersions, Wald test);
``method="nbglm"`` (also the fallback when pydeseq2 is absent) fits an NB GLM per gene with the same
subject-level design and offset log(summed library size), by the fast path's batched Newton."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from .block import GeneBlock
from .data import aggregate, expressed_cells, gene_totals, prepare
from .fastpath import Design, fit_block
from .results import bh_fdr
from ..errors import InputError

LOG2 = np.log(2.0)


def pseudobulk(data, subject: str, condition: str, covariates=(), *, layer=None, libsize=None, reference=None,
               method: str = "deseq2", min_cells: int = 10, n_cpus: int = 1, quiet: bool = True) -> pd.DataFrame:
    """One row per gene: log_fc (natural), log2_fc, se, z (Wald), p, fdr, method; filtered genes as in ``de``.

    Parameters
    ----------
    data : anndata.AnnData or str
        The cells, or an ``.h5ad`` path.
    subject, condition : str
        Columns of ``obs``.
    covariates : sequence of str
        Covariates.
    layer, libsize, reference : optional
        As for ``de``.
    method : {"deseq2", "nbglm"}
        PyDESeq2 on the summed counts, or an NB GLM with per-gene dispersion.
    min_cells : int
        Genes expressed in fewer cells are not tested.
    n_cpus : int
        PyDESeq2's processes.
    quiet : bool
        Silence PyDESeq2.

    Returns
    -------
    pandas.DataFrame
        One row per gene: ``log_fc``, ``log2_fc``, ``std_error``, ``z``, ``p``, ``fdr``, ``method``.
    """
    cd = prepare(data, subject, condition, covariates, layer=layer, libsize=libsize, reference=reference)
    if cd.varying:
        col, subj = next(iter(cd.varying.items()))
        raise InputError(f"pseudobulk needs subject-level design columns; {col!r} varies within subject(s) {subj[:5]}")
    counts = aggregate(cd)
    n_expr = expressed_cells(cd.counts)
    tested = n_expr >= max(int(min_cells), 1)
    G = cd.n_genes
    res = {k: np.full(G, np.nan) for k in ("log_fc", "se", "z", "p")}
    idx = np.flatnonzero(tested & (counts.sum(axis=0) > 0))
    if method == "deseq2":
        try:
            import pydeseq2  # noqa: F401
        except ImportError:
            method = "nbglm"
    if method == "deseq2":
        _deseq2(cd, counts[:, idx], idx, res, n_cpus, quiet)
    elif method == "nbglm":
        _nbglm(cd, counts[:, idx], idx, res)
    else:
        raise InputError(f"method must be 'deseq2' or 'nbglm', got {method!r}")
    out = pd.DataFrame({"log_fc": res["log_fc"], "log2_fc": res["log_fc"] / LOG2, "std_error": res["se"], "z": res["z"],
                        "p": res["p"], "fdr": bh_fdr(res["p"]), "mean_count": gene_totals(cd.counts) / cd.n_cells,
                        "frac_expressed": n_expr / cd.n_cells,
                        "method": np.where(tested, f"pseudobulk {method}", "filtered")},
                       index=pd.Index(cd.genes, name="gene"))
    return out


def _deseq2(cd, counts, idx, res, n_cpus, quiet):
    import warnings

    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    meta = cd.subject_table.copy()
    meta.index = meta.index.astype(str)
    cond = cd.condition
    numeric = cd.tested == cond
    if not numeric:
        meta[cond] = meta[cond].astype(str)
    cnt = pd.DataFrame(counts.astype(np.int64), index=meta.index, columns=[f"g{i}" for i in range(counts.shape[1])])
    design = "~" + " + ".join([cond, *cd.covariates])
    inference = DefaultInference(n_cpus=n_cpus)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = DeseqDataSet(counts=cnt, metadata=meta, design=design, refit_cooks=True, inference=inference,
                           quiet=quiet)
        dds.deseq2()
        if numeric:
            contrast = np.zeros(len(dds.obsm["design_matrix"].columns))
            contrast[list(dds.obsm["design_matrix"].columns).index(cond)] = 1.0
        else:
            ref, other = list(cd.subject_table[cond].cat.categories)
            contrast = [cond, other, ref]
        st = DeseqStats(dds, contrast=contrast, inference=inference, quiet=quiet, independent_filter=False,
                        cooks_filter=False)
        st.summary()
    r = st.results_df
    res["log_fc"][idx] = r["log2FoldChange"].to_numpy() * LOG2
    res["se"][idx] = r["lfcSE"].to_numpy() * LOG2
    res["z"][idx] = r["stat"].to_numpy()
    res["p"][idx] = r["pvalue"].to_numpy()


def _nbglm(cd, counts, idx, res):
    S = cd.n_subjects
    lib = np.bincount(cd.subject, weights=np.exp(cd.offset), minlength=S)
    design = Design(cd.Xs, np.log(lib), np.arange(S), S)
    block = GeneBlock.from_csc(sp.csc_matrix(counts), design.offset, design.subject, S)
    with np.errstate(all="ignore"):
        _, glm = fit_block(design, block, random=False)
    j = cd.x_names.index(cd.tested)
    b, se = glm.beta[:, j], np.sqrt(glm.vcov[:, j, j])
    res["log_fc"][idx], res["se"][idx], res["z"][idx] = b, se, b / se
    res["p"][idx] = 2 * stats.norm.sf(np.abs(b / se))
