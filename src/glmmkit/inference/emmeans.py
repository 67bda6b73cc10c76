"""Estimated marginal means and their contrasts (emmeans' core).

The reference grid holds every level of every factor of the fixed effects and each numeric covariate at its
mean (or at the values given in ``at``).  The marginal mean of a level of the named factor(s) is the equally
weighted average of the grid's linear predictors over the other factors:

    m = L beta,   L = mean over the grid rows of that level of X_grid,   var(m) = L V L'

with V = vcov(beta) (Kenward-Roger's adjusted V with ddf="kenward-roger").  The df are those of the fit's
tests (inference/wald.py): Kenward-Roger by default for an LMM fitted by REML with at most 3,000 rows (as
emmeans), Satterthwaite otherwise, infinite (z) for a GLMM.

``type="response"`` back-transforms by the inverse link: the mean is g^-1(m), its standard error
|d mu / d eta| SE(m) (the delta method), its interval g^-1 of the link-scale interval; tests stay on the link
scale.  Contrasts C m of the means are differences on the link scale; on the response scale, with a log link
they are rate ratios exp(C m) and with a logit link odds ratios, with SE exp(C m) SE(C m).

Multiplicity within each family of contrasts (each ``by`` group): Tukey (the studentized range, for pairwise
comparisons; otherwise Sidak, as emmeans), Holm (intervals by Bonferroni, as emmeans), Bonferroni, Sidak or
none.
"""

from __future__ import annotations

import functools
import itertools
import re

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError
from ..protocol import Result
from .wald import ddf_method, t_tests

#: a reference grid larger than this many rows is refused (name fewer factors, or fix some with ``at``)
MAX_GRID_ROWS = 200_000
ADJUSTMENTS = ("tukey", "holm", "bonferroni", "sidak", "none")
METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl", "consec")


def _model_variables(spec) -> tuple[list[str], set[str], dict[str, list]]:
    """The data columns the fixed effects read, which of them are categorical, and each categorical one's
    levels in the fit's order."""
    xs = spec.x_spec
    cols = [c for c in spec.data.columns if c != spec.response]
    exprs = {f.expr for t in xs.terms for f in t.factors if f.expr != "1"}
    cat_exprs = {k.expr: v.levels for k, v in xs.factor_contrasts.items()}
    used, categorical, levels = [], set(), {}
    for c in cols:
        pat = re.compile(r"(?<![\w.])" + re.escape(c) + r"(?![\w.])")
        hits = [e for e in exprs if e == c or pat.search(e)]
        if not hits:
            continue
        used.append(c)
        cat_hits = [e for e in hits if e in cat_exprs]
        if cat_hits or not pd.api.types.is_numeric_dtype(spec.data[c]):
            categorical.add(c)
            lv = cat_exprs.get(c)
            if lv is None:
                vals = spec.data[c]
                lv = list(vals.cat.categories) if isinstance(vals.dtype, pd.CategoricalDtype) else sorted(pd.unique(vals))
            levels[c] = list(lv)
    return used, categorical, levels


def _as_list(x, what: str) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    if isinstance(x, (list, tuple)) and all(isinstance(v, str) for v in x):
        return list(x)
    raise InputError(f"{what} must be a variable name or a list of names, got {x!r}")


def reference_grid(fit, at: dict | None = None) -> pd.DataFrame:
    """emmeans' reference grid: every level of each factor, numeric covariates at their means.

    Parameters
    ----------
    fit : Fit
        The fit.
    at : dict, optional
        ``{variable: values}`` in place of the defaults.

    Returns
    -------
    pandas.DataFrame
        One row per combination.
    """
    spec = fit.spec
    used, categorical, levels = _model_variables(spec)
    at = {} if at is None else dict(at)
    if not isinstance(at, dict):
        raise InputError(f"at must be a dict of {{variable: values}}, got {type(at).__name__}")
    unknown = [k for k in at if k not in used]
    if unknown:
        raise InputError(f"at names {unknown}, which the fixed effects do not use; they use {used}")
    values = {}
    for v in used:
        if v in at:
            vals = list(np.atleast_1d(at[v]))
            if v in categorical:
                bad = [x for x in vals if x not in levels[v]]
                if bad:
                    raise InputError(f"at[{v!r}] has levels {bad} that the fit never saw; levels: {levels[v]}")
            values[v] = vals
        elif v in categorical:
            values[v] = levels[v]
        else:
            values[v] = [float(np.mean(spec.data[v]))]
    size = int(np.prod([len(x) for x in values.values()])) if values else 1
    if size > MAX_GRID_ROWS:
        raise InputError(f"the reference grid would have {size} rows (limit {MAX_GRID_ROWS}): fix some factors "
                         "with at={...}")
    grid = pd.DataFrame(list(itertools.product(*values.values())), columns=list(values))
    for v in used:
        if v in categorical and isinstance(spec.data[v].dtype, pd.CategoricalDtype):
            grid[v] = pd.Categorical(grid[v], categories=spec.data[v].cat.categories)
        elif v in categorical:
            grid[v] = grid[v].astype(spec.data[v].dtype)
    return grid


def _default_ddf(fit) -> str:
    if not fit.is_lmm:
        return "none"
    return "kenward-roger" if fit.reml and fit.spec.n <= 3000 else "satterthwaite"


def _link_name(fit) -> str:
    return getattr(fit.family.link, "name", "identity") if not fit.is_lmm else "identity"


class MarginalMeans(Result):
    """Estimated marginal means (or contrasts of them) with their tests and intervals.

    Attributes
    ----------
    table : pandas.DataFrame
        The grouping columns, then ``estimate``, ``std_error``, ``df``, ``lower``, ``upper`` (contrasts add
        ``contrast``, ``t`` or ``z`` and ``p``).
    L : numpy.ndarray
        The linear functions of the fixed effects behind each row (link scale).
    """

    def __init__(self, fit, labels: pd.DataFrame, L: np.ndarray, *, specs, by, type: str, ddf: str, level: float,
                 kind: str = "means", adjust: str | None = None, method: str | None = None,
                 n_family: np.ndarray | None = None, notes: list[str] | None = None):
        self.fit, self.L, self.specs, self.by, self.type, self.ddf = fit, L, specs, by, type, ddf
        self.level, self.kind, self.adjust, self.method = level, kind, adjust, method
        self.notes = [n for n in (notes or []) if "not estimable" not in n]
        self.labels = labels.reset_index(drop=True)
        link = _link_name(fit)
        ok = np.all(np.isfinite(L), axis=1)
        est, se, df = (np.full(len(L), np.nan) for _ in range(3))
        if ok.any():
            base = t_tests(fit, L[ok], 0.0, ddf)
            est[ok], se[ok], df[ok] = base["estimate"].to_numpy(), base["std_error"].to_numpy(), self._df(base)
        if not ok.all():
            self.notes.append(f"{int(np.sum(~ok))} row(s) not estimable from these data (an empty cell or an "
                              "aliased column): NaN, as emmeans' nonEst")
        stat = est / se
        if kind == "means":
            crit = stats.t.ppf(0.5 + level / 2, df)
            p = None
        else:
            crit, p = _adjusted(stat, df, adjust, n_family, level, labels)
        lo, hi = est - crit * se, est + crit * se
        self.scale = "link" if type == "link" else "response"
        if type == "response" and link != "identity":
            inv = fit.family.link
            if kind == "means":
                est, se, lo, hi = inv.inverse(est), np.abs(inv.mu_eta(est)) * se, inv.inverse(lo), inv.inverse(hi)
            elif link in ("log", "logit"):
                est = np.exp(est)
                se, lo, hi = est * se, np.exp(lo), np.exp(hi)
                self.scale = "odds ratio" if link == "logit" else "ratio"
            else:
                self.scale = "link"
                self.notes.append(f"contrasts are on the {link} link's scale (only log and logit links give ratios)")
        out = self.labels.copy()
        out["estimate"], out["std_error"], out["df"] = est, se, df
        if kind != "means":
            out["t" if fit.is_lmm else "z"] = stat
            out["p"] = p
        out["lower"], out["upper"] = lo, hi
        self.table = out

    def _df(self, base: pd.DataFrame) -> np.ndarray:
        return base["df"].to_numpy() if "df" in base else np.full(len(base), np.inf)

    # ---- contrasts -------------------------------------------------------------------
    def contrast(self, method="pairwise", adjust: str | None = None, ref=0, level: float | None = None) -> "MarginalMeans":
        """Contrasts of the means within each ``by`` group (emmeans' ``contrast``).

        Parameters
        ----------
        method : {"pairwise", "revpairwise", "trt.vs.ctrl", "consec"}, array or dict
            The contrasts: every pair (first minus second), every pair reversed, each level against the
            reference level ``ref``, each level against the one before; or coefficients over the means of a
            group (an array with one column per mean, or ``{name: coefficients}``).
        adjust : {"tukey", "holm", "bonferroni", "sidak", "none"}, optional
            Multiplicity adjustment within each group; default Tukey for pairwise, Holm for trt.vs.ctrl,
            none for consec and custom contrasts... as emmeans, except trt.vs.ctrl (emmeans' default there is an
            approximate Dunnett; "holm" is exact and conservative).
        ref : int or level
            The reference level of trt.vs.ctrl (position or label).
        level : float, optional
            Confidence level (default: the means').

        Returns
        -------
        MarginalMeans
            The contrasts, with ``contrast``, ``estimate``, ``std_error``, ``df``, ``t``/``z``, ``p``,
            ``lower``, ``upper``; on the response scale ratios for log and logit links.
        """
        if self.kind != "means":
            raise InputError("contrast() takes marginal means; these are contrasts already")
        level = self.level if level is None else _check_level(level)
        default = {"pairwise": "tukey", "revpairwise": "tukey", "trt.vs.ctrl": "holm", "consec": "none"}
        name = method if isinstance(method, str) else "custom"
        if isinstance(method, str) and method not in METHODS:
            raise InputError(f"method must be one of {list(METHODS)}, an array of coefficients or a dict, got {method!r}")
        adjust = default.get(name, "none") if adjust is None else adjust
        if adjust not in ADJUSTMENTS:
            raise InputError(f"adjust must be one of {list(ADJUSTMENTS)}, got {adjust!r}")
        notes = []
        if adjust == "tukey" and name not in ("pairwise", "revpairwise"):
            adjust = "sidak"
            notes.append("adjust='tukey' is for one set of pairwise comparisons: Sidak used instead (as emmeans)")
        by_cols = list(self.by)
        groups = [self.labels.index.to_numpy()] if not by_cols else [
            idx.to_numpy() for _, idx in self.labels.groupby(by_cols, sort=False).groups.items()]
        rows, Ls, fam = [], [], []
        for idx in groups:
            names = [" ".join(str(self.labels.loc[i, s]) for s in self.specs) for i in idx]
            C, cnames = _contrast_coefficients(method, names, ref)
            sep = " / " if self._ratio_scale() else " - "
            cnames = [c.replace(" - ", sep) if isinstance(method, str) else c for c in cnames]
            Lg = self.L[idx]
            bad = ~np.all(np.isfinite(Lg), axis=1)
            Lc = C @ np.nan_to_num(Lg)
            Lc[(np.abs(C[:, bad]) > 0).any(axis=1)] = np.nan  # a contrast touching a non-estimable mean
            Ls.append(Lc)
            for c in cnames:
                row = {"contrast": c}
                row.update({b: self.labels.loc[idx[0], b] for b in by_cols})
                rows.append(row)
            fam += [len(C) if name not in ("pairwise", "revpairwise") else len(idx)] * len(C)
        labels = pd.DataFrame(rows)
        return MarginalMeans(self.fit, labels, np.vstack(Ls), specs=self.specs, by=self.by, type=self.type,
                             ddf=self.ddf, level=level, kind="contrasts", adjust=adjust, method=name,
                             n_family=np.array(fam), notes=self.notes + notes)

    def _ratio_scale(self) -> bool:
        return self.type == "response" and _link_name(self.fit) in ("log", "logit")

    # ---- the result protocol ------------------------------------------------------------
    def summary(self) -> str:
        """The table as text, with the scale, the df method and the adjustment.

        Returns
        -------
        str
            Several lines.
        """
        what = "Estimated marginal means" if self.kind == "means" else f"Contrasts ({self.method})"
        head = [f"{what} of {', '.join(self.specs)}" + (f" by {', '.join(self.by)}" if self.by else ""),
                f"scale: {self.scale}; df: {self.ddf}; confidence level {self.level:g}"
                + (f"; p-values and intervals adjusted: {self.adjust}" if self.kind != "means" else "")]
        return "\n".join(head + [self.table.to_string(index=False, float_format=lambda v: f"{v:.6g}")] + self.notes)

    def _as_dict(self) -> dict:
        return {"kind": self.kind, "specs": list(self.specs), "by": list(self.by), "scale": self.scale,
                "ddf": self.ddf, "level": self.level, "adjust": self.adjust, "method": self.method,
                "table": self.table.to_dict(orient="records"), "notes": self.notes}

    def plot(self, ax=None, path=None):
        """The means (or contrasts) with their intervals.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Draw here (a new figure otherwise).
        path : str or path-like, optional
            Save the figure here.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from ..plots.inference import interval_plot

        label = (self.table["contrast"] if self.kind != "means" else
                 self.table[list(self.specs)].astype(str).agg(" ".join, axis=1))
        group = self.table[list(self.by)].astype(str).agg(" ".join, axis=1) if self.by else None
        ref = (1.0 if self._ratio_scale() else 0.0) if self.kind != "means" else None
        return interval_plot(label.to_numpy(), self.table["estimate"].to_numpy(), self.table["lower"].to_numpy(),
                             self.table["upper"].to_numpy(), group=None if group is None else group.to_numpy(),
                             xlabel=f"estimate ({self.scale} scale)", reference=ref, ax=ax, path=path,
                             log=self.kind != "means" and self._ratio_scale())


def _check_level(level) -> float:
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0 < level < 1:
        raise InputError(f"level must be a number between 0 and 1, got {level!r}")
    return float(level)


def _contrast_coefficients(method, names: list[str], ref) -> tuple[np.ndarray, list[str]]:
    k = len(names)
    I = np.eye(k)
    if isinstance(method, str):
        if method in ("pairwise", "revpairwise"):
            pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
            if method == "revpairwise":
                pairs = [(j, i) for i, j in pairs]
            return np.array([I[a] - I[b] for a, b in pairs]).reshape(-1, k), [f"{names[a]} - {names[b]}" for a, b in pairs]
        if method == "trt.vs.ctrl":
            r = ref if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool) else (
                names.index(str(ref)) if str(ref) in names else None)
            if r is None or not 0 <= r < k:
                raise InputError(f"ref must be a position (0 to {k - 1}) or a level {names}, got {ref!r}")
            others = [i for i in range(k) if i != r]
            return np.array([I[i] - I[r] for i in others]).reshape(-1, k), [f"{names[i]} - {names[r]}" for i in others]
        return np.array([I[i + 1] - I[i] for i in range(k - 1)]).reshape(-1, k), [
            f"{names[i + 1]} - {names[i]}" for i in range(k - 1)]
    if isinstance(method, dict):
        cnames = [str(c) for c in method]
        C = np.array([np.asarray(v, dtype=float) for v in method.values()])
    else:
        try:
            C = np.atleast_2d(np.asarray(method, dtype=float))
        except (TypeError, ValueError):
            raise InputError("contrast coefficients must be numbers") from None
        cnames = [f"c{i + 1}" for i in range(len(C))]
    if C.ndim != 2 or C.shape[1] != k:
        raise InputError(f"the contrast matrix has {C.shape[-1]} columns but there are {k} means per group "
                         f"({names})")
    if not np.all(np.isfinite(C)):
        raise InputError("contrast coefficients must be finite")
    return C, cnames


@functools.lru_cache(maxsize=256)
def _tukey_quantile(level: float, k: float, df: float) -> float:
    """The studentized range's quantile over sqrt(2): the Tukey interval's multiplier (cached: it is slow)."""
    return float(stats.studentized_range.ppf(level, k, df)) / np.sqrt(2)


def _adjusted(stat, df, adjust, n_family, level, labels) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted p-values and interval multipliers within each family of contrasts."""
    a = np.abs(stat)
    raw = 2 * stats.t.sf(a, df)
    m = np.maximum(n_family, 1).astype(float)
    if adjust == "tukey":
        # n_family holds the number of means compared: the studentized range of that many means
        p = np.array([stats.studentized_range.sf(x * np.sqrt(2), k, d) if k > 1 else r
                      for x, k, d, r in zip(a, m, df, raw)])
        crit = np.array([_tukey_quantile(level, k, round(float(d), 6)) if k > 1 else stats.t.ppf(0.5 + level / 2, d)
                         for k, d in zip(m, df)])
        return crit, np.clip(p, 0, 1)
    if adjust == "none":
        return stats.t.ppf(0.5 + level / 2, df), raw
    if adjust == "sidak":
        return stats.t.ppf(0.5 + level ** (1 / m) / 2, df), 1 - (1 - raw) ** m
    crit = stats.t.ppf(1 - (1 - level) / (2 * m), df)  # Bonferroni intervals (Holm's too, as emmeans)
    if adjust == "bonferroni":
        return crit, np.minimum(raw * m, 1.0)
    # Holm, step-down within each family (consecutive rows of the same family size and by group)
    p = raw.copy()
    fam_id = _families(labels)
    for f in np.unique(fam_id):
        idx = np.flatnonzero(fam_id == f)
        order = idx[np.argsort(raw[idx])]
        k = len(order)
        adj = np.maximum.accumulate((k - np.arange(k)) * raw[order])
        p[order] = np.minimum(adj, 1.0)
    return crit, p


def _families(labels: pd.DataFrame) -> np.ndarray:
    by_cols = [c for c in labels.columns if c != "contrast"]
    if not by_cols:
        return np.zeros(len(labels), dtype=int)
    return labels.groupby(by_cols, sort=False).ngroup().to_numpy()


def _estimable_rows(spec, grid: pd.DataFrame) -> np.ndarray:
    """Which grid rows are estimable: x in the row space of the full (unaliased) design of the data."""
    import scipy.linalg as sla

    from ..formula.coding import coded_matrix

    if spec._kept_cols is None or len(spec._kept_cols) == len(spec.x_spec.column_names):
        return np.ones(len(grid), dtype=bool)
    full = np.asarray(coded_matrix(spec.x_spec, spec.data, "the fixed effects"), dtype=float)
    N = sla.null_space(full)
    G = np.asarray(coded_matrix(spec.x_spec, grid, "the fixed effects"), dtype=float)
    return np.max(np.abs(G @ N), axis=1, initial=0.0) <= 1e-8 * max(np.max(np.abs(G)), 1.0)


def emmeans(fit, specs, by=None, at: dict | None = None, type: str = "link", ddf: str | None = None,
            level: float = 0.95) -> MarginalMeans:
    """Estimated marginal means of a fit's fixed effects (emmeans' ``emmeans``).

    Parameters
    ----------
    fit : Fit
        The fit (LMM or GLMM).
    specs : str or list of str
        The factor(s) whose levels get a mean (a numeric covariate takes the values of ``at``).
    by : str or list of str, optional
        Factors whose levels each get their own set of means (and of contrasts).
    at : dict, optional
        ``{variable: values}`` for the reference grid (numeric covariates default to their means).
    type : {"link", "response"}
        The linear predictor's scale or the response's (delta-method standard errors).
    ddf : str, optional
        LMM df method (``"kenward-roger"`` by default for a REML fit up to 3,000 rows, else
        ``"satterthwaite"``; ``"residual"``, ``"none"``); GLMMs are asymptotic.
    level : float
        Confidence level.

    Returns
    -------
    MarginalMeans
        ``.table``, ``.contrast(...)``, ``.plot()``, ``summary()``, ``to_dict()``.
    """
    specs_l, by_l = _as_list(specs, "specs"), _as_list(by, "by")
    if not specs_l:
        raise InputError("specs must name at least one factor")
    if type not in ("link", "response"):
        raise InputError(f"type must be 'link' or 'response', got {type!r}")
    level = _check_level(level)
    ddf = _default_ddf(fit) if ddf is None else ddf_method(fit, ddf)
    used, categorical, _ = _model_variables(fit.spec)
    at = {} if at is None else at
    for v in specs_l + by_l:
        if v not in used:
            facs = sorted(categorical)
            raise InputError(f"{v!r} is not a variable of the model's fixed effects; its factors are {facs}"
                             + (f" and covariates {sorted(set(used) - categorical)}" if set(used) - categorical else ""))
        if v not in categorical and v not in (at or {}):
            raise InputError(f"{v!r} is a numeric covariate: give the values for its means with at={{{v!r}: [...]}}")
    if len(set(specs_l + by_l)) != len(specs_l + by_l):
        raise InputError("specs and by must name different variables")
    grid = reference_grid(fit, at)
    X = fit.spec.new_fixed_matrix(grid)
    estimable = _estimable_rows(fit.spec, grid)
    keys = specs_l + by_l
    groups = grid.groupby(keys, sort=False, observed=True).indices
    labels = pd.DataFrame(list(groups.keys()), columns=keys) if len(keys) > 1 else pd.DataFrame(
        {keys[0]: list(groups.keys())})
    # a mean over a cell the data cannot estimate (an empty combination, an aliased column) is NaN, as
    # emmeans' "nonEst"
    L = np.vstack([X[idx].mean(axis=0) if estimable[idx].all() else np.full(X.shape[1], np.nan)
                   for idx in groups.values()])
    # order rows by the by-groups first (each group's means together), as emmeans prints them
    if by_l:
        order = labels.groupby(by_l, sort=False).ngroup().to_numpy()
        perm = np.argsort(order, kind="stable")
        labels, L = labels.iloc[perm].reset_index(drop=True), L[perm]
    return MarginalMeans(fit, labels[specs_l + by_l], L, specs=specs_l, by=by_l, type=type, ddf=ddf, level=level)
