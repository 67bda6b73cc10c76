"""Parametric bootstrap: simulate from the fit, refit, collect (lme4's ``bootMer``).

Replicate r uses the r-th child of ``numpy.random.SeedSequence(seed)``, so the replicates are the
same whether they run in one process, in several local processes (``workers=``) or on a Dask cluster
(``client=``): the work is cut into chunks of replicates and the chunks are spread.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..parallel import map_tasks
from ..checks import check_fits, check_int
from ..errors import FitError, InputError
from ..protocol import TestResult


def _replicate_task(shared, children) -> list:
    fit, stat = shared
    return _replicate_chunk(fit, children, stat)


def _replicate_chunk(fit, children, stat) -> list:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ss in children:
            y = fit.simulate(1, seed=np.random.default_rng(ss)).iloc[:, 0].to_numpy()
            try:
                out.append(np.asarray(stat(fit.refit(y)), dtype=float))
            except (ValueError, RuntimeError, np.linalg.LinAlgError, FloatingPointError):
                out.append(None)
    return out


def natural_parameters(fit) -> pd.Series:
    """The fit's parameters on lme4's ``confint`` scale: SDs, correlations, sigma (LMM) and fixed effects.

    Parameters
    ----------
    fit : Fit
        The fitted model.

    Returns
    -------
    pandas.Series
        Named as ``confint``'s rows.
    """
    from .profile import ProfileProblem

    prob = ProfileProblem.__new__(ProfileProblem)
    ProfileProblem._names(prob, fit)
    return pd.Series(prob._z_from_fit()[: len(prob.names) - prob.m], index=prob.names[: len(prob.names) - prob.m])


def bootstrap(fit, nsim: int = 500, seed=None, *, stat=None, workers: int = 1, client=None, chunk: int | None = None,
              progress_bar: bool = True) -> pd.DataFrame:
    """The parametric bootstrap: simulate from the fit, refit, collect ``stat`` (lme4's ``bootMer``).

    Every resampling function of glmmkit (bootstrap intervals, the bootstrap LRT, the dispersion test,
    the heritability interval) runs through this one.

    Parameters
    ----------
    fit : Fit
        The fitted model (any random-effects system: blocked, tree).
    nsim : int
        Replicates.
    seed : int or numpy.random.SeedSequence, optional
        Replicate r uses the r-th child of ``SeedSequence(seed)``: the same replicates in one process, in
        local processes or on a cluster.
    stat : callable, optional
        ``stat(refit) -> sequence of floats`` (a picklable object for ``workers`` / ``client``); the default
        is the natural parameters (SDs, correlations, sigma, fixed effects).
    workers : int
        Local processes.
    client : dask.distributed.Client, optional
        A Dask client to spread the replicates on.
    chunk : int, optional
        Replicates per task.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per replicate; a failed refit is a row of NaN, counted in ``attrs["failed"]``.
    """
    if stat is None:
        names = list(natural_parameters(fit).index)
        stat = _natural_values
    else:
        names = None
    nsim = check_int("nsim", nsim, 1)
    workers = check_int("workers", workers, 1)
    if not fit.estimates_finite:
        raise FitError("a parametric bootstrap simulates from the fit's estimates, which are not all finite: "
                       + ("; ".join(fit.messages) or "see fit.messages"))
    children = np.random.SeedSequence(seed).spawn(nsim)
    chunk = chunk or max(1, min(25, nsim // (4 * max(workers, 1)) or 1))
    pieces = [children[i : i + chunk] for i in range(0, nsim, chunk)]
    chunks = map_tasks(_replicate_task, pieces, shared=(fit, stat), workers=workers, client=client,
                       desc="bootstrap", progress_bar=progress_bar)
    results: list = [r for c in chunks for r in c]
    width = next((len(r) for r in results if r is not None), 0)
    arr = np.array([r if r is not None else np.full(width, np.nan) for r in results], dtype=float)
    out = pd.DataFrame(arr, columns=names)
    out.attrs["failed"] = int(sum(r is None for r in results))
    return out


def _natural_values(fit):
    return natural_parameters(fit).to_numpy()


def confint_boot(fit, level: float = 0.95, nsim: int = 500, seed=None, parm=None, type: str = "perc",
                 **kw) -> pd.DataFrame:
    """Bootstrap intervals of the natural parameters.

    ``type="perc"``: percentiles (lme4's default); ``"bc"``: bias-corrected percentiles (Efron): with
    z0 = Phi^-1(share of replicates below the estimate) the limits are the Phi(2 z0 +- z_{1-a/2})
    quantiles, which undoes the median bias of, e.g., an ML standard deviation.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    level : float
        Confidence level.
    nsim : int
        Replicates.
    seed : int, optional
        Seed (per replicate, see ``bootstrap``).
    parm : str or list of str, optional
        Parameters to keep.
    type : {"perc", "bc"}
        Percentile or bias-corrected percentile.
    **kw
        ``workers``, ``client``, ``progress_bar`` for ``bootstrap``.

    Returns
    -------
    pandas.DataFrame
        Columns ``lower`` and ``upper``, one row per parameter; the replicates in ``attrs["replicates"]``.
    """
    if type not in ("perc", "bc"):
        raise InputError(f"type must be 'perc' or 'bc', got {type!r}")
    reps = bootstrap(fit, nsim, seed, **kw)
    a = (1 - level) / 2
    cols = list(reps.columns) if parm is None else [parm] if isinstance(parm, str) else list(parm)
    lo, hi = {}, {}
    est = natural_parameters(fit)
    for c in cols:
        r = reps[c].dropna().to_numpy()
        qa, qb = a, 1 - a
        if type == "bc":
            share = np.mean(r < est[c]) + 0.5 * np.mean(r == est[c])
            z0 = stats.norm.ppf(np.clip(share, 1 / (len(r) + 1), 1 - 1 / (len(r) + 1)))
            qa, qb = stats.norm.cdf(2 * z0 + stats.norm.ppf(a)), stats.norm.cdf(2 * z0 + stats.norm.ppf(1 - a))
        lo[c], hi[c] = np.quantile(r, qa), np.quantile(r, qb)
    tab = pd.DataFrame({"lower": pd.Series(lo), "upper": pd.Series(hi)})
    tab.attrs["replicates"] = reps
    tab.attrs["failed"] = reps.attrs["failed"]
    return tab


class _LrStat:
    """LR of the bigger model refitted to a null replicate (a class, so that it pickles to workers)."""

    def __init__(self, m1):
        self.m1 = m1

    def __call__(self, f0):
        return [2 * (self.m1.refit(f0.spec.y).loglik - f0.loglik)]


def bootstrap_lrt(m0, m1, nsim: int = 200, seed=None, **kw) -> TestResult:
    """Parametric-bootstrap likelihood-ratio test of nested fits (as pbkrtest's PBmodcomp).

    Simulate from the null fit m0, refit both models, p = (1 + #{LR* >= LR}) / (1 + nsim).  Works for
    every kind of fit (blocked, phylogenetic tree path).

    Parameters
    ----------
    m0, m1 : Fit
        Nested fits to the same data (either order).
    nsim : int
        Replicates.
    seed : int, optional
        Seed (per replicate).
    **kw
        ``workers``, ``client``, ``progress_bar`` for ``bootstrap``.

    Returns
    -------
    TestResult
        ``LR``, ``df``, ``p_chisq``, ``p_bootstrap``, ``nsim`` (usable replicates), ``failed``,
        ``LR_null_mean``.
    """
    check_fits((m0, m1), "bootstrap_lrt", at_least=2)
    if m0.n_params >= m1.n_params:
        m0, m1 = m1, m0
    lr = max(0.0, 2 * (m1.loglik - m0.loglik))

    reps = bootstrap(m0, nsim, seed, stat=_LrStat(m1), **kw)
    lrs = np.maximum(reps.iloc[:, 0].dropna().to_numpy(), 0.0)
    df = m1.n_params - m0.n_params
    return TestResult("Parametric-bootstrap likelihood-ratio test",
                      {"LR": lr, "df": df, "p_chisq": float(stats.chi2.sf(lr, df)),
                       "p_bootstrap": float((1 + np.sum(lrs >= lr - 1e-9)) / (1 + len(lrs))), "nsim": len(lrs),
                       "failed": int(reps.attrs["failed"]),
                       "LR_null_mean": float(np.mean(lrs)) if len(lrs) else float("nan")})
