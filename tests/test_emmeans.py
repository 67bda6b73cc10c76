"""Marginal means, contrasts and GLMM anova tables against emmeans 1.8 and car 3.1 (issue 21).

References: tests/reference/inference/make_emmeans.R -> emmeans_refs.json.  The LMM cases compare our own
fits (df 1e-3 relative, p 1e-4 absolute).  A GLMM's vcov differs from lme4's by about 1% (lme4 takes it from
a finite-difference Hessian of its own optimum; our logLik is higher), so the GLMM cases check the algebra at
lme4's fixed effects and vcov, injected into our fit, to 1e-6, and our own fit to 3%.
"""

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

DIR = Path(__file__).parent / "reference"
REFS = json.loads((DIR / "inference" / "emmeans_refs.json").read_text())
FACTORS = ("B", "V", "N", "period", "herd", "spp", "mined", "site", "Subject")
_FITS: dict = {}


def _fit(name: str):
    if name not in _FITS:
        r = REFS[name]
        src = r["data"]
        path = DIR / "shared" / src.split(":")[1] / "data.csv" if src.startswith("SHARED") else DIR / "inference" / src
        d = pd.read_csv(path)
        for c in FACTORS:
            if c in d:
                d[c] = d[c].astype(str)
        _FITS[name] = gk.lmer(r["formula"], d) if r["family"] == "gaussian" else gk.glmer(r["formula"], d, r["family"])
    return _FITS[name], REFS[name]


def _at_lme4(fit, r):
    """The fit with lme4's fixed effects and covariance in place of ours."""
    f = copy.copy(fit)
    f._beta = np.asarray(r["beta"], dtype=float)
    f._vcov = np.asarray(r["vcov"], dtype=float)
    return f


def _num(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col.astype(str).replace("Inf", "inf")).to_numpy(float)


def _compare(table: pd.DataFrame, ref: list, kind: str, tol_est: float, tol_p: float):
    ref = pd.DataFrame(ref)
    assert len(table) == len(ref)
    est = [c for c in ("emmean", "prob", "rate", "estimate", "odds.ratio", "ratio") if c in ref][0]
    lower = [c for c in ref if c in ("lower.CL", "asymp.LCL")][0]
    np.testing.assert_allclose(table["estimate"], ref[est].astype(float), rtol=tol_est, atol=1e-10)
    np.testing.assert_allclose(table["std_error"], ref["SE"].astype(float), rtol=tol_est)
    np.testing.assert_allclose(table["lower"], ref[lower].astype(float), rtol=tol_est * 5, atol=1e-8)
    df = _num(ref["df"])
    if np.all(np.isinf(df)):
        assert np.all(np.isinf(table["df"]))
    else:
        np.testing.assert_allclose(table["df"], df, rtol=1e-3)
    if kind == "contrasts":
        np.testing.assert_allclose(table["p"], ref["p.value"].astype(float), atol=tol_p, rtol=0)


CASES = [(name, i) for name in REFS for i in range(len(REFS[name].get("emmeans", [])))]


@pytest.mark.parametrize("name,i", CASES)
def test_means_and_contrasts_match_emmeans(name, i):
    fit, r = _fit(name)
    e = r["emmeans"][i]
    glmm = r["family"] != "gaussian"
    fits = [(_at_lme4(fit, r), 1e-6, 1e-6), (fit, 0.03, 0.01)] if glmm else [(fit, 1e-4, 1e-4)]
    for f, tol, tol_p in fits:
        kw = {"by": e["by"], "type": e["type"], "at": e.get("at")}
        if e.get("lmer.df"):
            kw["ddf"] = e["lmer.df"]
        em = gk.emmeans(f, e["specs"], **kw)
        _compare(em.table, e["means"], "means", tol, tol_p)
        for c in e["contrasts"]:
            ct = em.contrast(c["method"], adjust=c["adjust"])
            _compare(ct.table, c["table"], "contrasts", tol, tol_p)
            assert ct.to_dict()["table"] and "contrast" in ct.table


@pytest.mark.parametrize("name", [k for k in REFS if REFS[k].get("anova")])
def test_glmm_anova_matches_car(name):
    fit, r = _fit(name)
    for f, tol in ((_at_lme4(fit, r), 1e-6), (fit, 0.05)):
        for typ, rows in r["anova"].items():
            a = gk.anova(f, type=int(typ))
            assert list(a.columns) == ["chisq", "df", "p"]
            ref = pd.DataFrame(rows).T
            assert list(a.index) == [i.replace("mined", "C(mined, contr.sum)").replace("spp", "C(spp, contr.sum)")
                                     if "contr" in r["formula"] else i for i in ref.index]
            np.testing.assert_allclose(a["chisq"], ref["chisq"].astype(float), rtol=tol)
            np.testing.assert_array_equal(a["df"], ref["df"].astype(int))


def test_type3_with_treatment_coding_in_an_interaction_warns():
    fit, _ = _fit("salamanders")
    d = fit.spec.data
    g = gk.glmer("count ~ mined * spp + (1 | site)", d, "poisson")
    with pytest.warns(gk.GlmmkitWarning, match="treatment contrasts"):
        gk.anova(g, type=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gk.anova(g, type=2)


def test_response_scale_is_the_delta_method():
    fit, _ = _fit("cbpp")
    link = gk.emmeans(fit, "period").table
    resp = gk.emmeans(fit, "period", type="response").table
    p = 1 / (1 + np.exp(-link["estimate"]))
    np.testing.assert_allclose(resp["estimate"], p)
    np.testing.assert_allclose(resp["std_error"], p * (1 - p) * link["std_error"])
    odds = gk.emmeans(fit, "period", type="response").contrast("trt.vs.ctrl", adjust="none").table
    diff = gk.emmeans(fit, "period").contrast("trt.vs.ctrl", adjust="none").table
    np.testing.assert_allclose(odds["estimate"], np.exp(diff["estimate"]))
    np.testing.assert_allclose(odds["p"], diff["p"])


def test_custom_contrasts_and_summary():
    fit, _ = _fit("oats")
    em = gk.emmeans(fit, "N")
    c = em.contrast({"linear": [-3, -1, 1, 3]}, adjust="none")
    L = np.array([-3, -1, 1, 3]) @ em.L
    ref = fit.contest(L, joint=False, ddf="kenward-roger").iloc[0]
    assert c.table["estimate"].iloc[0] == pytest.approx(ref["estimate"])
    assert c.table["p"].iloc[0] == pytest.approx(ref["p"])
    assert "linear" in c.summary() and "kenward-roger" in c.summary()
    json.dumps(c.to_dict(), allow_nan=False)


def test_emmeans_bad_input():
    fit, _ = _fit("oats")
    with pytest.raises(gk.InputError, match="not a variable of the model"):
        gk.emmeans(fit, "Nitrogen")
    with pytest.raises(gk.InputError, match="4 means per group"):
        gk.emmeans(fit, "N").contrast([[1, -1, 0]])
    with pytest.raises(gk.InputError, match="adjust must be"):
        gk.emmeans(fit, "N").contrast("pairwise", adjust="scheffe")
    with pytest.raises(gk.InputError, match="type must be"):
        gk.emmeans(fit, "N", type="probability")
    with pytest.raises(gk.InputError, match="never saw"):
        gk.emmeans(fit, "N", at={"N": ["n9"]})
    g, _ = _fit("cbpp")
    with pytest.raises(gk.InputError, match="linear mixed models"):
        gk.emmeans(g, "period", ddf="kenward-roger")
    sleep, _ = _fit("sleepstudy")
    with pytest.raises(gk.InputError, match="numeric covariate"):
        gk.emmeans(sleep, "Days")


def test_emmeans_plot_returns_a_figure(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit, _ = _fit("oats")
    fig = gk.emmeans(fit, "N", by="V").plot(path=tmp_path / "emm.png")
    assert (tmp_path / "emm.png").stat().st_size > 1000
    fig2, ax = plt.subplots()
    assert gk.emmeans(fit, "N").contrast().plot(ax=ax) is fig2
    plt.close("all")


def test_a_cell_the_data_cannot_estimate_is_nan_not_a_copy_of_another():
    oats = gk.datasets.load("oats")
    sub = oats[~((oats["nitro"] == "0.6") & (oats["variety"] == "Victory"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.lmer("yield ~ nitro * variety + (1 | block / variety)", sub)
    em = gk.emmeans(fit, "nitro", by="variety")
    t = em.table.set_index(["nitro", "variety"])
    assert np.isnan(t.loc[("0.6", "Victory"), "estimate"])
    assert t["estimate"].notna().sum() == 11
    assert any("not estimable" in n for n in em.notes)
    ct = em.contrast("pairwise").table
    vic = ct[ct["variety"] == "Victory"].set_index("contrast")
    assert np.isnan(vic.loc["0 - 0.6", "estimate"]) and np.isfinite(vic.loc["0.2 - 0.4", "p"])
    assert np.isnan(gk.emmeans(fit, "variety").table.set_index("variety").loc["Victory", "estimate"])
