"""GLMM REML (glmmTMB's REML = TRUE) against glmmTMB 1.1.5 (tests/reference/reml/make_reml.R) and by
simulation; adaptive Gauss-Hermite quadrature for vector random effects (2 or 3 per level) against a
brute-force integral and by simulation (issue 20)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import glmmkit as gk
from glmmkit.errors import InputError

REF = Path(__file__).parent / "reference"
REFS = json.loads((REF / "reml" / "refs.json").read_text())


def _data(name):
    s = REF / "shared"
    if name.startswith("cbpp"):
        d = pd.read_csv(s / "cbpp_binomial" / "data.csv")
        return d.astype({"period": str, "herd": str})
    if name.startswith("salamanders"):
        d = pd.read_csv(s / "salamanders_nb2" / "data.csv")
        d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
        d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
        return d
    return pd.read_csv(s / "sleepstudy_slopes" / "data.csv")


CASES = {
    "cbpp_binomial": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", {}),
    "salamanders_poisson": ("count ~ mined + spp + (1 | site)", "poisson", {}),
    "salamanders_nbinom2": ("count ~ mined + spp + (1 | site)", "nbinom2", {"laplace": "observed"}),
    "sleepstudy_gaussian": ("Reaction ~ Days + (Days | Subject)", "gaussian", {}),
    # the same model through the GLMM engine (a dispersion model forces it): REML there is the joint Laplace
    "sleepstudy_gaussian_engine": ("Reaction ~ Days + (Days | Subject)", "gaussian", {"dispformula": "~1"}),
    # a residual variance per row (log sigma^2 linear in Days) under REML
    "sleepstudy_gaussian_disp": ("Reaction ~ Days + (1 | Subject)", "gaussian", {"dispformula": "~ Days"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reml_matches_glmmtmb(name):
    formula, family, kw = CASES[name]
    ref = REFS[name.replace("_engine", "")]
    fit = gk.glmer(formula, _data(name), family, reml=True, **kw)
    assert fit.converged and fit.reml
    assert fit.loglik >= ref["loglik"] - 1e-3 and abs(fit.loglik - ref["loglik"]) < 1e-3
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-3)
    np.testing.assert_allclose(fit.coef_table["std_error"].to_numpy(), list(ref["se"].values()), rtol=0.02)
    sds = fit.varcorr.dropna(subset=["sd"])
    sds = sds[sds["group"] != "Residual"]["sd"].to_numpy()
    np.testing.assert_allclose(sds, list(ref["sd"].values()), rtol=1e-2)
    if family == "nbinom2":
        assert fit.family_params.loc["theta", "estimate"] == pytest.approx(ref["sigma"], rel=1e-2)
        assert np.isfinite(fit.family_params.loc["theta", "std_error"])
    assert "REML" in fit.summary() and fit.to_dict()["method"] in ("REML", "REML (Laplace)")


def test_lmer_with_a_dispersion_model_fits_reml_through_the_engine():
    """gk.lmer's default reml=True with a dispformula is glmmTMB's REML = TRUE, not a refusal."""
    ref = REFS["sleepstudy_gaussian_disp"]
    fit = gk.lmer("Reaction ~ Days + (1 | Subject)", _data("sleepstudy"), dispformula="~ Days")
    assert fit.converged and fit.reml
    assert abs(fit.loglik - ref["loglik"]) < 1e-3
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-3)


def test_reml_reduces_the_variance_bias_of_few_groups():
    """Poisson, 8 groups, 6 fixed effects: ML's SD is biased low, REML's much less (seeded replicates)."""
    ml, rl = [], []
    for seed in range(24):
        rng = np.random.default_rng(seed)
        q, m = 8, 15
        g = np.repeat(np.arange(q), m)
        X = rng.normal(size=(q * m, 5))
        eta = 1.0 + X @ np.full(5, 0.1) + rng.normal(0, 0.5, q)[g]
        d = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(y=rng.poisson(np.exp(eta)), g=g.astype(str))
        f = "y ~ x0 + x1 + x2 + x3 + x4 + (1 | g)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ml.append(gk.glmer(f, d, "poisson").varcorr["sd"].iloc[0])
            rl.append(gk.glmer(f, d, "poisson", reml=True).varcorr["sd"].iloc[0])
    assert np.mean(rl) > np.mean(ml)
    assert abs(np.mean(np.square(rl)) - 0.25) < abs(np.mean(np.square(ml)) - 0.25)
    assert np.mean(np.square(rl)) == pytest.approx(0.25, rel=0.3)


def test_reml_bad_input():
    d = _data("cbpp")
    with pytest.raises(InputError, match="nagq=1"):
        gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, "binomial", reml=True, nagq=5)
    with pytest.raises(InputError, match="True or False"):
        gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, "binomial", reml="yes")


def _binary_slopes(seed, q=30, m=6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(q), m)
    x = rng.normal(size=q * m)
    b = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], size=q)
    eta = -0.2 + 0.5 * x + b[g, 0] + b[g, 1] * x
    return pd.DataFrame({"y": rng.binomial(1, special.expit(eta)), "x": x, "g": g.astype(str)})


def test_vector_agq_matches_a_brute_force_integral():
    d = _binary_slopes(1)
    spec = gk.ModelSpec.from_formula("y ~ x + (1 + x | g)", d, "binomial")
    theta, beta = np.array([0.9, 0.2, 0.6]), np.array([-0.1, 0.4])
    v25, _ = spec.objective(nagq=25).evaluate(theta, beta)
    v1, _ = spec.objective(nagq=1).evaluate(theta, beta)
    # the likelihood by a 401 x 401 grid over each level's two spherical random effects
    t = spec.terms[0]
    T = t.cov.template(theta)
    grid = np.linspace(-7, 7, 401)
    du = grid[1] - grid[0]
    U = np.stack([a.ravel() for a in np.meshgrid(grid, grid, indexing="ij")], axis=1)
    total = 0.0
    for j in range(t.q):
        rows = t.codes == j
        e = (spec.X[rows] @ beta)[:, None] + t.X[rows] @ T @ U.T
        ll = (np.sum(spec.y[rows][:, None] * e - np.logaddexp(0, e), axis=0) - 0.5 * np.sum(U ** 2, axis=1)
              - np.log(2 * np.pi))
        total += special.logsumexp(ll) + 2 * np.log(du)
    assert v25 == pytest.approx(-2 * total, abs=1e-8)
    assert abs(v1 + 2 * total) > 0.5  # the Laplace differs visibly here
    v9, _ = spec.objective(nagq=9).evaluate(theta, beta)
    assert v9 == pytest.approx(-2 * total, abs=1e-4)


def test_vector_agq_three_effects_converges_in_nodes():
    rng = np.random.default_rng(3)
    q, m = 25, 8
    g = np.repeat(np.arange(q), m)
    x, z = rng.normal(size=q * m), rng.normal(size=q * m)
    d = pd.DataFrame({"y": rng.binomial(1, special.expit(0.3 * x + rng.normal(0, 1, q)[g])), "x": x, "z": z,
                      "g": g.astype(str)})
    spec = gk.ModelSpec.from_formula("y ~ x + (1 + x + z | g)", d, "binomial")
    theta = np.array([0.8, 0.1, 0.1, 0.4, 0.0, 0.3])
    vals = [spec.objective(nagq=k).evaluate(theta, np.array([0.0, 0.3]))[0] for k in (7, 11, 15)]
    assert abs(vals[1] - vals[2]) < 1e-6 and abs(vals[0] - vals[2]) < 1e-3


def test_vector_agq_recovers_the_variances_of_small_binary_clusters():
    """Binary data, 4 rows per level: the Laplace shrinks the intercept SD; AGQ (9 nodes) is near the truth
    on average over seeded replicates."""
    lap, agq = [], []
    for seed in range(6):
        d = _binary_slopes(10 + seed, q=250, m=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lap.append(gk.glmer("y ~ x + (1 + x | g)", d, "binomial").varcorr["sd"].iloc[0])
            f = gk.glmer("y ~ x + (1 + x | g)", d, "binomial", nagq=9)
        assert f.converged and f.nagq == 9
        agq.append(f.varcorr["sd"].iloc[0])
    assert np.mean(agq) > np.mean(lap)
    assert np.mean(agq) == pytest.approx(1.0, abs=0.12)


def test_agq_refuses_four_effects_per_level_and_two_terms():
    d = _binary_slopes(2)
    d["x2"], d["x3"] = d["x"] ** 2, d["x"] ** 3
    d["h"] = (np.arange(len(d)) % 5).astype(str)
    with pytest.raises(InputError, match="up to 3 random effects per level"):
        gk.glmer("y ~ x + (1 + x + x2 + x3 | g)", d, "binomial", nagq=5)
    with pytest.raises(InputError, match="single random-effects term"):
        gk.glmer("y ~ x + (1 | g) + (1 | h)", d, "binomial", nagq=5)
