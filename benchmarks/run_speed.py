"""Speed benchmark: glmmkit beside lme4 (R), glmm and mixedlm (Python with Rust cores) on the same data.

    python benchmarks/run_speed.py [--set all|old|scale] [--scale 1.0] [--only intercept,slope] [--skip-r]

For each model of ``simdata.MODELS`` (the first round's five) and ``simdata.SCALE_MODELS`` (the
engine at scale: sparse crossed LMM and GLMM, a million rows, nesting, NB2, nAGQ = 9) the same simulated data go to every package in one
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
from glmmkit.output import write_text  # noqa: E402  (atomic)

RESULTS = Path(__file__).parent / "results"

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); fam <- args[3]; reps <- as.integer(args[4]); nagq <- as.integer(args[5]); reml <- args[6] == "1"
for (v in c("g", "h", "dept", "clinic", "clinician")) if (!is.null(d[[v]])) d[[v]] <- factor(d[[v]])
f <- as.formula(args[2])
times <- c(); m <- NULL
fitone <- function() {
  if (fam == "gaussian") lmer(f, data = d, REML = reml)
  else if (fam == "nbinom2") glmer.nb(f, data = d)
  else glmer(f, data = d, family = fam, nAGQ = nagq)
}
for (i in seq_len(reps)) {
  t <- system.time(m <- fitone())[["elapsed"]]
  times <- c(times, t)
}
cat(jsonlite::toJSON(list(time = median(times), loglik = as.numeric(logLik(m)),
                         conv = paste(m@optinfo$conv$lme4$messages, collapse = "; ")),
                    auto_unbox = TRUE, digits = NA), "\n")
"""


def _median_time(fn, reps):
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _fit_glmmkit(d, formula, family, opts):
    if family == "gaussian":
        return gk.lmer(formula, d, reml=opts.get("reml", True))
    return gk.glmer(formula, d, family, nagq=opts.get("nagq", 1))


def run_glmmkit(d, formula, family, reps, opts=None):
    opts = opts or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, fit = _median_time(lambda: _fit_glmmkit(d, formula, family, opts), reps)
    return {"time": t, "loglik": fit.loglik, "fevals": fit.optsummary.fevals, "converged": fit.converged}


def peak_memory_glmmkit(gen_name, n, formula, family, opts):
    """VmHWM of a fresh process that simulates the data and fits it once (MB), and the data's own peak.

    The data are made in the child (a pickle would double them); the same child records VmHWM after making
    the data and after the fit, so the fit's share is visible.
    """
    code = f"""
import sys, warnings; sys.path.insert(0, {str(Path(__file__).parent)!r})
import simdata, glmmkit as gk
from run_speed import _fit_glmmkit
warnings.simplefilter("ignore")
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
d = getattr(simdata, {gen_name!r})(n={n})
a = hwm()
_fit_glmmkit(d, {formula!r}, {family!r}, {opts!r})
print(a, hwm())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        return None, None
    a, b = out.stdout.split()[-2:]
    return float(a), float(b)


def _child_result(out: subprocess.CompletedProcess) -> dict:
    """The last JSON line a child printed, or {"error": ...}: a result we cannot read is reported, not fatal."""
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip() or out.stdout.strip())[-300:]}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as err:
        return {"error": f"unreadable output ({err}): {lines[-1][:200]}"}


def run_in_child(peer: str, gen_name: str, n: int, formula: str, family: str, reps: int, opts: dict,
                 timeout: float) -> dict:
    """One Python peer's fit in a fresh process (same seeded data, made there), with a time limit.

    The child warms the peer up on a small data set, then times the fit itself; a fit that does not end
    within ``timeout`` seconds is reported as such instead of stalling the run.
    """
    code = f"""
import sys, json, warnings; sys.path.insert(0, {str(Path(__file__).parent)!r})
warnings.simplefilter("ignore")
import simdata, run_speed as rs
fn = {{"glmm": rs.run_glmm, "mixedlm": rs.run_mixedlm}}[{peer!r}]
fn(simdata.intercept_binomial(n=2000, q=50), "y ~ x + (1 | g)", "binomial", 1)
d = getattr(simdata, {gen_name!r})(n={n})
print(json.dumps(fn(d, {formula!r}, {family!r}, {reps}, {opts!r})))
"""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s"}
    return _child_result(out)


def _split_offset(formula):
    if "offset(log(expo))" in formula:
        return formula.replace(" + offset(log(expo))", ""), True
    return formula, False


def run_glmm(d, formula, family, reps, opts=None):
    import glmm

    opts = opts or {}
    f, off = _split_offset(formula)
    kw = {"offset": np.log(d["expo"].to_numpy())} if off else {}
    fam = {"nbinom2": "negativebinomial"}.get(family, family)
    if family == "gaussian":
        kw.update(reml=opts.get("reml", True), satterthwaite=False)
    if opts.get("nagq", 1) > 1:
        kw["nagq"] = opts["nagq"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, fit = _median_time(lambda: glmm.fit(d, f, family=fam, **kw), reps)
    if opts.get("nagq", 1) > 1 and fit.nagq != opts["nagq"]:
        raise RuntimeError(f"glmm ran nagq={fit.nagq} instead of {opts['nagq']}")
    return {"time": t, "loglik": float(fit.loglik), "converged": bool(fit.converged)}


def run_mixedlm(d, formula, family, reps, opts=None):
    import mixedlm

    opts = opts or {}
    f, off = _split_offset(formula)
    kw = {"offset": np.log(d["expo"].to_numpy())} if off else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if family == "gaussian":
            t, fit = _median_time(lambda: mixedlm.lmer(f, d, REML=opts.get("reml", True), **kw), reps)
        elif family == "nbinom2":
            t, fit = _median_time(lambda: mixedlm.glmer_nb(f, d, **kw), reps)
        else:
            fam = {"binomial": mixedlm.families.Binomial(), "poisson": mixedlm.families.Poisson()}[family]
            t, fit = _median_time(lambda: mixedlm.glmer(f, d, family=fam, nAGQ=opts.get("nagq", 1), **kw), reps)
    ll = fit.logLik()
    ll = float(getattr(ll, "value", ll))
    return {"time": t, "loglik": ll, "converged": bool(fit.converged)}


def run_lme4(csv, formula, family, reps, opts=None, timeout: float = 7200):
    opts = opts or {}
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    try:
        out = subprocess.run(["Rscript", fh.name, str(csv), formula, family, str(reps), str(opts.get("nagq", 1)),
                              "1" if opts.get("reml", True) else "0"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.unlink(fh.name)
        return {"error": f"did not finish within {timeout:.0f} s"}
    os.unlink(fh.name)
    return _child_result(out)


def _models(which: str) -> dict:
    """name -> (generator, formula, family, options) for --set old|scale|all."""
    old = {k: (g, f, fam, {}) for k, (g, f, fam) in simdata.MODELS.items()}
    return {"old": old, "scale": dict(simdata.SCALE_MODELS), "all": {**old, **simdata.SCALE_MODELS}}[which]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every model's number of rows")
    ap.add_argument("--set", default="all", choices=["old", "scale", "all"],
                    help="the first round's five models, the engine-at-scale rows, or both")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--skip-r", action="store_true")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child process per model")
    ap.add_argument("--repeat", type=int, default=3, help="runs per Python package (median)")
    ap.add_argument("--timeout", type=float, default=2400, help="seconds one peer's fit may take")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    catalogue = _models(args.set)
    models = [m for m in catalogue if not args.only or m in args.only.split(",")]
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
    import inspect

    for name in models:
        gen, formula, family, opts = catalogue[name]
        n = int(inspect.signature(gen).parameters["n"].default * args.scale)
        d = gen(n=n)
        # one row per Python package run: big data get one run
        reps = args.repeat if len(d) <= 200_000 else 1
        row = {"model": name, "formula": formula, "family": family, "options": opts, "n": len(d)}
        print(f"\n== {name}: {formula} ({family}, {opts}, n = {len(d)})", flush=True)
        row["glmmkit"] = run_glmmkit(d, formula, family, reps, opts)
        if not args.no_memory:
            data_mb, peak_mb = peak_memory_glmmkit(gen.__name__, n, formula, family, opts)
            row["glmmkit"].update(data_mb=data_mb, peak_mb=peak_mb)
        print(f"  glmmkit  {row['glmmkit']['time']:8.2f} s  logLik {row['glmmkit']['loglik']:.4f}  "
              f"peak {row['glmmkit'].get('peak_mb')} MB", flush=True)
        for pname in peers:
            row[pname] = run_in_child(pname, gen.__name__, n, formula, family, reps if pname == "glmm" else 1, opts,
                                      args.timeout)
            if "time" in row[pname]:
                print(f"  {pname:8s} {row[pname]['time']:8.2f} s  logLik {row[pname]['loglik']:.4f}", flush=True)
            else:
                print(f"  {pname:8s} failed: {row[pname]['error']}", flush=True)
        if have_r:
            csv = tmp / f"{name}.csv"
            d.to_csv(csv, index=False)
            row["lme4"] = run_lme4(csv, formula, family, 1, opts, args.timeout)
            if "time" in row["lme4"]:
                print(f"  lme4     {row['lme4']['time']:8.2f} s  logLik {row['lme4']['loglik']:.4f} {row['lme4'].get('conv','')}",
                      flush=True)
            else:
                print(f"  lme4 failed: {row['lme4']['error']}")
        rows.append(row)
        write(rows, Path(args.out), args, quiet=True)  # after every row: a late failure loses nothing
    shutil.rmtree(tmp, ignore_errors=True)
    write(rows, Path(args.out), args)


def write(rows, out: Path, args, quiet: bool = False):
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "glmmkit": gk.__version__, "scale": args.scale,
            "repeat": args.repeat}
    stem = "speed" if args.set == "all" and not args.only else f"speed_{args.set}" + ("_only" if args.only else "")
    write_text(out / f"{stem}.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    pk = ["glmmkit", "lme4", "glmm", "mixedlm"]
    lines = [f"Speed benchmark ({meta['date']}, {meta['machine']}, Python {meta['python']}; "
             f"wall seconds, Python packages median of {args.repeat} runs (one run above 200,000 rows), "
             "lme4 one run; glmmkit's peak resident memory (VmHWM) of a fresh process that makes the data "
             "and fits once, with the data's own share)", "",
             "| model | n | " + " | ".join(pk) + " | lme4 / glmmkit | glmm / glmmkit | mixedlm / glmmkit "
             "| glmmkit peak MB (data) | max logLik gap to best |",
             "|---|---|" + "---|" * (len(pk) + 5)]
    for r in rows:
        t = {p: r.get(p, {}).get("time") for p in pk}
        ll = {p: r.get(p, {}).get("loglik") for p in pk if r.get(p, {}).get("loglik") is not None}
        best = max(ll.values()) if ll else np.nan
        gaps = ", ".join(f"{p} {best - v:.1e}" for p, v in ll.items())
        cell = lambda p: "n/a" if t[p] is None else f"{t[p]:.2f}"  # noqa: E731
        ratio = lambda p: "n/a" if t[p] is None or not t["glmmkit"] else f"{t[p] / t['glmmkit']:.2f}"  # noqa: E731
        gm = r.get("glmmkit", {})
        mem = "n/a" if gm.get("peak_mb") is None else f"{gm['peak_mb']:.0f} ({gm['data_mb']:.0f})"
        lines.append(f"| {r['model']} | {r['n']:,} | " + " | ".join(cell(p) for p in pk)
                     + f" | {ratio('lme4')} | {ratio('glmm')} | {ratio('mixedlm')} | {mem} | {gaps} |")
    notes = [f"- {r['model']}, {pk_}: {r[pk_]['error']}" for r in rows for pk_ in pk
             if isinstance(r.get(pk_), dict) and "error" in r[pk_]]
    if notes:
        lines += ["", "Fits that did not give a result:", ""] + notes
    text = "\n".join(lines) + "\n"
    write_text(out / f"{stem}.md", text)
    if not quiet:
        print("\n" + text)


if __name__ == "__main__":
    main()
