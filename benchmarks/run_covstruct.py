"""glmmTMB's covariance structures (issue 20): glmmkit beside glmmTMB on the same medium data, one invocation.

    python benchmarks/run_covstruct.py [--only ar1,exp] [--repeat 3] [--out benchmarks/results]

For each row of ``simdata.COVSTRUCT_MODELS`` the seeded Poisson data go to glmmkit (in this process, median of
--repeat fits after a warm-up) and to glmmTMB (R, in a child, median of --repeat fits timed inside R). Writes
``covstruct_speed.json`` and ``covstruct_speed.md`` atomically after every row.  Needs R with glmmTMB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import simdata  # noqa: E402
from run_speed import _child_result, _median_time  # noqa: E402

import glmmkit as gk  # noqa: E402
from glmmkit.output import write_text  # noqa: E402  (atomic)

RESULTS = Path(__file__).parent / "results"

R_SCRIPT = r"""
suppressMessages({library(glmmTMB); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); reps <- as.integer(args[3])
for (v in intersect(c("clinic", "field", "site", "sp"), names(d))) d[[v]] <- factor(d[[v]])
f <- as.formula(args[2])
times <- c(); m <- NULL
for (i in seq_len(reps)) times <- c(times, system.time(m <- glmmTMB(f, family = poisson, data = d))[["elapsed"]])
cat(toJSON(list(time = median(times), loglik = as.numeric(logLik(m)), conv = m$fit$message,
                pdHess = m$sdr$pdHess), auto_unbox = TRUE, digits = NA), "\n")
"""


def run_glmmtmb(d, formula, reps, timeout):
    """glmmTMB's fit of the same data in an R child (time measured inside R)."""
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "fit.R"
        d.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        try:
            out = subprocess.run(["Rscript", str(script), str(csv), formula, str(reps)],
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"did not finish within {timeout:.0f} s"}
    return _child_result(out)


def run_glmmkit(d, formula, reps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, fit = _median_time(lambda: gk.glmer(formula, d, "poisson"), reps)
    return {"time": t, "loglik": fit.loglik, "converged": fit.converged, "fevals": fit.optsummary.fevals,
            "covpars": dict(zip(fit.covpars["parameter"], fit.covpars["estimate"].round(6)))}


def _table(rows, stamp):
    head = (f"glmmTMB's covariance structures beside glmmkit ({stamp}, {platform.machine()}, {os.cpu_count()} cores; "
            "wall seconds, median of the runs; glmmTMB timed inside R; Poisson, data from "
            "simdata.covstruct_data)\n\n"
            "| structure | n | k per level | glmmkit | glmmTMB | glmmTMB / glmmkit | logLik glmmkit | logLik glmmTMB "
            "| glmmkit - glmmTMB |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        a, b = r["glmmkit"], r["glmmTMB"]
        if "error" in b:
            lines.append(f"| {r['name']} | {r['n']:,} | {r['k']} | {a['time']:.2f} | {b['error'][:60]} | n/a | "
                         f"{a['loglik']:.4f} | n/a | n/a |")
            continue
        lines.append(f"| {r['name']} | {r['n']:,} | {r['k']} | {a['time']:.2f} | {b['time']:.2f} | "
                     f"{b['time'] / a['time']:.2f} | {a['loglik']:.4f} | {b['loglik']:.4f} | "
                     f"{a['loglik'] - b['loglik']:.1e} |")
    return head + "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated row names")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    names = [n for n in simdata.COVSTRUCT_MODELS if not args.only or n in args.only.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    rows = []
    for name in names:
        kind, formula, r_formula = simdata.COVSTRUCT_MODELS[name]
        d = simdata.covstruct_data(kind)
        run_glmmkit(d.head(len(d) // 4), formula, 1)  # warm-up
        print(f"== {name}: {formula} (n = {len(d)})", flush=True)
        a = run_glmmkit(d, formula, args.repeat)
        print(f"  glmmkit  {a['time']:.2f} s  logLik {a['loglik']:.4f}  {a['covpars']}", flush=True)
        b = run_glmmtmb(d, r_formula, args.repeat, args.timeout)
        print(f"  glmmTMB  {b.get('time', float('nan')):.2f} s  logLik {b.get('loglik', float('nan')):.4f} "
              f"{b.get('error', '')}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k = gk.ModelSpec.from_formula(formula, d, "poisson").terms[0].k
        rows.append({"name": name, "formula": formula, "glmmTMB_formula": r_formula, "n": len(d), "k": k,
                     "glmmkit": a, "glmmTMB": b})
        write_text(out / "covstruct_speed.json", json.dumps({"stamp": stamp, "rows": rows}, indent=1))
        write_text(out / "covstruct_speed.md", _table(rows, stamp))
    print(_table(rows, stamp))


if __name__ == "__main__":
    main()
