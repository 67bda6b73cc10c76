"""Differential expression with an NB GLMM per gene:  y ~ condition + covariates + offset(log lib) + (1 | subject).

Genes go in blocks through the fast path (fastpath.py: one vectorised Laplace fit per block); genes it
does not converge on are refitted by the general engine (``gk.glmer``) and flagged; with cell-level
covariates or extra random terms every gene goes to the general engine.  The cell-level GLM (the same
model without the subject effect) is the fast path's start and comes out beside it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..parallel import map_tasks
from .block import GeneBlock
from .data import CellData, aggregate, default_workers, expressed_cells, gene_totals, prepare
from .fastpath import BlockFit, Design, fit_block, sc_family
from .prior import VariancePrior, donor_share, fit_prior, subject_noise, working_responses
from .results import DEResult, bh_fdr
from ..errors import InputError

LOG2 = np.log(2.0)


def _fast_task(design: Design, item):
    counts, random, glm, prior, start = item
    block = GeneBlock.from_csc(counts, design.offset, design.subject, design.S)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        return fit_block(design, block, random=random, glm=glm, prior=prior, start=start)


def _general_task(shared, item):
    """Full Laplace fit of one gene by the general engine; returns (beta, se, sd, theta, -2logL, converged)."""
    from ..api import glmer

    formula, family, laplace, tested, subject = shared
    df = item
    fam = family
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = glmer(formula, data=df, family=fam, laplace=laplace)
        ct = f.coef_table
        vc = f.varcorr
        sd = float(vc.loc[(vc["group"] == subject) & vc["sd"].notna(), "sd"].iloc[0])
        theta = float(f.family.dispersion) if family == "nbinom2" else np.inf
        return (float(ct.loc[tested, "estimate"]), float(ct.loc[tested, "std_error"]), sd, theta,
                float(-2 * f.loglik), bool(f.optsummary.converged))
    except Exception as e:  # noqa: BLE001 -- a gene the engine cannot fit is reported, not raised
        return (np.nan, np.nan, np.nan, np.nan, np.nan, False, f"{type(e).__name__}: {e}")


def de(data, subject: str | None = None, condition: str | None = None, covariates=(), *, layer: str | None = None, libsize: str | None = None,
       reference=None, family: str = "nbinom2", laplace: str = "expected", min_cells: int = 10,
       random_terms: str | None = None, engine: str = "auto", fallback: bool = True, pvalue: str = "t",
       prior: str | None = "eb-trend", cell_glm: bool = False, block_size: int = 128, workers: int | None = None,
       client=None, progress_bar: bool = True, celltype: str | None = None, min_donors: int = 2,
       min_type_cells: int = 50):
    """Test every gene for a condition effect with a GLMM, subject as a random intercept.

    Parameters
    ----------
    data : AnnData or path of an ``.h5ad`` file; raw counts in ``X`` or ``layer``.
    subject, condition, covariates : columns of ``obs``; the condition has two levels (``reference`` first).
        Without a subject or condition the usual names are tried in order (``donor``, ``donor_id``, ``subject``,
        ``individual``, ``patient``, ``sample``, ...; ``condition``, ``group``, ``treatment``, ``perturbation``,
        ``stim``, ``disease``, ``label``).
    libsize : column with library sizes or size factors; absent: each cell's total count.  Offset log(libsize).
    family : ``"nbinom2"`` (default; ``"nb2"`` is the same) or ``"poisson"``.  laplace : ``"expected"`` (lme4) or ``"observed"`` (glmmTMB).
    min_cells : genes with a positive count in fewer cells are not tested (status ``filtered``).
    random_terms : extra random terms, e.g. ``"(1 | subject:celltype)"`` (general engine for every gene).
    engine : ``"auto"`` (fast path where the design allows), ``"fast"``, ``"general"``.
    pvalue : ``"t"`` (default) -- the Wald statistic with the ML variance of a between-subject contrast turned
        into REML's against t on between-subject degrees of freedom.  With the prior (below): the subject-
        variance share f of SE^2 scaled by (S + d0) / (S - p + d0), t with S - p + d0 df (limma's moderated
        df); without: stat = z sqrt((S - p) / S) on t with S - p df (p = subject-level coefficients; exact
        for a balanced Gaussian design).  ``"z"`` -- z against N(0, 1), as glmmTMB and NEBULA report it
        (liberal with few subjects).
    prior : ``"eb-trend"`` (default) -- an empirical-Bayes prior on the subject variance whose scale follows mean
        expression (limma-trend's idea), fitted to every gene by marginal likelihood (``prior.py``: scaled inverse
        chi-square, d0 pseudo-subjects; each gene is then refitted with it), so that no gene's variance rests on
        its S subjects alone; ``"eb"`` -- the same with one scale for all genes; ``None`` -- each gene on its own.
    cell_glm : also fit the cell-level GLM (no subject effect; it then starts the GLMM), in ``.cell_glm``.
    workers, client : local processes (default: every core when the data are large -- above 2 million
        nonzero counts -- else one), or a ``dask.distributed.Client``; results are identical.
    celltype : ``obs`` column of cell types: test every cell type in one call (the file read once; BH within each
        cell type; a cell type with fewer than ``min_donors`` donors in a condition, or fewer than
        ``min_type_cells`` cells, skipped and counted).  Returns a ``CellTypeDE`` (singlecell/celltypes.py).

    Returns
    -------
    DEResult or CellTypeDE
        One row per gene in ``table`` (filtered genes kept, with NaN statistics), ``summary()``, ``to_dict()``;
        with ``celltype``, the per-cell-type results.
    """
    if celltype is not None:
        from .celltypes import de_by_celltype

        return de_by_celltype(de, data, subject, condition, covariates, celltype=celltype, layer=layer,
                              min_donors=min_donors, min_type_cells=min_type_cells, progress_bar=progress_bar,
                              libsize=libsize, reference=reference, family=family, laplace=laplace,
                              min_cells=min_cells, random_terms=random_terms, engine=engine, fallback=fallback,
                              pvalue=pvalue, prior=prior, cell_glm=cell_glm, block_size=block_size, workers=workers,
                              client=client)
    return _run(data, subject, condition, covariates, layer=layer, libsize=libsize, reference=reference, family=family,
                laplace=laplace, min_cells=min_cells, random_terms=random_terms, engine=engine, fallback=fallback,
                pvalue=pvalue, prior=prior, random=True, cell_glm=cell_glm, block_size=block_size, workers=workers,
                client=client, progress_bar=progress_bar)


def cell_glm(data, subject: str, condition: str, covariates=(), *, layer: str | None = None,
             libsize: str | None = None, reference=None, family: str = "nbinom2", min_cells: int = 10,
             block_size: int = 128, workers: int | None = None, client=None, progress_bar: bool = True) -> pd.DataFrame:
    """The cell-level NB GLM (the same model without the subject effect): what pseudoreplication looks like.
    Same table as ``de``; p-values against N(0, 1) as a GLM gives them.

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
    family : {"nbinom2", "poisson"}
        The family.
    min_cells : int
        Genes expressed in fewer cells are not tested.
    block_size : int
        Genes per block.
    workers : int, optional
        Local processes.
    client : dask.distributed.Client, optional
        A Dask client.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per gene, as ``DEResult.table``.
    """
    return _run(data, subject, condition, covariates, layer=layer, libsize=libsize, reference=reference, family=family,
                laplace="expected", min_cells=min_cells, random_terms=None, engine="fast", fallback=False,
                pvalue="z", prior=None, random=False, cell_glm=True, block_size=block_size, workers=workers,
                client=client, progress_bar=progress_bar).cell_glm


def _run(data, subject, condition, covariates, *, layer, libsize, reference, family, laplace, min_cells, random_terms,
         engine, fallback, pvalue, prior, random, cell_glm, block_size, workers, client, progress_bar) -> DEResult:
    family = sc_family(family)
    cd = prepare(data, subject, condition, covariates, layer=layer, libsize=libsize, reference=reference)
    if engine not in ("auto", "fast", "general"):
        raise InputError(f"engine must be 'auto', 'fast' or 'general', got {engine!r}")
    if pvalue not in ("t", "z"):
        raise InputError(f"pvalue must be 't' or 'z', got {pvalue!r}")
    if prior not in ("eb", "eb-trend", None):
        raise InputError(f"prior must be 'eb', 'eb-trend' or None, got {prior!r}")
    needs_general = bool(random_terms) or not cd.subject_level
    if needs_general and engine == "fast":
        raise InputError(_why_general(cd, random_terms))
    if cd.condition in cd.varying and engine != "general":
        subj = cd.varying[cd.condition]
        raise InputError(
            f"subject(s) {subj[:5]}{'...' if len(subj) > 5 else ''} have cells in more than one level of "
            f"{condition!r}: the condition is then a within-subject effect. If that is the design, pass "
            "engine='general' (a per-gene full fit; consider random_terms='(0 + condition | subject)')")
    use_general = engine == "general" or needs_general
    n_expr = expressed_cells(cd.counts)
    totals = gene_totals(cd.counts)
    tested = n_expr >= max(int(min_cells), 1)
    idx = np.flatnonzero(tested)
    G = cd.n_genes
    cols = {k: np.full(G, np.nan) for k in ("log_fc", "se", "subject_sd", "theta", "deviance")}
    glm_cols = {k: np.full(G, np.nan) for k in ("log_fc", "se", "theta")}
    converged = np.zeros(G, dtype=bool)
    beta_all = np.full((G, cd.Xs.shape[1]), np.nan)  # every coefficient of the fast path's fits
    vprior, design = None, None
    method = np.where(tested, "", "filtered").astype(object)
    note = np.where(tested, "", "").astype(object)
    note[~tested] = [f"expressed in {k} cells (< {min_cells})" for k in n_expr[~tested]]
    j = cd.x_names.index(cd.tested)
    nnz = cd.counts.nnz if hasattr(cd.counts, "nnz") else cd.counts.size
    workers = default_workers(workers, nnz, max(1, -(-len(idx) // block_size)) if not use_general else len(idx))
    if not use_general and len(idx):
        design = Design(cd.Xs, cd.offset, cd.subject, cd.n_subjects, family=family, laplace=laplace)
        blocks = [idx[i : i + block_size] for i in range(0, len(idx), block_size)]
        items = ((_columns(cd, b), random, cell_glm, None, None) for b in blocks)
        fits = list(map_tasks(_fast_task, items, shared=design, workers=workers, client=client,
                              desc="GLMM fast path", progress_bar=progress_bar, total=len(blocks)))
        glmms = [glmm for glmm, _ in fits]
        if random and prior in ("eb", "eb-trend"):
            vprior, glmms = _refit_with_prior(design, cd, blocks, glmms, workers, client, progress_bar,
                                              trend=prior == "eb-trend")
        for b, glmm, (_, glm) in zip(blocks, glmms, fits):
            if glmm is not None:
                _store(cols, converged, b, glmm, j)
                beta_all[b] = glmm.beta
            if glm is not None:
                glm_cols["log_fc"][b] = glm.beta[:, j]
                glm_cols["se"][b] = np.sqrt(glm.vcov[:, j, j])
                glm_cols["theta"][b] = glm.theta
        method[idx] = "fast"
        if not random:
            fallback = False
    redo = idx if use_general else (idx[~converged[idx] | ~np.isfinite(cols["se"][idx])] if fallback else idx[:0])
    if len(redo):
        formula = _formula(cd, random_terms)
        shared = (formula, family, laplace, cd.tested, cd.subject_col)
        out = map_tasks(_general_task, (_gene_table(cd, g) for g in redo), shared=shared, workers=workers,
                        client=client, desc="GLMM general engine", progress_bar=progress_bar, total=len(redo))
        for g, r in zip(redo, out):
            cols["log_fc"][g], cols["se"][g], cols["subject_sd"][g], cols["theta"][g], cols["deviance"][g] = r[:5]
            converged[g] = r[5]
            method[g] = "general" if use_general else "general (fallback)"
            if len(r) > 6:
                note[g] = r[6]
    stat, df = _statistic(cd, cols, pvalue, vprior, beta_all, method == "fast", design, j)
    table = _table(cd, cols, converged, method, note, n_expr, totals, df, stat)
    glm_table = None
    if cell_glm and not use_general:
        glm_table = _table(cd, {"log_fc": glm_cols["log_fc"], "se": glm_cols["se"], "subject_sd": np.zeros(G),
                                "theta": glm_cols["theta"], "deviance": np.full(G, np.nan)},
                           np.isfinite(glm_cols["se"]), np.where(tested, "cell-level GLM", "filtered"),
                           note, n_expr, totals, np.inf, glm_cols["log_fc"] / glm_cols["se"])
    model = f"{family} GLMM, (1 | {subject})" + (f" + {random_terms}" if random_terms else "")
    return DEResult(table, glm_table, cd, model=model,
                    n_filtered=int((~tested).sum()), min_cells=min_cells, pvalue=pvalue,
                    df=float(np.max(df, initial=-np.inf)) if len(df) else np.nan, prior=vprior)


def _why_general(cd: CellData, random_terms) -> str:
    if random_terms:
        return f"the fast path fits (1 | {cd.subject_col}) only; random_terms={random_terms!r} needs engine='general'"
    col, subj = next(iter(cd.varying.items()))
    return (f"the fast path needs design columns constant within subject; {col!r} varies within subject(s) "
            f"{subj[:5]}. Use engine='general' (or 'auto').")


def _columns(cd: CellData, genes: np.ndarray):
    lo, hi = int(genes[0]), int(genes[-1]) + 1
    block = cd.gene_block(lo, hi)
    return block[:, genes - lo] if len(genes) != hi - lo else block


def _formula(cd: CellData, random_terms) -> str:
    rhs = " + ".join([cd.condition, *cd.covariates])
    extra = f" + {random_terms}" if random_terms else ""
    return f"_y ~ {rhs} + offset(_offset) + (1 | {cd.subject_col}){extra}"


def _gene_table(cd: CellData, g: int) -> pd.DataFrame:
    df = cd.cell_table(g)
    if cd.condition in cd.subject_table and isinstance(cd.subject_table[cd.condition].dtype, pd.CategoricalDtype):
        df[cd.condition] = pd.Categorical(df[cd.condition].astype(str),
                                          categories=cd.subject_table[cd.condition].cat.categories)
    return df


def _store(cols, converged, genes, fit: BlockFit, j):
    cols["log_fc"][genes] = fit.beta[:, j]
    cols["se"][genes] = np.sqrt(fit.vcov[:, j, j])
    cols["subject_sd"][genes] = fit.sigma
    cols["theta"][genes] = fit.theta
    cols["deviance"][genes] = fit.deviance
    converged[genes] = fit.converged


def _refit_with_prior(design: Design, cd: CellData, blocks, fits, workers, client, progress_bar, trend=False):
    """Fit the variance prior to the first fits and refit every gene with it, started from its first fit."""
    beta = np.concatenate([f.beta for f in fits])
    theta = np.concatenate([f.theta for f in fits])
    v = np.concatenate([f.sigma for f in fits]) ** 2
    ok = np.concatenate([f.converged for f in fits])
    # each gene's information about v: its subject totals as Gaussian observations with their own noise
    totals = aggregate(cd)[:, np.concatenate(blocks)].T
    y, noise = working_responses(totals, beta, theta, v, design.Xs, design.lib, design.lib2)
    # limma-trend's way: the prior's scale follows mean expression (the intercept: log mean at the reference)
    vp = fit_prior(y, noise, design.Xs, ok, expression=beta[:, 0] if trend else None)
    if not vp.active:
        return vp, fits
    H = np.concatenate([f.hessian for f in fits]) if all(f.hessian is not None for f in fits) else None
    cut = np.cumsum([0] + [len(b) for b in blocks])
    d0, s2 = np.full(len(beta), vp.d0), np.broadcast_to(np.asarray(vp.s2, dtype=float), (len(beta),))
    # each gene started from its first fit, with that fit's Hessian (the prior's curvature is added there)
    items = ((_columns(cd, b), True, False, (d0[lo:hi], s2[lo:hi]),
              (beta[lo:hi], v[lo:hi], theta[lo:hi], None if H is None else H[lo:hi]))
             for b, lo, hi in zip(blocks, cut[:-1], cut[1:]))
    out = map_tasks(_fast_task, items, shared=design, workers=workers, client=client,
                    desc="GLMM with the variance prior", progress_bar=progress_bar, total=len(blocks))
    return vp, [glmm for glmm, _ in out]


def _statistic(cd: CellData, cols, pvalue, vprior: VariancePrior | None, beta_all, fast, design, j):
    """The test statistic and its degrees of freedom per gene (see ``de``'s ``pvalue``)."""
    z = cols["log_fc"] / cols["se"]
    if pvalue == "z":
        return z, np.full(len(z), np.inf)
    S = cd.n_subjects
    d = float(S - np.linalg.matrix_rank(cd.Xs))
    stat, df = z * np.sqrt(d / S), np.full(len(z), d)  # ML variance of a between-subject contrast -> REML's
    if vprior is not None and vprior.active and design is not None:
        g = np.flatnonzero(fast & np.all(np.isfinite(beta_all), axis=1))
        v = cols["subject_sd"][g] ** 2
        noise = subject_noise(beta_all[g], cols["theta"][g], design.Xs, design.lib, design.lib2)
        share = donor_share(v, noise, design.Xs, j)
        inflate = 1 + share * ((S + vprior.d0) / (d + vprior.d0) - 1)
        stat[g] = z[g] / np.sqrt(inflate)
        df[g] = d + vprior.d0
    return stat, df


def _table(cd: CellData, cols, converged, method, note, n_expr, totals, df, stat) -> pd.DataFrame:
    z = cols["log_fc"] / cols["se"]
    df = np.broadcast_to(np.asarray(df, dtype=float), z.shape)
    p = 2 * np.where(np.isfinite(df), stats.t.sf(np.abs(stat), np.where(np.isfinite(df), df, 1.0)),
                     stats.norm.sf(np.abs(stat)))
    out = pd.DataFrame({
        "log_fc": cols["log_fc"], "log2_fc": cols["log_fc"] / LOG2, "std_error": cols["se"], "z": z, "stat": stat,
        "df": df, "p": p,
        "fdr": bh_fdr(p), "subject_sd": cols["subject_sd"], "theta": cols["theta"],
        "dispersion": 1.0 / cols["theta"], "mean_count": totals / cd.n_cells,
        "frac_expressed": n_expr / cd.n_cells, "converged": converged, "method": method, "note": note,
    }, index=pd.Index(cd.genes, name="gene"))
    return out
