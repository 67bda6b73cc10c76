"""update(), start=, Control(optimizer=...) and all_fit (issue 21)."""

import numpy as np
import pytest

import glmmkit as gk
from glmmkit.formula.update import update_formula


@pytest.fixture(scope="module")
def cbpp_fit():
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"), "binomial")


@pytest.fixture(scope="module")
def sleep_fit():
    return gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))


@pytest.mark.parametrize("old,new,out", [
    ("y ~ x + z + (1 | g)", "~ . - z", "y ~ x + (1 | g)"),
    ("y ~ x + (1 | g)", "log(y) ~ . + (0 + x | g)", "log(y) ~ x + (1 | g) + (0 + x | g)"),
    ("y ~ x + (1 | g)", ". ~ . - (1|g) + (x | g)", "y ~ x + (x | g)"),
    ("y ~ x + (1 | g)", "~ . - 1", "y ~ x + (1 | g) - 1"),
    ("y ~ x", "~ . - x", "y ~ 1"),
    ("y ~ x", "~ . + x", "y ~ x"),
])
def test_update_formula_dot_syntax(old, new, out):
    assert update_formula(old, new) == out


def test_update_refits_with_changes(sleep_fit, cbpp_fit):
    g = sleep_fit.update("~ . - (Days | Subject) + (1 | Subject)")
    ref = gk.lmer("Reaction ~ Days + (1 | Subject)", gk.datasets.load("sleepstudy"))
    assert g.loglik == pytest.approx(ref.loglik, abs=1e-8)
    ml = sleep_fit.update(reml=False)
    assert not ml.reml and ml.loglik == pytest.approx(-875.969672, abs=1e-5)
    small = cbpp_fit.update("~ . - period")
    assert list(small.fixef.index) == ["(Intercept)"]
    lrt = gk.anova(small, cbpp_fit)
    assert lrt["Df"].iloc[1] == 3
    pois = cbpp_fit.update("incidence ~ . + offset(log(size))", family="poisson")
    assert pois.family.name == "poisson"
    sub = cbpp_fit.update(data=gk.datasets.load("cbpp").query("period != '4'"))
    assert sub.nobs < cbpp_fit.nobs
    with pytest.raises(gk.InputError, match="update"):
        cbpp_fit.update(nonsense=1)
    with pytest.raises(gk.FormulaError, match="'~'"):
        cbpp_fit.update("period")


@pytest.mark.parametrize("optimizer", ["default", "lbfgs", "bobyqa", "nelder-mead"])
def test_every_optimizer_reaches_the_same_optimum(optimizer, cbpp_fit, sleep_fit):
    for fit in (cbpp_fit, sleep_fit):
        f = fit.update(control=gk.Control(optimizer=optimizer))
        assert f.converged
        assert f.loglik == pytest.approx(fit.loglik, abs=1e-5)
        np.testing.assert_allclose(f.fixef, fit.fixef, rtol=1e-3, atol=1e-4)
        algos = {s.optimizer for s in f.optsummary.stages}
        if optimizer == "nelder-mead":
            assert "neldermead" in algos
        if optimizer == "bobyqa":
            assert not any("L-BFGS" in a for a in algos)


def test_start_values_are_used_and_checked(cbpp_fit, sleep_fit):
    f = cbpp_fit.update(start={"theta": cbpp_fit.theta, "beta": cbpp_fit.fixef.to_numpy()})
    assert f.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-6)
    far = cbpp_fit.update(start={"theta": [3.0]}, control=gk.Control(optimizer="bobyqa"))
    assert far.optsummary.stages[0].x0[0] == pytest.approx(3.0 / far.optsummary.theta_scale)
    assert far.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-5)
    s = sleep_fit.update(start={"theta": [1.0, 0.0, 0.5]})
    assert s.loglik == pytest.approx(sleep_fit.loglik, abs=1e-6)
    with pytest.raises(gk.InputError, match="needs 3 finite values"):
        sleep_fit.update(start={"theta": [1.0]})
    with pytest.raises(gk.InputError, match="theta only"):
        sleep_fit.update(start={"beta": [250, 10]})
    with pytest.raises(gk.InputError, match="lower bounds"):
        cbpp_fit.update(start={"theta": [-1.0]})
    with pytest.raises(gk.InputError, match="optimizer must be one of"):
        gk.Control(optimizer="adam")


def test_all_fit_tabulates_each_optimizer(cbpp_fit):
    a = gk.all_fit(cbpp_fit)
    assert list(a.table.index) == ["default", "lbfgs", "bobyqa", "nelder-mead"]
    assert a.table["converged"].all()
    assert a.table["loglik"].max() - a.table["loglik"].min() < 1e-5
    assert a.spread.max() < 1e-3
    assert "nelder-mead" in a.summary()
    import json

    json.dumps(a.to_dict(), allow_nan=False)
    with pytest.raises(gk.InputError, match="unknown optimizers"):
        gk.all_fit(cbpp_fit, optimizers=["sgd"])
