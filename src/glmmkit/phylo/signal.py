"""Phylogenetic signal: the latent-scale phylogenetic heritability of a fitted GLMM.

    H^2 = s2_phylo / (s2_random + s2_distribution)

s2_phylo is the variance of the known-covariance term of ``group`` (the tip variance when its matrix
is a correlation matrix, as ``vcv(tree, corr=True)``), s2_random the variance of all random-effects
terms (the phylogenetic one included) and s2_distribution the family's latent-scale variance
(``Family.latent_variance``; Nakagawa, Johnson & Schielzeth 2017).  These are the components of
``fit.icc()`` (inference/r2.py), so H^2 is the ICC of the phylogenetic term: the two always agree.
The interval is the one parametric bootstrap (inference/bootstrap.py: simulate with new random
effects, refit; seeded per replicate, ``workers`` or a Dask ``client``).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..checks import check_int, check_level
from ..errors import InputError
from ..inference.r2 import distribution_variance, term_variances
from ..protocol import TestResult
from ..warnings import ModelChangeWarning


def _components(fit, group: str, dist: float | None = None):
    """(s2 of group's term, s2 of all random terms, s2 of the distribution)."""
    parts = term_variances(fit)
    if group not in parts:
        raise InputError(f"{group!r} is not a grouping factor of the fit (it has {sorted(parts)})")
    known = {t.group for t in fit.spec.terms if t.is_known}
    if group not in known:
        warnings.warn(f"the term of {group!r} has no known covariance (relmat); H^2 is then an ICC", ModelChangeWarning,
                      stacklevel=3)
    s2_all = float(sum(parts.values()))
    return float(parts[group]), s2_all, (distribution_variance(fit) if dist is None else dist)


class _H2:
    """H^2 of a refitted replicate (a class, so that it pickles to worker processes)."""

    def __init__(self, group: str, dist: float | None):
        self.group, self.dist = group, dist

    def __call__(self, fit):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, a, d = _components(fit, self.group, self.dist)
        return [p / (a + d)]


def heritability(fit, group: str, nsim: int = 0, seed=None, level: float = 0.95, *, workers: int = 1,
                 client=None, progress_bar: bool = False) -> TestResult:
    """Phylogenetic heritability H^2 of ``group``'s term, with a parametric-bootstrap interval.

    Parameters
    ----------
    fit : Fit
        A fit with a known-covariance term for ``group`` (``relmat=`` or ``phylo.fit_tree_glmm``).
    group : str
        The grouping factor of the phylogenetic term.
    nsim : int
        Bootstrap replicates for the interval (0: none).
    seed : int, optional
        Seed of the replicates (replicate r uses the r-th child seed).
    level : float
        Confidence level of the interval.
    workers : int
        Local processes for the refits.
    client : dask.distributed.Client, optional
        Spread the refits on a Dask cluster.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    TestResult
        ``H2``, ``var_phylo``, ``var_random`` (all terms), ``var_distribution``; with ``nsim``: ``lower``,
        ``upper``, ``nsim`` and ``failed``.  ``H2`` equals ``fit.icc()["ICC[group]"]`` (or ``ICC``).
    """
    from ..inference.bootstrap import bootstrap

    nsim = check_int("nsim", nsim, 0)
    level = check_level(level)
    s2p, s2a, dist = _components(fit, group)
    out = {"H2": s2p / (s2a + dist), "var_phylo": s2p, "var_random": s2a, "var_distribution": dist}
    notes = []
    if nsim:
        # log-link count families: the distribution variance at the fitted model's own null mean, held
        # fixed across replicates (one null refit per replicate would double the cost)
        reps = bootstrap(fit, nsim, seed, stat=_H2(group, dist if fit.family is not None and not fit.is_lmm
                                                  and fit.family.latent_needs_mean else None),
                         workers=workers, client=client, progress_bar=progress_bar)
        r = reps.iloc[:, 0].dropna().to_numpy()
        a = (1 - level) / 2
        out["lower"], out["upper"] = (float(v) for v in np.quantile(r, [a, 1 - a]))
        out["nsim"] = nsim
        out["failed"] = int(reps.attrs["failed"])
        notes.append(f"{100 * level:g}% parametric-bootstrap percentile interval")
    return TestResult(f"Phylogenetic heritability of {group!r} (latent scale)", out, notes)
