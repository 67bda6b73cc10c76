"""Covariance structures of a random-effects term: theta -> relative covariance factor.

A term ``(x1 + ... + xk | g)`` has b_l = T u_l for each level l, u_l ~ N(0, I),
so cov(b_l) = sigma^2 T T' (sigma = 1 for GLMMs without dispersion).

* ``Unstructured(k)``: T lower triangular, theta = its lower triangle in
  column-major order (lme4's order); diagonal >= 0.
* ``Diagonal(k)``: T diagonal (the ``||`` syntax), theta = the diagonal.
* ``KnownMatrix(L)``: one coefficient per level, b = theta L u with L L' = K over
  the levels, so cov(b) = theta^2 K (a phylogeny, a genomic relationship matrix).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from ..errors import InputError


class CovStructure(ABC):
    """A term's covariance class: theta's layout, bounds, start and the relative covariance factor."""

    k: int = 1
    blockdiag: bool = True
    #: the random-effects system that carries the term (engine/resystem.py): None for the engine's blocked
    #: Cholesky; a covariance class with an algebra of its own names its system class here (the tree's)
    system = None

    @property
    @abstractmethod
    def n_theta(self) -> int:
        """The number of variance parameters of the term."""
        ...

    @abstractmethod
    def lower(self) -> np.ndarray:
        """Lower bounds of theta (0 for standard deviations, -inf for off-diagonal factors).

        Returns
        -------
        numpy.ndarray
            (n_theta,).
        """
        ...

    @abstractmethod
    def theta0(self) -> np.ndarray:
        """lme4's starting theta (identity factor).

        Returns
        -------
        numpy.ndarray
            (n_theta,).
        """
        ...

    @abstractmethod
    def template(self, theta: np.ndarray) -> np.ndarray:
        """The relative covariance factor T of one level (b_l = T u_l).

        Parameters
        ----------
        theta : numpy.ndarray
            The term's parameters.

        Returns
        -------
        numpy.ndarray
            (k, k).
        """
        ...

    def theta_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """The (row, column) of T that each theta entry sets: the diagonal here (a diagonal factor, or a
        known matrix's single multiplier); the unstructured factor overrides it.

        Returns
        -------
        tuple
            (rows, columns), one each per theta entry.
        """
        k = int(getattr(self, "k", 1))
        return np.arange(k), np.arange(k)

    def factor_derivatives(self, theta: np.ndarray) -> np.ndarray:
        """dT/dtheta_m for each parameter: the chain rule from the factor's entries to theta, by which the
        Laplace and LMM gradients serve every covariance class. Here by central differences of
        ``template`` (a class written by a user); the engine's classes give theirs exactly.

        Parameters
        ----------
        theta : numpy.ndarray
            The term's parameters.

        Returns
        -------
        numpy.ndarray
            (n_theta, k, k).
        """
        return numeric_factor_derivatives(self, theta)

    def entry_derivatives(self, theta: np.ndarray) -> np.ndarray:
        """dT/dtheta for a class whose theta is the entries ``theta_entries`` names (unit matrices).

        Parameters
        ----------
        theta : numpy.ndarray
            The term's parameters.

        Returns
        -------
        numpy.ndarray
            (n_theta, k, k).
        """
        k = self.template(theta).shape[0]
        rows, cols = self.theta_entries()
        out = np.zeros((self.n_theta, k, k))
        out[np.arange(self.n_theta), rows, cols] = 1.0
        return out

    def scaled(self) -> np.ndarray:
        """Which parameters are on the linear predictor's scale (SD-like: the optimiser searches them in
        units of that scale); correlation, range and smoothness parameters are not.

        Returns
        -------
        numpy.ndarray
            (n_theta,) booleans.
        """
        return np.ones(self.n_theta, dtype=bool)

    # ---- the natural parameters (varcorr, profile intervals) -------------------------
    def natural_names(self, columns: list[str]) -> list[str]:
        """Names of the natural parameters (SDs, correlations, ranges, ...), e.g. ``sd_(Intercept)``.

        Parameters
        ----------
        columns : list of str
            The term's coefficient names.

        Returns
        -------
        list of str
            One per theta entry.
        """
        return [f"sd_{c}" for c in columns[: self.n_theta]]

    def natural_bounds(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Bounds and kinds ("sd", "cor", "par") of the natural parameters.

        Returns
        -------
        tuple
            (lower, upper, kinds).
        """
        return np.zeros(self.n_theta), np.full(self.n_theta, np.inf), ["sd"] * self.n_theta

    def natural(self, theta: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The natural parameters at theta (SDs in the response's units: theta times ``scale``, sigma for
        an LMM).

        Parameters
        ----------
        theta : numpy.ndarray
            The term's parameters.
        scale : float
            The SDs' unit (sigma for an LMM, 1 for a GLMM).

        Returns
        -------
        numpy.ndarray
            (n_theta,).
        """
        return np.abs(np.asarray(theta, dtype=float)) * scale

    def from_natural(self, values: np.ndarray, scale: float = 1.0) -> np.ndarray | None:
        """theta from natural parameters (the inverse of ``natural``).

        Parameters
        ----------
        values : numpy.ndarray
            Natural parameters.
        scale : float
            The SDs' unit.

        Returns
        -------
        numpy.ndarray or None
            theta; None outside the parameter space.
        """
        return np.asarray(values, dtype=float) / scale

    def start_from_covariance(self, S: np.ndarray) -> np.ndarray | None:
        """A starting theta from a moment estimate S of the relative covariance (None: keep ``theta0``).

        Parameters
        ----------
        S : numpy.ndarray
            (k, k) positive definite.

        Returns
        -------
        numpy.ndarray or None
            theta, or None where the class takes its own start.
        """
        return None

    def correlation_pairs(self) -> bool:
        """Whether varcorr lists the pairwise correlations of the coefficients (lme4's VarCorr for a
        correlated term).

        Returns
        -------
        bool
            False here.
        """
        return False

    def covariance(self, theta: np.ndarray) -> np.ndarray:
        """The relative covariance T T' of one level's coefficients.

        Parameters
        ----------
        theta : numpy.ndarray
            The term's parameters.

        Returns
        -------
        numpy.ndarray
            (k, k).
        """
        t = self.template(theta)
        return t @ t.T


class Unstructured(CovStructure):
    def __init__(self, k: int):
        self.k = k
        self._rows, self._cols = np.tril_indices(k)
        # column-major order of the lower triangle (lme4's theta order)
        order = np.lexsort((self._rows, self._cols))
        self._rows, self._cols = self._rows[order], self._cols[order]

    @property
    def n_theta(self) -> int:
        return self.k * (self.k + 1) // 2

    def lower(self) -> np.ndarray:
        return np.where(self._rows == self._cols, 0.0, -np.inf)

    def theta0(self) -> np.ndarray:
        return np.where(self._rows == self._cols, 1.0, 0.0)

    def template(self, theta):
        t = np.zeros((self.k, self.k))
        t[self._rows, self._cols] = theta
        return t

    def theta_entries(self):
        return self._rows, self._cols

    def correlation_pairs(self):
        return True

    def factor_derivatives(self, theta):
        return self.entry_derivatives(theta)

    def start_from_covariance(self, S):
        L = np.linalg.cholesky(S)
        if not np.all(np.isfinite(L)) or np.max(np.abs(L)) > 5:
            return None
        return L[self._rows, self._cols]

    def natural_names(self, columns):
        return [f"sd_{columns[c]}" if r == c else f"cor_{columns[c]}.{columns[r]}"
                for r, c in zip(self._rows, self._cols)]

    def natural_bounds(self):
        diag = self._rows == self._cols
        return (np.where(diag, 0.0, -1.0), np.where(diag, np.inf, 1.0),
                ["sd" if d else "cor" for d in diag])

    def natural(self, theta, scale=1.0):
        S = self.covariance(theta) * scale * scale
        sd = np.sqrt(np.diag(S))
        return np.array([sd[c] if r == c else (S[r, c] / (sd[r] * sd[c]) if sd[r] * sd[c] > 0 else 0.0)
                         for r, c in zip(self._rows, self._cols)])

    def from_natural(self, values, scale=1.0):
        sd, R = np.zeros(self.k), np.eye(self.k)
        for val, r, c in zip(values, self._rows, self._cols):
            if r == c:
                sd[c] = val
            else:
                R[r, c] = R[c, r] = val
        try:
            C = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            return None
        L = sd[:, None] * C / scale
        return L[self._rows, self._cols]

    def __repr__(self):
        return f"Unstructured({self.k})"


class Diagonal(CovStructure):
    def __init__(self, k: int):
        self.k = k

    @property
    def n_theta(self) -> int:
        return self.k

    def lower(self):
        return np.zeros(self.k)

    def theta0(self):
        return np.ones(self.k)

    def template(self, theta):
        return np.diag(np.asarray(theta, dtype=float))

    def factor_derivatives(self, theta):
        return self.entry_derivatives(theta)

    def __repr__(self):
        return f"Diagonal({self.k})"


class KnownMatrix(CovStructure):
    """cov(b) = theta^2 K with K = L L' known over the term's levels."""

    blockdiag = False

    def __init__(self, factor: np.ndarray):
        self.k = 1
        self.factor = np.asarray(factor, dtype=float)

    @property
    def n_theta(self) -> int:
        return 1

    def lower(self):
        return np.zeros(1)

    def theta0(self):
        return np.ones(1)

    def template(self, theta):
        return np.array([[float(theta[0])]])

    def factor_derivatives(self, theta):
        return self.entry_derivatives(theta)

    def dense_lambda(self, theta) -> np.ndarray:
        """Lambda = theta L over the levels.

        Parameters
        ----------
        theta : numpy.ndarray
            (1,) the SD multiplier.

        Returns
        -------
        numpy.ndarray
            (q, q).
        """
        return float(theta[0]) * self.factor

    def diag_covariance(self) -> np.ndarray:
        """diag(K) over the levels.

        Returns
        -------
        numpy.ndarray
            (q,).
        """
        return np.sum(self.factor * self.factor, axis=1)

    def draw(self, theta, rng, k: int) -> np.ndarray:
        """k draws of b = theta L u, u ~ N(0, I).

        Parameters
        ----------
        theta : numpy.ndarray
            (1,) the SD multiplier.
        rng : numpy.random.Generator
            The random generator.
        k : int
            Draws.

        Returns
        -------
        numpy.ndarray
            (q, k).
        """
        u = rng.standard_normal((self.factor.shape[0], 1, k))
        return self.dense_lambda(theta) @ u[:, 0, :]

    def __repr__(self):
        return f"KnownMatrix(q={self.factor.shape[0]})"


def factor_psd(K: np.ndarray, name: str) -> np.ndarray:
    """A factor L with L L' = K for a symmetric positive semi-definite K (Cholesky when possible).

    Parameters
    ----------
    K : numpy.ndarray
        The matrix.
    name : str
        The grouping factor's name, for messages.

    Returns
    -------
    numpy.ndarray
        L (the eigen-factor when K is singular); InputError when K is not square, symmetric, finite or
        positive semi-definite.
    """
    K = np.asarray(K, dtype=float)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise InputError(f"relationship matrix for {name!r} must be square, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise InputError(f"relationship matrix for {name!r} has non-finite entries")
    asym = np.max(np.abs(K - K.T)) if K.size else 0.0
    if asym > 1e-8 * max(1.0, np.max(np.abs(K))):
        i, j = np.unravel_index(np.argmax(np.abs(K - K.T)), K.shape)
        raise InputError(f"relationship matrix for {name!r} is not symmetric (entry {i},{j} differs from {j},{i} by {asym:.3g})")
    try:
        return np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(K)
        # relative tolerance at single precision: GRMs are stored as float32 (GCTA), and a standardised
        # GRM is singular by construction, so rounding leaves eigenvalues of about -1e-7 of the largest
        if vals.min() < -1e-6 * max(1.0, vals.max()):
            raise InputError(
                f"relationship matrix for {name!r} is not positive semi-definite "
                f"(smallest eigenvalue {vals.min():.3g})"
            ) from None
        return vecs * np.sqrt(np.clip(vals, 0, None))


def numeric_factor_derivatives(cov: CovStructure, theta: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """dT/dtheta by central differences of ``cov.template`` (a covariance class without its own
    derivatives; bounds are respected by one-sided steps).

    Parameters
    ----------
    cov : CovStructure
        The covariance class.
    theta : numpy.ndarray
        The term's parameters.
    step : float
        The relative step.

    Returns
    -------
    numpy.ndarray
        (n_theta, k, k).
    """
    theta = np.asarray(theta, dtype=float)
    lower = cov.lower()
    out = []
    for m in range(len(theta)):
        h = step * max(1.0, abs(theta[m]))
        up, dn = theta.copy(), theta.copy()
        up[m] += h
        if theta[m] - h < lower[m]:  # forward difference at a bound
            out.append((cov.template(up) - cov.template(theta)) / h)
            continue
        dn[m] -= h
        out.append((cov.template(up) - cov.template(dn)) / (2 * h))
    return np.stack(out) if out else np.zeros((0,) + cov.template(theta).shape)
