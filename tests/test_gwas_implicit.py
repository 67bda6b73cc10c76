"""The implicit dense GRM (K = Z Z'/m held as Z, every system by conjugate gradients): its products, the
whitened projection and the LOCO systems equal the matrix computations; the null model, LOCO and the scan
equal the matrix path's with the same trace probes; bad input is refused by name."""

import numpy as np
import pytest

from glmmkit import gwas
from glmmkit.errors import InputError
from glmmkit.gwas.implicit import ImplicitGRM, ImplicitProjection, conjugate_gradients, implicit_grm
from glmmkit.gwas.null import _GLSProjection

pytest.importorskip("bed_reader")

COVS = ["sex", "age"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("implicit")
    return gwas.simulate_cohort(d / "c", n_families=100, n_variants=1200, n_causal=80, h2=0.4, seed=11,
                                causal_extra=1.0, n_chromosomes=3)


def _samples(cohort, trait="binary", col="y"):
    g = gwas.Genotypes.open(cohort["bfile"])
    return g, gwas.match(g, gwas.read_table(cohort["pheno"]), col, gwas.read_table(cohort["covar"]), COVS, trait)


def test_products_diagonal_and_loco_equal_the_matrix(cohort):
    g, s = _samples(cohort)
    K, m = gwas.grm(g, rows=s.rows, progress_bar=False, precision="double")
    Ki = implicit_grm(g, rows=s.rows)
    assert Ki.m == m and Ki.shape == K.shape
    V = np.random.default_rng(0).normal(size=(s.n, 3))
    np.testing.assert_allclose(Ki @ V, K @ V, rtol=2e-5, atol=2e-5 * np.abs(K @ V).max())
    np.testing.assert_allclose(Ki @ V[:, 0], K @ V[:, 0], rtol=2e-5, atol=2e-5 * np.abs(K @ V).max())
    np.testing.assert_allclose(Ki.diagonal(), np.diag(K), rtol=1e-5)
    chrom = g.variants["CHR"].to_numpy()
    for c in ("1", "3"):
        Kc, mc = gwas.grm(g, rows=s.rows, variants=np.flatnonzero(chrom == c), progress_bar=False,
                          precision="double")
        Km = (m * K - mc * Kc) / (m - mc)
        np.testing.assert_allclose(Ki.without(c) @ V, Km @ V, atol=3e-5 * np.abs(Km @ V).max())
        np.testing.assert_allclose(Ki.without(c).diagonal(), np.diag(Km), rtol=1e-5)
    # several chromosomes' columns in one product
    ex = [Ki.columns_of("1"), None, Ki.columns_of("2")]
    got = Ki.product(V, ex)
    tol = 1e-6 * np.abs(got).max()  # float32 products: another BLAS kernel for one column
    np.testing.assert_allclose(got[:, 1], Ki @ V[:, 1], atol=tol)
    np.testing.assert_allclose(got[:, 2], Ki.without("2") @ V[:, 2], atol=tol)


def test_whitened_projection_is_the_gls_projection(cohort):
    """P = D C A^+ C D (whitened, covariates projected out) equals Sigma^-1 - Sigma^-1 X (X'Sigma^-1 X)^-1
    X'Sigma^-1 by a Cholesky of the matrix; beta and P Y too; several systems at once equal each alone."""
    g, s = _samples(cohort)
    K, _ = gwas.grm(g, rows=s.rows, progress_bar=False, precision="double")
    Ki = implicit_grm(g, rows=s.rows)
    rng = np.random.default_rng(1)
    W = rng.uniform(0.1, 0.25, s.n)
    Y = s.X @ np.array([0.3, -0.2, 0.01]) + rng.normal(size=s.n)
    V = rng.normal(size=(s.n, 4))
    for phi, tau in ((1.0, 0.7), (0.8, 0.0), (2.0, 3.0)):
        dense = _GLSProjection(W, phi, tau, K, s.X, Y)
        imp = ImplicitProjection(W, phi, tau, Ki, s.X, Y)
        scale = np.abs(dense.apply(V)).max()
        np.testing.assert_allclose(imp.apply(V), dense.apply(V), atol=2e-5 * scale)
        np.testing.assert_allclose(imp.PY, dense.PY, atol=2e-5 * np.abs(dense.PY).max())
        np.testing.assert_allclose(imp.beta, dense.beta, rtol=1e-4, atol=1e-6)
    # three systems (own weights, own chromosome left out) in lockstep = each alone
    Ws = np.column_stack([W, W[::-1], np.full(s.n, 0.2)])
    Ys = np.column_stack([Y, -Y, Y + 1])
    ex = [Ki.columns_of(c) for c in ("1", "2", "3")]
    many = ImplicitProjection(Ws, 1.3, 0.9, Ki, s.X, Ys, ex)
    for j, c in enumerate(("1", "2", "3")):
        one = ImplicitProjection(Ws[:, j], 1.3, 0.9, Ki.without(c), s.X, Ys[:, j])
        np.testing.assert_allclose(many.PY[:, j], one.PY, atol=1e-6 * np.abs(one.PY).max())
        np.testing.assert_allclose(many.beta[:, j], one.beta, rtol=1e-5, atol=1e-8)


def test_conjugate_gradients_solve_several_columns():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(40, 40))
    A = A @ A.T + 40 * np.eye(40)
    B = rng.normal(size=(40, 3))
    X = conjugate_gradients(lambda V, live: A @ V, B, np.diag(A), tol=1e-12)
    np.testing.assert_allclose(X, np.linalg.solve(A, B), rtol=1e-9, atol=1e-12)
    x = conjugate_gradients(lambda V, live: A @ V, B[:, 0])  # the default tolerance, no preconditioner
    assert np.linalg.norm(A @ x - B[:, 0]) <= 1e-6 * np.linalg.norm(B[:, 0])


@pytest.mark.parametrize("trait,col", [("quantitative", "liability"), ("binary", "y")])
def test_null_model_loco_and_scan_equal_the_matrix_path(cohort, trait, col):
    """With the same Hutchinson probes (exact_max=0), the implicit null model is the matrix one: tau, phi and
    beta, each chromosome's LOCO random effects, the variance ratio and every p-value."""
    args = (cohort["bfile"], cohort["pheno"], col, cohort["covar"], COVS)
    kw = dict(trait=trait, loco=True, exact_max=0, loco_exact_max=0, progress_bar=False)
    imp = gwas.null(*args, grm_form="implicit", **kw)
    mat = gwas.null(*args, grm_form="matrix", **kw)
    assert imp.converged and mat.converged and imp.P is None
    np.testing.assert_allclose(imp.tau, mat.tau, rtol=1e-4)
    np.testing.assert_allclose(imp.phi, mat.phi, rtol=1e-4)
    np.testing.assert_allclose(imp.beta, mat.beta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(imp.variance_ratio, mat.variance_ratio, rtol=1e-4)
    assert set(imp.loco) == set(mat.loco) == {"1", "2", "3"}
    for c in imp.loco:
        b_mat = mat.loco[c]["b"]
        np.testing.assert_allclose(imp.loco[c]["b"], b_mat, atol=1e-4 * np.abs(b_mat).max())
        np.testing.assert_allclose(imp.loco[c]["mu"], mat.loco[c]["mu"], atol=1e-4 * np.abs(mat.loco[c]["mu"]).max())
    ri = gwas.test(cohort["bfile"], imp, progress_bar=False).table
    rm = gwas.test(cohort["bfile"], mat, progress_bar=False).table
    np.testing.assert_allclose(-np.log10(ri["P"]), -np.log10(rm["P"]), rtol=1e-3, atol=1e-4)
    assert ri.nsmallest(1, "P")["ID"].iloc[0] == "rs1"


def test_auto_form_and_bad_input(cohort, monkeypatch):
    from glmmkit.gwas import scan

    args = (cohort["bfile"], cohort["pheno"], "y", cohort["covar"], COVS)
    monkeypatch.setattr(scan, "IMPLICIT_MIN_SAMPLES", 10)  # this cohort's 400 samples count as large
    seen = []
    real = scan.fit_null
    monkeypatch.setattr(scan, "fit_null", lambda s, K, **kw: seen.append(type(K).__name__) or real(s, K, **kw))
    gwas.null(*args, progress_bar=False, exact_max=100)
    gwas.null(*args, progress_bar=False)  # exact_max (5,000) keeps the matrix and its P at this size
    assert seen == ["ImplicitGRM", "ndarray"]
    g = gwas.Genotypes.open(cohort["bfile"])
    Ki = implicit_grm(g)
    with pytest.raises(InputError, match="sparse="):
        gwas.null(*args, K=Ki, sparse=0.05, progress_bar=False)
    with pytest.raises(InputError, match="method='pql'"):
        gwas.null(*args, K=Ki, method="laplace", progress_bar=False)
    with pytest.raises(InputError, match="samples"):
        gwas.null(*args, K=ImplicitGRM(Ki.Z[:-5]), progress_bar=False)
    with pytest.raises(InputError, match="GB of genotypes"):
        implicit_grm(g, max_bytes=1e3)
    with pytest.raises(InputError, match=f"lie in 0..{g.n_samples - 1}"):
        implicit_grm(g, rows=np.array([0, g.n_samples]))
    with pytest.raises(InputError, match="variants must lie"):
        implicit_grm(g, variants=np.array([g.n_variants]))
    with pytest.raises(InputError, match="integer positions"):
        implicit_grm(g, variants=np.array([0.5, 1.5]))
    with pytest.raises(InputError, match="empty"):
        implicit_grm(g, variants=np.array([], dtype=int))
    with pytest.raises(InputError, match="at least 2 samples"):
        implicit_grm(g, rows=np.array([3]))
    with pytest.raises(InputError, match=f"V must have {g.n_samples} rows"):
        Ki.product(np.ones(g.n_samples + 1))
    with pytest.raises(InputError, match="variants must lie"):  # every reader's chunks check their positions
        gwas.grm(g, variants=np.array([0, g.n_variants]))
    with pytest.raises(InputError, match="grm_form"):
        gwas.null(*args, grm_form="lazy", progress_bar=False)
    for clash in (dict(sparse=0.05), dict(K=Ki), dict(grm_prefix="x")):
        with pytest.raises(InputError, match="cannot be combined"):
            gwas.null(*args, grm_form="implicit", progress_bar=False, **clash)
    with pytest.raises(InputError, match="chromosome labels"):
        ImplicitGRM(Ki.Z).without("1")
    # an implicit GRM of chosen model variants (BOLT-LMM's --modelSnps) takes LOCO; without labels it cannot
    model = gwas.null(*args, K=implicit_grm(g, variants=np.arange(0, g.n_variants, 2)), loco=True, progress_bar=False)
    assert set(model.loco) == {"1", "2", "3"}
    with pytest.raises(InputError, match="chromosome labels"):
        gwas.null(*args, K=ImplicitGRM(Ki.Z), loco=True, progress_bar=False)
    with pytest.raises(InputError, match="implicit GRM"):
        gwas.null(*args, K=np.eye(Ki.n), loco=True, progress_bar=False)


def test_cli_grm_form(cohort, tmp_path, capsys):
    from glmmkit.cli import main

    rc = main(["gwas", "null", "--bfile", str(cohort["bfile"]), "--pheno", str(cohort["pheno"]), "--pheno-name", "liability",
               "--covar", str(cohort["covar"]), "--covar-name", "sex,age", "--trait", "quantitative", "--loco",
               "--grm-form", "implicit", "--out", str(tmp_path / "s1")])
    assert rc == 0
    model = gwas.NullModel.load(tmp_path / "s1")
    assert set(model.loco) == {"1", "2", "3"} and model.converged


@pytest.mark.parametrize("fmt", ["bed", "bgen-dosages"])
def test_packed_genotypes_are_the_standardised_genotypes(fmt, monkeypatch):
    """implicit_grm keeps one byte a genotype: hard calls (with missing calls) exactly, dosages within half a step
    of 0.01; every product path (whole-row tiles, narrow tiles, one or two threads, LOCO columns, V far from
    centred) equals Z (Z' V) / m in float64."""
    pytest.importorskip("cbgen")
    from pathlib import Path

    from glmmkit.gwas.grm import standardised_columns

    D = Path(__file__).parent / "reference" / "gwas" / "formats"
    src = gwas.open_genotypes(str(D / "cohort")) if fmt == "bed" else \
        gwas.open_genotypes(bgen=D / "cohort_dsb.bgen", sample=D / "cohort_dsb.sample")
    Ki = implicit_grm(src)
    Zf = standardised_columns(src, None, None, 0.01).astype(np.float64)
    assert Ki.Z.shape == Zf.shape and Ki.nbytes < Zf.size * 1.5  # a byte a genotype (and the missing calls)
    if fmt == "bed":
        assert Ki._E.nnz > 0  # this cohort has missing calls
        np.testing.assert_allclose(Ki.Z, Zf, atol=1e-5)
    else:
        step = 0.005 * Ki._scale.max() / 0.01  # half a step of 0.01, standardised
        assert 0 < np.abs(Ki.Z - Zf).max() <= step * 1.001
    # the packed matrix in float64 (Z above is float32: its column sums are off by 1e-5, which a V far from
    # centred would turn into an error of the reference, not of the product)
    Z = ((Ki._codes - Ki._centre[:, None]) * Ki._scale[:, None] + Ki._E.toarray()).T
    np.testing.assert_allclose(Z, Ki.Z, atol=1e-5)
    rng = np.random.default_rng(3)
    chrom = Ki.chrom
    for k in (1, 3, 40):
        V = rng.normal(size=(Ki.n, k)) + 50.0 * rng.uniform(size=k)  # far from centred
        want = Z @ (Z.T @ V) / Z.shape[1]
        ex = [np.flatnonzero(chrom == chrom[0]) if j % 2 else None for j in range(k)]
        want_ex = want.copy()
        for j in range(1, k, 2):
            keep = chrom != chrom[0]
            want_ex[:, j] = Z[:, keep] @ (Z[:, keep].T @ V[:, j]) / keep.sum()
        for tile, threads in ((ImplicitGRM.TILE_BYTES, 1), (4096, 2), (4096, 1)):
            monkeypatch.setattr(ImplicitGRM, "TILE_BYTES", tile)
            Ki.threads = threads
            scale = np.abs(want).max()
            np.testing.assert_allclose(Ki @ V, want, atol=2e-6 * scale)
            np.testing.assert_allclose(Ki.product(V, ex), want_ex, atol=2e-6 * scale)
    np.testing.assert_allclose(Ki.diagonal(), (Z**2).sum(axis=1) / Z.shape[1], rtol=1e-6)
