"""Calibration and power of single-cell DE: GLMM, pseudobulk (DESeq2), cell-level GLM (issue 8).

    python benchmarks/sc_calibration.py [--seeds 8] [--genes 2000] [--cells 6000] [--subjects 20]
        ->  benchmarks/results/sc_calibration.md

Simulated by ``gk.singlecell.simulate`` (NB dispersion varying with expression, library sizes log-normal),
seeded.  Null scenario: no gene differs (KS test of the null p-values pooled over seeds, fraction below
0.05, 0.01, 0.001).  DE scenarios: 10% of genes with |log fc| = 0.5, subject SD per gene uniform on
[0.15, 0.5] ("high subject variability") or on [0.05, 0.2] ("low"), cells shared equally among subjects in
expectation; the high-variability scenario with each subject's share of the cells log-normal (SD 1), as
real donors contribute very different numbers of cells; and a rare cell type (about 50 cells per subject,
shared unequally, library size 1,500), null and with low subject variability, where a subject's total is
noisy beside its random effect.
FDR: Benjamini-Hochberg at 5%; power = true discoveries / true DE genes.  "Power at actual FDP 5%": the
largest top-ranked set whose false-discovery proportion is <= 5% (an oracle that takes calibration out
and compares the rankings); "precision of top k": true DE genes among the k = (DE genes) / 2 smallest p;
AUC: the area under the ROC curve of -log10 p for the true DE genes (the whole ranking).
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

METHODS = ["GLMM, EB variance prior with its trend in expression, t (default)", "GLMM per gene, no prior, t", "GLMM per gene, Wald z",
           "pseudobulk (DESeq2)", "cell-level NB GLM"]


def auc(p: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve of -log10 p for the true DE genes (Mann-Whitney; untested genes left out)."""
    ok = np.isfinite(p)
    r = stats.rankdata(-p[ok])
    pos = truth[ok]
    n1, n0 = pos.sum(), (~pos).sum()
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


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
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--cells", type=int, default=6000)
    ap.add_argument("--subjects", type=int, default=20)
    a = ap.parse_args()
    size = dict(n_genes=a.genes, n_cells=a.cells, n_subjects=a.subjects)
    # a rare cell type: about 50 cells per subject, shared unequally, at a lower depth -- the cell-level noise
    # of a subject's total is then comparable with the subject variance
    rare = dict(cells_sd=1.0, n_cells=max(a.subjects * 50, 100), mean_lib=1500.0)
    nulls = {"cells shared equally among subjects (in expectation)": {},
             "unequal cells per subject (log-normal shares, SD 1)": dict(cells_sd=1.0),
             f"a rare cell type: {rare['n_cells']:,} cells (about 50 per subject, log-normal shares, SD 1), "
             "library size 1,500": rare}
    null_p = {sc: {m: [] for m in METHODS} for sc in nulls}
    scenarios = {"high subject variability, SD in [0.15, 0.5]": dict(sd_range=(0.15, 0.5)),
                 "low subject variability, SD in [0.05, 0.2]": dict(sd_range=(0.05, 0.2)),
                 "high subject variability, unequal cells per subject (log-normal shares, SD 1)":
                     dict(sd_range=(0.15, 0.5), cells_sd=1.0),
                 f"a rare cell type ({rare['n_cells']:,} cells, about 50 per subject, unequal; library size 1,500), "
                 "low subject variability": dict(sd_range=(0.05, 0.2), **rare)}
    de_rows = {sc: {m: [] for m in METHODS} for sc in scenarios}
    times = {m: [] for m in METHODS}
    for seed in range(1, a.seeds + 1):
        for k, (sc, how) in enumerate(nulls.items()):
            ad = gk.singlecell.simulate(frac_de=0.0, seed=100 + 50 * k + seed, **{**size, **how})
            ps, _ = run(ad)
            for m in METHODS:
                null_p[sc][m].append(ps[m][np.isfinite(ps[m])])
        for k, (sc, how) in enumerate(scenarios.items()):
            ad = gk.singlecell.simulate(frac_de=0.1, lfc=0.5, seed=200 + 10 * k + seed, **{**size, **how})
            truth = ad.var["is_de"].to_numpy()
            ps, t = run(ad)
            for m in METHODS:
                p = ps[m]
                s = bh_fdr(p) <= 0.05
                top = np.argsort(np.where(np.isfinite(p), p, 1.0), kind="stable")[: truth.sum() // 2]
                de_rows[sc][m].append([s.sum(), (s & ~truth).sum() / max(s.sum(), 1), (s & truth).sum() / truth.sum(),
                                       power_at_fdp(p, truth), truth[top].mean(), auc(p, truth)])
                if m in t:
                    times[m].append(t[m])
        print(f"seed {seed} done", flush=True)
    null_parts = []
    for sc in nulls:
        rows = []
        for m in METHODS:
            p = np.concatenate(null_p[sc][m])
            rows.append([m, len(p), f"{np.mean(p < 0.05):.3f}", f"{np.mean(p < 0.01):.4f}",
                         f"{np.mean(p < 0.001):.4f}", f"{stats.kstest(p, 'uniform').pvalue:.3g}"])
        null = pd.DataFrame(rows, columns=["method", "null p-values", "P(p < 0.05)", "P(p < 0.01)", "P(p < 0.001)",
                                           "KS p (uniform)"])
        null_parts.append(f"### {sc}\n\n{null.to_markdown(index=False)}\n")
    parts = []
    for sc in scenarios:
        rows = []
        for m in METHODS:
            r = np.array(de_rows[sc][m], dtype=float)
            d, se = r.mean(axis=0), r.std(axis=0, ddof=1) / np.sqrt(len(r))
            rows.append([m, f"{d[0]:.0f}", f"{d[1]:.3f}", f"{d[2]:.3f} ± {se[2]:.3f}", f"{d[3]:.3f} ± {se[3]:.3f}",
                         f"{d[4]:.3f}", f"{d[5]:.4f}", f"{np.mean(times[m]):.1f} s" if times[m] else "(as above)"])
        de = pd.DataFrame(rows, columns=["method", "discoveries (FDR 5%)", "actual FDP", "power ± s.e.",
                                         "power at actual FDP 5% ± s.e.", "precision of top k", "AUC",
                                         "time per data set"])
        parts.append(f"### {sc}\n\n{de.to_markdown(index=False)}\n")
    text = f"""# Single-cell DE: calibration and power (issue 8)

`python benchmarks/sc_calibration.py --seeds {a.seeds} --genes {a.genes} --cells {a.cells} --subjects {a.subjects}`;
{a.genes} genes x {a.cells} cells x {a.subjects} subjects ({a.subjects // 2} per condition), simulated by
`gk.singlecell.simulate`; {a.seeds} seeds per scenario, one run.

## No true differences (p-values pooled over seeds)

{chr(10).join(null_parts)}
## 10% of genes differentially expressed, |log fc| = 0.5 (means over seeds, s.e. between seeds)

{chr(10).join(parts)}
Discoveries at Benjamini-Hochberg FDR 5%; actual FDP = false among them; power = true discoveries / true DE
genes; "power at actual FDP 5%" ranks genes by p and takes the largest top set whose false-discovery
proportion is at most 5% (calibration taken out: which method ranks the DE genes better; a step function
of the ranking, so it jumps with a single false gene near the cut); "precision of top k": the share of
truly changed genes among the k = (number of DE genes) / 2 smallest p-values (the smoother ranking measure);
AUC: area under the ROC curve of -log10 p against the truth, the whole ranking.
"""
    write_result("sc_calibration", text)


if __name__ == "__main__":
    main()
