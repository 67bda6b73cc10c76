"""Seeded simulators of the demo stories (the bundled CSVs were written by these)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def birds(n_birds: int = 60, trials: int = 12, seed: int = 20261124) -> pd.DataFrame:
    """Repeated binary choices: does a bird attack an intruder, given its testosterone level?

    logit P(attack) = -0.4 + 0.8 * testosterone (standardised, measured per trial) + b_bird,
    b_bird ~ N(0, 1.1^2) (each bird's own boldness).

    Parameters
    ----------
    n_birds, trials : int
        Birds and trials per bird.
    seed : int
        Seed.

    Returns
    -------
    pandas.DataFrame
        ``bird``, ``trial``, ``season``, ``testosterone``, ``attack``.
    """
    rng = np.random.default_rng(seed)
    bird = np.repeat(np.arange(n_birds), trials)
    boldness = rng.normal(0, 1.1, n_birds)
    baseline_t = rng.normal(0, 0.7, n_birds)
    testosterone = baseline_t[bird] + rng.normal(0, 0.7, bird.size)
    season = np.tile(np.where(np.arange(trials) < trials // 2, "early", "late"), n_birds)
    eta = -0.4 + 0.8 * testosterone + 0.3 * (season == "late") + boldness[bird]
    attack = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({
        "bird": [f"B{b:02d}" for b in bird],
        "season": season,
        "testosterone": np.round(testosterone, 4),
        "attack": attack,
    })


def clinics(n_clinics: int = 25, per_clinic: int = 6, months: int = 12, seed: int = 7) -> pd.DataFrame:
    """Monthly counts of therapy sessions per clinician, with exposure (opportunities).

    log E[sessions] = log(opportunities) - 1.2 + 0.25 * training + b_clinic + b_clinician:clinic,
    b_clinic ~ N(0, 0.4^2), b_clinician ~ N(0, 0.3^2); training is a clinician-level yes/no.

    Parameters
    ----------
    n_clinics, per_clinic, months : int
        Clinics, clinicians per clinic and months.
    seed : int
        Seed.

    Returns
    -------
    pandas.DataFrame
        One row per clinician-month: ``clinic``, ``clinician``, ``training``, ``opportunities``, ``sessions``.
    """
    rng = np.random.default_rng(seed)
    clinic = np.repeat(np.arange(n_clinics), per_clinic)
    clinician = np.arange(n_clinics * per_clinic)
    training = rng.binomial(1, 0.5, clinician.size)
    b_clinic = rng.normal(0, 0.4, n_clinics)
    b_clin = rng.normal(0, 0.3, clinician.size)
    rows = np.repeat(clinician, months)
    month = np.tile(np.arange(1, months + 1), clinician.size)
    opportunities = rng.integers(20, 120, rows.size)
    eta = np.log(opportunities) - 1.2 + 0.25 * training[rows] + b_clinic[clinic[rows]] + b_clin[rows]
    sessions = rng.poisson(np.exp(eta))
    return pd.DataFrame({
        "clinic": [f"C{c:02d}" for c in clinic[rows]],
        "clinician": [f"K{c % per_clinic + 1}" for c in rows],
        "month": month,
        "training": np.where(training[rows] == 1, "yes", "no"),
        "opportunities": opportunities,
        "sessions": sessions,
    })


def mating(n_males: int = 80, seasons: int = 6, seed: int = 31) -> pd.DataFrame:
    """Winner-take-all mating success: a few males get most matings.

    log E[matings] = 0.2 + 0.35 * ornament + b_male, b_male ~ N(0, 0.4^2); the ornament (standardised)
    varies mostly from season to season within a male (SD 0.8 within, 0.6 between);
    matings ~ negative binomial with size 0.4 (variance mu + mu^2 / 0.4: far above the mean).

    Parameters
    ----------
    n_males, seasons : int
        Males and seasons.
    seed : int
        Seed.

    Returns
    -------
    pandas.DataFrame
        ``male``, ``season``, ``ornament``, ``matings``.
    """
    rng = np.random.default_rng(seed)
    male = np.repeat(np.arange(n_males), seasons)
    ornament = rng.normal(0, 1, n_males)[male] * 0.6 + rng.normal(0, 0.8, male.size)
    mu = np.exp(0.2 + 0.35 * ornament + rng.normal(0, 0.4, n_males)[male])
    size = 0.4
    matings = rng.negative_binomial(size, size / (size + mu))
    return pd.DataFrame({
        "male": [f"M{m:03d}" for m in male],
        "season": np.tile(np.arange(1, seasons + 1), n_males),
        "ornament": np.round(ornament, 4),
        "matings": matings,
    })


def _len(x: float) -> str:
    """A branch length as text: fixed point, or scientific when tiny (never rounded to 0)."""
    return f"{x:.10f}" if x >= 1e-6 else f"{x:.6e}"


def coalescent_newick(n: int, rng: np.random.Generator) -> str:
    """A Kingman coalescent tree with n tips (labels iso001...), as a Newick string.

    Parameters
    ----------
    n : int
        Tips.
    rng : numpy.random.Generator
        The random generator.

    Returns
    -------
    str
        Newick text.
    """
    nodes = [(f"iso{i + 1:03d}", 0.0) for i in range(n)]  # (subtree text, height)
    t = 0.0
    while len(nodes) > 1:
        k = len(nodes)
        t += rng.exponential(2.0 / (k * (k - 1)))
        i, j = sorted(rng.choice(k, 2, replace=False))
        (a, ha), (b, hb) = nodes[i], nodes[j]
        nodes[i] = (f"({a}:{_len(t - ha)},{b}:{_len(t - hb)})", t)
        nodes[j] = nodes[-1]  # swap-remove: O(1) per merge
        nodes.pop()
    return nodes[0][0] + ";"


def isolates(n: int = 200, seed: int = 5) -> tuple[str, pd.DataFrame]:
    """Bacterial isolates on a coalescent tree: a gene carried by one clade, and disease risk that follows
    the tree (Brownian motion, variance 1.5 at the tips, plus a shift of 1.2 on the branch into the gene's
    clade). The gene itself has no effect: logit P(disease) = -0.6 + a(isolate).

    Parameters
    ----------
    n : int
        Isolates (tips).
    seed : int
        Seed.

    Returns
    -------
    tuple
        (Newick text, DataFrame with ``isolate``, ``gene``, ``disease``).
    """
    from ..phylo.tree import read_tree

    rng = np.random.default_rng(seed)
    text = coalescent_newick(n, rng)
    tree = read_tree(text)
    size = tree.tip_hi - tree.tip_lo
    candidates = np.flatnonzero((~tree.is_tip) & (size >= 0.15 * n) & (size <= 0.3 * n))
    clade = int(candidates[0]) if candidates.size else int(np.argmax(np.where(tree.is_tip, 0, size) * (size < 0.5 * n)))
    scale = 1.5 / tree.depth[tree.is_tip].max()
    value = np.zeros(len(tree.parent))
    for i in range(1, len(tree.parent)):  # Brownian motion down the tree, pre-order
        value[i] = value[tree.parent[i]] + rng.normal(0, np.sqrt(scale * tree.length[i]))
        if i == clade:
            value[i] += 1.2
    tips = np.flatnonzero(tree.is_tip)
    rank = np.arange(tips.size)
    gene = ((rank >= tree.tip_lo[clade]) & (rank < tree.tip_hi[clade])).astype(int)
    disease = rng.binomial(1, 1 / (1 + np.exp(-(-0.6 + value[tips]))))
    df = pd.DataFrame({"isolate": tree.tip_labels, "gene": gene, "disease": disease})
    return text, df.sort_values("isolate").reset_index(drop=True)


def antibiotic_trials(k: int = 24, log_or: float = -0.7, tau: float = 0.35, seed: int = 6) -> pd.DataFrame:
    """Trials of antibiotic prophylaxis against post-operative infection: rare events, small arms.

    Per trial: control risk logit^-1(N(-3.4, 0.6^2)), log odds ratio N(-0.7, 0.35^2), arm sizes 20 to 300
    (log-uniform); infections binomial. Many arms have no infection at all; a few trials none in either arm.

    Parameters
    ----------
    k : int
        Trials.
    log_or, tau : float
        The mean log odds ratio and its between-trial SD.
    seed : int
        Seed.

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``trial``, ``ai``, ``n1i``, ``ci``, ``n2i``.
    """
    rng = np.random.default_rng(seed)
    n1 = np.round(np.exp(rng.uniform(np.log(20), np.log(300), k))).astype(int)
    n2 = np.round(n1 * rng.uniform(0.8, 1.2, k)).astype(int)
    base = rng.normal(-3.4, 0.6, k)
    theta = rng.normal(log_or, tau, k)
    ai = rng.binomial(n1, 1 / (1 + np.exp(-(base + theta))))
    ci = rng.binomial(n2, 1 / (1 + np.exp(-base)))
    year = np.sort(rng.integers(1978, 2020, k))
    return pd.DataFrame({
        "trial": [f"T{i + 1:02d}" for i in range(k)], "year": year,
        "ai": ai, "n1i": n1, "ci": ci, "n2i": n2,
    })
