"""Simulation-based quantile residuals, in the way of R's DHARMa.

Simulate ``nsim`` responses from the fitted model (new random effects each time, as DHARMa does
with lme4 by default, or conditional on the fitted ones), and scale each observation by where it falls among its own simulations:

    r_i = F_i(y_i-) + U (F_i(y_i) - F_i(y_i-)),   U ~ Uniform(0, 1)

with F_i the empirical distribution of the simulations of observation i (the randomisation makes
integer responses continuous). Under a correct model the r_i are uniform on [0, 1].

Tests (each returns a statistic and a p-value):
* uniformity: Kolmogorov-Smirnov against U(0, 1);
* dispersion: the variance of the observed responses around the simulation means against the same
  for the simulations (ratio > 1: overdispersion), two-sided from the simulated distribution;
* zero inflation: the observed number of zeros against the simulated numbers, two-sided;
* outliers: observations outside the range of all their simulations, against the binomial
  expectation 2 / (nsim + 1) per observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..checks import check_int
from ..protocol import Result


def _two_sided(sim_stats: np.ndarray, obs: float) -> float:
    n = len(sim_stats)
    lo = (np.sum(sim_stats <= obs) + 1) / (n + 1)
    hi = (np.sum(sim_stats >= obs) + 1) / (n + 1)
    return float(min(1.0, 2 * min(lo, hi)))


@dataclass
class SimulatedResiduals(Result):
    """DHARMa-style scaled residuals and their tests (``summary()``, ``to_dict()``, ``tests()``)."""

    observed: np.ndarray  # (n,)
    simulated: np.ndarray  # (n, nsim)
    scaled: np.ndarray  # (n,) in [0, 1]
    fitted: np.ndarray  # (n,) the fit's mean prediction

    @property
    def nsim(self) -> int:
        """The number of simulations."""
        return self.simulated.shape[1]

    def summary(self) -> str:
        """The four tests as text.

        Returns
        -------
        str
            One line per test with its statistic and p-value.
        """
        t = self.tests()
        lines = [f"Simulated (DHARMa-style) residuals: {len(self.observed)} observations, {self.nsim} simulations"]
        lines += [f"  {name:<16} statistic {r['statistic']:.4g}   p = {r['p']:.4g}" for name, r in t.iterrows()]
        return "\n".join(lines)

    def _as_dict(self) -> dict:
        return {"nobs": len(self.observed), "nsim": self.nsim,
                "tests": {name: {"statistic": r["statistic"], "p": r["p"]} for name, r in self.tests().iterrows()}}

    def test_uniformity(self) -> dict:
        """Kolmogorov-Smirnov test of the scaled residuals against U(0, 1).

        Returns
        -------
        dict
            ``test``, ``statistic`` (KS D), ``p``.
        """
        res = stats.kstest(self.scaled, "uniform")
        return {"test": "uniformity (KS)", "statistic": float(res.statistic), "p": float(res.pvalue)}

    def test_dispersion(self) -> dict:
        """Observed against simulated variance about the simulated means (two-sided, simulation p-value).

        Returns
        -------
        dict
            ``test``, ``statistic`` (observed / expected), ``p``.
        """
        m = self.simulated.mean(axis=1)
        obs = float(np.sum((self.observed - m) ** 2))
        sims = np.sum((self.simulated - m[:, None]) ** 2, axis=0)
        return {"test": "dispersion", "statistic": obs / float(np.mean(sims)), "p": _two_sided(sims, obs)}

    def test_zero_inflation(self) -> dict:
        """Observed against simulated number of zeros (two-sided, simulation p-value).

        Returns
        -------
        dict
            ``test``, ``statistic`` (observed / expected zeros), ``p``.
        """
        obs = float(np.sum(self.observed == 0))
        sims = np.sum(self.simulated == 0, axis=0).astype(float)
        ratio = obs / np.mean(sims) if np.mean(sims) > 0 else np.inf
        return {"test": "zero inflation", "statistic": float(ratio), "p": _two_sided(sims, obs)}

    def test_outliers(self) -> dict:
        """Observations outside every simulated value, against their expectation 2 / (nsim + 1) (binomial test).

        Returns
        -------
        dict
            ``test``, ``statistic`` (observed / expected outliers), ``p``.
        """
        out = (self.observed < self.simulated.min(axis=1)) | (self.observed > self.simulated.max(axis=1))
        k, n = int(out.sum()), len(self.observed)
        p_exp = 2 / (self.nsim + 1)
        res = stats.binomtest(k, n, p_exp)
        return {"test": "outliers", "statistic": k / (n * p_exp), "p": float(res.pvalue)}

    def tests(self) -> pd.DataFrame:
        """All four tests as a table (statistic: KS D, or observed / expected).

        Returns
        -------
        pandas.DataFrame
            Indexed by test: ``statistic``, ``p``.
        """
        rows = [self.test_uniformity(), self.test_dispersion(), self.test_zero_inflation(), self.test_outliers()]
        return pd.DataFrame(rows).set_index("test")

    def table(self) -> pd.DataFrame:
        """One row per observation: observed, fitted, scaled residual.

        Returns
        -------
        pandas.DataFrame
            ``observed``, ``fitted``, ``scaled_residual``.
        """
        return pd.DataFrame({"observed": self.observed, "fitted": self.fitted, "scaled_residual": self.scaled})

    def plot(self, path=None, title: str = ""):
        """QQ plot against U(0, 1) and scaled residuals against the (rank of the) prediction.

        Parameters
        ----------
        path : str or path-like, optional
            Save the figure there (atomically).
        title : str
            The figure's title.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from ..plots.residuals import plot_simulated_residuals

        return plot_simulated_residuals(self, path=path, title=title)


def simulate_residuals(fit, nsim: int = 250, seed=None, conditional: bool = False) -> SimulatedResiduals:
    """DHARMa-style scaled residuals of a fit (see the module docstring).

    Parameters
    ----------
    fit : Fit
        The fitted model.
    nsim : int
        Simulations.
    seed : int, optional
        Seed.
    conditional : bool
        False draws new random effects for each simulation (DHARMa's default for lme4); True keeps the
        fitted conditional modes, which makes the dispersion test more powerful when the random effects
        are large (DHARMa's advice for GLMMs).

    Returns
    -------
    SimulatedResiduals
        The scaled residuals, with ``tests()``, ``plot()``, ``summary()`` and ``to_dict()``.
    """
    nsim = check_int("nsim", nsim, 1)
    rng = np.random.default_rng(seed)
    sims = fit.simulate(nsim, seed=rng, re_form=None if conditional else "~0").to_numpy()
    y = np.asarray(fit.spec.y, dtype=float)
    if not fit.is_lmm and fit.family.trials_response:  # compare counts of successes
        sims = sims * fit.spec.wt[:, None]
        y = y * fit.spec.wt
    lower = np.mean(sims < y[:, None], axis=1)
    upper = np.mean(sims <= y[:, None], axis=1)
    scaled = lower + rng.uniform(size=len(y)) * (upper - lower)
    fitted = fit.fitted * (fit.spec.wt if (not fit.is_lmm and fit.family.trials_response) else 1.0)
    return SimulatedResiduals(observed=y, simulated=sims, scaled=scaled, fitted=np.asarray(fitted))
