"""Simulated single-cell counts with subjects nested in two conditions, as AnnData.

Gene g in cell i of subject s:  y ~ NB2(mu, theta_g),  log mu = log L_i + b0_g + lfc_g [cond_s = B] + sigma_g u_gs,
u_gs ~ N(0, 1).  Library sizes L_i log-normal; baseline expression b0 spread over four orders of magnitude;
a fraction ``frac_de`` of genes with |lfc| = ``lfc`` (random sign).  Cells go to subjects at random, equally
likely by default; ``cells_sd`` > 0 draws each subject's share of the cells as exp(N(0, cells_sd^2)), normalised
(real donors contribute very different numbers of cells).  The truth is kept in ``var``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from ..checks import check_int
from ..errors import InputError


def simulate(n_genes: int = 2000, n_cells: int = 4000, n_subjects: int = 12, frac_de: float = 0.1,
             lfc: float = 0.5, seed: int = 1, mean_lib: float = 4000.0, sd_range=(0.15, 0.5),
             block: int = 500, cells_sd: float = 0.0, sd_trend: float = 0.0, progress_bar: bool = False):
    """An AnnData object: X (cells x genes, CSR integer counts), obs (subject, condition), var (truth).

    Parameters
    ----------
    n_genes, n_cells, n_subjects : int
        Sizes (half the subjects in each condition).
    frac_de : float
        The share of DE genes.
    lfc : float
        Their log fold change (natural log).
    seed : int
        Seed.
    mean_lib : float
        Mean library size.
    sd_range : tuple
        Range of the genes' subject SDs.
    block : int
        Genes simulated at a time.
    cells_sd : float
        SD of the log number of cells per subject (0: equal).
    sd_trend : float
        How much the subject SD falls with mean expression: sigma_g = sd_range scaled by exp(-sd_trend z_g),
        z_g the gene's standardised log mean, clipped to 4 times the range (0: independent of expression).
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    anndata.AnnData
        Counts with ``obs`` (subject, condition) and ``var`` (the truth).
    """
    import anndata

    from ..progress import progress

    check_int("n_genes", n_genes, 1)
    check_int("n_cells", n_cells, 1)
    if n_cells < n_subjects:
        raise InputError(f"n_cells ({n_cells}) must be at least n_subjects ({n_subjects}): every subject has cells")
    if n_subjects < 4 or n_subjects % 2:
        raise InputError("n_subjects must be even and at least 4 (two conditions, two subjects each)")
    rng = np.random.default_rng(seed)
    if cells_sd > 0:
        share = np.exp(rng.normal(0.0, cells_sd, n_subjects))
        subject = rng.choice(n_subjects, n_cells, p=share / share.sum())
    else:
        subject = rng.integers(0, n_subjects, n_cells)
    subject = np.sort(subject)
    subject[:n_subjects] = np.arange(n_subjects)  # every subject has cells
    subject = np.sort(subject)
    cond_s = (np.arange(n_subjects) % 2).astype(float)  # alternate A, B
    lib = rng.lognormal(np.log(mean_lib), 0.45, n_cells)
    log_mean = rng.normal(np.log(0.08), 1.6, n_genes)  # mean count per cell at the mean library size
    b0 = log_mean - np.log(mean_lib)
    theta = np.exp(rng.normal(np.log(1.5), 0.6, n_genes) + 0.15 * (log_mean - np.log(0.08)))
    sigma = rng.uniform(*sd_range, n_genes)
    if sd_trend:  # lowly expressed genes vary more between subjects (as in real data)
        z = (log_mean - log_mean.mean()) / log_mean.std()
        sigma = np.clip(sigma * np.exp(-sd_trend * z), sd_range[0] / 4, 4 * sd_range[1])
    is_de = rng.random(n_genes) < frac_de
    true_lfc = np.where(is_de, lfc * rng.choice([-1.0, 1.0], n_genes), 0.0)
    parts = []
    for g0 in progress(range(0, n_genes, block), total=-(-n_genes // block), desc="simulate", enable=progress_bar):
        g = slice(g0, min(g0 + block, n_genes))
        u = rng.standard_normal((n_subjects, g.stop - g.start)) * sigma[g]
        eta = b0[g] + true_lfc[g] * cond_s[:, None] + u  # (S, Gb)
        mu = lib[:, None] * np.exp(eta[subject])  # (n, Gb)
        th = theta[g]
        y = rng.negative_binomial(th, th / (th + mu))
        parts.append(sp.csc_matrix(y.astype(np.float32)))
    X = sp.hstack(parts).tocsr()
    names = [f"S{s + 1:02d}" for s in range(n_subjects)]
    obs = pd.DataFrame({"subject": pd.Categorical([names[s] for s in subject], categories=names),
                        "condition": pd.Categorical(np.where(cond_s[subject] > 0, "B", "A"), categories=["A", "B"])},
                       index=[f"cell{i}" for i in range(n_cells)])
    var = pd.DataFrame({"true_lfc": true_lfc, "is_de": is_de, "true_sd": sigma, "true_theta": theta,
                        "true_log_mean": log_mean}, index=[f"gene{g}" for g in range(n_genes)])
    return anndata.AnnData(X=X, obs=obs, var=var)
