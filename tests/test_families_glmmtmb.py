"""glmmTMB's further families (issue 20): their mathematics, their input checks, and their fits against
glmmTMB 1.1.5 (tests/reference/families/make_families.R).

Tolerances as the other reference cases: logLik 1e-3 absolute (or higher), fixed effects 1e-3 relative,
standard errors 2%, variance and family parameters 1e-2 relative.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

import glmmkit as gk
from glmmkit import families as F
from glmmkit import lme4_name
from glmmkit.errors import InputError
from .conftest import assert_fixef_matches

HERE = Path(__file__).parent
REF = HERE / "reference" / "families"
SHARED = HERE / "reference" / "shared"
REFS = json.loads((REF / "refs.json").read_text())
SAL_SPP = ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]

RNG = np.random.default_rng(7)
N = 12


def _cases():
    """(family, y, eta, wt) for the derivative checks, each family at a few parameter values."""
    u = lambda lo, hi: RNG.uniform(lo, hi, N)
    counts = lambda hi, lo=0: RNG.integers(lo, hi, N).astype(float)
    return [
        (F.Beta(phi=5.0), u(0.02, 0.98), RNG.normal(0, 1, N), None),
        (F.Beta(link="probit", phi=40.0), u(0.02, 0.98), RNG.normal(0, 0.5, N), None),
        (F.BetaBinomial(phi=3.0), counts(11) / 10, RNG.normal(0, 1, N), np.full(N, 10.0)),
        (F.BetaBinomial(link="cloglog", phi=0.5), counts(5) / 4, RNG.normal(-0.3, 0.5, N), np.full(N, 4.0)),
        (F.StudentT(sigma=2.0, df=4.0), RNG.normal(0, 3, N), RNG.normal(0, 1, N), None),
        (F.StudentT(link="log", sigma=0.5, df=30.0), u(0.5, 4), RNG.normal(0.5, 0.3, N), None),
        (F.Tweedie(phi=1.3, power=1.4), np.r_[0.0, 0.0, RNG.gamma(2, 1, N - 2)], RNG.normal(0, 1, N), None),
        (F.Tweedie(phi=0.2, power=1.9), np.r_[0.0, RNG.gamma(5, 1, N - 1)], RNG.normal(1.5, 0.3, N), None),
        (F.GeneralizedPoisson(phi=2.0), counts(10), RNG.normal(1, 0.5, N), None),
        (F.GeneralizedPoisson(phi=0.7), counts(6), RNG.normal(1, 0.3, N), None),
        (F.ConwayMaxwellPoisson(phi=2.0), counts(10), RNG.normal(1, 0.5, N), None),
        (F.ConwayMaxwellPoisson(phi=0.3), counts(10), RNG.normal(1.5, 0.5, N), None),
        (F.ConwayMaxwellPoisson(phi=40.0), counts(30), RNG.normal(1.0, 0.5, N), None),
        (F.TruncatedPoisson(), counts(10, 1), RNG.normal(0.5, 1, N), None),
        (F.TruncatedNB2().with_dispersion(2.0), counts(10, 1), RNG.normal(0.5, 1, N), None),
        (F.TruncatedNB1().with_dispersion(1.5), counts(10, 1), RNG.normal(0.5, 1, N), None),
    ]


CASES = _cases()


@pytest.mark.parametrize("fam,y,eta,wt", CASES, ids=[repr(c[0]) for c in CASES])
def test_score_and_observed_information_match_differences(fam, y, eta, wt):
    wt = np.ones_like(y) if wt is None else wt
    mu = fam.link.inverse(eta)

    def ll(e):
        return fam.loglik(y, fam.link.inverse(e), wt)

    def sc(e):
        return fam.score_eta(y, e, fam.link.inverse(e), wt)

    h = 1e-5
    # the score against the log-likelihood's differences, the observed information against the score's
    score = (ll(eta + h) - ll(eta - h)) / (2 * h)
    info = -(sc(eta + h) - sc(eta - h)) / (2 * h)
    assert np.allclose(sc(eta), score, rtol=1e-6, atol=1e-7)
    assert np.allclose(fam.observed_weights(y, eta, mu, wt), info, rtol=1e-6, atol=1e-7)
    # PIRLS steps with positive weights
    assert np.all(fam.stepping_weights(y, eta, mu, wt) > 0)


@pytest.mark.parametrize("fam", [F.GeneralizedPoisson(phi=2.0), F.ConwayMaxwellPoisson(phi=2.0),
                                 F.ConwayMaxwellPoisson(phi=0.4), F.TruncatedPoisson(),
                                 F.TruncatedNB2().with_dispersion(2.0), F.TruncatedNB1().with_dispersion(1.5)],
                         ids=repr)
def test_count_families_are_distributions_with_their_mean_and_variance(fam):
    mu = np.array([0.3, 2.5, 7.0])
    k = np.arange(0, 600.0)[:, None]
    M = np.broadcast_to(mu, (len(k), 3)).copy()
    p = np.nan_to_num(np.exp(fam.loglik(np.broadcast_to(k, M.shape).copy(), M, np.ones(M.shape))))
    mean = (p * k).sum(0)
    assert np.allclose(p.sum(0), 1, atol=1e-10)
    assert np.allclose(mean, fam.response_mean(mu), rtol=1e-8)
    assert np.allclose((p * k * k).sum(0) - mean ** 2, fam.variance(mu), rtol=1e-6)


def test_continuous_families_integrate_to_one_with_their_mean():
    tw = F.Tweedie(phi=1.3, power=1.4)
    for m in (0.5, 3.0):
        f = lambda yy: np.exp(tw.loglik(np.array([yy]), np.array([m]), np.ones(1)))[0]
        p0 = np.exp(tw.loglik(np.zeros(1), np.array([m]), np.ones(1)))[0]
        assert integrate.quad(f, 0, 200, limit=400)[0] + p0 == pytest.approx(1, abs=1e-8)
        assert integrate.quad(lambda yy: yy * f(yy), 0, 200, limit=400)[0] == pytest.approx(m, rel=1e-7)
    be = F.Beta(phi=5.0)
    assert integrate.quad(lambda yy: np.exp(be.loglik(np.array([yy]), np.array([0.3]), np.ones(1)))[0], 0, 1)[0] \
        == pytest.approx(1, abs=1e-8)
    t = F.StudentT(sigma=2.0, df=4.0)
    assert integrate.quad(lambda yy: np.exp(t.loglik(np.array([yy]), np.array([0.3]), np.ones(1)))[0],
                          -np.inf, np.inf)[0] == pytest.approx(1, abs=1e-8)
    bb = F.BetaBinomial(phi=3.0)
    k = np.arange(11.0)
    p = np.exp(bb.loglik(k / 10, np.full(11, 0.2), np.full(11, 10.0)))
    assert p.sum() == pytest.approx(1, abs=1e-12)
    assert ((p * (k / 10) ** 2).sum() - 0.2 ** 2) == pytest.approx(bb.response_variance(np.array([0.2]), np.array([10.0]))[0])


@pytest.mark.parametrize("fam", [F.Beta(phi=8.0), F.BetaBinomial(phi=2.0), F.StudentT(sigma=1.5, df=6.0),
                                 F.Tweedie(phi=1.1, power=1.5), F.GeneralizedPoisson(phi=2.5),
                                 F.ConwayMaxwellPoisson(phi=0.5), F.TruncatedPoisson(),
                                 F.TruncatedNB2().with_dispersion(1.5)], ids=repr)
def test_simulation_has_the_family_mean_and_variance(fam):
    rng = np.random.default_rng(3)
    if fam.trials_response:
        mu, wt = np.full(40_000, 0.3), np.full(40_000, 8.0)
    elif isinstance(fam, F.Beta):
        mu, wt = np.full(40_000, 0.3), np.ones(40_000)
    else:
        mu, wt = np.full(40_000, 2.5), np.ones(40_000)
    y = fam.simulate(mu, wt, rng)
    m = fam.response_mean(mu)[0]
    v = fam.response_variance(mu, wt)[0] if fam.trials_response else fam.variance(mu)[0]
    se = np.sqrt(v / len(y))
    assert abs(y.mean() - m) < 5 * se
    assert np.var(y) == pytest.approx(v, rel=0.06)


# ---- input checks -------------------------------------------------------------------------------------
def _data():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"g": np.repeat(list("abcdefghij"), 10), "x": rng.normal(size=100),
                         "y": rng.uniform(0.05, 0.95, 100), "k": rng.integers(0, 6, 100)})


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_beta_refuses_a_response_at_its_bounds(value):
    d = _data()
    d.loc[3, "y"] = value
    with pytest.raises(InputError, match="strictly between 0 and 1.*row 3"):
        gk.glmer("y ~ x + (1 | g)", d, "beta")


@pytest.mark.parametrize("family", ["truncated_poisson", "truncated_nbinom1", "truncated_nbinom2"])
def test_truncated_family_refuses_zeros_but_a_hurdle_takes_them(family):
    d = _data()
    with pytest.raises(InputError, match="truncated at zero.*ziformula"):
        gk.glmer("k ~ x + (1 | g)", d, family)
    d["k"] = d["k"].where(d["k"] > 0, 0)
    fit = gk.glmer("k ~ x + (1 | g)", d, family, ziformula="~1")
    assert fit.family.is_hurdle
    # a hurdle's zero probability is the share of zeros (intercept-only zero model)
    assert fit.predict(type="zprob")[0] == pytest.approx(np.mean(d["k"] == 0), rel=1e-4)


def test_family_parameter_checks():
    with pytest.raises(InputError, match="in \\(1, 2\\)"):
        F.Tweedie(power=2.5)
    with pytest.raises(InputError, match="positive"):
        F.StudentT(df=-1)
    with pytest.raises(InputError, match="link 'log' is not available for the beta family"):
        F.Beta(link="log")
    with pytest.raises(InputError, match="no closed-form expected information"):
        gk.glmer("k ~ x + (1 | g)", _data(), "genpois", laplace="expected")
    with pytest.raises(InputError, match="non-negative"):
        gk.glmer("y ~ x + (1 | g)", _data().assign(y=lambda d: d.y - 0.5), "tweedie")


# ---- reference fits against glmmTMB 1.1.5 --------------------------------------------------------------
def _sal():
    d = pd.read_csv(SHARED / "salamanders_nb2" / "data.csv")
    d["spp"] = pd.Categorical(d["spp"], categories=SAL_SPP)
    d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def _owls():
    return pd.read_csv(SHARED / "owls_offset" / "data.csv")


def _cbpp():
    d = pd.read_csv(SHARED / "cbpp_binomial" / "data.csv")
    d["period"] = d["period"].astype(str)
    return d


def _sleep():
    d = pd.read_csv(SHARED / "sleepstudy_slopes" / "data.csv")
    d["Subject"] = d["Subject"].astype(str)
    return d


FITS = {
    "beta_sim": lambda: gk.glmer("y ~ x + (1 | g)", pd.read_csv(REF / "beta.csv"), "beta"),
    "betabinomial_cbpp": lambda: gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _cbpp(),
                                          "betabinomial"),
    "t_sleepstudy": lambda: gk.glmer("Reaction ~ Days + (Days | Subject)", _sleep(), "t"),
    "tweedie_sim": lambda: gk.glmer("y ~ x + (1 | g)", pd.read_csv(REF / "tweedie.csv"), "tweedie"),
    "genpois_owls": lambda: gk.glmer("SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + "
                                     "(1 | Nest)", _owls(), "genpois"),
    "compois_salamanders": lambda: gk.glmer("count ~ spp + mined + (1 | site)", _sal(), "compois"),
    "truncated_poisson_salamanders": lambda: gk.glmer("count ~ spp + mined + (1 | site)",
                                                      _sal().query("count > 0"), "truncated_poisson"),
    "truncated_nbinom1_salamanders": lambda: gk.glmer("count ~ spp + mined + (1 | site)",
                                                      _sal().query("count > 0"), "truncated_nbinom1"),
    "hurdle_nbinom2_salamanders": lambda: gk.glmer("count ~ spp + mined + (1 | site)", _sal(), "truncated_nbinom2",
                                                   ziformula="~ spp + mined"),
    "zinbinom1_salamanders": lambda: gk.glmer("count ~ spp + mined + (1 | site)", _sal(), "nbinom1",
                                              ziformula="~ mined"),
    "gaussian_log_sleepstudy": lambda: gk.glmer("Reaction ~ Days + (1 | Subject)", _sleep(), "gaussian",
                                                link="log", laplace="observed"),
    "gaussian_disp_sleepstudy": lambda: gk.lmer("Reaction ~ Days + (1 | Subject)", _sleep(), reml=False,
                                                dispformula="~ Days"),
    "nbinom2_disp_salamanders": lambda: gk.glmer("count ~ spp + mined + (1 | site)", _sal(), "nbinom2",
                                                 laplace="observed", dispformula="~ mined"),
    "compois_disp_salamanders": lambda: gk.glmer("count ~ spp + mined + (1 | site)", _sal(), "compois",
                                                 dispformula="~ mined"),
    "beta_disp_sim": lambda: gk.glmer("y ~ x + (1 | g)", pd.read_csv(REF / "beta.csv"), "beta", dispformula="~ x"),
    "gamma_disp": lambda: gk.glmer("y ~ x + (1 | g)", pd.read_csv(SHARED / "gamma_log" / "data.csv"), "Gamma",
                                   link="log", laplace="observed", dispformula="~ x"),
    "gamma_identity": lambda: gk.glmer("y ~ x + (1 | g)", pd.read_csv(SHARED / "gamma_log" / "data.csv"), "Gamma",
                                       link="identity", laplace="observed"),
}

#: glmmTMB's sigma() from the fit: the family's first parameter (phi, sigma, theta), sqrt(phi) for Gaussian and
#: Gamma (their dispersion is the variance scale), 1 where there is none
def _sigma(fit):
    fam = fit.family
    if fam.dispersion_name is None:
        return 1.0
    return fit.sigma if fam.dispersion_scales else fam.dispersion


# compois_disp_salamanders is slow (13 s: the series at nu near 0 for every evaluation); its standard errors'
# path (a Hessian flat along the dispersion ridge) has its own unit test below: run with -m slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "compois_disp_salamanders" else n
                                  for n in sorted(FITS)])
def test_fit_matches_glmmtmb(name):
    r = REFS[name]
    fit = FITS[name]()
    assert fit.converged, fit.messages
    assert fit.loglik >= r["loglik"] - 1e-3
    assert fit.loglik == pytest.approx(r["loglik"], abs=5e-3)  # higher by more would be worth a look
    assert_fixef_matches(fit, r["fixef"])
    vc = fit.varcorr
    for key, val in r["sd"].items():
        grp, term = key.split("|")
        if term != "corr" and val < 1e-3:  # a variance at its boundary: both near zero
            assert vc.loc[vc.group == grp, "sd"].iloc[0] < 0.05
            continue
        if term == "corr":
            got = vc.loc[(vc.group == grp) & vc.term2.notna(), "corr"].iloc[0]
            assert got == pytest.approx(val, abs=1e-2), key
        else:
            got = vc.loc[(vc.group == grp) & (vc.term1 == term) & vc.term2.isna(), "sd"].iloc[0]
            assert got == pytest.approx(val, rel=1e-2), key
    if r.get("sigma") is not None:  # glmmTMB's sigma() is NA under a dispformula
        assert _sigma(fit) == pytest.approx(r["sigma"], rel=1e-2)
    fp = fit.family_params["estimate"]
    if "df_t" in r:
        assert fp["df"] == pytest.approx(r["df_t"], rel=1e-2)
    if "power" in r:
        assert fp["power"] == pytest.approx(r["power"], rel=1e-2)
    if r.get("disp"):  # the dispersion model's coefficients, on glmmTMB's scale, with their standard errors
        disp = {lme4_name(k[5:]): k for k in fp.index if k.startswith("disp:")}
        for k, v in r["disp"].items():
            if v["std_error"] > 100:
                # a boundary fit (compois_disp_salamanders: the dispersion for mined sites runs off to
                # infinity, glmmTMB's SE in the thousands); the coefficient's value along the flat direction
                # is arbitrary, the logLik, the fixed effects and the SD above are not
                assert abs(fp[disp[k]]) > 5, k
                continue
            assert fp[disp[k]] == pytest.approx(v["estimate"], rel=1e-2, abs=2e-3), k
            assert fit.family_params["std_error"][disp[k]] == pytest.approx(v["std_error"], rel=0.03), k
    if r.get("zi"):
        # the zero model's probabilities (a coefficient on an unidentified ridge, glmmTMB's standard error in
        # the thousands, can sit anywhere along it; the probabilities cannot)
        names = [lme4_name(k) for k in fit.family.zi_names]
        gamma_r = np.array([r["zi"][k]["estimate"] for k in names])
        pi_r = 1 / (1 + np.exp(-(fit.family.X_zi @ gamma_r)))
        assert np.allclose(fit.predict(type="zprob"), pi_r, atol=1e-4)
        zi = {lme4_name(k[3:]): v for k, v in fp.items() if k.startswith("zi:")}
        for k, v in r["zi"].items():
            if v["std_error"] < 100:
                assert zi[k] == pytest.approx(v["estimate"], rel=1e-2, abs=1e-3), k


def test_hurdle_predictions_match_glmmtmb():
    r = REFS["hurdle_nbinom2_salamanders"]
    fit = FITS["hurdle_nbinom2_salamanders"]()
    nd = _sal().iloc[[i - 1 for i in r["predict_rows"]]]
    assert np.allclose(fit.predict(nd, type="zprob"), r["predict_zprob"], rtol=1e-3)
    assert np.allclose(fit.predict(nd, type="conditional"), r["predict_conditional"], rtol=2e-3)
    assert np.allclose(fit.predict(nd, type="response"), r["predict_response"], rtol=2e-3)


def test_compois_series_is_exact_from_the_geometric_limit_to_poisson():
    """log Z, the mean and the variance against a 20,000-count series: small nu (the geometric limit, where the
    window is capped) and moderate nu with moderate means (a heavy right tail, where the window widens)."""
    from scipy.special import gammaln, logsumexp

    j = np.arange(0, 20000.0)
    mu = np.array([0.05, 0.3, 1.0, 2.5, 7.0, 20.0, 60.0])
    for nu in [1e-7, 1e-4, 1e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]:
        loglam, logz, var, _ = F.ConwayMaxwellPoisson(phi=1 / nu)._moments(mu)
        for i, m in enumerate(mu):
            lw = loglam[i] * j - nu * gammaln(j + 1)
            lz = logsumexp(lw)
            p = np.exp(lw - lz)
            mean = np.sum(p * j)
            assert logz[i] == pytest.approx(lz, abs=1e-8), (nu, m)
            assert mean == pytest.approx(m, rel=1e-8), (nu, m)
            assert var[i] == pytest.approx(np.sum(p * (j - mean) ** 2), rel=1e-8), (nu, m)


# ---- the rest of the toolkit on the new families --------------------------------------------------------
# compois's and t's runs are marked slow (14 s and 13 s of the suite's 5 minutes: every refit of the bootstrap
# is dear -- compois's series, t's non-log-concave PIRLS)
TOOLKIT = ["beta", "betabinomial", "tweedie", pytest.param("t", marks=pytest.mark.slow), "genpois",
           pytest.param("compois", marks=pytest.mark.slow), "truncated_nbinom2"]


@pytest.mark.parametrize("family", TOOLKIT)
def test_toolkit_works_on_the_new_families(family, tmp_path):
    import sys
    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    import simdata

    _, formula, _ = simdata.FAMILY_MODELS[family]
    d = simdata.family_data(family, n=400, q=20, seed=5)
    fit = gk.glmer(formula, d, family)
    assert fit.converged, fit.messages
    json.loads(json.dumps(fit.to_dict(), allow_nan=False))  # strict JSON
    assert family in fit.summary() or fit.family.name in fit.summary()
    sims = fit.simulate(3, seed=1)
    assert sims.shape == (len(d), 3) and np.all(np.isfinite(sims.to_numpy()))
    res = gk.simulate_residuals(fit, nsim=20, seed=2)
    assert np.all((res.scaled >= 0) & (res.scaled <= 1))
    res.tests()
    assert np.all(np.isfinite(fit.residuals("pearson")))
    ci = fit.confint(method="wald").dropna()  # Wald intervals of the fixed effects (none for the SDs, as lme4)
    assert len(ci) == len(fit.fixef) and np.all(ci["lower"] < ci["upper"])
    boot = fit.confint(method="boot", nsim=4, seed=3)
    assert set(fit.fixef.index) <= set(boot.index)
    null = gk.glmer(formula.replace("x +", "1 +"), d, family)
    table = gk.compare(null, fit)
    assert len(table) == 2
    lrt = gk.anova(null, fit)
    assert len(lrt) == 2
    out = fit.report(tmp_path / "r.html")
    assert Path(out).stat().st_size > 1000
    assert np.all(np.isfinite(fit.predict(d.head(5), type="response")))


# ---- dispersion models --------------------------------------------------------------------------------
def _disp_data():
    rng = np.random.default_rng(4)
    n, q = 900, 30
    g, x, z = rng.integers(0, q, n), rng.normal(size=n), rng.normal(size=n)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.5, q)[g]
    th = np.exp(0.5 + 0.7 * z)
    d = pd.DataFrame({"g": g.astype(str), "x": x, "z": z})
    d["yn"] = rng.negative_binomial(th, th / (th + np.exp(eta)))
    m, ph = 1 / (1 + np.exp(-eta)), np.exp(2 + 0.5 * z)
    d["yb"] = rng.beta(m * ph, (1 - m) * ph)
    d["yt"] = eta + np.exp(-0.5 + 0.3 * z) * rng.standard_t(5, n)
    d["yg"] = eta + np.exp(0.5 * (0.2 + 0.6 * z)) * rng.normal(size=n)
    return d


@pytest.mark.parametrize("family, y", [("nbinom2", "yn"), ("beta", "yb"), ("t", "yt"), ("gaussian", "yg"),
                                       ("truncated_nbinom2", "yn")])
def test_dispersion_model_gradient_matches_central_differences(family, y):
    import sys
    sys.path.insert(0, str(HERE))
    from test_gradient import _assert_matches_central_differences
    from glmmkit.engine.gradient import laplace_gradient, supports_gradient

    d = _disp_data()
    d["yn"] = d["yn"] + (family.startswith("truncated"))  # positive counts for the truncated family
    obj = gk.ModelSpec.from_formula(f"{y} ~ x + (1 | g)", d, family, dispformula="~ z").objective(laplace="observed")
    assert supports_gradient(obj)
    psi = np.r_[[0.4, 0.3], [np.log(6.0)] if family == "t" else []]
    _assert_matches_central_differences(obj, np.array([0.5]), np.array([0.2, 0.4]), laplace_gradient, psi=psi)


def test_dispersion_model_recovers_its_coefficients():
    d = _disp_data()
    nb = gk.glmer("yn ~ x + (1 | g)", d, "nbinom2", dispformula="~ z")
    fp = nb.family_params
    assert nb.converged
    for name, truth in (("disp:(Intercept)", 0.5), ("disp:z", 0.7)):
        assert abs(fp.loc[name, "estimate"] - truth) < 3 * fp.loc[name, "std_error"], name
    ga = gk.lmer("yg ~ x + (1 | g)", d, reml=False, dispformula="~ z")
    fp = ga.family_params
    for name, truth in (("disp:(Intercept)", 0.2), ("disp:z", 0.6)):  # log sigma^2 = 0.2 + 0.6 z
        assert abs(fp.loc[name, "estimate"] - truth) < 3 * fp.loc[name, "std_error"], name
    assert np.isnan(ga.sigma)  # one residual variance per row: no single sigma, as glmmTMB's NA


def test_dispersion_model_bad_input():
    d = _disp_data()
    with pytest.raises(InputError, match="dispformula is available for the families .*not 'poisson'"):
        gk.glmer("yn ~ x + (1 | g)", d, "poisson", dispformula="~ z")
    with pytest.raises(Exception, match="nowhere"):
        gk.glmer("yn ~ x + (1 | g)", d, "nbinom2", dispformula="~ nowhere")
    with pytest.raises(InputError, match="nagq"):
        gk.glmer("yn ~ x + (1 | g)", d, "nbinom2", dispformula="~ z", nagq=5)
    with pytest.raises(InputError, match="held fixed"):
        gk.glmer("yb ~ x + (1 | g)", d, F.Beta(phi=5.0), dispformula="~ z")
    with pytest.raises(InputError, match="one-sided formula"):
        gk.glmer("yn ~ x + (1 | g)", d, "nbinom2", dispformula=3)


def test_simulate_new_rows_uses_their_own_dispersion_and_zero_model():
    d = _disp_data()
    fit = gk.glmer("yn ~ x + (1 | g)", d, "nbinom2", dispformula="~ z", ziformula="~ x")
    new = pd.DataFrame({"x": [0.0, 0.0], "z": [-3.0, 3.0], "g": ["new", "new"]})
    fam = fit.family.for_newdata(new)
    theta = fam.base.dispersion
    nb = fit.family_params["estimate"]
    assert np.allclose(theta, np.exp(nb["disp:(Intercept)"] + nb["disp:z"] * new["z"]))
    sims = fit.simulate(4000, seed=1, newdata=new).to_numpy()
    # the row with the smaller size theta is the more variable one, at the same mean
    assert np.var(sims[0]) > 1.5 * np.var(sims[1])
    with pytest.raises(InputError, match="for_newdata"):
        fit.family.base.simulate(np.ones(3), np.ones(3), np.random.default_rng(0))


def test_flat_ridge_leaves_the_fixed_effects_variance_defined():
    """A Hessian flat (to finite-difference noise of either sign) along a direction that moves no fixed effect:
    the fixed effects' variances are those of the other directions, the ridge's parameters get none (NaN);
    flat along a fixed effect, or clearly negative: not usable (None)."""
    from glmmkit.results import _flat_ridge_inverse

    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 4))
    H0 = A @ A.T + 4 * np.eye(4)  # theta, beta1, beta2, psi1 block
    H = np.zeros((5, 5))
    H[:4, :4] = H0
    # psi2 and psi1 - psi2 mixed: a ridge along (0, 0, 0, 1, -1) / sqrt(2) with curvature -1e-9
    R = np.eye(5)
    R[3:, 3:] = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    H = R @ H @ R.T
    H -= 1e-9 * np.outer(R[:, 4], R[:, 4])
    V, how = _flat_ridge_inverse(H, [1, 2], ["theta1", "beta1", "beta2", "psi1", "psi2"])
    assert "psi1, psi2" in how and np.all(np.isnan(V[3:, :])) and np.all(np.isnan(V[:, 3:]))
    # the fixed effects' block equals that of the model without the flat parameter
    want = np.linalg.inv(H0[:3, :3] - H0[:3, 3:] @ np.linalg.solve(H0[3:, 3:], H0[3:, :3]))
    np.testing.assert_allclose(V[1:3, 1:3], want[1:3, 1:3], rtol=1e-6)
    # positive definite: the plain inverse, no message
    V, how = _flat_ridge_inverse(H0, [1, 2], None)
    assert how == "" and np.allclose(V, np.linalg.inv(H0))
    # the ridge moves a fixed effect: no usable inverse
    B = H0.copy()
    B[1, :] = B[:, 1] = 0.0
    assert _flat_ridge_inverse(B, [1, 2], None)[0] is None
    # clearly negative curvature: not an optimum
    C = H0.copy()
    C[3, 3] = -5.0
    assert _flat_ridge_inverse(C, [1, 2], None)[0] is None
