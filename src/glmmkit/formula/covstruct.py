"""Random-effects terms with glmmTMB's covariance structures: ``cs(1 + x | g)``, ``ar1(0 + month | clinic)``,
``toep(0 + month | clinic)``, ``ou(0 + pos(t) | g)``, ``exp(0 + pos(x, y) | g)``, ``gau(...)``, ``mat(...)``
and ``rr(0 + species | site, d = 2)``.

The term's columns are the lhs's model matrix, except where the coefficients are ordered times or positions:

* ``ar1``, ``toep`` and ``cs`` over ``0 + t``: one indicator per level of t, in time order (a numeric t by its sorted
  values, which are taken as equally spaced, as glmmTMB takes a factor's levels);
* ``ou``, ``exp``, ``gau``, ``mat`` over ``0 + pos(c1, ...)``: one indicator per distinct coordinate tuple
  (glmmTMB's ``numFactor``), with the Euclidean distances between them.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..engine.reterm import RandomTerm
from ..engine.structured import COORDINATE_STRUCTURES, STRUCTURES, ReducedRank
from ..errors import FormulaError, InputError
from .parse import Bar, _split_top


def _lhs_pieces(bar: Bar) -> tuple[bool, list[str]]:
    """(intercept removed, the other pieces) of the lhs ``0 + a`` / ``a + 0`` / ``a - 1``."""
    pieces = _split_top(bar.lhs, "+-")
    no_int, rest = False, []
    for sign, p in pieces:
        if (sign == "+" and p == "0") or (sign == "-" and p == "1"):
            no_int = True
        elif p:
            rest.append(p)
    return no_int, rest


def _indicators(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) indicator matrix of the rows' levels and the level of each column (sorted)."""
    levels, inv = np.unique(values, axis=0, return_inverse=True)
    X = np.zeros((len(values), len(levels)))
    X[np.arange(len(values)), inv.ravel()] = 1.0
    return X, levels


def _numeric_column(data: pd.DataFrame, name: str, bar: Bar) -> np.ndarray:
    if name not in data.columns:
        raise InputError(f"{bar}: the coordinate column {name!r} is not in the data "
                         f"(the data have {list(data.columns)[:20]})")
    col = data[name]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise InputError(f"{bar}: the coordinate column {name!r} is not numeric (dtype {col.dtype}); coordinates "
                         "are numbers (times, or x and y positions)")
    return col.to_numpy(dtype=float)


def coordinate_columns(bar: Bar) -> list[str]:
    """The column names inside ``pos(...)`` of a coordinate structure's lhs.

    Parameters
    ----------
    bar : Bar
        The random-effects term.

    Returns
    -------
    list of str
        The coordinate columns (FormulaError when the lhs is not ``0 + pos(c1, ...)``).
    """
    no_int, rest = _lhs_pieces(bar)
    m = re.fullmatch(r"pos\((.*)\)", rest[0].strip(), flags=re.S) if len(rest) == 1 else None
    if m is None:
        raise FormulaError(f"{bar.structure}() takes its coordinates as pos(...): write "
                           f"{bar.structure}(0 + pos(x, y) | {bar.group}) (or pos(t) for times), got {bar}")
    cols = [c.strip().strip("`") for _, c in _split_top(m.group(1), ",")]
    if not cols or any(not c for c in cols):
        raise FormulaError(f"pos() in {bar} needs one or more coordinate columns, e.g. pos(x, y)")
    if bar.structure == "ou" and len(cols) != 1:
        raise FormulaError(f"ou() is over one time axis: pos(t), got pos({', '.join(cols)}) in {bar}")
    return cols


def structured_term(bar: Bar, data: pd.DataFrame, codes: np.ndarray, labels: np.ndarray, model_matrix) -> RandomTerm:
    """The random-effects term of a glmmTMB covariance structure.

    Parameters
    ----------
    bar : Bar
        The term, ``bar.structure`` set.
    data : pandas.DataFrame
        The rows used.
    codes, labels : numpy.ndarray
        The grouping factor's codes and levels.
    model_matrix : callable
        ``(rhs, data, what) -> formulaic ModelMatrix`` (the formula's own builder).

    Returns
    -------
    RandomTerm
        With the structure's covariance class; InputError or FormulaError naming what is wrong.
    """
    kind = bar.structure
    lhs_spec, value_columns, value_levels = None, (), None
    if kind in COORDINATE_STRUCTURES:
        cols = coordinate_columns(bar)
        coords = np.column_stack([_numeric_column(data, c, bar) for c in cols])
        X, levels = _indicators(coords)
        names = ["pos(" + ",".join(f"{v:g}" for v in lev) + ")" for lev in levels]
        if len(levels) < 2:
            raise InputError(f"{bar}: all rows are at one position; a {kind}() term needs two or more")
        cov = STRUCTURES[kind](levels)
        value_columns, value_levels = tuple(cols), levels
    else:
        no_int, rest = _lhs_pieces(bar)
        single = rest[0].strip().strip("`") if len(rest) == 1 else None
        if (kind in ("ar1", "toep", "cs") and no_int and single in data.columns
                and pd.api.types.is_numeric_dtype(data[single]) and not pd.api.types.is_bool_dtype(data[single])):
            # a numeric time: its sorted distinct values, taken as equally spaced levels
            X, levels = _indicators(data[single].to_numpy(dtype=float))
            names = [f"{single}{v:g}" for v in levels]
            value_columns, value_levels = (single,), levels
        else:
            mm = model_matrix(bar.lhs, data, f"random-effects term {bar}")
            X = np.asarray(mm, dtype=float)
            names = [str(c) for c in mm.columns]
            lhs_spec = mm.model_spec
        k = X.shape[1]
        if kind in ("ar1", "toep") and (not no_int or "Intercept" in " ".join(names)):
            raise FormulaError(f"{kind}() is over the levels of a time factor without an intercept: write "
                               f"{kind}(0 + time | {bar.group}), got {bar}")
        if kind == "rr":
            if bar.rank > k:
                raise InputError(f"{bar}: rank d = {bar.rank} exceeds the term's {k} coefficients "
                                 f"({', '.join(names[:8])}{'...' if k > 8 else ''}); use d <= {k}")
            cov = ReducedRank(k, bar.rank)
        else:
            if k < 2:
                raise InputError(f"{bar} has {k} coefficient; a {kind}() structure needs two or more "
                                 "(for one, use (1 | g))")
            cov = STRUCTURES[kind](k)
    return RandomTerm(bar.group, labels, codes, X, names, cov, bar.lhs, lhs_spec, structure=kind,
                      value_columns=value_columns, value_levels=value_levels)
