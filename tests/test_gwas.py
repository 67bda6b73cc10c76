"""GWAS: PLINK I/O, GRM, null GLMM, score tests (exact, variance ratio, SPA), LOCO, scale-out, bad input."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

import glmmkit as gk
from glmmkit import gwas
from glmmkit.gwas.tables import Samples

pytest.importorskip("bed_reader")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("gwas")
    info = gwas.simulate_cohort(d / "c", n_families=120, n_variants=1500, n_causal=100, h2=0.3, seed=5,
                                causal_extra=1.0, n_chromosomes=3)
    return info


def test_bed_writer_round_trip_and_imputation(tmp_path):
    rng = np.random.default_rng(0)
    G = rng.integers(0, 3, (13, 7)).astype(float)
    G[2, 3] = np.nan
    ids = pd.DataFrame({"FID": [f"f{i}" for i in range(13)], "IID": [f"i{i}" for i in range(13)]})
    var = pd.DataFrame({"CHR": "1", "POS": np.arange(7) * 10, "ID": [f"v{j}" for j in range(7)], "A1": "C", "A2": "T"})
    with gwas.BedWriter(tmp_path / "t", ids) as w:
        w.write(G[:, :4], var.iloc[:4])
        w.write(G[:, 4:], var.iloc[4:])
    g = gwas.Genotypes.open(tmp_path / "t")
    assert list(g.variants["ID"]) == list(var["ID"]) and list(g.samples["IID"]) == list(ids["IID"])
    R, miss = g.read(0, 7)
    mask = ~np.isnan(G)
    np.testing.assert_array_equal(R[mask], G[mask])
    assert miss[3] == 1 and miss.sum() == 1
    assert R[2, 3] == pytest.approx(np.nanmean(G[:, 3]))
    # what a worker reads: the .bed alone, a subset of samples in the analysis' order, a range of variants
    rows = np.array([5, 2, 11, 0])
    Rw, mw = g.bed_file.read(2, 6, rows)
    np.testing.assert_array_equal(Rw[[0, 2, 3]], G[np.ix_([5, 11, 0], range(2, 6))])
    assert Rw[1, 1] == pytest.approx(np.nanmean(G[rows, 3])) and list(mw) == [0, 1, 0, 0]


def test_grm_and_gcta_round_trip(cohort, tmp_path):
    g = gwas.Genotypes.open(cohort["bfile"])
    K, m = gwas.grm(g, chunk=400, progress_bar=False)
    K64, _ = gwas.grm(g, chunk=400, progress_bar=False, precision="double")
    G, _ = g.read(0, g.n_variants)
    p = G.mean(0) / 2
    keep = np.minimum(p, 1 - p) >= 0.01
    Z = (G[:, keep] - 2 * p[keep]) / np.sqrt(2 * p[keep] * (1 - p[keep]))
    np.testing.assert_allclose(K64, Z @ Z.T / keep.sum(), atol=1e-10)
    np.testing.assert_allclose(K, Z @ Z.T / keep.sum(), atol=2e-6)  # float32 products, float64 sum
    assert np.array_equal(K, K.T) and np.array_equal(K64, K64.T)
    assert m == keep.sum()
    with pytest.raises(ValueError, match="precision"):
        gwas.grm(g, precision="half")
    gwas.write_gcta(tmp_path / "k", K, g.samples, m)
    K2, ids, N = gwas.read_gcta(tmp_path / "k")
    np.testing.assert_allclose(K2, K, atol=1e-6)
    assert list(ids["IID"]) == list(g.samples["IID"]) and np.all(N == m)
    Ks = gwas.threshold_grm(K, 0.05)
    assert Ks.nnz < K.size and np.allclose(Ks.diagonal(), np.diag(K))
    bad = K.copy()
    bad[0, 1] = bad[1, 0] = 5.0
    with pytest.raises(ValueError, match="not positive semi-definite"):
        gwas.check_psd(bad)


def test_sparse_grm_by_strips_equals_thresholded_dense(cohort):
    """sparse_grm never holds n x n: strips of rows (here 64 of 400 samples, 7 strips; and one strip) give the
    thresholded dense GRM, in a sample order that is not the file's."""
    g = gwas.Genotypes.open(cohort["bfile"])
    rows = np.random.default_rng(1).permutation(g.n_samples)[:400]
    for precision, tol in (("double", 1e-12), ("single", 1e-6)):
        K, m = gwas.grm(g, rows=rows, chunk=400, progress_bar=False, precision=precision)
        dense = gwas.threshold_grm(K, 0.05)
        for memory in (1e4, 1e9):
            S, m2 = gwas.sparse_grm(g, 0.05, rows=rows, chunk=400, memory=memory, progress_bar=False,
                                    precision=precision)
            assert m2 == m and S.nnz == dense.nnz and (S != S.T).nnz == 0
            assert abs(S - dense).max() <= tol
            np.testing.assert_allclose(S.diagonal(), np.diag(K), atol=tol)
    assert 400 < dense.nnz < 400 * 400 / 4  # families kept, unrelated pairs dropped
    with pytest.raises(ValueError, match="threshold"):
        gwas.sparse_grm(g, 0.0)


def test_screened_sparse_grm_keeps_the_exact_pairs_at_the_exact_values(cohort):
    """The screen (issue 22): a sketch on k variants finds candidate pairs, the GRM over every variant is computed
    at those only.  Every pair the exact sparse GRM keeps well above the threshold is found, nothing else is
    kept, the values and the diagonal are the exact ones; "auto" measures the population structure and falls
    back to the exact strips (and says so) where no sketch would pay; a k too small for the threshold is refused."""
    g = gwas.Genotypes.open(cohort["bfile"])
    rows = np.random.default_rng(2).permutation(g.n_samples)[:300]
    exact, m = gwas.sparse_grm(g, 0.2, rows=rows, progress_bar=False, precision="double")
    K, m2, rep = gwas.screened_sparse_grm(g, 0.2, rows=rows, k=1000, progress_bar=False)
    assert m2 == m and rep.screened and rep.k == 1000 and rep.cut == pytest.approx(0.2 - 3 / np.sqrt(1000))
    assert (K != K.T).nnz == 0 and rep.kept == (K.nnz - 300) // 2 and rep.candidates >= rep.kept
    E = sp.triu(exact, 1).tocoo()
    found = np.asarray(K[E.row, E.col]).ravel() != 0
    assert found[E.data >= 0.3].all() and found.mean() > 0.95  # the relatives (~0.5) all found
    kp, ep = (sp.triu(K, 1) != 0).astype(int), (sp.triu(exact, 1) != 0).astype(int)
    both = kp.multiply(ep).tocoo()
    assert both.nnz == kp.nnz  # nothing the exact GRM drops
    np.testing.assert_allclose(np.asarray(K[both.row, both.col]).ravel(),
                               np.asarray(exact[both.row, both.col]).ravel(), atol=1e-6)
    np.testing.assert_allclose(K.diagonal(), exact.diagonal(), atol=1e-6)
    K2, _, rep2 = gwas.screened_sparse_grm(g, 0.05, rows=rows, progress_bar=False)  # auto: 1,500 variants are too few
    assert not rep2.screened and "exact strips" in rep2.note and abs(K2 - gwas.sparse_grm(
        g, 0.05, rows=rows, progress_bar=False)[0]).max() == 0
    with pytest.raises(gk.InputError, match="cut"):
        gwas.screened_sparse_grm(g, 0.05, k=2, progress_bar=False)
    model = gwas.null(cohort["bfile"], cohort["pheno"], "y", cohort["covar"], ["sex", "age"], sparse=0.2,
                      screen=1000, progress_bar=False)
    assert model.report["sparse_grm_screen"]["k"] == 1000 and model.converged
    json.dumps(model.report["sparse_grm_screen"], allow_nan=False)
    assert gwas.build_sparse_grm(g, 0.2, rows=rows, progress_bar=False)[2] is None  # auto: few samples, exact strips


def test_sparse_sigma_solves_in_lockstep_on_threads(monkeypatch):
    """Conjugate gradients over many right-hand sides at once, K's product by strips of rows on threads,
    against a dense solve: the same solutions, one column or many."""
    import importlib

    import scipy.sparse as sparse

    null_mod = importlib.import_module("glmmkit.gwas.null")
    monkeypatch.setattr(null_mod, "THREADED_NNZ", 0)
    monkeypatch.setattr(null_mod, "_cores", lambda: 2)
    rng = np.random.default_rng(4)
    n = 600
    A = sparse.random(n, n, density=0.02, random_state=5, format="csr")
    K = (A @ A.T + sparse.identity(n)).tocsr()  # sparse and positive definite
    d = rng.uniform(1.0, 10.0, n)
    sig = null_mod._SparseSigma(d, 0.7, K)
    assert len(sig.strips) == 4
    dense = np.diag(d) + 0.7 * K.toarray()
    B = rng.standard_normal((n, 7))
    np.testing.assert_allclose(sig.solve(B), np.linalg.solve(dense, B), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sig.solve(B[:, 0]), np.linalg.solve(dense, B[:, 0]), rtol=1e-7, atol=1e-9)


def test_sparse_grm_by_strips_fills_missing_calls_with_all_samples_means(tmp_path):
    """Later strips read only their rows; a missing call there still takes the mean over every sample."""
    rng = np.random.default_rng(3)
    n, m = 300, 400
    G = rng.binomial(2, rng.uniform(0.1, 0.9, m), (n, m)).astype(float)
    G[rng.random((n, m)) < 0.05] = np.nan
    ids = pd.DataFrame({"FID": [f"f{i}" for i in range(n)], "IID": [f"i{i}" for i in range(n)]})
    var = pd.DataFrame({"CHR": "1", "POS": np.arange(m), "ID": [f"v{j}" for j in range(m)], "A1": "C", "A2": "T"})
    with gwas.BedWriter(tmp_path / "miss", ids) as w:
        w.write(G, var)
    g = gwas.Genotypes.open(tmp_path / "miss")
    K, _ = gwas.grm(g, chunk=150, progress_bar=False, precision="double")
    S, _ = gwas.sparse_grm(g, 0.1, chunk=150, memory=1e4, progress_bar=False, precision="double")
    dense = gwas.threshold_grm(K, 0.1)
    assert S.nnz == dense.nnz > n and abs(S - dense).max() < 1e-12


def _samples(cohort, trait="binary", col="y"):
    g = gwas.Genotypes.open(cohort["bfile"])
    return g, gwas.match(g, gwas.read_table(cohort["pheno"]), col, gwas.read_table(cohort["covar"]), ["sex", "age"],
                         trait)


def test_tau_zero_is_the_logistic_score_test(cohort):
    """tau = 0: the score test is the GLM's, checked against statsmodels' score test of an added column."""
    sm = pytest.importorskip("statsmodels.api")
    g, s = _samples(cohort)
    K = np.eye(s.n)
    null = gwas.fit_null(s, K, fix_tau=0.0, keep_P=True)
    G, _ = g.read(0, 25, rows=s.rows)
    ours = gwas.ScoreTester(null, spa=False).test(G)
    base = sm.GLM(s.y, s.X, family=sm.families.Binomial()).fit(tol=1e-12)
    for j in range(25):
        st, pv = base.score_test(exog_extra=G[:, [j]])[:2]
        np.testing.assert_allclose(ours["T_STAT"][j] ** 2, float(np.squeeze(st)), rtol=1e-8)
        np.testing.assert_allclose(ours["P"][j], float(np.squeeze(pv)), rtol=1e-7)
    # the Poisson GLM too
    y = np.random.default_rng(1).poisson(np.exp(0.3 + 0.01 * (s.X[:, 2] - 50)))
    sp_ = Samples(s.rows, s.ids, y.astype(float), s.X, s.x_names, "count")
    nullp = gwas.fit_null(sp_, K, fix_tau=0.0, keep_P=True)
    ours = gwas.ScoreTester(nullp, spa=False).test(G)
    base = sm.GLM(y, s.X, family=sm.families.Poisson()).fit(tol=1e-12)
    st = base.score_test(exog_extra=G[:, [0]])[0]
    np.testing.assert_allclose(ours["T_STAT"][0] ** 2, float(np.squeeze(st)), rtol=1e-8)


def test_exact_score_matches_a_direct_dense_computation(cohort):
    g, s = _samples(cohort)
    K, _ = gwas.grm(g, rows=s.rows, progress_bar=False)
    null = gwas.fit_null(s, K, keep_P=True)
    assert null.converged and null.tau > 0
    G, _ = g.read(100, 160, rows=s.rows)
    ours = gwas.ScoreTester(null, spa=False).test(G)
    Sigma = np.diag(null.phi / null.W) + null.tau * K
    Si = np.linalg.inv(Sigma)
    P = Si - Si @ s.X @ np.linalg.inv(s.X.T @ Si @ s.X) @ s.X.T @ Si
    U = G.T @ (null.y - null.mu)
    V = np.einsum("ij,ij->j", G, P @ G)
    np.testing.assert_allclose(ours["T_STAT"], U / np.sqrt(V), rtol=1e-8)
    # the PQL fixed point: (y - mu) / phi = P Y
    Y = s.X @ null.beta + null.b + (null.y - null.mu) / null.W
    np.testing.assert_allclose(null.residuals, P @ Y, atol=1e-6)
    # the variance-ratio path approximates the exact variance
    vr = gwas.ScoreTester(null, exact=False, spa=False) if null.variance_ratio else None
    assert vr is None  # fit_null alone does not estimate it: step 1 (gwas.null) does


def test_gaussian_null_is_reml(cohort):
    """Quantitative trait: the AI-REML fit agrees with the core engine's REML LMM with the same relmat."""
    g, s = _samples(cohort, "quantitative", "liability")
    n = 150
    sub = Samples(s.rows[:n], s.ids.iloc[:n].reset_index(drop=True), s.y[:n], s.X[:n], s.x_names, "quantitative")
    K, _ = gwas.grm(g, rows=sub.rows, progress_bar=False)
    ours = gwas.fit_null(sub, K, tol=1e-8)
    labels = [f"s{i}" for i in range(n)]
    df = pd.DataFrame({"y": sub.y, "sex": sub.X[:, 1], "age": sub.X[:, 2], "iid": labels})
    fit = gk.lmer("y ~ sex + age + (1 | iid)", df, reml=True, relmat={"iid": pd.DataFrame(K, index=labels, columns=labels)})
    vc = fit.varcorr
    np.testing.assert_allclose(ours.tau, vc.loc[vc.group == "iid", "variance"].iloc[0], rtol=2e-3)
    np.testing.assert_allclose(ours.phi, fit.sigma ** 2, rtol=2e-3)
    np.testing.assert_allclose(ours.beta, fit.fixef.to_numpy(), rtol=1e-3, atol=1e-4)


def test_spa_against_exact_enumeration():
    """P(|S| >= |q|) for S = sum g_i (y_i - mu_i), y_i ~ Bernoulli(mu_i): SPA vs all 2^14 outcomes."""
    rng = np.random.default_rng(3)
    n = 14
    mu = rng.uniform(0.01, 0.15, n)
    g = rng.integers(0, 3, n).astype(float)
    ys = np.array(list(itertools.product([0, 1], repeat=n)), dtype=float)
    prob = np.prod(np.where(ys == 1, mu, 1 - mu), axis=1)
    S = (ys - mu) @ g
    for q in (1.5, 2.5, 3.5):
        exact = prob[np.abs(S) >= q - 1e-9].sum()
        spa = gwas.spa_pvalue(np.array([q]), g[:, None], mu)[0]
        normal = 2 * stats.norm.sf(q / np.sqrt(np.sum(g * g * mu * (1 - mu))))
        assert abs(np.log(spa / exact)) < abs(np.log(normal / exact)) or abs(spa / exact - 1) < 0.2


def test_two_steps_save_load_loco_and_scale_out(cohort, tmp_path):
    info = cohort
    m = gwas.null(info["bfile"], info["pheno"], "y", info["covar"], ["sex", "age"], trait="binary", loco=True,
                  progress_bar=False)
    assert set(m.loco) == {"1", "2", "3"} and m.variance_ratio > 0
    m.save(tmp_path / "step1")
    out = tmp_path / "res.tsv.gz"
    r1 = gwas.test(info["bfile"], tmp_path / "step1", out=out, progress_bar=False, chunk=300).table
    r0 = gwas.test(info["bfile"], m, progress_bar=False).table  # the default chunk, sized to the samples
    pd.testing.assert_frame_equal(r0, r1)
    back = pd.read_csv(out, sep="\t")
    assert list(back.columns[:12]) == ["CHR", "POS", "ID", "A1", "A2", "A1_FREQ", "N", "BETA", "SE", "T_STAT", "P",
                                      "P_NORMAL"]
    assert r1.nsmallest(1, "P")["ID"].iloc[0] == "rs1"  # the planted hit
    r2 = gwas.test(info["bfile"], m, progress_bar=False, chunk=300, workers=2).table
    pd.testing.assert_frame_equal(r1, r2)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                  dashboard_address=None) as cl, distributed.Client(cl) as client:
        r3 = gwas.test(info["bfile"], m, progress_bar=False, chunk=300, client=client).table
    pd.testing.assert_frame_equal(r1, r3)
    assert 0.5 < gwas.lambda_gc(r1["P"]) < 2


def test_bad_input(cohort, tmp_path):
    with pytest.raises(gk.errors.MissingFileError, match="missing .*\\.bim"):
        import shutil

        for suf in (".bed", ".fam"):
            shutil.copy(cohort["bfile"] + suf, str(tmp_path / "x") + suf)
        gwas.Genotypes.open(tmp_path / "x")
    g = gwas.Genotypes.open(cohort["bfile"])
    ph = gwas.read_table(cohort["pheno"])
    other = ph.assign(IID=ph["IID"] + "_x")
    with pytest.raises(ValueError, match="no sample has genotypes"):
        gwas.match(g, other, "y")
    one = ph.assign(y=1)
    with pytest.raises(ValueError, match="one class only"):
        gwas.match(g, one, "y")
    cv = gwas.read_table(cohort["covar"]).assign(age=3.0)
    with pytest.raises(ValueError, match="covariate 'age' is constant"):
        gwas.match(g, ph, "y", cv, ["sex", "age"])
    s = gwas.match(g, ph, "y")
    with pytest.raises(ValueError, match="GRM is 5 x 5"):
        gwas.fit_null(s, np.eye(5))


def test_cli_gwas(cohort, tmp_path, capsys):
    from glmmkit.cli import main

    info = cohort
    assert main(["gwas", "grm", "--bfile", info["bfile"], "--out", str(tmp_path / "k")]) == 0
    # the sparse GRM alone, by strips: the dense one thresholded, without GCTA's dense files
    import scipy.sparse as sparse

    assert main(["gwas", "grm", "--bfile", info["bfile"], "--out", str(tmp_path / "ks"), "--sparse", "0.05",
                 "--sparse-only", "--memory", "1e5"]) == 0
    K, _, _ = gwas.read_gcta(tmp_path / "k")
    S = sparse.load_npz(tmp_path / "ks.sparse.npz")
    assert S.nnz == gwas.threshold_grm(K, 0.05).nnz and not (tmp_path / "ks.grm.bin").exists()
    assert main(["gwas", "grm", "--bfile", info["bfile"], "--out", str(tmp_path / "kx"), "--sparse-only"]) == 2
    assert "--sparse-only needs --sparse" in capsys.readouterr().err
    assert main(["gwas", "grm", "--bfile", info["bfile"], "--out", str(tmp_path / "kk"), "--sparse", "0.2",
                 "--sparse-only", "--screen", "1000"]) == 0
    assert "screened by a sketch of 1000 variants" in capsys.readouterr().out
    assert main(["gwas", "grm", "--bfile", info["bfile"], "--out", str(tmp_path / "kk"), "--sparse", "0.2",
                 "--sparse-only", "--screen", "many"]) == 2
    assert "--screen takes auto, none" in capsys.readouterr().err
    assert main(["gwas", "null", "--bfile", info["bfile"], "--pheno", info["pheno"], "--pheno-name", "y",
                 "--covar", info["covar"], "--covar-name", "sex,age", "--grm", str(tmp_path / "k"),
                 "--out", str(tmp_path / "s1")]) == 0
    assert "analysed" in capsys.readouterr().out
    assert main(["gwas", "test", "--bfile", info["bfile"], "--null", str(tmp_path / "s1"),
                 "--out", str(tmp_path / "r.tsv")]) == 0
    r = pd.read_csv(tmp_path / "r.tsv", sep="\t")
    assert len(r) == 1500 and r["P"].notna().all()
    assert main(["gwas", "test", "--bfile", info["bfile"], "--null", str(tmp_path / "nothere"),
                 "--out", str(tmp_path / "r.tsv")]) == 2
    assert "no null model" in capsys.readouterr().err


def test_null_by_the_core_engine(cohort):
    """method="laplace": the null model fitted by the core engine with the GRM as relmat; for a quantitative
    trait that is lmer's REML, the same estimator as the AI-REML path."""
    g, s = _samples(cohort, "quantitative", "liability")
    n = 200
    sub = Samples(s.rows[:n], s.ids.iloc[:n].reset_index(drop=True), s.y[:n], s.X[:n], s.x_names, "quantitative")
    K, _ = gwas.grm(g, rows=sub.rows, progress_bar=False)
    lap = gwas.fit_null(sub, K, method="laplace")
    pql = gwas.fit_null(sub, K, tol=1e-8)
    assert lap.method == "laplace" and lap.P is not None
    np.testing.assert_allclose(lap.tau, pql.tau, rtol=2e-3)
    np.testing.assert_allclose(lap.phi, pql.phi, rtol=2e-3)
    G, _ = g.read(0, 50, rows=sub.rows)
    np.testing.assert_allclose(gwas.ScoreTester(lap).test(G)["T_STAT"], gwas.ScoreTester(pql).test(G)["T_STAT"],
                               rtol=5e-3, atol=1e-3)


def test_sparse_grm_null_by_conjugate_gradients(cohort):
    """The sparse path (PCG on a thresholded GRM) fits the same model as the dense factorisation of the same
    matrix (Hutchinson traces with the same probes in both): tau, beta and the score statistics agree."""
    import scipy.sparse as sparse

    g, s = _samples(cohort)
    K, _ = gwas.grm(g, rows=s.rows, progress_bar=False)
    Ks = gwas.threshold_grm(K, 0.05)
    sp_fit = gwas.fit_null(s, Ks, exact_max=0)
    de_fit = gwas.fit_null(s, Ks.toarray(), exact_max=0, keep_P=False)
    assert sparse.issparse(Ks) and sp_fit.P is None and sp_fit.converged
    np.testing.assert_allclose(sp_fit.tau, de_fit.tau, rtol=1e-5)
    np.testing.assert_allclose(sp_fit.beta, de_fit.beta, rtol=1e-5, atol=1e-7)
    m = gwas.null(cohort["bfile"], cohort["pheno"], "y", cohort["covar"], ["sex", "age"], sparse=0.05,
                  progress_bar=False)
    r = gwas.test(cohort["bfile"], m, progress_bar=False).table
    assert m.variance_ratio > 0 and r["P"].notna().all()
    assert r.nsmallest(1, "P")["ID"].iloc[0] == "rs1"


def test_loco_with_the_sparse_grm(cohort):
    """LOCO on the sparse GRM (issue 22): each chromosome's share is computed at the sparse GRM's nonzeros only
    (pattern_grm, equal to the dense GRM there), K_-c = (m K - m_c K_c) / (m - m_c) on that pattern, the random
    effects predicted again with tau held; step 2 then tests each chromosome against its own model."""
    g, s = _samples(cohort)
    K, m = gwas.grm(g, rows=s.rows, progress_bar=False, precision="double")
    Ks, ms = gwas.sparse_grm(g, 0.05, rows=s.rows, progress_bar=False, precision="double")
    C = Ks.tocoo()
    vals, mp = gwas.pattern_grm(g, C.row, C.col, rows=s.rows)
    assert mp == m == ms
    np.testing.assert_allclose(vals, K[C.row, C.col], atol=2e-6)
    chr1 = np.flatnonzero(g.variants["CHR"].to_numpy() == "1")
    v1, m1 = gwas.pattern_grm(g, C.row, C.col, rows=s.rows, variants=chr1)
    K1, m1d = gwas.grm(g, rows=s.rows, variants=chr1, progress_bar=False, precision="double")
    assert m1 == m1d
    np.testing.assert_allclose(v1, K1[C.row, C.col], atol=2e-6)
    ml = gwas.null(cohort["bfile"], cohort["pheno"], "y", cohort["covar"], ["sex", "age"], sparse=0.05, loco=True,
                   progress_bar=False)
    assert set(ml.loco) == {"1", "2", "3"}
    r = gwas.test(cohort["bfile"], ml, progress_bar=False).table
    dense = gwas.null(cohort["bfile"], cohort["pheno"], "y", cohort["covar"], ["sex", "age"], loco=True,
                      progress_bar=False)
    rd = gwas.test(cohort["bfile"], dense, progress_bar=False).table
    assert r.nsmallest(1, "P")["ID"].iloc[0] == "rs1"
    ok = r["P"].notna() & rd["P"].notna()
    assert np.corrcoef(-np.log10(r["P"][ok]), -np.log10(rd["P"][ok]))[0, 1] > 0.98


def test_sparse_grm_laplace_null_is_the_dense_laplace_null(cohort):
    """method="laplace" with a thresholded (sparse) GRM: the engine's sparse known-covariance system (sparse
    LU of I + tau W^1/2 K W^1/2) fits the same Laplace model as the dense factor of the same matrix."""
    import scipy.sparse as sparse_module

    g, s = _samples(cohort)
    n = 300
    sub = Samples(s.rows[:n], s.ids.iloc[:n].reset_index(drop=True), s.y[:n], s.X[:n], s.x_names, "binary")
    K, _ = gwas.grm(g, rows=sub.rows, progress_bar=False)
    with pytest.raises(gk.InputError, match="not positive semi-definite"):
        gwas.fit_null(sub, gwas.threshold_grm(K, 0.05), method="laplace")  # thresholding broke PSD: refused
    fam = sub.ids["FID"].to_numpy()
    Kw = K * (fam[:, None] == fam[None, :])  # the GRM within families: positive semi-definite and sparse
    Ks = sparse_module.csr_matrix(Kw)
    # a binary trait with a moderate family-level genetic variance on these samples (tau = 0.8)
    rng = np.random.default_rng(7)
    vals, vecs = np.linalg.eigh(Kw)
    b = vecs @ (np.sqrt(np.clip(vals, 0, None) * 0.8) * rng.normal(size=n))
    y = rng.binomial(1, 1 / (1 + np.exp(-(-0.3 + b)))).astype(float)
    sub = Samples(sub.rows, sub.ids, y, sub.X, sub.x_names, "binary")
    sparse_fit = gwas.fit_null(sub, Ks, method="laplace")
    dense_fit = gwas.fit_null(sub, Ks.toarray(), method="laplace")
    assert sparse_fit.converged and dense_fit.converged
    # the same model: the optimisers stop within their tolerances of one flat optimum (the logLik equality of
    # the two systems is tested to 1e-6 in tests/test_architecture.py)
    np.testing.assert_allclose(sparse_fit.tau, dense_fit.tau, rtol=0.05, atol=1e-3)
    np.testing.assert_allclose(sparse_fit.beta, dense_fit.beta, atol=2e-3)
    np.testing.assert_allclose(sparse_fit.mu, dense_fit.mu, atol=2e-3)


def test_screened_step2_is_exact_where_it_matters(cohort):
    """The default where P is stored: the variance ratio for every variant, the exact g'Pg for those whose
    variance-ratio p is below 0.01 (issue 22: step 2 stays O(n) per variant at every n)."""
    info = cohort
    m = gwas.null(info["bfile"], info["pheno"], "y", info["covar"], ["sex", "age"], trait="binary",
                  progress_bar=False)
    assert m.P is not None and m.variance_ratio > 0
    scr = gwas.test(info["bfile"], m, progress_bar=False).table
    ex = gwas.test(info["bfile"], m, progress_bar=False, exact=True).table
    vr = gwas.test(info["bfile"], m, progress_bar=False, exact=False).table
    p_vr = vr["P_NORMAL"].to_numpy()
    low = p_vr < 0.01
    assert 0 < low.sum() < 0.2 * len(vr)  # a screen, not everything
    np.testing.assert_allclose(scr["SE"][low], ex["SE"][low], rtol=1e-10)
    np.testing.assert_allclose(scr["SE"][~low & vr["SE"].notna()], vr["SE"][~low & vr["SE"].notna()], rtol=1e-12)
    small = ex["P"] < 1e-3
    np.testing.assert_allclose(scr["P"][small], ex["P"][small], rtol=1e-10)  # the hits are exact


def test_step2_chunk_is_sized_to_the_samples():
    from glmmkit.gwas.scan import chunk_for

    assert chunk_for(10_000) == 5_000 and chunk_for(40_121) == 1_246  # about 400 MB of float64 genotypes a task
    assert chunk_for(100) == 20_000 and chunk_for(10**7) == 500  # bounded both ways
    assert chunk_for(40_121, 7) == 7
    with pytest.raises(gk.errors.InputError, match="chunk"):
        chunk_for(100, 0)


def test_pca_is_the_grm_eigendecomposition_and_its_file_is_a_covariate_table(cohort, tmp_path, capsys):
    from glmmkit.cli import main

    g = gwas.Genotypes.open(cohort["bfile"])
    rows = np.arange(0, g.n_samples, 2)  # a subset of samples, in their order
    K, m = gwas.grm(g, rows=rows, progress_bar=False)
    w, V = np.linalg.eigh(K)
    w, V = w[::-1], V[:, ::-1]
    r = gwas.pca(g, n_pcs=3, rows=rows, oversample=20, tol=1e-8, max_iter=60, memory=0, progress_bar=False)
    assert r.n_variants == m and len(r.eigenvec) == len(rows)
    np.testing.assert_allclose(r.eigenval, w[:3], rtol=1e-6)
    # the genotypes held in memory packed (the default when they fit): the same to float32's precision
    held = gwas.pca(g, n_pcs=3, rows=rows, oversample=20, tol=1e-6, max_iter=60, progress_bar=False)
    np.testing.assert_allclose(held.eigenval, w[:3], rtol=1e-5)
    assert abs(held.eigenvec["PC1"].to_numpy() @ V[:, 0]) > 1 - 1e-6
    U = r.eigenvec[["PC1", "PC2", "PC3"]].to_numpy()
    np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-10)
    # PC1 (the two populations) is separated: the same vector up to sign, and the sign makes its largest loading +
    assert abs(U[:, 0] @ V[:, 0]) > 1 - 1e-8 and U[np.argmax(np.abs(U[:, 0])), 0] > 0
    # the top-3 subspace: every PC lies in the span of the exact top eigenvectors (small gaps after PC1)
    assert np.linalg.norm(V[:, :6].T @ U, axis=0).min() > 0.999
    assert r.eigenvec["IID"].tolist() == g.samples["IID"].iloc[rows].tolist()
    assert json.loads(r.to_json())["converged"] is True and "3 components" in r.summary()
    # an iteration cut short says so
    short = gwas.pca(g, n_pcs=3, tol=1e-12, max_iter=2, progress_bar=False)
    assert short.converged is False and short.n_converged < 3 and "NOT converged" in short.summary()
    with pytest.raises(gk.errors.InputError, match="n_pcs must be below the number of samples"):
        gwas.pca(g, n_pcs=10, rows=np.arange(5), progress_bar=False)
    # the CLI: plink2's .eigenvec layout, which gwas null takes as its covariate table
    assert main(["gwas", "pca", "--bfile", cohort["bfile"], "--pcs", "2", "--out", str(tmp_path / "pc")]) == 0
    assert "eigenvalues" in capsys.readouterr().out
    assert (tmp_path / "pc.eigenvec").read_text().startswith("#FID\tIID\tPC1\tPC2\n")
    assert len((tmp_path / "pc.eigenval").read_text().split()) == 2
    model = gwas.null(cohort["bfile"], cohort["pheno"], "y", tmp_path / "pc.eigenvec", ["PC1", "PC2"],
                      K=gwas.grm(g, progress_bar=False)[0], progress_bar=False)
    assert model.X.shape[1] == 3


def test_screen_with_ancestry_projected_out_works_under_population_structure(tmp_path):
    """Two populations at Fst 0.05: unrelated pairs of one population sit near +0.05 in the GRM, no sketch of at
    most half the variants separates 0.2 from them and "auto" falls back to the exact strips.  With the top PCs
    projected out of the sketch (``adjust``), the screen runs, finds every relative of the exact sparse GRM and
    keeps nothing the exact one drops, at the exact values; a family's own eigenvector among the PCs is not
    projected out (it would hide that family)."""
    info = gwas.simulate_cohort(tmp_path / "s", n_families=400, n_variants=6000, fst=0.05, seed=8)
    g = gwas.Genotypes.open(info["bfile"])
    exact, _ = gwas.sparse_grm(g, 0.2, progress_bar=False, precision="double")
    _, _, plain = gwas.screened_sparse_grm(g, 0.2, max_k=3000, progress_bar=False)
    assert not plain.screened and "exact strips" in plain.note  # the structure asks for k > 3,000
    pcs = gwas.pca(g, n_pcs=4, progress_bar=False).eigenvec[["PC1", "PC2", "PC3", "PC4"]].to_numpy()
    K, _, rep = gwas.screened_sparse_grm(g, 0.2, max_k=3000, adjust=pcs, progress_bar=False)
    # PC1 is the ancestry; the next ones are large families' own eigenvectors, left out of the projection
    assert rep.screened and 1 <= rep.adjusted < 4 and rep.k < 3000
    E = sp.triu(exact, 1).tocoo()
    found = np.asarray(K[E.row, E.col]).ravel() != 0
    assert found[E.data >= 0.3].all()  # every relative
    kp, ep = (sp.triu(K, 1) != 0).astype(int), (sp.triu(exact, 1) != 0).astype(int)
    both = kp.multiply(ep).tocoo()
    assert both.nnz == kp.nnz
    np.testing.assert_allclose(np.asarray(K[both.row, both.col]).ravel(),
                               np.asarray(exact[both.row, both.col]).ravel(), atol=1e-6)
    with pytest.raises(gk.InputError, match="one row per sample"):
        gwas.screened_sparse_grm(g, 0.2, adjust=pcs[:10], progress_bar=False)
