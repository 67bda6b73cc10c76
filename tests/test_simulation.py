"""Simulation recovery: parameters recovered within sampling error over repeated seeded fits.

The check for each parameter: |mean estimate - truth| < 3 Monte-Carlo standard errors
(sd of the estimates / sqrt(R)) plus a small allowance for the known small-sample bias
of Laplace variance estimates (10% of the truth for SDs).
"""

import warnings

import numpy as np
import pandas as pd

import glmmkit as gk

R = 12


def _binomial_crossed_slope(seed):
    rng = np.random.default_rng(seed)
    n, qg, qh = 2400, 40, 25
    g, h = rng.integers(0, qg, n), rng.integers(0, qh, n)
    x = rng.normal(size=n)
    cov = np.array([[0.64, 0.12], [0.12, 0.25]])  # sd 0.8 and 0.5, corr 0.3
    b = rng.multivariate_normal([0, 0], cov, qg)
    eta = -0.5 + 0.7 * x + b[g, 0] + b[g, 1] * x + rng.normal(0, 0.6, qh)[h]
    return pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "g": g, "h": h})


def _poisson_nested(seed):
    rng = np.random.default_rng(seed)
    n_a, per, qc = 30, 5, 12
    rows = 2400
    a = rng.integers(0, n_a, rows)
    b = rng.integers(0, per, rows)
    c = rng.integers(0, qc, rows)
    x = rng.normal(size=rows)
    expo = rng.uniform(1, 5, rows)
    eta = (np.log(expo) + 0.2 + 0.4 * x + rng.normal(0, 0.5, n_a)[a]
           + rng.normal(0, 0.3, n_a * per)[a * per + b] + rng.normal(0, 0.4, qc)[c])
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "expo": expo, "a": a, "b": b, "c": c})


def _recover(fits, truth):
    for name, (get, value, allowance) in truth.items():
        est = np.array([get(f) for f in fits])
        mc = est.std(ddof=1) / np.sqrt(len(est))
        assert abs(est.mean() - value) < 3 * mc + allowance, (name, est.mean(), value, mc)


def _sd(fit, group, term="(Intercept)"):
    vc = fit.varcorr
    return vc.loc[(vc.group == group) & (vc.term1 == term) & vc.term2.isna(), "sd"].iloc[0]


def test_binomial_crossed_with_random_slope():
    fits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gk.SingularFitWarning)
        for s in range(R):
            fits.append(gk.glmer("y ~ x + (1 + x | g) + (1 | h)", _binomial_crossed_slope(s), "binomial"))
    assert all(f.converged for f in fits)
    corr = lambda f: f.varcorr.dropna(subset=["term2"])["corr"].iloc[0]  # noqa: E731
    _recover(fits, {
        "intercept": (lambda f: f.fixef["(Intercept)"], -0.5, 0.0),
        "x": (lambda f: f.fixef["x"], 0.7, 0.0),
        "sd g": (lambda f: _sd(f, "g"), 0.8, 0.08),
        "sd g slope": (lambda f: _sd(f, "g", "x"), 0.5, 0.05),
        "sd h": (lambda f: _sd(f, "h"), 0.6, 0.06),
        "corr": (corr, 0.3, 0.1),
    })


def test_poisson_nested_crossed_with_offset():
    fits = [gk.glmer("y ~ x + offset(log(expo)) + (1 | a/b) + (1 | c)", _poisson_nested(s), "poisson")
            for s in range(R)]
    assert all(f.converged for f in fits)
    _recover(fits, {
        "intercept": (lambda f: f.fixef["(Intercept)"], 0.2, 0.0),
        "x": (lambda f: f.fixef["x"], 0.4, 0.0),
        "sd a": (lambda f: _sd(f, "a"), 0.5, 0.05),
        "sd b:a": (lambda f: _sd(f, "b:a"), 0.3, 0.03),
        "sd c": (lambda f: _sd(f, "c"), 0.4, 0.04),
    })
