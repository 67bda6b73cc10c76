"""Calibration of the dispersion tests and of Wald intervals under overdispersion (issue 3).

    python benchmarks/calibration_overdispersion.py [--reps 200]  ->  benchmarks/results/calibration_overdispersion.md

Design (seeded): 40 groups x 10 observations, x varies within groups,
log mu = 0.3 + 0.3 x + b_g, b_g ~ N(0, 0.5^2).
1. Poisson data: how often do the dispersion tests reject at 5%? Nominal: 5%. The tests: Pearson
   chi-square, the parametric bootstrap of the Pearson ratio (``gk.dispersion_test``, the calibrated
   one), and the DHARMa-style simulated dispersion test (conditional simulations, two-sided).
2. NB2 data (size 1.5): how often do they reject? (power)
3. NB2 data: coverage of the 95% Wald interval of the x effect for the Poisson and the NB2 GLMM.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import glmmkit as gk

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402


def make(seed: int, size: float | None):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(40), 10)
    x = rng.normal(size=g.size)
    mu = np.exp(0.3 + 0.3 * x + rng.normal(0, 0.5, 40)[g])
    y = rng.poisson(mu) if size is None else rng.negative_binomial(size, size / (size + mu))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--nsim", type=int, default=200)
    ap.add_argument("--nsim-bootstrap", type=int, default=100)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    rows = {"poisson data": [], "nb2 data": []}
    cover = {"poisson GLMM": 0, "nbinom2 GLMM": 0}
    for r in range(args.reps):
        for label, size in (("poisson data", None), ("nb2 data", 1.5)):
            d = make(10_000 * (size is not None) + r, size)
            fp = gk.glmer("y ~ x + (1 | g)", d, "poisson")
            pear = gk.pearson_dispersion(fp)["p"]
            boot = gk.dispersion_test(fp, method="bootstrap", nsim=args.nsim_bootstrap, seed=r)["p"]
            sim = gk.simulate_residuals(fp, nsim=args.nsim, seed=r, conditional=True).test_dispersion()["p"]
            rows[label].append((pear < 0.05, boot < 0.05, sim < 0.05))
            if size is not None:
                fn = gk.glmer("y ~ x + (1 | g)", d, "nbinom2")
                for name, f in (("poisson GLMM", fp), ("nbinom2 GLMM", fn)):
                    est, se = f.fixef["x"], f.coef_table.loc["x", "std_error"]
                    cover[name] += abs(est - 0.3) < 1.959964 * se
    el = time.perf_counter() - t0
    n = args.reps
    mc = lambda p: np.sqrt(p * (1 - p) / n)  # noqa: E731
    lines = [f"Calibration of the dispersion tests and Wald intervals ({n} seeded datasets per row, "
             f"{args.nsim_bootstrap} refits per bootstrap test, {args.nsim} simulations per simulated test; {el:.0f} s)", "",
             "| data | Pearson chi-square rejects (5%) | bootstrap test rejects (5%) | simulated (DHARMa-style) test rejects (5%) |",
             "|---|---|---|---|"]
    for label in rows:
        a = np.array(rows[label], dtype=float)
        cells = " | ".join(f"{a[:, j].mean():.1%} (MC SE {mc(a[:, j].mean()):.1%})" for j in range(3))
        lines.append(f"| {label} | {cells} |")
    lines += ["", "| model fitted to NB2 data | coverage of the 95% Wald interval of the x effect |", "|---|---|"]
    for name, c in cover.items():
        lines.append(f"| {name} | {c / n:.1%} (MC SE {mc(c / n):.1%}) |")
    text = "\n".join(lines) + "\n"
    write_result("calibration_overdispersion", text)


if __name__ == "__main__":
    main()
