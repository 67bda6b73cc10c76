"""Comparing count models for overdispersion: a table of fits and a one-call report.

``compare(*fits)``: logLik, df, AIC, BIC, Pearson dispersion ratio and delta AIC per fit.
``overdispersion_report(formula, data)``: fits the Poisson GLMM, the Poisson GLMM with an
observation-level random effect, the NB2 and the NB1 GLMMs, tests the Poisson fit's dispersion
(Pearson, its parametric bootstrap, and simulation-based) and says which model describes the data, with the evidence.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .dispersion import dispersion_test, pearson_dispersion
from .simres import simulate_residuals
from ..checks import check_fits, check_int
from ..protocol import Result
from ..errors import InputError


def _name(fit) -> str:
    fam = "gaussian" if fit.is_lmm else fit.family.name
    olre = " + OLRE" if any(t.q == fit.nobs for t in fit.spec.terms) else ""
    return f"{fam}{olre}"


def compare(*fits, names: list[str] | None = None) -> pd.DataFrame:
    """One row per fit: logLik, df, AIC, BIC, Pearson dispersion ratio, delta AIC to the best.

    Parameters
    ----------
    *fits : Fit
        Fits to the same data.
    names : list of str, optional
        Row names (default: the families).

    Returns
    -------
    pandas.DataFrame
        The comparison, sorted as given.
    """
    check_fits(fits, "compare")
    rows = []
    for i, f in enumerate(fits):
        d = pearson_dispersion(f)
        rows.append({"model": names[i] if names else _name(f), "logLik": f.loglik, "df": f.n_params,
                     "AIC": f.aic, "BIC": f.bic, "dispersion_ratio": d["ratio"]})
    out = pd.DataFrame(rows).set_index("model")
    out["delta_AIC"] = out["AIC"] - out["AIC"].min()
    return out


@dataclass
class OverdispersionReport(Result):
    """Poisson, Poisson + OLRE, NB2 and NB1 compared, the dispersion tests and a verdict."""

    table: pd.DataFrame
    tests: pd.DataFrame
    verdict: str
    fits: dict = field(default_factory=dict)

    def summary(self) -> str:
        """The comparison, the tests and the verdict as text.

        Returns
        -------
        str
            The report.
        """
        with pd.option_context("display.width", 120, "display.float_format", lambda v: f"{v: .4g}"):
            return ("Models compared:\n" + self.table.to_string() + "\n\nDispersion of the Poisson GLMM:\n"
                    + self.tests.to_string() + "\n\n" + self.verdict)

    def _as_dict(self) -> dict:
        return {"models": self.table.reset_index(names="model").to_dict(orient="records"),
                "tests": self.tests.reset_index(names="test").to_dict(orient="records"),
                "verdict": self.verdict}


def overdispersion_report(formula: str, data: pd.DataFrame, *, offset=None, weights=None, nsim: int = 250,
                          nsim_bootstrap: int = 100, seed: int = 1, workers: int = 1,
                          client=None, zero_models: bool = False) -> OverdispersionReport:
    """Fit Poisson, Poisson + OLRE, NB2 and NB1 GLMMs of ``formula`` and say which describes the data.

    Parameters
    ----------
    formula : str
        The Poisson model's formula (counts on the left).
    data : pandas.DataFrame
        The data.
    offset, weights : optional
        As for ``glmer``.
    nsim : int
        Simulations for the DHARMa-style residual tests.
    nsim_bootstrap : int
        Refits of the bootstrap dispersion test (0: the chi-square test only).
    seed : int
        Seed.
    workers : int
        Local processes for the bootstrap refits.
    client : dask.distributed.Client, optional
        Spread the bootstrap refits on a Dask cluster.
    zero_models : bool
        Also fit the zero-inflated NB2 (``ziformula="~1"``) and the NB2 hurdle (``truncated_nbinom2`` with
        ``ziformula="~1"``), glmmTMB's answers to excess zeros (when the data have zeros).

    Returns
    -------
    OverdispersionReport
        ``table`` (the models by AIC), ``tests``, ``verdict`` and the ``fits``.
    """
    nsim = check_int("nsim", nsim, 1)
    nsim_bootstrap = check_int("nsim_bootstrap", nsim_bootstrap, 0)
    from ..api import add_olre, glmer

    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits["poisson"] = glmer(formula, data, "poisson", offset=offset, weights=weights)
        f_olre, d_olre = add_olre(formula, data)
        fits["poisson + OLRE"] = glmer(f_olre, d_olre, "poisson", offset=offset, weights=weights)
        fits["nbinom2"] = glmer(formula, data, "nbinom2", offset=offset, weights=weights, laplace="observed")
        fits["nbinom1"] = glmer(formula, data, "nbinom1", offset=offset, weights=weights)
        if zero_models and np.any(fits["poisson"].spec.y == 0):
            fits["zinbinom2"] = glmer(formula, data, "nbinom2", offset=offset, weights=weights, ziformula="~1")
            fits["hurdle nbinom2"] = glmer(formula, data, "truncated_nbinom2", offset=offset, weights=weights,
                                           ziformula="~1")
    table = compare(*fits.values(), names=list(fits))
    pois = fits["poisson"]
    pd_ = pearson_dispersion(pois)
    sim = simulate_residuals(pois, nsim=nsim, seed=seed, conditional=True)
    boot = (dispersion_test(pois, method="bootstrap", nsim=nsim_bootstrap, seed=seed, workers=workers, client=client)
            if nsim_bootstrap else None)
    tests = pd.DataFrame([
        {"test": "Pearson chi-square / df", "statistic": pd_["ratio"], "p": pd_["p"]},
        *([{"test": f"Pearson ratio, parametric bootstrap ({nsim_bootstrap} refits)", "statistic": boot["ratio"],
            "p": boot["p"]}] if boot else []),
        *[dict(r) for r in [sim.test_dispersion(), sim.test_zero_inflation(), sim.test_uniformity()]],
    ]).set_index("test")
    tests.index = [i if i.startswith("Pearson") else f"{i} (simulated, conditional)" for i in tests.index]
    p_main = boot["p"] if boot else pd_["p"]
    best = table["AIC"].idxmin()
    others = table.drop(index=best)
    gap = float(others["AIC"].min() - table.loc[best, "AIC"])
    over = p_main < 0.05
    which = "bootstrap" if boot else "chi-square"
    lines = []
    if over:
        lines.append(f"The Poisson GLMM is overdispersed: Pearson ratio {pd_['ratio']:.2f} ({which} p = {p_main:.2g}), "
                     f"simulated dispersion ratio {sim.test_dispersion()['statistic']:.2f}; "
                     "its standard errors are too small.")
    else:
        lines.append(f"No evidence of overdispersion in the Poisson GLMM (Pearson ratio {pd_['ratio']:.2f}, "
                     f"{which} p = {p_main:.2g}).")
    lines.append(f"By AIC the best description is {best}, {gap:.1f} AIC units ahead of the next "
                 f"({others['AIC'].idxmin()})" + (" (a gap under 2 is no real preference)." if gap < 2 else "."))
    return OverdispersionReport(table=table, tests=tests, verdict=" ".join(lines), fits=fits)
