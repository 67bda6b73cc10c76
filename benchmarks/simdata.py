"""Seeded simulated data for the speed benchmarks (the same data go to every package)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _expit(x):
    return 1 / (1 + np.exp(-x))


def crossed_binomial(n=100_000, q1=1000, q2=200, seed=1):
    """Binary y ~ x + (1 | g) + (1 | h), g and h crossed."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x = rng.normal(size=n)
    eta = -0.5 + 0.6 * x + rng.normal(0, 0.8, q1)[g] + rng.normal(0, 0.5, q2)[h]
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def crossed_slope_binomial(n=100_000, q1=1000, q2=200, seed=2):
    """Binary y ~ x1 + (1 + x1 | g) + (1 | h)."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x1 = rng.normal(size=n)
    L = np.linalg.cholesky(np.array([[0.6, 0.1], [0.1, 0.2]]))
    b = rng.normal(size=(q1, 2)) @ L.T
    eta = -0.3 + 0.5 * x1 + b[g, 0] + b[g, 1] * x1 + rng.normal(0, 0.5, q2)[h]
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x1": x1, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def nested_poisson(n=50_000, clinics=500, per=10, seed=3):
    """Counts y ~ x + offset(log(expo)) + (1 | clinic/clinician)."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, clinics, n)
    k = rng.integers(0, per, n)
    x = rng.normal(size=n)
    expo = rng.uniform(5, 50, n)
    eta = np.log(expo) - 2.0 + 0.3 * x + rng.normal(0, 0.4, clinics)[c] + rng.normal(0, 0.3, clinics * per)[c * per + k]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "expo": expo,
                         "clinic": [f"c{i}" for i in c], "clinician": [f"k{i}" for i in k]})


def slope_binomial(n=50_000, q=500, seed=4):
    """Binary y ~ x + (1 + x | g)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    L = np.linalg.cholesky(np.array([[0.5, 0.1], [0.1, 0.25]]))
    b = rng.normal(size=(q, 2)) @ L.T
    eta = -0.2 + 0.4 * x + b[g, 0] + b[g, 1] * x
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x": x, "g": [f"g{i}" for i in g]})


def intercept_binomial(n=100_000, q=1000, seed=5):
    """Binary y ~ x + (1 | g)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    eta = -0.4 + 0.5 * x + rng.normal(0, 0.9, q)[g]
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x": x, "g": [f"g{i}" for i in g]})


MODELS = {
    "crossed": (crossed_binomial, "y ~ x + (1 | g) + (1 | h)", "binomial"),
    "crossed_slope": (crossed_slope_binomial, "y ~ x1 + (1 + x1 | g) + (1 | h)", "binomial"),
    "nested_offset": (nested_poisson, "y ~ x + offset(log(expo)) + (1 | clinic/clinician)", "poisson"),
    "slope": (slope_binomial, "y ~ x + (1 + x | g)", "binomial"),
    "intercept": (intercept_binomial, "y ~ x + (1 | g)", "binomial"),
}
