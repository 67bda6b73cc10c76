"""The blocked Cholesky against the dense matrix it stands for, on awkward term layouts."""

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

from glmmkit.engine.blocked import Structure
from glmmkit.formula.spec import ModelSpec


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 30, n)  # 30 x 12 crossed with ~13 pairs a row: the dense cross-block path
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "z": rng.normal(size=n),
        "g": [f"g{i}" for i in g],
        "h": [f"h{i}" for i in rng.integers(0, 12, n)],
        "k": [f"k{i}" for i in rng.integers(0, 3, n)],
        "s": [f"s{i}" for i in rng.integers(0, 8, n)],
    })


def _relmat(levels, seed=1):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(len(levels), len(levels)))
    K = A @ A.T / len(levels) + np.eye(len(levels)) * 0.1
    return pd.DataFrame(K, index=levels, columns=levels)


FORMULAS = [
    "y ~ x + (1 + x | g) + (1 | h)",  # vector first term, scalar crossed tail
    "y ~ x + (1 | g) + (1 + z | h) + (1 | g:k)",  # nested term first (90 levels), vector tail
    "y ~ x + (x || g) + (1 | h) + (1 | s)",  # diagonal term, two tail terms
    "y ~ x + (1 | g) + (1 | s)",  # with s as a known-matrix term (below)
    "y ~ x + (1 | g) + (1 | h) + (1 | k)",  # scalar terms: the sparse path's precomputed pairs
]


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("with_d", [False, True])
def test_blocked_factor_matches_dense(formula, with_d, cross_storage):
    d = _data()
    relmat = {"s": _relmat([f"s{i}" for i in range(8)])} if formula == FORMULAS[3] else None
    spec = ModelSpec.from_formula(formula, d, "gaussian", relmat=relmat, lmm=True)
    st = Structure(spec.terms)
    assert st.dense_cross == (cross_storage == "dense")
    if formula == FORMULAS[4]:
        assert (st._schur_pairs is not None) == (cross_storage == "sparse")
    rng = np.random.default_rng(3)
    theta = np.concatenate([t.cov.theta0() for t in spec.terms]) * rng.uniform(0.3, 1.5)
    theta += np.where(np.concatenate([t.cov.lower() for t in spec.terms]) == 0, 0, 0.2)
    w = rng.uniform(0.2, 2.0, len(d))
    D = spec.X if with_d else None
    f = st.factor(st.raw(w, D), theta)
    # dense reference in layout order
    thetas = st.split_theta(theta)
    Z = sp.hstack([t.csr() for t in st.terms]).toarray()
    lams = []
    for t, th in zip(st.terms, thetas):
        lams.append(t.cov.dense_lambda(th) if t.is_known else np.kron(np.eye(t.q), t.cov.template(th)))
    Lam = sla.block_diag(*lams)
    ZL = Z @ Lam
    cols = ZL if D is None else np.hstack([ZL, D])
    A = cols.T @ (w[:, None] * cols)
    A[: st.Q, : st.Q] += np.eye(st.Q)
    Ld = np.linalg.cholesky(A)
    logdet_re = 2 * np.sum(np.log(np.diag(Ld)[: st.Q]))
    assert f.logdet_re() == pytest.approx(logdet_re, rel=1e-10)
    rhs = rng.normal(size=A.shape[0])
    assert np.allclose(f.solve(rhs), np.linalg.solve(A, rhs), rtol=1e-8, atol=1e-10)
    # the operators used by PIRLS
    u = rng.normal(size=st.Q)
    assert np.allclose(st.zlam_u(theta, u), ZL @ u)
    v = rng.normal(size=len(d))
    assert np.allclose(st.lam_zt(theta, v), ZL.T @ v)
    # diagonal blocks of the inverse for term 1 (ranef conditional variances), without D
    if D is None and st.first is not None:
        inv = np.linalg.inv(A)
        k = st.first.k
        blocks = f.inverse_diag_blocks_first(k)
        for lev in (0, st.first.q // 2, st.first.q - 1):
            sl = slice(lev * k, lev * k + k)
            assert np.allclose(blocks[lev], inv[sl, sl], rtol=1e-8)
        assert np.allclose(f.inverse_tail(), inv[st.Q1 :, st.Q1 :], rtol=1e-8)


@pytest.mark.parametrize("dense", [False, True])
def test_dense_and_sparse_cross_blocks_agree(dense):
    d = _data(seed=5)
    spec = ModelSpec.from_formula("y ~ x + (1 + x | g) + (1 | h) + (1 | g:k)", d, "gaussian", lmm=True)
    st = Structure(spec.terms)
    theta = np.array([0.8, 0.3, 0.5, 0.7, 1.1])
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(d))
    ref = st.factor(st.raw(w, spec.X), theta)
    st.dense_cross = dense
    f = st.factor(st.raw(w, spec.X), theta)
    assert f.logdet_re() == pytest.approx(ref.logdet_re(), rel=1e-12)
    assert np.allclose(f.Lt, ref.Lt)


@pytest.mark.parametrize("with_d", [False, True])
def test_diagonal_tail_path_matches_general(with_d):
    """Two-level nesting: the trailing random-effects block is diagonal and is factored elementwise."""
    d = _data(seed=7)
    spec = ModelSpec.from_formula("y ~ x + (1 | g/k)", d, "gaussian", lmm=True)
    st = Structure(spec.terms)
    assert st.tail_diagonal
    w = np.random.default_rng(1).uniform(0.5, 1.5, len(d))
    theta = np.array([0.7, 1.3])
    D = spec.X if with_d else None
    f = st.factor(st.raw(w, D), theta)
    st.tail_diagonal = False
    ref = st.factor(st.raw(w, D), theta)
    assert f.logdet_re() == pytest.approx(ref.logdet_re(), rel=1e-12)
    # without dense columns the factor is held as its diagonal (DiagonalLower)
    assert hasattr(f.Lt, "dense") != with_d
    assert np.allclose(f.Lt.dense() if hasattr(f.Lt, "dense") else f.Lt, ref.Lt)
    rhs = np.random.default_rng(2).normal(size=st.Q + (spec.p if with_d else 0))
    assert np.allclose(f.solve(rhs), ref.solve(rhs))
    if not with_d:
        assert np.allclose(f.inverse_diag_blocks_first(1), ref.inverse_diag_blocks_first(1))
        assert np.allclose(f.inverse_tail(), ref.inverse_tail())


def test_layout_orders_terms_by_levels():
    d = _data()
    spec = ModelSpec.from_formula("y ~ x + (1 | h) + (1 | g) + (1 | g:k)", d, "gaussian", lmm=True)
    st = Structure(spec.terms)
    assert [t.group for t in st.terms] == ["g:k", "g", "h"]
