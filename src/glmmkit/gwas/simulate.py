"""A simulated cohort with families and two ancestral populations, written as PLINK files.

Allele frequencies: ancestral p ~ U(``freq_range``) (default 0.05 to 0.95), population frequencies by Balding-Nichols with F = ``fst``.
Families: two founders from one population and 1 + Poisson children (at least one; ``mean_children=0``:
none, an unrelated cohort), each child taking
one allele of each parent at every variant (unlinked variants).  The first ``n_causal`` variants carry
the polygenic effect (liability variance ``h2``); population B has its liability raised by
``pop_shift`` (stratification), and family members share an environment (variance ``c2``).  Binary
trait: the top ``prevalence`` of liability.  Covariates: sex and age (noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..output import write_table
from ..progress import progress
from .plink import BedWriter


def simulate_cohort(prefix, n_families: int = 400, mean_children: float = 2.0, n_variants: int = 5000,
                    n_causal: int = 200, h2: float = 0.5, c2: float = 0.1, fst: float = 0.02,
                    pop_shift: float = 0.5, prevalence: float = 0.3, chunk: int = 20_000, seed: int = 1,
                    n_chromosomes: int = 22, causal_extra: float | None = None, freq_range=(0.05, 0.95),
                    progress_bar: bool = False) -> dict:
    """Writes ``prefix``.bed/.bim/.fam, ``prefix``.pheno.tsv (FID IID y liability), ``prefix``.covar.tsv
    (FID IID sex age); returns the paths and the truth.  ``causal_extra``: the first variant also gets this
    additional effect on the liability scale (a detectable hit).

    Parameters
    ----------
    prefix : str or path-like
        Where to write.
    n_families : int
        Families (two founders and their children).
    mean_children : float
        Mean children per family (Poisson).
    n_variants, n_causal : int
        Variants and causal variants.
    h2, c2 : float
        Heritability and the shared-environment share of the liability.
    fst, pop_shift : float
        Population structure: allele-frequency divergence and the liability shift of the second population.
    prevalence : float
        The binary trait's prevalence.
    chunk : int
        Variants written per chunk.
    seed : int
        Seed.
    n_chromosomes : int
        Chromosomes.
    causal_extra : float, optional
        Extra effect of the first variant.
    freq_range : tuple
        Allele frequencies' range.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``bfile``, ``pheno``, ``covar`` paths and the truth (causal variants, effects).
    """
    rng = np.random.default_rng(seed)
    prefix = Path(prefix)
    kids = (1 + rng.poisson(max(mean_children - 1, 0), n_families)) if mean_children > 0 else np.zeros(n_families, int)
    pop = rng.integers(0, 2, n_families)
    fam_rows = []
    for f in range(n_families):  # set-up of the pedigree table only
        fid = f"F{f + 1:05d}"
        fam_rows.append((fid, f"{fid}_1", "0", "0", 1, pop[f], -1, -1))
        fam_rows.append((fid, f"{fid}_2", "0", "0", 2, pop[f], -1, -1))
        base = len(fam_rows) - 2
        for c in range(kids[f]):
            fam_rows.append((fid, f"{fid}_{c + 3}", f"{fid}_1", f"{fid}_2", int(rng.integers(1, 3)), pop[f], base, base + 1))
    ped = pd.DataFrame(fam_rows, columns=["FID", "IID", "PAT", "MAT", "SEX", "POP", "pa", "ma"])
    n = len(ped)
    founder = ped["pa"].to_numpy() < 0
    nf = int(founder.sum())
    f_pop = ped["POP"].to_numpy()[founder]
    child = np.flatnonzero(~founder)
    # map parents to founder index
    fidx = np.full(n, -1)
    fidx[founder] = np.arange(nf)
    pa, ma = fidx[ped["pa"].to_numpy()[child]], fidx[ped["ma"].to_numpy()[child]]
    per_chr = -(-n_variants // n_chromosomes)
    liab_g = np.zeros(n)
    effects = np.zeros(n_causal)
    with BedWriter(prefix, ped) as out:
        for c0 in progress(range(0, n_variants, chunk), total=-(-n_variants // chunk), desc="simulate", enable=progress_bar):
            m = min(chunk, n_variants - c0)
            p = rng.uniform(*freq_range, m)
            a, b = p * (1 - fst) / fst, (1 - p) * (1 - fst) / fst
            pp = rng.beta(a[None, :].repeat(2, 0), b[None, :].repeat(2, 0))  # (2 populations, m)
            H = (rng.random((nf, 2, m)) < pp[f_pop][:, None, :]).astype(np.int8)  # founder haplotypes
            G = np.empty((n, m), dtype=np.int8)
            G[founder] = H.sum(axis=1)
            from_pa = H[pa[:, None], rng.integers(0, 2, (len(child), m)), np.arange(m)[None, :]] if len(child) else 0
            from_ma = H[ma[:, None], rng.integers(0, 2, (len(child), m)), np.arange(m)[None, :]] if len(child) else 0
            G[child] = from_pa + from_ma
            j = np.arange(c0, c0 + m)
            causal = j < n_causal
            if causal.any():
                g = G[:, causal].astype(float)
                gs = (g - g.mean(0)) / np.maximum(g.std(0), 1e-12)
                e = rng.standard_normal(causal.sum()) * np.sqrt(h2 / n_causal)
                effects[j[causal]] = e
                liab_g += gs @ e
                if causal_extra and c0 == 0:
                    liab_g += causal_extra * gs[:, 0]
            chrom = 1 + j // per_chr
            var = pd.DataFrame({"CHR": chrom.astype(str), "POS": 1000 * (1 + j % per_chr), "ID": [f"rs{k + 1}" for k in j],
                                "A1": "A", "A2": "G"})
            out.write(G, var)
    famenv = rng.standard_normal(n_families)[pd.factorize(ped["FID"])[0]] * np.sqrt(c2)
    noise = rng.standard_normal(n) * np.sqrt(max(1 - h2 - c2, 1e-6))
    liability = liab_g + famenv + noise + pop_shift * ped["POP"].to_numpy()
    y = (liability >= np.quantile(liability, 1 - prevalence)).astype(int)
    sex = ped["SEX"].to_numpy()
    age = rng.normal(50, 10, n).round(1)
    pheno = pd.DataFrame({"FID": ped["FID"], "IID": ped["IID"], "y": y, "liability": liability.round(5)})
    covar = pd.DataFrame({"FID": ped["FID"], "IID": ped["IID"], "sex": sex, "age": age})
    write_table(pheno, str(prefix) + ".pheno.tsv", sep="\t", index=False)
    write_table(covar, str(prefix) + ".covar.tsv", sep="\t", index=False)
    return {"bfile": str(prefix), "pheno": str(prefix) + ".pheno.tsv", "covar": str(prefix) + ".covar.tsv",
            "n": n, "n_families": n_families, "causal": [f"rs{k + 1}" for k in range(n_causal)],
            "population": ped["POP"].to_numpy()}
