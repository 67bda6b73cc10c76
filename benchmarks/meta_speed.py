"""Meta-analytic GLMMs: glmmkit beside metafor's rma.glmm (R) on the same tables, in one run (issue 6).

    python benchmarks/meta_speed.py [--sizes 100] [--repeat 3]  ->  benchmarks/results/meta_speed.md

Tables: dat.bcg (k = 13), the bundled antibiotic trials (k = 24, zero-event arms) and simulated rare-event
tables with k trials. Both sides fit the same model with the same defaults (7 quadrature nodes, Laplace
for UM.RS) and compute the same extras (common-effect and saturated models for the heterogeneity tests);
glmmkit's optional profile interval of tau^2 is switched off for the timing. Median of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import json
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import glmmkit as gk

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402

R = r"""
suppressMessages(library(metafor))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); reps <- as.integer(args[2])
out <- list()
for (M in c("UM.FS", "UM.RS", "CM.EL", "CM.AL")) {
  ts <- c(); r <- NULL
  for (i in seq_len(reps)) {
    t <- system.time(r <- tryCatch(suppressWarnings(rma.glmm(measure = "OR", ai = ai, n1i = n1i, ci = ci,
                                   n2i = n2i, data = d, model = M)), error = function(e) NULL))[["elapsed"]]
    ts <- c(ts, t)
  }
  out[[M]] <- if (is.null(r)) list(time = median(ts), estimate = NA, tau2 = NA)
              else list(time = median(ts), estimate = as.numeric(coef(r)), tau2 = r$tau2)
}
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"))
"""


def rare_table(k, seed=3):
    rng = np.random.default_rng(seed)
    n1, n2 = rng.integers(40, 400, k), rng.integers(40, 400, k)
    base = rng.normal(-3.2, 0.6, k)
    th = rng.normal(-0.6, 0.35, k)
    return pd.DataFrame({"trial": [f"S{i}" for i in range(k)],
                         "ai": rng.binomial(n1, 1 / (1 + np.exp(-(base + th)))), "n1i": n1,
                         "ci": rng.binomial(n2, 1 / (1 + np.exp(-base))), "n2i": n2})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    bcg = gk.datasets.load("bcg")
    tables = {"dat.bcg (k = 13)": bcg.assign(n1i=bcg.ai + bcg.bi, n2i=bcg.ci + bcg.di)[["ai", "n1i", "ci", "n2i"]],
              "antibiotics (k = 24)": gk.datasets.load("antibiotics")[["ai", "n1i", "ci", "n2i"]]}
    for k in (int(s) for s in args.sizes.split(",") if s):
        tables[f"simulated rare events (k = {k})"] = rare_table(k)[["ai", "n1i", "ci", "n2i"]]
    rows = []
    for name, d in tables.items():
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
            d.to_csv(fh.name, index=False)
            path = fh.name
        rs = tempfile.NamedTemporaryFile("w", suffix=".R", delete=False)
        rs.write(R)
        rs.close()
        reps_r = args.repeat if len(d) < 100 else 1
        r_out = json.loads(subprocess.run(["Rscript", rs.name, path, str(reps_r)], capture_output=True, text=True,
                                          check=True).stdout)
        for model in ("UM.FS", "UM.RS", "CM.EL", "CM.AL"):
            ts = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                f = gk.meta.glmm(d, model=model, tau2_ci=False, ai="ai", n1i="n1i", ci="ci", n2i="n2i")
                ts.append(time.perf_counter() - t0)
            r = r_out[model]
            t_r = r["time"]
            rows.append({"table": name, "model": model, "glmmkit s": np.median(ts), "metafor s": t_r,
                         "speed-up": t_r / np.median(ts),
                         "estimate (glmmkit)": f.estimate,
                         "estimate (metafor)": np.nan if r["estimate"] is None else r["estimate"],
                         "tau2 (glmmkit)": f.tau2, "tau2 (metafor)": np.nan if r["tau2"] is None else r["tau2"]})
            print(rows[-1], flush=True)
    tab = pd.DataFrame(rows)
    text = ("rma.glmm (metafor, R) and gk.meta.glmm on the same tables, one invocation; median of "
            f"{args.repeat} runs (1 for metafor at k >= 100)\n\n" + tab.to_markdown(index=False, floatfmt=".4g") + "\n")
    write_result("meta_speed", text)


if __name__ == "__main__":
    main()
