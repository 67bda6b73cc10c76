"""ModelSpec: formula + data -> response, weights, offset, X and the random-effects terms.

This is lme4's ``glFormula``/``lFormula`` stage.  The fixed part goes to
formulaic (its ModelSpec is kept, so new data are coded identically); the bar
terms are built here.  Every problem with the input is a ``ValueError`` that
names the column, level or row; rows with missing values are dropped with a
warning that counts them (or refused with ``na_action="raise"``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import formulaic
import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..engine.covariance import Diagonal, KnownMatrix, Unstructured, factor_psd
from ..engine.reterm import RandomTerm
from ..families import Family, get_family
from ..warnings import DroppedRowsWarning
from .parse import Bar, ParsedFormula, _split_top, parse_formula

_IDENT = re.compile(r"(?<![\w.])([A-Za-z_.][\w.]*)(?![\w.(])(?!\s*\()")
_KEYWORDS = {"True", "False", "None", "and", "or", "not", "in", "is"}


def _idents(expr: str) -> set[str]:
    return {m for m in _IDENT.findall(expr) if m not in _KEYWORDS and not m.replace(".", "").isdigit()}


def evaluate(expr: str, data: pd.DataFrame, what: str) -> pd.Series:
    """A column, or an arithmetic expression of columns (``size - incidence``, ``log(n)``)."""
    expr = expr.strip()
    if expr in data.columns:
        return data[expr]
    missing = sorted(n for n in _idents(expr) if n not in data.columns)
    if missing:
        raise ValueError(f"unknown column {missing[0]!r} in the {what} {expr!r}; the data have {list(data.columns)[:20]}")
    try:
        out = data.eval(expr, engine="python")
    except Exception as err:  # pandas raises many kinds here
        raise ValueError(f"cannot evaluate the {what} {expr!r}: {err}") from None
    if np.isscalar(out):
        out = pd.Series(np.full(len(data), out), index=data.index)
    return out


def group_codes(group: str, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Codes and labels of a grouping factor ``g`` or an interaction ``a:b``."""
    parts = [p.strip() for p in group.split(":")]
    for p in parts:
        if p not in data.columns:
            raise ValueError(f"unknown grouping column {p!r} in random-effects term (... | {group}); "
                             f"the data have {list(data.columns)[:20]}")
    codes, labels = None, None
    for p in parts:
        c, u = pd.factorize(data[p], sort=True)
        u = np.asarray(u).astype(str)
        if codes is None:
            codes, labels = c.astype(np.int64), u
        else:
            key = codes * len(u) + c
            kc, ku = pd.factorize(key, sort=True)
            labels = np.array([f"{labels[k // len(u)]}:{u[k % len(u)]}" for k in ku])
            codes = kc.astype(np.int64)
    return codes, labels


def _row(label):
    """A row label as a plain Python value (numpy scalars print as np.int64(4) otherwise)."""
    return label.item() if hasattr(label, "item") else label


def _re_name(c: str) -> str:
    return "(Intercept)" if c == "Intercept" else c


@dataclass
class ModelSpec:
    formula: str
    parsed: ParsedFormula
    family: Family
    data: pd.DataFrame  # the rows used
    y: np.ndarray
    wt: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    x_names: list[str]
    x_spec: object
    terms: list[RandomTerm]
    response: str
    n_dropped: int = 0
    dropped_index: list = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    offset_exprs: list[str] = field(default_factory=list)
    user_offset: bool = False

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def p(self) -> int:
        return self.X.shape[1]

    # ------------------------------------------------------------------
    @classmethod
    def from_formula(
        cls,
        formula: str,
        data: pd.DataFrame,
        family: str | Family = "gaussian",
        *,
        weights=None,
        offset=None,
        relmat: dict | None = None,
        na_action: str = "drop",
        lmm: bool = False,
        ziformula: str | None = None,
    ) -> "ModelSpec":
        """Build the model from an lme4 formula and a DataFrame."""
        if not isinstance(data, pd.DataFrame):
            raise ValueError("data must be a pandas DataFrame")
        if len(data) == 0:
            raise ValueError("data has no rows")
        fam = get_family(family)
        parsed = parse_formula(formula)
        if not parsed.bars:
            raise ValueError(f"formula {formula!r} has no random-effects term such as (1 | group); "
                             "for a model without random effects use a GLM")
        relmat = dict(relmat or {})
        groups = {b.group for b in parsed.bars}
        for key in relmat:
            if key not in groups:
                raise ValueError(f"relmat names {key!r}, which is not a grouping factor of the formula "
                                 f"(grouping factors: {sorted(groups)})")
        data = data.copy()
        data.columns = [str(c) for c in data.columns]
        # ---- missing values over every column the model uses ----------------
        used = set()
        zi_rhs = None
        if ziformula is not None:
            zi_rhs = str(ziformula).split("~", 1)[-1].strip() or "1"
        for piece in [parsed.response, parsed.fixed, *parsed.offsets, zi_rhs or ""] + [b.lhs for b in parsed.bars]:
            used |= {n for n in _idents(piece) if n in data.columns}
        for b in parsed.bars:
            used |= {p.strip() for p in b.group.split(":") if p.strip() in data.columns}
        if isinstance(weights, str):
            used.add(weights)
        if isinstance(offset, str):
            used.add(offset)
        used_cols = [c for c in data.columns if c in used]
        na = data[used_cols].isna()
        dropped = data.index[na.any(axis=1).to_numpy()]
        if len(dropped):
            if na_action == "raise":
                col = na.columns[na.loc[dropped[0]].to_numpy()][0]
                raise ValueError(f"missing value in column {col!r} at row {_row(dropped[0])!r} (na_action='raise')")
            per_col = {c: int(na[c].sum()) for c in used_cols if na[c].any()}
            warnings.warn(
                f"dropped {len(dropped)} of {len(data)} rows with missing values ({per_col})",
                DroppedRowsWarning,
                stacklevel=3,
            )
            keep = ~na.any(axis=1).to_numpy()
            data = data.loc[keep]
            if isinstance(weights, (np.ndarray, pd.Series, list)):
                weights = np.asarray(weights, dtype=float)[keep]
            if isinstance(offset, (np.ndarray, pd.Series, list)):
                offset = np.asarray(offset, dtype=float)[keep]
        if len(data) == 0:
            raise ValueError("no rows left after dropping missing values")
        n = len(data)
        # ---- response and prior weights -------------------------------------
        y, wt, resp_name = _response(parsed.response, data, fam, weights)
        # ---- offset ------------------------------------------------------------
        off = np.zeros(n)
        for expr in parsed.offsets:
            off = off + np.asarray(evaluate(expr, data, "offset"), dtype=float)
        if offset is not None:
            o = np.asarray(data[offset] if isinstance(offset, str) else offset, dtype=float)
            if o.shape != (n,):
                raise ValueError(f"offset has {o.size} values for {n} rows")
            off = off + o
        if not np.all(np.isfinite(off)):
            bad = int(np.flatnonzero(~np.isfinite(off))[0])
            raise ValueError(f"offset is not finite at row {_row(data.index[bad])!r} (log of zero exposure?)")
        # ---- fixed effects -----------------------------------------------------
        try:
            mm = formulaic.model_matrix(parsed.fixed, data, na_action="ignore")
        except formulaic.errors.FormulaicError as err:
            unknown = sorted(n for n in _idents(parsed.fixed) if n not in data.columns)
            if unknown:
                raise ValueError(f"unknown column {unknown[0]!r} in the fixed effects {parsed.fixed!r}; "
                                 f"the data have {list(data.columns)[:20]}") from None
            raise ValueError(f"cannot build the fixed-effects matrix of {parsed.fixed!r}: {err}") from None
        X = np.asarray(mm, dtype=float)
        x_names = [_re_name(c) for c in mm.columns]
        messages: list[str] = []
        X, x_names, kept_cols = _drop_aliased(X, x_names, messages)
        # ---- zero-inflation part ---------------------------------------------------
        if zi_rhs is not None:
            from ..zeroinflated import ZeroInflated

            try:
                zmm = formulaic.model_matrix(zi_rhs, data, na_action="ignore")
            except formulaic.errors.FormulaicError as err:
                unknown = sorted(nm for nm in _idents(zi_rhs) if nm not in data.columns)
                if unknown:
                    raise ValueError(f"unknown column {unknown[0]!r} in the zero-inflation formula "
                                     f"{ziformula!r}") from None
                raise ValueError(f"cannot build the zero-inflation formula {ziformula!r}: {err}") from None
            fam = ZeroInflated(fam, np.asarray(zmm, dtype=float), [_re_name(c) for c in zmm.columns], zmm.model_spec)
        # ---- random-effects terms ---------------------------------------------
        terms = []
        for bar in parsed.bars:
            terms.extend(_build_terms(bar, data, relmat, lmm, n))
        spec = cls(
            formula=formula, parsed=parsed, family=fam, data=data, y=y, wt=wt, offset=off, X=X,
            x_names=x_names, x_spec=mm.model_spec, terms=terms, response=resp_name,
            n_dropped=len(dropped), dropped_index=list(dropped), messages=messages,
            offset_exprs=list(parsed.offsets), user_offset=offset is not None,
        )
        spec._kept_cols = kept_cols
        return spec

    # ---- the public stages after this one -----------------------------
    def objective(self, nagq: int = 1, laplace: str = "expected"):
        """The GLMM objective (-2 log L by Laplace or AGQ) for this model."""
        from ..engine.blocked import Structure
        from ..engine.objective import GlmmObjective
        from ..engine.pirls import GlmmData

        data = GlmmData(self.y, self.wt, self.offset, self.X, Structure(self.terms), self.family)
        return GlmmObjective(data, nagq=nagq, laplace=laplace)

    def lmm_objective(self, reml: bool = True):
        """The profiled LMM deviance (ML) or REML criterion."""
        from ..engine.blocked import Structure
        from ..engine.objective import LmmObjective

        return LmmObjective(self.y, self.X, self.wt, self.offset, Structure(self.terms), reml)

    def new_fixed_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """X for new data, coded exactly like the fitted data."""
        mm = self.x_spec.get_model_matrix(newdata, na_action="ignore")
        return np.asarray(mm, dtype=float)[:, self._kept_cols]

    def new_offset(self, newdata: pd.DataFrame) -> np.ndarray:
        off = np.zeros(len(newdata))
        for expr in self.offset_exprs:
            off = off + np.asarray(evaluate(expr, newdata, "offset"), dtype=float)
        return off


def _response(expr: str, data: pd.DataFrame, fam: Family, weights):
    n = len(data)
    wt = np.ones(n)
    if weights is not None:
        wt = np.asarray(data[weights] if isinstance(weights, str) else weights, dtype=float)
        if wt.shape != (n,):
            raise ValueError(f"weights have {wt.size} values for {n} rows")
        bad = np.flatnonzero(~np.isfinite(wt) | (wt < 0))
        if bad.size:
            raise ValueError(f"weights must be finite and non-negative; row {data.index[bad[0]]!r} has {float(wt[bad[0]]):g}")
    m = re.fullmatch(r"cbind\((.*)\)", expr.strip(), flags=re.S)
    if m:
        if fam.name != "binomial":
            raise ValueError(f"cbind(successes, failures) is a binomial response, not {fam.name}")
        args = [a for _, a in _split_top(m.group(1), ",")]
        if len(args) != 2:
            raise ValueError(f"cbind() needs two arguments (successes, failures), got {expr!r}")
        s = np.asarray(evaluate(args[0], data, "response"), dtype=float)
        f = np.asarray(evaluate(args[1], data, "response"), dtype=float)
        for vals, name in ((s, args[0]), (f, args[1])):
            bad = np.flatnonzero(vals < 0)
            if bad.size:
                raise ValueError(f"binomial counts {name!r} must be non-negative; row {data.index[bad[0]]!r} "
                                 f"has {float(vals[bad[0]]):g} (successes > trials?)")
        tot = s + f
        if weights is not None:
            raise ValueError("give either cbind(successes, failures) or weights=, not both")
        zero = np.flatnonzero(tot == 0)
        if zero.size:
            raise ValueError(f"binomial row {data.index[zero[0]]!r} has zero trials")
        y = s / tot
        wt = tot
        name = args[0].strip()
    else:
        raw = evaluate(expr, data, "response")
        name = expr
        if fam.name == "binomial" and (raw.dtype == bool or isinstance(raw.dtype, pd.CategoricalDtype) or raw.dtype == object):
            vals = pd.Series(raw)
            if vals.dtype == bool:
                y = vals.to_numpy(dtype=float)
            else:
                lev = sorted(pd.unique(vals.astype(str)))
                if len(lev) != 2:
                    raise ValueError(f"binomial response {expr!r} must have two classes, found {lev[:5]}")
                y = (vals.astype(str) == lev[1]).to_numpy(dtype=float)
        else:
            try:
                y = np.asarray(raw, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"response {expr!r} is not numeric") from None
        if fam.name == "binomial":
            frac = np.flatnonzero((y > 0) & (y < 1))
            if frac.size and weights is None:
                raise ValueError(
                    f"binomial response {expr!r} has proportions (row {data.index[frac[0]]!r}: {float(y[frac[0]]):g}) "
                    "but no weights=: give the number of trials as weights, or use cbind(successes, failures)"
                )
            if weights is not None:
                k = y * wt
                bad = np.flatnonzero(np.abs(k - np.rint(k)) > 1e-6)
                if bad.size:
                    warnings.warn(f"non-integer number of successes (row {data.index[bad[0]]!r})", stacklevel=4)
    fam.validate(y, wt, name, data.index)
    return y, wt, name


def _drop_aliased(X, names, messages):
    """Drop columns of X that are linear combinations of earlier ones, keeping the first (as lme4).

    A sequential Cholesky of the column-scaled X'X: column j is aliased when its squared
    residual after the kept earlier columns is below 1e-10 of its own norm.
    """
    p = X.shape[1]
    if p == 0:
        return X, names, np.arange(0)
    G = X.T @ X
    d = np.sqrt(np.maximum(np.diag(G), 1e-300))
    C = G / np.outer(d, d)
    keep: list[int] = []
    L = np.zeros((p, p))
    for j in range(p):
        if keep:
            lk = L[np.ix_(keep, keep)]
            l = sla.solve_triangular(lk, C[keep, j], lower=True, check_finite=False)
            resid = C[j, j] - l @ l
        else:
            l, resid = np.zeros(0), C[j, j]
        if np.diag(G)[j] == 0 or resid < 1e-10:
            continue
        L[keep, j] = 0.0
        L[j, keep] = l
        L[j, j] = np.sqrt(resid)
        keep.append(j)
    if len(keep) == p:
        return X, names, np.arange(p)
    keep_arr = np.array(keep, dtype=int)
    dropped = [names[i] for i in range(p) if i not in keep]
    messages.append(f"fixed-effect model matrix is rank deficient so dropping {p - len(keep)} column(s): {dropped}")
    warnings.warn(messages[-1], stacklevel=4)
    return X[:, keep_arr], [names[i] for i in keep_arr], keep_arr


def _build_terms(bar: Bar, data, relmat, lmm, n) -> list[RandomTerm]:
    codes, labels = group_codes(bar.group, data)
    q = len(labels)
    if q < 2:
        raise ValueError(f"grouping factor {bar.group!r} has a single level ({labels[0]!r}); "
                         "a random effect needs at least two levels")
    try:
        mm = formulaic.model_matrix(bar.lhs, data, na_action="ignore")
    except formulaic.errors.FormulaicError as err:
        unknown = sorted(nm for nm in _idents(bar.lhs) if nm not in data.columns)
        if unknown:
            raise ValueError(f"unknown column {unknown[0]!r} in random-effects term {bar}") from None
        raise ValueError(f"cannot build random-effects term {bar}: {err}") from None
    Xr = np.asarray(mm, dtype=float)
    cols = [_re_name(c) for c in mm.columns]
    if Xr.shape[1] == 0:
        raise ValueError(f"random-effects term {bar} has no columns")
    known = bool(relmat) and bar.group in relmat
    if q >= n and (lmm or Xr.shape[1] > 1) and not (known and Xr.shape[1] == 1):
        raise ValueError(
            f"grouping factor {bar.group!r} has as many levels ({q}) as observations ({n}); "
            + ("in a linear mixed model it is confounded with the residual" if lmm
               else "only a scalar observation-level term (1 | obs) is allowed")
        )
    if bar.group in relmat:
        if Xr.shape[1] != 1:
            raise ValueError(f"a relationship matrix needs a scalar term (1 | {bar.group}), got {bar}")
        L = _relmat_factor(relmat[bar.group], labels, bar.group)
        return [RandomTerm(bar.group, labels, codes, Xr, cols, KnownMatrix(L), bar.lhs, mm.model_spec)]
    k = Xr.shape[1]
    cov = Unstructured(k) if bar.correlated or k == 1 else Diagonal(k)
    return [RandomTerm(bar.group, labels, codes, Xr, cols, cov, bar.lhs, mm.model_spec)]


def _relmat_factor(K, labels: np.ndarray, group: str) -> np.ndarray:
    """Match a labelled relationship matrix to the factor's levels and factor it."""
    if isinstance(K, pd.DataFrame):
        names_r = [str(x) for x in K.index]
        names_c = [str(x) for x in K.columns]
        if names_r != names_c:
            raise ValueError(f"relationship matrix for {group!r}: row names and column names differ")
        mat = K.to_numpy(dtype=float)
        names = names_r
    elif isinstance(K, tuple) and len(K) == 2:
        mat, names = np.asarray(K[0], dtype=float), [str(x) for x in K[1]]
    else:
        raise ValueError(f"relationship matrix for {group!r} must be a labelled pandas DataFrame "
                         "or a tuple (matrix, names)")
    if len(set(names)) != len(names):
        dup = pd.Series(names)[pd.Series(names).duplicated()].iloc[0]
        raise ValueError(f"relationship matrix for {group!r} has the name {dup!r} twice")
    pos = {nm: i for i, nm in enumerate(names)}
    missing = [str(lv) for lv in labels if lv not in pos]
    if missing:
        raise ValueError(f"levels of {group!r} missing from its relationship matrix: {missing[:10]}"
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    idx = np.array([pos[lv] for lv in labels])
    return factor_psd(mat[np.ix_(idx, idx)], group)
