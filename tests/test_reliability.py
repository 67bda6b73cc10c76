"""Regression tests of issue 16: each failure a hostile or careless user met, and what happens now."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.cli import main
from glmmkit.summary import format_summary

from .fuzzing import gwas_cohort, run_cli


@pytest.fixture
def df():
    rng = np.random.default_rng(3)
    n = 120
    return pd.DataFrame({
        "y": rng.binomial(1, 0.4, n), "count": rng.poisson(3, n), "x": rng.normal(size=n),
        "pos": rng.gamma(2.0, 2.0, n), "g": [f"g{i % 12}" for i in range(n)], "h": [f"h{i % 3}" for i in range(n)],
    })


# ---- no raw exceptions -----------------------------------------------------------------------------
def test_weights_and_offset_naming_a_missing_column(df):
    with pytest.raises(gk.InputError, match=r"weights='nope' is not a column of the data"):
        gk.glmer("y ~ x + (1 | g)", df, weights="nope")
    with pytest.raises(gk.InputError, match=r"offset='nope' is not a column"):
        gk.glmer("count ~ x + (1 | g)", df, "poisson", offset="nope")


def test_weights_array_beside_rows_with_missing_values(df):
    df.loc[[3, 7], "x"] = np.nan
    w = np.arange(1, 121, dtype=float)
    with pytest.raises(gk.InputError, match=r"weights has shape \(118,\) for 120 rows .*before rows with missing"):
        gk.glmer("count ~ x + (1 | g)", df, "poisson", weights=w[:118])
    with pytest.warns(gk.DroppedRowsWarning):
        fit = gk.glmer("count ~ x + (1 | g)", df, "poisson", weights=w)  # one weight per row of df: subset with it
    np.testing.assert_array_equal(fit.spec.wt, np.delete(w, [3, 7]))


def test_relmat_that_is_not_square(df):
    lev = [f"g{i}" for i in range(12)]
    with pytest.raises(gk.InputError, match=r"must be square; it has shape \(12, 11\)"):
        gk.glmer("y ~ x + (1 | g)", df, relmat={"g": (np.eye(12)[:, :11], lev)})
    with pytest.raises(gk.InputError, match="12 rows but 11 names"):
        gk.glmer("y ~ x + (1 | g)", df, relmat={"g": (np.eye(12), lev[:11])})


def test_predict_interval_with_no_simulations(df):
    fit = gk.glmer("y ~ x + (1 | g)", df)
    for nsim in (0, -1, 2.5):
        with pytest.raises(gk.InputError, match="nsim must be a whole number"):
            fit.predict_interval(df.head(2), nsim=nsim)
    with pytest.raises(gk.InputError, match=r"level must be a number in \(0, 1\)"):
        fit.predict_interval(df.head(2), nsim=10, level=95)


def test_gamma_with_its_default_inverse_link_on_ordinary_positive_data():
    """The GLM start's first step left the inverse link's domain (a negative linear predictor): it now
    restarts from the intercept-only fit; every one of these used to fail."""
    for seed in (49, 83, 89, 227, 232):
        rng = np.random.default_rng(seed)
        n, ng = rng.integers(10, 200), rng.integers(2, 15)
        d = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, ng, n).astype(str)})
        d["y"] = rng.gamma(rng.uniform(0.5, 5), 10 ** rng.uniform(-3, 4), n) * np.exp(0.3 * d.x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gk.SingularFitWarning)
            fit = gk.glmer("y ~ x + (1 | g)", d, "Gamma")
        assert np.isfinite(fit.loglik) and np.all(np.isfinite(fit.coef_table.to_numpy()))


def test_pipe_in_the_fixed_part_and_code_in_a_formula(df):
    with pytest.raises(gk.FormulaError, match=r"'\|' in the fixed part"):
        gk.glmer("y ~ x | g + (1 | g)", df)
    for code in ("y ~ __import__('os').system('true') + (1 | g)", "y ~ x + (1 | g); import os",
                 "y ~ (lambda: 1)() + (1 | g)"):
        with pytest.raises(gk.FormulaError, match="not code"):
            gk.glmer(code, df)
    with pytest.raises(gk.FormulaError, match="must be a string"):
        gk.glmer(3, df)


def test_newick_text_where_a_tree_is_expected():
    K = gk.phylo.vcv("((a:1,b:1):1,c:2);")
    assert list(K.index) == ["a", "b", "c"] and K.loc["a", "b"] == 1.0
    with pytest.raises(TypeError, match="a tree must be a glmmkit Tree"):
        gk.phylo.vcv(42)


def test_read_tree_on_a_deep_ladder_tree():
    text = "t0:1"
    for i in range(1, 3000):
        text = f"(t{i}:1,{text}):1"
    tree = gk.phylo.read_tree(text + ";")
    assert tree.n_tips == 3000 and tree.depth[tree.is_tip].max() == pytest.approx(2999.0)


def test_newick_reader_agrees_with_the_newick_library():
    newick = pytest.importorskip("newick")
    text = gk.datasets.tree_text("isolates")
    ours = gk.phylo.read_tree(text)
    nodes = list(newick.loads(text)[0].walk())
    assert ours.names == [n.name for n in nodes]
    np.testing.assert_allclose(ours.length, [float(n.length or 0) for n in nodes])
    odd = gk.phylo.read_tree("((a:1,'b c''d':1)x:0.5[comment],c:2)root;")
    assert odd.tip_labels == ["a", "b c'd", "c"] and odd.names[1] == "x"
    for bad, msg in (("((a:1,b:1):1;", "never closed"), ("(a:1,b:1);(c:1,d:1);", "one tree"),
                     ("(a:1,b:x);", "not a number"), ("(a:1,b:1));", "unbalanced")):
        with pytest.raises(gk.InputError, match=msg):
            gk.phylo.read_tree(bad)


def test_singular_meta_moderator():
    d = gk.datasets.load("antibiotics")
    d["yr"] = np.arange(len(d), dtype=float)
    d["yr2"] = 2 * d["yr"]
    with pytest.raises(gk.InputError, match=r"'yr2' is constant or a linear combination"):
        gk.meta.glmm(d, ai="ai", n1i="n1i", ci="ci", n2i="n2i", mods="~ yr + yr2", tau2_ci=False)
    with pytest.raises(gk.InputError, match="constant or a linear combination"):
        gk.meta.rma(d, ai="ai", n1i="n1i", ci="ci", n2i="n2i", mods="~ yr + yr2")


@pytest.mark.parametrize("content,msg", [(b"", "is empty"), (bytes(range(256)), "binary"),
                                         (b"y,x,g\n1,2\n3,4,5,6\n", "ragged or malformed at line 3")])
def test_unreadable_tables(tmp_path, content, msg):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    code, _, err = run_cli(["fit", str(path), "--formula", "y ~ x + (1 | g)"])
    assert code == 2 and msg in err and "Traceback" not in err
    if content.startswith(b"y,x"):  # the sample tables are whitespace-separated
        path.write_bytes(b"FID IID y\nA B 1\nC D 1 2 3\n")
    with pytest.raises(gk.FileFormatError, match=msg):
        gk.gwas.read_table(path)


def test_truncated_saved_null_model(tmp_path):
    c = gwas_cohort(tmp_path)
    model = gk.gwas.null(c["bfile"], c["pheno"], "y", progress_bar=False, vr_variants=5, min_mac=1)
    model.save(tmp_path / "s1")
    npz = tmp_path / "s1.null.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(gk.FileFormatError, match="damaged or truncated"):
        gk.gwas.test(c["bfile"], str(tmp_path / "s1"), progress_bar=False).table
    (tmp_path / "s1.null.json").unlink()
    with pytest.raises(gk.MissingFileError, match="no null model"):
        gk.gwas.NullModel.load(tmp_path / "s1")


def test_gwas_cli_chunk_zero_and_loco_with_a_given_grm(tmp_path):
    c = gwas_cohort(tmp_path)
    code, _, err = run_cli(["gwas", "grm", "--bfile", c["bfile"], "--out", str(tmp_path / "k"), "--chunk", "0"])
    assert code == 2 and "chunk must be a whole number >= 1; got 0" in err
    code, _, err = run_cli(["gwas", "null", "--bfile", c["bfile"], "--pheno", c["pheno"], "--out",
                            str(tmp_path / "n"), "--grm", str(tmp_path / "k"), "--loco"])
    assert code == 2 and "--loco needs the GRM built from the genotypes" in err
    with pytest.raises(gk.InputError, match="loco=True needs the GRM built here"):
        gk.gwas.null(c["bfile"], c["pheno"], "y", grm_prefix=str(tmp_path / "k"), loco=True, progress_bar=False)


# ---- nlopt never sees NaN; a fit with non-finite values is never converged ----------------------------
def test_optimiser_refuses_a_non_finite_start():
    from glmmkit.engine.optimize import minimize

    with pytest.raises(gk.FitError, match="non-finite"):
        minimize(lambda x: float(x @ x), np.array([np.nan, 1.0]), np.full(2, -np.inf), np.ones(2))


def test_all_zero_counts_are_not_converged(df):
    with pytest.warns(gk.ConvergenceWarning, match="zero in every row"):
        fit = gk.glmer("count ~ x + (1 | g)", df.assign(count=0), "poisson")
    assert not fit.converged and any("zero in every row" in m for m in fit.messages)
    with pytest.raises(gk.FitError, match="needs a converged fit"):
        gk.dispersion_test(fit, method="pearson")
    with pytest.raises(gk.FitError, match="needs a converged fit"):
        gk.dispersion_test(fit, nsim=3)


def test_zero_prior_weights(df):
    with pytest.raises(gk.InputError, match="every prior weight is zero"):
        gk.glmer("count ~ x + (1 | g)", df, "poisson", weights=np.zeros(len(df)))
    w = np.ones(len(df))
    w[:10] = 0.0  # some zero weights: those rows carry no information, the fit is finite
    fit = gk.glmer("count ~ x + (1 | g)", df, "poisson", weights=w)
    assert fit.converged and np.isfinite(fit.loglik)


def test_profile_and_report_of_a_fit_with_non_finite_estimates(df, tmp_path):
    """Used to die with 'double free or corruption' (exit 134) inside nlopt."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("count ~ x + (1 | g)", df.assign(count=0), "poisson")
    fit._beta = np.array([np.nan, 0.0])
    with pytest.raises(gk.FitError, match="needs finite estimates"):
        fit.confint(method="profile")
    with pytest.raises(gk.FitError, match="not all finite"):
        fit.confint(method="boot", nsim=2)
    out = fit.report(tmp_path / "r.html")
    assert "could not be computed" in out.read_text()


# ---- non-finite design values are dropped and counted -------------------------------------------------
@pytest.mark.parametrize("formula,column,make", [
    ("count ~ x + (1 | g)", "x", lambda d: d.assign(x=np.where(d.index == 5, np.inf, d.x))),
    ("count ~ `x y` + (1 | g)", "x y", lambda d: d.assign(**{"x y": np.where(d.index == 5, -np.inf, d.x)})),
    ("count ~ Q('x y') + (1 | g)", "x y", lambda d: d.assign(**{"x y": np.where(d.index == 5, np.nan, d.x)})),
    ("count ~ log(x) + (1 | g)", "log(x)", lambda d: d.assign(x=np.where(d.index == 5, -1.0, np.abs(d.x) + 0.1))),
    ("count ~ I(x * 1e300) + (1 | g)", "I(x * 1e+300)", lambda d: d.assign(x=np.where(d.index == 5, 1e10, 1e-301))),
])
def test_non_finite_design_values_are_dropped_and_counted(df, formula, column, make):
    with pytest.warns(gk.DroppedRowsWarning, match=rf"dropped 1 of 120 rows with missing or non-finite values .*"
                                                   rf"'{__import__('re').escape(column)}': 1"):
        fit = gk.glmer(formula, make(df), "poisson")
    assert fit.nobs == 119 and fit.spec.dropped_index == [5] and np.all(np.isfinite(fit.spec.X))
    assert "1 rows dropped" in format_summary(fit)
    with pytest.raises(gk.InputError, match="non-finite value"):
        gk.glmer(formula, make(df), "poisson", na_action="raise")


def test_huge_finite_values_give_a_fit_error_that_names_the_column(df):
    with pytest.raises(gk.FitError, match=r"column 'I\(x \* 1e\+200\)' reaches .*rescale"):
        gk.glmer("count ~ I(x * 1e200) + (1 | g)", df, "poisson")


# ---- the GWAS: samples matched by ID -----------------------------------------------------------------
@pytest.fixture(scope="module")
def gwas_step1(tmp_path_factory):
    folder = tmp_path_factory.mktemp("match")
    c = gwas_cohort(folder, n=60, m=30, seed=4)
    model = gk.gwas.null(c["bfile"], c["pheno"], "y", c["covar"], progress_bar=False, vr_variants=5, min_mac=1)
    model.save(folder / "s1")
    ref = gk.gwas.test(c["bfile"], str(folder / "s1"), progress_bar=False, spa=True).table
    return c, folder, ref


def _rewrite(c, folder, name, rows):
    """A copy of the cohort's PLINK set with the samples ``rows`` (any order, repeats or extras)."""
    from glmmkit.gwas.plink import BedWriter

    G, samples = c["G"], c["samples"]
    extra = [r for r in rows if r >= len(samples)]
    S = pd.concat([samples, pd.DataFrame({"FID": [f"X{r}" for r in extra], "IID": [f"X{r}" for r in extra]})],
                  ignore_index=True)
    Gx = np.vstack([G, np.zeros((len(extra), G.shape[1]))])
    variants = gk.gwas.Genotypes.open(c["bfile"]).variants
    with BedWriter(folder / name, S.iloc[rows].reset_index(drop=True)) as w:
        w.write(Gx[rows], variants)
    return str(folder / name)


def test_step2_matches_samples_by_id_not_position(gwas_step1):
    c, folder, ref = gwas_step1
    n = len(c["samples"])
    rev = _rewrite(c, folder, "reordered", list(range(n))[::-1])
    out = gk.gwas.test(rev, str(folder / "s1"), progress_bar=False).table
    np.testing.assert_allclose(out["P"], ref["P"], rtol=1e-10)
    sup = _rewrite(c, folder, "superset", list(range(n)) + [n, n + 1, n + 2])
    with pytest.warns(gk.DroppedRowsWarning, match="3 samples of .* are not in the null model"):
        out = gk.gwas.test(sup, str(folder / "s1"), progress_bar=False).table
    np.testing.assert_allclose(out["P"], ref["P"], rtol=1e-10)
    sub = _rewrite(c, folder, "subset", list(range(n - 5)))
    with pytest.raises(gk.SampleMismatchError, match="5 of the null model's 60 samples are not in"):
        gk.gwas.test(sub, str(folder / "s1"), progress_bar=False).table
    other = folder / "other"
    for suffix in (".bed", ".bim"):
        Path(str(other) + suffix).write_bytes(Path(c["bfile"] + suffix).read_bytes())
    Path(str(other) + ".fam").write_text("".join(f"Z{i} Z{i} 0 0 0 -9\n" for i in range(n)))  # same size
    with pytest.raises(gk.SampleMismatchError, match="60 of the null model's 60 samples are not in"):
        gk.gwas.test(str(other), str(folder / "s1"), progress_bar=False).table
    dup = folder / "dup"
    for suffix in (".bed", ".bim"):
        Path(str(dup) + suffix).write_bytes(Path(c["bfile"] + suffix).read_bytes())
    lines = Path(c["bfile"] + ".fam").read_text().splitlines()
    lines[1] = lines[0]
    Path(str(dup) + ".fam").write_text("\n".join(lines) + "\n")
    with pytest.raises(gk.SampleMismatchError, match="appears more than once"):
        gk.gwas.test(str(dup), str(folder / "s1"), progress_bar=False).table


def test_an_all_heterozygous_variant_has_no_test(gwas_step1):
    c, folder, _ = gwas_step1
    from glmmkit.gwas.score import ScoreTester

    model = gk.gwas.NullModel.load(folder / "s1")
    G = np.column_stack([np.ones(model.n), np.full(model.n, 2.0), c["G"][model.rows, 0]])
    r = ScoreTester(model, spa=True).test(G)
    assert np.isnan(r["P"][:2]).all() and np.isnan(r["T_STAT"][:2]).all() and np.isfinite(r["P"][2])


# ---- no silent model change, nonsense refused ---------------------------------------------------------
def test_single_level_and_rank_deficient_predictors_are_named(df):
    with pytest.warns(gk.ModelChangeWarning, match="predictor 'one' has a single level"):
        fit = gk.glmer("y ~ x + one + (1 | g)", df.assign(one="a"))
    assert any("single level" in m for m in fit.messages)
    with pytest.warns(gk.ModelChangeWarning, match=r"rank deficient so dropping 1 column\(s\): \['x2'\]"):
        fit = gk.glmer("y ~ x + x2 + (1 | g)", df.assign(x2=2 * df.x))
    assert any("rank deficient" in m for m in fit.messages)


def test_cli_factor_the_formula_ignores(df, tmp_path):
    df.to_csv(tmp_path / "d.csv", index=False)
    code, _, err = run_cli(["fit", str(tmp_path / "d.csv"), "--formula", "y ~ x + (1 | g)", "--family", "binomial",
                            "--factor", "h"])
    assert code == 0 and "ModelChangeWarning" in err and "'h', which the formula does not use" in err


@pytest.mark.parametrize("kwargs,msg", [
    (dict(na_action="omit"), "na_action must be 'drop' or 'raise'"),
    (dict(nagq=-1), "nagq must be a whole number from 0 to 25; got -1"),
    (dict(nagq=2.5), "nagq must be a whole number from 0 to 25; got 2.5"),
    (dict(nagq=True), "nagq must be a whole number"),
    (dict(laplace="exact"), "laplace must be one of"),
])
def test_nonsense_glmer_arguments(df, kwargs, msg):
    with pytest.raises(gk.InputError, match=msg):
        gk.glmer("y ~ x + (1 | g)", df, **kwargs)


def test_ziformula_with_a_family_that_has_no_zeros_to_inflate(df):
    with pytest.raises(gk.InputError, match="ziformula is available for the families .*not .gaussian."):
        gk.glmer("x ~ 1 + (1 | g)", df, "gaussian", ziformula="~1")
    with pytest.raises(gk.InputError, match="ziformula is available for the families .*not .Gamma."):
        gk.glmer("pos ~ 1 + (1 | g)", df, "Gamma", ziformula="~1")


def test_nonsense_meta_arguments():
    d = gk.datasets.load("antibiotics")
    cols = dict(ai="ai", n1i="n1i", ci="ci", n2i="n2i")
    for level in (1.5, 95, 0, "0.95"):
        with pytest.raises(gk.InputError, match=r"level must be a number in \(0, 1\)"):
            gk.meta.glmm(d, level=level, tau2_ci=False, **cols)
        with pytest.raises(gk.InputError, match=r"level must be a number in \(0, 1\)"):
            gk.meta.rma(d, level=level, **cols)
    with pytest.raises(gk.InputError, match="measure='PLO' .* has one model"):
        gk.meta.glmm(d, measure="PLO", model="CM.EL", xi="ai", ni="n1i")
    with pytest.raises(gk.InputError, match="measure must be one of"):
        gk.meta.glmm(d, measure="RR", **cols)


def test_cm_el_refuses_hours_of_work():
    k = 30
    d = pd.DataFrame({"ai": np.full(k, 40_000), "n1i": np.full(k, 100_000), "ci": np.full(k, 50_000),
                      "n2i": np.full(k, 100_000)})
    with pytest.raises(gk.InputError, match=r"CM.EL's exact likelihood .* Use model='CM.AL'"):
        gk.meta.glmm(d, model="CM.EL", ai="ai", n1i="n1i", ci="ci", n2i="n2i")


def test_random_effects_nearly_as_many_as_observations(df):
    small = df.head(30).assign(g=[f"g{i}" for i in range(15)] * 2)
    with pytest.warns(gk.CostWarning, match="30 random effects for 30 observations"):
        gk.glmer("count ~ x + (1 + x | g)", small, "poisson")
    with warnings.catch_warnings():  # an observation-level effect has one level per row by design
        warnings.simplefilter("error", gk.CostWarning)
        warnings.simplefilter("ignore", gk.SingularFitWarning)
        warnings.simplefilter("ignore", gk.ConvergenceWarning)
        gk.glmer("count ~ x + (1 | g) + (1 | obs)", small.assign(obs=range(30)), "poisson")


def test_unseen_levels_in_predict(df):
    fit = gk.glmer("y ~ x + h + (1 | g)", df)
    with pytest.raises(gk.InputError, match="new level"):
        fit.predict(df.head(2).assign(g="NEW"))
    with pytest.raises(gk.InputError, match=r"never saw: \{'zzz'\}"):
        fit.predict(df.head(2).assign(h="zzz"), allow_new_levels=True)


# ---- honest output ----------------------------------------------------------------------------------
def test_to_dict_and_cli_json_are_strict(df, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("count ~ x + (1 | g)", df.assign(count=0), "poisson")
    text = json.dumps(fit.to_dict(), allow_nan=False)  # raises on NaN or Infinity
    assert json.loads(text)["converged"] is False
    df.assign(count=0).to_csv(tmp_path / "d.csv", index=False)
    code, _, err = run_cli(["fit", str(tmp_path / "d.csv"), "--formula", "count ~ x + (1 | g)", "--family",
                            "poisson", "--json", str(tmp_path / "f.json")])
    assert code == 1 and "not usable" in err
    json.loads((tmp_path / "f.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


def test_meta_non_convergence_is_flagged(monkeypatch):
    mg = sys.modules["glmmkit.meta.glmm"]
    real = mg.glmer

    def unconverged(*args, **kwargs):
        fit = real(*args, **kwargs)
        fit.converged = False
        fit.messages.append("Model failed to converge: (forced by the test)")
        return fit

    monkeypatch.setattr(mg, "glmer", unconverged)
    d = gk.datasets.load("antibiotics")
    with pytest.warns(gk.ConvergenceWarning, match="meta-analytic GLMM did not converge"):
        fit = gk.meta.glmm(d, ai="ai", n1i="n1i", ci="ci", n2i="n2i", tau2_ci=False)
    assert fit.converged is False


def test_sc_de_exits_non_zero_when_no_gene_can_be_tested(tmp_path):
    adata = gk.singlecell.simulate(n_genes=300, n_cells=300, n_subjects=4, seed=1)
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    code, _, err = run_cli(["sc-de", str(path), "--subject", "subject", "--condition", "condition",
                            "--min-cells", "100000", "--out", str(tmp_path / "de.tsv")])
    assert code == 1 and "no gene could be tested" in err and not (tmp_path / "de.tsv").exists()


def test_cli_errors_are_one_line_and_the_traceback_needs_debug(tmp_path, df):
    df.to_csv(tmp_path / "d.csv", index=False)
    code, out, err = run_cli(["fit", str(tmp_path / "d.csv"), "--formula", "y ~ nope + (1 | g)"])
    assert code == 2 and err.count("\n") == 1 and err.startswith("glmmkit: error: unknown column 'nope'")
    code, _, err = run_cli(["fit", str(tmp_path / "d.csv"), "--formula", "y ~ nope + (1 | g)", "--debug"])
    assert code == 2 and "Traceback" in err
    code, _, err = run_cli(["gwas", "test", "--bfile", "x", "--null", "y", "--out", str(tmp_path / "o.tsv"),
                            "--exact", "--variance-ratio"])
    assert code == 2 and "--exact and --variance-ratio" in err


def test_cli_keeps_text_levels_named_like_missing_values(tmp_path):
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"y": rng.poisson(3, 60), "g": np.tile(["None", "NA", "null", "a"], 15),
                      "x": rng.normal(size=60)})
    (tmp_path / "d.csv").write_text(d.to_csv(index=False).replace(",NA,", ",NA,"))
    code, out, err = run_cli(["fit", str(tmp_path / "d.csv"), "--formula", "y ~ x + (1 | g)", "--family",
                              "poisson", "--na-values", ""])
    assert code == 0 and "g, 4" in out and "dropped" not in err
    code, out, err = run_cli(["fit", str(tmp_path / "d.csv"), "--formula", "y ~ x + (1 | g)", "--family", "poisson"])
    assert code == 0 and "g, 3" in out and "dropped 15 of 60 rows" in err  # the default NA strings: "" and "NA"


# ---- nothing lost ---------------------------------------------------------------------------------
def test_output_paths_are_checked_before_the_work(tmp_path, df):
    df.to_csv(tmp_path / "d.csv", index=False)
    code, out, err = run_cli(["fit", str(tmp_path / "d.csv"), "--formula", "y ~ x + (1 | g)", "--family",
                              "binomial", "--json", str(tmp_path / "no" / "f.json")])
    assert code == 2 and "does not exist" in err and out == ""  # refused before fitting: nothing printed


def test_a_run_killed_mid_write_leaves_the_previous_output(tmp_path):
    """A child writes a large table with glmmkit's writer and is killed by a signal while writing: the
    previous file is intact and no temporary file is left in the folder... except the one being written,
    which is never renamed over the target."""
    target = tmp_path / "out.tsv"
    target.write_text("previous result\n")
    script = textwrap.dedent(f"""
        import sys, numpy as np, pandas as pd
        from glmmkit.output import write_table
        df = pd.DataFrame(np.random.default_rng(0).normal(size=(3_000_000, 4)))
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        write_table(df, {str(target)!r}, sep="\\t")
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    tmp = None
    for _ in range(400):  # wait until the temporary file exists and is being filled
        tmps = list(tmp_path.glob(".out.tsv.*"))
        if tmps and tmps[0].stat().st_size > 0:
            tmp = tmps[0]
            break
        import time
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert tmp is not None, "the writer never started"
    assert target.read_text() == "previous result\n"


def test_failed_write_leaves_previous_files_and_no_temporaries(tmp_path):
    from glmmkit.output import atomic_paths, write_json

    write_json(tmp_path / "a.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_paths([tmp_path / "a.json", tmp_path / "b.bin"]) as (a, b):
            Path(a).write_text("half")
            raise RuntimeError("killed")
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_main_returns_a_status_for_every_command():
    assert main(["datasets"]) == 0


def test_more_hostile_calls_get_typed_errors(df, tmp_path):
    """A second sweep over the public API (after the fuzz campaign): each of these raised a raw exception."""
    f1 = gk.glmer("count ~ x + (1 | g)", df, "poisson")
    f3 = gk.glmer("count ~ 1 + (1 | g)", df, "poisson")
    f4 = gk.glmer("count ~ x + (1 | g)", df.iloc[:100], "poisson")
    with pytest.raises(TypeError, match="argument 2 is a str, not a fitted model"):
        gk.anova(f1, "x")
    with pytest.raises(TypeError, match="not a fitted model"):
        gk.compare(f1, 3)
    with pytest.raises(gk.InputError, match="different data"):
        gk.bootstrap_lrt(f3, f4, nsim=2)
    with pytest.raises(gk.InputError, match="unknown parameter 'zz'"):
        f1.confint(parm="zz")
    with pytest.raises(gk.OutputPathError, match="does not exist"):
        f1.report(tmp_path / "no" / "r.html")
    with pytest.raises(gk.InputError, match="n_genes must be a whole number >= 1"):
        gk.singlecell.simulate(n_genes=0)
    with pytest.raises(gk.InputError, match="data must be a pandas or polars DataFrame"):
        gk.add_olre("y ~ x", [1, 2])
    with pytest.raises(gk.InputError, match="a GRM must be square"):
        gk.gwas.threshold_grm(np.ones((3, 4)), 0.1)
    with pytest.raises(gk.InputError, match="reml must be True or False"):
        gk.lmer("x ~ 1 + (1 | g)", df, reml="yes")
    with pytest.raises(gk.InputError, match="relmat must be a dict"):
        gk.glmer("y ~ x + (1 | g)", df, relmat=[1, 2])
