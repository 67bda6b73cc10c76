"""The package's structure: no import circle, the engine below the applications, one random-effects protocol."""

import pytest

import glmmkit as gk
from glmmkit.engine.blocked import Structure
from glmmkit.engine.resystem import RandomEffectsSystem, SystemFactor

from .import_graph import cycles, graph


def test_no_import_circle():
    assert cycles(graph()) == []


def test_the_engine_and_the_formula_layer_import_no_application():
    apps = ("glmmkit.phylo", "glmmkit.gwas", "glmmkit.meta", "glmmkit.singlecell", "glmmkit.plots",
            "glmmkit.demo", "glmmkit.cli", "glmmkit.report", "glmmkit.diagnostics")
    g = graph()
    for m, deps in g.items():
        if m.startswith(("glmmkit.engine", "glmmkit.formula", "glmmkit.families", "glmmkit.links")):
            bad = sorted(d for d in deps if d.startswith(apps))
            assert not bad, f"{m} imports {bad}"


def test_both_systems_follow_the_protocol():
    from glmmkit.engine.sparse_known import SparseKnownSystem

    for cls in (Structure, gk.phylo.TreeSystem, SparseKnownSystem):
        assert RandomEffectsSystem in cls.__mro__
        for name in ("raw", "factor", "zlam_u", "lam_zt", "penalty", "ranef_condvar", "_orig_terms"):
            assert callable(getattr(cls, name)), (cls, name)
        assert isinstance(cls.supports_joint, bool)
    assert SystemFactor in gk.phylo.sparse.TreeSystemFactor.__mro__


def test_the_plug_in_examples_of_docs_architecture_run():
    import dataclasses

    import numpy as np
    import pandas as pd
    from scipy import special

    from glmmkit.engine.covariance import CovStructure
    from glmmkit.families import FAMILIES, CountFamily

    class Geometric(CountFamily):  # NB2 with theta = 1
        name, default_link, links = "geometric", "log", ("log",)

        def variance(self, mu):
            return mu + mu * mu

        def variance_deriv(self, mu):
            return 1 + 2 * mu

        def unit_deviance(self, y, mu, wt):
            return 2 * wt * (special.xlogy(y, y / mu) - (y + 1) * np.log((y + 1) / (mu + 1)))

        def loglik_kernel(self, y, mu, wt):
            return wt * (y * np.log(mu) - (1 + y) * np.log1p(mu))

        def loglik_const(self, y, wt):
            return np.zeros_like(y)

        def simulate(self, mu, wt, rng):
            return rng.negative_binomial(1, 1 / (1 + mu)).astype(float)

    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(40), 10)
    x = rng.normal(size=400)
    mu = np.exp(0.3 + 0.4 * x + rng.normal(0, 0.5, 40)[g])
    d = pd.DataFrame({"y": rng.negative_binomial(1, 1 / (1 + mu)), "x": x, "g": g.astype(str),
                      "x2": rng.normal(size=400)})
    FAMILIES["geometric"] = Geometric
    try:
        geo = gk.glmer("y ~ x + (1 | g)", d, "geometric")
    finally:
        del FAMILIES["geometric"]
    nb = gk.glmer("y ~ x + (1 | g)", d, "nbinom2")
    # the geometric is NB2 at theta = 1, nested in NB2 (theta estimated near the simulated 1)
    assert geo.converged and nb.loglik >= geo.loglik - 1e-6 and nb.loglik - geo.loglik < 2.0
    assert np.allclose(geo.fixef, nb.fixef, atol=0.1)

    class CompoundSymmetry(CovStructure):  # cov = s^2 [(1 - r) I + r 11'], theta = (s, r)
        def __init__(self, k):
            self.k = k

        n_theta = property(lambda self: 2)

        def lower(self):
            return np.array([0.0, -1.0 / (self.k - 1) + 1e-8])

        def theta0(self):
            return np.array([1.0, 0.0])

        def template(self, theta):
            s, r = theta
            return s * np.linalg.cholesky((1 - r) * np.eye(self.k) + r * np.ones((self.k, self.k)))

    d["yb"] = (rng.uniform(size=400) < 1 / (1 + np.exp(-(0.2 * x + rng.normal(0, 0.8, 40)[g])))).astype(int)
    spec = gk.ModelSpec.from_formula("yb ~ x + (1 + x2 | g)", d, "binomial")
    spec.terms = [dataclasses.replace(spec.terms[0], cov=CompoundSymmetry(2))]
    fit = gk.Fit(spec, gk.optimize(spec.objective()))  # a custom class: the gradient by differences of T
    assert np.isfinite(fit.loglik) and fit.optsummary.stages[1].optimizer == "L-BFGS-B, analytic gradient"
    slow = gk.Fit(spec, gk.optimize(spec.objective(), control=gk.Control(gradient=False)))
    assert abs(fit.loglik - slow.loglik) < 1e-4 and fit.converged

    from .conftest import REF_DIR, ref_case

    data, _ = ref_case("phylo_poisson")

    tree = gk.phylo.read_tree(REF_DIR / "phylo_poisson" / "tree.nwk")
    spec = gk.ModelSpec.from_formula("y ~ x + (1 | species)", data, "poisson")
    term = spec.terms[0]
    spec.terms = [dataclasses.replace(term, cov=gk.phylo.TreeCovariance(tree, term.levels))]
    fit = gk.Fit(spec, gk.optimize(spec.objective()))
    ref = gk.phylo.fit_tree_glmm("y ~ x + (1 | species)", data, "poisson", tree)
    assert abs(fit.loglik - ref.loglik) < 1e-8


def test_sparse_known_covariance_system_is_the_dense_relmat_model():
    """A sparse relationship matrix (matrix, names) takes the engine's sparse system: the same Laplace
    model as the dense relmat path (logLik, estimates, modes, conditional SDs, simulation, refit)."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(5)
    blocks = []
    for _ in range(120):
        A = rng.normal(size=(4, 8))
        blocks.append(A @ A.T / 8)
    K = sp.block_diag(blocks, format="csr")
    q = K.shape[0]
    names = [f"s{i}" for i in range(q)]
    b = 0.9 * np.linalg.cholesky(K.toarray()) @ rng.normal(size=q)
    g = np.repeat(np.arange(q), 2)
    x = rng.normal(size=2 * q)
    d = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-(-0.2 + 0.5 * x + b[g])))), "x": x,
                      "iid": np.array(names)[g]})
    sparse_fit = gk.glmer("y ~ x + (1 | iid)", d, "binomial", relmat={"iid": (K, names)})
    dense_fit = gk.glmer("y ~ x + (1 | iid)", d, "binomial",
                         relmat={"iid": pd.DataFrame(K.toarray(), index=names, columns=names)})
    assert "sparse" in sparse_fit.optsummary.stages[0].return_code
    assert sparse_fit.converged and abs(sparse_fit.loglik - dense_fit.loglik) < 1e-6
    assert np.allclose(sparse_fit.fixef, dense_fit.fixef, atol=1e-4)
    lv = dense_fit.ranef["iid"].index
    assert np.allclose(sparse_fit.ranef["iid"].loc[lv], dense_fit.ranef["iid"], atol=1e-4)
    assert np.allclose(sparse_fit.ranef_condsd["iid"].loc[lv], dense_fit.ranef_condsd["iid"], atol=1e-4)
    assert sparse_fit.icc()["ICC"] == pytest.approx(dense_fit.icc()["ICC"], rel=1e-4)
    cov = sparse_fit.spec.terms[0].cov  # K in the term's level order
    draws = cov.draw(np.array([1.0]), np.random.default_rng(1), 4000)
    assert np.allclose(np.cov(draws[:8]), cov.K[:8, :8].toarray(), atol=0.1)
    y = sparse_fit.simulate(1, seed=3).iloc[:, 0].to_numpy()
    assert np.isfinite(sparse_fit.refit(y).loglik)
