"""Cumulative-link mixed models (gk.clmm, issue 20) against ordinal::clmm on its wine data
(tests/reference/ordinal/make_clmm.R), the family's derivatives, predictions, simulation recovery and bad
input."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.errors import InputError
from glmmkit.families.ordinal import CumulativeLink

DIR = Path(__file__).parent / "reference" / "ordinal"
REFS = json.loads((DIR / "refs.json").read_text())


def _wine():
    w = pd.read_csv(DIR / "wine.csv")
    w["judge"] = w["judge"].astype(str)
    w["bottle"] = w["bottle"].astype(str)
    return w


CASES = {
    "wine_logit": ("rating ~ temp + contact + (1 | judge)", {}),
    "wine_probit": ("rating ~ temp + contact + (1 | judge)", {"link": "probit"}),
    "wine_logit_agq10": ("rating ~ temp + contact + (1 | judge)", {"nagq": 10}),
    "wine_crossed": ("rating ~ temp * contact + (1 | judge) + (1 | bottle)", {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_ordinal_clmm(name):
    formula, kw = CASES[name]
    ref = REFS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.clmm(formula, _wine(), **kw)
    assert fit.converged
    assert fit.loglik >= ref["loglik"] - 1e-4 and abs(fit.loglik - ref["loglik"]) < 1e-3
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["beta"].values()), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fit.coef_table["std_error"].to_numpy(), list(ref["beta_se"].values()), rtol=0.02)
    fp = fit.family_params
    assert list(fp.index) == list(ref["alpha"])  # "1|2", "2|3", ...
    np.testing.assert_allclose(fp["estimate"].to_numpy(), list(ref["alpha"].values()), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fp["std_error"].to_numpy(), list(ref["alpha_se"].values()), rtol=0.02)
    sd = fit.varcorr.set_index("group")["sd"]
    for g, v in ref["sd"].items():
        assert sd[g] == pytest.approx(v, rel=1e-2, abs=1e-3)
    assert fit.n_params == ref["df"]


@pytest.mark.parametrize("cdf", ["logit", "probit"])
def test_family_derivatives_match_differences(cdf):
    fam = CumulativeLink(4, cdf, thresholds=[-1.0, 0.3, 1.5])
    rng = np.random.default_rng(1)
    y = rng.integers(1, 5, 50).astype(float)
    eta = rng.normal(0, 1.5, 50)
    wt = np.ones(50)
    h = 1e-6
    ll = lambda e: fam.loglik(y, e, wt)  # noqa: E731
    np.testing.assert_allclose(fam.score_eta(y, eta, eta, wt), (ll(eta + h) - ll(eta - h)) / (2 * h), atol=1e-6)
    s = lambda e: fam.score_eta(y, e, e, wt)  # noqa: E731
    np.testing.assert_allclose(fam.observed_weights(y, eta, eta, wt), -(s(eta + h) - s(eta - h)) / (2 * h),
                               atol=1e-6)
    P = fam.category_probabilities(eta)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    # Fisher's information is the expectation of the observed one over the categories
    obs = np.stack([fam.observed_weights(np.full(50, j, float), eta, eta, wt) for j in range(1, 5)], axis=1)
    np.testing.assert_allclose(np.sum(P * obs, axis=1), fam.working_weights(eta, eta, wt), rtol=1e-8)
    # the thresholds' parameters round-trip
    np.testing.assert_allclose(fam.with_params(fam.params).thresholds, fam.thresholds)


def test_predictions_and_simulation():
    w = _wine()
    fit = gk.clmm("rating ~ temp + contact + (1 | judge)", w)
    prob = fit.predict(w.head(4), type="prob")
    assert list(prob.columns) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(prob.sum(axis=1), 1.0)
    cum = fit.predict(w.head(4), type="cumprob")
    np.testing.assert_allclose(cum.to_numpy(), np.cumsum(prob.to_numpy(), axis=1)[:, :-1])
    ey = fit.predict(w.head(4))
    np.testing.assert_allclose(ey, prob.to_numpy() @ np.arange(1, 6))
    pop = fit.predict(w.head(4), type="prob", re_form="~0")
    assert not np.allclose(pop.to_numpy(), prob.to_numpy())
    sims = fit.simulate(nsim=3, seed=2)
    assert sims.shape == (72, 3) and set(np.unique(sims.to_numpy())) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    text = fit.summary()
    assert "cumulative link  ( logit )" in text and "1|2" in text
    json.dumps(fit.to_dict(), allow_nan=False)


def test_recovers_simulated_thresholds_effects_and_sd():
    rng = np.random.default_rng(4)
    q, m = 150, 12
    g = np.repeat(np.arange(q), m)
    x = rng.normal(size=q * m)
    eta = 0.8 * x + rng.normal(0, 0.9, q)[g]
    th = np.array([-1.0, 0.2, 1.4])
    y = 1 + np.sum(eta[:, None] + rng.logistic(size=len(x))[:, None] > th[None, :], axis=1)
    d = pd.DataFrame({"y": pd.Categorical(y, categories=[1, 2, 3, 4], ordered=True), "x": x, "g": g.astype(str)})
    fit = gk.clmm("y ~ x + (1 | g)", d)
    se = fit.coef_table["std_error"].iloc[0]
    assert abs(fit.fixef["x"] - 0.8) < 3 * se
    np.testing.assert_allclose(fit.family_params["estimate"].to_numpy(), th, atol=0.25)
    assert fit.varcorr["sd"].iloc[0] == pytest.approx(0.9, rel=0.2)


def test_bad_input():
    w = _wine()
    with pytest.raises(InputError, match="ordered pandas Categorical"):
        gk.clmm("r ~ temp + (1 | judge)", w.assign(r=w["rating"].map({1: "a", 2: "b", 3: "c", 4: "d", 5: "e"})))
    with pytest.raises(InputError, match="no intercept"):
        gk.clmm("rating ~ 0 + temp + (1 | judge)", w)
    with pytest.raises(InputError, match="link"):
        gk.clmm("rating ~ temp + (1 | judge)", w, link="cloglog2")
    with pytest.raises(InputError, match="flexible"):
        gk.clmm("rating ~ temp + (1 | judge)", w, threshold="equidistant")
    with pytest.raises(InputError, match="at least 2"):
        gk.clmm("rating ~ temp + (1 | judge)", w.assign(rating=3))
    cat = pd.Categorical(w["rating"], categories=[1, 2, 3, 4, 5, 6], ordered=True)
    with pytest.warns(gk.ModelChangeWarning, match="categories without observations dropped: \\[6\\]"):
        fit = gk.clmm("rating ~ temp + contact + (1 | judge)", w.assign(rating=cat))
    assert fit.loglik == pytest.approx(REFS["wine_logit"]["loglik"], abs=1e-3)
