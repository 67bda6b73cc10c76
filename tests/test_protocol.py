"""One result protocol across the library: summary() returns text (never prints), to_dict() is strict JSON,
interval columns are lower/upper, one keyword vocabulary, one family vocabulary."""

import inspect
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.protocol import INTERVAL_COLUMNS, Result, TestResult

from .conftest import ref_case


def _check(result, capsys):
    assert isinstance(result, Result)
    text = result.summary()
    assert isinstance(text, str) and text.strip()
    assert not capsys.readouterr().out  # the library never prints a summary itself
    assert str(result) == text
    d = result.to_dict()
    json.dumps(d, allow_nan=False)  # strict JSON: no NaN, no Infinity, only plain types
    assert json.loads(result.to_json()) == d
    return d


@pytest.fixture(scope="module")
def cbpp():
    d = gk.datasets.load("cbpp")
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, "binomial")


def test_fit_follows_the_protocol(cbpp, capsys):
    d = _check(cbpp, capsys)
    assert d["family"] == "binomial" and d["nobs"] == 56


def test_interval_columns_are_lower_upper_everywhere(cbpp):
    assert tuple(cbpp.confint().columns) == INTERVAL_COLUMNS
    assert tuple(cbpp.confint(method="profile", parm="period[T.2]").columns) == INTERVAL_COLUMNS
    nd = cbpp.spec.data.head(3)
    assert set(INTERVAL_COLUMNS) <= set(cbpp.predict_interval(nd, nsim=50, seed=1).columns)
    nb = gk.glmer("count ~ mined + (1 | site)", gk.datasets.load("salamanders"), "nbinom2")
    assert set(INTERVAL_COLUMNS) <= set(nb.family_params.columns)
    data, _ = ref_case("bcg_meta")
    m = gk.meta.glmm(data, model="UM.FS", tau2_ci=False, ai="ai", bi="bi", ci="ci", di="di", study="trial")
    assert set(INTERVAL_COLUMNS) <= set(m.coef.columns) and set(INTERVAL_COLUMNS) <= set(m.studies.columns)
    assert set(INTERVAL_COLUMNS) <= set(m.natural().columns)
    assert "std_error" in m.coef.columns


def test_meta_fit_follows_the_protocol(capsys):
    data, _ = ref_case("bcg_meta")
    m = gk.meta.glmm(data, model="UM.FS", tau2_ci=False, ai="ai", bi="bi", ci="ci", di="di", study="trial")
    d = _check(m, capsys)
    assert d["k"] == 13 and d["coef"][0]["lower"] < d["coef"][0]["upper"]
    r = gk.meta.rma(data, method="REML", ai="ai", bi="bi", ci="ci", di="di", study="trial")
    _check(r, capsys)


def test_tests_and_diagnostics_follow_the_protocol(cbpp, capsys):
    sal = gk.datasets.load("salamanders")
    pois = gk.glmer("count ~ mined + (1 | site)", sal, "poisson")
    for res in (gk.pearson_dispersion(pois), gk.dispersion_test(pois, method="pearson"),
                gk.dispersion_test(pois, nsim=4, seed=1), gk.simulate_residuals(pois, nsim=20, seed=1)):
        _check(res, capsys)
    t = gk.dispersion_test(pois, nsim=4, seed=1)
    assert isinstance(t, TestResult) and t["p"] == t.p and 0 < t["p"] <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = gk.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cbpp.spec.data, "binomial")
    _check(gk.bootstrap_lrt(m0, cbpp, nsim=3, seed=1, progress_bar=False), capsys)


def test_overdispersion_report_follows_the_protocol(capsys):
    sal = gk.datasets.load("salamanders")
    rep = gk.overdispersion_report("count ~ mined + (1 | site)", sal, nsim=20, nsim_bootstrap=0)
    d = _check(rep, capsys)
    assert len(d["models"]) == 4


def test_application_results_follow_the_protocol(tmp_path, capsys):
    pytest.importorskip("bed_reader")
    anndata = pytest.importorskip("anndata")  # noqa: F841
    gwas = gk.gwas
    info = gwas.simulate_cohort(tmp_path / "c", n_families=60, n_variants=300, n_causal=10, h2=0.3, seed=2)
    m = gwas.null(info["bfile"], info["pheno"], "y", info["covar"], ["sex", "age"], trait="binary",
                  progress_bar=False)
    _check(m, capsys)
    scan = gwas.test(info["bfile"], m, progress_bar=False)
    d = _check(scan, capsys)
    assert d["variants"] == 300 and isinstance(scan.table, pd.DataFrame) and "P" in scan.table
    adata = gk.singlecell.simulate(n_genes=120, n_cells=600, n_subjects=6, seed=1)
    de = gk.singlecell.de(adata, "subject", "condition", progress_bar=False)
    d = _check(de, capsys)
    assert d["genes"] == 120 and "std_error" in de.table.columns


def test_one_family_vocabulary_in_every_entry_point():
    # glmmTMB's names everywhere; nb2 / nb1 are accepted as the same families
    assert gk.families.get_family("nb2").name == "nbinom2" == gk.families.get_family("nbinom2").name
    assert gk.families.get_family("nb1").name == "nbinom1"
    adata = gk.singlecell.simulate(n_genes=100, n_cells=300, n_subjects=6, seed=2)
    a = gk.singlecell.de(adata, "subject", "condition", family="nbinom2", progress_bar=False, prior=None)
    b = gk.singlecell.de(adata, "subject", "condition", family="nb2", progress_bar=False, prior=None)
    assert np.allclose(a.table["p"], b.table["p"], equal_nan=True)
    with pytest.raises(gk.InputError, match="nbinom2"):
        gk.singlecell.de(adata, "subject", "condition", family="binomial", progress_bar=False)


def test_one_keyword_vocabulary():
    # resampling functions take nsim, seed and (where they refit) workers and client
    fns = [gk.inference.bootstrap, gk.inference.confint_boot, gk.bootstrap_lrt, gk.dispersion_test,
           gk.simulate_residuals, gk.phylo.heritability, gk.overdispersion_report, gk.Fit.simulate,
           gk.Fit.predict_interval]
    for fn in fns:
        params = inspect.signature(fn).parameters
        assert not {"nboot", "n_sim", "n_boot", "nrep", "B"} & set(params), fn.__name__
    for fn in (gk.inference.bootstrap, gk.dispersion_test, gk.phylo.heritability, gk.overdispersion_report):
        params = inspect.signature(fn).parameters
        assert {"nsim", "seed"} <= set(params) or {"nsim_bootstrap", "seed"} <= set(params), fn.__name__
        assert {"workers", "client"} <= set(params), fn.__name__


def test_a_result_class_must_write_its_summary_and_values():
    class Half(Result):
        def summary(self):
            return "half"

    with pytest.raises(TypeError):
        Half()
