"""ModelSpec: formula + data -> response, weights, offset, X and the random-effects terms.

This is lme4's ``glFormula``/``lFormula`` stage.  The fixed part goes to
formulaic (its ModelSpec is kept, so new data are coded identically); the bar
terms are built here.  Every problem with the input is a ``ValueError`` that
names the column, level or row; rows with missing values are dropped with a
warning that counts them (or refused with ``na_action="raise"``).
"""

from __future__ import annotations

import copy

import re
import warnings
from dataclasses import dataclass, field

import formulaic
import numpy as np
import scipy.sparse as sp
import pandas as pd
import scipy.linalg as sla

from ..engine.covariance import Diagonal, KnownMatrix, Unstructured, factor_psd
from ..engine.reterm import RandomTerm
from ..families import Family, get_family
from ..errors import FormulaError
from .coding import coded_matrix
from ..warnings import CostWarning, DataWarning, DroppedRowsWarning, ModelChangeWarning
from .parse import Bar, ParsedFormula, _split_top, parse_formula
from .covstruct import coordinate_columns, structured_term
from . import splines  # noqa: F401  (registers ns() with formulaic)
from ..errors import InputError

_IDENT = re.compile(r"(?<![\w.])([A-Za-z_.][\w.]*)(?![\w.(])(?!\s*\()")
_KEYWORDS = {"True", "False", "None", "and", "or", "not", "in", "is"}


def _quoted_names(expr: str) -> set[str]:
    """Column names written as `a b` or Q('a b') (any characters)."""
    return set(re.findall(r"`([^`]*)`", expr)) | {a or b for a, b in re.findall(r"Q\(\s*'([^']*)'\s*\)|Q\(\s*\"([^\"]*)\"\s*\)", expr)}


def _idents(expr: str) -> set[str]:
    return {m for m in _IDENT.findall(expr) if m not in _KEYWORDS and not m.replace(".", "").isdigit()}


def evaluate(expr: str, data: pd.DataFrame, what: str) -> pd.Series:
    """A column, or an arithmetic expression of columns (``size - incidence``, ``log(n)``).

    Parameters
    ----------
    expr : str
        The expression (checked: no code).
    data : pandas.DataFrame
        The data.
    what : str
        What the expression is for, in messages.

    Returns
    -------
    pandas.Series
        One value per row.
    """
    expr = expr.strip()
    if expr in data.columns:
        return data[expr]
    missing = sorted(n for n in _idents(expr) if n not in data.columns)
    if missing:
        raise InputError(f"unknown column {missing[0]!r} in the {what} {expr!r}; the data have {list(data.columns)[:20]}")
    try:
        out = data.eval(expr, engine="python")
    except Exception as err:  # pandas raises many kinds here
        raise InputError(f"cannot evaluate the {what} {expr!r}: {err}") from None
    if np.isscalar(out):
        out = pd.Series(np.full(len(data), out), index=data.index)
    return out


def group_codes(group: str, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Codes and labels of a grouping factor ``g`` or an interaction ``a:b``.

    Parameters
    ----------
    group : str
        The grouping factor.
    data : pandas.DataFrame
        The data.

    Returns
    -------
    tuple
        (codes per row, level labels in code order).
    """
    parts = [p.strip() for p in group.split(":")]
    for p in parts:
        if p not in data.columns:
            raise InputError(f"unknown grouping column {p!r} in random-effects term (... | {group}); "
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
    #: random-effects terms of the zero-inflation model (``ziformula="~ x + (1 | g)"``), after the main ones in theta
    zi_terms: list[RandomTerm] = field(default_factory=list)
    #: the zero-inflation and dispersion formulas as given (None without)
    ziformula: str | None = None
    dispformula: str | None = None
    _kept_cols: np.ndarray | None = field(default=None, repr=False)  # columns of X kept after aliasing

    @property
    def n(self) -> int:
        """The number of observations used."""
        return len(self.y)

    @property
    def p(self) -> int:
        """The number of fixed effects (after aliased columns were dropped)."""
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
        dispformula: str | None = None,
        fixed_only: bool = False,
    ) -> "ModelSpec":
        """Build the model from an lme4 formula and a DataFrame.

        Parameters
        ----------
        formula : str
            lme4 formula, e.g. ``"y ~ x + (1 | g)"``.
        data : pandas.DataFrame
            The columns the formula names.
        family : str or Family
            Response family (``"gaussian"`` for an LMM).
        weights, offset : str, array or None
            A column name or one value per row of ``data`` (before rows are dropped).
        relmat : dict or None
            ``{grouping factor: labelled covariance matrix}``.
        na_action : {"drop", "raise"}
            Rows with missing or non-finite values in a used column (or made non-finite by a transform
            such as ``log``) are dropped and counted, or refused.
        lmm : bool
            Build the linear mixed model (stricter rules on observation-level terms).
        ziformula : str or None
            One-sided zero-inflation formula (count families only).
        dispformula : str or None
            One-sided formula of fixed effects on the log dispersion (glmmTMB's; families with a dispersion).
        fixed_only : bool
            Accept a formula without random-effects terms (a GLM's design, for ``engine.glm.glm``).

        Returns
        -------
        ModelSpec
            The response, weights, offset, fixed-effects matrix and random-effects terms of the rows used.
        """
        from ..frames import as_pandas

        data = as_pandas(data)
        if len(data) == 0:
            raise InputError("data has no rows")
        if na_action not in ("drop", "raise"):
            raise InputError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
        fam = get_family(family)
        parsed = parse_formula(formula)
        if not parsed.bars and not fixed_only:
            raise FormulaError(f"formula {formula!r} has no random-effects term such as (1 | group); "
                               "for a model without random effects use a GLM")
        if ziformula is not None:
            if not isinstance(ziformula, str):
                raise InputError(f"ziformula must be a one-sided formula string such as '~ x', got {ziformula!r}")
            from ..zeroinflated import ZI_FAMILIES
            if fam.name not in ZI_FAMILIES:
                raise InputError(f"ziformula is available for the families {list(ZI_FAMILIES)}, not {fam.name!r}")
        if dispformula is not None:
            if not isinstance(dispformula, str):
                raise InputError(f"dispformula must be a one-sided formula string such as '~ x', got {dispformula!r}")
            if "|" in re.sub(r"`[^`]*`", "", dispformula):
                raise FormulaError(f"the dispersion model {dispformula!r} takes fixed effects only, e.g. '~ x'")
            from ..dispersion_model import DISP_FAMILIES
            if fam.name not in DISP_FAMILIES:
                raise InputError(f"dispformula is available for the families with a dispersion parameter "
                                 f"{list(DISP_FAMILIES)}, not {fam.name!r}")
        if relmat is not None and not isinstance(relmat, dict):
            raise InputError("relmat must be a dict {grouping factor: labelled matrix}, got "
                             f"{type(relmat).__name__}")
        relmat = dict(relmat or {})
        groups = {b.group for b in parsed.bars}
        for key in relmat:
            if key not in groups:
                raise InputError(f"relmat names {key!r}, which is not a grouping factor of the formula "
                                 f"(grouping factors: {sorted(groups)})")
        data = data.copy()
        data.columns = [str(c) for c in data.columns]
        n_all = len(data)
        weights = _column_or_array(weights, data, "weights")
        offset = _column_or_array(offset, data, "offset")
        # ---- missing and non-finite values over every column the model uses -------
        used = set()
        zi_rhs = None
        if ziformula is not None:
            zi_rhs = str(ziformula).split("~", 1)[-1].strip() or "1"
        disp_rhs = None if dispformula is None else (str(dispformula).split("~", 1)[-1].strip() or "1")
        for piece in ([parsed.response, parsed.fixed, *parsed.offsets, zi_rhs or "", disp_rhs or ""]
                      + [b.lhs for b in parsed.bars]):
            used |= {n for n in _idents(piece) | _quoted_names(piece) if n in data.columns}
        for b in parsed.bars:
            used |= {p.strip() for p in b.group.split(":") if p.strip() in data.columns}
            if b.structure in ("ou", "exp", "gau", "mat"):
                used |= {c for c in coordinate_columns(b) if c in data.columns}
        for arg in (weights, offset):
            if isinstance(arg, str):
                used.add(arg)
        used_cols = [c for c in data.columns if c in used]
        na = _missing(data[used_cols])
        for name, arr in (("weights", weights), ("offset", offset)):
            if isinstance(arr, np.ndarray):
                na[f"{name} (array)"] = ~np.isfinite(arr)
        spec = None
        for _ in range(2):  # a second pass only when a transform made values non-finite
            dropped = data.index[na.any(axis=1).to_numpy()]
            if len(dropped):
                if na_action == "raise":
                    col = na.columns[na.loc[dropped[0]].to_numpy()][0]
                    raise InputError(f"missing or non-finite value in {col!r} at row {_row(dropped[0])!r} "
                                     "(na_action='raise')")
                per_col = {c: int(na[c].sum()) for c in na.columns if na[c].any()}
                warnings.warn(
                    f"dropped {len(dropped)} of {n_all} rows with missing or non-finite values ({per_col})",
                    DroppedRowsWarning,
                    stacklevel=3,
                )
            keep = ~na.any(axis=1).to_numpy()
            if not keep.any():
                raise InputError(f"no rows left after dropping the {n_all} rows with missing or non-finite values")
            rows = data if keep.all() else data.loc[keep]  # no copy of the frame when every row is kept
            spec = cls._assemble(formula, parsed, fam, rows,
                                 weights[keep] if isinstance(weights, np.ndarray) else weights,
                                 offset[keep] if isinstance(offset, np.ndarray) else offset,
                                 relmat, lmm, ziformula, zi_rhs, dispformula, disp_rhs)
            made = spec._nonfinite_rows()
            if not made:
                break
            for label, mask in made.items():
                col = np.zeros(n_all, dtype=bool)
                col[np.flatnonzero(keep)[mask]] = True
                na[label] = col
        else:  # pragma: no cover - the second pass drops every row the first found
            raise InputError("non-finite values remain after dropping rows")
        spec.n_dropped = len(dropped)
        spec.dropped_index = list(dropped)
        if len(dropped):
            spec.messages.insert(0, f"dropped {len(dropped)} of {n_all} rows with missing or non-finite values")
        return spec

    @classmethod
    def _assemble(cls, formula, parsed, fam, data, weights, offset, relmat, lmm, ziformula, zi_rhs,
                  dispformula=None, disp_rhs=None) -> "ModelSpec":
        """Response, offset, X and the random-effects terms of rows already free of missing values."""
        n = len(data)
        # ---- response and prior weights -------------------------------------
        if zi_rhs is not None and getattr(fam, "hurdle", None) is False:
            fam = copy.copy(fam)  # a zero-truncated family with a zero model: a hurdle, whose zeros are data
            fam.hurdle = True
        y, wt, resp_name = _response(parsed.response, data, fam, weights)
        # ---- offset ------------------------------------------------------------
        off = np.zeros(n)
        for expr in parsed.offsets:
            off = off + _numeric(evaluate(expr, data, "offset"), f"offset({expr})")
        if offset is not None:
            off = off + (_numeric(data[offset], f"offset column {offset!r}") if isinstance(offset, str) else offset)
        messages: list[str] = []
        # ---- fixed effects -----------------------------------------------------
        mm = _model_matrix(parsed.fixed, data, "the fixed effects")
        X = np.asarray(mm, dtype=float)
        x_names = [_re_name(c) for c in mm.columns]
        _single_level_factors(parsed.fixed, data, messages)
        X, x_names, kept_cols = _drop_aliased(X, x_names, messages, wt > 0)
        # ---- dispersion model, then the zero-inflation part -------------------------------
        if disp_rhs is not None:
            from ..dispersion_model import DispersionModel

            dmm = _model_matrix(disp_rhs, data, f"the dispersion formula {dispformula!r}")
            fam = DispersionModel(fam, np.asarray(dmm, dtype=float), [_re_name(c) for c in dmm.columns],
                                  dmm.model_spec)
        zi_terms: list[RandomTerm] = []
        if zi_rhs is not None:
            from ..zeroinflated import ZeroInflated

            zi_fixed = zi_rhs
            if "|" in re.sub(r"`[^`]*`", "", zi_rhs):
                # random effects in the zero model: its own terms, fitted on the stacked system (zeroinflated.py)
                zi_parsed = parse_formula(f"{parsed.response} ~ {zi_rhs}")
                if zi_parsed.offsets:
                    raise FormulaError(f"offset() in the zero-inflation formula {ziformula!r} is not available")
                zi_fixed = zi_parsed.fixed
                for bar in zi_parsed.bars:
                    zi_terms.extend(_build_terms(bar, data, {}, False, n))
                if any(t.cov.system is not None for t in zi_terms):
                    raise FormulaError(f"the zero-inflation formula {ziformula!r} takes lme4's terms and glmmTMB's "
                                       "covariance structures, not a known covariance")
            zmm = _model_matrix(zi_fixed, data, f"the zero-inflation formula {ziformula!r}")
            fam = ZeroInflated(fam, np.asarray(zmm, dtype=float), [_re_name(c) for c in zmm.columns], zmm.model_spec)
        # ---- random-effects terms ---------------------------------------------
        terms = []
        for bar in parsed.bars:
            terms.extend(_build_terms(bar, data, relmat, lmm, n))
        # observation-level scalar terms (an OLRE) and known-covariance terms (a phylogeny with one row per
        # tip) have as many effects as rows by design; the others should leave the data room
        q = sum(t.size for t in terms if not (t.k == 1 and (t.q == n or t.is_known)))
        if q >= 0.8 * n:
            messages.append(f"{q} random effects for {n} observations: the model is nearly as large as the data")
            warnings.warn(messages[-1], CostWarning, stacklevel=4)
        spec = cls(
            formula=formula, parsed=parsed, family=fam, data=data, y=y, wt=wt, offset=off, X=X,
            x_names=x_names, x_spec=mm.model_spec, terms=terms, response=resp_name,
            messages=messages, offset_exprs=list(parsed.offsets), user_offset=offset is not None,
            zi_terms=zi_terms, ziformula=ziformula, dispformula=dispformula,
        )
        spec._kept_cols = kept_cols
        return spec

    def _nonfinite_rows(self) -> dict[str, np.ndarray]:
        """Rows made non-finite by a transform (``log`` of a negative, an overflow), by what made them."""
        out = {}
        checks = [("the response", ~np.isfinite(self.y)), ("the weights", ~np.isfinite(self.wt)),
                  ("the offset", ~np.isfinite(self.offset))]
        checks += [(name, ~np.isfinite(self.X[:, j])) for j, name in enumerate(self.x_names)]
        zX = getattr(self.family, "X_zi", None)
        if zX is not None:
            checks.append(("the ziformula", ~np.all(np.isfinite(zX), axis=1)))
        dX = getattr(self.family, "X_disp", getattr(getattr(self.family, "base", None), "X_disp", None))
        if dX is not None:
            checks.append(("the dispformula", ~np.all(np.isfinite(dX), axis=1)))
        checks += [(f"({t.lhs} | {t.group})", ~np.all(np.isfinite(t.X), axis=1)) for t in self.terms + self.zi_terms]
        for label, mask in checks:
            if mask.any():
                out[label] = mask
        return out

    # ---- the public stages after this one -----------------------------
    def random_effects_system(self):
        """The random-effects system for these terms (engine/resystem.py).

        Returns
        -------
        RandomEffectsSystem
            The blocked Cholesky, or the system a term's covariance class names (``cov.system``: the tree's
            for ``phylo.TreeCovariance``).
        """
        own = [t.cov.system for t in self.terms if t.cov.system is not None]
        if own:
            return own[0](self.terms)
        from ..engine.blocked import Structure

        return Structure(self.terms)

    def objective(self, nagq: int = 1, laplace: str = "expected", quad_stop: float = 1e-5, reml: bool = False):
        """The GLMM objective (-2 log L by Laplace or AGQ) for this model.

        Parameters
        ----------
        nagq : int
            Quadrature nodes (1: Laplace; 0: the joint-mode approximation).
        laplace : {"expected", "observed"}
            The information in the Laplace log-determinant (lme4's, glmmTMB's).
        quad_stop : float
            PIRLS's shortcut after a full Newton step (``Control.quad_stop``).
        reml : bool
            The restricted likelihood: the fixed effects integrated by Laplace with the random effects
            (glmmTMB's ``REML = TRUE``).

        Returns
        -------
        GlmmObjective
            The objective, on the random-effects system the terms ask for.
        """
        from ..engine.objective import GlmmObjective
        from ..engine.pirls import GlmmData

        if self.zi_terms:
            # random effects in the zero model: the engine's rows stacked three times (zeroinflated.py)
            from ..zeroinflated import stacked_glmm_data

            if nagq != 1 or reml:
                raise InputError("a zero-inflation formula with random effects is fitted by the Laplace "
                                 "approximation and maximum likelihood: use nagq=1 and reml=False "
                                 f"(got nagq={nagq}, reml={reml})")

            data = stacked_glmm_data(self)
        else:
            data = GlmmData(self.y, self.wt, self.offset, self.X, self.random_effects_system(), self.family)
        return GlmmObjective(data, nagq=nagq, laplace=laplace, quad_stop=quad_stop, reml=reml)

    def lmm_objective(self, reml: bool = True):
        """The profiled LMM deviance (ML) or REML criterion.

        Parameters
        ----------
        reml : bool
            REML (True) or ML.

        Returns
        -------
        LmmObjective
            The objective on the blocked system.
        """
        from ..engine.blocked import Structure
        from ..engine.objective import LmmObjective

        return LmmObjective(self.y, self.X, self.wt, self.offset, Structure(self.terms), reml)

    def new_fixed_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """X for new data, coded exactly like the fitted data.

        Parameters
        ----------
        newdata : pandas.DataFrame
            New rows (unseen factor levels are an InputError).

        Returns
        -------
        numpy.ndarray
            (rows, p).
        """
        return np.asarray(coded_matrix(self.x_spec, newdata, "the fixed effects"), dtype=float)[:, self._kept_cols]

    def new_offset(self, newdata: pd.DataFrame) -> np.ndarray:
        """The formula's ``offset()`` terms evaluated on new data.

        Parameters
        ----------
        newdata : pandas.DataFrame
            New rows.

        Returns
        -------
        numpy.ndarray
            One offset per row (zeros without offset terms).
        """
        off = np.zeros(len(newdata))
        for expr in self.offset_exprs:
            off = off + np.asarray(evaluate(expr, newdata, "offset"), dtype=float)
        return off


def _column_or_array(arg, data: pd.DataFrame, what: str):
    """``weights=`` / ``offset=``: a column name (checked) or one finite-or-missing number per row of data."""
    if arg is None:
        return None
    if isinstance(arg, str):
        if arg not in data.columns:
            raise InputError(f"{what}={arg!r} is not a column of the data; the data have {list(data.columns)[:20]}")
        _numeric(data[arg], f"{what} column {arg!r}")
        return arg
    try:
        arr = np.asarray(arg, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a column name or numbers, one per row of data") from None
    if arr.ndim == 0:
        arr = np.full(len(data), float(arr))
    if arr.shape != (len(data),):
        raise InputError(f"{what} has shape {arr.shape} for {len(data)} rows of data: give one value per row "
                         "of the data as passed (before rows with missing values are dropped), or a column name")
    return arr


def _numeric(values, what: str) -> np.ndarray:
    """A column or expression as float64, or an InputError naming it."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numeric") from None


def _missing(df: pd.DataFrame) -> pd.DataFrame:
    """Missing values, and infinities in numeric columns, as one boolean column per data column."""
    na = df.isna()
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c]) or pd.api.types.is_complex_dtype(df[c]):
            na[c] = na[c] | np.isinf(df[c].to_numpy(dtype=float, na_value=np.nan))
    return na


def _model_matrix(rhs: str, data: pd.DataFrame, what: str):
    """formulaic's model matrix of ``rhs``; any failure of formulaic becomes a FormulaError naming ``what``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # log of a negative etc.: such rows are dropped
            return formulaic.model_matrix(rhs, data, na_action="ignore")
    except Exception as err:  # formulaic raises many kinds (syntax, names, types)
        unknown = sorted(n for n in _idents(rhs) if n not in data.columns)
        if unknown:
            raise FormulaError(f"unknown column {unknown[0]!r} in {what} {rhs!r}; "
                               f"the data have {list(data.columns)[:20]}") from None
        raise FormulaError(f"cannot build {what} {rhs!r}: {type(err).__name__}: {err}") from None


def _single_level_factors(rhs: str, data: pd.DataFrame, messages: list[str]) -> None:
    """A categorical predictor with one level in the rows used contributes nothing: say so."""
    for name in sorted(_idents(rhs)):
        if name in data.columns and not pd.api.types.is_numeric_dtype(data[name]) and data[name].nunique() == 1:
            messages.append(f"predictor {name!r} has a single level ({_row(data[name].iloc[0])!r}) in the rows "
                            "used, so it has no effect in the model")
            warnings.warn(messages[-1], ModelChangeWarning, stacklevel=5)


def _response(expr: str, data: pd.DataFrame, fam: Family, weights):
    n = len(data)
    wt = np.ones(n)
    if weights is not None:
        wt = _numeric(data[weights], f"weights column {weights!r}") if isinstance(weights, str) else weights
        bad = np.flatnonzero(~np.isfinite(wt) | (wt < 0))
        if bad.size:
            raise InputError(f"weights must be finite and non-negative; row {_row(data.index[bad[0]])!r} "
                             f"has {float(wt[bad[0]]):g}")
        if not np.any(wt > 0):
            raise InputError("every prior weight is zero: the data carry no information")
    m = re.fullmatch(r"cbind\((.*)\)", expr.strip(), flags=re.S)
    if m:
        if not fam.trials_response:
            raise InputError(f"cbind(successes, failures) is a binomial or beta-binomial response, not {fam.name}")
        args = [a for _, a in _split_top(m.group(1), ",")]
        if len(args) != 2:
            raise InputError(f"cbind() needs two arguments (successes, failures), got {expr!r}")
        s = np.asarray(evaluate(args[0], data, "response"), dtype=float)
        f = np.asarray(evaluate(args[1], data, "response"), dtype=float)
        for vals, name in ((s, args[0]), (f, args[1])):
            bad = np.flatnonzero(vals < 0)
            if bad.size:
                raise InputError(f"binomial counts {name!r} must be non-negative; row {_row(data.index[bad[0]])!r} "
                                 f"has {float(vals[bad[0]]):g} (successes > trials?)")
        tot = s + f
        if weights is not None:
            raise InputError("give either cbind(successes, failures) or weights=, not both")
        zero = np.flatnonzero(tot == 0)
        if zero.size:
            raise InputError(f"binomial row {_row(data.index[zero[0]])!r} has zero trials")
        y = s / tot
        wt = tot
        name = args[0].strip()
    else:
        raw = evaluate(expr, data, "response")
        name = expr
        if fam.trials_response and (raw.dtype == bool or isinstance(raw.dtype, pd.CategoricalDtype) or raw.dtype == object):
            vals = pd.Series(raw)
            if vals.dtype == bool:
                y = vals.to_numpy(dtype=float)
            else:
                lev = sorted(pd.unique(vals.astype(str)))
                if len(lev) != 2:
                    raise InputError(f"binomial response {expr!r} must have two classes, found {lev[:5]}")
                y = (vals.astype(str) == lev[1]).to_numpy(dtype=float)
        else:
            try:
                y = np.asarray(raw, dtype=float)
            except (TypeError, ValueError):
                raise InputError(f"response {expr!r} is not numeric") from None
        if fam.trials_response:
            frac = np.flatnonzero((y > 0) & (y < 1))
            if frac.size and weights is None:
                raise InputError(
                    f"binomial response {expr!r} has proportions (row {_row(data.index[frac[0]])!r}: {float(y[frac[0]]):g}) "
                    "but no weights=: give the number of trials as weights, or use cbind(successes, failures)"
                )
            if weights is not None:
                k = y * wt
                bad = np.flatnonzero(np.abs(k - np.rint(k)) > 1e-6)
                if bad.size:
                    warnings.warn(f"non-integer number of successes (row {_row(data.index[bad[0]])!r})", DataWarning,
                                  stacklevel=4)
    fam.validate(y, wt, name, data.index)
    return y, wt, name


def _drop_aliased(X, names, messages, informative=None):
    """Drop columns of X that are linear combinations of earlier ones, keeping the first (as lme4).

    A sequential Cholesky of the column-scaled X'X over the rows that carry information (positive
    prior weight): column j is aliased when its squared residual after the kept earlier columns is
    below 1e-10 of its own norm.
    """
    p = X.shape[1]
    if p == 0:
        return X, names, np.arange(0)
    Xi = X if informative is None or np.all(informative) else X[informative]
    G = Xi.T @ Xi
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
    warnings.warn(messages[-1], ModelChangeWarning, stacklevel=5)
    return X[:, keep_arr], [names[i] for i in keep_arr], keep_arr


def _build_terms(bar: Bar, data, relmat, lmm, n) -> list[RandomTerm]:
    codes, labels = group_codes(bar.group, data)
    q = len(labels)
    if bar.structure:
        # glmmTMB's structures: a single level is allowed (one spatial field, one series)
        if bar.group in relmat:
            raise InputError(f"relmat names {bar.group!r}, whose term {bar} has a covariance structure of its own")
        return [structured_term(bar, data, codes, labels, _model_matrix)]
    if q < 2:
        raise InputError(f"grouping factor {bar.group!r} has a single level ({str(labels[0])!r}); "
                         "a random effect needs at least two levels")
    mm = _model_matrix(bar.lhs, data, f"random-effects term {bar}")
    Xr = np.asarray(mm, dtype=float)
    cols = [_re_name(c) for c in mm.columns]
    if Xr.shape[1] == 0:
        raise InputError(f"random-effects term {bar} has no columns")
    known = bool(relmat) and bar.group in relmat
    if q >= n and (lmm or Xr.shape[1] > 1) and not (known and Xr.shape[1] == 1):
        raise InputError(
            f"grouping factor {bar.group!r} has as many levels ({q}) as observations ({n}); "
            + ("in a linear mixed model it is confounded with the residual" if lmm
               else "only a scalar observation-level term (1 | obs) is allowed")
        )
    if bar.group in relmat:
        if Xr.shape[1] != 1:
            raise InputError(f"a relationship matrix needs a scalar term (1 | {bar.group}), got {bar}")
        K = relmat[bar.group]
        if isinstance(K, tuple) and len(K) == 2 and sp.issparse(K[0]):
            # a sparse matrix stays sparse: its own random-effects system (engine/sparse_known.py)
            from ..engine.sparse_known import SparseKnownCovariance

            idx = _relmat_positions(K[1], labels, bar.group, K[0].shape)
            cov = SparseKnownCovariance(sp.csr_matrix(K[0])[idx][:, idx], bar.group)
            return [RandomTerm(bar.group, labels, codes, Xr, cols, cov, bar.lhs, mm.model_spec)]
        L = _relmat_factor(K, labels, bar.group)
        return [RandomTerm(bar.group, labels, codes, Xr, cols, KnownMatrix(L), bar.lhs, mm.model_spec)]
    k = Xr.shape[1]
    cov = Unstructured(k) if bar.correlated or k == 1 else Diagonal(k)
    return [RandomTerm(bar.group, labels, codes, Xr, cols, cov, bar.lhs, mm.model_spec)]


def _relmat_positions(names, labels: np.ndarray, group: str, shape) -> np.ndarray:
    """The rows of a (matrix, names) relationship matrix for the factor's levels (names checked)."""
    names = [str(x) for x in np.asarray(names, dtype=object).ravel()]
    if len(shape) != 2 or shape[0] != shape[1]:
        raise InputError(f"relationship matrix for {group!r} must be square; it has shape {shape}")
    if len(names) != shape[0]:
        raise InputError(f"relationship matrix for {group!r} has {shape[0]} rows but {len(names)} names")
    if len(set(names)) != len(names):
        dup = pd.Series(names)[pd.Series(names).duplicated()].iloc[0]
        raise InputError(f"relationship matrix for {group!r} has the name {dup!r} twice")
    pos = {nm: i for i, nm in enumerate(names)}
    missing = [str(lv) for lv in labels if lv not in pos]
    if missing:
        raise InputError(f"levels of {group!r} missing from its relationship matrix: {missing[:10]}"
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    return np.array([pos[lv] for lv in labels])


def _relmat_factor(K, labels: np.ndarray, group: str) -> np.ndarray:
    """Match a labelled relationship matrix to the factor's levels and factor it."""
    if isinstance(K, pd.DataFrame):
        names_r = [str(x) for x in K.index]
        names_c = [str(x) for x in K.columns]
        if names_r != names_c:
            raise InputError(f"relationship matrix for {group!r}: row names and column names differ")
        try:
            mat = K.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"relationship matrix for {group!r} is not numeric") from None
        names = names_r
    elif isinstance(K, tuple) and len(K) == 2:
        try:
            mat = np.asarray(K[0].toarray() if hasattr(K[0], "toarray") else K[0], dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"relationship matrix for {group!r} is not numeric") from None
        names = [str(x) for x in np.asarray(K[1], dtype=object).ravel()]
    else:
        raise InputError(f"relationship matrix for {group!r} must be a labelled pandas DataFrame "
                         "or a tuple (matrix, names)")
    if mat.ndim != 2:
        raise InputError(f"relationship matrix for {group!r} must be square; it has shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise InputError(f"relationship matrix for {group!r} has missing or non-finite entries")
    idx = _relmat_positions(names, labels, group, mat.shape)
    return factor_psd(mat[np.ix_(idx, idx)], group)
