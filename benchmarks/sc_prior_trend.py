"""The donor-variance prior with and without a trend in mean expression (issue 22).

    python benchmarks/sc_prior_trend.py [--seeds 4] [--genes 1500] [--cells 5000] [--subjects 16]
        ->  benchmarks/results/sc_prior_trend.md

Two scenarios simulated by ``gk.singlecell.simulate`` (seeded): the subject SD independent of expression
(uniform on [0.15, 0.5]), and falling with expression (``sd_trend=0.6``: lowly expressed genes vary more,
as in real data).  Each with no DE (null calibration: share of p < 0.05 and 0.01, KS) and with 10% DE genes
(|log fc| 0.5: discoveries at BH 5%, actual FDP, power, power at actual FDP 5%).  GLMM fast path with
``prior="eb-trend"`` (the default: the prior's scale a spline in mean expression), ``prior="eb"`` (one scale),
``prior=None``, and pseudobulk (PyDESeq2 on donor sums, as benchmarks/sc_calibration.py).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import glmmkit as gk
from glmmkit.singlecell import bh_fdr, power_at_fdp

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402

PRIORS = {"GLMM, EB prior with a trend in expression (prior='eb-trend', default)": "eb-trend",
          "GLMM, EB prior, one scale (prior='eb')": "eb", "GLMM per gene, no prior (prior=None)": None,
          "pseudobulk (PyDESeq2)": "pseudobulk"}


def _pvalues(ad, prior):
    if prior == "pseudobulk":
        return gk.singlecell.pseudobulk(ad, "subject", "condition")["p"].to_numpy()
    return gk.singlecell.de(ad, "subject", "condition", prior=prior, progress_bar=False).table["p"].to_numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--genes", type=int, default=1500)
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--subjects", type=int, default=16)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    size = dict(n_genes=a.genes, n_cells=a.cells, n_subjects=a.subjects)
    scenarios = {"subject SD independent of expression": 0.0, "subject SD falling with expression": 0.6}
    out = []
    for sc, trend in scenarios.items():
        nulls = {m: [] for m in PRIORS}
        des = {m: [] for m in PRIORS}
        times = {m: [] for m in PRIORS}
        for seed in range(1, a.seeds + 1):
            ad0 = gk.singlecell.simulate(frac_de=0.0, seed=300 + seed, sd_trend=trend, **size)
            ad1 = gk.singlecell.simulate(frac_de=0.1, lfc=0.5, seed=400 + seed, sd_trend=trend, **size)
            truth = ad1.var["is_de"].to_numpy()
            for m, prior in PRIORS.items():
                p0 = _pvalues(ad0, prior)
                nulls[m].append(p0[np.isfinite(p0)])
                t0 = time.perf_counter()
                p = _pvalues(ad1, prior)
                times[m].append(time.perf_counter() - t0)
                s = bh_fdr(p) <= 0.05
                des[m].append([s.sum(), (s & ~truth).sum() / max(s.sum(), 1), (s & truth).sum() / truth.sum(),
                               power_at_fdp(p, truth)])
            print(f"{sc}: seed {seed} done", flush=True)
        rows = []
        for m in PRIORS:
            p0 = np.concatenate(nulls[m])
            r = np.array(des[m], dtype=float)
            d, se = r.mean(axis=0), r.std(axis=0, ddof=1) / np.sqrt(len(r))
            rows.append([m, f"{np.mean(p0 < 0.05):.3f}", f"{np.mean(p0 < 0.01):.4f}",
                         f"{stats.kstest(p0, 'uniform').pvalue:.3g}", f"{d[0]:.0f}", f"{d[1]:.3f}",
                         f"{d[2]:.3f} ± {se[2]:.3f}", f"{d[3]:.3f} ± {se[3]:.3f}", f"{np.mean(times[m]):.1f} s"])
        table = pd.DataFrame(rows, columns=["method", "null P(p<0.05)", "null P(p<0.01)", "null KS p",
                                            "discoveries (FDR 5%)", "actual FDP", "power ± s.e.",
                                            "power at actual FDP 5% ± s.e.", "time"])
        out.append(f"### {sc}\n\n{table.to_markdown(index=False)}\n")
    text = (f"# The donor-variance prior with a trend in expression (issue 22)\n\n`python benchmarks/sc_prior_trend.py "
            f"--seeds {a.seeds} --genes {a.genes} --cells {a.cells} --subjects {a.subjects}`; GLMM fast path, "
            f"{a.seeds} seeds per scenario, one run.\n\n" + "\n".join(out))
    write_result("sc_prior_trend", text)


if __name__ == "__main__":
    main()
