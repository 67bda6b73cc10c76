"""Further structures against lme4 / glmmTMB values computed with R (tests/reference/make_extra_refs.R).

Same tolerances as the shared cases: logLik 1e-3 absolute, fixed effects 1e-3 relative,
SDs 1e-2 relative, standard errors 2%; conditional modes 1e-3 and their SDs 2%.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit import lme4_name

from .conftest import extra_ref, ref_case

HERE = Path(__file__).parent


def _check(fit, r, se_rel=0.02):
    assert fit.loglik == pytest.approx(r["loglik"], abs=1e-3)
    est = {lme4_name(k): v for k, v in fit.fixef.items()}
    se = {lme4_name(k): v for k, v in fit.coef_table["std_error"].items()}
    for k, v in r["fixef"].items():
        assert est[k] == pytest.approx(v["estimate"], rel=1e-3, abs=1e-4), k
        assert se[k] == pytest.approx(v["std_error"], rel=se_rel), k
    vc = fit.varcorr
    for key, val in r["sd"].items():
        grp, t1, t2 = key.split("|")
        if grp == "Residual":
            continue
        if t2:
            got = vc.loc[(vc.group == grp) & (vc.term1 == t1) & (vc.term2 == t2), "corr"].iloc[0]
            assert got == pytest.approx(val, abs=1e-2), key
        else:
            got = vc.loc[(vc.group == grp) & (vc.term1 == t1) & vc.term2.isna(), "sd"].iloc[0]
            assert got == pytest.approx(val, rel=1e-2), key


@pytest.mark.parametrize("link", ["probit", "cloglog"])
def test_binomial_links(link):
    data, _ = ref_case("cbpp_binomial")
    data["period"] = data["period"].astype(str)
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, "binomial", link=link)
    _check(fit, extra_ref(f"cbpp_{link}"))


def test_nested_poisson_with_offset():
    fit = gk.glmer("sessions ~ training + offset(log(opportunities)) + (1 | clinic/clinician)",
                   gk.datasets.load("clinics"), "poisson")
    _check(fit, extra_ref("clinics_nested"))


def test_crossed_binomial():
    d = pd.read_csv(HERE / "reference" / "crossed_small.csv")
    _check(gk.glmer("y ~ x + (1 | g) + (1 | h)", d, "binomial"), extra_ref("crossed_small"))


def test_crossed_binomial_with_correlated_slope():
    d = pd.read_csv(HERE / "reference" / "crossed_small.csv")
    _check(gk.glmer("y ~ x + (1 + x | g) + (1 | h)", d, "binomial"), extra_ref("crossed_slope_small"))


def test_ranef_and_conditional_sd_glmm():
    data, _ = ref_case("cbpp_binomial")
    data["period"] = data["period"].astype(str)
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, "binomial")
    r = extra_ref("cbpp_ranef")
    re, sd = fit.ranef["herd"], fit.ranef_condsd["herd"]
    assert list(re.index) == r["levels"]
    assert np.allclose(re["(Intercept)"], r["estimate"], atol=2e-3)
    assert np.allclose(sd["(Intercept)"], r["condsd"], rtol=0.02)


def test_ranef_and_conditional_sd_lmm():
    data, _ = ref_case("sleepstudy_slopes")
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", data)
    r = extra_ref("sleepstudy_ranef")
    re, sd = fit.ranef["Subject"], fit.ranef_condsd["Subject"]
    assert list(re.index) == r["levels"]
    assert np.allclose(re["(Intercept)"], r["intercept"], rtol=1e-3, atol=1e-2)
    assert np.allclose(re["Days"], r["days"], rtol=1e-3, atol=1e-3)
    assert np.allclose(sd["(Intercept)"], r["condsd_intercept"], rtol=0.02)
    assert np.allclose(sd["Days"], r["condsd_days"], rtol=0.02)
