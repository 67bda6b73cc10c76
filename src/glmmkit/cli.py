"""Command line: a thin layer over the public API.

    glmmkit fit DATA.csv --formula "y ~ x + (1 | g)" --family binomial [--json out.json]
    glmmkit meta TABLE.csv --ai ai --bi bi --ci ci --di di [--model UM.FS] [--forest forest.png]
    glmmkit demo
    glmmkit datasets
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .output import atomic_path, write_table
from .errors import InputError


class CliError(Exception):
    """A problem to report in one line with exit status ``status`` (1: no usable result, 2: bad input)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


def _read_table(path: str, factors: list[str], na_values=None) -> pd.DataFrame:
    """A CSV/TSV data file.  Text stays text: only ``na_values`` (default: empty cells and NA) are missing,
    so a level named "None" or "null" is a level."""
    from .readers import DEFAULT_NA, read_text_table

    p = Path(path)
    sep = "\t" if p.suffix in (".tsv", ".txt") else ","
    na = list(DEFAULT_NA) if na_values is None else [s for s in na_values.split(",")]
    df = read_text_table(p, "data", sep=sep, keep_default_na=False, na_values=na)
    for col in factors:
        if col not in df.columns:
            raise CliError(f"--factor names {col!r}, which is not a column of {path}; columns: {list(df.columns)[:20]}")
        df[col] = df[col].astype(str).where(df[col].notna())
    return df


def _check_outputs(*pairs) -> None:
    """Refuse bad output paths before the computation starts: (option, path) pairs, None skipped."""
    from .output import check_output_path

    for option, path in pairs:
        if path is not None:
            check_output_path(path, option)


def cmd_fit(args) -> int:
    """``glmmkit fit``: fit a GLMM or LMM from a table and print its summary (and write the report or JSON).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status: 0 usable, 1 not usable (not converged), 2 bad input.
    """
    import glmmkit as gk
    from .formula.spec import _idents
    from .output import write_json
    from .warnings import ModelChangeWarning

    _check_outputs(("--json", args.json), ("--report", args.report))
    factors = [c for c in (args.factor or "").split(",") if c]
    df = _read_table(args.data, factors, args.na_values)
    named = _idents(args.formula)
    for col in factors:
        if col not in named:
            warnings.warn(f"--factor names {col!r}, which the formula does not use", ModelChangeWarning)
    if args.family == "ordinal":
        if args.ziformula or args.dispformula or args.ml or args.reml or args.laplace or args.offset:
            raise CliError("--family ordinal (gk.clmm) takes --link logit|probit, --nagq and --weights; not "
                           "--ziformula, --dispformula, --ml, --reml, --laplace or --offset")
        fit = gk.clmm(args.formula, df, link=args.link or "logit", nagq=args.nagq, weights=args.weights)
    elif args.family == "gaussian" and (args.link in (None, "identity")):
        if args.ziformula is not None:
            raise CliError("--ziformula is for count families (a gaussian model has no zero model)")
        if args.nagq != 1 or args.laplace is not None:
            raise CliError("--nagq and --laplace are for GLMMs; a gaussian model with the identity link is an LMM "
                           "(use --ml for maximum likelihood)")
        fit = gk.lmer(args.formula, df, reml=not args.ml, weights=args.weights, offset=args.offset,
                      dispformula=args.dispformula)
    else:
        if args.ml:
            raise CliError("--ml is for the linear mixed model (gaussian family, identity link); GLMMs are ML "
                           "unless --reml")
        fit = gk.glmer(args.formula, df, args.family, link=args.link, nagq=args.nagq, weights=args.weights,
                       offset=args.offset, laplace=args.laplace, ziformula=args.ziformula,
                       dispformula=args.dispformula, reml=args.reml)
    print(_summary_text(fit))
    if args.confint:
        print(f"\n{args.confint.capitalize()} 95% confidence intervals:")
        print(fit.confint(method=args.confint).to_string(float_format=lambda v: f"{v:.5g}"))
    if args.report:
        print(f"\nwrote {fit.report(args.report, intervals=args.report_intervals)}")
    if args.json:
        write_json(args.json, fit.to_dict(names=args.names))
        print(f"\nwrote {args.json}")
    if not fit.converged:
        raise CliError("the fit is not usable as it stands: " + "; ".join(
            m for m in fit.messages if "converge" in m or "finite" in m or "identif" in m or "response" in m)
            + " (results printed and written for inspection)", status=1)
    return 0


def _summary_text(fit) -> str:
    from .summary import format_summary

    return format_summary(fit)


def cmd_meta(args) -> int:
    """``glmmkit meta``: a meta-analysis of a table of 2x2 tables or rates.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status.
    """
    import glmmkit as gk

    _check_outputs(("--forest", args.forest))
    df = _read_table(args.data, [], args.na_values)
    cols = {k: getattr(args, k) for k in ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i",
                                          "xi", "ni", "mi") if getattr(args, k) is not None}
    if args.method == "FE" and args.model in ("REML", "DL", "MH", "Peto"):
        raise CliError(f"--method FE is for the GLMM models (UM.FS, UM.RS, CM.EL, CM.AL); --model {args.model} "
                       "has its own estimator (use --model FE for the common-effect inverse-variance model)")
    if args.model in ("REML", "DL", "FE"):
        fit = gk.meta.rma(df, measure=args.measure, method=args.model, mods=args.mods, study=args.study, **cols)
    elif args.model == "MH":
        fit = gk.meta.mantel_haenszel(df, measure=args.measure, study=args.study, **cols)
    elif args.model == "Peto":
        fit = gk.meta.peto(df, study=args.study, **cols)
    else:
        fit = gk.meta.glmm(df, measure=args.measure, model=args.model, method=args.method, mods=args.mods,
                           study=args.study, drop00=not args.keep00, **cols)
    table = gk.meta.compare(df, measure=args.measure, study=args.study, **cols) if args.compare else None
    print(fit.summary())
    if table is not None:
        print()
        with pd.option_context("display.width", 160, "display.float_format", lambda v: f"{v: .4f}"):
            print(table.to_string())
    if args.forest:
        fit.forest(args.forest)
        print(f"\nwrote {args.forest}")
    if not getattr(fit, "converged", True):
        raise CliError("the meta-analysis fit did not converge (results printed for inspection)", status=1)
    return 0


def cmd_sc_de(args) -> int:
    """``glmmkit sc-de``: single-cell differential expression from an .h5ad file.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status (1 when no gene could be tested).
    """
    import glmmkit as gk

    _check_outputs(("--out", args.out), ("--volcano", args.volcano))
    if args.engine == "fast" and args.random:
        raise CliError("--random needs the general engine: use --engine general or auto with --random")
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be at least 1, got {args.workers}")
    covs = [c for c in (args.covariates or "").split(",") if c]
    if args.celltype and (args.pseudobulk or args.volcano or args.cell_glm):
        raise CliError("--pseudobulk, --volcano and --cell-glm are per cell type in Python "
                       "(gk.singlecell.de(..., celltype=...).results); with --celltype the CLI writes the gene table "
                       "and the per-cell-type summary")
    client = None
    if args.dask_scheduler:
        from distributed import Client

        client = Client(args.dask_scheduler)
    try:
        res = gk.singlecell.de(args.data, args.subject, args.condition, covs, layer=args.layer, libsize=args.libsize,
                               reference=args.reference, family=args.family, laplace=args.laplace,
                               min_cells=args.min_cells, random_terms=args.random, engine=args.engine,
                               pvalue=args.pvalue, prior=None if args.prior == "none" else args.prior,
                               cell_glm=args.cell_glm, workers=args.workers, client=client,
                               celltype=args.celltype, min_donors=args.min_donors)
        if args.celltype:
            print(res.summary())
            res.to_tsv(args.out)
            path = _sibling(args.out, "celltypes")
            write_table(res.celltypes, path, sep="\t", float_format="%.6g")
            print(f"wrote {args.out} (one row per cell type and gene) and {path} (per cell type)")
            return 0
        pb = (gk.singlecell.pseudobulk(args.data, args.subject, args.condition, covs, layer=args.layer,
                                       libsize=args.libsize, reference=args.reference, min_cells=args.min_cells)
              if args.pseudobulk else None)
    finally:
        if client is not None:
            client.close()
    print(res.summary())
    if res.n_tested == 0:
        notes = res.table.loc[res.table["method"] != "filtered", "note"].astype(str)
        reason = notes.value_counts().index[0] if len(notes) else f"every gene is expressed in < {args.min_cells} cells"
        raise CliError(f"no gene could be tested ({len(res.table)} genes): {reason}", status=1)
    res.to_tsv(args.out)
    print(f"wrote {args.out}")
    if res.cell_glm is not None:
        path = _sibling(args.out, "cell_glm")
        write_table(res.cell_glm, path, sep="\t", float_format="%.6g")
        print(f"wrote {path} (cell-level GLM)")
    if pb is not None:
        path = _sibling(args.out, "pseudobulk")
        write_table(pb, path, sep="\t", float_format="%.6g")
        print(f"wrote {path} (pseudobulk; significant at FDR 0.05: {int((pb['fdr'] <= 0.05).sum())})")
    if args.volcano:
        res.volcano(path=args.volcano)
        print(f"wrote {args.volcano}")
    return 0


SCREEN_HELP = ("how a sparse GRM is built: auto (pairs screened by a sketch on a few variants above 20,000 samples "
               "where it pays), none (exact strips) or a number of sketch variants")


def _screen_arg(text: str):
    """--screen: "auto", "none" or a number of sketch variants."""
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise CliError(f"--screen takes auto, none or a number of sketch variants (>= 1), got {text!r}")
    return k


def _save_sparse(path: str, S) -> None:
    import scipy.sparse as sp

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: save_npz would append .npz to a name
            sp.save_npz(fh, S)


def cmd_gwas(args) -> int:
    """``glmmkit gwas grm | pca | null | test``: the GRM, principal components, the null model (step 1) and the
    score tests (step 2).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status.
    """
    import glmmkit as gk
    from glmmkit import gwas

    client = None
    if args.sample is not None and args.bgen is None:
        raise CliError("--sample goes with --bgen (the BGEN's Oxford .sample file)")
    if (args.vcf_field or args.id_delim) and args.vcf is None:
        raise CliError("--vcf-field and --id-delim go with --vcf")

    def source():
        """The genotypes, opened once the arguments have passed their checks."""
        return gwas.open_genotypes(args.bfile, pfile=args.pfile, bgen=args.bgen, sample=args.sample, vcf=args.vcf,
                                   vcf_field=args.vcf_field, id_delim=args.id_delim)

    if args.gwas_command == "grm":
        _check_outputs(("--out", args.out))
        if args.sparse_only and args.sparse is None:
            raise CliError("--sparse-only needs --sparse THRESHOLD")
        geno = source()
        if args.sparse_only:
            S, m, rep = gwas.build_sparse_grm(geno, args.sparse, screen=_screen_arg(args.screen), chunk=args.chunk,
                                              min_maf=args.min_maf, memory=args.memory)
            _save_sparse(args.out + ".sparse.npz", S)
            how = ("by strips" if rep is None or not rep.screened else
                   f"from {rep.candidates} pairs screened by a sketch of {rep.k} variants")
            print(f"sparse GRM of {geno.n_samples} samples over {m} variants (|K| >= {args.sparse}), built {how}: "
                  f"{S.nnz} entries, {args.out}.sparse.npz" + (f" ({rep.note})" if rep is not None and rep.note else ""))
            return 0
        K, m = gwas.grm(geno, chunk=args.chunk, min_maf=args.min_maf)
        gwas.write_gcta(args.out, K, geno.samples, m)
        print(f"GRM of {geno.n_samples} samples over {m} variants written to {args.out}.grm.bin/.grm.N.bin/.grm.id")
        if args.sparse is not None:
            S = gwas.threshold_grm(K, args.sparse)
            _save_sparse(args.out + ".sparse.npz", S)
            print(f"sparse GRM (|K| >= {args.sparse}): {S.nnz} entries, {args.out}.sparse.npz")
        return 0
    if args.gwas_command == "pca":
        _check_outputs(("--out", args.out))
        geno = source()
        every = np.arange(geno.n_variants)
        variants = every if args.max_variants is None or geno.n_variants <= args.max_variants else \
            every[np.linspace(0, geno.n_variants - 1, args.max_variants).round().astype(int)]
        res = gwas.pca(geno, n_pcs=args.pcs, variants=variants, min_maf=args.min_maf, chunk=args.chunk)
        paths = res.write(args.out)
        print(res.summary())
        print(f"written: {', '.join(paths)} (the .eigenvec is a covariate table: FID IID PC1 ...)")
        if not res.converged and res.n_converged:  # the leading (ancestry) components are usable; said
            print(f"warning: PC{res.n_converged + 1}-PC{args.pcs} did not converge (near-equal eigenvalues, as "
                  f"families give); PC1-PC{res.n_converged} did", file=sys.stderr)
        return 0 if res.n_converged else 1
    if args.gwas_command == "null":
        _check_outputs(("--out", args.out))
        if args.loco and args.grm is not None:
            raise CliError("--loco needs the GRM built from the genotypes: it cannot be combined with --grm")
        if args.grm is not None and args.sparse_grm is not None:
            raise CliError("--grm reads a dense GCTA GRM and --sparse-grm builds a sparse one: give one of them")
        covs = [c for c in (args.covar_name or "").split(",") if c] or None
        if covs and args.covar is None:
            raise CliError("--covar-name needs --covar (the covariate table)")
        model = gwas.null(source(), args.pheno, args.pheno_name, args.covar, covs, trait=args.trait,
                          grm_prefix=args.grm, loco=args.loco, method=args.method, sparse=args.sparse_grm,
                          screen=_screen_arg(args.screen), grm_form=args.grm_form)
        model.save(args.out)
        print(model.summary())
        print("samples: " + ", ".join(f"{k} {v}" for k, v in (model.report or {}).items()))
        print(f"wrote {args.out}.null.json, .null.npz, .null.ids.tsv")
        if not model.converged:
            raise CliError("the null model did not converge (saved for inspection)", status=1)
        return 0
    _check_outputs(("--out", args.out), ("--manhattan", args.manhattan), ("--qq", args.qq))
    if args.exact and args.variance_ratio:
        raise CliError("--exact and --variance-ratio are two ways to the same variance: give one of them")
    if args.dask_scheduler and args.workers != 1:
        raise CliError("--workers sets local processes and --dask-scheduler a cluster: give one of them")
    geno = source()
    try:
        if args.dask_scheduler:
            from distributed import Client

            client = Client(args.dask_scheduler)
        scan = gwas.test(geno, args.null, out=args.out, chunk=args.chunk, spa=not args.no_spa,
                         exact=True if args.exact else (False if args.variance_ratio else None),
                         min_mac=args.min_mac, workers=args.workers, client=client)
        res = scan.table
    finally:
        if client is not None:
            client.close()
    print(f"{len(res)} variants, {scan.n_tested} tested; lambda_GC = {scan.lambda_gc:.3f}; wrote {args.out}")
    with pd.option_context("display.width", 160):
        print(gwas.top_hits(res, 10).to_string(index=False))
    if args.manhattan:
        gk.plots.manhattan(res, path=args.manhattan)
        print(f"wrote {args.manhattan}")
    if args.qq:
        gk.plots.qq(res["P"], path=args.qq)
        print(f"wrote {args.qq}")
    return 0


def _sibling(path: str, tag: str) -> str:
    p = Path(path)
    stem = p.name.split(".")[0]
    return str(p.with_name(f"{stem}.{tag}.tsv"))


def cmd_demo(args) -> int:
    """``glmmkit demo``: run the stories of the README on bundled and simulated data.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status.
    """
    from .demo import run_demo

    run_demo(out_dir=args.out)
    return 0


def cmd_datasets(args) -> int:
    """``glmmkit datasets``: list the bundled datasets (or describe one).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status.
    """
    from . import datasets

    for name in datasets.list_datasets():
        print(f"{name:12s} {datasets.describe(name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (subcommands fit, meta, sc-de, gwas, demo, datasets).

    Returns
    -------
    argparse.ArgumentParser
        The parser.
    """
    ap = argparse.ArgumentParser(prog="glmmkit", description="Generalized linear mixed models with lme4 formulas",
                                 epilog="Exit status: 0 a usable result, 1 a result that is not usable (not "
                                        "converged, nothing tested) or an internal error, 2 bad input.")
    ap.add_argument("--debug", action="store_true", help="print the traceback of an error (may stand anywhere)")
    sub = ap.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="fit a (G)LMM to a CSV/TSV table and print the summary")
    f.add_argument("data", help="CSV (or .tsv) file")
    f.add_argument("--formula", required=True, help='lme4 formula, e.g. "y ~ x + (1 | g)"')
    f.add_argument("--family", default="gaussian",
                   help="binomial, poisson, nbinom2, nbinom1, Gamma, inverse.gaussian, gaussian (default), or "
                        "glmmTMB's beta, betabinomial, tweedie, t, genpois, compois, truncated_poisson, "
                        "truncated_nbinom1, truncated_nbinom2, or ordinal (a cumulative-link model, gk.clmm: "
                        "--link logit or probit; the response's sorted values are its categories). Covariance "
                        "structures are written in the formula: ar1(0 + t | g), exp(0 + pos(x, y) | g), ...")
    f.add_argument("--ziformula", default=None,
                   help='zero-inflation formula, e.g. "~1" or "~ x + (1 | site)" (with a truncated_* family: a '
                        'hurdle model)')
    f.add_argument("--dispformula", default=None,
                   help='fixed effects on the log dispersion, e.g. "~ x" (with gaussian: heteroscedastic, by ML)')
    f.add_argument("--link", default=None, help="link overriding the family default (probit, cloglog, log, ...)")
    f.add_argument("--nagq", type=int, default=1, help="1 = Laplace; up to 25 = adaptive Gauss-Hermite")
    f.add_argument("--laplace", choices=["expected", "observed"], default=None,
                   help="information in the Laplace log-determinant: lme4's expected or glmmTMB's observed")
    f.add_argument("--weights", default=None, help="column of prior weights (trials for a binomial proportion)")
    f.add_argument("--offset", default=None, help="column added to the linear predictor")
    f.add_argument("--factor", default=None, help="comma-separated columns to treat as categorical")
    f.add_argument("--na-values", default=None,
                   help='comma-separated strings read as missing (default ",NA": empty cells and NA; '
                        'text such as "None" stays a level)')
    f.add_argument("--ml", action="store_true", help="gaussian: maximum likelihood instead of REML")
    f.add_argument("--reml", action="store_true",
                   help="GLMMs: REML as glmmTMB's REML = TRUE (the fixed effects integrated by Laplace)")
    f.add_argument("--json", default=None, help="write Fit.to_dict() as JSON to this file")
    f.add_argument("--confint", choices=["wald", "profile", "boot"], default=None,
                   help="print 95%% confidence intervals (boot: 500 parametric-bootstrap refits)")
    f.add_argument("--report", default=None, help="write a self-contained HTML report to this file")
    f.add_argument("--report-intervals", choices=["profile", "wald", "boot"], default="profile",
                   help="the report's interval table (default profile; wald is instant where a profile of many "
                        "covariance parameters takes a while)")
    f.add_argument("--names", choices=["formulaic", "lme4"], default="formulaic",
                   help="coefficient names in the JSON (lme4: period2 instead of period[T.2])")
    f.set_defaults(func=cmd_fit)

    m = sub.add_parser("meta", help="meta-analysis of a table with one row per study (GLMM or classic)")
    m.add_argument("data", help="CSV (or .tsv) file, one row per study")
    for c, h in (("ai", "treatment-arm events"), ("bi", "treatment-arm non-events"), ("ci", "control-arm events"),
                 ("di", "control-arm non-events"), ("n1i", "treatment-arm size (instead of --bi)"),
                 ("n2i", "control-arm size (instead of --di)"), ("x1i", "treatment-arm events (IRR)"),
                 ("t1i", "treatment-arm person-time (IRR)"), ("x2i", "control-arm events (IRR)"),
                 ("t2i", "control-arm person-time (IRR)"), ("xi", "events (PLO)"), ("ni", "arm size (PLO)"),
                 ("mi", "non-events (PLO)")):
        m.add_argument(f"--{c}", default=None, help=f"column: {h}")
    m.add_argument("--measure", default="OR", choices=["OR", "IRR", "PLO"])
    m.add_argument("--model", default="UM.FS", choices=["UM.FS", "UM.RS", "CM.EL", "CM.AL", "REML", "DL", "FE", "MH", "Peto"],
                   help="GLMM (UM.FS, UM.RS, CM.EL, CM.AL) or classic (REML, DL, FE inverse variance; MH; Peto)")
    m.add_argument("--method", default="ML", choices=["ML", "FE"], help="GLMM: random (ML) or common (FE) effect")
    m.add_argument("--mods", default=None, help='moderators, e.g. "~ year + dose"')
    m.add_argument("--study", default=None, help="column with study labels")
    m.add_argument("--na-values", default=None, help='comma-separated strings read as missing (default ",NA")')
    m.add_argument("--keep00", action="store_true", help="keep studies without events in both arms (UM.RS)")
    m.add_argument("--compare", action="store_true", help="also print every method side by side")
    m.add_argument("--forest", default=None, help="write the forest plot to this file (PNG, PDF, SVG)")
    m.set_defaults(func=cmd_meta)

    c = sub.add_parser("sc-de", help="single-cell differential expression: NB GLMM per gene, subject as random effect")
    c.add_argument("data", help="AnnData .h5ad file with raw counts (X or --layer)")
    c.add_argument("--subject", required=True, help="obs column: subject (donor, animal)")
    c.add_argument("--condition", required=True, help="obs column: the two-level condition to test")
    c.add_argument("--covariates", default=None, help="comma-separated obs columns (subject-level for the fast path)")
    c.add_argument("--reference", default=None, help="reference level of the condition (default: first in order)")
    c.add_argument("--layer", default=None, help="layer with the raw counts (default: X)")
    c.add_argument("--libsize", default=None, help="obs column with library sizes (default: each cell's total)")
    c.add_argument("--family", default="nbinom2", choices=["nbinom2", "nb2", "poisson"],
                   help="nbinom2 (negative binomial, var = mu + mu^2/theta; nb2 is the same) or poisson")
    c.add_argument("--laplace", default="expected", choices=["expected", "observed"])
    c.add_argument("--pvalue", default="t", choices=["t", "z"],
                   help="t: REML-scaled Wald on between-subject df (default); z: Wald z")
    c.add_argument("--prior", default="eb-trend", choices=["eb-trend", "eb", "none"],
                   help="eb-trend: empirical-Bayes prior on the subject variance, its scale following mean "
                        "expression (default); eb: one scale for all genes; none: each gene's variance from its own "
                        "subjects")
    c.add_argument("--random", default=None, help='extra random terms, e.g. "(1 | donor:celltype)" (general engine)')
    c.add_argument("--engine", default="auto", choices=["auto", "fast", "general"])
    c.add_argument("--min-cells", type=int, default=10, help="test genes expressed in at least this many cells")
    c.add_argument("--celltype", default=None,
                   help="obs column of cell types: test every cell type in one call (BH within each)")
    c.add_argument("--min-donors", type=int, default=2,
                   help="with --celltype: donors needed in each condition within a cell type (else skipped)")
    c.add_argument("--workers", type=int, default=None, help="local processes (default: all cores for large data)")
    c.add_argument("--dask-scheduler", default=None, help="address of a Dask scheduler to spread gene blocks over")
    c.add_argument("--cell-glm", action="store_true", help="also write the cell-level GLM (no subject effect)")
    c.add_argument("--pseudobulk", action="store_true", help="also write pseudobulk DESeq2 results")
    c.add_argument("--volcano", default=None, help="write a volcano plot to this file")
    c.add_argument("--out", default="de.tsv", help="output table (TSV), one row per gene")
    c.set_defaults(func=cmd_sc_de)

    def genotype_args(parser):
        """plink2's genotype flags: exactly one of --bfile, --pfile, --bgen (with --sample) or --vcf."""
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--bfile", default=None, help="PLINK 1 prefix (.bed/.bim/.fam)")
        src.add_argument("--pfile", default=None, help="PLINK 2 prefix (.pgen/.pvar/.psam)")
        src.add_argument("--bgen", default=None, help="BGEN v1.2 file (dosages)")
        src.add_argument("--vcf", default=None, help="VCF/BCF file (DS, else GT)")
        parser.add_argument("--sample", default=None, help="the BGEN's Oxford .sample file")
        parser.add_argument("--vcf-field", default=None, choices=["DS", "GT"], help="the VCF field to read")
        parser.add_argument("--id-delim", default=None, help="split VCF sample IDs into FID and IID at this character")

    g = sub.add_parser("gwas", help="genome-wide association with a mixed model (grm | pca | null | test)")
    gsub = g.add_subparsers(dest="gwas_command", required=True)
    g1 = gsub.add_parser("grm", help="build the standardised GRM and write it in GCTA's binary format")
    genotype_args(g1)
    g1.add_argument("--out", required=True, help="output prefix (.grm.bin, .grm.N.bin, .grm.id)")
    g1.add_argument("--chunk", type=int, default=5000)
    g1.add_argument("--min-maf", type=float, default=0.01)
    g1.add_argument("--sparse", type=float, default=None, help="also write a sparse GRM, entries below this set to 0")
    g1.add_argument("--sparse-only", action="store_true",
                    help="write only the sparse GRM, built by strips of rows (never n x n; for large samples)")
    g1.add_argument("--memory", type=float, default=2e9, help="bytes for one strip with --sparse-only (default 2e9)")
    g1.add_argument("--screen", default="auto", help=SCREEN_HELP)
    g1.set_defaults(func=cmd_gwas)
    gp = gsub.add_parser("pca", help="top principal components of the genotypes (covariates for a sparse GRM)")
    genotype_args(gp)
    gp.add_argument("--pcs", type=int, default=10, help="components (default 10)")
    gp.add_argument("--max-variants", type=int, default=50_000,
                    help="at most this many variants, evenly spaced (default 50,000; all when fewer)")
    gp.add_argument("--min-maf", type=float, default=0.01)
    gp.add_argument("--chunk", type=int, default=5000)
    gp.add_argument("--out", required=True, help="output prefix (.eigenvec, .eigenval)")
    gp.set_defaults(func=cmd_gwas)
    g2 = gsub.add_parser("null", help="step 1: fit the null GLMM and the variance ratio")
    genotype_args(g2)
    g2.add_argument("--pheno", required=True, help="table with FID IID and the phenotype")
    g2.add_argument("--pheno-name", default=None, help="phenotype column (default: the first)")
    g2.add_argument("--covar", default=None, help="table with FID IID and covariates")
    g2.add_argument("--covar-name", default=None, help="comma-separated covariate columns (default: all)")
    g2.add_argument("--trait", default="binary", choices=["binary", "quantitative", "count"])
    g2.add_argument("--grm", default=None, help="GCTA GRM prefix (default: built from the genotypes)")
    g2.add_argument("--method", default="pql", choices=["pql", "laplace"])
    g2.add_argument("--loco", action="store_true", help="leave-one-chromosome-out random effects")
    g2.add_argument("--sparse-grm", type=float, default=None,
                    help="threshold the GRM at this value and fit by conjugate gradients (large samples)")
    g2.add_argument("--screen", default="auto", help=SCREEN_HELP)
    g2.add_argument("--grm-form", default="auto", choices=["auto", "matrix", "implicit"],
                    help="hold the dense GRM as an n x n matrix or implicitly as the standardised genotypes "
                         "(conjugate gradients, BOLT-LMM-inf's way; a byte per genotype); auto: implicit above "
                         "5,000 samples when the genotypes fit in 8 GB")
    g2.add_argument("--out", required=True, help="output prefix for the null model")
    g2.set_defaults(func=cmd_gwas)
    g3 = gsub.add_parser("test", help="step 2: score tests of every variant")
    genotype_args(g3)
    g3.add_argument("--null", required=True, help="prefix written by `gwas null`")
    g3.add_argument("--out", required=True, help="results table (TSV; .gz for gzip)")
    g3.add_argument("--chunk", type=int, default=None,
                    help="variants per task (default: sized to the samples, about 400 MB of genotypes a task)")
    g3.add_argument("--exact", action="store_true", help="exact projection (needs the stored P: moderate n)")
    g3.add_argument("--variance-ratio", action="store_true", help="SAIGE's variance-ratio approximation")
    g3.add_argument("--no-spa", action="store_true", help="normal approximation only (binary traits)")
    g3.add_argument("--min-mac", type=float, default=1)
    g3.add_argument("--workers", type=int, default=1)
    g3.add_argument("--dask-scheduler", default=None)
    g3.add_argument("--manhattan", default=None, help="write a Manhattan plot")
    g3.add_argument("--qq", default=None, help="write a QQ plot")
    g3.set_defaults(func=cmd_gwas)

    d = sub.add_parser("demo", help="run the stories of the mission on bundled data")
    d.add_argument("--out", default="glmmkit-demo", help="folder for the demo's figures and tables")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("datasets", help="list the bundled datasets")
    s.set_defaults(func=cmd_datasets)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    0: a usable result; 1: the computation ran but its result is not usable (did not converge, nothing
    could be tested) or failed unexpectedly; 2: bad input.  Errors are one line on standard error; the
    traceback only with ``--debug``.

    Parameters
    ----------
    argv : list of str or None
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    from .errors import GlmmkitError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except CliError as err:
        return _fail(err.status, str(err), debug)
    except (GlmmkitError, ValueError, TypeError, KeyError, OSError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        return _fail(2, f"{msg}", debug)
    except ImportError as err:
        return _fail(2, f"{err} (install the extras: pip install 'glmmkit[all]')", debug)
    except KeyboardInterrupt:
        return _fail(130, "interrupted", debug)
    except MemoryError:
        return _fail(1, "out of memory: try a smaller --chunk, fewer samples or variants, or more workers' memory",
                     debug)
    except Exception as err:  # anything else is a bug of ours: one line, and the traceback on request
        return _fail(1, f"internal error ({type(err).__name__}: {err}); rerun with --debug for the traceback and "
                        "report it", debug)


def _fail(status: int, message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    first = str(message).strip().splitlines()[0] if str(message).strip() else "error"
    print(f"glmmkit: error: {first}", file=sys.stderr)
    return status


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of the command line as one line each: ``glmmkit: warning (Category): message``."""
    print(f"glmmkit: warning ({category.__name__}): {message}", file=sys.stderr if file is None else file)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
