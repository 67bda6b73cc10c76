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
            except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                out.append(None)
    return out


def natural_parameters(fit) -> pd.Series:
    """SDs, correlations, sigma (LMM) and fixed effects on lme4's ``confint`` scale."""
    from .profile import ProfileProblem

    prob = ProfileProblem.__new__(ProfileProblem)
    ProfileProblem._names(prob, fit)
    return pd.Series(prob._z_from_fit()[: len(prob.names) - prob.m], index=prob.names[: len(prob.names) - prob.m])


def bootstrap(fit, nsim: int = 500, seed=None, *, stat=None, workers: int = 1, client=None, chunk: int | None = None,
              progress_bar: bool = True) -> pd.DataFrame:
    """Refit ``nsim`` simulated responses; one row per replicate of ``stat(fit)`` (default: the natural
    parameters). Failed refits are rows of NaN, counted in ``attrs["failed"]``."""
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
    """Bootstrap intervals: ``type="perc"`` percentiles (lme4's default) or ``"bc"`` bias-corrected
    percentiles (Efron): with z0 = Phi^-1(share of replicates below the estimate) the limits are the
    Phi(2 z0 +- z_{1-a/2}) quantiles, which undoes the median bias of, e.g., an ML standard deviation.
    ``bootstrap`` arguments (``workers``, ``client``, ``progress_bar``) pass through."""
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
    tab = pd.DataFrame({f"{100 * a:g} %": pd.Series(lo), f"{100 * (1 - a):g} %": pd.Series(hi)})
    tab.attrs["replicates"] = reps
    tab.attrs["failed"] = reps.attrs["failed"]
    return tab


class _LrStat:
    """LR of the bigger model refitted to a null replicate (a class, so that it pickles to workers)."""

    def __init__(self, m1):
        self.m1 = m1

    def __call__(self, f0):
        return [2 * (self.m1.refit(f0.spec.y).loglik - f0.loglik)]


def bootstrap_lrt(m0, m1, nsim: int = 200, seed=None, **kw) -> dict:
    """Parametric-bootstrap likelihood-ratio test of nested fits (as pbkrtest's PBmodcomp): simulate from
    the null fit m0, refit both models, p = (1 + #{LR* >= LR}) / (1 + nsim)."""
    check_fits((m0, m1), "bootstrap_lrt", at_least=2)
    if m0.n_params >= m1.n_params:
        m0, m1 = m1, m0
    lr = max(0.0, 2 * (m1.loglik - m0.loglik))

    reps = bootstrap(m0, nsim, seed, stat=_LrStat(m1), **kw)
    lrs = np.maximum(reps.iloc[:, 0].dropna().to_numpy(), 0.0)
    df = m1.n_params - m0.n_params
    return {"LR": lr, "df": df, "p_chisq": float(stats.chi2.sf(lr, df)),
            "p_bootstrap": float((1 + np.sum(lrs >= lr - 1e-9)) / (1 + len(lrs))), "nsim": len(lrs),
            "failed": reps.attrs["failed"]}
