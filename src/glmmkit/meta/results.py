"""The result of a meta-analysis: pooled effect, heterogeneity, per-study rows, summary and figures."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..checks import check_level
from ..protocol import Result
from .measures import LOG, NATURAL



def wald_table(b: np.ndarray, vb: np.ndarray, names, level: float) -> pd.DataFrame:
    """Estimates, standard errors, z, p and Wald intervals at ``level``.

    Parameters
    ----------
    b : numpy.ndarray
        Estimates.
    vb : numpy.ndarray
        Their covariance matrix.
    names : list of str
        Coefficient names.
    level : float
        Confidence level in (0, 1).

    Returns
    -------
    pandas.DataFrame
        Columns ``estimate``, ``std_error``, ``z``, ``p``, ``lower``, ``upper``; one row per coefficient.
    """
    level = check_level(level)
    se = np.sqrt(np.maximum(np.diag(vb), 0))
    z = b / se
    crit = stats.norm.ppf(0.5 + level / 2)
    return pd.DataFrame({"estimate": b, "std_error": se, "z": z, "p": 2 * stats.norm.sf(np.abs(z)),
                         "lower": b - crit * se, "upper": b + crit * se}, index=pd.Index(list(names), name="term"))


@dataclass
class MetaFit(Result):
    """One pooled analysis. ``coef`` is on the log scale (``natural()`` back-transforms it)."""

    method: str  # e.g. "GLMM UM.FS (ML)", "inverse variance REML", "Mantel-Haenszel"
    measure: str
    k: int
    coef: pd.DataFrame
    vcov: np.ndarray
    tau2: float = 0.0
    tau2_ci: tuple[float, float] | None = None
    se_tau2: float | None = None
    I2: float | None = None
    H2: float | None = None
    heterogeneity: pd.DataFrame | None = None  # test, statistic, df, p
    moderators: pd.DataFrame | None = None  # omnibus test of the moderators (QM)
    loglik: float | None = None
    n_params: int | None = None
    studies: pd.DataFrame | None = None  # yi vi lower upper weight ...
    level: float = 0.95
    dropped: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    fit: object = None  # the underlying glmmkit Fit where there is one
    sigma2: float | None = None  # variance of the random study intercepts (UM.RS)
    converged: bool = True
    time_s: float = 0.0

    # -- the pooled effect ---------------------------------------------------------------
    @property
    def estimate(self) -> float:
        """The pooled effect on the log (logit) scale."""
        return float(self.coef["estimate"].iloc[0])

    @property
    def se(self) -> float:
        """Its standard error."""
        return float(self.coef["std_error"].iloc[0])

    @property
    def aic(self) -> float | None:
        """Akaike's criterion (None without a likelihood)."""
        return None if self.loglik is None else -2 * self.loglik + 2 * self.n_params

    def natural(self) -> pd.DataFrame:
        """Estimates and intervals back on the natural scale (exp; the inverse logit for PLO's intercept).

        Returns
        -------
        pandas.DataFrame
            ``estimate``, ``lower``, ``upper``.
        """
        out = self.coef[["estimate", "lower", "upper"]].copy()
        f = (lambda x: 1 / (1 + np.exp(-x))) if self.measure == "PLO" else np.exp
        return out.apply(f)

    def prediction_interval(self, level: float | None = None) -> tuple[float, float]:
        """Where the effect of a new study is expected: b +- z sqrt(se^2 + tau^2) (as metafor's ``predict``).

        Parameters
        ----------
        level : float, optional
            The level (default: the fit's).

        Returns
        -------
        tuple
            (lower, upper) on the log scale.
        """
        crit = stats.norm.ppf(0.5 + (level or self.level) / 2)
        s = np.sqrt(self.se ** 2 + self.tau2)
        return self.estimate - crit * s, self.estimate + crit * s

    def to_row(self) -> dict:
        """One line for a comparison table.

        Returns
        -------
        dict
            ``method``, ``k``, ``estimate``, ``std_error``, ``lower``, ``upper``, ``p``, ``tau2``, ``I2`` and the
            prediction interval.
        """
        lo, hi = self.prediction_interval()
        return {"method": self.method, "k": self.k, "estimate": self.estimate, "std_error": self.se,
                "lower": self.coef["lower"].iloc[0], "upper": self.coef["upper"].iloc[0],
                "p": self.coef["p"].iloc[0], "tau2": self.tau2, "I2": self.I2,
                "pi_lower": lo if self.tau2 > 0 else np.nan, "pi_upper": hi if self.tau2 > 0 else np.nan}

    # -- report ---------------------------------------------------------------------------
    def _as_dict(self) -> dict:
        def records(df, key):
            return None if df is None else df.reset_index(names=key).to_dict(orient="records")

        return {"method": self.method, "measure": self.measure, "k": self.k, "level": self.level,
                "coef": records(self.coef, "term"), "tau2": self.tau2,
                "tau2_ci": list(self.tau2_ci) if self.tau2_ci is not None else None, "se_tau2": self.se_tau2,
                "I2": self.I2, "H2": self.H2, "sigma2": self.sigma2,
                "heterogeneity": records(self.heterogeneity, "test"), "moderators": records(self.moderators, "test"),
                "loglik": self.loglik, "aic": self.aic, "n_params": self.n_params,
                "studies": records(self.studies, "study"), "dropped": [str(d) for d in self.dropped],
                "converged": self.converged, "messages": list(self.messages), "time_s": self.time_s}

    def summary(self) -> str:
        """The pooled analysis as text (metafor's print).

        Returns
        -------
        str
            Method, heterogeneity, tests, the model table and the pooled effect on the natural scale.
        """
        pct = int(round(self.level * 100))
        lines = [f"Meta-analysis: {self.method}; measure {self.measure} ({LOG[self.measure]}), k = {self.k} studies"]
        if self.dropped:
            lines.append(f"left out ({len(self.dropped)}): {', '.join(map(str, self.dropped[:10]))}"
                         + (" ..." if len(self.dropped) > 10 else ""))
        if self.loglik is not None:
            lines.append(f"logLik {self.loglik:.4f}   AIC {self.aic:.4f}")
        if self.tau2 is not None and "common" not in self.method and self.method not in ("Mantel-Haenszel", "Peto"):
            t = f"tau^2 = {self.tau2:.4f}"
            if self.tau2_ci is not None:
                t += f" ({pct}% profile CI {self.tau2_ci[0]:.4f} to {self.tau2_ci[1]:.4f})"
            elif self.se_tau2 is not None:
                t += f" (SE {self.se_tau2:.4f})"
            t += f", tau = {np.sqrt(self.tau2):.4f}"
            lines.append(t)
            if self.sigma2 is not None:
                lines.append(f"sigma^2 (random study intercepts) = {self.sigma2:.4f}")
            if self.I2 is not None:
                lines.append(f"I^2 = {self.I2:.2f}%   H^2 = {self.H2:.2f}")
        if self.heterogeneity is not None and len(self.heterogeneity):
            lines.append("")
            lines.append("Tests for heterogeneity:")
            for name, r in self.heterogeneity.iterrows():
                lines.append(f"  {name}: {r['statistic']:.4f} on {int(r['df'])} df, p = {r['p']:.4g}")
        if self.moderators is not None:
            r = self.moderators.iloc[0]
            lines.append(f"Test of moderators: QM = {r['statistic']:.4f} on {int(r['df'])} df, p = {r['p']:.4g}")
        lines.append("")
        lines.append(f"Model results ({LOG[self.measure]}):")
        lines.append(self.coef.to_string(float_format=lambda v: f"{v:.4g}"))
        if len(self.coef) == 1:
            nat = self.natural().iloc[0]
            lines.append("")
            lines.append(f"Pooled {NATURAL[self.measure]}: {nat['estimate']:.4f} ({pct}% CI {nat['lower']:.4f} to "
                         f"{nat['upper']:.4f})")
            if self.tau2 > 0:
                lo, hi = self.prediction_interval()
                f = (lambda x: 1 / (1 + np.exp(-x))) if self.measure == "PLO" else np.exp
                lines.append(f"{pct}% prediction interval: {f(lo):.4f} to {f(hi):.4f} "
                             f"({'logit' if self.measure == 'PLO' else 'log'} scale {lo:.4f} to {hi:.4f})")
        lines.extend(f"note: {m}" for m in self.messages)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<glmmkit MetaFit {self.method}: {self.measure}, k={self.k}, estimate {self.estimate:.4g}>"

    # -- figures --------------------------------------------------------------------------
    def forest(self, path=None, title: str = ""):
        """Forest plot: per-study estimates and CIs, the pooled diamond, the prediction interval.

        Parameters
        ----------
        path : str or path-like, optional
            Save there (atomically).
        title : str
            The figure's title.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from ..plots.meta import forest_plot

        return forest_plot(self, path=path, title=title)

    def funnel(self, path=None, title: str = ""):
        """Funnel plot: per-study estimates against their standard errors, with pseudo-confidence limits.

        Parameters
        ----------
        path : str or path-like, optional
            Save there (atomically).
        title : str
            The figure's title.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from ..plots.meta import funnel_plot

        return funnel_plot(self, path=path, title=title)
