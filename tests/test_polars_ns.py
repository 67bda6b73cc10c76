"""polars input and natural splines ns() in formulas (issue 21).

ns() against R's splines::ns inside lme4 (tests/reference/inference/make_ns.R -> ns_refs.json): the basis,
the fit and predictions on new data coded on the fitted knots (R's makepredictcall), extrapolation included.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.formula.splines import natural_spline_basis

DIR = Path(__file__).parent / "reference"
NS = json.loads((DIR / "inference" / "ns_refs.json").read_text())


def _sleep():
    d = pd.read_csv(DIR / "shared" / "sleepstudy_slopes" / "data.csv")
    d["Subject"] = d["Subject"].astype(str)
    return d


def test_ns_basis_is_rs():
    # splines::ns(c(0, 1, 2, 3.5, 4, 5, 7, 8, 9.5, 10), df = 4), rows 2 and 7, and predict() at -1 and 12
    x = np.array([0, 1, 2, 3.5, 4, 5, 7, 8, 9.5, 10.0])
    B = natural_spline_basis(x, np.quantile(x, [0.25, 0.5, 0.75]), 0, 10)
    np.testing.assert_allclose(B[1], [0.012073194, -0.08943113, 0.3080406, -0.218609423], atol=1e-7)
    np.testing.assert_allclose(B[6], [0.272290473, 0.56401520, 0.1646022, -0.004023998], atol=1e-7)
    out = natural_spline_basis(np.array([-1.0, 12.0]), np.quantile(x, [0.25, 0.5, 0.75]), 0, 10)
    np.testing.assert_allclose(out, [[0, 0.09502393, -0.3273047, 0.23228073], [0, -0.96330275, 0.6513761, 1.31192661]],
                               atol=1e-7)


def test_ns_in_a_mixed_model_matches_lme4():
    fit = gk.lmer(NS["formula"], _sleep(), reml=False)
    assert fit.loglik == pytest.approx(NS["logLik"], abs=1e-6)
    np.testing.assert_allclose(fit.fixef, NS["fixef"], rtol=1e-6)
    pred = fit.predict(pd.DataFrame(NS["newdata"]), re_form="~0")
    np.testing.assert_allclose(pred, NS["predict"], rtol=1e-7)


def test_polars_frames_are_accepted_everywhere():
    pl = pytest.importorskip("polars")
    d = _sleep()
    a = gk.lmer("Reaction ~ Days + (Days | Subject)", d)
    b = gk.lmer("Reaction ~ Days + (Days | Subject)", pl.from_pandas(d))
    assert b.loglik == pytest.approx(a.loglik, abs=1e-10)
    new = d.head(5)
    np.testing.assert_allclose(b.predict(pl.from_pandas(new)), a.predict(new))
    # the variance parameters' part of the SE comes from differences at the optimum: equal to its rounding
    np.testing.assert_allclose(b.predict(pl.from_pandas(new), se_fit=True)["std_error"],
                               a.predict(new, se_fit=True)["std_error"], rtol=1e-3)
    c = gk.datasets.load("cbpp")
    g = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", pl.from_pandas(c).lazy(), "binomial")
    assert g.converged and g.update("~ . - period").nobs == g.nobs
    assert gk.simulate_residuals(g, nsim=20, seed=1) is not None
    with pytest.raises(gk.InputError, match="pandas or polars DataFrame"):
        gk.lmer("Reaction ~ Days + (1 | Subject)", d.to_dict())
