"""Several cell types in one call (issue 22): each tested on its own cells exactly as a separate ``de`` call
would, BH within the cell type, a cell type with too few donors skipped and counted; the CLI's --celltype."""

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

ad = pytest.importorskip("anndata")


@pytest.fixture(scope="module")
def cells():
    parts = []
    for seed, (name, n_cells) in enumerate((("T", 1200), ("B", 900), ("NK", 300))):
        x = gk.singlecell.simulate(n_genes=200, n_cells=n_cells, n_subjects=8, seed=seed + 1, lfc=0.8)
        x.obs["cell_type"] = name
        if name == "NK":  # one donor only in the first condition: cannot be tested
            first = x.obs["condition"].iloc[0]
            keep = (x.obs["condition"] != first) | (x.obs["subject"] == x.obs["subject"].iloc[0])
            x = x[keep.to_numpy()].copy()
        parts.append(x)
    allc = ad.concat(parts, index_unique="-")
    allc.var = parts[0].var
    return allc


def test_every_cell_type_in_one_call_equals_separate_calls(cells):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = gk.singlecell.de(cells, "subject", "condition", celltype="cell_type", progress_bar=False)
        alone = gk.singlecell.de(cells[(cells.obs["cell_type"] == "B").to_numpy()].copy(), "subject", "condition",
                                 progress_bar=False)
    assert set(r.results) == {"T", "B"} and r.n_skipped == 1
    nk = r.celltypes.loc["NK"]
    assert nk["status"] == "skipped" and "fewer than 2 donors" in nk["reason"] and nk["n_cells"] > 0
    b = r.table[r.table["cell_type"] == "B"].reset_index(drop=True)
    np.testing.assert_allclose(b["p"].to_numpy(float), alone.table["p"].to_numpy(float), rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(b["fdr"].to_numpy(float), alone.table["fdr"].to_numpy(float), rtol=1e-10,
                               equal_nan=True)  # BH within the cell type
    assert len(r.table) == 2 * cells.n_vars
    assert r.celltypes.loc["T", "n_fdr05"] == int((r.results["T"].table["fdr"] <= 0.05).sum())
    import json

    json.dumps(r.to_dict(), allow_nan=False)
    assert "skipped" in r.summary()


def test_cell_types_share_one_worker_pool(cells, monkeypatch):
    """With workers=2 the cell types run in one process pool (started once; each call's shared design reaches
    a worker once), and the results equal the single-process run bit for bit."""
    import concurrent.futures
    from glmmkit import parallel

    started = []
    real = concurrent.futures.ProcessPoolExecutor

    class Counting(real):
        def __init__(self, *a, **k):
            started.append(1)
            super().__init__(*a, **k)

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = gk.singlecell.de(cells, "subject", "condition", celltype="cell_type", progress_bar=False, workers=1)
        two = gk.singlecell.de(cells, "subject", "condition", celltype="cell_type", progress_bar=False, workers=2)
    assert len(started) == 1  # two cell types, two passes each (first fit, prior): one pool
    pd.testing.assert_frame_equal(one.table, two.table)
    # the keyed protocol on its own: a shared object of None, and several calls in one pool
    with parallel.shared_pool(2):
        a = parallel.map_tasks(_plus, range(7), shared=None, workers=2, progress_bar=False)
        b = parallel.map_tasks(_plus, range(7), shared=10, workers=2, progress_bar=False)
    assert a == [None] * 7 and b == list(range(10, 17))


def _plus(shared, item):
    return None if shared is None else shared + item


def test_celltype_cli_and_bad_input(cells, tmp_path, capsys):
    from glmmkit.cli import main

    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    out = tmp_path / "de.tsv"
    assert main(["sc-de", str(path), "--subject", "subject", "--condition", "condition", "--celltype", "cell_type",
                 "--out", str(out)]) == 0
    t = pd.read_csv(out, sep="\t")
    assert set(t["cell_type"]) == {"T", "B"}
    s = pd.read_csv(tmp_path / "de.celltypes.tsv", sep="\t")
    assert set(s["cell_type"]) == {"T", "B", "NK"} and (s["status"] == "skipped").sum() == 1
    with pytest.raises(gk.InputError, match="not in obs"):
        gk.singlecell.de(cells, "subject", "condition", celltype="celltype", progress_bar=False)
    with pytest.raises(gk.InputError, match="no cell type"):
        gk.singlecell.de(cells, "subject", "condition", celltype="cell_type", min_donors=10, progress_bar=False)


def test_scverse_conventions(cells):
    """Counts from layers["counts"] when X is normalised (said in a DataWarning), the usual obs names found,
    results written back into varm / uns."""
    x = cells[(cells.obs["cell_type"] == "T").to_numpy()].copy()
    x.layers["counts"] = x.X.copy()
    import scipy.sparse as sp

    lib = np.asarray(x.X.sum(axis=1)).ravel()
    x.X = sp.csr_matrix(sp.diags(1e4 / lib) @ x.X).log1p()  # scanpy's normalize_total + log1p
    x.obs = x.obs.rename(columns={"subject": "donor_id", "condition": "group"})
    with pytest.warns(gk.DataWarning, match="layers\\['counts'\\]"):
        r = gk.singlecell.de(x, progress_bar=False)  # donor_id and group found by name
    ref = gk.singlecell.de(cells[(cells.obs["cell_type"] == "T").to_numpy()].copy(), "subject", "condition",
                           progress_bar=False)
    np.testing.assert_allclose(r.table["p"].to_numpy(float), ref.table["p"].to_numpy(float), rtol=1e-10,
                               equal_nan=True)
    r.to_adata(x)
    assert x.varm["glmmkit_de"].shape[0] == x.n_vars and "p" in x.varm["glmmkit_de"].columns
    assert x.uns["glmmkit_de"]["model"].startswith("nbinom2")
    x.obs = x.obs.rename(columns={"group": "arm"})
    with pytest.raises(gk.InputError, match="no condition column given"):
        gk.singlecell.de(x, progress_bar=False)


def test_trend_prior_follows_expression_and_stays_bounded():
    """fit_prior with expression: subject variances whose scale falls with expression (v ~ s0^2(x) d0 / chi2_d0,
    observed on 16 subjects with noise that grows as expression falls) give a trend close to s0^2(x), held at
    its boundary beyond the fitted genes."""
    from glmmkit.singlecell.prior import fit_prior

    rng = np.random.default_rng(3)
    G, S, d0 = 3000, 16, 8.0
    x = rng.normal(0, 1, G)
    s2 = np.exp(-2.5 - 0.8 * x)
    v_true = s2 * d0 / rng.chisquare(d0, G)
    Xs = np.column_stack([np.ones(S), np.arange(S) >= S // 2]).astype(float)
    noise = 0.02 * np.exp(-x)[:, None] * rng.lognormal(0, 1, (G, S))  # unequal subjects, noisier when low
    y = rng.normal(0, 1, (G, 1)) + rng.normal(size=(G, S)) * np.sqrt(v_true[:, None] + noise)
    vp = fit_prior(y, noise, Xs, np.ones(G, bool), expression=x)
    assert vp.trend and vp.active
    inside = np.abs(x) < 1.5
    assert np.max(np.abs(np.log(vp.s2[inside] / s2[inside]))) < 0.35
    assert 5 < vp.d0 < 13
    ok = np.ones(G, bool)
    ok[-1] = False  # a gene outside the fitted ones, far beyond their expression
    far = fit_prior(y, noise, Xs, ok, expression=np.r_[x[:-1], 50.0])
    assert far.s2[-1] == pytest.approx(far.s2[np.argmax(x[:-1])], rel=1e-6)  # held at the boundary
