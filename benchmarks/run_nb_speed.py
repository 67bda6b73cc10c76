"""NB2 GLMM speed (issue 3): glmmkit beside glmmTMB (R), glmm and mixedlm's glmer_nb on the same data.

    python benchmarks/run_nb_speed.py [--n 50000] [--groups 1000]  ->  benchmarks/results/nb_speed.md

y ~ x + (1 | g), NB2 (size 1.2), seeded. glmmkit uses laplace="observed", the same Laplace
approximation as glmmTMB and glmm (all three reach the same logLik); mixedlm's is reported as it comes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import glmmkit as gk

R = r"""
suppressMessages(library(glmmTMB))
d <- read.csv(commandArgs(TRUE)[1]); d$g <- factor(d$g)
t <- system.time(m <- glmmTMB(y ~ x + (1 | g), family = nbinom2, data = d))[["elapsed"]]
cat(sprintf('{"time": %.6f, "loglik": %.10f, "theta": %.8f}\n', t, as.numeric(logLik(m)), sigma(m)))
"""


def data(n, q, seed=8):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    mu = np.exp(0.4 + 0.3 * x + rng.normal(0, 0.5, q)[g])
    size = 1.2
    return pd.DataFrame({"y": rng.negative_binomial(size, size / (size + mu)), "x": x, "g": [f"g{i}" for i in g]})


def timed(fn, reps):
    ts, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    d = data(args.n, args.groups)
    small = data(2000, 50)
    res = {}
    gk.glmer("y ~ x + (1 | g)", small, "nbinom2", laplace="observed")
    t, f = timed(lambda: gk.glmer("y ~ x + (1 | g)", d, "nbinom2", laplace="observed"), args.repeat)
    res["glmmkit"] = {"time": t, "loglik": f.loglik, "theta": f.family_params.loc["theta", "estimate"]}
    try:
        import glmm

        glmm.fit(small, "y ~ x + (1 | g)", family="negativebinomial")
        t, f = timed(lambda: glmm.fit(d, "y ~ x + (1 | g)", family="negativebinomial"), args.repeat)
        res["glmm"] = {"time": t, "loglik": float(f.loglik), "theta": float(f.dispersion)}
    except Exception as err:  # a peer missing is reported, not fatal
        res["glmm"] = {"error": str(err)[:200]}
    try:
        import mixedlm

        t, f = timed(lambda: mixedlm.glmer_nb("y ~ x + (1 | g)", d), 1)
        ll = f.logLik()
        res["mixedlm glmer_nb"] = {"time": t, "loglik": float(getattr(ll, "value", ll)), "theta": np.nan}
    except Exception as err:
        res["mixedlm glmer_nb"] = {"error": str(err)[:200]}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "nb.csv"
        d.to_csv(csv, index=False)
        rs = Path(tmp) / "nb.R"
        rs.write_text(R)
        out = subprocess.run(["Rscript", str(rs), str(csv)], capture_output=True, text=True)
        res["glmmTMB"] = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-200:]}
    best = max(v["loglik"] for v in res.values() if "loglik" in v)
    lines = [f"NB2 GLMM y ~ x + (1 | g): {args.n:,} rows, {args.groups:,} groups ({time.strftime('%Y-%m-%d')}, "
             f"{os.cpu_count()} cores; wall seconds, glmmkit and glmm median of {args.repeat}, others one run)", "",
             "| package | seconds | time / glmmkit | logLik | below best | theta |", "|---|---|---|---|---|---|"]
    for k, v in res.items():
        if "error" in v:
            lines.append(f"| {k} | failed: {v['error']} | | | | |")
            continue
        lines.append(f"| {k} | {v['time']:.2f} | {v['time'] / res['glmmkit']['time']:.2f} | {v['loglik']:.4f} | "
                     f"{best - v['loglik']:.1e} | {v['theta']:.4f} |")
    text = "\n".join(lines) + "\n"
    outdir = Path(__file__).parent / "results"
    outdir.mkdir(exist_ok=True)
    (outdir / "nb_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
