"""GWAS calibration: lambda_GC with relatedness and stratification; SPA at 1% prevalence; plink2 (issue 7).

    python benchmarks/gwas_calibration.py  ->  benchmarks/results/gwas_calibration.md

A. Families (2 founders + children) from two populations (Fst 0.02) with a polygenic binary trait
   (liability h2 = 0.3, shared family environment 0.1, population shift 0.5, prevalence 30%):
   lambda_GC over the null variants for plain logistic regression (the score test with tau = 0), the
   mixed model, and the mixed model with LOCO.
B. Prevalence 1%, low-frequency variants (A1 frequency 0.5% to 5%): type-I error at alpha = 1e-3 and 1e-4
   of the mixed-model score test with the normal approximation and with SPA.
C. Unrelated samples (founders only): glmmkit's logistic score test and mixed-model test beside plink2
   --glm (logistic regression, Wald) on the same samples and variants: correlation of -log10 p.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from glmmkit import gwas

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402


def scenario_a(tmp, n_fam, m, seed):
    info = gwas.simulate_cohort(tmp / "a", n_families=n_fam, n_variants=m, n_causal=500, h2=0.3, c2=0.1, fst=0.02,
                                pop_shift=0.5, prevalence=0.3, seed=seed)
    kw = dict(pheno=info["pheno"], pheno_col="y", covar=info["covar"], covar_cols=["sex", "age"], trait="binary",
              progress_bar=False)
    rows = []
    t0 = time.perf_counter()
    glm = gwas.null(info["bfile"], fix_tau=0.0, K=np.eye(info["n"]), **kw)
    fits = {"logistic regression (tau = 0)": glm}
    fits["mixed model"] = gwas.null(info["bfile"], **kw)
    fits["mixed model, LOCO"] = gwas.null(info["bfile"], loco=True, **kw)
    for name, model in fits.items():
        r = gwas.test(info["bfile"], model, progress_bar=False).table
        null_var = ~r["ID"].isin(info["causal"])
        lam = gwas.lambda_gc(r.loc[null_var, "P"])
        rows.append([name, f"{model.tau:.3f}", int(null_var.sum()), f"{lam:.3f}",
                     f"{np.mean(r.loc[null_var, 'P'] < 0.01):.4f}"])
    return pd.DataFrame(rows, columns=["test", "tau", "null variants", "lambda_GC", "P(p < 0.01)"]), info["n"], \
        time.perf_counter() - t0


def scenario_b(tmp, n_fam, m, seed):
    info = gwas.simulate_cohort(tmp / "b", n_families=n_fam, mean_children=0, n_variants=m, n_causal=300, h2=0.3,
                                c2=0.0, fst=0.0001, pop_shift=0.0, prevalence=0.01, seed=seed,
                                freq_range=(0.005, 0.05))
    model = gwas.null(info["bfile"], info["pheno"], "y", info["covar"], ["sex", "age"], trait="binary",
                      fix_tau=0.0, K=np.eye(info["n"]), progress_bar=False)
    r = gwas.test(info["bfile"], model, progress_bar=False, min_mac=3, exact=False).table
    nv = ~r["ID"].isin(info["causal"]) & r["P"].notna()
    maf = np.minimum(r["A1_FREQ"], 1 - r["A1_FREQ"])
    rows = []
    for lab, sel in (("all", nv), ("MAF < 1%", nv & (maf < 0.01)), ("MAF 1% to 5%", nv & (maf >= 0.01))):
        row = [lab, int(sel.sum())]
        for a in (1e-3, 1e-4):
            row += [f"{np.mean(r.loc[sel, 'P_NORMAL'] < a) / a:.2f}", f"{np.mean(r.loc[sel, 'P'] < a) / a:.2f}"]
        rows.append(row)
    cases = int(gwas.read_table(info["pheno"])["y"].sum())
    return pd.DataFrame(rows, columns=["variants", "n", "normal / nominal at 1e-3", "SPA / nominal at 1e-3",
                                       "normal / nominal at 1e-4", "SPA / nominal at 1e-4"]), info["n"], cases, \
        "unrelated samples, tau = 0 (the null model is the logistic regression)"


def scenario_c(tmp, n_fam, m, seed):
    info = gwas.simulate_cohort(tmp / "c", n_families=n_fam, n_variants=m, n_causal=200, h2=0.4, c2=0.0, fst=0.0001,
                                pop_shift=0.0, prevalence=0.3, seed=seed, causal_extra=0.4)
    ph = gwas.read_table(info["pheno"])
    founders = ph["IID"].str.endswith(("_1", "_2"))
    ph.loc[~founders, "y"] = -9
    ph[["FID", "IID", "y"]].to_csv(tmp / "c.founders.pheno", sep="\t", index=False)
    kw = dict(pheno=tmp / "c.founders.pheno", pheno_col="y", covar=info["covar"], covar_cols=["sex", "age"],
              trait="binary", progress_bar=False)
    g = gwas.Genotypes.open(info["bfile"])
    s = gwas.match(g, gwas.read_table(kw["pheno"]), "y", gwas.read_table(info["covar"]), ["sex", "age"], "binary")
    lr = gwas.test(info["bfile"], gwas.null(info["bfile"], fix_tau=0.0, K=np.eye(s.n), **kw), progress_bar=False).table
    mm = gwas.test(info["bfile"], gwas.null(info["bfile"], **kw), progress_bar=False).table
    plink = shutil.which("plink2")
    if plink is None:
        return None, s.n
    # plink2: the same samples (cases 2, controls 1), logistic regression with the same covariates
    pl = ph[["FID", "IID"]].copy()
    pl["y"] = np.where(founders, ph["y"] + 1, -9)
    pl.to_csv(tmp / "c.plink.pheno", sep="\t", index=False)
    subprocess.run([plink, "--bfile", info["bfile"], "--pheno", str(tmp / "c.plink.pheno"), "--pheno-name", "y",
                    "--covar", info["covar"], "--covar-name", "sex", "age", "--glm", "hide-covar", "no-firth",
                    "--covar-variance-standardize", "--out", str(tmp / "c.plink"), "--threads", "2"],
                   check=True, capture_output=True)
    out = next(tmp.glob("c.plink.y.glm.logistic*"))
    pr = pd.read_csv(out, sep="\t")
    pr = pr.set_index("ID")
    rows = []
    for name, r in (("logistic score test (tau = 0)", lr), ("mixed-model score test", mm)):
        a = -np.log10(r.set_index("ID")["P"])
        b = -np.log10(pr.loc[a.index, "P"])
        ok = np.isfinite(a) & np.isfinite(b)
        rows.append([name, int(ok.sum()), f"{np.corrcoef(a[ok], b[ok])[0, 1]:.5f}",
                     f"{np.median(np.abs(a[ok] - b[ok])):.4f}", f"{np.max(np.abs(a[ok] - b[ok])):.3f}"])
    return pd.DataFrame(rows, columns=["glmmkit", "variants", "corr of -log10 p with plink2 --glm",
                                       "median abs. diff.", "max abs. diff."]), s.n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=700)
    ap.add_argument("--variants", type=int, default=20000)
    ap.add_argument("--spa-families", type=int, default=2500)
    ap.add_argument("--spa-variants", type=int, default=40000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ta, na, ela = scenario_a(tmp, a.families, a.variants, 11)
        print(ta.to_string(index=False), flush=True)
        tb, nb, cases, how = scenario_b(tmp, a.spa_families, a.spa_variants, 12)
        print(tb.to_string(index=False), flush=True)
        tc, nc = scenario_c(tmp, 1000, 5000, 13)
        print(tc, flush=True)
    text = f"""# GWAS calibration (issue 7)

`python benchmarks/gwas_calibration.py --families {a.families} --variants {a.variants} --spa-families {a.spa_families}
--spa-variants {a.spa_variants}`, one run, seeded (`gk.gwas.simulate_cohort`).

## A. Relatedness and stratification: lambda_GC ({na} samples in {a.families} families, {a.variants:,} variants)

Families of two founders and children, two populations (Fst 0.02), binary trait with liability h2 = 0.3,
a shared family environment (0.1), a population shift of 0.5 and prevalence 30%; covariates sex and age.
lambda_GC over the variants without an effect. PQL null model, exact projection.

{ta.to_markdown(index=False)}

## B. 1% prevalence: SPA ({nb} unrelated samples, {cases} cases, {a.spa_variants:,} variants with A1 frequency 0.5% to 5%)

Type-I error over nominal (1 = calibrated) of the score test, normal approximation
against the saddle-point approximation (applied where |T| > 2, as SAIGE); variants with minor-allele
count >= 3. Null model: {how}.

{tb.to_markdown(index=False)}

## C. Unrelated samples against plink2 --glm ({nc} founders, 5,000 variants)

plink2 (Debian's 2.00a3.5) `--glm hide-covar no-firth` (logistic regression, Wald test) with the same
covariates; glmmkit's score tests on the same samples.

{tc.to_markdown(index=False) if tc is not None else "plink2 not installed: skipped."}
"""
    write_result("gwas_calibration", text)


if __name__ == "__main__":
    main()
