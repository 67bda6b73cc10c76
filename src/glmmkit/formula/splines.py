"""``ns(x, df)`` in formulas: R's natural cubic splines (splines::ns), registered with formulaic as a stateful
transform, so that ``predict`` codes new data on the fitted knots.

The basis: cubic B-splines on the boundary knots (the range of x) and df - 1 interior knots at quantiles of x,
constrained to zero second derivative at both boundaries.  With C the constraints' matrix (2 x basis), the
natural basis is B Q[:, 2:], Q from the QR decomposition of C' (as R's ns).  Beyond the boundary knots the
basis continues linearly, as R's.
"""

from __future__ import annotations

import numpy as np
from formulaic.materializers.types import FactorValues
from formulaic.transforms import TRANSFORMS
from formulaic.utils.stateful_transforms import stateful_transform
from scipy.interpolate import BSpline


def _bspline_values(t: np.ndarray, points: np.ndarray, nu: int) -> np.ndarray:
    """The nu-th derivative of every cubic B-spline on knots t at the points: (points, basis)."""
    n = len(t) - 4
    out = np.empty((len(points), n))
    for j in range(n):  # a handful of basis functions
        c = np.zeros(n)
        c[j] = 1.0
        s = BSpline(t, c, 3, extrapolate=True)
        out[:, j] = (s.derivative(nu) if nu else s)(points)
    return out


def natural_spline_basis(x, inner, lower: float, upper: float, intercept: bool = False) -> np.ndarray:
    """R's ``ns`` basis at x for given interior and boundary knots.

    Parameters
    ----------
    x : array-like
        The values.
    inner : array-like
        Interior knots.
    lower, upper : float
        Boundary knots.
    intercept : bool
        Keep the basis function that spans the intercept.

    Returns
    -------
    numpy.ndarray
        (len(x), len(inner) + 1 + intercept).
    """
    x = np.asarray(x, dtype=float)
    t = np.r_[[lower] * 4, np.sort(np.asarray(inner, dtype=float)), [upper] * 4]
    n = len(t) - 4
    B = np.zeros((len(x), n))
    inside = (x >= lower) & (x <= upper)
    if inside.any():
        B[inside] = BSpline.design_matrix(x[inside], t, 3).toarray()
    for side, b in ((x < lower, lower), (x > upper, upper)):
        if side.any():  # linear beyond the boundary knots
            B[side] = _bspline_values(t, np.array([b]), 0) + (x[side] - b)[:, None] * _bspline_values(
                t, np.array([b]), 1)
    const = _bspline_values(t, np.array([lower, upper]), 2)
    if not intercept:
        B, const = B[:, 1:], const[:, 1:]
    Q, _ = np.linalg.qr(const.T, mode="complete")
    return (B @ Q)[:, 2:]


@stateful_transform
def ns(x, df: int | None = None, knots=None, intercept: bool = False, Boundary_knots=None, _state: dict = {}):  # noqa: B006, N803
    """A natural cubic spline basis (R's ``splines::ns``) for formulas: ``y ~ ns(x, df=3) + (1 | g)``.

    Parameters
    ----------
    x : array-like
        The covariate.
    df : int, optional
        Degrees of freedom (columns): df - 1 - intercept interior knots at quantiles of x.
    knots : list of float, optional
        Interior knots (instead of df).
    intercept : bool
        Include the basis function spanning the intercept.
    Boundary_knots : tuple of float, optional
        The boundary knots (default: the range of x in the fitted data).
    _state : dict
        formulaic's store of the fitted knots (new data are coded on them).

    Returns
    -------
    FactorValues
        The basis columns, named ``ns(x, ...)[1]`` ... .
    """
    x = np.asarray(x, dtype=float)
    if "inner" not in _state:
        finite = x[np.isfinite(x)]
        lo, hi = (float(np.min(finite)), float(np.max(finite))) if Boundary_knots is None else map(float, Boundary_knots)
        if knots is not None:
            inner = np.sort(np.asarray(knots, dtype=float))
        else:
            k = (df if df is not None else 1 + int(intercept)) - 1 - int(intercept)
            if k < 0:
                raise ValueError(f"ns(): df must be at least {1 + int(intercept)}, got {df}")
            inner = np.quantile(finite[(finite >= lo) & (finite <= hi)], np.linspace(0, 1, k + 2)[1:-1])
        _state.update(inner=[float(v) for v in inner], lower=lo, upper=hi, intercept=bool(intercept))
    basis = natural_spline_basis(x, _state["inner"], _state["lower"], _state["upper"], _state["intercept"])
    return FactorValues({i + 1: basis[:, i] for i in range(basis.shape[1])}, kind="numerical",
                        spans_intercept=bool(_state["intercept"]), format="{name}[{field}]")


TRANSFORMS["ns"] = ns
