"""Meta-analysis against metafor (shared case bcg_meta; tests/reference/make_extra_refs.R for the rest).

Tolerances of issue 6: pooled log effect within 1e-3 absolute, its SE within 1%, tau^2 within 2%
relative (1e-4 absolute near zero), I^2 within 0.5 points. Heterogeneity statistics within 1e-3
relative where both compute the same quantity.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.meta.hypergeom import HypergeometricTables

from .conftest import extra_ref, ref_case

HERE = Path(__file__).parent
BCG = dict(ai="ai", bi="bi", ci="ci", di="di", study="trial")
AB = dict(ai="ai", n1i="n1i", ci="ci", n2i="n2i", study="trial")


def _close(fit, r, *, se_rel=0.01, i2=True):
    est = np.atleast_1d(r["estimate"])
    se = np.atleast_1d(r["se"])
    assert fit.coef["estimate"].to_numpy() == pytest.approx(est, abs=1e-3)
    assert fit.coef["std_error"].to_numpy() == pytest.approx(se, rel=se_rel)
    assert fit.tau2 == pytest.approx(r["tau2"], rel=0.02, abs=1e-4)
    if i2:
        assert fit.I2 == pytest.approx(r["I2"], abs=0.5)


@pytest.fixture(scope="module")
def bcg():
    data, ref = ref_case("bcg_meta")
    return data, ref["fits"]


@pytest.mark.parametrize("model", ["UM.FS", "UM.RS", "CM.EL", "CM.AL"])
def test_bcg_glmm_matches_metafor(bcg, model):
    data, ref = bcg
    fit = gk.meta.glmm(data, model=model, tau2_ci=False, **BCG)
    r = ref[model]
    _close(fit, r)
    het = fit.heterogeneity["statistic"].to_numpy()
    assert het[1] == pytest.approx(r["QE_LRT"], rel=1e-3)
    if model in ("UM.FS", "CM.AL"):
        assert het[0] == pytest.approx(r["QE_Wld"], rel=1e-3)
    if model == "UM.RS":
        # the saturated GLMM's Wald test: lme4's and our covariance of the fixed effects differ by ~0.4%
        assert het[0] == pytest.approx(r["QE_Wld"], rel=0.01)
    if model in ("UM.RS", "CM.EL"):  # both report the marginal log-likelihood
        assert fit.loglik == pytest.approx(r["loglik"], abs=1e-3)


def test_bcg_loglik_conventions(bcg):
    """UM.FS / CM.AL: metafor reports ll(saturated) - deviance/2, lme4's deviance being the sum of squared
    deviance residuals at the modes, i.e. the conditional log-likelihood log f(y | b, u). Ours is the
    marginal (adaptive Gauss-Hermite) one, equal to lme4's nAGQ = 7 logLik with the saturated constant."""
    data, ref = bcg
    extra = extra_ref("meta_bcg_extra")
    for model in ("UM.FS", "CM.AL"):
        fit = gk.meta.glmm(data, model=model, tau2_ci=False, **BCG)
        assert fit.loglik == pytest.approx(extra[f"{model}_marginal_loglik"], abs=1e-3)
        inner = fit.fit
        fam = gk.families.get_family("binomial")
        conditional = np.sum(fam.loglik(inner.spec.y, np.asarray(inner.fitted), inner.spec.wt))
        assert conditional == pytest.approx(ref[model]["loglik"], abs=1e-3)


def test_bcg_cm_el_wald_heterogeneity(bcg):
    """CM.EL's Wald test from the per-study conditional MLEs. metafor reports 268.6 from a numerical Hessian
    of its saturated fit; the statistic is invariant to the parameterisation and equals y'Py with the
    conditional MLEs y (checked against R's fisher.test) and their conditional information, 163.09, near
    the unconditional 163.16 as it must be for these large trials."""
    data, _ = bcg
    ht = HypergeometricTables(data.ai, data.ai + data.bi, data.ci + data.di, data.ai + data.ci)
    theta, _, inner, _ = ht.saturated()
    fisher = [-0.93542766, -1.66369933, -1.38361260, -1.45628974, -0.21912000, -0.95780394, -1.63306154,
              0.01202164, -0.47170764, -1.40095960, -0.34080343, 0.44654020, -0.01734334]  # R fisher.test
    assert inner.all()
    assert theta == pytest.approx(fisher, abs=2e-4)  # fisher.test's own root-finding tolerance
    fit = gk.meta.glmm(data, model="CM.EL", tau2_ci=False, **BCG)
    q = fit.heterogeneity["statistic"].iloc[0]
    assert q == pytest.approx(163.09, abs=0.05)


def test_bcg_classic_match_metafor(bcg):
    data, ref = bcg
    for method, key in (("REML", "IV.REML"), ("DL", "IV.DL")):
        fit = gk.meta.rma(data, method=method, **BCG)
        _close(fit, ref[key])
        assert fit.heterogeneity["statistic"].iloc[0] == pytest.approx(ref[key]["QE"], rel=1e-6)
    reml = gk.meta.rma(data, method="REML", **BCG)
    assert reml.loglik == pytest.approx(ref["IV.REML"]["loglik"], abs=1e-6)
    assert reml.se_tau2 == pytest.approx(ref["IV.REML"]["se_tau2"], rel=1e-4)
    mh = gk.meta.mantel_haenszel(data, **BCG)
    assert mh.estimate == pytest.approx(ref["MH"]["estimate"], abs=1e-9)
    assert mh.se == pytest.approx(ref["MH"]["se"], rel=1e-9)
    assert mh.heterogeneity["statistic"].iloc[0] == pytest.approx(ref["MH"]["QE"], rel=1e-9)


def test_zero_event_trials_match_metafor():
    """The bundled antibiotic trials: 7 single-zero and 2 double-zero trials."""
    data = gk.datasets.load("antibiotics")
    r = extra_ref("meta_antibiotics")
    for model in ("UM.FS", "UM.RS", "CM.EL", "CM.AL"):
        with pytest.warns(gk.meta.DroppedStudiesWarning, match="T09, T10"):
            fit = gk.meta.glmm(data, model=model, tau2_ci=False, **AB)
        assert fit.k == r[model]["k"] == 22
        _close(fit, r[model])
        assert fit.heterogeneity["statistic"].iloc[1] == pytest.approx(r[model]["QE_LRT"], rel=1e-3)
    iv = gk.meta.rma(data, **AB)
    _close(iv, r["IV.REML"])
    assert iv.k == 24  # the continuity correction keeps the double-zero trials, as metafor's rma
    for fn, key in ((gk.meta.mantel_haenszel, "MH"), (gk.meta.peto, "Peto")):
        f = fn(data, **AB)
        assert f.estimate == pytest.approx(r[key]["estimate"], abs=1e-9)
        assert f.se == pytest.approx(r[key]["se"], rel=1e-9)
    assert gk.meta.peto(data, **AB).heterogeneity["statistic"].iloc[0] == pytest.approx(r["Peto"]["QE"], rel=1e-9)


def test_meta_regression_matches_metafor(bcg):
    data, _ = bcg
    r = extra_ref("meta_bcg_extra")
    for model in ("UM.FS", "CM.AL"):
        fit = gk.meta.glmm(data, model=model, mods="~ ablat", tau2_ci=False, **BCG)
        assert list(fit.coef.index) == ["intrcpt", "ablat"]
        _close(fit, r[f"{model}_ablat"], se_rel=0.01)
        assert fit.moderators is not None and fit.moderators["p"].iloc[0] < 1e-6


def test_plo_and_irr_match_metafor(bcg):
    data, _ = bcg
    r = extra_ref("meta_bcg_extra")
    fit = gk.meta.glmm(data, measure="PLO", xi="ai", mi="bi", study="trial", tau2_ci=False)
    _close(fit, r["PLO"])
    assert fit.loglik == pytest.approx(
        gk.glmer("cbind(ai, bi) ~ 1 + (1 | trial)", data.assign(trial=data.trial.astype(str)), "binomial",
                 nagq=7).loglik, abs=1e-6)
    hart = pd.read_csv(HERE / "reference" / "hart1999.csv")
    for model in ("UM.FS", "UM.RS", "CM.EL"):
        fit = gk.meta.glmm(hart, measure="IRR", model=model, x1i="x1i", t1i="t1i", x2i="x2i", t2i="t2i",
                           study="trial", tau2_ci=False)
        _close(fit, r[f"IRR_{model}"], i2=True)
        assert fit.heterogeneity["statistic"].iloc[1] == pytest.approx(r[f"IRR_{model}"]["QE_LRT"], rel=1e-3)


def test_common_effect_and_prediction_interval(bcg):
    data, ref = bcg
    fe = gk.meta.glmm(data, model="CM.EL", method="FE", **BCG)
    assert fe.tau2 == 0 and fe.I2 is None
    re = gk.meta.glmm(data, model="UM.FS", **BCG)
    lo, hi = re.prediction_interval()
    s = np.sqrt(re.se ** 2 + re.tau2)
    assert (lo, hi) == pytest.approx((re.estimate - 1.959964 * s, re.estimate + 1.959964 * s), abs=1e-5)
    # the profile interval of tau^2 brackets the estimate and excludes 0 here (QE p ~ 1e-31)
    a, b = re.tau2_ci
    assert 0 < a < re.tau2 < b
    nat = re.natural()
    assert nat["estimate"].iloc[0] == pytest.approx(np.exp(re.estimate))
    assert "Pooled odds ratio" in re.summary()


def test_profile_interval_of_tau2_has_its_coverage():
    """Profile likelihood ratio at the interval's ends is the chi-square quantile."""
    data = gk.datasets.load("bcg")
    fit = gk.meta.glmm(data, model="CM.AL", **BCG)
    from glmmkit.inference.profile import profile_deviance

    lo, hi = fit.tau2_ci
    for t2 in (lo, hi):
        d = profile_deviance(fit.fit, 0, np.sqrt(t2)) - fit.fit.fval
        assert d == pytest.approx(3.8415, abs=2e-3)


def test_drop00_false_keeps_double_zero_trials_in_um_rs():
    data = gk.datasets.load("antibiotics")
    with warnings.catch_warnings():
        warnings.simplefilter("error", gk.meta.DroppedStudiesWarning)
        fit = gk.meta.glmm(data, model="UM.RS", drop00=False, tau2_ci=False, **AB)
    assert fit.k == 24 and not fit.dropped
    with pytest.warns(gk.meta.DroppedStudiesWarning):
        fs = gk.meta.glmm(data, model="UM.FS", drop00=False, tau2_ci=False, **AB)
    assert fs.k == 22 and any("UM.RS only" in m for m in fs.messages)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.iloc[:0], "empty"),
    (lambda d: d.assign(ai=d.ai.where(d.trial != "T03", -1)), "study T03: ai .* negative"),
    (lambda d: d.assign(ai=d.ai.where(d.trial != "T05", 999)), "study T05: events ai = 999 exceed"),
    (lambda d: d.assign(ci=d.ci.astype(float).where(d.trial != "T07", np.nan)), "study T07: ci .* missing"),
    (lambda d: d.assign(n2i=d.n2i.where(d.trial != "T04", 0), ci=d.ci.where(d.trial != "T04", 0)),
     "study T04: the control arm has no participants"),
    (lambda d: d.assign(ai=d.ai.astype(float).where(d.trial != "T02", 1.5)), "study T02: ai .* whole number"),
    (lambda d: d.assign(trial=d.trial.where(d.trial != "T02", "T01")), "repeated: T01"),
])
def test_bad_tables_name_the_study(change, message):
    data = change(gk.datasets.load("antibiotics"))
    for fn in (gk.meta.glmm, gk.meta.rma):
        with pytest.raises(ValueError, match=message):
            fn(data, **AB)


def test_missing_columns_and_unknown_options():
    data = gk.datasets.load("antibiotics")
    with pytest.raises(ValueError, match="needs the columns"):
        gk.meta.glmm(data, ai="ai", ci="ci", study="trial")
    with pytest.raises(ValueError, match="'zz'"):
        gk.meta.glmm(data, ai="ai", n1i="zz", ci="ci", n2i="n2i")
    with pytest.raises(ValueError, match="model must be"):
        gk.meta.glmm(data, model="XX", **AB)
    with pytest.raises(ValueError, match="moderator 'year' is missing"):
        gk.meta.glmm(data.assign(year=data.year.astype(float).where(data.trial != "T06", np.nan)),
                     mods="~ year", **AB)
    with pytest.raises(ValueError, match="two arms"):
        gk.meta.mantel_haenszel(data, measure="PLO", xi="ai", ni="n1i")


def test_compare_and_figures(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    data = gk.datasets.load("antibiotics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gk.meta.DroppedStudiesWarning)
        tab = gk.meta.compare(data, **AB)
        fit = gk.meta.glmm(data, **AB)
    assert len(tab) == 8 and tab["estimate"].between(-1.5, 0).all()
    fig = fit.forest(tmp_path / "forest.png")
    assert (tmp_path / "forest.png").stat().st_size > 10_000 and fig is not None
    fit.funnel(tmp_path / "funnel.png")
    assert (tmp_path / "funnel.png").exists()


def test_cli_meta(tmp_path, capsys):
    from glmmkit.cli import main

    path = tmp_path / "t.csv"
    gk.datasets.load("antibiotics").to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["meta", str(path), "--ai", "ai", "--n1i", "n1i", "--ci", "ci", "--n2i", "n2i", "--study", "trial",
                   "--model", "CM.EL"])
    assert rc == 0
    assert "Pooled odds ratio" in capsys.readouterr().out
    assert main(["meta", str(path), "--ai", "ai", "--bi", "nope", "--ci", "ci", "--di", "di"]) == 2
