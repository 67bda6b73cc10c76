"""Intervals, tests, prediction intervals, R^2, figures and the report (issue 4).

Profile intervals against lme4's confint(method = "profile") (tests/reference/make_extra_refs.R):
within 2% of the interval's width. R^2 / ICC against performance::r2_nakagawa / icc: 1e-3 absolute.
"""

import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

from .conftest import extra_ref, ref_case

LME4_ORDER = {"cbpp": [".sig01", "(Intercept)", "period2", "period3", "period4"],
              "sleepstudy": [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]}


@pytest.fixture(scope="module")
def cbpp_fit():
    data, _ = ref_case("cbpp_binomial")
    data["period"] = data["period"].astype(str)
    data["herd"] = data["herd"].astype(str)
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, "binomial")


@pytest.fixture(scope="module")
def sleep_data():
    data, _ = ref_case("sleepstudy_slopes")
    data["Subject"] = data["Subject"].astype(str)
    return data


def _within_width(ours: pd.DataFrame, ref: dict, order: list[str], frac=0.02):
    assert len(ours) == len(order)
    for (name, row), key in zip(ours.iterrows(), order):
        lo, hi = ref[key]
        width = hi - lo
        assert row.iloc[0] == pytest.approx(lo, abs=frac * width), (name, key)
        assert row.iloc[1] == pytest.approx(hi, abs=frac * width), (name, key)


def test_profile_intervals_cbpp_match_lme4(cbpp_fit):
    ci = cbpp_fit.confint(method="profile")
    _within_width(ci, extra_ref("confint_cbpp")["ci"], LME4_ORDER["cbpp"])


@pytest.mark.parametrize("reml", [False, True])
def test_profile_intervals_sleepstudy_match_lme4(sleep_data, reml):
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", sleep_data, reml=reml)
    ci = fit.confint(method="profile")
    key = "confint_sleepstudy_reml" if reml else "confint_sleepstudy_ml"
    _within_width(ci, extra_ref(key)["ci"], LME4_ORDER["sleepstudy"])


def test_wald_intervals_match_lme4(cbpp_fit):
    ci = cbpp_fit.confint()
    ref = extra_ref("confint_cbpp")["wald"]
    assert np.isnan(ci.iloc[0]).all()  # no Wald interval for an SD, as lme4
    for (name, row), key in zip(ci.iloc[1:].iterrows(), LME4_ORDER["cbpp"][1:]):
        width = ref[key][1] - ref[key][0]  # SEs agree within 2%, so the limits within 1% of the width
        assert row.to_numpy() == pytest.approx(ref[key], abs=0.01 * width), name


def test_profile_table_and_plot(cbpp_fit, tmp_path):
    pytest.importorskip("matplotlib")
    tab = cbpp_fit.profile(parm="sd_(Intercept)|herd")
    assert set(tab.columns) == {"parameter", "value", "zeta"}
    t = tab.sort_values("value")
    assert t.zeta.is_monotonic_increasing
    assert t.zeta.min() < -1.96 and t.zeta.max() > 1.96
    at_hat = t.loc[(t.value - cbpp_fit.theta[0]).abs().idxmin()]
    assert abs(at_hat.zeta) < 1e-6
    gk.plots.profile(tab, path=tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 5000


def test_profile_boundary_gives_zero_lower_limit():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"g": np.repeat(np.arange(15), 8).astype(str), "x": rng.normal(size=120)})
    d["y"] = rng.binomial(1, 1 / (1 + np.exp(-(0.2 + 0.5 * d.x))))  # no group effect at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("y ~ x + (1 | g)", d, "binomial")
    lo, hi = fit.confint(method="profile", parm="sd_(Intercept)|g").iloc[0]
    assert lo == 0 and 0 < hi < 2


def _sim_binomial(seed, groups=30, per=20, sd=0.8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.6 * x + rng.normal(0, sd, groups)[g]
    return pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "g": g.astype(str)})


def test_bootstrap_is_reproducible_across_workers_and_dask():
    fit = gk.glmer("y ~ x + (1 | g)", _sim_binomial(1), "binomial")
    a = gk.inference.bootstrap(fit, nsim=8, seed=7, progress_bar=False)
    b = gk.inference.bootstrap(fit, nsim=8, seed=7, workers=2, progress_bar=False)
    pd.testing.assert_frame_equal(a, b)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        c = gk.inference.bootstrap(fit, nsim=8, seed=7, client=client, progress_bar=False)
    pd.testing.assert_frame_equal(a, c)


def test_bootstrap_agrees_with_profile_within_monte_carlo_error():
    """60 groups x 15: percentile intervals of 300 replicates against the profile intervals. The MC SE of
    each bootstrap limit is estimated by resampling the replicates; limits agree within 3 MC SE plus 5% of
    the width (the two intervals are different procedures, equal only asymptotically)."""
    fit = gk.glmer("y ~ x + (1 | g)", _sim_binomial(11, groups=60, per=15), "binomial")
    prof = fit.confint(method="profile")
    boot = fit.confint(method="boot", nsim=300, seed=5, workers=2, progress_bar=False)
    reps = boot.attrs["replicates"]
    rng = np.random.default_rng(0)
    for name in prof.index:
        r = reps[name].dropna().to_numpy()
        qs = np.array([np.quantile(rng.choice(r, r.size), [0.025, 0.975]) for _ in range(200)])
        mc = qs.std(axis=0)
        width = prof.loc[name].iloc[1] - prof.loc[name].iloc[0]
        diff = np.abs(boot.loc[name].to_numpy() - prof.loc[name].to_numpy())
        assert np.all(diff <= 3 * mc + 0.05 * width), (name, diff, mc)


def test_anova_boundary_p_and_nesting(sleep_data):
    m0 = gk.lmer("Reaction ~ Days + (1 | Subject)", sleep_data, reml=False)
    m1 = gk.lmer("Reaction ~ Days + (Days | Subject)", sleep_data, reml=False)
    tab = gk.anova(m1, m0)
    row = tab.iloc[1]
    assert row.Df == 2
    from scipy import stats

    assert row.p_boundary == pytest.approx(0.5 * stats.chi2.sf(row.Chisq, 1) + 0.5 * stats.chi2.sf(row.Chisq, 2))
    assert row.p_boundary < row.p
    other = gk.lmer("Reaction ~ 1 + (Days | Subject)", sleep_data, reml=False)
    with pytest.raises(ValueError, match="not nested.*Days only in the smaller"):
        gk.anova(m0, other)
    with pytest.raises(ValueError, match="different data"):
        gk.anova(m0, gk.lmer("Reaction ~ Days + (Days | Subject)", sleep_data.iloc[:-10], reml=False))


def test_bootstrap_lrt():
    """Parametric-bootstrap LR test of a slope: tiny p for a real slope, no rejection for a null one."""
    d = _sim_binomial(4, groups=30, per=20)
    d["noise"] = np.random.default_rng(1).normal(size=len(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = gk.glmer("y ~ 1 + (1 | g)", d, "binomial")
        m1 = gk.glmer("y ~ x + (1 | g)", d, "binomial")
        m2 = gk.glmer("y ~ x + noise + (1 | g)", d, "binomial")
    real = gk.bootstrap_lrt(m0, m1, nsim=40, seed=3, progress_bar=False)
    assert real["df"] == 1 and real["nsim"] == 40
    assert real["p_chisq"] < 1e-4 and real["p_bootstrap"] == pytest.approx(1 / 41)
    null = gk.bootstrap_lrt(m2, m1, nsim=40, seed=3, progress_bar=False)  # order does not matter
    assert null["p_bootstrap"] > 0.05 and null["p_chisq"] > 0.05


def test_predict_interval(sleep_data):
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", sleep_data)
    new = pd.DataFrame({"Days": [5, 5], "Subject": ["308", "new"]})
    a = fit.predict_interval(new, nsim=3000, seed=1)
    b = fit.predict_interval(new, nsim=3000, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert (a.lower < a.fit).all() and (a.fit < a.upper).all()
    w = a.upper - a.lower
    assert w.iloc[1] > w.iloc[0]  # a new subject is less certain than a known one
    # a new observation of a known subject: about +- 1.96 sqrt(sigma^2 + small) around the prediction
    assert w.iloc[0] == pytest.approx(2 * 1.96 * fit.sigma, rel=0.15)
    m = fit.predict_interval(new, nsim=3000, seed=1, which="mean")
    assert (m.upper - m.lower < w).all()


def test_predict_interval_covers_new_binomial_group_means():
    """For new groups, the 'mean' interval (with a new random effect) covers the true group probability
    about 95% of the time."""
    fit = gk.glmer("y ~ x + (1 | g)", _sim_binomial(21, groups=40, per=25), "binomial")
    rng = np.random.default_rng(9)
    n = 400
    new = pd.DataFrame({"x": rng.normal(size=n), "g": [f"new{i}" for i in range(n)]})
    truth = 1 / (1 + np.exp(-(-0.3 + 0.6 * new.x + rng.normal(0, 0.8, n))))
    pi = fit.predict_interval(new, nsim=2000, seed=2, which="mean")
    cover = np.mean((pi.lower <= truth) & (truth <= pi.upper))
    assert 0.9 < cover < 0.99


@pytest.mark.parametrize("case", ["r2_sleepstudy", "r2_birds", "r2_salamanders_poisson"])
def test_r2_and_icc_match_performance(case, sleep_data):
    ref = extra_ref(case)
    if case == "r2_sleepstudy":
        fit = gk.lmer("Reaction ~ Days + (Days | Subject)", sleep_data)
    elif case == "r2_birds":
        fit = gk.glmer("attack ~ testosterone + season + (1 | bird)", gk.datasets.load("birds"), "binomial")
    else:
        fit = gk.glmer("count ~ mined + spp + (1 | site)", gk.datasets.load("salamanders"), "poisson")
    r = fit.r2()
    assert r["R2_marginal"] == pytest.approx(ref["R2_marginal"], abs=1e-3)
    assert r["R2_conditional"] == pytest.approx(ref["R2_conditional"], abs=1e-3)
    assert fit.icc()["ICC"] == pytest.approx(ref["ICC"], abs=1e-3)


def test_icc_of_random_intercept_lmm():
    fit = gk.lmer("Reaction ~ Days + (1 | Subject)", gk.datasets.load("sleepstudy"))
    vb = fit.varcorr["variance"].iloc[0]
    assert fit.icc()["ICC"] == pytest.approx(vb / (vb + fit.sigma ** 2))


def test_simulate_every_family_has_the_fitted_mean():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(20), 30)
    x = rng.normal(size=g.size)
    mu = np.exp(0.5 + 0.3 * x + rng.normal(0, 0.3, 20)[g])
    cases = {
        "poisson": rng.poisson(mu),
        "nbinom2": rng.negative_binomial(2, 2 / (2 + mu)),
        "Gamma": rng.gamma(3, mu / 3),
        "binomial": rng.binomial(1, mu / (1 + mu)),
    }
    for fam, y in cases.items():
        d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gk.glmer("y ~ x + (1 | g)", d, fam, link="log" if fam == "Gamma" else None)
        sims = fit.simulate(200, seed=1, re_form=None)
        assert sims.to_numpy().mean() == pytest.approx(np.mean(fit.fitted), rel=0.05), fam


def test_figures(cbpp_fit, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    for name, fn in (("cat", lambda p: gk.plots.caterpillar(cbpp_fit, "herd", path=p)),
                     ("coef", lambda p: gk.plots.coef_plot(cbpp_fit, path=p)),
                     ("eff", lambda p: gk.plots.effects_plot(cbpp_fit, "period", path=p)),
                     ("fo", lambda p: gk.plots.fitted_observed(cbpp_fit, path=p))):
        fig = fn(tmp_path / f"{name}.png")
        assert fig is not None and (tmp_path / f"{name}.png").stat().st_size > 5000
    with pytest.raises(ValueError, match="no random effects"):
        gk.plots.caterpillar(cbpp_fit, "nope")


def _browser():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_is_self_contained(tmp_path):
    pytest.importorskip("matplotlib")
    fit = gk.glmer("attack ~ testosterone + season + (1 | bird)", gk.datasets.load("birds"), "binomial")
    path = fit.report(tmp_path / "r.html")
    text = path.read_text()
    assert text.count("data:image/png;base64,") >= 4
    assert "Profile confidence intervals" in text and "R2_marginal" in text
    assert "src=\"http" not in text and "<script" not in text
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium); the report's HTML was checked above")
    # a real browser: every figure decodes (naturalWidth > 0); a copy of the page reports it into the DOM
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", "<script>window.addEventListener('load',()=>{document.body.setAttribute("
                                  "'data-images',[...document.images].map(i=>i.naturalWidth).join(','));});"
                                  "</script></body>"))
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    import re

    m = re.search(r'data-images="([0-9,]+)"', out.stdout)
    assert m, out.stderr[-500:]
    widths = [int(w) for w in m.group(1).split(",")]
    assert len(widths) >= 4 and min(widths) > 100


def test_cli_confint_and_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from glmmkit.cli import main

    path = tmp_path / "cbpp.csv"
    gk.datasets.load("cbpp").to_csv(path, index=False)
    rc = main(["fit", str(path), "--formula", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
               "--family", "binomial", "--factor", "period,herd", "--confint", "profile",
               "--report", str(tmp_path / "r.html")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Profile 95% confidence intervals" in out and "sd_(Intercept)|herd" in out
    assert (tmp_path / "r.html").stat().st_size > 50_000
