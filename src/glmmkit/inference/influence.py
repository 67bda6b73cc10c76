"""Leave-one-group-out influence (lme4's ``influence.merMod``): each level of a grouping variable is deleted
in turn and the model refitted from the full fit's estimates; the change in each fixed effect and Cook's
distance summarise what that group does to the fit:

    dfbeta_i = beta_(-i) - beta,     D_i = dfbeta_i' V^-1 dfbeta_i (n - p) / (n p)

with V = vcov(beta) of the full fit and n the number of groups (lme4's scaling).  The refits run in parallel
like the bootstrap's (``workers`` local processes or a Dask ``client``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import FitError, GlmmkitError, InputError
from ..parallel import map_tasks
from ..protocol import Result


def _delete_one(shared, level):
    fit, key, start = shared
    data = fit._call["data"]
    keep = _group_key(data, key) != level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            f = fit.update(data=data.loc[keep], start=start)
        except (FitError, GlmmkitError, np.linalg.LinAlgError, FloatingPointError) as err:
            return None, f"{type(err).__name__}: {err}"
    if list(f.fixef.index) != list(fit.fixef.index):
        return None, "a fixed effect is not estimable without this group"
    return (f.fixef.to_numpy(), f.theta, bool(f.converged)), ""


def _group_key(data: pd.DataFrame, key: list[str]) -> pd.Series:
    if len(key) == 1:
        return data[key[0]].astype(str)
    return data[key].astype(str).agg(":".join, axis=1)


class Influence(Result):
    """Leave-one-group-out refits.

    Attributes
    ----------
    table : pandas.DataFrame
        Index the deleted group; ``cooks_distance``, ``converged``, then ``dfbeta:<coefficient>`` (the change in
        each fixed effect) and the refit's estimates ``<coefficient>``.
    """

    def __init__(self, fit, groups: list[str], table: pd.DataFrame, messages: list[str]):
        self.fit, self.groups, self.table, self.messages = fit, groups, table, messages

    @property
    def dfbeta(self) -> pd.DataFrame:
        """beta without each group minus beta (one column per fixed effect)."""
        cols = [c for c in self.table.columns if c.startswith("dfbeta:")]
        return self.table[cols].rename(columns=lambda c: c[len("dfbeta:"):])

    @property
    def cooks_distance(self) -> pd.Series:
        """Cook's distance of each group."""
        return self.table["cooks_distance"]

    def summary(self) -> str:
        """The most influential groups.

        Returns
        -------
        str
            Several lines.
        """
        top = self.table.sort_values("cooks_distance", ascending=False).head(10)
        lines = [f"Influence of each level of {':'.join(self.groups)} ({len(self.table)} refits)",
                 top[["cooks_distance", "converged"] + [c for c in top.columns if c.startswith("dfbeta:")]]
                 .to_string(float_format=lambda v: f"{v:.4g}")]
        return "\n".join(lines + self.messages)

    def _as_dict(self) -> dict:
        return {"groups": self.groups, "table": self.table.reset_index().to_dict(orient="records"),
                "messages": self.messages}

    def plot(self, which: str = "cooks", ax=None, path=None):
        """Cook's distance per group (``which="cooks"``) or the change in each fixed effect ("dfbeta").

        Parameters
        ----------
        which : {"cooks", "dfbeta"}
            What to draw.
        ax : matplotlib.axes.Axes, optional
            Draw here ("cooks" only; a new figure otherwise).
        path : str or path-like, optional
            Save the figure here.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from ..plots.inference import influence_plot

        return influence_plot(self, which=which, ax=ax, path=path)


def influence(fit, groups: str | list[str] | None = None, *, workers: int = 1, client=None,
              progress_bar: bool = False) -> Influence:
    """Refit without each level of a grouping variable (lme4's ``influence.merMod``).

    Parameters
    ----------
    fit : Fit
        A fit made by ``gk.glmer`` or ``gk.lmer``.
    groups : str or list of str, optional
        The data column(s) whose levels are deleted one at a time (default: the first grouping factor).
    workers : int
        Local processes for the refits.
    client : dask.distributed.Client, optional
        Run the refits on a Dask cluster.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    Influence
        ``.table``, ``.dfbeta``, ``.cooks_distance``, ``.plot()``.
    """
    if getattr(fit, "_call", None) is None:
        raise InputError("influence refits a model made by gk.glmer or gk.lmer")
    data = fit._call["data"]
    if not isinstance(data, pd.DataFrame):
        raise InputError("influence needs the fit's data as a DataFrame")
    key = [fit.spec.terms[0].group.split(":")[0]] if groups is None else (
        [groups] if isinstance(groups, str) else list(groups))
    missing = [g for g in key if g not in data.columns]
    if missing:
        raise InputError(f"groups names {missing}, which are not columns of the data; columns: {list(data.columns)}")
    levels = list(dict.fromkeys(_group_key(data.loc[fit.spec.data.index], key)))
    if len(levels) < 2:
        raise InputError(f"{':'.join(key)} has a single level: nothing to delete")
    start = {"theta": fit.theta}
    if not fit.is_lmm:
        start["beta"] = fit.fixef.to_numpy()
        if len(fit._psi):
            start["psi"] = fit._psi
    out = map_tasks(_delete_one, levels, shared=(fit, key, start), workers=workers, client=client,
                    desc="influence", progress_bar=progress_bar)
    names = list(fit.fixef.index)
    beta = fit.fixef.to_numpy()
    n, p = len(levels), len(beta)
    Vinv = np.linalg.inv(np.asarray(fit._vcov, dtype=float)) * (n - p) / (n * p)
    rows, messages = [], []
    for lev, (res, why) in zip(levels, out):
        row = {"group": lev}
        if res is None:
            messages.append(f"{lev}: no refit ({why})")
            row.update({"cooks_distance": np.nan, "converged": False})
            row.update({f"dfbeta:{c}": np.nan for c in names})
            row.update({c: np.nan for c in names})
        else:
            b, _, conv = res
            db = b - beta
            row.update({"cooks_distance": float(db @ Vinv @ db), "converged": conv})
            row.update({f"dfbeta:{c}": v for c, v in zip(names, db)})
            row.update(dict(zip(names, b)))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("group")
    return Influence(fit, key, table, messages)
