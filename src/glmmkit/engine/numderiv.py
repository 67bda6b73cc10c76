"""Numerical derivatives by Richardson extrapolation of central differences (as R's numDeriv).

A central difference with step h has error c2 h^2 + c4 h^4 + ...; halving h r times and combining

    D_k^(m) = (4^m D_{k+1}^(m-1) - D_k^(m-1)) / (4^m - 1)

cancels the error's terms one by one.  The first step is ``d |x|`` (``eps`` where x is near zero): numDeriv's
1e-4 for first derivatives; 1e-3 for second ones, whose rounding error grows as 1 / h^2.

For the Hessian, the diagonal comes from second differences f(x + h e_i) - 2 f(x) + f(x - h e_i), the
off-diagonal from the mixed difference along e_i + e_j minus the two diagonal parts (numDeriv's genD).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: numDeriv's defaults: first step d |x| (eps near zero), r steps each halved (v = 2)
_ZERO_TOL = np.sqrt(np.finfo(float).eps / 7e-7)


def _steps(x: np.ndarray, d: float, eps: float, floor) -> np.ndarray:
    if floor is not None:  # steps relative to at least this magnitude: a small x needs no tiny step
        x = np.maximum(np.abs(x), floor)
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def _richardson(a: np.ndarray) -> np.ndarray:
    """Extrapolate differences a[k] at steps h / 2^k (k along the first axis) to step zero."""
    a = np.array(a, dtype=float)
    r = a.shape[0]
    for m in range(1, r):
        a[: r - m] = (a[1 : r - m + 1] * 4.0**m - a[: r - m]) / (4.0**m - 1)
    return a[0]


def jacobian(f: Callable[[np.ndarray], np.ndarray], x, *, d: float = 1e-4, eps: float = 1e-4, r: int = 4,
             floor=None) -> np.ndarray:
    """The Jacobian of a vector function by Richardson-extrapolated central differences.

    Parameters
    ----------
    f : callable
        x -> array (any shape; flattened).
    x : array-like
        The point.
    d, eps : float
        The first step, relative to |x| (d) or absolute near zero (eps).
    r : int
        Number of halvings extrapolated.
    floor : float or array, optional
        Steps relative to max(|x|, floor): a parameter near zero on a scale of order ``floor`` would otherwise
        take steps so small that rounding dominates.

    Returns
    -------
    numpy.ndarray
        (f's size, len(x)): column i is df / dx_i.
    """
    x = np.asarray(x, dtype=float)
    h0 = _steps(x, d, eps, floor)
    n = len(x)
    return np.column_stack([
        _extrapolated(lambda h, i=i: (np.ravel(f(x + h * _unit(n, i))) - np.ravel(f(x - h * _unit(n, i)))) / (2 * h),
                      h0[i], r)
        for i in range(n)])


def _unit(n: int, i: int) -> np.ndarray:
    e = np.zeros(n)
    e[i] = 1.0
    return e


def _extrapolated(diff, h0: float, r: int):
    """A difference quotient diff(h) at h0, h0 / 2, ..., h0 / 2^(r-1), extrapolated to h = 0."""
    return _richardson(np.array([diff(h0 / 2**k) for k in range(r)]))


def hessian(f: Callable[[np.ndarray], float], x, *, d: float = 1e-3, eps: float = 1e-4, r: int = 4,
            floor=None) -> np.ndarray:
    """The Hessian of a scalar function by Richardson-extrapolated differences (numDeriv's genD).

    Parameters
    ----------
    f : callable
        x -> float.
    x : array-like
        The point.
    d, eps : float
        The first step, relative to |x| (d) or absolute near zero (eps).
    r : int
        Number of halvings extrapolated.
    floor : float or array, optional
        As for ``jacobian``.

    Returns
    -------
    numpy.ndarray
        (len(x), len(x)), symmetric.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    f0 = float(f(x))
    h0 = _steps(x, d, eps, floor)
    H = np.zeros((n, n))
    for i in range(n):
        ui = _unit(n, i)
        H[i, i] = _extrapolated(lambda h: (float(f(x + h * ui)) - 2 * f0 + float(f(x - h * ui))) / h**2, h0[i], r)
    for i in range(n):
        for j in range(i):
            # a step h0_i along e_i with h0_j along e_j, halved together: u = e_i + (h0_j / h0_i) e_j
            u = _unit(n, i) + (h0[j] / h0[i]) * _unit(n, j)
            ratio = h0[j] / h0[i]
            H[i, j] = H[j, i] = _extrapolated(
                lambda h: (float(f(x + h * u)) - 2 * f0 + float(f(x - h * u)) - H[i, i] * h**2
                           - H[j, j] * (ratio * h) ** 2) / (2 * h * ratio * h), h0[i], r)
    return H
