"""Speed benchmark: glmmkit beside lme4 (R), glmm and mixedlm (Python with Rust cores) on the same data.

    python benchmarks/run_speed.py [--scale 1.0] [--only intercept,slope] [--skip-r]

For each model of ``simdata.MODELS`` the same simulated data go to every package in one
invocation; each package's wall time for the fit (median of --repeat runs, after a warm-up
fit on small data) and its logLik are recorded.  Prints the table and the ratios
(other / glmmkit) and writes ``benchmarks/results/speed.json`` and ``speed.md``.

Needs R with lme4 (Debian: r-base-core r-cran-lme4) and ``pip install glmm mixedlm``;
these are benchmark-only dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import simdata  # noqa: E402

import glmmkit as gk  # noqa: E402

RESULTS = Path(__file__).parent / "results"

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); fam <- args[3]; reps <- as.integer(args[4])
for (v in c("g", "h", "clinic", "clinician")) if (!is.null(d[[v]])) d[[v]] <- factor(d[[v]])
f <- as.formula(args[2])
times <- c(); m <- NULL
for (i in seq_len(reps)) {
  t <- system.time(m <- glmer(f, data = d, family = fam))[["elapsed"]]
  times <- c(times, t)
}
cat(sprintf('{"time": %.6f, "loglik": %.10f, "conv": "%s"}\n', median(times), as.numeric(logLik(m)),
            paste(m@optinfo$conv$lme4$messages, collapse = "; ")))
"""


def _median_time(fn, reps):
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def run_glmmkit(d, formula, family, reps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, fit = _median_time(lambda: gk.glmer(formula, d, family), reps)
    return {"time": t, "loglik": fit.loglik, "fevals": fit.optsummary.fevals, "converged": fit.converged}


def _split_offset(formula):
    if "offset(log(expo))" in formula:
        return formula.replace(" + offset(log(expo))", ""), True
    return formula, False


def run_glmm(d, formula, family, reps):
    import glmm

    f, off = _split_offset(formula)
    kw = {"offset": np.log(d["expo"].to_numpy())} if off else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, fit = _median_time(lambda: glmm.fit(d, f, family=family, **kw), reps)
    return {"time": t, "loglik": float(fit.loglik), "converged": bool(fit.converged)}


def run_mixedlm(d, formula, family, reps):
    import mixedlm

    f, off = _split_offset(formula)
    fam = {"binomial": mixedlm.families.Binomial(), "poisson": mixedlm.families.Poisson()}[family]
    kw = {"offset": np.log(d["expo"].to_numpy())} if off else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, fit = _median_time(lambda: mixedlm.glmer(f, d, family=fam, **kw), reps)
    ll = fit.logLik()
    ll = float(getattr(ll, "value", ll))
    return {"time": t, "loglik": ll, "converged": bool(fit.converged)}


def run_lme4(csv, formula, family, reps):
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    out = subprocess.run(["Rscript", fh.name, str(csv), formula, family, str(reps)], capture_output=True, text=True,
                         timeout=7200)
    os.unlink(fh.name)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-300:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every model's number of rows")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--skip-r", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs per Python package (median)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    models = [m for m in simdata.MODELS if not args.only or m in args.only.split(",")]
    have_r = shutil.which("Rscript") is not None and not args.skip_r
    # warm-ups (imports, first-call costs) on a small data set
    small = simdata.intercept_binomial(n=2000, q=50)
    run_glmmkit(small, "y ~ x + (1 | g)", "binomial", 1)
    peers = {}
    for name, fn in (("glmm", run_glmm), ("mixedlm", run_mixedlm)):
        try:
            fn(small, "y ~ x + (1 | g)", "binomial", 1)
            peers[name] = fn
        except Exception as err:  # a peer missing or failing is reported, not fatal
            print(f"[{name} unavailable: {err}]")
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for name in models:
        gen, formula, family = simdata.MODELS[name]
        import inspect

        n_default = inspect.signature(gen).parameters["n"].default
        d = gen(n=int(n_default * args.scale))
        row = {"model": name, "formula": formula, "family": family, "n": len(d)}
        print(f"\n== {name}: {formula} ({family}, n = {len(d)})", flush=True)
        row["glmmkit"] = run_glmmkit(d, formula, family, args.repeat)
        print(f"  glmmkit  {row['glmmkit']['time']:8.2f} s  logLik {row['glmmkit']['loglik']:.4f}", flush=True)
        for pname, fn in peers.items():
            try:
                row[pname] = fn(d, formula, family, args.repeat if pname == "glmm" else 1)
                print(f"  {pname:8s} {row[pname]['time']:8.2f} s  logLik {row[pname]['loglik']:.4f}", flush=True)
            except Exception as err:
                row[pname] = {"error": str(err)[:300]}
                print(f"  {pname:8s} failed: {err}", flush=True)
        if have_r:
            csv = tmp / f"{name}.csv"
            d.to_csv(csv, index=False)
            row["lme4"] = run_lme4(csv, formula, family, 1)
            if "time" in row["lme4"]:
                print(f"  lme4     {row['lme4']['time']:8.2f} s  logLik {row['lme4']['loglik']:.4f} {row['lme4'].get('conv','')}",
                      flush=True)
            else:
                print(f"  lme4 failed: {row['lme4']['error']}")
        rows.append(row)
    shutil.rmtree(tmp, ignore_errors=True)
    write(rows, Path(args.out), args)


def write(rows, out: Path, args):
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "glmmkit": gk.__version__, "scale": args.scale,
            "repeat": args.repeat}
    (out / "speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    pk = ["glmmkit", "lme4", "glmm", "mixedlm"]
    lines = [f"Speed benchmark ({meta['date']}, {meta['machine']}, Python {meta['python']}; "
             f"wall seconds, Python packages median of {args.repeat} runs, lme4 one run)", "",
             "| model | n | " + " | ".join(pk) + " | lme4 / glmmkit | glmm / glmmkit | mixedlm / glmmkit | max logLik gap to best |",
             "|---|---|" + "---|" * (len(pk) + 4)]
    for r in rows:
        t = {p: r.get(p, {}).get("time") for p in pk}
        ll = {p: r.get(p, {}).get("loglik") for p in pk if r.get(p, {}).get("loglik") is not None}
        best = max(ll.values()) if ll else np.nan
        gaps = ", ".join(f"{p} {best - v:.1e}" for p, v in ll.items())
        cell = lambda p: "n/a" if t[p] is None else f"{t[p]:.2f}"  # noqa: E731
        ratio = lambda p: "n/a" if t[p] is None or not t["glmmkit"] else f"{t[p] / t['glmmkit']:.2f}"  # noqa: E731
        lines.append(f"| {r['model']} | {r['n']:,} | " + " | ".join(cell(p) for p in pk)
                     + f" | {ratio('lme4')} | {ratio('glmm')} | {ratio('mixedlm')} | {gaps} |")
    text = "\n".join(lines) + "\n"
    (out / "speed.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
