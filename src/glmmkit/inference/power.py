"""Power by simulation (simr's ``powerSim`` and ``powerCurve``).

From a fitted model (its variance parameters, and its fixed effects with the tested one set to ``value``),
responses are simulated with fresh random effects, the model is refitted to each, and the effect is tested
at ``alpha``: the power is the share of rejections, with its Monte Carlo standard error sqrt(p (1 - p) / nsim)
and a Wilson interval.  ``along="n_groups"`` enlarges (or shrinks) the design to each of ``values`` levels of a
grouping factor by repeating its levels' rows under new labels, as simr's ``extend``.

The test of a single coefficient is its Wald t test (Satterthwaite's df for an LMM) or z test (a GLMM); the
test of a factor's term is its type III anova row.  Replicates are seeded from one ``SeedSequence`` (the
same answer for any number of workers) and run in parallel like the bootstrap's.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..checks import check_int
from ..errors import FitError, GlmmkitError, InputError
from ..parallel import map_tasks
from ..protocol import Result


def extend_groups(data: pd.DataFrame, group: str, n: int) -> pd.DataFrame:
    """The data with ``n`` levels of ``group``: the first n levels, or all of them repeated under new labels.

    Parameters
    ----------
    data : pandas.DataFrame
        The fitted data.
    group : str
        A column of data (the grouping factor).
    n : int
        The number of levels wanted.

    Returns
    -------
    pandas.DataFrame
        The rows of the levels used, the repeated ones relabelled ``<level>.<copy>``.
    """
    labels = data[group].astype(str)
    levels = list(dict.fromkeys(labels))
    n0 = len(levels)
    # whole copies of every level, then the remainder evenly spread over the levels' order (a design whose
    # treatment is assigned by level keeps its balance; the first few levels could all be one arm)
    picks = [j % n0 for j in range(n0 * (n // n0))]
    picks += list(np.round(np.linspace(0, n0 - 1, n % n0)).astype(int)) if n % n0 > 1 else ([0] if n % n0 else [])
    parts = []
    for j, i in enumerate(picks):
        rows = data.loc[labels == levels[i]].copy()
        rows[group] = levels[i] if j < n0 else f"{levels[i]}.{j // n0}"
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def _truth(fit_ext, fit, beta: np.ndarray):
    """The extended design's fit carrying the original fit's parameters, with beta replaced."""
    t = copy.copy(fit_ext)
    t._beta = np.asarray(beta, dtype=float)
    t.theta = fit.theta
    if fit.is_lmm:
        t.sigma = fit.sigma
        t._b_scale = fit.sigma
    elif len(fit._psi):
        t.family = fit_ext.family.with_params(fit._psi)
    return t


def _test_p(f, effect, cols, ddf) -> float:
    if len(cols) == 1 and effect in f.fixef.index:
        tab = f.fixef_table(ddf=ddf) if f.is_lmm else f.coef_table
        return float(tab.loc[effect, "p"])
    from .wald import f_test

    L = np.eye(f.spec.p)[cols]
    return float(f_test(f, L, 0.0, ddf)["p"])


def _replicates(shared, seeds) -> list:
    fit_ext, truth, effect, cols, ddf = shared
    out = []
    for ss in seeds:
        y = truth.simulate(1, seed=np.random.default_rng(ss)).to_numpy()[:, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                f = fit_ext.refit(y, calc_derivs=not fit_ext.is_lmm)
                p = _test_p(f, effect, cols, ddf) if np.all(np.isfinite(f._beta)) else np.nan
            except (FitError, GlmmkitError, np.linalg.LinAlgError, FloatingPointError, ValueError):
                p = np.nan
        out.append(p)
    return out


class Power(Result):
    """Power by simulation, at one design or along a series of designs.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per design: the ``along`` value (``n_groups``), ``power``, ``mc_se``, ``lower``, ``upper`` (a
        Wilson interval), ``nsim`` (replicates tested) and ``failed`` (refits without a test, left out).
    p_values : dict
        Design value to its replicates' p-values.
    """

    def __init__(self, table: pd.DataFrame, p_values: dict, effect: str, value, alpha: float, along: str | None):
        self.table, self.p_values, self.effect, self.value, self.alpha, self.along = (table, p_values, effect, value,
                                                                                    alpha, along)

    def summary(self) -> str:
        """The power table.

        Returns
        -------
        str
            Several lines.
        """
        head = (f"Power by simulation for {self.effect} = {self.value} at alpha {self.alpha:g}"
                + (f" along {self.along}" if self.along else ""))
        return "\n".join([head, self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}")])

    def _as_dict(self) -> dict:
        return {"effect": self.effect, "value": self.value, "alpha": self.alpha, "along": self.along,
                "table": self.table.to_dict(orient="records")}

    def plot(self, ax=None, path=None, target: float = 0.8):
        """The power curve with Wilson intervals and the target power.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Draw here.
        path : str or path-like, optional
            Save the figure here.
        target : float
            A horizontal line at this power.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from ..plots.figure import finish, plt_module

        plt = plt_module()
        if ax is None:
            fig, ax = plt.subplots(figsize=(5.6, 4.0))
        else:
            fig = ax.figure
        t = self.table
        x = t[self.along].to_numpy() if self.along else np.zeros(len(t))
        ax.errorbar(x, t["power"], yerr=[t["power"] - t["lower"], t["upper"] - t["power"]], fmt="o-", capsize=3)
        ax.axhline(target, color="tab:red", lw=0.8, ls="--")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(self.along or "design")
        ax.set_ylabel(f"power (alpha = {self.alpha:g})")
        ax.set_title(f"Power for {self.effect} = {self.value:g}" if np.ndim(self.value) == 0 else
                     f"Power for {self.effect}", fontsize=9)
        return finish(fig, path, dpi=110)


def _wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def power(fit, effect: str, value=None, *, nsim: int = 200, alpha: float = 0.05, along: str | None = None,
          values=None, group: str | None = None, ddf: str | None = None, seed=None, workers: int = 1,
          client=None, progress_bar: bool = False) -> Power:
    """Power to detect a fixed effect, by simulating from a fitted model and refitting (simr).

    Parameters
    ----------
    fit : Fit
        The model to simulate from (a pilot fit, or one made with the assumed parameters).
    effect : str
        A fixed-effect coefficient (``"x"``, ``"treatment[T.b]"``) or a term of factor columns (``"treatment"``).
    value : float or array, optional
        The effect size assumed (the coefficient, or one value per column of the term); default the fitted one.
    nsim : int
        Replicates per design.
    alpha : float
        The test's level.
    along : {None, "n_groups"}
        Vary the number of levels of ``group`` over ``values``.
    values : list of int, optional
        The numbers of levels (with ``along``).
    group : str, optional
        The grouping factor to extend (default: the first random-effects term's).
    ddf : str, optional
        The LMM test's df (Satterthwaite by default).
    seed : int, optional
        The seed of all replicates.
    workers : int
        Local processes.
    client : dask.distributed.Client, optional
        Run on a Dask cluster.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    Power
        ``.table`` (power, ``mc_se``, interval per design), ``.plot()``, ``summary()``.
    """
    nsim = check_int("nsim", nsim, 2)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InputError(f"alpha must be a number between 0 and 1, got {alpha!r}")
    if getattr(fit, "_call", None) is None:
        raise InputError("power simulates from a model made by gk.glmer or gk.lmer")
    from .hypotheses import fixed_terms

    names = list(fit.fixef.index)
    if effect in names:
        cols = [names.index(effect)]
    else:
        terms = {t.name: t.columns for t in fixed_terms(fit.spec)[0]}
        if effect not in terms:
            raise InputError(f"effect {effect!r} is neither a fixed-effect coefficient {names} nor a term "
                             f"{list(terms)}")
        cols = list(terms[effect])
    beta = fit.fixef.to_numpy().copy()
    if value is not None:
        v = np.atleast_1d(np.asarray(value, dtype=float))
        if v.shape != (len(cols),) or not np.all(np.isfinite(v)):
            raise InputError(f"value must give {len(cols)} finite number(s) for {effect!r}, got {value!r}")
        beta[cols] = v
    shown_value = float(beta[cols[0]]) if len(cols) == 1 else beta[cols].tolist()
    if along not in (None, "n_groups"):
        raise InputError(f"along must be None or 'n_groups', got {along!r}")
    data = fit._call["data"]
    if along:
        group = group or fit.spec.terms[0].group
        if group not in data.columns:
            raise InputError(f"the grouping factor {group!r} is not a column of the data (name one with group=)")
        if values is None or not len(values):
            raise InputError("along='n_groups' needs values=[numbers of levels]")
        designs = [check_int("values", v, 2) for v in values]
    else:
        designs = [None]
    root = np.random.SeedSequence(seed)
    rows, pvals = [], {}
    for d, ss in zip(designs, root.spawn(len(designs))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_ext = fit if d is None else fit.update(data=extend_groups(data.loc[fit.spec.data.index], group, d))
        if list(fit_ext.fixef.index) != names:
            raise InputError(f"with {d} levels of {group!r} the fixed effects {names} are not all estimable; "
                             "use more levels")
        truth = _truth(fit_ext, fit, beta)
        seeds = ss.spawn(nsim)
        chunks = [seeds[i : i + 10] for i in range(0, nsim, 10)]
        out = map_tasks(_replicates, chunks, shared=(fit_ext, truth, effect, cols, ddf), workers=workers,
                        client=client, desc="power", progress_bar=progress_bar)
        p = np.concatenate([np.asarray(o, dtype=float) for o in out])
        ok = np.isfinite(p)
        k, n = int(np.sum(p[ok] < alpha)), int(np.sum(ok))
        pw = k / n if n else np.nan
        lo, hi = _wilson(k, n)
        row = {} if d is None else {"n_groups": d}
        row.update({"power": pw, "mc_se": float(np.sqrt(pw * (1 - pw) / n)) if n else np.nan, "lower": lo,
                    "upper": hi, "nsim": n, "failed": int(np.sum(~ok))})
        rows.append(row)
        pvals[d] = p
    return Power(pd.DataFrame(rows), pvals, effect, shown_value, alpha, along)
