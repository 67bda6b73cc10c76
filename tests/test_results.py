"""Fit: predictions, residuals, response forms, JSON, summary."""

import json

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk


@pytest.fixture(scope="module")
def cbpp_fit():
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"), "binomial")


def test_predict_on_training_data_reproduces_fitted(cbpp_fit):
    d = gk.datasets.load("cbpp")
    assert np.allclose(cbpp_fit.predict(d), cbpp_fit.fitted)
    assert np.allclose(cbpp_fit.predict(), cbpp_fit.fitted)
    link = cbpp_fit.predict(d, type="link")
    assert np.allclose(1 / (1 + np.exp(-link)), cbpp_fit.fitted)


def test_predict_population_level_and_new_levels(cbpp_fit):
    new = pd.DataFrame({"herd": ["1", "99"], "period": ["2", "2"]})
    pop = cbpp_fit.predict(new, re_form="~0", type="link")
    b = cbpp_fit.fixef
    assert np.allclose(pop, b["(Intercept)"] + b["period[T.2]"])
    with pytest.raises(ValueError, match=r"new level\(s\) of 'herd'.*'99'"):
        cbpp_fit.predict(new)
    cond = cbpp_fit.predict(new, allow_new_levels=True, type="link")
    assert cond[1] == pytest.approx(pop[1])  # a new herd sits at b = 0
    assert cond[0] == pytest.approx(pop[0] + cbpp_fit.ranef["herd"].loc["1", "(Intercept)"])


def test_predict_codes_categories_like_the_fit(cbpp_fit):
    # one row with a period level only: formulaic must still code it with the fitted contrasts
    new = pd.DataFrame({"herd": ["3"], "period": ["4"]})
    got = cbpp_fit.predict(new, re_form="~0", type="link")
    b = cbpp_fit.fixef
    assert got[0] == pytest.approx(b["(Intercept)"] + b["period[T.4]"])


def test_residuals(cbpp_fit):
    y, mu, n = cbpp_fit.spec.y, cbpp_fit.fitted, cbpp_fit.spec.wt
    assert np.allclose(cbpp_fit.residuals("response"), y - mu)
    assert np.allclose(cbpp_fit.residuals("pearson"), (y - mu) * np.sqrt(n / (mu * (1 - mu))))
    dev = cbpp_fit.residuals("deviance")
    assert np.sum(dev ** 2) == pytest.approx(cbpp_fit.deviance)
    with pytest.raises(ValueError):
        cbpp_fit.residuals("working")


def test_response_forms_agree():
    """cbind(k, n - k), binary rows expanded, and proportions with weights give the same estimates."""
    d = gk.datasets.load("cbpp")
    agg = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, "binomial")
    prop = gk.glmer("p ~ period + (1 | herd)", d.assign(p=d["incidence"] / d["size"]), "binomial", weights="size")
    rows = []
    for _, r in d.iterrows():
        rows += [dict(herd=r["herd"], period=r["period"], y=1)] * int(r["incidence"])
        rows += [dict(herd=r["herd"], period=r["period"], y=0)] * int(r["size"] - r["incidence"])
    binary = gk.glmer("y ~ period + (1 | herd)", pd.DataFrame(rows), "binomial")
    logical = gk.glmer("y ~ period + (1 | herd)", pd.DataFrame(rows).assign(y=lambda x: x.y == 1), "binomial")
    for other in (prop, binary, logical):
        assert np.allclose(other.fixef, agg.fixef, rtol=1e-4, atol=1e-5)
        assert np.allclose(other.theta, agg.theta, rtol=1e-3)
    assert prop.loglik == pytest.approx(agg.loglik, abs=1e-6)
    # the binary likelihood lacks only the binomial coefficients
    const = np.sum(gk.families.Binomial().loglik_const(agg.spec.y, agg.spec.wt))
    assert binary.loglik == pytest.approx(agg.loglik - const, abs=1e-3)


def test_offset_argument_equals_formula_offset():
    d = gk.datasets.load("clinics").iloc[:600]
    a = gk.glmer("sessions ~ training + offset(log(opportunities)) + (1 | clinic)", d, "poisson")
    b = gk.glmer("sessions ~ training + (1 | clinic)", d, "poisson", offset=np.log(d.opportunities))
    assert np.allclose(a.fixef, b.fixef) and a.loglik == pytest.approx(b.loglik)


def test_to_dict_is_json_with_the_documented_keys(cbpp_fit):
    d = json.loads(json.dumps(cbpp_fit.to_dict(names="lme4")))
    for key in ("formula", "family", "link", "nobs", "ngroups", "fixef", "varcorr", "loglik", "aic", "bic",
                "deviance", "df_resid", "converged", "messages", "time_s"):
        assert key in d
    assert set(d["fixef"]) == {"(Intercept)", "period2", "period3", "period4"}
    assert set(d["fixef"]["period2"]) == {"estimate", "std_error", "z", "p"}
    assert d["ngroups"] == {"herd": 15}


def test_summary_reads_like_lme4(cbpp_fit, capsys):
    text = cbpp_fit.summary()
    for piece in ("Family: binomial", "Random effects:", "herd", "Fixed effects:", "Number of obs: 56"):
        assert piece in text
    assert not capsys.readouterr().out.strip()  # summary() returns the text; printing is the caller's choice
    assert str(cbpp_fit) == text


def test_public_stages_compose_like_glmer():
    d = gk.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    spec = gk.ModelSpec.from_formula(f, d, "binomial")
    fit = gk.Fit(spec, gk.optimize(spec.objective()))
    ref = gk.glmer(f, d, "binomial")
    assert fit.loglik == pytest.approx(ref.loglik) and np.allclose(fit.fixef, ref.fixef)
    summ = fit.optsummary
    assert summ.fevals == len(summ.log) or summ.fevals >= len(summ.log)
    # one block-diagonal term with a canonical link: stage 2 uses the analytic Laplace gradient
    assert [s.optimizer for s in summ.stages][:2] == ["none", "L-BFGS-B, analytic gradient"]  # stage 1 not needed


def test_singular_fit_is_flagged():
    # every group has the same data: the between-group variance's MLE is exactly zero
    rng = np.random.default_rng(3)
    one = pd.DataFrame({"y": rng.binomial(1, 0.5, 30), "x": rng.normal(size=30)})
    d = pd.concat([one.assign(g=f"g{i}") for i in range(10)], ignore_index=True)
    with pytest.warns(gk.SingularFitWarning):
        fit = gk.glmer("y ~ x + (1 | g)", d)
    assert fit.singular and fit.varcorr["sd"].iloc[0] < 1e-3
    assert any("singular" in m for m in fit.messages)


def test_lme4_names_for_full_rank_factors_and_factor_slopes():
    """to_dict(names="lme4") gives R's names everywhere: `0 + study` -> studyt01, a factor slope's column
    urban[T.Y] -> urbanY in the variance components too."""
    rng = np.random.default_rng(7)
    n = 240
    d = pd.DataFrame({"study": [f"t0{i % 4}" for i in range(n)], "urban": np.where(rng.random(n) < 0.5, "Y", "N"),
                      "g": [f"g{i % 12}" for i in range(n)]})
    d["y"] = rng.binomial(1, 0.4, n)
    fit = gk.glmer("y ~ 0 + study + (urban | g)", d)
    out = fit.to_dict(names="lme4")
    assert set(out["fixef"]) == {"studyt00", "studyt01", "studyt02", "studyt03"}
    terms = {r["term1"] for r in out["varcorr"]} | {r["term2"] for r in out["varcorr"] if r["term2"]}
    assert "urbanY" in terms and not any("[" in t for t in terms if t)
