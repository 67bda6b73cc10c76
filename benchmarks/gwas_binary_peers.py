"""Binary trait at 1% prevalence: glmmkit's logistic mixed-model score test with SPA against the linear mixed
models BOLT-LMM and FaST-LMM (and glmmkit's own LMM) on the 0/1 phenotype, same files (issue 22).

    python benchmarks/gwas_binary_peers.py [--families 2500] [--variants 100000]
        ->  benchmarks/results/gwas_binary_peers.md

Cohort by ``gwas.simulate_cohort``: unrelated samples (two founders a family, no children; one population),
allele frequencies 0.5% to 50%, liability h2 = 0.3 on the first 300 variants, prevalence 1%.  Every tool gets
the same PLINK files, phenotype and covariates (sex, age); the GRM / model variants are every 10th variant.
Type-I error over nominal at alpha = 1e-3 and 1e-4 over the variants without an effect, by minor-allele
frequency (minor-allele count >= 3), as SAIGE's paper shows it; lambda_GC.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from glmmkit import gwas

sys.path.insert(0, str(Path(__file__).parent))
from gwas_speed import FASTLMM_SCRIPT, _timed_child  # noqa: E402
from results_io import write_result  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=2500)
    ap.add_argument("--variants", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=23)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir="/work/bench" if Path("/work/bench").is_dir() else None) as d:
        d = Path(d)
        info = gwas.simulate_cohort(d / "c", n_families=a.families, mean_children=0, n_variants=a.variants,
                                    n_causal=300, h2=0.3, c2=0.0, fst=0.0001, pop_shift=0.0, prevalence=0.01,
                                    seed=a.seed, freq_range=(0.005, 0.5))
        prefix, n = d / "c", info["n"]
        cases = int(gwas.read_table(info["pheno"])["y"].sum())
        sel = np.arange(0, a.variants, 10)
        K, _ = gwas.grm(prefix, variants=sel, progress_bar=False)
        kw = dict(pheno=info["pheno"], pheno_col="y", covar=info["covar"], covar_cols=["sex", "age"],
                  K=K, progress_bar=False)
        how = "PQL with the GRM"
        try:
            binm = gwas.null(prefix, trait="binary", **kw)
        except Exception as err:  # noqa: BLE001 -- said in the table
            how = f"tau fixed at 0 ({type(err).__name__}: {str(err)[:100]})"
            binm = gwas.null(prefix, trait="binary", fix_tau=0.0, **kw)
        rb = gwas.test(prefix, binm, min_mac=3, progress_bar=False).table
        quant = gwas.null(prefix, trait="quantitative", **kw)
        rq = gwas.test(prefix, quant, min_mac=3, progress_bar=False).table
        base = rb[["ID", "A1_FREQ", "P", "P_NORMAL"]].rename(columns={"P": "spa", "P_NORMAL": "normal"})
        base = base.merge(rq[["ID", "P"]].rename(columns={"P": "lmm"}), on="ID")
        notes = []
        bim = pd.read_csv(prefix.with_suffix(".bim"), sep=r"\s+", header=None, usecols=[1], dtype=str)[1]
        if shutil.which("bolt"):
            (d / "model.snps").write_text("\n".join(bim.iloc[sel]) + "\n")
            _timed_child(["bolt", f"--bfile={prefix}", f"--phenoFile={info['pheno']}", "--phenoCol=y",
                          f"--covarFile={info['covar']}", "--covarCol=sex", "--qCovarCol=age", "--lmmInfOnly",
                          "--LDscoresUseChip", f"--modelSnps={d / 'model.snps'}", "--numThreads=2",
                          f"--statsFile={d / 'bolt.stats'}"], d / "bolt.log")
            b = pd.read_csv(d / "bolt.stats", sep="\t", usecols=["SNP", "P_BOLT_LMM_INF"])
            base = base.merge(b.rename(columns={"SNP": "ID", "P_BOLT_LMM_INF": "bolt"}), on="ID", how="left")
        else:
            notes.append("BOLT-LMM not installed")
        try:
            (d / "sel.txt").write_text(" ".join(map(str, sel)))
            script = d / "fastlmm_run.py"
            script.write_text(FASTLMM_SCRIPT)
            _timed_child([sys.executable, str(script), str(prefix), str(info["pheno"]), str(info["covar"]),
                          str(d / "sel.txt"), str(d / "fastlmm.tsv")], d / "fastlmm.log")
            f = pd.read_csv(d / "fastlmm.tsv", sep="\t")
            base = base.merge(f.rename(columns={"SNP": "ID", "PValue": "fastlmm"})[["ID", "fastlmm"]], on="ID",
                              how="left")
        except Exception as err:  # noqa: BLE001
            notes.append(f"FaST-LMM failed: {type(err).__name__}: {str(err)[:120]}")
    methods = {"glmmkit logistic GLMM, score test with SPA (default)": "spa",
               "glmmkit logistic GLMM, score test, normal approximation": "normal",
               "glmmkit LMM on the 0/1 trait": "lmm", "BOLT-LMM-inf on the 0/1 trait": "bolt",
               "FaST-LMM on the 0/1 trait": "fastlmm"}
    null = ~base["ID"].isin(info["causal"])
    maf = np.minimum(base["A1_FREQ"], 1 - base["A1_FREQ"])
    bins = {"MAF < 1%": maf < 0.01, "MAF 1% to 5%": (maf >= 0.01) & (maf < 0.05), "MAF >= 5%": maf >= 0.05}
    rows = []
    for name, col in methods.items():
        if col not in base:
            continue
        row = [name]
        for lab, sel_b in bins.items():
            p = base.loc[null & sel_b & base[col].notna(), col].astype(float)
            row += [f"{np.mean(p < 1e-3) / 1e-3:.2f}", f"{np.mean(p < 1e-4) / 1e-4:.2f}"]
        row.append(f"{gwas.lambda_gc(base.loc[null, col].astype(float)):.3f}")
        rows.append(row)
    cols = ["method"] + [f"{lab}: {x}" for lab in bins for x in ("1e-3", "1e-4")] + ["lambda_GC"]
    counts = ", ".join(f"{lab} {int((null & s).sum()):,}" for lab, s in bins.items())
    text = f"""# Binary trait at 1% prevalence: SPA against the linear mixed models (issue 22)

`python benchmarks/gwas_binary_peers.py --families {a.families} --variants {a.variants}`, one run, seeded.
{n:,} unrelated samples, {cases} cases (prevalence 1%), {a.variants:,} variants (A1 frequency 0.5% to 50%),
covariates sex and age; the same PLINK files for every tool; GRM / model variants: every 10th variant.
glmmkit's logistic null model: {how}; tau = {binm.tau:.3g}.  Type-I error over nominal (1 = calibrated) of
the variants without an effect with minor-allele count >= 3 ({counts}).

{pd.DataFrame(rows, columns=cols).to_markdown(index=False)}
{("Notes: " + "; ".join(notes)) if notes else ""}
"""
    write_result("gwas_binary_peers", text)


if __name__ == "__main__":
    main()
