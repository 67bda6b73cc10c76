"""LMM denominator df, contrasts and anova tables against lmerTest 3.1 and pbkrtest 0.5 (issue 21).

References: tests/reference/inference/make_lmertest.R -> lmertest_refs.json (sleepstudy, Penicillin, nlme's
Oats split plot balanced and unbalanced, lme4's cake split plot, an unbalanced sleepstudy with a factor).
Tolerances: df 1e-3 relative, p 1e-4 absolute, F 1e-4 relative.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmkit as gk
from glmmkit.engine.numderiv import hessian, jacobian

DIR = Path(__file__).parent / "reference" / "inference"
REFS = json.loads((DIR / "lmertest_refs.json").read_text())
FACTORS = ("temperature", "replicate", "B", "V", "N", "recipe", "plate", "sample", "grp", "Subject")


def _data(csv: str) -> pd.DataFrame:
    d = gk.datasets.load("sleepstudy") if csv.startswith("SHARED") else pd.read_csv(DIR / csv)
    for c in FACTORS:
        if c in d:
            d[c] = d[c].astype(str)
    return d


def _fit(name: str):
    r = REFS[name]
    formula = r["formula"]
    if r.get("contrasts"):
        formula = formula.replace("N * V", "C(N, contr.sum) * C(V, contr.sum)")
    return gk.lmer(formula, _data(r["data"]), reml=r["reml"]), r


def _close(ours: pd.DataFrame, ref: dict, df_col: str):
    ref = pd.DataFrame(ref).T
    assert len(ours) == len(ref)
    np.testing.assert_allclose(ours[df_col].to_numpy(float), ref[df_col].to_numpy(float), rtol=1e-3)
    np.testing.assert_allclose(ours["p"].to_numpy(float), ref["p"].to_numpy(float), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(REFS))
def test_coefficient_df_match_lmertest(name):
    fit, r = _fit(name)
    assert fit.loglik == pytest.approx(r["logLik"], abs=1e-5)
    _close(fit.fixef_table(), r["satterthwaite"], "df")
    tab = fit.coef_table
    assert list(tab.columns) == ["estimate", "std_error", "df", "t", "p"]
    np.testing.assert_allclose(tab["df"], fit.fixef_table("satterthwaite")["df"])
    if "kenward_roger" in r:
        kr = fit.fixef_table(ddf="kenward-roger")
        _close(kr, r["kenward_roger"], "df")
        ref_se = [v["std_error"] for v in r["kenward_roger"].values()]
        np.testing.assert_allclose(kr["std_error"], ref_se, rtol=1e-4)


@pytest.mark.parametrize("name", list(REFS))
def test_anova_tables_match_lmertest(name):
    fit, r = _fit(name)
    for key in ("anova_satterthwaite", "anova_kenward_roger"):
        for typ, rows in r.get(key, {}).items():
            if not rows:
                assert len(gk.anova(fit, type=int(typ))) == 0
                continue
            a = gk.anova(fit, type=int(typ), ddf=key[6:])
            assert list(a.columns) == ["F", "num_df", "den_df", "p"]
            ref = pd.DataFrame(rows).T
            np.testing.assert_allclose(a["F"], ref["F"].astype(float), rtol=1e-4)
            np.testing.assert_array_equal(a["num_df"], ref["num_df"].astype(int))
            _close(a.rename(columns={"den_df": "df"}), {k: {"df": v["den_df"], "p": v["p"]} for k, v in rows.items()}, "df")


@pytest.mark.parametrize("name", [k for k in REFS if "contest" in REFS[k]])
def test_contest_matches_lmertest(name):
    fit, r = _fit(name)
    c = fit.contest(np.array(r["contest"]["L"]), joint=True).iloc[0]
    assert c["F"] == pytest.approx(r["contest"]["F"], rel=1e-4)
    assert c["den_df"] == pytest.approx(r["contest"]["den_df"], rel=1e-3)
    assert c["p"] == pytest.approx(r["contest"]["p"], abs=1e-4)
    c1 = fit.contest(np.array(r["contest1"]["L"]), joint=False).iloc[0]
    for k in ("estimate", "std_error", "t"):
        assert c1[k] == pytest.approx(r["contest1"][k], rel=1e-4)
    assert c1["df"] == pytest.approx(r["contest1"]["df"], rel=1e-3)


def test_type3_does_not_depend_on_the_coding():
    """SAS's type III hypotheses: treatment and sum coding give the same table (lmerTest's rule)."""
    d = _data("oats_unbalanced.csv")
    a = gk.anova(gk.lmer("Y ~ N * V + (1 | B / V)", d), type=3)
    b = gk.anova(gk.lmer("Y ~ C(N, contr.sum) * C(V, contr.helmert) + (1 | B / V)", d), type=3)
    np.testing.assert_allclose(a["F"], b["F"], rtol=1e-6)
    np.testing.assert_allclose(a["den_df"], b["den_df"], rtol=1e-4)  # the derivatives' rounding


def test_residual_and_none_df():
    fit, _ = _fit("sleepstudy")
    res = fit.fixef_table(ddf="residual")
    assert np.all(res["df"] == fit.nobs - 2)
    none = fit.fixef_table(ddf="none", level=0.95)
    assert np.all(np.isinf(none["df"]))
    np.testing.assert_allclose(none["p"], 2 * stats.norm.sf(np.abs(none["t"])))
    np.testing.assert_allclose(none["upper"] - none["estimate"], 1.959964 * none["std_error"], rtol=1e-6)


def test_contest_accepts_a_dict_and_a_rhs():
    fit, _ = _fit("sleepstudy")
    a = fit.contest({"Days": 1.0}, rhs=10.0, joint=False).iloc[0]
    row = fit.fixef_table().loc["Days"]
    assert a["t"] == pytest.approx((row["estimate"] - 10) / row["std_error"])
    assert a["df"] == pytest.approx(row["df"])
    j = fit.contest({"Days": 1.0}, rhs=10.0).iloc[0]
    assert j["F"] == pytest.approx(a["t"] ** 2)


def test_satterthwaite_calibration_on_a_balanced_split_plot():
    """Under the null the Satterthwaite t test of a whole-plot effect is exact for a balanced design: df
    equal the whole-plot error df (blocks - 1) x (varieties - 1) and p-values uniform."""
    rng = np.random.default_rng(5)
    ps = []
    for _ in range(60):
        blocks, vars_, nit = 6, 3, 4
        B = np.repeat(np.arange(blocks), vars_ * nit)
        V = np.tile(np.repeat(np.arange(vars_), nit), blocks)
        y = rng.normal(0, 1.0, blocks)[B] + rng.normal(0, 1.0, blocks * vars_)[B * vars_ + V] + rng.normal(0, 1, len(B))
        d = pd.DataFrame({"y": y, "B": B.astype(str), "V": V.astype(str)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gk.lmer("y ~ V + (1 | B / V)", d)
        a = gk.anova(fit)
        if not fit.singular:
            assert a.loc["V", "den_df"] == pytest.approx(10.0, rel=1e-3)
        ps.append(a.loc["V", "p"])
    assert stats.kstest(ps, "uniform").pvalue > 0.01


def test_bad_ddf_and_contrast_input():
    fit, _ = _fit("sleepstudy")
    with pytest.raises(gk.InputError, match="ddf must be one of"):
        fit.fixef_table(ddf="containment")
    with pytest.raises(gk.InputError, match="3 columns but the model has 2"):
        fit.contest([[0, 1, 0]])
    with pytest.raises(gk.InputError, match="not fixed effects"):
        fit.contest({"Dayz": 1})
    with pytest.raises(gk.InputError, match="type must be"):
        gk.anova(fit, type=4)
    ml = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"), reml=False)
    with pytest.raises(gk.InputError, match="REML"):
        ml.fixef_table(ddf="kenward-roger")
    g = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"), "binomial")
    with pytest.raises(gk.InputError, match="linear mixed models"):
        g.fixef_table(ddf="satterthwaite")
    with pytest.raises(gk.InputError, match="linear mixed models"):
        gk.anova(g, ddf="kenward-roger")


def test_richardson_derivatives_are_exact_to_rounding():
    f = lambda x: np.sin(x[0]) * np.exp(x[1]) + x[0] ** 2 * x[2] ** 3  # noqa: E731
    x = np.array([0.7, 0.3, 1.2])
    e = np.exp(x[1])
    H = np.array([[-np.sin(x[0]) * e + 2 * x[2] ** 3, np.cos(x[0]) * e, 6 * x[0] * x[2] ** 2],
                  [np.cos(x[0]) * e, np.sin(x[0]) * e, 0.0],
                  [6 * x[0] * x[2] ** 2, 0.0, 6 * x[0] ** 2 * x[2]]])
    np.testing.assert_allclose(hessian(f, x), H, atol=1e-6)
    J = jacobian(lambda x: np.array([x[0] * x[1], np.log(x[2])]), x)
    np.testing.assert_allclose(J, [[x[1], x[0], 0], [0, 0, 1 / x[2]]], atol=1e-9)
