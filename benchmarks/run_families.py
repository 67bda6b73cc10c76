"""glmmTMB's further families (issue 20): glmmkit beside glmmTMB on the same medium data, one invocation.

    python benchmarks/run_families.py [--only beta,t] [--repeat 3] [--out benchmarks/results]

For each row of ``simdata.FAMILY_MODELS`` the seeded data go to glmmkit (in this process, median of
--repeat fits after a warm-up) and to glmmTMB (R, in a child, median of --repeat fits timed inside R);
each package's wall time and logLik are recorded with their ratio.  Writes ``families_speed.json`` and
``families_speed.md`` atomically after every row.  Needs R with glmmTMB (Debian: r-cran-glmmtmb).
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
d <- read.csv(args[1]); d$g <- factor(d$g); fam <- args[3]; reps <- as.integer(args[4])
famobj <- switch(fam, beta = beta_family(), betabinomial = betabinomial(), tweedie = tweedie(), t = t_family(),
                 genpois = genpois(), compois = compois(), truncated_poisson = truncated_poisson(),
                 truncated_nbinom1 = truncated_nbinom1(), truncated_nbinom2 = truncated_nbinom2(), poisson = poisson())
f <- as.formula(args[2]); zi <- if (length(args) >= 5) as.formula(args[5]) else ~0
times <- c(); m <- NULL
for (i in seq_len(reps)) times <- c(times, system.time(m <- glmmTMB(f, zi = zi, family = famobj, data = d))[["elapsed"]])
cat(toJSON(list(time = median(times), loglik = as.numeric(logLik(m)), conv = m$fit$message,
                pdHess = m$sdr$pdHess), auto_unbox = TRUE, digits = NA), "\n")
"""


def run_glmmtmb(d, formula, family, reps, timeout, zi=None):
    """glmmTMB's fit of the same data in an R child (time measured inside R)."""
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "fit.R"
        d.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        try:
            out = subprocess.run(["Rscript", str(script), str(csv), formula, family, str(reps)] + ([zi] if zi else []),
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"did not finish within {timeout:.0f} s"}
    return _child_result(out)


def run_glmmkit(d, formula, family, reps, zi=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, fit = _median_time(lambda: gk.glmer(formula, d, family, ziformula=zi), reps)
    return {"time": t, "loglik": fit.loglik, "converged": fit.converged, "fevals": fit.optsummary.fevals}


def _table(rows, stamp):
    head = (f"glmmTMB's further families beside glmmkit ({stamp}, {platform.machine()}, {os.cpu_count()} cores; "
            "wall seconds, median of the runs; glmmTMB timed inside R; y ~ x + (1 | g), data drawn from each "
            "family with simdata.family_data; the _re rows add ziformula = ~ x + (1 | g) on simdata.zi_re_data)\n\n"
            "| family | n | glmmkit | glmmTMB | glmmTMB / glmmkit | logLik glmmkit | logLik glmmTMB | glmmkit - glmmTMB |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        a, b = r["glmmkit"], r["glmmTMB"]
        if "error" in b:
            lines.append(f"| {r['name']} | {r['n']:,} | {a['time']:.2f} | {b['error'][:60]} | n/a | {a['loglik']:.4f} | n/a | n/a |")
            continue
        lines.append(f"| {r['name']} | {r['n']:,} | {a['time']:.2f} | {b['time']:.2f} | {b['time'] / a['time']:.2f} | "
                     f"{a['loglik']:.4f} | {b['loglik']:.4f} | {a['loglik'] - b['loglik']:.1e} |")
    return head + "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated row names")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    names = [n for n in simdata.FAMILY_MODELS if not args.only or n in args.only.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    run_glmmkit(simdata.family_data("beta", n=500, q=20), "y ~ x + (1 | g)", "beta", 1)  # warm-up
    rows = []
    for name in names:
        family, formula, n, *zi = simdata.FAMILY_MODELS[name]
        zi = zi[0] if zi else None
        d = simdata.zi_re_data(n=n) if zi else simdata.family_data(family, n=n)
        print(f"== {name}: {formula}{f', zi = {zi}' if zi else ''} ({family}, n = {n})", flush=True)
        a = run_glmmkit(d, formula, family, args.repeat, zi)
        print(f"  glmmkit  {a['time']:.2f} s  logLik {a['loglik']:.4f}", flush=True)
        b = run_glmmtmb(d, formula, family, args.repeat, args.timeout, zi)
        print(f"  glmmTMB  {b.get('time', float('nan')):.2f} s  logLik {b.get('loglik', float('nan')):.4f} "
              f"{b.get('error', '')}", flush=True)
        rows.append({"name": name, "family": family, "formula": formula, "ziformula": zi, "n": n, "glmmkit": a,
                     "glmmTMB": b})
        write_text(out / "families_speed.json", json.dumps({"stamp": stamp, "rows": rows}, indent=1))
        write_text(out / "families_speed.md", _table(rows, stamp))
    print(_table(rows, stamp))


if __name__ == "__main__":
    main()
