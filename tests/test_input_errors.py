"""Bad input gets a clear ValueError naming the column, level or row (DESIGN section 5)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    n = 120
    return pd.DataFrame({
        "y": rng.binomial(1, 0.4, n),
        "count": rng.poisson(3, n),
        "x": rng.normal(size=n),
        "g": [f"g{i % 12}" for i in range(n)],
        "h": [f"h{i % 5}" for i in range(n)],
        "obs": np.arange(n),
        "n": rng.integers(5, 10, n),
    })


def test_unknown_fixed_column(df):
    with pytest.raises(ValueError, match="unknown column 'xx'"):
        gk.glmer("y ~ xx + (1 | g)", df)


def test_unknown_grouping_column(df):
    with pytest.raises(ValueError, match="unknown grouping column 'gg'"):
        gk.glmer("y ~ x + (1 | gg)", df)


def test_unknown_column_in_random_term(df):
    with pytest.raises(ValueError, match="unknown column 'zz'"):
        gk.glmer("y ~ x + (zz | g)", df)


def test_unknown_response(df):
    with pytest.raises(ValueError, match="unknown column 'yy'"):
        gk.glmer("log(yy) ~ x + (1 | g)", df, "poisson")


def test_binomial_response_outside_support(df):
    df.loc[7, "y"] = 2
    with pytest.raises(ValueError, match=r"row 7"):
        gk.glmer("y ~ x + (1 | g)", df)


def test_successes_greater_than_trials(df):
    df["k"] = df["n"] // 2
    df.loc[3, "k"] = df.loc[3, "n"] + 1
    with pytest.raises(ValueError, match=r"row 3"):
        gk.glmer("cbind(k, n - k) ~ x + (1 | g)", df)


def test_proportion_without_weights(df):
    df["p"] = df["y"] * 0.5
    with pytest.raises(ValueError, match="weights"):
        gk.glmer("p ~ x + (1 | g)", df.assign(p=np.where(df.y == 1, 0.5, 0.0)))


def test_poisson_negative_and_fractional_counts(df):
    bad = df.copy()
    bad.loc[5, "count"] = -1
    with pytest.raises(ValueError, match=r"non-negative.*row 5"):
        gk.glmer("count ~ x + (1 | g)", bad, "poisson")
    bad = df.assign(count=df["count"].astype(float))
    bad.loc[9, "count"] = 2.5
    with pytest.raises(ValueError, match=r"whole counts.*row 9"):
        gk.glmer("count ~ x + (1 | g)", bad, "poisson")


def test_gamma_needs_positive(df):
    with pytest.raises(ValueError, match="positive"):
        gk.glmer("count ~ x + (1 | g)", df, "Gamma")


def test_grouping_factor_with_one_level(df):
    with pytest.raises(ValueError, match=r"'one' has a single level"):
        gk.glmer("y ~ x + (1 | one)", df.assign(one="a"))


def test_as_many_levels_as_observations(df):
    with pytest.raises(ValueError, match="as many levels"):
        gk.lmer("x ~ 1 + (1 | obs)", df)
    with pytest.raises(ValueError, match="scalar observation-level"):
        gk.glmer("count ~ x + (1 + x | obs)", df, "poisson")
    fit = gk.glmer("count ~ x + (1 | g) + (1 | obs)", df, "poisson")  # an OLRE is allowed
    assert fit.ngroups["obs"] == len(df)


def test_missing_values_dropped_and_counted(df):
    df.loc[[2, 4, 6], "x"] = np.nan
    df.loc[8, "g"] = None
    with pytest.warns(gk.DroppedRowsWarning, match=r"dropped 4 of 120 rows.*'x': 3.*'g': 1"):
        fit = gk.glmer("y ~ x + (1 | g)", df)
    assert fit.nobs == 116 and fit.spec.n_dropped == 4


def test_missing_values_raise(df):
    df.loc[4, "x"] = np.nan
    with pytest.raises(gk.errors.InputError, match=r"missing or non-finite value in 'x' at row 4"):
        gk.glmer("y ~ x + (1 | g)", df, na_action="raise")


def test_unused_columns_with_missing_values_are_ignored(df):
    df["unused"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", gk.DroppedRowsWarning)
        gk.glmer("y ~ x + (1 | g)", df)


def _K(levels, M=None):
    M = np.eye(len(levels)) if M is None else M
    return pd.DataFrame(M, index=levels, columns=levels)


def test_relmat_not_symmetric(df):
    lev = [f"g{i}" for i in range(12)]
    M = np.eye(12)
    M[0, 1] = 0.5
    with pytest.raises(ValueError, match="not symmetric"):
        gk.glmer("y ~ x + (1 | g)", df, relmat={"g": _K(lev, M)})


def test_relmat_not_psd(df):
    lev = [f"g{i}" for i in range(12)]
    M = np.eye(12)
    M[0, 1] = M[1, 0] = 2.0
    with pytest.raises(ValueError, match="not positive semi-definite"):
        gk.glmer("y ~ x + (1 | g)", df, relmat={"g": _K(lev, M)})


def test_relmat_names_do_not_match(df):
    lev = [f"g{i}" for i in range(11)] + ["other"]
    with pytest.raises(ValueError, match=r"missing from its relationship matrix: \['g11'\]"):
        gk.glmer("y ~ x + (1 | g)", df, relmat={"g": _K(lev)})
    with pytest.raises(ValueError, match="not a grouping factor"):
        gk.glmer("y ~ x + (1 | g)", df, relmat={"species": _K(lev)})


def test_agq_needs_one_term(df):
    with pytest.raises(ValueError, match="single random-effects term on one grouping factor"):
        gk.glmer("y ~ x + (1 | g) + (1 | h)", df, nagq=5)
    with pytest.raises(gk.errors.InputError, match="nagq must be a whole number from 0 to 25; got 30"):
        gk.glmer("y ~ x + (1 | g)", df, nagq=30)


def test_unknown_family_and_link(df):
    with pytest.raises(ValueError, match="unknown family"):
        gk.glmer("y ~ x + (1 | g)", df, "binomal")
    with pytest.raises(ValueError, match="not available for the poisson family"):
        gk.glmer("count ~ x + (1 | g)", df, "poisson", link="logit")


def test_formula_without_random_effects(df):
    with pytest.raises(ValueError, match="no random-effects term"):
        gk.glmer("y ~ x", df)


def test_bad_offset_and_weights(df):
    # log(0) exposure: the row is dropped and counted like a missing value (or refused with na_action="raise")
    with pytest.warns(gk.DroppedRowsWarning, match=r"dropped 1 of 120 rows .*'the offset': 1"):
        fit = gk.glmer("count ~ x + offset(log(z)) + (1 | g)", df.assign(z=np.where(df.index == 3, 0, 1)), "poisson")
    assert fit.nobs == 119 and fit.spec.n_dropped == 1 and fit.spec.dropped_index == [3]
    with pytest.raises(gk.errors.InputError, match=r"non-finite value in 'the offset' at row 3"):
        gk.glmer("count ~ x + offset(log(z)) + (1 | g)", df.assign(z=np.where(df.index == 3, 0, 1)), "poisson",
                 na_action="raise")
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        gk.glmer("count ~ x + (1 | g)", df, "poisson", weights=np.where(df.index == 2, -1.0, 1.0))


def test_rank_deficient_fixed_effects_dropped_with_message(df):
    with pytest.warns(UserWarning, match="rank deficient so dropping 1"):
        fit = gk.glmer("y ~ x + x2 + (1 | g)", df.assign(x2=2 * df.x))
    assert "x2" not in fit.fixef.index
    assert any("rank deficient" in m for m in fit.messages)


def test_rows_are_named_by_the_data_index(df):
    """Messages name the row by the DataFrame's own label, also after rows with missing values are dropped."""
    df.index = df.index + 1000
    df.loc[1002, "x"] = np.nan
    df.loc[1007, "count"] = -3
    with pytest.warns(gk.DroppedRowsWarning):
        with pytest.raises(ValueError, match=r"row 1007 has -3"):
            gk.glmer("count ~ x + (1 | g)", df, "poisson")
