"""Calibration and power of single-cell DE: GLMM, pseudobulk (DESeq2), cell-level GLM (issue 8).

    python benchmarks/sc_calibration.py [--seeds 3] [--genes 2000] [--cells 6000] [--subjects 20]
        ->  benchmarks/results/sc_calibration.md

Simulated by ``gk.singlecell.simulate`` (NB dispersion varying with expression, library sizes log-normal),
seeded.  Null scenario: no gene differs (KS test of the null p-values pooled over seeds, fraction below
0.05, 0.01, 0.001).  DE scenarios: 10% of genes with |log fc| = 0.5, subject SD per gene uniform on
[0.15, 0.5] ("high subject variability") or on [0.05, 0.2] ("low").
FDR: Benjamini-Hochberg at 5%; power = true discoveries / true DE genes.  "Power at actual FDP 5%": the
largest top-ranked set whose false-discovery proportion is <= 5% (an oracle that takes calibration out
and compares the rankings); "precision of top k": true DE genes among the k = (DE genes) / 2 smallest p.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import glmmkit as gk
from glmmkit.singlecell import bh_fdr, power_at_fdp

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402

METHODS = ["GLMM, EB variance prior, t (default)", "GLMM per gene, no prior, t", "GLMM per gene, Wald z",
           "pseudobulk (DESeq2)", "cell-level NB GLM"]


def run(ad):
    kw = dict(subject="subject", condition="condition", progress_bar=False, workers=1)
    calls = {METHODS[0]: lambda: gk.singlecell.de(ad, **kw).table,
             METHODS[1]: lambda: gk.singlecell.de(ad, prior=None, **kw).table,
             METHODS[2]: lambda: gk.singlecell.de(ad, prior=None, pvalue="z", **kw).table,
             METHODS[3]: lambda: gk.singlecell.pseudobulk(ad, "subject", "condition"),
             METHODS[4]: lambda: gk.singlecell.cell_glm(ad, **kw)}
    ps, t = {}, {}
    for m, call in calls.items():
        t0 = time.perf_counter()
        ps[m] = call()["p"].to_numpy()
        t[m] = time.perf_counter() - t0
    t.pop(METHODS[2])  # the same fit as METHODS[1]
    return ps, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--cells", type=int, default=6000)
    ap.add_argument("--subjects", type=int, default=20)
    a = ap.parse_args()
    size = dict(n_genes=a.genes, n_cells=a.cells, n_subjects=a.subjects)
    null_p = {m: [] for m in METHODS}
    scenarios = {"high subject variability, SD in [0.15, 0.5]": (0.15, 0.5),
                 "low subject variability, SD in [0.05, 0.2]": (0.05, 0.2)}
    de_rows = {sc: {m: [] for m in METHODS} for sc in scenarios}
    times = {m: [] for m in METHODS}
    for seed in range(1, a.seeds + 1):
        ad = gk.singlecell.simulate(frac_de=0.0, seed=100 + seed, **size)
        ps, _ = run(ad)
        for m in METHODS:
            null_p[m].append(ps[m][np.isfinite(ps[m])])
        for k, (sc, sd) in enumerate(scenarios.items()):
            ad = gk.singlecell.simulate(frac_de=0.1, lfc=0.5, seed=200 + 10 * k + seed, sd_range=sd, **size)
            truth = ad.var["is_de"].to_numpy()
            ps, t = run(ad)
            for m in METHODS:
                p = ps[m]
                s = bh_fdr(p) <= 0.05
                top = np.argsort(np.where(np.isfinite(p), p, 1.0), kind="stable")[: truth.sum() // 2]
                de_rows[sc][m].append([s.sum(), (s & ~truth).sum() / max(s.sum(), 1), (s & truth).sum() / truth.sum(),
                                       power_at_fdp(p, truth), truth[top].mean()])
                if m in t:
                    times[m].append(t[m])
        print(f"seed {seed} done", flush=True)
    rows = []
    for m in METHODS:
        p = np.concatenate(null_p[m])
        rows.append([m, len(p), f"{np.mean(p < 0.05):.3f}", f"{np.mean(p < 0.01):.4f}", f"{np.mean(p < 0.001):.4f}",
                     f"{stats.kstest(p, 'uniform').pvalue:.3g}"])
    null = pd.DataFrame(rows, columns=["method", "null p-values", "P(p < 0.05)", "P(p < 0.01)", "P(p < 0.001)",
                                       "KS p (uniform)"])
    parts = []
    for sc in scenarios:
        rows = []
        for m in METHODS:
            d = np.array(de_rows[sc][m], dtype=float).mean(axis=0)
            rows.append([m, f"{d[0]:.0f}", f"{d[1]:.3f}", f"{d[2]:.3f}", f"{d[3]:.3f}", f"{d[4]:.3f}",
                         f"{np.mean(times[m]):.1f} s" if times[m] else "(as above)"])
        de = pd.DataFrame(rows, columns=["method", "discoveries (FDR 5%)", "actual FDP", "power",
                                         "power at actual FDP 5%", "precision of top k", "time per data set"])
        parts.append(f"### {sc}\n\n{de.to_markdown(index=False)}\n")
    text = f"""# Single-cell DE: calibration and power (issue 8)

`python benchmarks/sc_calibration.py --seeds {a.seeds} --genes {a.genes} --cells {a.cells} --subjects {a.subjects}`;
{a.genes} genes x {a.cells} cells x {a.subjects} subjects ({a.subjects // 2} per condition), simulated by
`gk.singlecell.simulate`; {a.seeds} seeds per scenario, one run.

## No true differences (p-values pooled over seeds)

{null.to_markdown(index=False)}

## 10% of genes differentially expressed, |log fc| = 0.5 (means over seeds)

{chr(10).join(parts)}
Discoveries at Benjamini-Hochberg FDR 5%; actual FDP = false among them; power = true discoveries / true DE
genes; "power at actual FDP 5%" ranks genes by p and takes the largest top set whose false-discovery
proportion is at most 5% (calibration taken out: which method ranks the DE genes better; a step function
of the ranking, so it jumps with a single false gene near the cut); "precision of top k": the share of
truly changed genes among the k = (number of DE genes) / 2 smallest p-values (the smoother ranking measure).
"""
    write_result("sc_calibration", text)


if __name__ == "__main__":
    main()
