"""Single-cell DE: the fast path is the general engine's model; inputs are checked; scale-out is exact."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import optimize, stats
from scipy.special import gammaln

import glmmkit as gk
from glmmkit.singlecell.block import GeneBlock
from glmmkit.singlecell.fastpath import Design, fit_block
from glmmkit.singlecell.laplace import LaplaceProblem
from glmmkit.singlecell.softplus import SoftplusSums

anndata = pytest.importorskip("anndata")


def _toy(G=10, S=8, nper=120, seed=3):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(S), nper)
    cond = (np.arange(S) >= S // 2).astype(float)
    o = np.log(rng.lognormal(np.log(3000), 0.4, len(subj)))
    Xs = np.column_stack([np.ones(S), cond])
    b0 = rng.normal(np.log(2e-4), 0.8, G)
    lfc = np.where(np.arange(G) < 3, 0.8, 0.0)
    sig = rng.uniform(0.15, 0.6, G)
    th = rng.uniform(0.8, 8, G)
    eta = b0[:, None] + lfc[:, None] * cond + rng.normal(size=(G, S)) * sig[:, None]
    mu = np.exp(eta[:, subj] + o)
    Y = rng.negative_binomial(th[:, None], th[:, None] / (th[:, None] + mu))
    return Y, subj, cond, o, Xs


@pytest.fixture(scope="module")
def toy():
    return _toy()


def test_softplus_sums_interpolation_matches_direct_sums():
    rng = np.random.default_rng(1)
    subj = rng.integers(0, 5, 3000)
    o = np.log(rng.lognormal(np.log(4000), 0.6, 3000))
    fast, exact = SoftplusSums(o, subj, 5), SoftplusSums(o, subj, 5, exact=True)
    x = rng.uniform(-35, 8, size=(40, 5))
    x[0], x[1] = fast.lo - 1.0, fast.hi + 1.0  # both exact tails
    a, b = fast(x), exact(x)
    for r in range(4):
        err = np.abs(a[r] - b[r])
        # relative to the magnitude of the function's own scale at that point (a' bounds every order)
        assert np.all(err <= 1e-8 * (np.abs(b[r]) + b[1]) + 1e-12), r


def test_analytic_gradient_matches_finite_differences(toy):
    Y, subj, cond, o, Xs = toy
    S = Xs.shape[0]
    for laplace in ("expected", "observed"):
        des = Design(Xs, o, subj, S, laplace=laplace)
        prob = LaplaceProblem(des.kernel(GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S)), Xs)
        x = np.column_stack([np.full(len(Y), -8.3), np.full(len(Y), 0.3), np.full(len(Y), 0.09),
                             np.full(len(Y), 1.1)])
        _, g = prob.evaluate(x)
        for j in range(x.shape[1]):
            h = 1e-6
            xp, xm = x.copy(), x.copy()
            xp[:, j] += h
            xm[:, j] -= h
            fd = (prob.evaluate(xp, grad=False)[0] - prob.evaluate(xm, grad=False)[0]) / (2 * h)
            np.testing.assert_allclose(g[:, j], fd, rtol=2e-5, atol=2e-4)


def test_variance_prior_gradient_and_optimum(toy):
    """With the prior the analytic gradient is still exact, and the block Newton reaches the penalised
    optimum that a general-purpose minimiser finds for each gene."""
    Y, subj, cond, o, Xs = toy
    S, G = Xs.shape[0], len(Y)
    des = Design(Xs, o, subj, S)
    block = GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S)
    prior = (np.full(G, 6.0), np.full(G, 0.05))
    prob = LaplaceProblem(des.kernel(block), Xs, prior=prior)
    x = np.column_stack([np.full(G, -8.3), np.full(G, 0.3), np.full(G, 0.09), np.full(G, 1.1)])
    _, g = prob.evaluate(x)
    for j in range(4):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += 1e-6
        xm[:, j] -= 1e-6
        fd = (prob.evaluate(xp, grad=False)[0] - prob.evaluate(xm, grad=False)[0]) / 2e-6
        np.testing.assert_allclose(g[:, j], fd, rtol=2e-5, atol=2e-4)
    plain, _ = fit_block(des, block, glm=False)
    fit, _ = fit_block(des, block, prior=prior, start=(plain.beta, plain.sigma ** 2, plain.theta))
    assert fit.converged.all() and np.all(fit.sigma > 0)
    for gi in range(G):
        one = LaplaceProblem(des.kernel(block).restrict([gi]), Xs, prior=tuple(a[[gi]] for a in prior))
        start = np.r_[fit.beta[gi] + 0.05, fit.sigma[gi] ** 2 * 1.3, np.log(fit.theta[gi]) + 0.1]
        r = optimize.minimize(lambda q: one.evaluate(q[None, :], grad=False)[0][0], start, method="Nelder-Mead",
                              options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000, "maxfev": 20000})
        pen = 6.0 * (np.log(fit.sigma[gi] ** 2) + 0.05 / fit.sigma[gi] ** 2)
        assert fit.deviance[gi] + pen <= r.fun + 1e-6  # the penalised objective: never above the minimiser's
        np.testing.assert_allclose(fit.beta[gi], r.x[:2], atol=2e-3)
    # the prior pulls v towards s0^2 = 0.05: every gene's v between its own estimate and 0.05 (or at it)
    v0, v1 = plain.sigma ** 2, fit.sigma ** 2
    assert np.all((v1 - v0) * (v1 - 0.05) <= 1e-9)


def _subject_data(v, noise, rng, S=20):
    """Gaussian subject-level data y_s ~ N(x_s' beta, v + n_s), two groups of S / 2 subjects."""
    Xs = np.column_stack([np.ones(S), np.arange(S) >= S // 2]).astype(float)
    G = len(v)
    beta = np.column_stack([rng.normal(0, 1, G), rng.normal(0, 0.3, G)])
    y = beta @ Xs.T + rng.normal(size=(G, S)) * np.sqrt(v[:, None] + noise)
    return y, np.broadcast_to(noise, (G, S)).copy(), Xs


def test_fit_prior_recovers_a_known_prior():
    """Gaussian subject-level data, v_g ~ s0^2 d0 / chi2_d0: the marginal-likelihood fit returns (d0, s0^2)
    -- here from 6,000 genes (4,000 of them fitted), within sampling error -- with and without noise that
    differs between subjects."""
    from glmmkit.singlecell.prior import D0_MAX, fit_prior

    rng = np.random.default_rng(5)
    G, d0, s2 = 6000, 8.0, 0.1
    v = s2 * d0 / rng.chisquare(d0, G)
    ok = np.ones(G, bool)
    y, n, Xs = _subject_data(v, np.full(20, 1e-6), rng)
    vp = fit_prior(y, n, Xs, ok)
    assert vp.active and vp.n_informative == G
    assert abs(vp.d0 / d0 - 1) < 0.25 and abs(vp.s2 / s2 - 1) < 0.05
    # no spread beyond sampling: d0 large (one shared variance)
    y1, n1, _ = _subject_data(np.full(G, s2), np.full(20, 1e-6), rng)
    vp = fit_prior(y1, n1, Xs, ok)
    assert 60 < vp.d0 <= D0_MAX and abs(vp.s2 / s2 - 1) < 0.02
    # too few genes: no prior, and it says why
    vp = fit_prior(y[:10], n[:10], Xs, ok[:10])
    assert not vp.active and "no prior" in vp.note
    # very unequal subjects (noise 0.01 to 3, i.e. up to 30x the typical v, per gene and subject; one subject
    # with a handful of cells, noise 1e3): the likelihood with every subject's own noise still finds the prior
    # of v.  (A likelihood of the gene's v^ with one "effective" noise per gene put s0^2 at half the truth in
    # the single-cell simulation with unequal donors, and its tests were liberal.)
    noisy = np.exp(rng.uniform(np.log(0.01), np.log(3.0), (G, 20)))
    noisy[:, 0] = 1e3
    y3 = np.column_stack([rng.normal(0, 1, G), rng.normal(0, 0.3, G)]) @ Xs.T + rng.normal(size=(G, 20)) * np.sqrt(
        v[:, None] + noisy)
    vp = fit_prior(y3, noisy, Xs, ok)
    assert abs(vp.s2 / s2 - 1) < 0.15 and abs(vp.d0 / d0 - 1) < 0.4
    # genes not ok, or with non-finite data, are left out and counted
    bad = ok[:500].copy()
    bad[:100] = False
    y3[100, 0] = np.nan
    assert fit_prior(y3[:500], noisy[:500], Xs, bad).n_informative == 399


def test_subject_loglik_is_the_gaussian_reml_likelihood():
    """Row by row, differences between grid points equal the REML log-likelihood computed densely."""
    from glmmkit.singlecell.prior import LOG_V_GRID, subject_loglik

    rng = np.random.default_rng(2)
    noise = np.exp(rng.uniform(-4, 1, (3, 12)))
    y, n, Xs = _subject_data(np.full(3, 0.2), noise, rng, S=12)
    ll = subject_loglik(y, n, Xs)
    assert ll.shape == (3, len(LOG_V_GRID)) and np.allclose(ll.max(axis=1), 0)

    def reml(g, v):
        V = np.diag(v + n[g])
        Vi = np.linalg.inv(V)
        A = Xs.T @ Vi @ Xs
        b = np.linalg.solve(A, Xs.T @ Vi @ y[g])
        r = y[g] - Xs @ b
        return -0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(A)[1] + r @ Vi @ r)

    for g in range(3):
        for a, b in ((10, 200), (150, 151), (0, 239)):
            want = reml(g, np.exp(LOG_V_GRID[b])) - reml(g, np.exp(LOG_V_GRID[a]))
            assert ll[g, b] - ll[g, a] == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_marginal_nll_gradient():
    """The prior's marginal likelihood: the analytic gradient equals central differences."""
    from glmmkit.singlecell.prior import marginal_nll, subject_loglik

    rng = np.random.default_rng(4)
    y, n, Xs = _subject_data(np.exp(rng.normal(-2, 1, 50)), np.exp(rng.uniform(-4, 0, (50, 20))), rng)
    ll = subject_loglik(y, n, Xs)
    B = np.column_stack([np.ones(50), rng.normal(size=(50, 2))])
    par = np.array([np.log(6.0), np.log(0.1), 0.3, -0.2])
    f, g = marginal_nll(par, ll, B)
    num = [(marginal_nll(par + e, ll, B)[0] - marginal_nll(par - e, ll, B)[0]) / 2e-6 for e in np.eye(4) * 1e-6]
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_working_responses():
    """Subject totals as Gaussian observations: at v = 0 the one-step working response of the GLM
    (Poisson: y = eta + (T - M) / M, n = 1 / M); at v > 0 the mode's first-order condition holds and, with
    many counts, y is the subject's log rate; zero totals stay finite."""
    from glmmkit.singlecell.prior import working_responses

    S = 6
    Xs = np.column_stack([np.ones(S), np.arange(S) >= 3]).astype(float)
    lib, lib2 = np.full(S, 50.0), np.full(S, 50.0 * 1.2)
    beta = np.array([[np.log(2.0), 0.3], [np.log(0.01), 0.0]])
    T = np.array([[90.0, 110.0, 100.0, 140.0, 150.0, 120.0], [0.0, 0.0, 3.0, 0.0, 1.0, 0.0]])
    M = np.exp(beta @ Xs.T) * lib
    y, n = working_responses(T, beta, np.full(2, np.inf), np.zeros(2), Xs, lib, lib2)
    np.testing.assert_allclose(y, np.log(M / lib) + (T - M) / M)
    np.testing.assert_allclose(n, 1 / M)
    v = np.array([0.5, 0.5])
    y, n = working_responses(T, beta, np.full(2, 4.0), v, Xs, lib, lib2)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(n)) and np.all(n > 0)
    phi = lib2 / lib ** 2 / 4.0
    eta = beta @ Xs.T
    # recover b from (y, n): y = eta + b + score / I, score = b / v at the mode -> b (1 + n / v) = y - eta
    b = (y - eta) / (1 + n / v[:, None])
    mu = M * np.exp(b)
    np.testing.assert_allclose((T - mu) / (1 + phi * mu), b / v[:, None], atol=1e-7)
    np.testing.assert_allclose(n, (1 + phi * mu) / mu, rtol=1e-10)
    # many counts, little shrinkage: the log rate of the subject
    y, _ = working_responses(T[:1] * 1000, beta[:1] + [np.log(1000), 0], np.full(1, np.inf), np.full(1, 50.0), Xs,
                             lib, lib2)
    np.testing.assert_allclose(y[0], np.log(T[0] * 1000 / lib), atol=1e-3)


@pytest.mark.parametrize("laplace", ["expected", "observed"])
def test_fast_path_is_the_general_engines_model(toy, laplace):
    """Per gene: fixed effects, SEs, subject SD within 1e-3 relative of gk.glmer's full Laplace fit
    (its tolerances tightened, so that both sit at the optimum); -2 log L never higher."""
    tight = gk.Control(ftol2=1e-12, xtol2=1e-10)
    Y, subj, cond, o, Xs = toy
    S = Xs.shape[0]
    des = Design(Xs, o, subj, S, laplace=laplace)
    fit, _ = fit_block(des, GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S), glm=False)
    assert fit.converged.all()
    df = pd.DataFrame({"subject": [f"s{s}" for s in subj], "cond": cond[subj], "o": o})
    for g in range(len(Y)):
        df["y"] = Y[g]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = gk.glmer("y ~ cond + offset(o) + (1 | subject)", data=df, family="nbinom2", laplace=laplace,
                         control=tight)
        ct = f.coef_table
        se = np.sqrt(np.diag(fit.vcov[g]))
        scale = np.maximum(np.abs(ct["estimate"].to_numpy()), ct["std_error"].to_numpy())
        assert np.all(np.abs(fit.beta[g] - ct["estimate"].to_numpy()) <= 1e-3 * scale), g
        np.testing.assert_allclose(se, ct["std_error"].to_numpy(), rtol=1e-3)
        np.testing.assert_allclose(fit.sigma[g], f.theta[0], rtol=1e-3)
        np.testing.assert_allclose(fit.theta[g], f.family.dispersion, rtol=1e-2)
        assert fit.deviance[g] <= -2 * f.loglik + 1e-6


def test_exact_and_tabulated_softplus_give_the_same_fit(toy):
    Y, subj, cond, o, Xs = toy
    S = Xs.shape[0]
    blk = GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S)
    a, _ = fit_block(Design(Xs, o, subj, S), blk, glm=False)
    b, _ = fit_block(Design(Xs, o, subj, S, exact=True), blk, glm=False)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(a.deviance, b.deviance, rtol=1e-10)


def test_newton_stopped_early_reports_every_gene(toy):
    # genes leave the batch as they converge; running out of iterations after that must still report
    # every gene, with the last Hessian of the remaining ones (flagged not converged)
    Y, subj, cond, o, Xs = toy
    S = Xs.shape[0]
    blk = GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S)
    full, _ = fit_block(Design(Xs, o, subj, S), blk, glm=False)
    for maxit in range(1, int(full.iterations.max())):
        fit, _ = fit_block(Design(Xs, o, subj, S), blk, glm=False, maxit=maxit)
        assert fit.beta.shape == full.beta.shape
        assert np.all(fit.converged[fit.iterations < maxit])
        assert not np.any(fit.converged & (full.iterations > maxit))


def test_poisson_fast_path_matches_the_general_engine(toy):
    tight = gk.Control(ftol2=1e-12, xtol2=1e-10)
    Y, subj, cond, o, Xs = toy
    S = Xs.shape[0]
    fit, _ = fit_block(Design(Xs, o, subj, S, family="poisson"), GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S),
                       glm=False)
    df = pd.DataFrame({"subject": [f"s{s}" for s in subj], "cond": cond[subj], "o": o})
    for g in range(3):
        df["y"] = Y[g]
        f = gk.glmer("y ~ cond + offset(o) + (1 | subject)", data=df, family="poisson", control=tight)
        np.testing.assert_allclose(fit.beta[g], f.fixef.to_numpy(), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov[g])), f.coef_table["std_error"], rtol=1e-3)
        np.testing.assert_allclose(fit.sigma[g], f.theta[0], rtol=1e-3)


def test_cell_level_glm_is_the_nb_glm_maximum(toy):
    """sigma = 0: the fast path's GLM is the NB GLM's maximum likelihood, found independently by scipy."""
    Y, subj, cond, o, Xs = toy
    S = Xs.shape[0]
    _, glm = fit_block(Design(Xs, o, subj, S), GeneBlock.from_csc(sp.csc_matrix(Y.T[:, :3]), o, subj, S),
                       random=False)
    X = Xs[subj]
    for g in range(3):
        y = Y[g].astype(float)

        def nll(par):
            mu = np.exp(X @ par[:2] + o)
            th = np.exp(par[2])
            return -np.sum(gammaln(y + th) - gammaln(th) - gammaln(y + 1) + th * np.log(th / (th + mu))
                           + y * np.log(mu / (th + mu)))

        r = optimize.minimize(nll, np.r_[glm.beta[g] + 0.1, 0.0], method="BFGS", options={"gtol": 1e-9})
        np.testing.assert_allclose(glm.beta[g], r.x[:2], atol=1e-4)
        assert glm.deviance[g] <= 2 * r.fun + 1e-6


def test_simulate_unequal_cells_per_subject():
    eq = gk.singlecell.simulate(n_genes=20, n_cells=4000, n_subjects=10, seed=3)
    un = gk.singlecell.simulate(n_genes=20, n_cells=4000, n_subjects=10, seed=3, cells_sd=1.0)
    n_eq = eq.obs["subject"].value_counts().to_numpy()
    n_un = un.obs["subject"].value_counts().to_numpy()
    assert n_eq.sum() == n_un.sum() == 4000 and (n_un > 0).all() and len(n_un) == 10
    assert n_eq.max() / n_eq.min() < 1.5 and n_un.max() / n_un.min() > 4


# ---- the public function --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adata():
    return gk.singlecell.simulate(n_genes=150, n_cells=1500, n_subjects=8, seed=4, frac_de=0.2, lfc=1.0)


def test_de_table_every_gene_accounted_for(adata):
    res = gk.singlecell.de(adata, "subject", "condition", progress_bar=False, cell_glm=True)
    t = res.table
    assert list(t.index) == list(adata.var_names)
    for c in ("log_fc", "log2_fc", "std_error", "z", "stat", "p", "fdr", "subject_sd", "theta", "dispersion", "mean_count",
              "frac_expressed", "converged", "method"):
        assert c in t.columns
    filt = t["method"] == "filtered"
    assert res.n_filtered == filt.sum() > 0
    assert t.loc[filt, "p"].isna().all() and t.loc[~filt, "p"].notna().all()
    assert t.loc[filt, "note"].str.contains("cells").all()
    np.testing.assert_allclose(t["log2_fc"], t["log_fc"] / np.log(2))
    # S = 8, p = 2, the variance prior's d0: the subject share of SE^2 REML-scaled, t with 6 + d0 df
    ok = ~filt
    vp = res.prior
    assert vp.active and vp.d0 > 0 and np.all(vp.s2 > 0)
    fast = ok & (t["method"] == "fast")
    np.testing.assert_allclose(t.loc[fast, "df"], 6 + vp.d0)
    ratio = (t.loc[fast, "z"] / t.loc[fast, "stat"]) ** 2  # 1 + share ((8 + d0) / (6 + d0) - 1), share in [0, 1]
    assert np.all(ratio >= 1 - 1e-12) and np.all(ratio <= (8 + vp.d0) / (6 + vp.d0) + 1e-12)
    np.testing.assert_allclose(t.loc[ok, "p"], 2 * stats.t.sf(np.abs(t.loc[ok, "stat"]), t.loc[ok, "df"]))
    assert "empirical-Bayes prior" in res.summary()
    # the simulated DE genes are found, and the cell-level GLM calls more genes than the GLMM
    truth = adata.var["is_de"]
    hits = res.significant(0.05).index
    assert truth[hits].mean() > 0.8 and len(hits) >= 3
    assert (res.cell_glm["fdr"] <= 0.05).sum() > len(hits)
    assert "tested" in res.summary()


def test_de_without_prior_is_the_per_gene_fit(adata):
    res = gk.singlecell.de(adata, "subject", "condition", prior=None, progress_bar=False)
    t = res.table
    ok = t["p"].notna()
    assert res.prior is None and (t.loc[ok, "df"] == 6).all()
    np.testing.assert_allclose(t.loc[ok, "stat"], t.loc[ok, "z"] * np.sqrt(6 / 8))
    np.testing.assert_allclose(t.loc[ok, "p"], 2 * stats.t.sf(np.abs(t.loc[ok, "stat"]), 6))


def test_de_from_h5ad_path_and_layer(adata, tmp_path):
    ad = adata.copy()
    ad.layers["counts"] = ad.X.copy()
    ad.X = ad.X.astype(float) / 2.5  # normalised values in X: the counts layer is taken (issue 22), and said
    path = tmp_path / "cells.h5ad"
    ad.write_h5ad(path)
    with pytest.warns(gk.DataWarning, match="layers\\['counts'\\]"):
        auto = gk.singlecell.de(path, "subject", "condition", progress_bar=False)
    res = gk.singlecell.de(path, "subject", "condition", layer="counts", progress_bar=False)  # ... the layer works
    ref = gk.singlecell.de(adata, "subject", "condition", progress_bar=False)
    pd.testing.assert_frame_equal(res.table, ref.table)
    pd.testing.assert_frame_equal(auto.table, ref.table)
    del ad.layers["counts"]  # normalised values and no counts layer: refused
    with pytest.raises(ValueError, match="raw non-negative integers: gene .*cell"):
        gk.singlecell.de(ad, "subject", "condition", progress_bar=False)


def test_processes_and_dask_give_identical_results(adata):
    one = gk.singlecell.de(adata, "subject", "condition", progress_bar=False, block_size=40)
    two = gk.singlecell.de(adata, "subject", "condition", progress_bar=False, block_size=40, workers=2)
    pd.testing.assert_frame_equal(one.table, two.table)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dk = gk.singlecell.de(adata, "subject", "condition", progress_bar=False, block_size=40, client=client)
    pd.testing.assert_frame_equal(one.table, dk.table)


def _small(adata):
    return adata[:400].copy()


def test_bad_input_messages(adata):
    ad = _small(adata)
    with pytest.raises(gk.InputError, match="'donor' not in the cell metadata"):
        gk.singlecell.de(ad, "donor", "condition")
    neg = ad.copy()
    X = neg.X.tolil()
    X[5, 7] = -1
    neg.X = X.tocsr()
    with pytest.raises(ValueError, match=r"gene 'gene7', cell 'cell5' has -1 \(negative"):
        gk.singlecell.de(neg, "subject", "condition")
    both = ad.copy()
    c = both.obs["condition"].astype(str).to_numpy()
    first = both.obs["subject"].astype(str).to_numpy() == "S01"
    c[np.flatnonzero(first)[:3]] = "B" if c[first][0] == "A" else "A"
    both.obs["condition"] = c
    with pytest.raises(ValueError, match=r"subject\(s\) \['S01'\] have cells in more than one level"):
        gk.singlecell.de(both, "subject", "condition")
    one = adata.copy()
    b_subjects = sorted(set(one.obs.loc[one.obs["condition"] == "B", "subject"].astype(str)))
    keep = ~one.obs["subject"].astype(str).isin(b_subjects[1:])
    one = one[keep.to_numpy()].copy()
    with pytest.raises(ValueError, match="condition level 'B' has 1 subject"):
        gk.singlecell.de(one, "subject", "condition")
    lib = ad.copy()
    lib.obs["lib"] = 1000.0
    lib.obs.iloc[3, lib.obs.columns.get_loc("lib")] = 0.0
    with pytest.raises(ValueError, match="library size .*cell 'cell3'"):
        gk.singlecell.de(lib, "subject", "condition", libsize="lib")


def test_cell_level_covariate_goes_to_the_general_engine(adata):
    top = np.argsort(-np.asarray(adata.X.sum(axis=0)).ravel())[:5]
    ad = adata[:, np.sort(top)].copy()
    ad.obs["lib"] = np.asarray(adata.X.sum(axis=1)).ravel()
    ad.obs["mito"] = np.random.default_rng(0).normal(size=ad.n_obs)
    kw = dict(covariates=["mito"], libsize="lib", progress_bar=False)
    with pytest.raises(ValueError, match="'mito' varies within subject"):
        gk.singlecell.de(ad, "subject", "condition", engine="fast", **kw)
    res = gk.singlecell.de(ad, "subject", "condition", **kw)
    tested = res.table["method"] != "filtered"
    assert (res.table.loc[tested, "method"] == "general").all()
    assert res.table.loc[tested, "p"].notna().all()


def test_pseudobulk(adata):
    cd = gk.singlecell.prepare(adata, "subject", "condition")
    summed = gk.singlecell.aggregate(cd)
    dense = adata.X.toarray()
    codes = cd.subject
    np.testing.assert_allclose(summed[2], dense[codes == 2].sum(axis=0))
    nb = gk.singlecell.pseudobulk(adata, "subject", "condition", method="nbglm")
    assert nb["p"].notna().sum() == (nb["method"] != "filtered").sum()
    pytest.importorskip("pydeseq2")
    ds = gk.singlecell.pseudobulk(adata, "subject", "condition")
    ok = ds["p"].notna() & nb["p"].notna()
    assert ok.sum() > 100
    # the same genes, the same direction: DESeq2's and the NB GLM's fold changes agree closely
    assert np.corrcoef(ds.loc[ok, "log_fc"], nb.loc[ok, "log_fc"])[0, 1] > 0.95


def test_cli_sc_de(adata, tmp_path, capsys):
    from glmmkit.cli import main

    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "de.tsv"
    rc = main(["sc-de", str(path), "--subject", "subject", "--condition", "condition", "--out", str(out),
               "--cell-glm", "--workers", "1"])
    assert rc == 0
    t = pd.read_csv(out, sep="\t", index_col=0)
    ref = gk.singlecell.de(adata, "subject", "condition", progress_bar=False, cell_glm=True).table
    np.testing.assert_allclose(t["p"], ref["p"], rtol=1e-5)
    assert (tmp_path / "de.cell_glm.tsv").exists()
    assert main(["sc-de", str(path), "--subject", "subject", "--condition", "condition", "--out", str(out),
                 "--prior", "none", "--workers", "1"]) == 0
    ref = gk.singlecell.de(adata, "subject", "condition", progress_bar=False, prior=None).table
    np.testing.assert_allclose(pd.read_csv(out, sep="\t", index_col=0)["p"], ref["p"], rtol=1e-5)
    assert main(["sc-de", str(path), "--subject", "donor", "--condition", "condition", "--out", str(out)]) == 2
    assert "column 'donor' not in the cell metadata" in capsys.readouterr().err


def test_quasi_newton_ends_where_newton_does_on_the_finite_difference_hessian(toy):
    """BFGS updates between finite-difference Hessians (the default) end where Newton with one at every
    iteration does; convergence is declared, and H reported, on the finite-difference Hessian at the end; a
    start Hessian, even a poor one, changes the path and not the end; a sub-block is the block of its genes."""
    from glmmkit.singlecell.newton import newton

    Y, subj, cond, o, Xs = toy
    S, G = Xs.shape[0], len(Y)
    des = Design(Xs, o, subj, S)
    blk = GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S)
    beta, kappa = des.start(blk)
    x0 = np.column_stack([beta, np.full(G, 0.1), kappa])
    full = newton(LaplaceProblem(des.kernel(blk), Xs), x0, quasi=False)
    quasi = newton(LaplaceProblem(des.kernel(blk), Xs), x0)
    poor = newton(LaplaceProblem(des.kernel(blk), Xs), x0, H0=np.broadcast_to(np.eye(4), (G, 4, 4)))
    assert full.converged.all() and quasi.converged.all() and poor.converged.all()
    for r in (quasi, poor):
        np.testing.assert_allclose(r.x, full.x, rtol=0, atol=2e-4)
        np.testing.assert_allclose(r.D, full.D, rtol=0, atol=1e-7)
        prob = LaplaceProblem(des.kernel(blk), Xs)
        _, g = prob.evaluate(r.x)
        np.testing.assert_allclose(r.H, prob.hessian(r.x, g), rtol=2e-3, atol=1e-3)  # FD noise from the modes
    genes = np.array([1, 4, 5, 9])
    sub, ref = blk.subset(genes), GeneBlock.from_csc(sp.csc_matrix(Y[genes].T), o, subj, S)
    for f in ("y", "o", "gene", "pair", "Y", "YO", "dist_gene", "dist_y", "dist_n", "lgamma_y1", "starts", "pairs"):
        assert np.array_equal(getattr(sub, f), getattr(ref, f)), f


def test_predicted_modes_are_first_order_and_checked(toy):
    """The modes' linearisation (implicit-function theorem) predicts the modes after a small step to second
    order, and an evaluation that only checks the prediction (``fd=True``) gives what solving gives."""
    Y, subj, cond, o, Xs = toy
    S, G = Xs.shape[0], len(Y)
    des = Design(Xs, o, subj, S)
    blk = GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S)
    x = np.column_stack([np.full(G, -8.3), np.full(G, 0.3), np.full(G, 0.09), np.full(G, 1.1)])
    prob = LaplaceProblem(des.kernel(blk), Xs)
    prob.evaluate(x)  # the linearisation at x
    errs = []
    for h in (1e-2, 1e-3):
        xh = x + h * np.array([1.0, -0.5, 0.2, 0.7])
        beta, v, kappa = prob.unpack(xh)
        m = Xs @ beta.T
        pred = prob.predict_modes(xh, m.T, np.sqrt(v)[:, None], kappa)
        exact = LaplaceProblem(des.kernel(blk), Xs).solve_modes(m.T, v, kappa)
        errs.append(np.abs(pred - exact).max())
    assert errs[1] < errs[0] / 50  # second order: a tenth of the step, a hundredth of the error
    xj = x.copy()
    xj[:, 2] += 1e-6
    checked = prob.evaluate(xj, fd=True)
    solved = LaplaceProblem(des.kernel(blk), Xs).evaluate(xj)
    np.testing.assert_allclose(checked[0], solved[0], rtol=1e-12)
    np.testing.assert_allclose(checked[1], solved[1], rtol=1e-7, atol=1e-7)


def test_nonzero_sums_are_the_nb2_familys_logistic_formulas(toy):
    """nnz_sums writes the family's logistic score and information at theta = 0 as the products they reduce to;
    they must stay the family's formulas (summed per gene and donor), in the tails too."""
    from glmmkit.families import NegativeBinomial2
    from glmmkit.singlecell.nnz_sums import nnz_sums

    Y, subj, cond, o, Xs = toy
    S = Xs.shape[0]
    blk = GeneBlock.from_csc(sp.csc_matrix(Y.T), o, subj, S)
    x = np.random.default_rng(4).normal(-9.0, 3.0, (blk.n_genes, S))
    x[0, 0], x[1, 1] = -800.0, 800.0
    Sys, Syq, Sysp, Syr = nnz_sums(blk, x, 4)
    xz = x.ravel()[blk.pair] + blk.o
    with np.errstate(over="ignore"):
        p = 1 / (1 + np.exp(-xz))
    np.testing.assert_allclose(Sys, blk.per_pair(NegativeBinomial2.logistic_score(blk.y, p, 0.0)), rtol=1e-12)
    yq = NegativeBinomial2.logistic_information(blk.y, p, 0.0)
    np.testing.assert_allclose(Syq, blk.per_pair(yq), rtol=1e-12)
    np.testing.assert_allclose(Syr, blk.per_pair(yq * (1 - 2 * p)), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(Sysp, blk.per_pair(blk.y * np.logaddexp(0.0, xz)), rtol=1e-12)


@pytest.mark.parametrize("cells_sd", [0.0, 1.0])
def test_null_p_values_are_uniform(cells_sd):
    """Calibration against simulation truth: no gene differs, so the default's p-values are uniform, with cells
    shared equally among donors and very unequally (a rare cell type's few cells per donor); the cell-level
    GLM on the same data (pseudoreplication) is not, which the same check must catch."""
    ad = gk.singlecell.simulate(n_genes=800, n_cells=1000, n_subjects=16, frac_de=0.0, seed=11 + int(cells_sd),
                                cells_sd=cells_sd, mean_lib=1500.0)
    kw = dict(subject="subject", condition="condition", progress_bar=False, workers=1)
    p = gk.singlecell.de(ad, **kw).table["p"].dropna().to_numpy()
    assert len(p) > 600
    # +-2 binomial s.e. around 5% at ~750 genes (seeded: the Wald z without the prior gives 0.069 and 0.085 here)
    assert 0.035 <= np.mean(p < 0.05) <= 0.065
    assert stats.kstest(p, "uniform").pvalue > 0.01
    p_cell = gk.singlecell.cell_glm(ad, **kw)["p"].dropna().to_numpy()
    assert np.mean(p_cell < 0.05) > 0.1 and stats.kstest(p_cell, "uniform").pvalue < 1e-6
