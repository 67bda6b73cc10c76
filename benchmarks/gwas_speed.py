"""GWAS at scale on this machine (issue 7).

    python benchmarks/gwas_speed.py [--families 2500] [--variants 1000000] [--grm-variants 20000]
        ->  benchmarks/results/gwas_speed.md

1. Writes a simulated cohort as PLINK files (families, ~4 per family: 10,000 samples at the default).
2. Step 1: the GRM from --grm-variants variants spread over the genome, then the null logistic GLMM with
   the dense GRM (PQL, AI-REML; Hutchinson traces above 5,000 samples) and the variance ratio.
3. Step 2: the score test (variance ratio, SPA where |T| > 2) of every variant, chunks sized to the samples
   (``gwas.scan.chunk_for``: about 400 MB of genotypes a task), in this process and with 2 local processes.
4. A peer on the same files, same invocation (skipped with --no-peers or when it is not installed):
   BOLT-LMM (Debian's bolt-lmm; infinitesimal model, --lmmInfOnly, the same GRM variants as model SNPs,
   2 threads), which takes the 0/1 trait as quantitative -- beside glmmkit's linear mixed model
   (trait="quantitative") on the same phenotype: times of both steps and agreement of the p-values.
5. FaST-LMM (PyPI: fastlmm, pysnptools and six, benchmark-only) on the same model variants, and plink2 --glm
   (Debian's plink2; no relatedness, the baseline), each as a child process with its memory peak.
Wall times, variants per second (per core), memory peak.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from glmmkit import gwas

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402


def rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=2500)
    ap.add_argument("--variants", type=int, default=1_000_000)
    ap.add_argument("--grm-variants", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=None, help="step-2 variants per task (default: sized to n)")
    ap.add_argument("--dir", default=None, help="where to write the PLINK files (default: a temporary folder)")
    ap.add_argument("--no-peers", action="store_true", help="skip the peers on the same files")
    ap.add_argument("--name", default="gwas_speed", help="the results file, benchmarks/results/NAME.md")
    ap.add_argument("--no-fastlmm", action="store_true", help="skip FaST-LMM (O(n^2) per variant at large n)")
    ap.add_argument("--sparse", type=float, default=None,
                    help="glmmkit on the sparse GRM thresholded there (built by gwas.build_sparse_grm: screened "
                         "above 20,000 samples) and fitted by conjugate gradients, instead of the dense GRM; "
                         "with --pcs principal components as covariates (of every tool)")
    ap.add_argument("--no-plink2", action="store_true", help="skip plink2 --glm (slow for a 0/1 trait at large n)")
    ap.add_argument("--implicit", action="store_true",
                    help="glmmkit with the dense GRM held implicitly (gwas.implicit_grm: the model variants' "
                         "genotypes, conjugate gradients; BOLT-LMM-inf's model) instead of the n x n matrix")
    ap.add_argument("--pcs", type=int, default=10, help="principal components with --sparse (default 10)")
    a = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    if a.dir is not None:
        os.makedirs(a.dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        prefix = Path(d) / "cohort"
        t0 = time.perf_counter()
        # simulated in a child process, so that this process's memory peak is glmmkit's own (the 40,000-sample
        # cohort's simulation peaks at 9.2 GB)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            info = pool.submit(gwas.simulate_cohort, prefix, n_families=a.families, n_variants=a.variants,
                               n_causal=500, h2=0.3, prevalence=0.1, chunk=10_000, seed=21).result()
        t_sim = time.perf_counter() - t0
        n = info["n"]
        size_gb = prefix.with_suffix(".bed").stat().st_size / 1e9
        print(f"wrote {n} samples x {a.variants} variants ({size_gb:.2f} GB .bed) in {t_sim:.0f} s", flush=True)

        geno = gwas.Genotypes.open(prefix)
        sel = np.linspace(0, a.variants - 1, a.grm_variants).astype(int)
        info["covar_cols"], pca_row, t_pca = ["sex", "age"], "", 0.0
        if a.sparse:  # the sparse GRM drops population structure with the background: PCs as covariates
            t0 = time.perf_counter()
            pcs = gwas.pca(geno, n_pcs=a.pcs, variants=sel)
            t_pca = time.perf_counter() - t0
            cov = gwas.read_table(info["covar"]).merge(pcs.eigenvec, on=["FID", "IID"])
            info["covar"] = Path(d) / "covar_pcs.tsv"
            cov.to_csv(info["covar"], sep="\t", index=False)
            info["covar_cols"] += [f"PC{i + 1}" for i in range(a.pcs)]
            pca_row = (f"| {a.pcs} principal components of the same variants (`gwas.pca`, {pcs.iterations} passes, "
                       f"{'converged' if pcs.converged else 'not converged'}; covariates of every tool below) "
                       f"| {t_pca:.0f} s | | |\n")
        t0 = time.perf_counter()
        K, m, screen = kernel(geno, sel, a.sparse,
                              None if not a.sparse else pcs.eigenvec.filter(like="PC").to_numpy(), a.implicit)
        t_grm = time.perf_counter() - t0
        K_nnz = K.nnz if a.sparse else n * n
        t0 = time.perf_counter()
        model = gwas.null(prefix, info["pheno"], "y", info["covar"], info["covar_cols"], trait="binary", K=K,
                          sparse=a.sparse, loco=a.implicit, progress_bar=False)
        t_null = time.perf_counter() - t0
        print(model.summary(), flush=True)
        if a.no_peers:
            del K
        rss1 = rss_gb()
        t0 = time.perf_counter()
        res = gwas.test(prefix, model, out=Path(d) / "res.tsv.gz", chunk=a.chunk).table
        t_test = time.perf_counter() - t0
        t0 = time.perf_counter()
        res2 = gwas.test(prefix, model, chunk=a.chunk, workers=2).table
        t_test2 = time.perf_counter() - t0
        same = bool(np.allclose(res["P"], res2["P"], equal_nan=True, rtol=0, atol=0))
        lam = gwas.lambda_gc(res.loc[~res["ID"].isin(info["causal"]), "P"])
        del res, res2
        peers = ""
        if not a.no_peers:
            ours = quantitative_scan(prefix, info, K, t_pca + t_grm, a)
            del K
            if shutil.which("bolt"):
                peers += bolt_side_by_side(prefix, info, sel, a, ours)
            peers += other_peers(prefix, info, sel, a, n, ours["table"], fastlmm=not a.no_fastlmm)
    per_s1 = a.variants / t_test
    per_s2 = a.variants / t_test2
    text = f"""# GWAS at scale (issue 7)

`python benchmarks/gwas_speed.py --families {a.families} --variants {a.variants} --grm-variants {a.grm_variants}{f" --sparse {a.sparse}" if a.sparse else ""}`
on this machine ({cores} cores), one run.

Cohort: {n:,} samples ({a.families:,} families), {a.variants:,} variants written as PLINK files by the
benchmark ({size_gb:.2f} GB .bed; simulation and writing {t_sim:.0f} s, not counted); binary trait, prevalence 10%.

| step | wall time | throughput | memory peak |
|---|---|---|---|
{pca_row}| {grm_label(m, n, a.sparse, screen, K_nnz, a.implicit)} | {t_grm:.0f} s | | |
| null logistic GLMM, {"sparse GRM (PQL / AI-REML by conjugate gradients" if a.sparse else f"dense GRM held implicitly (PQL / AI-REML by conjugate gradients on products with the genotypes" if a.implicit else f"dense {n:,} x {n:,} GRM (PQL / AI-REML"}, {model.iterations} iterations) + variance ratio | {t_null:.0f} s ({t_null / 60:.1f} min; asked < 5 min) | | {rss1:.1f} GB |
| step 2, {a.variants:,} variants, 1 process (its bed-reader and BLAS threads on all {cores} cores) | {t_test:.0f} s ({t_test / 60:.1f} min; asked < 10 min) | {per_s1:,.0f} variants/s ({per_s1 / cores:,.0f} per core) | {rss_gb():.1f} GB |
| step 2, 2 local processes | {t_test2:.0f} s | {per_s2:,.0f} variants/s ({per_s2 / 2:,.0f} per core) | |

Results identical between the runs: {same}. tau = {model.tau:.3f}, variance ratio {model.variance_ratio:.4f},
lambda_GC over the null variants {lam:.3f}. In variant x sample units: {per_s2 * n / 2 / 1e6:,.0f} million genotypes
tested per second per core (2 processes).
"""
    write_result(a.name, text + peers)


def kernel(geno, sel, sparse: float | None, adjust=None, implicit: bool = False):
    """The GRM of the model variants: dense (a matrix, or implicit: their standardised genotypes), or sparse at
    threshold ``sparse`` (the way gwas.null builds it, the PCs projected out of the screen's sketch)."""
    if implicit:
        K = gwas.implicit_grm(geno, variants=sel)
        return K, K.m, None
    if sparse is None:
        K, m = gwas.grm(geno, variants=sel, chunk=2000)
        return K, m, None
    return gwas.build_sparse_grm(geno, sparse, variants=sel, adjust=adjust)


def grm_label(m: int, n: int, sparse: float | None, screen, nnz: int, implicit: bool = False) -> str:
    if implicit:
        return (f"implicit GRM: the standardised genotypes of {m:,} variants x {n:,} samples held "
                f"({m * n / 1e9:.1f} GB packed, a byte per genotype; the matrix would be {8 * n * n / 1e9:.1f} GB)")
    if sparse is None:
        return f"GRM, {m:,} variants x {n:,} samples (BLAS, blocks of 2,000)"
    how = (f"screened: sketch of {screen.k:,} variants ({screen.adjusted} PCs projected out), "
           f"{screen.candidates:,} candidate pairs"
           if screen is not None and screen.screened else
           f"exact strips ({screen.note})" if screen is not None else "exact strips, no screen")
    return (f"sparse GRM at {sparse}, {m:,} variants x {n:,} samples ({how}; {(nnz - n) // 2:,} pairs kept, "
            f"{(nnz - n) / n:.2f} per sample)")


def quantitative_scan(prefix: Path, info: dict, K, t_grm: float, a) -> dict:
    """glmmkit's linear mixed model (trait="quantitative") on the 0/1 phenotype with the same GRM, step 2 with 2
    local processes: the scan the LMM peers are compared with.  Step 1 counts the GRM's time ``t_grm``."""
    t0 = time.perf_counter()
    model = gwas.null(prefix, info["pheno"], "y", info["covar"], info["covar_cols"], trait="quantitative", K=K,
                      sparse=a.sparse, loco=a.implicit, progress_bar=False)
    t_null = t_grm + time.perf_counter() - t0
    t0 = time.perf_counter()
    table = gwas.test(prefix, model, chunk=a.chunk, workers=2, progress_bar=False).table[["ID", "P"]]
    return {"table": table, "t_null": t_null, "t_test": time.perf_counter() - t0, "rss": rss_gb()}


def bolt_side_by_side(prefix: Path, info: dict, sel, a, ours: dict) -> str:
    """glmmkit's linear mixed model (``ours``, from quantitative_scan) and BOLT-LMM-inf on the same files,
    phenotype and model variants."""
    d = prefix.parent
    t_null, t_test, rss = ours["t_null"], ours["t_test"], ours["rss"]
    ours = ours["table"]
    kind = (f"sparse GRM at {a.sparse}, the same model variants, AI-REML by conjugate gradients" if a.sparse
            else "dense GRM held implicitly, AI-REML by conjugate gradients, leave-one-chromosome-out" if a.implicit
            else "dense GRM, AI-REML")
    loco_note = ("both leave each variant's chromosome out of the GRM: BOLT-LMM by chunks, glmmkit by chromosome"
                 if a.implicit else "BOLT's statistic leaves each variant's chromosome chunk out of the GRM, "
                 "glmmkit's here does not")
    bim = pd.read_csv(prefix.with_suffix(".bim"), sep=r"\s+", header=None, usecols=[1], dtype=str)[1]
    (d / "model.snps").write_text("\n".join(bim.iloc[sel]) + "\n")
    cmd = ["bolt", f"--bfile={prefix}", f"--phenoFile={info['pheno']}", "--phenoCol=y",
           f"--covarFile={info['covar']}", "--covarCol=sex",
           *[f"--qCovarCol={c}" for c in info["covar_cols"][1:]], "--lmmInfOnly",
           "--LDscoresUseChip", f"--modelSnps={d / 'model.snps'}", "--numThreads=2",
           f"--statsFile={d / 'bolt.stats'}"]
    t_bolt, mem_bolt = _timed_child(cmd, d / "bolt.log")
    out = (d / "bolt.log").read_text()

    def phase(label):
        m = re.search(label + r" = ([0-9.]+) sec", out)
        return float(m.group(1)) if m else float("nan")

    t_vc, t_inf = phase("Time for fitting variance components"), phase("Time for computing infinitesimal model assoc stats")
    t_stream = phase("Time for streaming genotypes and writing output")
    bolt = pd.read_csv(d / "bolt.stats", sep="\t", usecols=["SNP", "P_BOLT_LMM_INF"])
    both = ours[["ID", "P"]].merge(bolt, left_on="ID", right_on="SNP")
    ok = both["P"].notna() & both["P_BOLT_LMM_INF"].notna()
    r = np.corrcoef(-np.log10(both.loc[ok, "P"]), -np.log10(both.loc[ok, "P_BOLT_LMM_INF"].astype(float)))[0, 1]
    null = ~both["ID"].isin(info["causal"])
    lam_ours, lam_bolt = gwas.lambda_gc(both.loc[null, "P"]), gwas.lambda_gc(both.loc[null, "P_BOLT_LMM_INF"])
    v = a.variants
    return f"""
## Beside BOLT-LMM, same files, same invocation

The same PLINK files, the 0/1 phenotype as a quantitative trait (BOLT-LMM's way with case-control data),
covariates {", ".join(info["covar_cols"])}, the same {len(sel):,} variants for the GRM (BOLT's model SNPs); BOLT-LMM {_bolt_version(out)}
(Debian's package) with `--lmmInfOnly --LDscoresUseChip --numThreads=2` against glmmkit's
`trait="quantitative"` null model ({kind}) and step 2 with 2 local processes.

| | step 1 ({"PCs + " if a.sparse else ""}GRM + null model) | step 2, {v:,} variants | step 2 variants/s per core | total wall | lambda_GC (null variants) |
|---|---|---|---|---|---|
| glmmkit | {t_null:.0f} s | {t_test:.0f} s | {v / t_test / 2:,.0f} | {t_null + t_test:.0f} s (memory peak {rss:.1f} GB: the benchmark process, the cohort simulated in a child) | {lam_ours:.3f} |
| BOLT-LMM-inf | {t_vc + t_inf:.0f} s (variance components {t_vc:.0f} s + leave-out-chunk solves {t_inf:.0f} s) | {t_stream:.0f} s | {v / t_stream / 2:,.0f} | {t_bolt:.0f} s (memory peak {mem_bolt:.1f} GB) | {lam_bolt:.3f} |

Agreement: correlation of -log10 p over {int(ok.sum()):,} variants {r:.4f} ({loco_note}). BOLT's step 2 is a dot product per variant on
the packed genotypes in C++; glmmkit's decodes each chunk to floating point (bed-reader) first.
"""


def _timed_child(cmd, log: Path):
    """Run a peer as a child of its own: wall seconds and its memory peak (GB).  The peak is GNU time's %M of
    the peer's own process: a child forked from this (large) process would count this process's pages, as
    os.wait4's ru_maxrss did (the 40,000-sample run reported this process's 9.2 GB for every peer)."""
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    full = [timer, "-f", "PEAK_KB %M", *cmd] if timer else cmd
    t0 = time.perf_counter()
    proc = subprocess.Popen(full, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{cmd[0]} failed ({status}): {log.read_text()[-2000:]}")
    peaks = re.findall(r"PEAK_KB (\d+)", log.read_text())
    return time.perf_counter() - t0, (int(peaks[-1]) / 1024 ** 2 if peaks else usage.ru_maxrss / 1024 ** 2)


FASTLMM_SCRIPT = r"""
import sys, time, json
import numpy as np, pandas as pd
from pysnptools.snpreader import Bed, SnpData
from fastlmm.association import single_snp
prefix, pheno, covar, sel, out = sys.argv[1:6]
bed = Bed(prefix, count_A1=True)
p = pd.read_csv(pheno, sep=r"\s+"); c = pd.read_csv(covar, sep=r"\s+")
iid = bed.iid
key = pd.Index(p["FID"].astype(str) + " " + p["IID"].astype(str))
order = key.get_indexer([f"{a} {b}" for a, b in iid])
y = SnpData(iid=iid, sid=["y"], val=p["y"].to_numpy(float)[order][:, None])
ck = pd.Index(c["FID"].astype(str) + " " + c["IID"].astype(str)).get_indexer([f"{a} {b}" for a, b in iid])
cols = [k for k in c.columns if k not in ("FID", "IID")]
X = SnpData(iid=iid, sid=cols, val=c[cols].to_numpy(float)[ck])
idx = np.array([int(v) for v in open(sel).read().split()])
t0 = time.perf_counter()
res = single_snp(test_snps=bed, pheno=y, covar=X, K0=bed[:, idx], count_A1=True, leave_out_one_chrom=False)
res[["SNP", "PValue"]].to_csv(out, sep="	", index=False)
print(json.dumps({"time": time.perf_counter() - t0}))
"""


class _NotRun(Exception):
    """A peer left out on purpose."""


def other_peers(prefix: Path, info: dict, sel, a, n: int, ours: pd.DataFrame, fastlmm: bool = True) -> str:
    """FaST-LMM (PyPI's fastlmm, an LMM on the same model variants) and plink2 --glm (no relatedness: the
    baseline), on the same files; glmmkit's quantitative-trait scan beside them."""
    d = prefix.parent
    rows = []
    null = ~ours["ID"].isin(info["causal"])
    try:
        if not fastlmm:
            raise _NotRun("not run here (--no-fastlmm: its test costs O(n^2) per variant)")
        (d / "sel.txt").write_text(" ".join(map(str, sel)))
        script = d / "fastlmm_run.py"
        script.write_text(FASTLMM_SCRIPT)
        t, mem = _timed_child([sys.executable, str(script), str(prefix), str(info["pheno"]), str(info["covar"]),
                               str(d / "sel.txt"), str(d / "fastlmm.tsv")], d / "fastlmm.log")
        f = pd.read_csv(d / "fastlmm.tsv", sep="\t")
        both = ours.merge(f, left_on="ID", right_on="SNP")
        ok = both["P"].notna() & both["PValue"].notna()
        r = np.corrcoef(-np.log10(both.loc[ok, "P"]), -np.log10(both.loc[ok, "PValue"]))[0, 1]
        rows.append(("FaST-LMM (fastlmm, single_snp, K0 = the model variants)", t, mem, r,
                     gwas.lambda_gc(both.loc[~both["ID"].isin(info["causal"]), "PValue"])))
    except _NotRun as why:
        rows.append((f"FaST-LMM: {why}", np.nan, np.nan, np.nan, np.nan))
    except Exception as err:  # noqa: BLE001  (a peer that fails is reported, not fatal)
        rows.append((f"FaST-LMM: failed ({type(err).__name__}: {str(err)[:80]})", np.nan, np.nan, np.nan, np.nan))
    if shutil.which("plink2") and not a.no_plink2:
        t, mem = _timed_child(["plink2", "--bfile", str(prefix), "--pheno", str(info["pheno"]), "--pheno-name", "y",
                               "--covar", str(info["covar"]), "--covar-name", *info["covar_cols"], "--covar-variance-standardize", "--glm", "hide-covar",
                               "--1", "--threads", "2", "--out", str(d / "plink2")], d / "plink2.log")
        out = next(d.glob("plink2.y.glm.*"))
        g = pd.read_csv(out, sep="\t")
        both = ours.merge(g[["ID", "P"]].rename(columns={"P": "P2"}), on="ID")
        ok = both["P"].notna() & both["P2"].notna()
        r = np.corrcoef(-np.log10(both.loc[ok, "P"]), -np.log10(both.loc[ok, "P2"]))[0, 1]
        rows.append((f"plink2 --glm ({out.suffix[1:]}, no relatedness)", t, mem, r,
                     gwas.lambda_gc(both.loc[~both["ID"].isin(info["causal"]), "P2"])))
    text = (f"\n## FaST-LMM and plink2 on the same files\n\nThe same {n:,} samples x {a.variants:,} variants, the "
            f"same covariates and the same {len(sel):,} model variants; whole job (kernel, null model and every "
            "test) as a child process with its memory peak; correlation of -log10 p with glmmkit's "
            f"quantitative-trait scan (lambda_GC of glmmkit's over the null variants: "
            f"{gwas.lambda_gc(ours.loc[null, 'P']):.3f}).\n\n"
            "| peer | whole job (s) | variants/s | memory peak (GB) | corr. of -log10 p with glmmkit | lambda_GC |\n"
            "|---|---|---|---|---|---|\n")
    for name, t, mem, r, lam in rows:
        text += f"| {name} | {t:.0f} | {a.variants / t:,.0f} | {mem:.2f} | {r:.4f} | {lam:.3f} |\n"
    return text


def _bolt_version(log: str) -> str:
    m = re.search(r"BOLT-LMM, v([0-9.]+)", log)
    return f"v{m.group(1)}" if m else ""


if __name__ == "__main__":
    main()
