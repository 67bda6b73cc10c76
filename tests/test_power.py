"""Power by simulation against the noncentral t of a balanced design (issue 21).

A parallel-group design with random subject intercepts: m subjects per arm, k observations each.  The
treatment's t test has 2m - 2 df and var(delta-hat) = 2 (sigma_b^2 + sigma^2 / k) / m exactly, so the power at
the fitted variance parameters is that of a noncentral t.  The simulated power must agree within 3.5 Monte
Carlo standard errors.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmkit as gk


def _design(m=10, k=4, seed=1):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(2 * m), k)
    trt = (subj >= m).astype(float)
    y = 0.5 * trt + rng.normal(0, 1.0, 2 * m)[subj] + rng.normal(0, 1.0, len(subj))
    return pd.DataFrame({"y": y, "trt": trt, "subj": subj.astype(str)})


def _analytic(fit, delta, m, k, alpha=0.05):
    sig = fit.sigma
    sb = fit.theta[0] * sig
    se = np.sqrt(2 * (sb**2 + sig**2 / k) / m)
    df = 2 * m - 2
    crit = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(crit, df, delta / se) + stats.nct.cdf(-crit, df, delta / se)


def test_power_matches_the_noncentral_t():
    fit = gk.lmer("y ~ trt + (1 | subj)", _design())
    pw = gk.power(fit, "trt", value=0.8, nsim=250, seed=11)
    row = pw.table.iloc[0]
    truth = _analytic(fit, 0.8, 10, 4)
    assert row["nsim"] == 250 and row["failed"] == 0
    assert abs(row["power"] - truth) < 3.5 * np.sqrt(truth * (1 - truth) / 250)
    assert row["lower"] < row["power"] < row["upper"]
    null = gk.power(fit, "trt", value=0.0, nsim=120, seed=12).table.iloc[0]  # the size of the test
    assert abs(null["power"] - 0.05) < 3.5 * np.sqrt(0.05 * 0.95 / 120)


@pytest.mark.slow
def test_power_curve_along_groups_is_seeded_and_parallel(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    fit = gk.lmer("y ~ trt + (1 | subj)", _design())
    a = gk.power(fit, "trt", value=0.8, nsim=60, along="n_groups", values=[8, 20, 40], seed=5)
    b = gk.power(fit, "trt", value=0.8, nsim=60, along="n_groups", values=[8, 20, 40], seed=5, workers=2)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert list(a.table["n_groups"]) == [8, 20, 40]
    assert a.table["power"].is_monotonic_increasing
    big = _analytic(fit, 0.8, 20, 4)
    assert abs(a.table["power"].iloc[2] - big) < 4 * np.sqrt(big * (1 - big) / 60) + 1e-9
    a.plot(path=tmp_path / "power.png")
    assert (tmp_path / "power.png").stat().st_size > 1000


def test_power_for_a_glmm_and_a_factor_term():
    cbpp = gk.datasets.load("cbpp")
    g = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, "binomial")
    pw = gk.power(g, "period", nsim=20, seed=2)
    assert pw.table["nsim"].iloc[0] + pw.table["failed"].iloc[0] == 20
    assert pw.table["power"].iloc[0] > 0.5
    with pytest.raises(gk.InputError, match="neither a fixed-effect coefficient"):
        gk.power(g, "dose")
    with pytest.raises(gk.InputError, match="value must give 3"):
        gk.power(g, "period", value=1.0)
    with pytest.raises(gk.InputError, match="needs values"):
        gk.power(g, "period[T.2]", along="n_groups")
