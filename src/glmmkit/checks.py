"""Argument checks shared by every entry point: each refuses with the accepted values named."""

from __future__ import annotations

import numbers

from .errors import InputError


def check_choice(name: str, value, allowed) -> object:
    """``value`` must be one of ``allowed``.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        What was passed.
    allowed : iterable
        The accepted values.

    Returns
    -------
    object
        ``value``.
    """
    allowed = tuple(allowed)
    try:
        ok = value in allowed
    except TypeError:  # unhashable or uncomparable
        ok = False
    if not ok:
        raise InputError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` must be a whole number (not a bool, not 2.5) in [lo, hi].

    Parameters
    ----------
    name : str
        The argument's name.
    value : object
        What was passed.
    lo, hi : int or None
        Inclusive bounds (None: unbounded).

    Returns
    -------
    int
        ``value`` as an int.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise InputError(f"{name} must be a whole number{_range(lo, hi)}; got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InputError(f"{name} must be a whole number{_range(lo, hi)}; got {value}")
    return value


def check_real(name: str, value, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False,
               open_hi: bool = False) -> float:
    """``value`` must be a finite real number in the interval given (open or closed at each end).

    Parameters
    ----------
    name : str
        The argument's name.
    value : object
        What was passed.
    lo, hi : float or None
        Bounds (None: unbounded).
    open_lo, open_hi : bool
        Whether the bound itself is excluded.

    Returns
    -------
    float
        ``value`` as a float.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number{_interval(lo, hi, open_lo, open_hi)}; got {value!r}")
    v = float(value)
    bad = v != v or v in (float("inf"), float("-inf"))
    if lo is not None:
        bad |= v <= lo if open_lo else v < lo
    if hi is not None:
        bad |= v >= hi if open_hi else v > hi
    if bad:
        raise InputError(f"{name} must be a number{_interval(lo, hi, open_lo, open_hi)}; got {value!r}")
    return v


def check_level(level, name: str = "level") -> float:
    """A confidence level strictly between 0 and 1 (0.95, not 95).

    Parameters
    ----------
    level : object
        What was passed.
    name : str
        The argument's name.

    Returns
    -------
    float
        The level.
    """
    return check_real(name, level, 0, 1, open_lo=True, open_hi=True)


def check_fits(fits, what: str, at_least: int = 1) -> None:
    """Fits to compare: each a fitted model (a ``Fit``), on the same observations and response.

    Parameters
    ----------
    fits : sequence
        What was passed.
    what : str
        The function's name, for messages.
    at_least : int
        How many fits it needs.

    Returns
    -------
    None
    """
    import numpy as np

    if len(fits) < at_least:
        raise InputError(f"{what} needs at least {at_least} fit{'s' if at_least > 1 else ''}, got {len(fits)}")
    for i, f in enumerate(fits):
        if not (hasattr(f, "loglik") and hasattr(f, "spec") and hasattr(f, "n_params")):
            raise TypeError(f"{what}: argument {i + 1} is a {type(f).__name__}, not a fitted model (gk.glmer / gk.lmer)")
    y0 = fits[0].spec.y * fits[0].spec.wt
    for f in fits[1:]:
        if f.nobs != fits[0].nobs or not np.allclose(f.spec.y * f.spec.wt, y0):
            raise InputError(f"{what}: the fits are on different data ({fits[0].nobs} and {f.nobs} observations, "
                             "or another response); they must be fitted to the same observations")


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def _interval(lo, hi, open_lo, open_hi) -> str:
    if lo is None and hi is None:
        return " (finite)"
    left = "(" if open_lo or lo is None else "["
    right = ")" if open_hi or hi is None else "]"
    return f" in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
