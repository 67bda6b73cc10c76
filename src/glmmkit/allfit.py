"""Refit a model with every optimiser and tabulate what each reached (lme4's ``allFit``).

Agreement of the log-likelihoods and estimates across searches says the optimum is not an artefact of one
search; disagreement names the parameters that are poorly determined.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from .engine.control import OPTIMIZERS, as_control
from .errors import FitError, GlmmkitError, InputError
from .protocol import Result


class AllFit(Result):
    """The fits of one model by each optimiser.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per optimiser: ``loglik``, ``converged``, ``time_s``, ``fevals``, ``message``, then the fixed
        effects and the variance parameters (``theta...``).
    fits : dict
        Optimiser name to its Fit (None where the fit failed).
    """

    def __init__(self, table: pd.DataFrame, fits: dict):
        self.table, self.fits = table, fits

    @property
    def spread(self) -> pd.Series:
        """Per estimate, the range (max - min) over the optimisers that converged."""
        ok = self.table[self.table["converged"].astype(bool)]
        est = ok.drop(columns=["loglik", "converged", "time_s", "fevals", "message"])
        return (est.max() - est.min()).rename("spread")

    def summary(self) -> str:
        """The table and the largest spread of the estimates.

        Returns
        -------
        str
            Several lines.
        """
        t = self.table[["loglik", "converged", "time_s", "fevals"]]
        lines = ["Refits by optimiser (gk.all_fit)", t.to_string(float_format=lambda v: f"{v:.6g}")]
        ll = self.table.loc[self.table["converged"].astype(bool), "loglik"]
        if len(ll):
            lines.append(f"logLik range over converged fits: {ll.max() - ll.min():.3g}; largest estimate spread: "
                         f"{self.spread.max():.3g} ({self.spread.idxmax()})")
        return "\n".join(lines)

    def _as_dict(self) -> dict:
        return {"table": self.table.reset_index().to_dict(orient="records")}


def all_fit(fit, optimizers=None, verbose: bool = False) -> AllFit:
    """Refit with each optimiser (``Control.optimizer``) from the same data and starts.

    Parameters
    ----------
    fit : Fit
        A fit made by ``gk.glmer`` or ``gk.lmer``.
    optimizers : list of str, optional
        Which of "default", "lbfgs", "bobyqa", "nelder-mead" (all by default).
    verbose : bool
        Keep the refits' warnings (they are collected into ``message`` otherwise).

    Returns
    -------
    AllFit
        ``.table``, ``.fits``, ``.spread``, ``summary()``.
    """
    opts = list(OPTIMIZERS) if optimizers is None else list(optimizers)
    bad = [o for o in opts if o not in OPTIMIZERS]
    if bad:
        raise InputError(f"unknown optimizers {bad}; available: {list(OPTIMIZERS)}")
    if getattr(fit, "_call", None) is None:
        raise InputError("all_fit refits a model made by gk.glmer or gk.lmer")
    base = as_control(fit._call["kw"].get("control"))
    rows, fits = {}, {}
    for o in opts:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            if not verbose:
                warnings.simplefilter("always")
            try:
                f = fit.update(control=base.replace(optimizer=o))
            except (FitError, GlmmkitError, np.linalg.LinAlgError, FloatingPointError) as err:
                f, msg = None, f"{type(err).__name__}: {err}"
        dt = time.perf_counter() - t0
        if f is not None:
            msg = "; ".join(dict.fromkeys(str(w.message) for w in caught)) or "ok"
            row = {"loglik": f.loglik, "converged": bool(f.converged), "time_s": dt,
                   "fevals": int(f.optsummary.fevals), "message": msg}
            row.update({k: v for k, v in f.fixef.items()})
            row.update({f"theta{i + 1}": v for i, v in enumerate(f.theta)})
        else:
            row = {"loglik": np.nan, "converged": False, "time_s": dt, "fevals": 0, "message": msg}
        rows[o], fits[o] = row, f
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "optimizer"
    return AllFit(table, fits)
