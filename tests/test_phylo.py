"""Phylogenetic trees, their covariance against ape, phylogenetic signal, and the naive comparison."""

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

from .conftest import REF_DIR, ref_case

pytest.importorskip("newick")


@pytest.fixture(scope="module")
def ref_tree():
    if not (REF_DIR / "phylo_poisson" / "tree.nwk").exists():
        pytest.fail(f"phylo_poisson reference case not found in {REF_DIR}: the repository must carry it")
    return gk.phylo.read_tree(REF_DIR / "phylo_poisson" / "tree.nwk")


@pytest.mark.parametrize("corr,file", [(False, "vcv.csv"), (True, "vcv_corr.csv")])
def test_vcv_equals_ape(ref_tree, corr, file):
    ape = pd.read_csv(REF_DIR / "phylo_poisson" / file, index_col=0)
    ours = gk.phylo.vcv(ref_tree, corr=corr).loc[ape.index, ape.columns]
    assert np.max(np.abs(ours.to_numpy() - ape.to_numpy())) < 1e-10


def test_phylo_poisson_with_our_vcv(ref_tree):
    data, ref = ref_case("phylo_poisson")
    fit = gk.glmer("y ~ x + (1 | species)", data, "poisson", relmat={"species": gk.phylo.vcv(ref_tree, corr=True)})
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-3)
    for k, v in ref["fixef"].items():
        assert fit.fixef[k] == pytest.approx(v["estimate"], rel=1e-3)
    assert fit.varcorr["sd"].iloc[0] == pytest.approx(ref["varcorr"][0]["sd_or_corr"], rel=1e-2)


def test_polytomy_and_hand_computed_vcv():
    t = gk.phylo.read_tree("((a:1,b:2):0.5,(c:1,d:1,e:0.3):1);")
    C = gk.phylo.vcv(t)
    assert list(C.index) == ["a", "b", "c", "d", "e"]
    expect = np.array([[1.5, 0.5, 0, 0, 0], [0.5, 2.5, 0, 0, 0], [0, 0, 2, 1, 1], [0, 0, 1, 2, 1], [0, 0, 1, 1, 1.3]])
    assert np.allclose(C.to_numpy(), expect)
    assert not t.is_ultrametric()
    with pytest.warns(UserWarning, match="not ultrametric"):
        gk.phylo.vcv(t, corr=True)


def test_tree_errors():
    with pytest.raises(ValueError, match="no branch length"):
        gk.phylo.read_tree("((a,b),(c,d));")
    with pytest.raises(ValueError, match="'a' occurs more than once"):
        gk.phylo.read_tree("((a:1,b:1):1,(a:1,d:1):1);")
    with pytest.raises(ValueError, match="not a Newick tree"):
        gk.phylo.read_tree("no tree here")
    t = gk.phylo.read_tree("((a:1,b:1):1,(c:1,d:1):1);")
    with pytest.raises(ValueError, match=r"missing from the tree: \['x'\]"):
        gk.phylo.relmat_for(t, ["a", "b", "x"], group="species")
    with pytest.warns(UserWarning, match="2 tips of the tree have no data"):
        K = gk.phylo.relmat_for(t, ["a", "b"], group="species")
    assert K.shape == (4, 4)


def test_pagel_lambda():
    t = gk.phylo.read_tree("((a:1,b:1):1,(c:1,d:1):1);")
    C = gk.phylo.vcv(t)
    L = gk.phylo.pagel_lambda(C, 0.25)
    assert np.allclose(np.diag(L), np.diag(C)) and L.loc["a", "b"] == pytest.approx(0.25)
    assert np.allclose(gk.phylo.pagel_lambda(C, 0.0), np.diag(np.diag(C)))
    with pytest.raises(ValueError):
        gk.phylo.pagel_lambda(C, 1.5)


@pytest.fixture(scope="module")
def isolates():
    d = gk.datasets.load("isolates")
    K = gk.phylo.vcv(gk.phylo.read_tree(gk.datasets.tree_text("isolates")), corr=True)
    return d, K


def test_compare_naive_shows_confounding(isolates):
    d, K = isolates
    c = gk.phylo.compare_naive("disease ~ gene + (1 | isolate)", d, "binomial", relmat={"isolate": K}, terms=["gene"])
    r = c.loc["gene"]
    assert r.naive_p < 1e-4 and r.phylo_p > 0.05 and r.se_ratio > 1.3


def test_heritability(isolates):
    d, K = isolates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("disease ~ gene + (1 | isolate)", d, "binomial", relmat={"isolate": K})
    h = gk.phylo.heritability(fit, "isolate")
    s2 = fit.varcorr["variance"].iloc[0]
    assert h.H2 == pytest.approx(s2 / (s2 + np.pi ** 2 / 3))
    assert h.H2 == pytest.approx(fit.icc()["ICC"])  # one latent-scale variance: H^2 is the term's ICC
    hb = gk.phylo.heritability(fit, "isolate", nsim=8, seed=1)
    assert 0 <= hb.lower <= hb.upper <= 1 and hb["nsim"] == 8
    assert isinstance(hb.summary(), str) and hb.to_dict()["H2"] == pytest.approx(h.H2)
    with pytest.raises(ValueError, match="not a grouping factor"):
        gk.phylo.heritability(fit, "species")


def test_relmat_with_a_second_non_phylogenetic_term(ref_tree):
    """A phylogenetic and a non-phylogenetic species effect side by side (as phyr's pglmm)."""
    data, _ = ref_case("phylo_poisson")
    d = pd.concat([data.assign(rep=0), data.assign(rep=1, y=np.random.default_rng(1).poisson(1.0, len(data)))])
    d["sp2"] = d["species"]
    K = gk.phylo.vcv(ref_tree, corr=True)
    fit = gk.glmer("y ~ x + (1 | species) + (1 | sp2)", d, "poisson", relmat={"species": K})
    assert set(fit.varcorr.group) == {"species", "sp2"} and np.isfinite(fit.loglik)
    assert any(t.is_known for t in fit.spec.terms) and not all(t.is_known for t in fit.spec.terms)


def test_lmer_with_identity_relmat_equals_plain_random_intercept():
    d = gk.datasets.load("sleepstudy")
    levels = sorted(d["Subject"].astype(str).unique())
    K = pd.DataFrame(np.eye(len(levels)), index=levels, columns=levels)
    a = gk.lmer("Reaction ~ Days + (1 | Subject)", d, relmat={"Subject": K})
    b = gk.lmer("Reaction ~ Days + (1 | Subject)", d)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)
    assert np.allclose(a.fixef, b.fixef) and a.varcorr["sd"].iloc[0] == pytest.approx(b.varcorr["sd"].iloc[0], rel=1e-5)


def test_tree_algebra_against_dense():
    from glmmkit.datasets.simulate import coalescent_newick
    from glmmkit.phylo.sparse import TreeAlgebra

    rng = np.random.default_rng(0)
    for text in ["((a:1,b:2):0.5,(c:1,d:1,e:0.3):1);", coalescent_newick(60, rng)]:
        t = gk.phylo.read_tree(text)
        alg = TreeAlgebra(t)
        m = alg.m
        Q = np.zeros((m, m))
        for v in range(1, m):
            e = np.zeros(m)
            e[v] = 1
            if t.parent[v] > 0:
                e[t.parent[v]] = -1
            Q += np.outer(e, e) / t.length[v]
        Q = Q[1:, 1:]
        w = np.zeros(m)
        w[alg.tip_nodes] = rng.uniform(0.5, 2, alg.tip_nodes.size)
        P = np.diag(w[1:]) + 1.7 * Q
        F = alg.factor(w, 1.7)
        assert F.logdet() == pytest.approx(np.linalg.slogdet(P)[1])
        assert alg.logdet_q == pytest.approx(np.linalg.slogdet(Q)[1])
        r = rng.normal(size=m)
        assert np.allclose(F.solve(r)[1:], np.linalg.solve(P, r[1:]))
        assert np.allclose(F.inverse_diagonal()[1:], np.diag(np.linalg.inv(P)))
        tips = alg.tip_nodes - 1
        assert np.allclose(np.linalg.inv(Q)[np.ix_(tips, tips)], gk.phylo.vcv(t).to_numpy())


def test_sparse_tree_path_equals_dense_path(ref_tree):
    data, ref = ref_case("phylo_poisson")
    sparse = gk.phylo.fit_tree_glmm("y ~ x + (1 | species)", data, "poisson", ref_tree)
    dense = gk.glmer("y ~ x + (1 | species)", data, "poisson", relmat={"species": gk.phylo.vcv(ref_tree, corr=True)})
    assert isinstance(sparse, gk.Fit) and sparse.converged
    assert "tree" in sparse.optsummary.stages[0].return_code
    assert sparse.loglik == pytest.approx(dense.loglik, abs=1e-6)
    assert sparse.loglik == pytest.approx(ref["loglik"], abs=1e-3)
    assert np.allclose(sparse.fixef, dense.fixef, rtol=1e-4)
    assert np.allclose(sparse.coef_table["std_error"], dense.coef_table["std_error"], rtol=1e-3)
    assert np.allclose(sparse.varcorr["sd"], dense.varcorr["sd"], rtol=1e-3)
    lv = dense.ranef["species"].index
    assert np.allclose(sparse.ranef["species"].loc[lv], dense.ranef["species"], atol=1e-4)
    assert np.allclose(sparse.ranef_condsd["species"].loc[lv], dense.ranef_condsd["species"], atol=1e-4)
    # the same fit as every other: prediction, simulation, refit, intervals, R^2 / ICC
    assert np.allclose(sparse.predict(data.head(5)), dense.predict(data.head(5)), rtol=1e-4)
    y = sparse.simulate(1, seed=1).iloc[:, 0].to_numpy()
    assert sparse.refit(y).optsummary.stages[0].return_code.startswith("skipped: the tree")
    assert sparse.icc()["ICC"] == pytest.approx(dense.icc()["ICC"], rel=1e-3)
    # the profile (the deviance with x held, minimised over the rest) is the same on both systems
    from glmmkit.inference.profile import profile_deviance

    j = 1 + list(sparse.fixef.index).index("x")  # after the SD
    x1 = float(sparse.fixef["x"] + 2 * sparse.coef_table.loc["x", "std_error"])
    assert profile_deviance(sparse, j, x1) == pytest.approx(profile_deviance(dense, j, x1), abs=1e-4)
    with pytest.raises(ValueError, match="several terms have levels among the tips"):
        gk.phylo.fit_tree_glmm("y ~ x + (1 | species) + (1 | sp2)", data.assign(sp2=data["species"]), "poisson",
                               ref_tree)
    with pytest.raises(ValueError, match="no random intercept"):
        gk.phylo.fit_tree_glmm("y ~ x + (1 | species)", data, "poisson", ref_tree, group="genus")


@pytest.mark.parametrize("others", ["(1 | site)", "(1 + z | site)", "(1 | site) + (1 | plot)"])
def test_tree_path_with_other_terms_equals_dense_path(others):
    """The tree system bordered by other terms (a dense Schur complement) is the dense path's model."""
    from glmmkit.datasets.simulate import coalescent_newick

    rng = np.random.default_rng(3)
    tree = gk.phylo.read_tree(coalescent_newick(120, rng))
    a = gk.phylo.TreeCovariance(tree, tree.tip_labels).draw(np.array([0.8]), rng, 1)[:, 0]
    n = 500
    sp_, site, plot = rng.integers(0, 120, n), rng.integers(0, 12, n), rng.integers(0, 7, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    eta = 0.3 + 0.4 * x + a[sp_] + rng.normal(0, 0.5, 12)[site] + 0.3 * z * rng.normal(size=12)[site]
    d = pd.DataFrame({"species": np.array(tree.tip_labels)[sp_], "site": site.astype(str), "plot": plot.astype(str),
                      "x": x, "z": z, "y": rng.poisson(np.exp(eta))})
    f = f"y ~ x + (1 | species) + {others}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tp = gk.phylo.fit_tree_glmm(f, d, "poisson", tree)
        dense = gk.glmer(f, d, "poisson", relmat={"species": gk.phylo.vcv(tree, corr=True)})
    assert tp.loglik >= dense.loglik - 1e-6 and tp.loglik == pytest.approx(dense.loglik, abs=1e-5)
    assert np.allclose(tp.fixef, dense.fixef, atol=1e-3)
    assert np.allclose(tp.varcorr["sd"].fillna(0), dense.varcorr["sd"].fillna(0), atol=1e-3)
    for g in dense.ranef:
        lv = dense.ranef[g].index
        assert np.allclose(tp.ranef[g].loc[lv], dense.ranef[g], atol=1e-3), g
        assert np.allclose(tp.ranef_condsd[g].loc[lv], dense.ranef_condsd[g], atol=1e-3), g


def test_tree_simulation_matches_the_tree_covariance(ref_tree):
    # Brownian motion drawn on the tree has covariance theta^2 vcv(tree, corr=True) at the tips
    data, _ = ref_case("phylo_poisson")
    fit = gk.phylo.fit_tree_glmm("y ~ x + (1 | species)", data, "poisson", ref_tree)
    cov = fit.spec.terms[0].cov
    draws = cov.draw(np.array([0.7]), np.random.default_rng(2), 20000)
    emp = np.cov(draws)
    K = cov.factor @ cov.factor.T
    assert np.allclose(emp, 0.49 * K, atol=0.03)


def test_bootstrap_lrt(isolates):
    d, _ = isolates
    tree = gk.phylo.read_tree(gk.datasets.tree_text("isolates"))
    m0 = gk.phylo.fit_tree_glmm("disease ~ 1 + (1 | isolate)", d, "binomial", tree)
    m1 = gk.phylo.fit_tree_glmm("disease ~ gene + (1 | isolate)", d, "binomial", tree)
    r = gk.phylo.bootstrap_lrt(m0, m1, nsim=19, seed=1, progress_bar=False)
    assert r["LR"] >= 0 and 0.05 <= r["p_bootstrap"] <= 1 and r["nsim"] + r["failed"] == 19
    assert gk.phylo.bootstrap_lrt is gk.bootstrap_lrt
    # the same replicates in worker processes (seeded per replicate)
    r2 = gk.bootstrap_lrt(m0, m1, nsim=19, seed=1, progress_bar=False, workers=2)
    assert r2["p_bootstrap"] == r["p_bootstrap"]


