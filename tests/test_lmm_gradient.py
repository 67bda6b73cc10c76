"""The analytic gradient of the profiled (RE)ML deviance (engine/lmm_gradient.py) against central
differences, on every storage of the blocked factor, and the fits it drives against the derivative-free path."""

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.engine.lmm_gradient import lmm_gradient, supports_lmm_gradient
from glmmkit.formula.spec import ModelSpec


def _data(seed=0, n=1500, q1=80, q2=25):
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 0.7, q1)[g] + rng.normal(0, 0.3, q1)[g] * x + rng.normal(0, 0.5, q2)[h]
         + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h],
                         "c": [f"c{i}" for i in g % 8], "k": [f"k{i}" for i in rng.integers(0, 4, n)]})


LAYOUTS = [
    "(1 | g)",
    "(1 + x | g)",
    "(1 | g) + (1 | h)",
    "(1 | g) + (1 | h) + (1 | k)",
    "(1 + x | g) + (1 | h)",
    "(1 | g) + (1 + z | h)",
    "(x || g) + (1 | h)",
    "(1 | c/g)",
]


def _check(obj, theta):
    v, g = lmm_gradient(obj, theta)
    assert np.isfinite(v) and v == pytest.approx(obj(theta), rel=1e-13)
    num = np.zeros(len(theta))
    for i in range(len(theta)):
        e = np.zeros(len(theta))
        e[i] = 1e-5
        num[i] = (obj(theta + e) - obj(theta - e)) / 2e-5
    assert g == pytest.approx(num, rel=1e-6, abs=1e-5)


@pytest.mark.parametrize("re", LAYOUTS)
@pytest.mark.parametrize("reml", [False, True])
def test_lmm_gradient_matches_central_differences(re, reml, cross_storage):
    spec = ModelSpec.from_formula(f"y ~ x + {re}", _data(), "gaussian", lmm=True)
    obj = spec.lmm_objective(reml=reml)
    assert supports_lmm_gradient(obj)
    rng = np.random.default_rng(1)
    theta = obj.theta0 * rng.uniform(0.4, 1.2, obj.n_theta) + np.where(obj.theta_lower == 0, 0.0, 0.15)
    _check(obj, theta)


def test_lmm_gradient_with_a_known_matrix_term():
    d = _data(2)
    levels = sorted(d["h"].unique())
    rng = np.random.default_rng(3)
    A = rng.normal(size=(len(levels), len(levels)))
    K = pd.DataFrame(A @ A.T / len(levels) + np.eye(len(levels)), index=levels, columns=levels)
    for reml in (False, True):
        obj = ModelSpec.from_formula("y ~ x + (1 | g) + (1 | h)", d, "gaussian", lmm=True,
                                     relmat={"h": K}).lmm_objective(reml=reml)
        _check(obj, np.array([0.6, 0.4]))


def test_lmm_gradient_at_a_zero_variance_is_zero_for_that_term():
    obj = ModelSpec.from_formula("y ~ x + (1 | g) + (1 | h)", _data(), "gaussian", lmm=True).lmm_objective(False)
    _v, g = lmm_gradient(obj, np.array([0.6, 0.0]))
    assert g[1] == 0.0 and np.isfinite(g[0])


@pytest.mark.parametrize("re", ["(1 | g) + (1 | h) + (1 | k)", "(1 + x | g) + (1 | h)", "(1 | c/g)"])
@pytest.mark.parametrize("reml", [False, True])
def test_lmer_by_gradient_matches_derivative_free(re, reml, monkeypatch):
    import glmmkit.engine.optimize as optimize

    monkeypatch.setattr(optimize, "LMM_GRADIENT_MIN_SECONDS", 0.0)  # small data: force the gradient path
    d = _data(4)
    fit = gk.lmer(f"y ~ x + {re}", d, reml=reml)
    assert fit.optsummary.stages[0].optimizer.startswith("L-BFGS-B")
    ref = gk.lmer(f"y ~ x + {re}", d, reml=reml, control={"gradient": False})
    assert ref.optsummary.stages[0].optimizer == "bobyqa"
    assert fit.loglik >= ref.loglik - 1e-7
    assert fit.converged and ref.converged
    assert fit.fixef.to_numpy() == pytest.approx(ref.fixef.to_numpy(), rel=1e-4, abs=1e-6)
    assert fit.varcorr["sd"].dropna().to_numpy() == pytest.approx(ref.varcorr["sd"].dropna().to_numpy(), rel=1e-3,
                                                                  abs=1e-5)


def test_small_lmm_keeps_bobyqa():
    """The gradient pays only where an evaluation is dear: a small model stays on BOBYQA."""
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    assert fit.optsummary.stages[0].optimizer == "bobyqa"
