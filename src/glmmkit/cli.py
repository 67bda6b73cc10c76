"""Command line: a thin layer over the public API.

    glmmkit fit DATA.csv --formula "y ~ x + (1 | g)" --family binomial [--json out.json]
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
    f.add_argument("--names", choices=["formulaic", "lme4"], default="formulaic",
                   help="coefficient names in the JSON (lme4: period2 instead of period[T.2])")
    f.set_defaults(func=cmd_fit)

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
