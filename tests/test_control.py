"""The Control object: per call, recorded on the fit, carried by refit; every switch's off-path reaches the
same optimum."""

import json

import numpy as np
import pytest

import glmmkit as gk

from .conftest import ref_case


@pytest.fixture(scope="module")
def cbpp():
    return gk.datasets.load("cbpp")


FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def default(cbpp):
    return gk.glmer(FORMULA, cbpp, "binomial")


@pytest.mark.parametrize("change", [
    {"gradient": False}, {"skip_stage1": False}, {"moment_start": False}, {"quad_stop": 0.0},
    {"gradient": False, "moment_start": False}, {"ftol2": 1e-10, "xtol2": 1e-9},
])
def test_every_off_path_reaches_the_same_optimum(cbpp, default, change):
    fit = gk.glmer(FORMULA, cbpp, "binomial", control=gk.Control(**change))
    assert fit.converged
    for k, v in change.items():
        assert getattr(fit.optsummary.control, k) == v
    assert fit.loglik == pytest.approx(default.loglik, abs=1e-6)
    assert np.allclose(fit.fixef, default.fixef, rtol=1e-3, atol=1e-4)
    assert np.allclose(fit.coef_table["std_error"], default.coef_table["std_error"], rtol=2e-3)


def test_the_switches_change_the_path(cbpp, default):
    assert default.optsummary.stages[1].optimizer.startswith("L-BFGS-B")
    assert default.optsummary.stages[0].optimizer == "none"
    slow = gk.glmer(FORMULA, cbpp, "binomial", control=gk.Control(gradient=False))
    assert slow.optsummary.stages[0].optimizer == "bobyqa" and slow.optsummary.stages[1].optimizer == "bobyqa"
    full = gk.glmer(FORMULA, cbpp, "binomial", control=gk.Control(skip_stage1=False))
    assert full.optsummary.stages[0].optimizer == "bobyqa"


def test_control_is_recorded_and_carried(cbpp):
    c = gk.Control(ftol2=1e-9)
    fit = gk.glmer(FORMULA, cbpp, "binomial", control=c)
    assert fit.optsummary.control is c
    assert fit.to_dict()["optimizer"]["control"]["ftol2"] == 1e-9
    json.dumps(fit.to_dict(), allow_nan=False)
    y = fit.simulate(1, seed=1).iloc[:, 0].to_numpy()
    assert fit.refit(y).optsummary.control is c
    lmm = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"), control={"maxfev": 5000})
    assert lmm.optsummary.control.maxfev == 5000


def test_maxfev_bounds_the_search(cbpp):
    fit = gk.glmer(FORMULA, cbpp, "binomial", control=gk.Control(gradient=False, maxfev=5))
    assert all(s.fevals <= 5 + 1 for s in fit.optsummary.stages if s.optimizer in ("bobyqa", "neldermead"))


def test_the_tree_path_takes_a_control():
    data, _ = ref_case("phylo_poisson")
    from .conftest import REF_DIR

    tree = gk.phylo.read_tree(REF_DIR / "phylo_poisson" / "tree.nwk")
    a = gk.phylo.fit_tree_glmm("y ~ x + (1 | species)", data, "poisson", tree)
    b = gk.phylo.fit_tree_glmm("y ~ x + (1 | species)", data, "poisson", tree,
                               control=gk.Control(ftol2=1e-10, xtol2=1e-9))
    assert b.optsummary.control.ftol2 == 1e-10
    assert b.loglik >= a.loglik - 1e-6 and b.loglik == pytest.approx(a.loglik, abs=1e-5)


@pytest.mark.parametrize("bad, match", [
    ({"gradient": 1}, "True or False"), ({"ftol2": -1.0}, "ftol2"), ({"maxfev": 0}, "maxfev"),
    ({"nonsense": 1}, "unknown Control settings"),
])
def test_bad_controls_are_refused(cbpp, bad, match):
    with pytest.raises(gk.InputError, match=match):
        gk.glmer(FORMULA, cbpp, "binomial", control=bad)
    with pytest.raises(gk.InputError):
        gk.glmer(FORMULA, cbpp, "binomial", control="fast")
