"""The lme4 formula parser."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import glmmkit as gk
from glmmkit.formula.parse import Bar, expand_group, parse_formula


def test_bars_offsets_and_fixed():
    p = parse_formula("cbind(s, n - s) ~ period * x + (1 | herd) + (x || g) + offset(log(n)) + (1 | a/b)")
    assert p.response == "cbind(s, n - s)"
    assert p.fixed == "period * x"
    assert p.offsets == ["log(n)"]
    assert p.bars == [Bar("1", "herd"), Bar("x", "g", correlated=False), Bar("1", "a"), Bar("1", "b:a")]


def test_intercept_removal_and_interaction_groups():
    assert parse_formula("y ~ 0 + x + (1 | g)").fixed == "0 + x"
    assert parse_formula("y ~ x - 1 + (1 | g)").fixed == "x - 1"
    assert parse_formula("y ~ (1 | g)").fixed == "1"
    assert parse_formula("y ~ -1 + (1 | g)").fixed == "1 - 1"
    assert parse_formula("y ~ x + (1 | a:b)").bars == [Bar("1", "a:b")]
    assert parse_formula("y ~ I(x - z) + (1 + x | g)").fixed == "I(x - z)"


def test_nesting_expansion():
    assert expand_group("a") == ["a"]
    assert expand_group("a/b/c") == ["a", "b:a", "c:b:a"]


@pytest.mark.parametrize("bad", ["y x + (1|g)", "~ x + (1 | g)", "y ~ x + (1 | g", "y ~ x + ( | g)",
                                 "y ~ x - (1 | g)", "y ~ x + (1 | )"])
def test_malformed(bad):
    with pytest.raises(ValueError):
        parse_formula(bad)


names = st.sampled_from(["x", "z", "w1", "dose", "age"])
groups = st.sampled_from(["g", "h", "site", "a/b", "a:b"])


@given(st.lists(names, min_size=1, max_size=3, unique=True),
       st.lists(st.tuples(st.lists(names, max_size=2, unique=True), groups, st.booleans()), min_size=1, max_size=3))
def test_round_trip(fixed, bars):
    """Any combination of fixed terms and bars parses back into the same pieces."""
    text_bars = []
    expect = []
    for lhs, grp, corr in bars:
        lhs_text = " + ".join(["1"] + lhs)
        text_bars.append(f"({lhs_text} {'|' if corr else '||'} {grp})")
        for g in expand_group(grp):
            expect.append(Bar(lhs_text, g, correlated=corr))
    formula = "y ~ " + " + ".join(fixed) + " + " + " + ".join(text_bars)
    p = parse_formula(formula)
    assert p.fixed == " + ".join(fixed)
    assert p.bars == expect


def test_glmmtmb_covariance_syntax_us_and_diag():
    """us(x | g) is lme4's (x | g) and diag(x | g) its (x || g): the same fits; structures of later glmmTMB
    versions are refused by name (the others: tests/test_covstruct.py)."""
    import pandas as pd
    from pathlib import Path

    d = pd.read_csv(Path(__file__).parent / "reference" / "shared" / "sleepstudy_slopes" / "data.csv")
    a = gk.lmer("Reaction ~ Days + us(Days | Subject)", d, reml=False)
    b = gk.lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)
    c = gk.lmer("Reaction ~ Days + diag(Days | Subject)", d, reml=False)
    e = gk.lmer("Reaction ~ Days + (Days || Subject)", d, reml=False)
    assert a.loglik == b.loglik and c.loglik == e.loglik and c.loglik < b.loglik
    with pytest.raises(gk.FormulaError, match="homdiag\\(\\) in 'homdiag\\(0 \\+ Days \\| Subject\\)' is not available"):
        gk.lmer("Reaction ~ Days + homdiag(0 + Days | Subject)", d)
