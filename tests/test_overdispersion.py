"""Issue 3: negative-binomial and zero-inflated GLMMs, OLRE, dispersion diagnostics, model comparison."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit import lme4_name
from .conftest import assert_fixef_matches

EXTRA = json.loads((Path(__file__).parent / "reference" / "extra_refs.json").read_text())


@pytest.fixture(scope="module")
def sal():
    return gk.datasets.load("salamanders")


def test_zero_inflated_poisson_matches_glmmtmb(sal):
    r = EXTRA["zip_salamanders"]
    fit = gk.glmer("count ~ mined + spp + (1 | site)", sal, "poisson", ziformula="~ mined")
    assert fit.loglik == pytest.approx(r["loglik"], abs=1e-3)
    assert_fixef_matches(fit, r["fixef"], abs_tol=1e-3)
    fp = fit.family_params
    zi = {lme4_name(k.split(":", 1)[1]): row for k, row in fp.iterrows()}
    for k, v in r["zi"].items():
        assert zi[k]["estimate"] == pytest.approx(v["estimate"], rel=1e-3, abs=1e-3)
        assert zi[k]["std_error"] == pytest.approx(v["std_error"], rel=0.02)
    assert fit.varcorr["sd"].iloc[0] == pytest.approx(r["sd_site"], rel=1e-2)
    # E[y] = (1 - pi) mu
    assert np.allclose(fit.fitted, (1 - fit.family.pi) * fit.family.link.inverse(fit.predict(type="link")))
    assert np.allclose(fit.predict(sal), fit.fitted)


def test_zero_inflated_nb2_reaches_glmmtmb(sal):
    """glmmTMB's zero-inflation probability runs to the boundary here; logLik and the count model agree."""
    r = EXTRA["zinb2_salamanders"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("count ~ mined + spp + (1 | site)", sal, "nbinom2", ziformula="~1")
    assert fit.loglik >= r["loglik"] - 1e-3
    est = {lme4_name(k): v for k, v in fit.fixef.items()}
    for k, v in r["fixef"].items():
        assert est[k] == pytest.approx(v["estimate"], rel=1e-3, abs=1e-3), k
    assert fit.family_params.loc["theta", "estimate"] == pytest.approx(r["dispersion"], rel=1e-2)
    assert fit.family_params.loc["zi:(Intercept)", "estimate"] < -8


def test_zero_inflation_formula_with_unknown_column(sal):
    with pytest.raises(ValueError, match="unknown column 'depth' in the zero-inflation formula"):
        gk.glmer("count ~ mined + (1 | site)", sal, "poisson", ziformula="~ depth")


def test_nb_rejects_bad_counts(sal):
    bad = sal.assign(count=sal["count"].astype(float))
    bad.loc[4, "count"] = 1.5
    with pytest.raises(ValueError, match="whole counts.*row 4"):
        gk.glmer("count ~ mined + (1 | site)", bad, "nbinom2")
    bad.loc[4, "count"] = -2
    with pytest.raises(ValueError, match="non-negative.*row 4"):
        gk.glmer("count ~ mined + (1 | site)", bad, "nbinom1")


def test_olre_helper_and_argument(sal):
    f, d = gk.add_olre("count ~ mined + (1 | site)", sal)
    assert f.endswith("(1 | obs)") and d["obs"].nunique() == len(d)  # the existing obs column is a row id
    f2, d2 = gk.add_olre("y ~ x + (1 | g)", pd.DataFrame({"y": [1, 2], "x": [0, 1], "g": [1, 1], "obs": [1, 1]}))
    assert "(1 | obs_)" in f2 and list(d2["obs_"]) == [0, 1]
    a = gk.glmer("count ~ mined + (1 | site)", sal, "poisson", olre=True)
    b = gk.glmer("count ~ mined + (1 | site) + (1 | obs)", sal, "poisson")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)


def test_pearson_dispersion_and_simulated_residuals(sal):
    fit = gk.glmer("count ~ mined + spp + (1 | site)", sal, "poisson")
    d = gk.pearson_dispersion(fit)
    assert d["ratio"] == pytest.approx(np.sum(fit.residuals("pearson") ** 2) / fit.df_resid)
    assert d["ratio"] > 2 and d["p"] < 1e-10
    res = gk.simulate_residuals(fit, nsim=200, seed=1, conditional=True)
    assert res.scaled.min() >= 0 and res.scaled.max() <= 1
    t = res.tests()
    assert list(t.index) == ["uniformity (KS)", "dispersion", "zero inflation", "outliers"]
    assert t.loc["dispersion", "statistic"] > 1.5 and t.loc["dispersion", "p"] < 0.05
    nb = gk.glmer("count ~ mined + spp + (1 | site)", sal, "nbinom2")
    assert gk.pearson_dispersion(nb)["ratio"] < 1.3


def test_simulated_residuals_are_uniform_under_the_true_model():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(40), 15)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.3 + 0.5 * x + rng.normal(0, 0.5, 40)[g]))
    fit = gk.glmer("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), "poisson")
    t = gk.simulate_residuals(fit, nsim=250, seed=2).tests()
    assert t.loc["uniformity (KS)", "p"] > 0.01 and t.loc["dispersion", "p"] > 0.01


def test_residual_plot_is_written(sal, tmp_path):
    pytest.importorskip("matplotlib")
    fit = gk.glmer("count ~ mined + (1 | site)", sal, "poisson")
    fig = gk.simulate_residuals(fit, nsim=50, seed=1).plot(tmp_path / "res.png")
    assert (tmp_path / "res.png").stat().st_size > 10_000 and len(fig.axes) == 2


def test_compare_and_anova(sal):
    p = gk.glmer("count ~ mined + spp + (1 | site)", sal, "poisson")
    nb = gk.glmer("count ~ mined + spp + (1 | site)", sal, "nbinom2")
    small = gk.glmer("count ~ mined + (1 | site)", sal, "poisson")
    tab = gk.compare(p, nb)
    assert list(tab.columns) == ["logLik", "df", "AIC", "BIC", "dispersion_ratio", "delta_AIC"]
    assert tab.loc["nbinom2", "delta_AIC"] == 0 and tab.loc["poisson", "delta_AIC"] > 100
    a = gk.anova(p, small)  # given in any order, tested smallest first
    assert a["npar"].tolist() == [3, 9]
    assert a["Chisq"].iloc[1] == pytest.approx(2 * (p.loglik - small.loglik))
    assert a["Df"].iloc[1] == 6 and a["p"].iloc[1] < 1e-10
    with pytest.raises(ValueError, match="different data"):
        gk.anova(p, gk.glmer("count ~ mined + (1 | site)", sal.iloc[:300], "poisson"))
    with pytest.raises(ValueError, match="not nested"):
        gk.anova(p, gk.glmer("count ~ mined + spp + (1 | site)", sal, "poisson", olre=True),
                 gk.glmer("count ~ mined + spp + (1 | site)", sal, "nbinom1"))


def test_refit_reproduces_the_fit_and_takes_new_data(sal):
    fit = gk.glmer("count ~ mined + (1 | site)", sal, "poisson")
    same = gk.refit(fit, fit.spec.y)
    assert same.loglik == pytest.approx(fit.loglik, abs=1e-6) and np.allclose(same.fixef, fit.fixef, atol=1e-5)
    y2 = fit.simulate(1, seed=5).iloc[:, 0].to_numpy()
    other = gk.refit(fit, y2)
    direct = gk.glmer("count ~ mined + (1 | site)", sal.assign(count=y2), "poisson")
    assert other.loglik == pytest.approx(direct.loglik, abs=1e-6)
    with pytest.raises(ValueError, match="refit needs 644 responses"):
        gk.refit(fit, y2[:10])


def test_bootstrap_dispersion_test():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=g.size)
    mu = np.exp(0.3 + 0.3 * x + rng.normal(0, 0.5, 30)[g])
    d_pois = pd.DataFrame({"y": rng.poisson(mu), "x": x, "g": g})
    d_nb = pd.DataFrame({"y": rng.negative_binomial(1.0, 1.0 / (1.0 + mu)), "x": x, "g": g})
    t_p = gk.dispersion_test(gk.glmer("y ~ x + (1 | g)", d_pois, "poisson"), nsim=40, seed=2)
    t_nb = gk.dispersion_test(gk.glmer("y ~ x + (1 | g)", d_nb, "poisson"), nsim=40, seed=2)
    assert t_p["p"] > 0.05 and t_nb["p"] < 0.05
    assert t_p["expected_ratio"] < 1  # the reason the chi-square version is conservative
    with pytest.raises(ValueError, match="method must be"):
        gk.dispersion_test(gk.glmer("y ~ x + (1 | g)", d_pois, "poisson"), method="exact")


def test_overdispersion_report(sal):
    rep = gk.overdispersion_report("count ~ mined + spp + (1 | site)", sal, nsim=100, nsim_bootstrap=20)
    assert list(rep.table.index) == ["poisson", "poisson + OLRE", "nbinom2", "nbinom1"]
    assert "overdispersed" in rep.verdict and "nbinom1" in rep.verdict
    assert "Models compared" in str(rep)


def test_overdispersion_report_with_the_zero_models(sal):
    rep = gk.overdispersion_report("count ~ mined + (1 | site)", sal, nsim=20, nsim_bootstrap=0, zero_models=True)
    assert list(rep.table.index)[-2:] == ["zinbinom2", "hurdle nbinom2"]
    # an intercept-only hurdle puts exactly the observed share of zeros at zero
    assert rep.fits["hurdle nbinom2"].predict(type="zprob")[0] == pytest.approx(np.mean(sal["count"] == 0), rel=1e-4)
    assert rep.fits["zinbinom2"].loglik >= rep.fits["nbinom2"].loglik - 1e-6  # nested: never worse


def test_nb_simulation_recovers_dispersion():
    """Over 8 seeded datasets: mean theta within 10% of the truth (the NB size MLE is biased up a little),
    the mean slope within 3 Monte-Carlo SEs, and the 95% interval of theta covering it at least 6 times."""
    theta, thetas, slopes, covered = 2.0, [], [], 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        g = np.repeat(np.arange(60), 20)
        x = rng.normal(size=g.size)
        mu = np.exp(0.5 + 0.4 * x + rng.normal(0, 0.4, 60)[g])
        y = rng.negative_binomial(theta, theta / (theta + mu))
        fit = gk.glmer("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), "nbinom2")
        fp = fit.family_params.loc["theta"]
        thetas.append(fp["estimate"])
        slopes.append(fit.fixef["x"])
        covered += fp["lower"] < theta < fp["upper"]
    assert np.mean(thetas) == pytest.approx(theta, rel=0.1)
    assert abs(np.mean(slopes) - 0.4) < 3 * np.std(slopes, ddof=1) / np.sqrt(8)
    assert covered >= 6


def test_fits_are_deterministic_within_a_process(sal):
    """Regression: a family must not keep a view of the optimiser's parameter buffer (nlopt reuses it)."""
    fits = [gk.glmer("count ~ mined + (1 | site)", sal, "poisson", ziformula="~ mined") for _ in range(3)]
    assert len({(f.loglik, f.optsummary.fevals, *f.fixef.values) for f in fits}) == 1
