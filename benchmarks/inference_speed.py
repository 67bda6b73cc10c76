"""After the fit (issue 21): glmmkit beside lmerTest, pbkrtest, emmeans and glmmTMB on the same fitted model,
in one invocation.

    python benchmarks/inference_speed.py [--blocks 40] [--repeat 3]

A split-plot experiment (blocks x 4 varieties as main plots, 6 nitrogen levels on subplots, 2 replicates):
y ~ N * V + (1 | B / V), REML.  Each step is timed after the fit, in each package (R timed inside R, median of
--repeat), and its answer is compared:

- Satterthwaite's coefficient table (lmerTest: as_lmerModLmerTest + summary; glmmkit: fixef_table on a fit
  without cached derivatives);
- the type III anova with Satterthwaite's df (lmerTest's anova on the coerced model, whose derivatives were
  stored on coercion; glmmkit's with the derivatives kept on the fit from the step before, the hypotheses new);
- the type III anova with Kenward-Roger's df (lmerTest -> pbkrtest);
- marginal means of N with Tukey-adjusted pairwise contrasts, Kenward-Roger df (emmeans + pairs);
- prediction standard errors of 200 conditional predictions (glmmTMB's predict(se.fit = TRUE) on its own
  ML fit; glmmkit on its ML fit).

Writes benchmarks/results/inference_speed.md atomically.
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

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402
from run_speed import _median_time as _median  # noqa: E402

import glmmkit as gk  # noqa: E402

R_SCRIPT = r"""
suppressMessages({library(lmerTest); library(pbkrtest); library(emmeans); library(glmmTMB); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); for (v in c("B", "V", "N")) d[[v]] <- factor(d[[v]]); reps <- as.integer(args[2])
new <- read.csv(args[3]); for (v in c("B", "V", "N")) new[[v]] <- factor(new[[v]], levels = levels(d[[v]]))
emm_options(pbkrtest.limit = 1e6, lmerTest.limit = 1e6)
m0 <- lme4::lmer(y ~ N * V + (1 | B / V), data = d)
tm <- function(expr) { times <- c(); for (i in seq_len(reps)) times <- c(times, system.time(out <- eval.parent(substitute(expr)))[["elapsed"]]); list(t = median(times), out = out) }
sat <- tm({m <- as_lmerModLmerTest(m0); summary(m)$coefficients})
m <- as_lmerModLmerTest(m0)
a3 <- tm(anova(m, type = 3))
kr <- tm(anova(m, type = 3, ddf = "Kenward-Roger"))
em <- tm({e <- emmeans(m0, "N"); list(e = summary(e), p = summary(pairs(e)))})
mt <- glmmTMB(y ~ N * V + (1 | B / V), data = d)
pr <- tm(predict(mt, newdata = new, se.fit = TRUE))
cat(toJSON(list(
  satterthwaite = list(t = sat$t, df = unname(sat$out[, "df"])),
  anova3 = list(t = a3$t, F = a3$out[["F value"]], den = a3$out[["DenDF"]]),
  kr = list(t = kr$t, F = kr$out[["F value"]], den = kr$out[["DenDF"]]),
  emmeans = list(t = em$t, se = em$out$e$SE, df = em$out$e$df, p = em$out$p$p.value),
  predict = list(t = pr$t, se = unname(pr$out$se.fit), loglik = as.numeric(logLik(mt)))),
  auto_unbox = TRUE, digits = NA), "\n")
"""


def split_plot(blocks: int, seed: int = 21) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    vb = rng.normal(0, 8, blocks)
    for b in range(blocks):
        for v in range(4):
            mp = rng.normal(0, 5)
            for n in range(6):
                for r in range(2):
                    y = 100 + 3 * n + 4 * v + 0.3 * n * v + vb[b] + mp + rng.normal(0, 6)
                    rows.append((f"b{b:03d}", f"v{v}", f"n{n}", y))
    return pd.DataFrame(rows, columns=["B", "V", "N", "y"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    d = split_plot(args.blocks)
    new = d.sample(200, random_state=1).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv, ncsv, script = Path(tmp) / "d.csv", Path(tmp) / "new.csv", Path(tmp) / "inf.R"
        d.to_csv(csv, index=False)
        new.to_csv(ncsv, index=False)
        script.write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(script), str(csv), str(args.repeat), str(ncsv)], capture_output=True,
                             text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    warnings.simplefilter("ignore")
    fit = gk.lmer("y ~ N * V + (1 | B / V)", d)

    def fresh(keep_satterthwaite=False):
        cache = fit.__dict__.get("_ddf_cache", {})
        for key in list(cache):
            if not (keep_satterthwaite and key == "satterthwaite"):
                cache.pop(key)
        fit.__dict__.pop("_hypotheses", None)
        return fit

    ours = {}
    ours["satterthwaite"] = _median(lambda: fresh().fixef_table(), args.repeat)
    # lmerTest stores the derivatives on coercion and its anova reuses them: so does the fit here
    ours["anova3"] = _median(lambda: gk.anova(fresh(keep_satterthwaite=True), type=3), args.repeat)
    ours["kr"] = _median(lambda: gk.anova(fresh(), type=3, ddf="kenward-roger"), args.repeat)

    def emm():
        e = gk.emmeans(fresh(), "N")
        return e, e.contrast("pairwise")

    ours["emmeans"] = _median(emm, args.repeat)
    ml = gk.lmer("y ~ N * V + (1 | B / V)", d, reml=False)
    ours["predict"] = _median(lambda: ml.predict(new, se_fit=True), args.repeat)
    rows = [
        ("Satterthwaite coefficient table", "lmerTest", ours["satterthwaite"][0], r["satterthwaite"]["t"],
         np.max(np.abs(ours["satterthwaite"][1]["df"].to_numpy() / np.array(r["satterthwaite"]["df"]) - 1)), "df"),
        ("type III anova, Satterthwaite", "lmerTest", ours["anova3"][0], r["anova3"]["t"],
         np.max(np.abs(ours["anova3"][1]["F"].to_numpy() / np.array(r["anova3"]["F"]) - 1)), "F"),
        ("type III anova, Kenward-Roger", "lmerTest + pbkrtest", ours["kr"][0], r["kr"]["t"],
         np.max(np.abs(ours["kr"][1]["den_df"].to_numpy() / np.array(r["kr"]["den"]) - 1)), "den df"),
        ("emmeans of N + Tukey pairs (KR df)", "emmeans", ours["emmeans"][0], r["emmeans"]["t"],
         np.max(np.abs(ours["emmeans"][1][0].table["std_error"].to_numpy() / np.array(r["emmeans"]["se"]) - 1)), "SE"),
        ("predict se_fit, 200 rows", "glmmTMB", ours["predict"][0], r["predict"]["t"],
         np.max(np.abs(ours["predict"][1]["std_error"].to_numpy() / np.array(r["predict"]["se"]) - 1)), "se"),
    ]
    stamp = time.strftime("%Y-%m-%d")
    text = (f"After the fit: glmmkit beside the R packages ({stamp}, {platform.machine()}, {os.cpu_count()} cores; "
            f"split plot with {args.blocks} blocks, n = {len(d):,}: y ~ N * V + (1 | B / V), REML (ML for predict); "
            f"seconds per step after the fit, median of {args.repeat}; R timed inside R; "
            "`python benchmarks/inference_speed.py`)\n\n"
            "| step | R package | glmmkit (s) | R (s) | R / glmmkit | largest relative difference |\n"
            "|---|---|---|---|---|---|\n")
    for name, pkg, a, b, diff, what in rows:
        text += f"| {name} | {pkg} | {a:.3f} | {b:.3f} | {b / a:.1f}x | {diff:.1e} ({what}) |\n"
    write_result("inference_speed", text)


if __name__ == "__main__":
    main()
