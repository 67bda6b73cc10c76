"""Generated bad and extreme input for every entry point, and the rule every outcome must obey.

Used by tests/test_fuzz.py (a bounded profile in CI) and benchmarks/fuzz_campaign.py (thousands of
inputs, outcome counts per class).  Each ``case_*`` function takes hypothesis' ``data`` object,
draws one input, runs one entry point on it and returns the outcome class:

- ``"result"``: a finite result (a fit flagged ``converged=False`` counts: its flag is honest);
- ``"error"``: a documented error (a glmmkit error class, ``ValueError`` or ``TypeError``), or for
  the command line an exit status of 1 or 2 with a one-line message and no traceback;
- ``"unexpected"``: any other exception type, or a traceback printed by the command line;
- ``"nan_converged"``: a result with non-finite estimates reported as converged.

The last two are failures.  An abort (a signal) kills the process that runs the case, which the
campaign runs in a child process and counts as ``"abort"``.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

import glmmkit as gk
from glmmkit.errors import GlmmkitError

OK, ERROR, UNEXPECTED, NAN_CONVERGED = "result", "error", "unexpected", "nan_converged"
FAILURES = (UNEXPECTED, NAN_CONVERGED, "abort")

# values a careless or hostile user puts in a numeric column
NASTY = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, -1e300, 1e-300, 2.5, 1e6, -7.0]
FAMILIES = ["binomial", "poisson", "nbinom2", "nbinom1", "Gamma", "inverse.gaussian", "gaussian", "binomal", 3,
            None]
LINKS = [None, None, None, "log", "logit", "probit", "cloglog", "identity", "inverse", "sqrt", "1/mu^2", "bogus"]
FORMULA_TOKENS = ["y", "x", "z", "g", "h", "+", "-", "*", ":", "/", "|", "||", "(", ")", "1", "0", "~", " ",
                  "log(", "I(", "x^2", "offset(", "cbind(", ",", "`a b`", "Q('x')", "__", "lambda", ";", "[",
                  "]", "C(h)", "1e300", "exp(", "..", "\\", "'", "\n", "g:h", "(1 | g)", "(x || h)", "(1|g/h)"]


def classify(run) -> tuple[str, str]:
    """Run ``run()`` and classify what happened: (outcome class, detail)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with np.errstate(all="ignore"):
                res = run()
        except Exception as err:  # noqa: BLE001 - this is what the fuzzer looks for
            if documented(err):
                return ERROR, f"{type(err).__name__}: {err}"[:300]
            if os.environ.get("GLMMKIT_FUZZ_TRACEBACK"):
                import traceback

                traceback.print_exc()
            return UNEXPECTED, f"{type(err).__name__}: {err}"[:300] + f" [at {_where(err)}]"
    return judge(res)


def _where(err: BaseException) -> str:
    """The innermost glmmkit frame of an exception's traceback (file:line), for the report."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if "glmmkit" in f.filename]
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def documented(err: BaseException) -> bool:
    """A glmmkit error class, or a plain ValueError / TypeError; not a subclass that only leaks from a
    library underneath (numpy's LinAlgError, pandas' ParserError, zipfile's BadZipFile ...)."""
    return isinstance(err, GlmmkitError) or type(err) in (ValueError, TypeError)


def judge(res) -> tuple[str, str]:
    """A returned result: honest (finite, or flagged) or a non-finite result reported as converged."""
    if isinstance(res, gk.Fit):
        vals = [res.loglik, *res.fixef, *res.theta, *res.coef_table["std_error"]]
        finite = all(math.isfinite(float(v)) for v in vals)
        if res.converged and not finite:
            return NAN_CONVERGED, f"converged=True with non-finite values: {res!r}"
        return OK, "fit" if res.converged else "fit flagged not converged"
    if hasattr(res, "converged") and hasattr(res, "coef"):  # MetaFit
        vals = res.coef[["estimate", "std_error"]].to_numpy().ravel()
        if res.converged and not np.all(np.isfinite(vals)):
            return NAN_CONVERGED, "meta fit converged=True with non-finite estimate or SE"
        return OK, "meta fit"
    return OK, type(res).__name__


# ---- formulas and data frames ----------------------------------------------------------------------
@st.composite
def formulas(draw) -> str:
    """Mostly-plausible lme4 formulas with random damage."""
    base = draw(st.sampled_from([
        "y ~ x + (1 | g)", "y ~ x + (x | g)", "y ~ x + (x || g)", "y ~ x * h + (1 | g/h)", "y ~ (1 | g) + (1 | h)",
        "cbind(y, n - y) ~ x + (1 | g)", "y ~ log(z) + (1 | g)", "y ~ x + offset(log(n)) + (1 | g)",
        "y ~ 0 + h + (1 | g)", "y ~ I(x * 1e300) + (1 | g)", "y ~ Q('x') + (1 | g)", "y ~ `x` + (1 | g)",
        "y ~ C(h) + (1 | g:h)", "y ~ x + (1 | g) + (1 | obs)"]))
    if draw(st.integers(0, 2)):
        return base
    tokens = list(base)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        pos = draw(st.integers(0, len(tokens)))
        tok = draw(st.sampled_from(FORMULA_TOKENS))
        if action == "insert" or not tokens:
            tokens.insert(pos, tok)
        elif action == "delete":
            del tokens[min(pos, len(tokens) - 1)]
        else:
            tokens[min(pos, len(tokens) - 1)] = tok
    return "".join(tokens)


@st.composite
def frames(draw, n_min: int = 0, n_max: int = 60) -> pd.DataFrame:
    """Small data frames for the formulas above, with nasty values dropped in."""
    n = draw(st.integers(n_min, n_max))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    n_g = draw(st.integers(1, 8))
    df = pd.DataFrame({
        "y": rng.poisson(2, n).astype(float),
        "n": rng.integers(1, 10, n).astype(float),
        "x": rng.normal(size=n),
        "z": rng.gamma(2.0, 1.0, n),
        "g": [f"g{i % n_g}" for i in range(n)],
        "h": [f"h{i % 3}" for i in range(n)],
        "obs": np.arange(n),
    })
    kind = draw(st.sampled_from(["counts", "binary", "positive", "continuous", "proportion", "allzero"]))
    df.attrs["kind"] = kind
    if kind == "binary":
        df["y"] = rng.binomial(1, 0.4, n).astype(float)
    elif kind == "positive":
        df["y"] = rng.gamma(2.0, 2.0, n)
    elif kind == "continuous":
        df["y"] = rng.normal(size=n)
    elif kind == "proportion":
        df["y"] = rng.uniform(size=n)
    elif kind == "allzero":
        df["y"] = 0.0
    if n:
        for _ in range(draw(st.sampled_from([0, 0, 1, 2, 4]))):
            col = draw(st.sampled_from(["y", "x", "z", "n"]))
            df.loc[draw(st.integers(0, n - 1)), col] = draw(st.sampled_from(NASTY))
        if draw(st.integers(0, 5)) == 0:
            df.loc[draw(st.integers(0, n - 1)), "g"] = draw(st.sampled_from([None, np.nan, "NA", ""]))
        if draw(st.integers(0, 6)) == 0:
            df["x"] = draw(st.sampled_from([0.0, 1e300, np.nan]))
        if draw(st.integers(0, 6)) == 0:
            df["h"] = "only"
    return df


def case_formula(data) -> tuple[str, str]:
    """The formula parser on damaged formulas (and non-strings)."""
    f = data.draw(st.one_of(formulas(), st.text(max_size=40), st.sampled_from([None, 3, b"y ~ x", ["y ~ x"]])),
                  label="formula")
    return classify(lambda: gk.formula.parse.parse_formula(f))


def case_glmer(data) -> tuple[str, str]:
    """glmer / lmer on generated formulas, data and arguments."""
    f = data.draw(formulas(), label="formula")
    df = data.draw(frames(n_min=data.draw(st.sampled_from([8, 8, 8, 0]))), label="data")
    matched = {"counts": "poisson", "binary": "binomial", "positive": "Gamma", "continuous": "gaussian",
               "proportion": "binomial", "allzero": "poisson"}[df.attrs["kind"]]
    fam = data.draw(st.sampled_from([matched] * 8 + FAMILIES), label="family")
    kw = {}
    if data.draw(st.integers(0, 9)) == 9:
        kw["link"] = data.draw(st.sampled_from(LINKS), label="link")
    if data.draw(st.integers(0, 9)) == 9:
        kw["nagq"] = data.draw(st.sampled_from([0, 1, 2, 5, 25, 26, -1, 2.5, True, "7"]), label="nagq")
    if data.draw(st.integers(0, 9)) == 9:
        kw["weights"] = data.draw(st.sampled_from(["n", "nope", "g", "wrong_length", "array", "zeros"]), label="w")
    if data.draw(st.integers(0, 9)) == 9:
        kw["offset"] = data.draw(st.sampled_from(["z", "nope", "g", "wrong_length", "array"]), label="offset")
    if data.draw(st.integers(0, 9)) == 9:
        kw["na_action"] = data.draw(st.sampled_from(["drop", "raise", "omit", None]), label="na_action")
    if data.draw(st.integers(0, 9)) == 9:
        kw["ziformula"] = data.draw(st.sampled_from(["~1", "~ x", "~ nope", "x", 3]), label="zi")
    for key in ("weights", "offset"):
        v = kw.get(key)
        if v == "wrong_length":
            kw[key] = np.ones(len(df) + 1)
        elif v == "array":
            kw[key] = np.abs(df["z"].to_numpy()) + 0.5
        elif v == "zeros":
            kw[key] = np.zeros(len(df))

    def run():
        if fam == "gaussian" and data.draw(st.booleans(), label="lmer"):
            kw.pop("link", None), kw.pop("nagq", None), kw.pop("ziformula", None)
            return gk.lmer(f, df, **kw)
        return gk.glmer(f, df, fam, **kw)

    return classify(run)


def case_after_fit(data) -> tuple[str, str]:
    """What users ask of a fit: predict (unseen levels), intervals, simulate, dispersion, profile."""
    df = data.draw(frames(n_min=20), label="data")
    df["y"] = np.abs(np.round(np.nan_to_num(df["y"], nan=1.0, posinf=3.0, neginf=0.0)))
    df["g"] = [f"g{i % 5}" for i in range(len(df))]
    fam = data.draw(st.sampled_from(["poisson", "binomial"]), label="family")
    if fam == "binomial":
        df["y"] = (df["y"] > 1).astype(float)
    status, detail = classify(lambda: gk.glmer("y ~ x + (1 | g)", df, fam))
    if status != OK:
        return status, detail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("y ~ x + (1 | g)", df, fam)
    new = df.head(3).copy()
    if data.draw(st.booleans()):
        new["g"] = data.draw(st.sampled_from(["NEW", None, 7]), label="level")
    if data.draw(st.booleans()):
        new["x"] = data.draw(st.sampled_from(NASTY), label="x")
    what = data.draw(st.sampled_from(["predict", "predict_new", "interval", "simulate", "confint", "dispersion",
                                      "profile", "r2", "anova", "compare", "parm", "report"]), label="what")
    other = data.draw(st.sampled_from(["fit", "subset", "x", 3, None]), label="other")
    if other == "fit":
        other = fit
    elif other == "subset":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = gk.glmer("y ~ 1 + (1 | g)", df.iloc[: len(df) // 2], fam)
    nsim = data.draw(st.sampled_from([0, 1, 2, 10, -3, 2.5, "5"]), label="nsim")
    level = data.draw(st.sampled_from([0.95, 0.5, 1.0, 0.0, 95, -0.1, float("nan")]), label="level")
    calls = {
        "predict": lambda: fit.predict(new),
        "predict_new": lambda: fit.predict(new, allow_new_levels=True),
        "interval": lambda: fit.predict_interval(new, nsim=nsim, level=level, seed=1),
        "simulate": lambda: fit.simulate(nsim, seed=1),
        "confint": lambda: fit.confint(level=level),
        "dispersion": lambda: gk.dispersion_test(fit, method="pearson"),
        "profile": lambda: fit.confint(method="profile", level=level),
        "r2": lambda: fit.r2(),
        "anova": lambda: gk.anova(fit, other),
        "compare": lambda: gk.compare(fit, other),
        "parm": lambda: fit.confint(parm=data.draw(st.sampled_from(["x", "zz", 3, ["x", "zz"]]))),
        "report": lambda: fit.report(data.draw(st.sampled_from(["/nonexistent/r.html", "", "/"]))),
    }
    return classify(calls[what])


# ---- meta-analysis ---------------------------------------------------------------------------------
def case_meta(data) -> tuple[str, str]:
    """Meta-analysis on 2x2 tables with bad counts and arguments."""
    k = data.draw(st.integers(0, 8), label="k")
    seed = data.draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    n1, n2 = rng.integers(5, 60, k), rng.integers(5, 60, k)
    d = pd.DataFrame({"ai": rng.binomial(n1, 0.2), "n1i": n1, "ci": rng.binomial(n2, 0.3), "n2i": n2,
                      "year": rng.integers(1990, 2020, k)}).astype(float)
    if k:
        for _ in range(data.draw(st.integers(0, 3))):
            d.loc[data.draw(st.integers(0, k - 1)), data.draw(st.sampled_from(list(d.columns)))] = \
                data.draw(st.sampled_from([np.nan, -1.0, 0.0, 1e9, 2.5, np.inf]))
    fn = data.draw(st.sampled_from(["glmm", "rma", "mantel_haenszel", "peto"]), label="fn")
    kw = dict(ai="ai", n1i="n1i", ci="ci", n2i="n2i")
    if data.draw(st.integers(0, 9)) == 9:
        kw["level"] = data.draw(st.sampled_from([0.9, 1.5, 95, 0, "0.95"]), label="level")
    if fn == "glmm":
        if data.draw(st.booleans()):
            kw["model"] = data.draw(st.sampled_from(["UM.FS", "UM.RS", "CM.EL", "CM.AL", "XX"]), label="model")
        kw["measure"] = data.draw(st.sampled_from(["OR", "OR", "PLO", "IRR", "RR"]), label="measure")
        if kw["measure"] == "PLO":
            kw = {k2: v for k2, v in kw.items() if k2 not in ("ai", "n1i", "ci", "n2i")} | {"xi": "ai", "ni": "n1i"}
        if data.draw(st.integers(0, 3)) == 0:
            kw["mods"] = data.draw(st.sampled_from(["~ year", "~ year + I(2 * year)", "~ nope", "~ __x"]),
                                   label="mods")
        kw["tau2_ci"] = False
    return classify(lambda: getattr(gk.meta, fn)(d, **kw))


# ---- trees -------------------------------------------------------------------------------------------
def _random_newick(rng, n_tips: int) -> str:
    nodes = [f"t{i}:{rng.uniform(0.1, 1):.3f}" for i in range(n_tips)]
    while len(nodes) > 1:
        i, j = sorted(rng.choice(len(nodes), 2, replace=False))
        b = nodes.pop(j)
        a = nodes.pop(i)
        nodes.append(f"({a},{b}):{rng.uniform(0.1, 1):.3f}")
    return nodes[0].rsplit(":", 1)[0] + ";"


def case_tree(data) -> tuple[str, str]:
    """read_tree / vcv / a relmat fit on random Newick text with damage (and ladder trees)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 31 - 1)))
    n = data.draw(st.integers(1, 12))
    if data.draw(st.integers(0, 5)) == 0:
        depth = data.draw(st.sampled_from([50, 500, 3000]))
        text = "t0:1"
        for i in range(1, depth):
            text = f"(t{i}:1,{text}):1"
        text += ";"
    else:
        text = _random_newick(rng, n)
    damage = data.draw(st.sampled_from(["none", "none", "truncate", "drop_char", "negative", "duplicate", "noisy",
                                        "no_length", "two_trees"]))
    if damage == "truncate" and len(text) > 2:
        text = text[: data.draw(st.integers(1, len(text) - 1))]
    elif damage == "drop_char" and len(text) > 2:
        i = data.draw(st.integers(0, len(text) - 1))
        text = text[:i] + text[i + 1:]
    elif damage == "negative":
        text = text.replace(":0.", ":-0.", 1)
    elif damage == "duplicate" and n > 1:
        text = text.replace("t1:", "t0:", 1)
    elif damage == "noisy":
        text = text.replace(",", data.draw(st.sampled_from([",,", "[c],", " , ", ",'q''t',", ")("])), 1)
    elif damage == "no_length":
        text = text.replace(":", "", 1)
    elif damage == "two_trees":
        text = text + text
    what = data.draw(st.sampled_from(["read", "vcv", "fit"]))

    def run():
        tree = gk.phylo.read_tree(text)
        if what == "read":
            return tree
        K = gk.phylo.vcv(text if data.draw(st.booleans()) else tree)
        if what == "vcv" or tree.n_tips > 60:  # a dense relmat fit of a deep ladder is a scale test, not a fuzz
            return K
        labels = list(K.index)
        d = pd.DataFrame({"sp": np.repeat(labels, 4), "x": rng.normal(size=4 * len(labels))})
        d["y"] = rng.binomial(1, 0.5, len(d))
        return gk.glmer("y ~ x + (1 | sp)", d, "binomial", relmat={"sp": K})

    return classify(run)


# ---- GWAS --------------------------------------------------------------------------------------------
def gwas_cohort(folder: Path, n: int = 48, m: int = 40, seed: int = 1) -> dict:
    """A small PLINK set with a binary phenotype, written by glmmkit's own writer."""
    from glmmkit.gwas.plink import BedWriter

    rng = np.random.default_rng(seed)
    samples = pd.DataFrame({"FID": [f"F{i // 2}" for i in range(n)], "IID": [f"I{i}" for i in range(n)]})
    G = rng.binomial(2, rng.uniform(0.1, 0.5, m), (n, m)).astype(float)
    variants = pd.DataFrame({"CHR": np.repeat(["1", "2"], [m // 2, m - m // 2]), "POS": np.arange(1, m + 1) * 100,
                             "ID": [f"rs{j}" for j in range(m)], "A1": "A", "A2": "G"})
    prefix = folder / "c"
    with BedWriter(prefix, samples) as w:
        w.write(G, variants)
    y = rng.binomial(1, 0.4, n)
    pheno = samples.assign(y=y, q=rng.normal(size=n))
    pheno.to_csv(folder / "c.pheno.tsv", sep="\t", index=False)
    covar = samples.assign(age=rng.normal(50, 10, n))
    covar.to_csv(folder / "c.covar.tsv", sep="\t", index=False)
    return {"bfile": str(prefix), "pheno": str(folder / "c.pheno.tsv"), "covar": str(folder / "c.covar.tsv"),
            "samples": samples, "G": G}


def case_gwas(data) -> tuple[str, str]:
    """Steps 1 and 2 on small PLINK sets whose files are damaged or mismatched."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        c = gwas_cohort(folder, seed=data.draw(st.integers(0, 1000)))
        damage = data.draw(st.sampled_from(["none", "fam_order", "fam_dup", "fam_ragged", "bim_cols", "bed_trunc",
                                            "pheno_empty", "pheno_binary", "pheno_values", "het_variant",
                                            "fam_subset", "null_trunc"]), label="damage")
        trait = data.draw(st.sampled_from(["binary", "quantitative", "count", "ordinal"]), label="trait")
        fam = Path(c["bfile"] + ".fam")
        pheno = Path(c["pheno"])

        def run():
            if damage == "pheno_empty":
                pheno.write_text("")
            elif damage == "pheno_binary":
                pheno.write_bytes(bytes(range(256)) * 4)
            elif damage == "pheno_values":
                p = pd.read_csv(pheno, sep="\t")
                p.loc[0, "y"] = data.draw(st.sampled_from([3, -1, "inf", "x"]))
                p.to_csv(pheno, sep="\t", index=False)
            elif damage == "fam_dup":
                lines = fam.read_text().splitlines()
                lines[1] = lines[0]
                fam.write_text("\n".join(lines) + "\n")
            elif damage == "fam_ragged":
                fam.write_text(fam.read_text() + "X Y\n")
            elif damage == "bim_cols":
                bim = Path(c["bfile"] + ".bim")
                bim.write_text(bim.read_text().replace("\t", " ", 3) + "1 rsX 0\n")
            elif damage == "bed_trunc":
                bed = Path(c["bfile"] + ".bed")
                bed.write_bytes(bed.read_bytes()[:-5])
            model = gk.gwas.null(c["bfile"], c["pheno"], "y" if trait != "quantitative" else "q", c["covar"],
                                 trait=trait, progress_bar=False, vr_variants=5, min_mac=1)
            model.save(folder / "step1")
            if damage == "null_trunc":
                npz = folder / "step1.null.npz"
                npz.write_bytes(npz.read_bytes()[:100])
            if damage in ("fam_order", "fam_subset"):
                lines = fam.read_text().splitlines()
                lines = lines[::-1] if damage == "fam_order" else lines[:-3]
                fam.write_text("\n".join(lines) + "\n")
            return gk.gwas.test(c["bfile"], str(folder / "step1"), progress_bar=False,
                                chunk=data.draw(st.sampled_from([7, 1000, 0]))).table

        return classify(run)


# ---- single cell -------------------------------------------------------------------------------------
def case_singlecell(data) -> tuple[str, str]:
    """Differential expression on small AnnData objects with bad counts and labels."""
    seed = data.draw(st.integers(0, 1000))
    adata = gk.singlecell.simulate(n_genes=30, n_cells=240, n_subjects=4, seed=seed, mean_lib=20000.0)
    damage = data.draw(st.sampled_from(["none", "negative", "nan", "one_subject", "one_condition", "fraction",
                                        "missing_label", "empty_gene"]), label="damage")
    X = adata.X.toarray().astype(float)
    if damage == "negative":
        X[0, 0] = -3
    elif damage == "nan":
        X[1, 1] = np.nan
    elif damage == "fraction":
        X[2, 2] = 0.5
    elif damage == "empty_gene":
        X[:, 3] = 0
    adata.X = X
    if damage == "one_subject":
        adata.obs["subject"] = "s0"
    elif damage == "one_condition":
        adata.obs["condition"] = adata.obs["condition"].iloc[0]
    elif damage == "missing_label":
        adata.obs.loc[adata.obs.index[0], "subject"] = np.nan
    kw = dict(min_cells=data.draw(st.sampled_from([1, 10, 0, -1])), progress_bar=False, workers=1)
    return classify(lambda: gk.singlecell.de(adata, "subject", "condition", **kw))


# ---- the command line --------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``glmmkit`` in this process: (exit status, stdout, stderr)."""
    from glmmkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def classify_cli(argv: list[str]) -> tuple[str, str]:
    """A command line's outcome: 0 is a result; 1 or 2 with one error line is a documented error."""
    try:
        code, _, err = run_cli(argv)
    except Exception as e:  # noqa: BLE001 - main() must catch everything
        return UNEXPECTED, f"escaped main(): {type(e).__name__}: {e}"[:300]
    if "Traceback" in err and "--debug" not in argv:
        return UNEXPECTED, f"traceback printed for {argv}"
    if code == 0:
        return OK, "exit 0"
    if code in (1, 2):
        errors = [ln for ln in err.splitlines() if ln.startswith("glmmkit: error") or ln.startswith("usage:")
                  or "error:" in ln]
        return (ERROR, err.strip().splitlines()[-1][:300]) if errors else (UNEXPECTED, f"exit {code}, no message")
    return UNEXPECTED, f"exit status {code}"


def case_cli(data, folder: Path) -> tuple[str, str]:
    """Every command with valid and invalid pieces of command line, on files good and bad."""
    df = data.draw(frames(n_min=0, n_max=40), label="data")
    csv = folder / "d.csv"
    content = data.draw(st.sampled_from(["good", "good", "empty", "binary", "ragged", "header_only"]))
    if content == "good":
        df.to_csv(csv, index=False)
    elif content == "empty":
        csv.write_text("")
    elif content == "binary":
        csv.write_bytes(bytes(range(256)))
    elif content == "ragged":
        csv.write_text("y,x,g\n1,2\n3,4,5,6\n")
    else:
        csv.write_text("y,x,g\n")
    cmd = data.draw(st.sampled_from(["fit", "meta", "gwas grm", "gwas null", "gwas test", "sc-de", "bogus",
                                     "datasets"]))
    out_choice = data.draw(st.sampled_from(["ok", "missing_dir", "is_dir"]))
    out = {"ok": str(folder / "o"), "missing_dir": str(folder / "nope" / "o"), "is_dir": str(folder)}[out_choice]
    if cmd == "fit":
        argv = ["fit", str(csv), "--formula", data.draw(formulas(), label="formula"),
                "--family", data.draw(st.sampled_from(["binomial", "poisson", "gaussian", "Gamma", "xx"]))]
        if data.draw(st.booleans()):
            argv += ["--json", out + ".json"]
        if data.draw(st.integers(0, 3)) == 0:
            argv += data.draw(st.sampled_from([["--nagq", "-1"], ["--ml"], ["--factor", "h"], ["--factor", "nope"],
                                               ["--weights", "nope"], ["--na-values", "None,NA"], ["--debug"]]))
    elif cmd == "meta":
        tab = folder / "m.csv"
        rng = np.random.default_rng(data.draw(st.integers(0, 100)))
        pd.DataFrame({"ai": rng.integers(-1, 5, 5), "n1i": rng.integers(0, 30, 5), "ci": rng.integers(0, 5, 5),
                      "n2i": rng.integers(5, 30, 5)}).to_csv(tab, index=False)
        argv = ["meta", str(tab if data.draw(st.booleans()) else csv), "--ai", "ai", "--n1i", "n1i", "--ci", "ci",
                "--n2i", "n2i", "--model", data.draw(st.sampled_from(["UM.FS", "CM.EL", "REML", "MH"]))]
        if data.draw(st.booleans()):
            argv += ["--method", "FE"]
        if data.draw(st.booleans()):
            argv += ["--forest", out + ".png"]
    elif cmd.startswith("gwas"):
        c = gwas_cohort(folder)
        bfile = c["bfile"] if data.draw(st.booleans()) else str(folder / "none")
        if cmd == "gwas grm":
            argv = ["gwas", "grm", "--bfile", bfile, "--out", out,
                    "--chunk", data.draw(st.sampled_from(["0", "5", "-2", "x"]))]
            argv += data.draw(st.sampled_from([[], ["--sparse-only"], ["--sparse", "0.05"], ["--min-maf", "0.7"]]))
        elif cmd == "gwas null":
            argv = ["gwas", "null", "--bfile", bfile, "--pheno", data.draw(st.sampled_from([c["pheno"], str(csv)])),
                    "--out", out]
            argv += data.draw(st.sampled_from([[], ["--loco", "--grm", out], ["--covar-name", "age"],
                                               ["--covar", c["covar"]], ["--trait", "quantitative"]]))
        else:
            argv = ["gwas", "test", "--bfile", bfile, "--null", out, "--out", out + ".tsv"]
            argv += data.draw(st.sampled_from([[], ["--exact", "--variance-ratio"], ["--workers", "0"]]))
    elif cmd == "sc-de":
        h5 = folder / "a.h5ad"
        adata = gk.singlecell.simulate(n_genes=40, n_cells=200, n_subjects=4, seed=data.draw(st.integers(0, 50)))
        if data.draw(st.booleans()):
            adata.write_h5ad(h5)
        else:
            h5.write_bytes(data.draw(st.sampled_from([b"", b"not hdf5", bytes(range(256))])))
        argv = ["sc-de", str(h5), "--subject", data.draw(st.sampled_from(["subject", "nope"])), "--condition",
                "condition", "--out", out + ".tsv"]
        argv += data.draw(st.sampled_from([[], ["--min-cells", "100000"], ["--engine", "fast", "--random", "(1|x)"],
                                           ["--workers", "0"], ["--layer", "counts"], ["--family", "poisson"]]))
    else:
        argv = [cmd]
    return classify_cli(argv)


CASES = {"formula": case_formula, "glmer": case_glmer, "after_fit": case_after_fit, "meta": case_meta,
         "tree": case_tree, "gwas": case_gwas, "singlecell": case_singlecell}
