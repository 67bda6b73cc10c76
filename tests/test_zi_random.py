"""Random effects in the zero model (``ziformula="~ x + (1 | g)"``): the stacked system of zeroinflated.py against
glmmTMB 1.1.5 (tests/reference/families/make_zi_re.R), an independent dense Laplace, finite differences and the
simulation's truth."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import glmmkit as gk
from glmmkit import families as F
from glmmkit import lme4_name
from glmmkit.cli import main
from glmmkit.errors import FormulaError, InputError
from glmmkit.zeroinflated import ZeroInflated, ZeroInflatedRE, psd_2x2
from .conftest import assert_fixef_matches

HERE = Path(__file__).parent
REF = HERE / "reference" / "families"
SHARED = HERE / "reference" / "shared"
REFS = json.loads((REF / "zi_re_refs.json").read_text())
OWLS_F = "SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest)"


def _sal():
    d = pd.read_csv(SHARED / "salamanders_nb2" / "data.csv")
    d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
    d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def _sim():
    return pd.read_csv(REF / "zi_re_sim.csv")


def _owls():
    return pd.read_csv(SHARED / "owls_offset" / "data.csv")


#: name: (formula, data, family, ziformula, rows predicted in R (0-based), grouping column)
CASES = {
    "zipoisson_re_sim": ("y ~ x + (1 | g)", _sim, "poisson", "~ x + (1 | g)", [0, 1, 2], "g"),
    "zipoisson_re_salamanders": ("count ~ spp + mined + (1 | site)", _sal, "poisson", "~ mined + (1 | site)",
                                 [0, 99, 299], "site"),
    "zinbinom2_re_owls": (OWLS_F, _owls, "nbinom2", "~ 1 + (1 | Nest)", [0, 99, 299], "Nest"),
    "hurdle_nbinom2_re_salamanders": ("count ~ spp + mined + (1 | site)", _sal, "truncated_nbinom2",
                                      "~ mined + (1 | site)", [0, 99, 299], "site"),
    "zipoisson_re_owls": (OWLS_F, _owls, "poisson", "~ 1 + (1 | Nest)", [0, 99, 299], "Nest"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_matches_glmmtmb(name):
    formula, data, family, zi, rows, _ = CASES[name]
    r = REFS[name]
    d = data()
    fit = gk.glmer(formula, d, family, ziformula=zi)
    assert fit.converged, fit.messages
    assert fit.loglik >= r["loglik"] - 1e-3
    assert fit.loglik == pytest.approx(r["loglik"], abs=5e-3)
    assert_fixef_matches(fit, r["fixef"])
    fp = fit.family_params
    zi_est = {lme4_name(k[3:]): k for k in fp.index if k.startswith("zi:")}
    for k, v in r["zi"].items():
        assert fp.loc[zi_est[k], "estimate"] == pytest.approx(v["estimate"], rel=1e-3, abs=1e-4), k
        assert fp.loc[zi_est[k], "std_error"] == pytest.approx(v["std_error"], rel=0.02), k
    vc = fit.varcorr
    for part, prefix in (("sd", ""), ("zi_sd", "zi:")):
        for key, val in r[part].items():
            grp, term = key.split("|")
            got = vc.loc[(vc.group == prefix + grp) & (vc.term1 == term), "sd"].iloc[0]
            assert got == pytest.approx(val, rel=1e-2), (part, key)
    if family == "nbinom2":
        assert fit.family.dispersion == pytest.approx(r["sigma"], rel=1e-2)
    nd = d.iloc[rows]
    assert np.allclose(fit.predict(nd, type="response"), r["predict_response"], rtol=1e-3)
    assert np.allclose(fit.predict(nd, type="zprob"), r["predict_zprob"], atol=1e-4)
    assert np.allclose(fit.predict(nd, type="zprob", re_form="~0"), r["predict_zprob_pop"], atol=1e-4)
    assert np.allclose(fit.predict(type="zprob")[rows], r["predict_zprob"], atol=1e-4)


def _eta_grid(fam, y, ec, ez):
    """log p at (eta_c, eta_z) row by row through the stacked family's own kernel."""
    fam = ZeroInflatedRE(ZeroInflated(fam, np.zeros((len(y), 0)), []))
    eta = np.concatenate([ec, ez, np.zeros_like(ec)])
    y3, w3 = np.tile(y, 3), np.ones(3 * len(y))
    return fam, eta, y3, w3


@pytest.mark.parametrize("base", [F.get_family("poisson"), F.TruncatedNB2().with_dispersion(1.7),
                                  F.get_family("nbinom2").with_dispersion(0.8)], ids=["poisson", "hurdle_nb2", "nb2"])
def test_score_and_information_match_finite_differences(base):
    rng = np.random.default_rng(3)
    n = 14
    y = np.r_[np.zeros(7), rng.integers(1, 9, n - 7)].astype(float)
    ec, ez = rng.normal(0.7, 0.6, n), rng.normal(-0.2, 0.8, n)
    fam, eta, y3, w3 = _eta_grid(base, y, ec, ez)
    if getattr(base, "hurdle", None) is False:
        fam.base.hurdle = True

    def logp(c, z):
        m = fam.link.inverse(c)
        return fam._logp(y, m, z, np.ones(n))[0]

    sc, sz, a, b, c = fam.information(eta, y3, w3)
    h = 1e-4
    assert np.allclose(sc, (logp(ec + h, ez) - logp(ec - h, ez)) / (2 * h), atol=1e-6)
    assert np.allclose(sz, (logp(ec, ez + h) - logp(ec, ez - h)) / (2 * h), atol=1e-6)
    h = 1e-3
    acc = -(logp(ec + h, ez) - 2 * logp(ec, ez) + logp(ec - h, ez)) / h ** 2
    bzz = -(logp(ec, ez + h) - 2 * logp(ec, ez) + logp(ec, ez - h)) / h ** 2
    cross = -(logp(ec + h, ez + h) - logp(ec + h, ez - h) - logp(ec - h, ez + h) + logp(ec - h, ez - h)) / (4 * h * h)
    assert np.allclose(a, acc, atol=1e-4) and np.allclose(b, bzz, atol=1e-4) and np.allclose(c, cross, atol=1e-4)
    # the stacked weights give the 2 x 2 blocks back: (a - c) + c = a, (b - c) + c = b, cross c
    w = fam.observed_weights(y3, eta, None, w3)
    assert np.allclose(w[:n] + w[2 * n:], a) and np.allclose(w[n:2 * n] + w[2 * n:], b) and np.allclose(w[2 * n:], c)


def test_psd_2x2_projects_only_indefinite_rows():
    rng = np.random.default_rng(5)
    a, b, c = rng.normal(0, 1, 200), rng.normal(0, 1, 200), rng.normal(0, 1, 200)
    na, nb, nc = psd_2x2(a, b, c)
    lam = np.linalg.eigvalsh(np.stack([np.stack([na, nc], -1), np.stack([nc, nb], -1)], -2))
    assert lam.min() >= 1e-8 * 0.999
    ok = np.linalg.eigvalsh(np.stack([np.stack([a, c], -1), np.stack([c, b], -1)], -2)).min(axis=1) >= 1e-8
    assert ok.any() and (~ok).any()
    assert np.array_equal(na[ok], a[ok]) and np.array_equal(nc[ok], c[ok])
    # the projection keeps the leading eigenpair of an indefinite row
    i = int(np.flatnonzero(~ok)[0])
    M, P = np.array([[a[i], c[i]], [c[i], b[i]]]), np.array([[na[i], nc[i]], [nc[i], nb[i]]])
    v = np.linalg.eigh(M)[1][:, 1]
    assert P @ v == pytest.approx(max(np.linalg.eigvalsh(M)[1], 1e-8) * v, abs=1e-9)


def test_laplace_value_matches_an_independent_dense_laplace():
    """-2 log L at given parameters against a dense Laplace over each group's (u_c, u_z), written here from the
    model's definition (scipy's optimiser for the mode, finite differences for the Hessian)."""
    rng = np.random.default_rng(11)
    G, per = 6, 9
    g = np.repeat(np.arange(G), per)
    x = rng.normal(size=G * per)
    y = np.where(rng.uniform(size=G * per) < 0.35, 0, rng.poisson(np.exp(0.4 + 0.3 * x)))
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    spec = gk.ModelSpec.from_formula("y ~ x + (1 | g)", d, "poisson", ziformula="~ x + (1 | g)")
    obj = spec.objective(laplace="observed")
    theta, beta, psi = np.array([0.6, 1.1]), np.array([0.35, 0.25]), np.array([-0.4, 0.2])
    value, _ = obj.evaluate(theta, beta=beta, psi=psi)

    def group_logp(u, rows):
        ec = beta[0] + beta[1] * x[rows] + theta[0] * u[0]
        ez = psi[0] + psi[1] * x[rows] + theta[1] * u[1]
        lp0 = np.logaddexp(-np.logaddexp(0, -ez), -np.logaddexp(0, ez) + stats.poisson.logpmf(0, np.exp(ec)))
        lpy = -np.logaddexp(0, ez) + stats.poisson.logpmf(y[rows], np.exp(ec))
        return np.sum(np.where(y[rows] == 0, lp0, lpy)) - 0.5 * u @ u

    total = 0.0
    for j in range(G):
        rows = np.flatnonzero(g == j)
        res = optimize.minimize(lambda u: -group_logp(u, rows), np.zeros(2), method="BFGS", options={"gtol": 1e-10})
        u, h = res.x, 1e-4
        H = np.empty((2, 2))
        for p_ in range(2):
            for q_ in range(2):
                e_p, e_q = np.eye(2)[p_] * h, np.eye(2)[q_] * h
                H[p_, q_] = -(group_logp(u + e_p + e_q, rows) - group_logp(u + e_p - e_q, rows)
                              - group_logp(u - e_p + e_q, rows) + group_logp(u - e_p - e_q, rows)) / (4 * h * h)
        total += -2 * group_logp(u, rows) + np.linalg.slogdet(H)[1]
    assert value == pytest.approx(total, abs=1e-5)


@pytest.mark.slow  # 7 s (profile intervals): the suite stays under CI's 5 minutes
def test_simulation_truth_is_recovered():
    # zi_re_sim.csv: eta_c = 0.5 + 0.4 x + b_c (sd 0.5), logit pi = -0.5 + 0.3 x + b_z (sd 1), 40 groups, 800 rows
    fit = gk.glmer("y ~ x + (1 | g)", _sim(), "poisson", ziformula="~ x + (1 | g)")
    ci = fit.confint(method="profile")
    truth = {"(Intercept)": 0.5, "x": 0.4, "sd_(Intercept)|g": 0.5, "sd_(Intercept)|zi:g": 1.0}
    for k, v in truth.items():
        assert ci.loc[k, "lower"] < v < ci.loc[k, "upper"], (k, ci.loc[k].tolist())
    zi = fit.family_params
    for k, v in (("zi:(Intercept)", -0.5), ("zi:x", 0.3)):
        assert zi.loc[k, "lower"] < v < zi.loc[k, "upper"], k


def test_after_the_fit_the_zero_model_random_effects_are_everywhere():
    d = _sim()
    fit = gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ x + (1 | g)")
    assert set(fit.ranef) == {"g", "zi:g"} and fit.ngroups == {"g": 40, "zi:g": 40}
    assert "Zero inflation: ~ x + (1 | g)" in fit.summary() and "zi:g" in fit.summary()
    json.dumps(fit.to_dict(), allow_nan=False)
    assert len(fit.fitted) == len(d) and len(fit.residuals("pearson")) == len(d)
    # conditional zero probabilities carry the modes; population ones do not
    bz = fit.ranef["zi:g"]["(Intercept)"]
    pop = special.expit(fit.family.X_zi @ fit.family.gamma)
    cond = special.expit(special.logit(pop) + bz.loc[d["g"].astype(str)].to_numpy())
    assert np.allclose(fit.predict(type="zprob"), cond) and np.allclose(fit.predict(type="zprob", re_form="~0"), pop)
    new = d.iloc[:4].assign(g="unseen")
    assert np.allclose(fit.predict(new, type="zprob", allow_new_levels=True), pop[:4])
    with pytest.raises(InputError, match="unseen"):
        fit.predict(new)
    # simulation: new random effects in both models by default, the modes with re_form=None
    s0, s1 = fit.simulate(200, seed=1), fit.simulate(200, seed=1, re_form=None)
    assert s0.shape == s1.shape == (len(d), 200)
    # P(y = 0) at the modes: pi + (1 - pi) exp(-mu); 200 draws per row
    pi, mu = fit.predict(type="zprob"), fit.predict(type="conditional")
    p0 = pi + (1 - pi) * np.exp(-mu)
    zero_c = (s1.to_numpy() == 0).mean(axis=1)
    assert abs(np.mean(zero_c - p0)) < 0.01 and np.max(np.abs(zero_c - p0) / np.sqrt(p0 * (1 - p0) / 200)) < 5
    assert abs((s0.to_numpy() == 0).mean() - (d.y == 0).mean()) < 0.05
    # the LRT for the zero model's random effect, labelled by both formulas
    small = gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ x")
    tab = gk.anova(small, fit)
    assert tab.index[0] != tab.index[1] and tab["Df"].iloc[1] == 1 and tab["p_boundary"].iloc[1] < 1e-3


def test_zero_model_random_effects_bad_input():
    d = _sim()
    with pytest.raises(InputError, match="nagq=1 and reml=False"):
        gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ (1 | g)", nagq=5)
    with pytest.raises(InputError, match="nagq=1 and reml=False"):
        gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ (1 | g)", reml=True)
    with pytest.raises(FormulaError, match="offset"):
        gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ offset(x) + (1 | g)")
    with pytest.raises(Exception, match="nowhere"):
        gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ (1 | nowhere)")
    with pytest.raises(InputError, match="ziformula is available"):
        gk.glmer("y ~ x + (1 | g)", d.assign(y=d.y + 0.5), "gaussian", ziformula="~ (1 | g)")


def test_zero_model_takes_slopes_and_a_dense_relmat_beside_it():
    d = _sim()
    lev = sorted(d.g.unique())
    K = pd.DataFrame(np.eye(len(lev)), index=lev, columns=lev)
    plain = gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ (1 | g)")
    known = gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ (1 | g)", relmat={"g": K})
    assert known.converged and known.loglik == pytest.approx(plain.loglik, abs=1e-6)
    slopes = gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ x + (1 + x | g)")
    vc = slopes.varcorr
    assert slopes.converged and vc.loc[vc.group == "zi:g", "term1"].tolist() == ["(Intercept)", "x", "(Intercept)"]
    # a model nested in it (the zero model's slope dropped) cannot fit better
    assert slopes.loglik >= gk.glmer("y ~ x + (1 | g)", d, "poisson", ziformula="~ x + (1 | g)").loglik - 1e-6


def test_cli_fits_a_zero_model_with_random_effects(tmp_path):
    csv, out = tmp_path / "sim.csv", tmp_path / "fit.json"
    _sim().to_csv(csv, index=False)
    rc = main(["fit", str(csv), "--formula", "y ~ x + (1 | g)", "--family", "poisson", "--ziformula",
               "~ x + (1 | g)", "--json", str(out)])
    assert rc == 0
    assert json.loads(out.read_text())["loglik"] == pytest.approx(REFS["zipoisson_re_sim"]["loglik"], abs=1e-3)
