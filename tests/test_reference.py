"""The engine against lme4 / glmmTMB reference fits (tests/reference/shared), one catalogue of cases.

Tolerances (as the reference README asks): logLik within 1e-3 absolute (higher is
accepted where the anchor reported non-convergence), fixed effects within 1e-3
relative (1e-4 absolute near zero), SDs within 1e-2 relative, standard errors within 2%.
"""

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit import lme4_name

from .conftest import REF_DIR, extra_ref, ref_case

SAL_SPP = ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]


def _cbpp(d):
    d = d.copy()
    d["period"] = d["period"].astype(str)
    return d


def _sal(d):
    d = d.copy()
    d["spp"] = pd.Categorical(d["spp"], categories=SAL_SPP)
    d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def _phylo_fit(d):
    K = pd.read_csv(REF_DIR / "phylo_poisson" / "vcv_corr.csv", index_col=0)
    return gk.glmer("y ~ x + (1 | species)", d, "poisson", relmat={"species": K})


CASES = {
    "cbpp_binomial": (_cbpp, lambda d: gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, "binomial")),
    "cbpp_agq25": (_cbpp, lambda d: gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, "binomial", nagq=25)),
    "sleepstudy_slopes": (None, lambda d: gk.lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)),
    "sleepstudy_slopes_reml": (None, lambda d: gk.lmer("Reaction ~ Days + (Days | Subject)", d, reml=True)),
    "sleepstudy_uncorr": (None, lambda d: gk.lmer("Reaction ~ Days + (Days || Subject)", d, reml=False)),
    "salamanders_poisson": (_sal, lambda d: gk.glmer("count ~ mined + spp + (1 | site)", d, "poisson")),
    "salamanders_poisson_olre": (_sal, lambda d: gk.glmer("count ~ mined + spp + (1 | site) + (1 | obs)", d, "poisson")),
    "phylo_poisson": (None, _phylo_fit),
    # negative binomial: glmmTMB's Laplace uses the observed information, lme4's glmer.nb the expected
    "salamanders_nb2": (_sal, lambda d: gk.glmer("count ~ mined + spp + (1 | site)", d, "nbinom2", laplace="observed")),
    "salamanders_glmernb": (_sal, lambda d: gk.glmer("count ~ mined + spp + (1 | site)", d, "nbinom2")),
    "owls_offset": (None, lambda d: gk.glmer(
        "SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest)", d, "nbinom1")),
}

# lme4 stopped before its optimum here (max|grad| 0.10): we must reach at least its logLik, and
# may move the estimates by a fraction (< 0.2) of their standard errors; glmmTMB, which converged,
# is matched tightly in test_olre_matches_glmmtmb.
NOT_CONVERGED = {"salamanders_poisson_olre"}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    name = request.param
    data, ref = ref_case(name)
    prep, fit_fn = CASES[name]
    if prep:
        data = prep(data)
    return name, fit_fn(data), ref


def test_loglik(case):
    name, fit, ref = case
    target = ref.get("loglik_full", ref["loglik"])
    if name in NOT_CONVERGED:
        assert fit.loglik >= target - 1e-3
    else:
        assert fit.loglik == pytest.approx(target, abs=1e-3)


def test_fixed_effects(case):
    name, fit, ref = case
    est = {lme4_name(k): v for k, v in fit.fixef.items()}
    se = {lme4_name(k): v for k, v in fit.coef_table["std_error"].items()}
    assert set(est) == set(ref["fixef"])
    for k, r in ref["fixef"].items():
        if name in NOT_CONVERGED:
            assert abs(est[k] - r["estimate"]) < 0.2 * r["std_error"], k
            assert se[k] == pytest.approx(r["std_error"], rel=0.05), k
        else:
            assert est[k] == pytest.approx(r["estimate"], rel=1e-3, abs=1e-4), k
            assert se[k] == pytest.approx(r["std_error"], rel=0.02), k


def test_random_effect_sds(case):
    name, fit, ref = case
    vc = fit.varcorr
    for r in ref["varcorr"]:
        group = r["group"].split(".")[0]
        if r["group"] == "Residual":
            got = vc.loc[vc.group == "Residual", "sd"].iloc[0]
        elif r.get("term2"):
            got = vc.loc[(vc.group == group) & (vc.term2 == r["term2"]), "corr"].iloc[0]
            assert got == pytest.approx(r["sd_or_corr"], abs=2e-3)
            continue
        else:
            got = vc.loc[(vc.group == group) & (vc.term1 == r["term1"]) & vc.term2.isna(), "sd"].iloc[0]
        tol = 3e-2 if name in NOT_CONVERGED else 1e-2
        assert got == pytest.approx(r["sd_or_corr"], rel=tol), (group, r["term1"])


def test_dispersion(case):
    name, fit, ref = case
    if "dispersion" not in ref:
        return
    fp = fit.family_params
    assert len(fp) == 1
    assert fp["estimate"].iloc[0] == pytest.approx(ref["dispersion"], rel=1e-2)
    assert fp["lower"].iloc[0] < fp["estimate"].iloc[0] < fp["upper"].iloc[0]


def test_counts_and_ic(case):
    name, fit, ref = case
    assert fit.nobs == ref["nobs"]
    ng = {k.split(".")[0]: v for k, v in fit.ngroups.items()}
    for g, q in ref["ngroups"].items():
        assert ng[g] == q
    if name not in NOT_CONVERGED:
        assert fit.aic == pytest.approx(ref["aic"] + 2 * (ref["loglik"] - ref.get("loglik_full", ref["loglik"])), abs=2e-3)


def test_gamma_observed_laplace_matches_glmmtmb():
    """Gamma with a log link is not canonical: glmmTMB's Laplace uses the observed Hessian."""
    data, _ = ref_case("gamma_log")
    r = extra_ref("gamma_log_glmmtmb")
    fit = gk.glmer("y ~ x + (1 | g)", data, "Gamma", link="log", laplace="observed")
    assert fit.loglik == pytest.approx(r["loglik"], abs=1e-3)
    for k, v in r["fixef"].items():
        assert fit.fixef[k if k != "(Intercept)" else "(Intercept)"] == pytest.approx(v, rel=1e-3)
        assert fit.coef_table["std_error"][k] == pytest.approx(r["se"][k], rel=0.02)
    sd = fit.varcorr.set_index("group")["sd"]
    assert sd["g"] == pytest.approx(r["sd_g"], rel=1e-2)
    assert sd["Residual"] == pytest.approx(r["sigma"], rel=1e-2)


def test_gamma_expected_laplace_differs_only_in_logdet():
    """With Fisher weights (lme4's choice) the fit is close to, but not the same optimum as, glmmTMB's."""
    data, _ = ref_case("gamma_log")
    obs = gk.glmer("y ~ x + (1 | g)", data, "Gamma", link="log", laplace="observed")
    exp = gk.glmer("y ~ x + (1 | g)", data, "Gamma", link="log", laplace="expected")
    assert abs(obs.loglik - exp.loglik) < 0.05
    assert np.allclose(obs.fixef, exp.fixef, atol=0.02)


def test_olre_matches_glmmtmb():
    """lme4 stopped early on this model; glmmTMB's Laplace is the same (canonical link) and converged."""
    data, _ = ref_case("salamanders_poisson_olre")
    r = extra_ref("salamanders_olre_glmmtmb")
    fit = gk.glmer("count ~ mined + spp + (1 | site) + (1 | obs)", _sal(data), "poisson")
    assert fit.loglik >= r["loglik"] - 1e-3
    assert fit.loglik == pytest.approx(r["loglik"], abs=1e-3)
    est = {lme4_name(k): v for k, v in fit.fixef.items()}
    se = {lme4_name(k): v for k, v in fit.coef_table["std_error"].items()}
    for k, v in r["fixef"].items():
        assert est[k] == pytest.approx(v, rel=1e-3, abs=1e-4), k
        assert se[k] == pytest.approx(r["se"][k], rel=0.02), k
    sd = fit.varcorr.set_index("group")["sd"]
    assert sd["site"] == pytest.approx(r["sd_site"], rel=1e-2)
    assert sd["obs"] == pytest.approx(r["sd_obs"], rel=1e-2)
