"""The analytic gradient of the Laplace deviance (engine/gradient.py) against central differences, and
the fit it gives against the derivative-free path."""

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.engine.gradient import laplace_gradient, supports_gradient


def _data(seed=1, n=3000, q=100):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.8, q)[g] + rng.normal(0, 0.4, q)[g] * x
    return pd.DataFrame({"x": x, "g": g.astype(str), "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))),
                         "yp": rng.poisson(np.exp(0.5 * eta))})


def _assert_matches_central_differences(obj, theta, beta, gradient, psi=None):
    """The analytic gradient against central differences of the Laplace deviance (step 1e-5)."""
    _, res = obj.evaluate(theta, beta, psi)
    out = gradient(obj, theta, beta, res, psi=psi)
    gt, gb, gp = out[:3]
    h = 1e-5

    def fd(fun, x):
        return np.array([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in np.eye(len(x))])

    ft = fd(lambda t: obj.evaluate(t, beta, psi)[0], theta)
    fb = fd(lambda b: obj.evaluate(theta, b, psi)[0], beta)
    scale = max(1.0, np.max(np.abs(np.r_[ft, fb])))
    assert gt == pytest.approx(ft, abs=2e-5 * scale)
    assert gb == pytest.approx(fb, abs=2e-5 * scale)
    if psi is not None:
        fp = fd(lambda s: obj.evaluate(theta, beta, s)[0], np.asarray(psi, dtype=float))
        assert gp == pytest.approx(fp, abs=2e-5 * max(1.0, np.max(np.abs(fp))))
    else:
        assert len(gp) == 0


@pytest.mark.parametrize("family, y", [("binomial", "yb"), ("poisson", "yp")])
@pytest.mark.parametrize("re", ["(1 | g)", "(1 + x | g)", "(x || g)"])
def test_gradient_matches_central_differences(family, y, re):
    spec = gk.ModelSpec.from_formula(f"{y} ~ x + {re}", _data(), family)
    obj = spec.objective()
    assert supports_gradient(obj)
    theta = np.array([0.7, 0.1, 0.3])[: obj.n_theta] if obj.n_theta == 3 else np.array([0.7, 0.35])[: obj.n_theta]
    beta = np.array([-0.2, 0.4])
    _assert_matches_central_differences(obj, theta, beta, laplace_gradient)


# non-canonical links (the expected Laplace: the mode moves with the observed information, a second
# factor) and NB2 with its log theta, under both Laplace informations
FAMILIES = [("binomial", "probit", "yb", "expected", None), ("binomial", "cloglog", "yb", "expected", None),
            ("nbinom2", None, "yp", "expected", [0.4]),
            ("nbinom2", None, "yp", "observed", [0.4]), ("nbinom1", None, "yp", "observed", [-0.5])]


@pytest.mark.parametrize("family, link, y, laplace, psi", FAMILIES)
@pytest.mark.parametrize("re", ["(1 | g)", "(1 + x | g)"])
def test_gradient_for_other_links_and_nb2(family, link, y, laplace, psi, re):
    fam = gk.families.get_family(family, link) if link else family
    obj = gk.ModelSpec.from_formula(f"{y} ~ x + {re}", _data(), fam).objective(laplace=laplace)
    assert supports_gradient(obj)
    theta = np.array([0.6, 0.1, 0.3])[: obj.n_theta] if obj.n_theta == 3 else np.array([0.6])
    beta = np.array([-0.2, 0.4])
    _assert_matches_central_differences(obj, theta, beta, laplace_gradient, psi=psi)


def test_gradient_path_not_used_where_it_does_not_apply():
    d = _data()
    d["h"] = (np.arange(len(d)) % 7).astype(str)
    d["pos"] = d["yp"] + 0.5
    assert not supports_gradient(gk.ModelSpec.from_formula("yb ~ x + (1 | g) + (1 | h)", d, "binomial").objective())
    # a family without the gradient's terms for its parameters (Gamma's log phi)
    assert not supports_gradient(gk.ModelSpec.from_formula("pos ~ x + (1 | g)", d, gk.families.get_family(
        "gamma", "log")).objective())
    spec = gk.ModelSpec.from_formula("yb ~ x + (1 | g)", d, "binomial", )
    assert not supports_gradient(spec.objective(nagq=5))


def test_gradient_and_derivative_free_paths_agree():
    d = _data(2)
    fit = gk.glmer("yb ~ x + (1 + x | g)", d, "binomial")
    ref = gk.glmer("yb ~ x + (1 + x | g)", d, "binomial", control=gk.Control(gradient=False))
    assert not ref.optsummary.control.gradient and fit.optsummary.control.gradient
    assert ref.optsummary.stages[1].optimizer == "bobyqa"
    assert fit.optsummary.stages[1].optimizer.startswith("L-BFGS-B")
    assert fit.loglik >= ref.loglik - 1e-6
    assert fit.fixef.to_numpy() == pytest.approx(ref.fixef.to_numpy(), rel=1e-3, abs=1e-4)
    assert fit.coef_table["std_error"].to_numpy() == pytest.approx(ref.coef_table["std_error"].to_numpy(), rel=1e-3)
    assert fit.theta == pytest.approx(ref.theta, rel=1e-3, abs=1e-4)


def _crossed(seed=1, n=4000, q=120, q2=30):
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q, n), rng.integers(0, q2, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.8, q)[g] + rng.normal(0, 0.4, q)[g] * x + rng.normal(0, 0.5, q2)[h]
    return pd.DataFrame({"x": x, "g": g.astype(str), "h": h.astype(str), "c": (g % 10).astype(str),
                         "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))), "yp": rng.poisson(np.exp(0.5 * eta))})


@pytest.mark.parametrize("family, y", [("binomial", "yb"), ("poisson", "yp")])
@pytest.mark.parametrize("re", ["(1 | g) + (1 | h)", "(1 + x | g) + (1 | h)", "(1 | h) + (1 + x | g)",
                                "(1 | g) + (1 + x | h)", "(1 | g) + (1 | h) + (1 | c)", "(1 | c/g)"])
def test_general_gradient_matches_central_differences(family, y, re, cross_storage):
    from glmmkit.engine.gradient import laplace_gradient_general, supports_general_gradient

    obj = gk.ModelSpec.from_formula(f"{y} ~ x + {re}", _crossed(), family).objective()
    assert supports_general_gradient(obj)
    st = obj.data.structure
    assert st.dense_cross == (cross_storage == "dense") or st.tail_diagonal
    theta = np.linspace(0.6, 0.3, obj.n_theta)
    beta = np.array([-0.2, 0.4])
    _assert_matches_central_differences(obj, theta, beta, laplace_gradient_general)


@pytest.mark.parametrize("family, link, y, laplace, psi", FAMILIES)
@pytest.mark.parametrize("re", ["(1 | g) + (1 | h)", "(1 | c/g)"])
def test_general_gradient_for_other_links_and_nb2(family, link, y, laplace, psi, re, cross_storage):
    from glmmkit.engine.gradient import laplace_gradient_general, supports_general_gradient

    fam = gk.families.get_family(family, link) if link else family
    obj = gk.ModelSpec.from_formula(f"{y} ~ x + {re}", _crossed(), fam).objective(laplace=laplace)
    assert supports_general_gradient(obj)
    st = obj.data.structure
    assert st.dense_cross == (cross_storage == "dense") or st.tail_diagonal
    theta = np.linspace(0.6, 0.3, obj.n_theta)
    beta = np.array([-0.2, 0.4])
    _assert_matches_central_differences(obj, theta, beta, laplace_gradient_general, psi=psi)


def test_crossed_fit_by_gradient_matches_derivative_free():
    d = _crossed(3)
    fit = gk.glmer("yb ~ x + (1 + x | g) + (1 | h)", d, "binomial")
    assert fit.optsummary.stages[1].optimizer.startswith("L-BFGS-B")
    ref = gk.glmer("yb ~ x + (1 + x | g) + (1 | h)", d, "binomial", control={"gradient": False})
    assert fit.loglik >= ref.loglik - 1e-6
    assert fit.fixef.to_numpy() == pytest.approx(ref.fixef.to_numpy(), rel=1e-3, abs=1e-4)
    assert fit.coef_table["std_error"].to_numpy() == pytest.approx(ref.coef_table["std_error"].to_numpy(), rel=2e-3)
    assert fit.varcorr["sd"].dropna().to_numpy() == pytest.approx(ref.varcorr["sd"].dropna().to_numpy(), rel=2e-3)


def test_quadratic_stop_in_pirls_changes_nothing():
    """PIRLS stops after a full Newton step that moved u by < 1e-5 (the next would move it by ~1e-10);
    the fit is the same as with the strict stop."""
    d = _crossed(5)
    fits = {}
    for q in (1e-5, 0.0):
        fits[q] = [gk.glmer(f, d, fam, control=gk.Control(quad_stop=q)) for f, fam in (("yb ~ x + (1 + x | g)", "binomial"),
                                                      ("yp ~ x + (1 | g) + (1 | h)", "poisson"))]
    for a, b in zip(fits[1e-5], fits[0.0]):
        assert a.loglik == pytest.approx(b.loglik, abs=1e-7)
        assert a.fixef.to_numpy() == pytest.approx(b.fixef.to_numpy(), rel=1e-5, abs=1e-7)
        assert a.theta == pytest.approx(b.theta, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("family, link, y", [("binomial", None, "yb"), ("poisson", None, "yp"),
                                             ("binomial", "probit", "yb")])
@pytest.mark.parametrize("nagq", [3, 9])
def test_agq_gradient_matches_central_differences(family, link, y, nagq):
    from glmmkit.engine.gradient import agq_gradient, supports_agq_gradient

    fam = gk.families.get_family(family, link) if link else family
    d = _data(seed=6, n=800, q=200)  # few rows a level: where the quadrature differs from Laplace
    obj = gk.ModelSpec.from_formula(f"{y} ~ x + (1 | g)", d, fam).objective(nagq=nagq)
    assert supports_agq_gradient(obj)
    _assert_matches_central_differences(obj, np.array([0.8]), np.array([-0.2, 0.4]),
                                        lambda o, t, b, r, psi=None: agq_gradient(o, t, b, r))


@pytest.mark.parametrize("family, psi_base", [("poisson", []), ("nbinom2", [0.6])])
@pytest.mark.parametrize("zi", ["~1", "~x"])
@pytest.mark.parametrize("re", ["(1 | g)", "(1 | g) + (1 | h)"])
def test_gradient_for_zero_inflation(family, psi_base, zi, re):
    """Zero-inflated Poisson and NB2 under the observed Laplace (their default): theta, beta, the base's
    parameter and every zero-inflation coefficient against central differences."""
    from glmmkit.engine.gradient import (laplace_gradient, laplace_gradient_general, supports_general_gradient,
                                         supports_gradient)

    d = _crossed(7)
    rng = np.random.default_rng(8)
    d["yz"] = np.where(rng.uniform(size=len(d)) < 0.25, 0, d["yp"])
    obj = gk.ModelSpec.from_formula(f"yz ~ x + {re}", d, family, ziformula=zi).objective(laplace="observed")
    single = "+" not in re
    assert (supports_gradient if single else supports_general_gradient)(obj)
    psi = np.array(psi_base + [-1.0] + ([0.3] if zi == "~x" else []))
    theta = np.array([0.6] if single else [0.6, 0.4])
    _assert_matches_central_differences(obj, theta, np.array([0.3, 0.4]),
                                        laplace_gradient if single else laplace_gradient_general, psi=psi)


@pytest.mark.parametrize("family, y, psi", [("binomial", "yb", None), ("poisson", "yp", None),
                                            ("nbinom2", "yp", [0.4])])
@pytest.mark.parametrize("re", ["(1 | h)", "(1 | g) + (1 | h)", "(1 + x | g) + (1 | h)"])
def test_general_gradient_with_a_known_matrix_term(family, y, psi, re, cross_storage):
    """A relmat term (h, Lambda = theta L): in b-space it touches one level a row; against central
    differences, alone and beside other terms, on each storage of the cross block."""
    from glmmkit.engine.gradient import laplace_gradient_general, supports_general_gradient

    d = _crossed(9)
    levels = sorted(d["h"].unique())
    rng = np.random.default_rng(10)
    A = rng.normal(size=(len(levels), len(levels)))
    K = pd.DataFrame(A @ A.T / len(levels) + 0.2 * np.eye(len(levels)), index=levels, columns=levels)
    obj = gk.ModelSpec.from_formula(f"{y} ~ x + {re}", d, family, relmat={"h": K}).objective()
    assert supports_general_gradient(obj)
    theta = np.linspace(0.7, 0.3, obj.n_theta)
    _assert_matches_central_differences(obj, theta, np.array([-0.2, 0.4]), laplace_gradient_general, psi=psi)
