"""Speed of the phylogenetic GLMM: the sparse tree path against the dense-K path (issue 5; since issue 18
the tree path is the engine's PIRLS, Laplace objective and optimiser on the tree's random-effects system).

    python benchmarks/phylo_speed.py [--tips 1000,2000,10000,100000] [--dense-max 2000]
        ->  benchmarks/results/phylo_speed.md

A binary trait, one observation per tip of a Kingman coalescent tree (seeded):
logit P(y) = -0.3 + 0.5 x + a, a Brownian motion with tip variance 1 (relmat = vcv(tree, corr = TRUE)).
The dense path is glmmkit's glmer(..., relmat={sp: K}) (the factor of K in the dense trailing block).
"""

from __future__ import annotations

import argparse
import sys
import json
import resource
import shutil
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
from glmmkit.datasets.simulate import coalescent_newick


R_LME4 = r"""
suppressMessages(library(lme4))
a <- commandArgs(TRUE)
d <- read.csv(a[1]); K <- as.matrix(read.csv(a[2], row.names = 1, check.names = FALSE))
d$sp <- factor(d$sp, levels = rownames(K))
t <- system.time({
  lf <- glFormula(y ~ x + (1 | sp), data = d, family = binomial)
  L <- t(chol(K))                                   # K = L L'; b = L u, so Z* = Z L
  lf$reTrms$Zt <- as(t(L) %*% lf$reTrms$Zt, "CsparseMatrix")
  devfun <- do.call(mkGlmerDevfun, lf)
  opt <- optimizeGlmer(devfun)
  devfun <- updateGlmerDevfun(devfun, lf$reTrms)
  opt <- optimizeGlmer(devfun, stage = 2)
  m <- mkMerMod(environment(devfun), opt, lf$reTrms, fr = lf$fr)
})[["elapsed"]]
cat(sprintf('{"time": %.4f, "loglik": %.8f}\n', t, as.numeric(logLik(m))))
"""


def run_lme4(d, K):
    with tempfile.TemporaryDirectory() as tmp:
        dp, kp, rp = (Path(tmp) / f for f in ("d.csv", "K.csv", "f.R"))
        d.to_csv(dp, index=False)
        K.to_csv(kp)
        rp.write_text(R_LME4)
        out = subprocess.run(["Rscript", str(rp), str(dp), str(kp)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"lme4 error": out.stderr.strip()[-200:]}
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"lme4 (s)": r["time"], "lme4 logLik": r["loglik"]}


def data(n, seed):
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    tree = gk.phylo.read_tree(coalescent_newick(n, rng))
    t_tree = time.perf_counter() - t0
    scale = 1.0 / tree.depth[tree.is_tip].max()
    v = np.zeros(len(tree.parent))
    steps = rng.normal(size=len(tree.parent)) * np.sqrt(scale * tree.length)
    for i in range(1, len(tree.parent)):  # Brownian motion, pre-order (data generation only)
        v[i] = v[tree.parent[i]] + steps[i]
    x = rng.normal(size=tree.n_tips)
    y = rng.binomial(1, 1 / (1 + np.exp(-(-0.3 + 0.5 * x + v[tree.is_tip]))))
    return tree, pd.DataFrame({"sp": tree.tip_labels, "x": x, "y": y}), t_tree


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tips", default="1000,2000,10000,100000")
    ap.add_argument("--dense-max", type=int, default=2000)
    ap.add_argument("--lme4-max", type=int, default=1000)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for n in [int(v) for v in args.tips.split(",")]:
        tree, d, t_tree = data(n, seed=n)
        t0 = time.perf_counter()
        sp = gk.phylo.fit_tree_glmm("y ~ x + (1 | sp)", d, "binomial", tree)
        t_sparse = time.perf_counter() - t0
        row = {"tips": n, "read tree (s)": t_tree, "sparse (s)": t_sparse, "sparse logLik": sp.loglik,
               "sparse evals": sp.optsummary.fevals, "theta": float(sp.theta[0]), "x": sp.fixef["x"]}
        if n <= args.dense_max:
            t0 = time.perf_counter()
            K = gk.phylo.vcv(tree, corr=True)
            de = gk.glmer("y ~ x + (1 | sp)", d, "binomial", relmat={"sp": K})
            row.update({"dense (s)": time.perf_counter() - t0, "dense logLik": de.loglik,
                        "dense / sparse": (time.perf_counter() - t0) / t_sparse})
            if n <= args.lme4_max and shutil.which("Rscript"):
                row.update(run_lme4(d, K))
        rows.append(row)
        print(row, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tab = pd.DataFrame(rows)
    with pd.option_context("display.float_format", lambda v: f"{v:.4g}"):
        text = (f"Phylogenetic logistic GLMM, one observation per tip ({time.strftime('%Y-%m-%d')}, 2 cores; "
                f"peak memory {peak:.0f} MB)\n\n" + tab.to_markdown(index=False) + "\n")
    write_result("phylo_speed", text)


if __name__ == "__main__":
    main()
