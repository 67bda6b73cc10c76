"""Prediction standard errors against glmmTMB's predict(se.fit = TRUE), partial re_form (issue 21).

References: tests/reference/inference/make_predict.R -> predict_refs.json (sleepstudy LMM by ML, cbpp binomial,
Salamanders Poisson; conditional and population level, link and response scales).  Tolerance 1%.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

DIR = Path(__file__).parent / "reference"
REFS = json.loads((DIR / "inference" / "predict_refs.json").read_text())
FACTORS = ("Subject", "period", "herd", "spp", "mined", "site")


def _strings(d: pd.DataFrame) -> pd.DataFrame:
    for c in FACTORS:
        if c in d:
            d[c] = d[c].astype(str)
    return d


def _fit(name):
    r = REFS[name]
    d = _strings(pd.read_csv(DIR / "shared" / r["data"] / "data.csv"))
    fit = gk.lmer(r["formula"], d, reml=False) if r["family"] == "gaussian" else gk.glmer(r["formula"], d, r["family"])
    return fit, r, _strings(pd.DataFrame(r["newdata"]))


@pytest.mark.parametrize("name", list(REFS))
def test_prediction_standard_errors_match_glmmtmb(name):
    fit, r, new = _fit(name)
    assert fit.loglik == pytest.approx(r["logLik"], abs=1e-4)
    for key, ref in r["predict"].items():
        level, type_ = key.split("_")
        p = fit.predict(new, re_form=None if level == "conditional" else "~0", type=type_, se_fit=True)
        assert list(p.columns) == ["estimate", "std_error", "lower", "upper"]
        np.testing.assert_allclose(p["estimate"], ref["fit"], rtol=1e-4)
        np.testing.assert_allclose(p["std_error"], ref["se_fit"], rtol=0.01)
        assert np.all(p["lower"] < p["estimate"]) and np.all(p["estimate"] < p["upper"])


def test_partial_re_form_keeps_the_named_terms():
    d = pd.read_csv(DIR / "inference" / "penicillin.csv").astype({"plate": str, "sample": str})
    fit = gk.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    full = fit.predict(d)
    plate_only = fit.predict(d, re_form="~ (1 | plate)")
    b_sample = fit.ranef["sample"]["(Intercept)"]
    np.testing.assert_allclose(full - plate_only, b_sample.loc[d["sample"]].to_numpy(), atol=1e-8)
    se_full = fit.predict(d, se_fit=True)["std_error"]
    se_plate = fit.predict(d, re_form="~(1|plate)", se_fit=True)["std_error"]
    se_pop = fit.predict(d, re_form="~0", se_fit=True)["std_error"]
    assert np.all(np.isfinite(se_plate)) and not np.allclose(se_plate, se_full) and not np.allclose(se_plate, se_pop)
    with pytest.raises(gk.InputError, match="not a term of the model"):
        fit.predict(d, re_form="~ (1 | batch)")
    with pytest.raises(gk.InputError, match="not a term of the model"):
        fit.predict(d, re_form="~ (sample | plate)")


def test_se_fit_on_the_fitted_rows_and_new_levels():
    fit, _, new = _fit("sleepstudy")
    a = fit.predict(se_fit=True)
    b = fit.predict(fit.spec.data, se_fit=True)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy())
    np.testing.assert_allclose(a["estimate"], fit.fitted, rtol=1e-10)
    unseen = new.assign(Subject="999")
    with pytest.raises(gk.InputError, match="new level"):
        fit.predict(unseen, se_fit=True)
    p = fit.predict(unseen, se_fit=True, allow_new_levels=True)
    pop = fit.predict(unseen, re_form="~0", se_fit=True)
    np.testing.assert_allclose(p["estimate"], pop["estimate"])
    assert np.all(p["std_error"] > 3 * pop["std_error"])  # a new subject carries the between-subject variance


def test_effects_plot_draws_the_band(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit, _, _ = _fit("cbpp")
    fig, ax = plt.subplots()
    out = gk.plots.effects(fit, "period", ax=ax, path=tmp_path / "e.png")
    assert out is fig and (tmp_path / "e.png").stat().st_size > 1000
    plt.close("all")
