"""Step 2's cost per variant by variance mode at a moderate n (issue 22: no performance cliff at n <= 5,000).

    python benchmarks/gwas_step2.py [--families 1250] [--variants 50000]   ->  benchmarks/results/gwas_step2.md

One simulated cohort (about 4 per family), one null model that keeps P (n <= 5,000), then step 2 three ways
in one process: exact=True (g'Pg for every variant: O(n^2) each), the default (the variance ratio for every
variant, g'Pg for those with a variance-ratio p below 0.01) and exact=False (the variance ratio only).
Wall seconds of step 2, variants per second, and how the default's p-values agree with the exact ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from glmmkit import gwas

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=1250)
    ap.add_argument("--variants", type=int, default=50_000)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as d:
        info = gwas.simulate_cohort(Path(d) / "c", n_families=a.families, n_variants=a.variants, n_causal=200,
                                    h2=0.3, prevalence=0.1, seed=21, progress_bar=False)
        K, _ = gwas.grm(info["bfile"], variants=np.arange(0, a.variants, max(1, a.variants // 10_000)),
                        progress_bar=False)
        m = gwas.null(info["bfile"], info["pheno"], "y", info["covar"], ["sex", "age"], trait="binary", K=K,
                      progress_bar=False)
        rows, res = [], {}
        for name, exact in (("exact (g'Pg every variant)", True), ("default (screened)", None),
                            ("variance ratio only", False)):
            t0 = time.perf_counter()
            r = gwas.test(info["bfile"], m, exact=exact, chunk=5000, progress_bar=False).table
            dt = time.perf_counter() - t0
            res[name] = r
            rows.append((name, dt, a.variants / dt))
    ex = res["exact (g'Pg every variant)"]
    text = (f"Step 2 by variance mode ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; {m.n:,} samples with P "
            f"stored, {a.variants:,} variants, binary trait with SPA; `python benchmarks/gwas_step2.py`)\n\n"
            "| step 2 | seconds | variants / s | max abs difference in -log10 p against exact, p < 1e-3 | all variants |\n"
            "|---|---|---|---|---|\n")
    for name, dt, vps in rows:
        r = res[name]
        le, lr = -np.log10(ex["P"].to_numpy()), -np.log10(r["P"].to_numpy())
        ok = np.isfinite(le) & np.isfinite(lr)
        small = ok & (ex["P"].to_numpy() < 1e-3)
        text += (f"| {name} | {dt:.1f} | {vps:,.0f} | {np.max(np.abs(le - lr)[small], initial=0):.1e} | "
                 f"{np.max(np.abs(le - lr)[ok]):.2f} |\n")
    write_result("gwas_step2", text)


if __name__ == "__main__":
    main()
