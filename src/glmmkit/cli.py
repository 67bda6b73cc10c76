"""Command line: a thin layer over the public API.

    glmmkit fit DATA.csv --formula "y ~ x + (1 | g)" --family binomial [--json out.json]
    glmmkit meta TABLE.csv --ai ai --bi bi --ci ci --di di [--model UM.FS] [--forest forest.png]
    glmmkit demo
    glmmkit datasets
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def _read_table(path: str, factors: list[str]) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"glmmkit: no such file: {path}")
    sep = "\t" if p.suffix in (".tsv", ".txt") else ","
    df = pd.read_csv(p, sep=sep)
    for col in factors:
        if col not in df.columns:
            raise SystemExit(f"glmmkit: --factor names {col!r}, which is not a column of {path}")
        df[col] = df[col].astype(str)
    return df


def cmd_fit(args) -> int:
    import glmmkit as gk

    df = _read_table(args.data, [c for c in (args.factor or "").split(",") if c])
    try:
        if args.family == "gaussian" and (args.link in (None, "identity")):
            fit = gk.lmer(args.formula, df, reml=not args.ml, weights=args.weights, offset=args.offset)
        else:
            fit = gk.glmer(args.formula, df, args.family, link=args.link, nagq=args.nagq, weights=args.weights,
                           offset=args.offset, laplace=args.laplace)
    except ValueError as err:
        print(f"glmmkit: {err}", file=sys.stderr)
        return 2
    fit.summary()
    if args.confint:
        print(f"\n{args.confint.capitalize()} 95% confidence intervals:")
        print(fit.confint(method=args.confint).to_string(float_format=lambda v: f"{v:.5g}"))
    if args.report:
        print(f"\nwrote {fit.report(args.report)}")
    if args.json:
        out = fit.to_dict(names=args.names)
        Path(args.json).write_text(json.dumps(out, indent=2, default=_json_default))
        print(f"\nwrote {args.json}")
    return 0


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def cmd_meta(args) -> int:
    import glmmkit as gk

    df = _read_table(args.data, [])
    cols = {k: getattr(args, k) for k in ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i",
                                          "xi", "ni", "mi") if getattr(args, k) is not None}
    try:
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
    except ValueError as err:
        print(f"glmmkit: {err}", file=sys.stderr)
        return 2
    print(fit.summary())
    if table is not None:
        print()
        with pd.option_context("display.width", 160, "display.float_format", lambda v: f"{v: .4f}"):
            print(table.to_string())
    if args.forest:
        try:
            fit.forest(args.forest)
            print(f"\nwrote {args.forest}")
        except ImportError as err:
            print(f"glmmkit: {err}", file=sys.stderr)
    return 0


def cmd_sc_de(args) -> int:
    import glmmkit as gk

    covs = [c for c in (args.covariates or "").split(",") if c]
    client = None
    if args.dask_scheduler:
        from distributed import Client

        client = Client(args.dask_scheduler)
    try:
        res = gk.singlecell.de(args.data, args.subject, args.condition, covs, layer=args.layer, libsize=args.libsize,
                               reference=args.reference, family=args.family, laplace=args.laplace,
                               min_cells=args.min_cells, random_terms=args.random, engine=args.engine,
                               pvalue=args.pvalue, prior=None if args.prior == "none" else args.prior,
                               cell_glm=args.cell_glm, workers=args.workers, client=client)
        pb = (gk.singlecell.pseudobulk(args.data, args.subject, args.condition, covs, layer=args.layer,
                                       libsize=args.libsize, reference=args.reference, min_cells=args.min_cells)
              if args.pseudobulk else None)
    except (ValueError, KeyError, FileNotFoundError, TypeError) as err:
        print(f"glmmkit: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    print(res.summary())
    res.to_tsv(args.out)
    print(f"wrote {args.out}")
    if res.cell_glm is not None:
        path = _sibling(args.out, "cell_glm")
        res.cell_glm.to_csv(path, sep="\t", float_format="%.6g")
        print(f"wrote {path} (cell-level GLM)")
    if pb is not None:
        path = _sibling(args.out, "pseudobulk")
        pb.to_csv(path, sep="\t", float_format="%.6g")
        print(f"wrote {path} (pseudobulk; significant at FDR 0.05: {int((pb['fdr'] <= 0.05).sum())})")
    if args.volcano:
        try:
            res.volcano(path=args.volcano)
            print(f"wrote {args.volcano}")
        except ImportError as err:
            print(f"glmmkit: {err}", file=sys.stderr)
    return 0


def cmd_gwas(args) -> int:
    import glmmkit as gk
    from glmmkit import gwas

    client = None
    try:
        if args.gwas_command == "grm":
            geno = gwas.Genotypes.open(args.bfile)
            if args.sparse_only:
                import scipy.sparse as sp

                if args.sparse is None:
                    raise ValueError("--sparse-only needs --sparse THRESHOLD")
                S, m = gwas.grm_sparse(geno, args.sparse, chunk=args.chunk, min_maf=args.min_maf,
                                       memory=args.memory)
                sp.save_npz(args.out + ".sparse.npz", S)
                print(f"sparse GRM of {geno.n_samples} samples over {m} variants (|K| >= {args.sparse}), built by "
                      f"strips: {S.nnz} entries, {args.out}.sparse.npz")
                return 0
            K, m = gwas.grm(geno, chunk=args.chunk, min_maf=args.min_maf)
            gwas.write_gcta(args.out, K, geno.samples, m)
            print(f"GRM of {geno.n_samples} samples over {m} variants written to {args.out}.grm.bin/.grm.N.bin/.grm.id")
            if args.sparse is not None:
                import scipy.sparse as sp

                S = gwas.sparse_grm(K, args.sparse)
                sp.save_npz(args.out + ".sparse.npz", S)
                print(f"sparse GRM (|K| >= {args.sparse}): {S.nnz} entries, {args.out}.sparse.npz")
            return 0
        if args.gwas_command == "null":
            covs = [c for c in (args.covar_name or "").split(",") if c] or None
            model = gwas.null(args.bfile, args.pheno, args.pheno_name, args.covar, covs, trait=args.trait,
                              grm_prefix=args.grm, loco=args.loco, method=args.method, sparse=args.sparse_grm)
            model.save(args.out)
            print(model.summary())
            print("samples: " + ", ".join(f"{k} {v}" for k, v in (model.report or {}).items()))
            print(f"wrote {args.out}.null.json, .null.npz, .null.ids.tsv")
            return 0
        if args.dask_scheduler:
            from distributed import Client

            client = Client(args.dask_scheduler)
        res = gwas.test(args.bfile, args.null, out=args.out, chunk=args.chunk, spa=not args.no_spa,
                        exact=True if args.exact else (False if args.variance_ratio else None),
                        min_mac=args.min_mac, workers=args.workers, client=client)
        print(f"{len(res)} variants tested; lambda_GC = {gwas.lambda_gc(res['P']):.3f}; wrote {args.out}")
        with pd.option_context("display.width", 160):
            print(gwas.top_hits(res, 10).to_string(index=False))
        if args.manhattan:
            gk.plots.manhattan(res, path=args.manhattan)
            print(f"wrote {args.manhattan}")
        if args.qq:
            gk.plots.qq(res["P"], path=args.qq)
            print(f"wrote {args.qq}")
        return 0
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"glmmkit: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()


def _sibling(path: str, tag: str) -> str:
    p = Path(path)
    stem = p.name.split(".")[0]
    return str(p.with_name(f"{stem}.{tag}.tsv"))


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(out_dir=args.out)
    return 0


def cmd_datasets(args) -> int:
    from . import datasets

    for name in datasets.list_datasets():
        print(f"{name:12s} {datasets.describe(name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="glmmkit", description="Generalized linear mixed models with lme4 formulas")
    sub = ap.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="fit a (G)LMM to a CSV/TSV table and print the summary")
    f.add_argument("data", help="CSV (or .tsv) file")
    f.add_argument("--formula", required=True, help='lme4 formula, e.g. "y ~ x + (1 | g)"')
    f.add_argument("--family", default="gaussian",
                   help="binomial, poisson, Gamma, inverse.gaussian or gaussian (default)")
    f.add_argument("--link", default=None, help="link overriding the family default (probit, cloglog, log, ...)")
    f.add_argument("--nagq", type=int, default=1, help="1 = Laplace; up to 25 = adaptive Gauss-Hermite")
    f.add_argument("--laplace", choices=["expected", "observed"], default=None,
                   help="information in the Laplace log-determinant: lme4's expected or glmmTMB's observed")
    f.add_argument("--weights", default=None, help="column of prior weights (trials for a binomial proportion)")
    f.add_argument("--offset", default=None, help="column added to the linear predictor")
    f.add_argument("--factor", default=None, help="comma-separated columns to treat as categorical")
    f.add_argument("--ml", action="store_true", help="gaussian: maximum likelihood instead of REML")
    f.add_argument("--json", default=None, help="write Fit.to_dict() as JSON to this file")
    f.add_argument("--confint", choices=["wald", "profile", "boot"], default=None,
                   help="print 95%% confidence intervals (boot: 500 parametric-bootstrap refits)")
    f.add_argument("--report", default=None, help="write a self-contained HTML report to this file")
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
    c.add_argument("--family", default="nb2", choices=["nb2", "poisson"])
    c.add_argument("--laplace", default="expected", choices=["expected", "observed"])
    c.add_argument("--pvalue", default="t", choices=["t", "z"],
                   help="t: REML-scaled Wald on between-subject df (default); z: Wald z")
    c.add_argument("--prior", default="eb", choices=["eb", "none"],
                   help="eb: empirical-Bayes prior on the subject variance, shared across genes (default); "
                        "none: each gene's variance from its own subjects")
    c.add_argument("--random", default=None, help='extra random terms, e.g. "(1 | donor:celltype)" (general engine)')
    c.add_argument("--engine", default="auto", choices=["auto", "fast", "general"])
    c.add_argument("--min-cells", type=int, default=10, help="test genes expressed in at least this many cells")
    c.add_argument("--workers", type=int, default=None, help="local processes (default: all cores for large data)")
    c.add_argument("--dask-scheduler", default=None, help="address of a Dask scheduler to spread gene blocks over")
    c.add_argument("--cell-glm", action="store_true", help="also write the cell-level GLM (no subject effect)")
    c.add_argument("--pseudobulk", action="store_true", help="also write pseudobulk DESeq2 results")
    c.add_argument("--volcano", default=None, help="write a volcano plot to this file")
    c.add_argument("--out", default="de.tsv", help="output table (TSV), one row per gene")
    c.set_defaults(func=cmd_sc_de)

    g = sub.add_parser("gwas", help="genome-wide association with a mixed model (grm | null | test)")
    gsub = g.add_subparsers(dest="gwas_command", required=True)
    g1 = gsub.add_parser("grm", help="build the standardised GRM and write it in GCTA's binary format")
    g1.add_argument("--bfile", required=True, help="PLINK prefix (.bed/.bim/.fam)")
    g1.add_argument("--out", required=True, help="output prefix (.grm.bin, .grm.N.bin, .grm.id)")
    g1.add_argument("--chunk", type=int, default=5000)
    g1.add_argument("--min-maf", type=float, default=0.01)
    g1.add_argument("--sparse", type=float, default=None, help="also write a sparse GRM, entries below this set to 0")
    g1.add_argument("--sparse-only", action="store_true",
                    help="write only the sparse GRM, built by strips of rows (never n x n; for large samples)")
    g1.add_argument("--memory", type=float, default=2e9, help="bytes for one strip with --sparse-only (default 2e9)")
    g1.set_defaults(func=cmd_gwas)
    g2 = gsub.add_parser("null", help="step 1: fit the null GLMM and the variance ratio")
    g2.add_argument("--bfile", required=True)
    g2.add_argument("--pheno", required=True, help="table with FID IID and the phenotype")
    g2.add_argument("--pheno-name", default=None, help="phenotype column (default: the first)")
    g2.add_argument("--covar", default=None, help="table with FID IID and covariates")
    g2.add_argument("--covar-name", default=None, help="comma-separated covariate columns (default: all)")
    g2.add_argument("--trait", default="binary", choices=["binary", "quantitative", "count"])
    g2.add_argument("--grm", default=None, help="GCTA GRM prefix (default: built from --bfile)")
    g2.add_argument("--method", default="pql", choices=["pql", "laplace"])
    g2.add_argument("--loco", action="store_true", help="leave-one-chromosome-out random effects")
    g2.add_argument("--sparse-grm", type=float, default=None,
                    help="threshold the GRM at this value and fit by conjugate gradients (large samples)")
    g2.add_argument("--out", required=True, help="output prefix for the null model")
    g2.set_defaults(func=cmd_gwas)
    g3 = gsub.add_parser("test", help="step 2: score tests of every variant")
    g3.add_argument("--bfile", required=True)
    g3.add_argument("--null", required=True, help="prefix written by `gwas null`")
    g3.add_argument("--out", required=True, help="results table (TSV; .gz for gzip)")
    g3.add_argument("--chunk", type=int, default=20000)
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
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
