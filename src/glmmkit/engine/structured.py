"""glmmTMB's structured covariance classes: compound symmetry, AR(1), Toeplitz, Ornstein-Uhlenbeck,
spatial (exponential, Gaussian, Matern) and reduced rank.

A term ``ar1(0 + month | clinic)`` has one coefficient per month for each clinic, b_l ~ N(0, Sigma), and

    Sigma = D R(x) D,   D = diag(sd),   T = D chol(R)        (so that T T' = Sigma),

with theta = (sd..., x...): the SDs (one shared, or one per coefficient) are searched on the scale of
the linear predictor with lower bound 0, as lme4's; the correlation parameters x are unbounded
transforms (glmmTMB's where they keep R positive definite). The gradient path needs dT/dtheta:

    dT/dsd_i = E_ii chol(R)             (the row of sd_i; all rows for a shared sd),
    dT/dx_m  = D dL_m,  dL_m = L Phi(L^-1 (dR/dx_m) L^-T),

Phi taking the lower triangle with the diagonal halved (the derivative of the Cholesky factor).

The reduced-rank class ``rr(x | g, d)`` has Sigma = Lambda Lambda' with Lambda k x d lower trapezoidal
(glmmTMB's loadings, filled by column): T is Lambda padded with zero columns, linear in theta.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
from scipy import special

from ..errors import InputError
from .covariance import CovStructure


def _expit(x):
    return special.expit(x)


def cholesky_derivative(L: np.ndarray, dR: np.ndarray) -> np.ndarray:
    """dL for R = L L' moved by dR: L Phi(L^-1 dR L^-T).

    Parameters
    ----------
    L : numpy.ndarray
        (k, k) lower Cholesky factor.
    dR : numpy.ndarray
        (..., k, k) symmetric directions.

    Returns
    -------
    numpy.ndarray
        (..., k, k) lower triangular.
    """
    Linv = np.linalg.inv(L)
    X = Linv @ dR @ Linv.T
    X = np.tril(X) - 0.5 * np.eye(L.shape[0]) * np.diagonal(X, axis1=-2, axis2=-1)[..., None, :]
    return L @ X


class StructuredCovariance(CovStructure):
    """Sigma = D R(x) D with SDs ``sd`` (shared or per coefficient) and correlation parameters x."""

    #: glmmTMB's name of the structure
    kind = ""
    #: whether every coefficient has its own SD
    heterogeneous = False

    def __init__(self, k: int):
        self.k = k

    # -- the correlation part, per class -------------------------------------------------
    @property
    @abstractmethod
    def n_corr(self) -> int:
        """The number of correlation parameters."""

    @abstractmethod
    def correlation(self, x: np.ndarray) -> np.ndarray:
        """The correlation matrix R(x).

        Parameters
        ----------
        x : numpy.ndarray
            The correlation parameters (the tail of theta).

        Returns
        -------
        numpy.ndarray
            (k, k).
        """

    def correlation_derivatives(self, x: np.ndarray) -> np.ndarray:
        """dR/dx_m: central differences unless a class gives them exactly.

        Parameters
        ----------
        x : numpy.ndarray
            The correlation parameters (the tail of theta).

        Returns
        -------
        numpy.ndarray
            (n_corr, k, k).
        """
        x = np.asarray(x, dtype=float)
        out = []
        for m in range(len(x)):
            h = 1e-6 * max(1.0, abs(x[m]))
            up, dn = x.copy(), x.copy()
            up[m] += h
            dn[m] -= h
            out.append((self.correlation(up) - self.correlation(dn)) / (2 * h))
        return np.stack(out) if out else np.zeros((0, self.k, self.k))

    @abstractmethod
    def corr_names(self) -> list[str]:
        """Names of the natural correlation parameters.

        Returns
        -------
        list of str
            e.g. ["rho"] or ["range", "smoothness"].
        """

    @abstractmethod
    def corr_natural(self, x: np.ndarray) -> np.ndarray:
        """The natural correlation parameters (a correlation, a range, a smoothness).

        Parameters
        ----------
        x : numpy.ndarray
            The correlation parameters (the tail of theta).

        Returns
        -------
        numpy.ndarray
            (n_corr,).
        """

    @abstractmethod
    def corr_from_natural(self, v: np.ndarray) -> np.ndarray | None:
        """x from the natural correlation parameters.

        Parameters
        ----------
        v : numpy.ndarray
            (n_corr,) natural values.

        Returns
        -------
        numpy.ndarray or None
            x; None outside their space.
        """

    @abstractmethod
    def corr_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the natural correlation parameters.

        Returns
        -------
        tuple
            (lower, upper), each (n_corr,).
        """

    def corr_start(self) -> np.ndarray:
        """The starting correlation parameters.

        Returns
        -------
        numpy.ndarray
            (n_corr,).
        """
        return np.zeros(self.n_corr)

    # -- the protocol ----------------------------------------------------------------------
    @property
    def n_sd(self) -> int:
        """The number of SD parameters."""
        return self.k if self.heterogeneous else 1

    @property
    def n_theta(self) -> int:
        return self.n_sd + self.n_corr

    def _split(self, theta):
        theta = np.asarray(theta, dtype=float)
        sd = theta[: self.n_sd]
        return (sd if self.heterogeneous else np.full(self.k, sd[0])), theta[self.n_sd :]

    def lower(self):
        return np.concatenate([np.zeros(self.n_sd), np.full(self.n_corr, -np.inf)])

    def theta0(self):
        return np.concatenate([np.ones(self.n_sd), self.corr_start()])

    def scaled(self):
        return np.concatenate([np.ones(self.n_sd, dtype=bool), np.zeros(self.n_corr, dtype=bool)])

    def correlation_factor(self, x) -> np.ndarray:
        """chol(R(x)).

        Parameters
        ----------
        x : numpy.ndarray
            The correlation parameters (the tail of theta).

        Returns
        -------
        numpy.ndarray
            (k, k) lower factor; LinAlgError where R is not positive definite (a correlation run to +-1).
        """
        R = self.correlation(x)
        if not np.all(np.isfinite(R)):
            raise np.linalg.LinAlgError("correlation matrix is not finite")
        return np.linalg.cholesky(R)

    def template(self, theta):
        sd, x = self._split(theta)
        return sd[:, None] * self.correlation_factor(x)

    def factor_derivatives(self, theta):
        sd, x = self._split(theta)
        L = self.correlation_factor(x)
        out = np.zeros((self.n_theta, self.k, self.k))
        if self.heterogeneous:
            out[np.arange(self.k), np.arange(self.k), :] = L  # dT/dsd_i: row i of L
        else:
            out[0] = L
        if self.n_corr:
            dL = cholesky_derivative(L, self.correlation_derivatives(x))
            out[self.n_sd :] = sd[None, :, None] * dL
        return out

    def natural_names(self, columns):
        sds = [f"sd_{c}" for c in columns] if self.heterogeneous else ["sd"]
        return sds + self.corr_names()

    def natural_bounds(self):
        lo, hi = self.corr_bounds()
        return (np.concatenate([np.zeros(self.n_sd), lo]), np.concatenate([np.full(self.n_sd, np.inf), hi]),
                ["sd"] * self.n_sd + ["cor" if self.corr_is_correlation else "par"] * self.n_corr)

    #: whether the natural correlation parameters are correlations (bounded by +-1)
    corr_is_correlation = True

    def natural(self, theta, scale=1.0):
        theta = np.asarray(theta, dtype=float)
        return np.concatenate([np.abs(theta[: self.n_sd]) * scale, self.corr_natural(theta[self.n_sd :])])

    def from_natural(self, values, scale=1.0):
        values = np.asarray(values, dtype=float)
        x = self.corr_from_natural(values[self.n_sd :])
        if x is None or not np.all(np.isfinite(x)):
            return None
        return np.concatenate([values[: self.n_sd] / scale, x])

    def __repr__(self):
        return f"{type(self).__name__}({self.k})"


class CompoundSymmetry(StructuredCovariance):
    """cs(x | g): one SD per coefficient and one common correlation rho in (-1/(k-1), 1),
    rho = expit(x) (1 + a) - a, a = 1 / (k - 1) (glmmTMB's transform)."""

    kind = "cs"
    heterogeneous = True

    @property
    def n_corr(self):
        return 1

    @property
    def _a(self):
        return 1.0 / (self.k - 1)

    def _rho(self, x):
        return float(_expit(x[0]) * (1 + self._a) - self._a)

    def correlation(self, x):
        rho = self._rho(x)
        return (1 - rho) * np.eye(self.k) + rho

    def correlation_derivatives(self, x):
        e = _expit(x[0])
        return ((1 + self._a) * e * (1 - e) * (np.ones((self.k, self.k)) - np.eye(self.k)))[None]

    def corr_names(self):
        return ["rho"]

    def corr_natural(self, x):
        return np.array([self._rho(x)])

    def corr_from_natural(self, v):
        p = (v[0] + self._a) / (1 + self._a)
        return None if not 0 < p < 1 else np.array([special.logit(p)])

    def corr_bounds(self):
        return np.array([-self._a]), np.array([1.0])


class AR1(StructuredCovariance):
    """ar1(0 + time | g): one SD, lag-k correlation rho^k over equally spaced, ordered levels,
    rho = x / sqrt(1 + x^2) (glmmTMB's transform)."""

    kind = "ar1"

    @property
    def n_corr(self):
        return 1

    def _lag(self):
        i = np.arange(self.k)
        return np.abs(i[:, None] - i[None, :])

    def correlation(self, x):
        rho = float(x[0] / np.sqrt(1 + x[0] ** 2))
        return rho ** self._lag()

    def correlation_derivatives(self, x):
        rho = float(x[0] / np.sqrt(1 + x[0] ** 2))
        drho = float((1 + x[0] ** 2) ** -1.5)
        lag = self._lag()
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(lag > 0, lag * rho ** np.maximum(lag - 1, 0), 0.0)
        return (d * drho)[None]

    def corr_names(self):
        return ["rho"]

    def corr_natural(self, x):
        return np.array([x[0] / np.sqrt(1 + x[0] ** 2)])

    def corr_from_natural(self, v):
        return None if not -1 < v[0] < 1 else np.array([v[0] / np.sqrt(1 - v[0] ** 2)])

    def corr_bounds(self):
        return np.array([-1.0]), np.array([1.0])


def levinson_autocorrelations(pacf: np.ndarray) -> np.ndarray:
    """Autocorrelations r_1..r_K of a stationary series from its partial autocorrelations (Durbin-Levinson):
    every pacf in (-1, 1) gives a positive definite Toeplitz matrix.

    Parameters
    ----------
    pacf : numpy.ndarray
        (K,) partial autocorrelations.

    Returns
    -------
    numpy.ndarray
        (K,) autocorrelations at lags 1..K.
    """
    r = np.zeros(len(pacf) + 1)
    r[0] = 1.0
    phi = np.zeros(0)
    for m, a in enumerate(pacf, start=1):
        v = 1.0 - float(phi @ r[1:m])  # innovation variance after m - 1 lags (relative)
        r[m] = float(phi @ r[m - 1 : 0 : -1]) + a * v
        phi = np.concatenate([phi - a * phi[::-1], [a]])
    return r[1:]


def levinson_pacf(r: np.ndarray) -> np.ndarray | None:
    """Partial autocorrelations from autocorrelations r_1..r_K (None when the Toeplitz matrix is not
    positive definite).

    Parameters
    ----------
    r : numpy.ndarray
        (K,) autocorrelations at lags 1..K.

    Returns
    -------
    numpy.ndarray or None
        (K,) partial autocorrelations.
    """
    rr = np.concatenate([[1.0], np.asarray(r, dtype=float)])
    phi = np.zeros(0)
    out = []
    for m in range(1, len(rr)):
        v = 1.0 - float(phi @ rr[1:m])
        if v <= 0:
            return None
        a = (rr[m] - float(phi @ rr[m - 1 : 0 : -1])) / v
        if not -1 < a < 1:
            return None
        out.append(a)
        phi = np.concatenate([phi - a * phi[::-1], [a]])
    return np.array(out)


class Toeplitz(StructuredCovariance):
    """toep(0 + time | g): one SD per coefficient and a correlation per lag 1..k-1. The lags' correlations
    are parameterised by partial autocorrelations pacf_m = x_m / sqrt(1 + x_m^2) (Durbin-Levinson), so that
    every x gives a positive definite matrix; the natural parameters are the lags' correlations."""

    kind = "toep"
    heterogeneous = True

    @property
    def n_corr(self):
        return self.k - 1

    def correlation(self, x):
        x = np.asarray(x, dtype=float)
        r = np.concatenate([[1.0], levinson_autocorrelations(x / np.sqrt(1 + x * x))])
        i = np.arange(self.k)
        return r[np.abs(i[:, None] - i[None, :])]

    def corr_names(self):
        return [f"rho_lag{m}" for m in range(1, self.k)]

    def corr_natural(self, x):
        x = np.asarray(x, dtype=float)
        return levinson_autocorrelations(x / np.sqrt(1 + x * x))

    def corr_from_natural(self, v):
        pacf = levinson_pacf(v)
        return None if pacf is None else pacf / np.sqrt(1 - pacf * pacf)

    def corr_bounds(self):
        return np.full(self.n_corr, -1.0), np.full(self.n_corr, 1.0)


class DistanceCovariance(StructuredCovariance):
    """One SD and a correlation that decays with the distance between the coefficients' coordinates."""

    corr_is_correlation = False

    def __init__(self, coords: np.ndarray):
        coords = np.asarray(coords, dtype=float)
        if coords.ndim == 1:
            coords = coords[:, None]
        super().__init__(coords.shape[0])
        self.coords = coords
        diff = coords[:, None, :] - coords[None, :, :]
        self.dist = np.sqrt(np.sum(diff * diff, axis=2))

    def corr_start(self):
        # a range of the median distance between distinct points
        d = self.dist[np.triu_indices(self.k, 1)]
        d = d[d > 0]
        return np.full(self.n_corr, np.log(np.median(d)) if d.size else 0.0)

    def corr_bounds(self):
        return np.zeros(self.n_corr), np.full(self.n_corr, np.inf)

    def corr_natural(self, x):
        return np.exp(np.asarray(x, dtype=float))

    def corr_from_natural(self, v):
        v = np.asarray(v, dtype=float)
        return None if np.any(v <= 0) else np.log(v)


class OrnsteinUhlenbeck(DistanceCovariance):
    """ou(0 + pos(t) | g): corr = exp(-lambda |t_i - t_j|), lambda = exp(x) the decay rate per unit time
    (glmmTMB's parameter; the continuous-time AR(1))."""

    kind = "ou"

    @property
    def n_corr(self):
        return 1

    def correlation(self, x):
        return np.exp(-np.exp(x[0]) * self.dist)

    def correlation_derivatives(self, x):
        lam = np.exp(x[0])
        return (-lam * self.dist * np.exp(-lam * self.dist))[None]

    def corr_start(self):
        return -super().corr_start()  # rate = 1 / median distance

    def corr_names(self):
        return ["rate"]


class ExponentialSpatial(DistanceCovariance):
    """exp(0 + pos(x, y) | g): corr = exp(-d / range), range = exp(x) (glmmTMB's)."""

    kind = "exp"

    @property
    def n_corr(self):
        return 1

    def correlation(self, x):
        return np.exp(-self.dist * np.exp(-x[0]))

    def correlation_derivatives(self, x):
        s = self.dist * np.exp(-x[0])
        return (s * np.exp(-s))[None]

    def corr_names(self):
        return ["range"]


class GaussianSpatial(DistanceCovariance):
    """gau(0 + pos(x, y) | g): corr = exp(-d^2 / range^2), range = exp(x) (glmmTMB's)."""

    kind = "gau"

    @property
    def n_corr(self):
        return 1

    def correlation(self, x):
        return np.exp(-self.dist ** 2 * np.exp(-2 * x[0]))

    def correlation_derivatives(self, x):
        s = self.dist ** 2 * np.exp(-2 * x[0])
        return (2 * s * np.exp(-s))[None]

    def corr_names(self):
        return ["range"]


class MaternSpatial(DistanceCovariance):
    """mat(0 + pos(x, y) | g): corr = 2^(1-nu) / Gamma(nu) (d / range)^nu K_nu(d / range), range = exp(x1),
    smoothness nu = exp(x2) (glmmTMB's, through TMB's matern)."""

    kind = "mat"

    @property
    def n_corr(self):
        return 2

    def correlation(self, x):
        rng, nu = np.exp(x[0]), np.exp(x[1])
        s = np.maximum(self.dist / rng, 1e-300)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            R = np.exp((1 - nu) * np.log(2) - special.gammaln(nu) + nu * np.log(s)) * special.kv(nu, s)
        R[self.dist == 0] = 1.0
        return np.where(np.isfinite(R), R, 0.0)

    def corr_start(self):
        return np.array([super().corr_start()[0], np.log(0.5)])

    def corr_names(self):
        return ["range", "smoothness"]


class ReducedRank(CovStructure):
    """rr(x | g, d): Sigma = Lambda Lambda', Lambda (k x d) lower trapezoidal, filled by column (glmmTMB's
    factor loadings); theta = those entries (diagonal >= 0, which fixes their signs)."""

    kind = "rr"

    def __init__(self, k: int, d: int):
        if not 1 <= d <= k:
            raise InputError(f"rr() needs 1 <= d <= the number of coefficients ({k}), got d = {d}")
        self.k, self.d = k, d
        cols = np.concatenate([np.full(k - j, j) for j in range(d)])
        rows = np.concatenate([np.arange(j, k) for j in range(d)])
        self._rows, self._cols = rows, cols

    @property
    def n_theta(self):
        return len(self._rows)

    def lower(self):
        return np.where(self._rows == self._cols, 0.0, -np.inf)

    def theta0(self):
        # loadings of equal size spread over the coefficients, each column a different contrast
        out = np.where(self._rows == self._cols, 1.0, 0.0)
        return out + np.where(self._rows > self._cols, 0.5, 0.0)

    def template(self, theta):
        t = np.zeros((self.k, self.k))
        t[self._rows, self._cols] = theta
        return t

    def theta_entries(self):
        return self._rows, self._cols

    def factor_derivatives(self, theta):
        return self.entry_derivatives(theta)

    def correlation_pairs(self):
        return True

    def start_from_covariance(self, S):
        # the leading d eigenvectors, rotated to lower trapezoidal form: Lambda' = Q R (QR of Lambda')
        vals, vecs = np.linalg.eigh(S)
        lam = vecs[:, ::-1][:, : self.d] * np.sqrt(np.maximum(vals[::-1][: self.d], 0.0))
        _, R = np.linalg.qr(lam.T)
        L = R.T * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))[None, :]
        if not np.all(np.isfinite(L)) or np.max(np.abs(L)) > 5:
            return None
        return L[self._rows, self._cols]

    def natural_names(self, columns):
        return [f"loading_{columns[r]}.{c + 1}" for r, c in zip(self._rows, self._cols)]

    def natural_bounds(self):
        diag = self._rows == self._cols
        return np.where(diag, 0.0, -np.inf), np.full(self.n_theta, np.inf), ["par"] * self.n_theta

    def natural(self, theta, scale=1.0):
        return np.asarray(theta, dtype=float) * scale

    def loadings(self, theta, scale=1.0) -> np.ndarray:
        """The (k, d) factor loadings Lambda (in the response's units with ``scale``).

        Parameters
        ----------
        theta : numpy.ndarray
            The term's parameters.
        scale : float
            The SDs' unit.

        Returns
        -------
        numpy.ndarray
            (k, d).
        """
        return self.template(theta)[:, : self.d] * scale

    def __repr__(self):
        return f"ReducedRank({self.k}, d={self.d})"


#: glmmTMB's structure names -> classes built from a term's coefficients (k) or coordinates
STRUCTURES = {"cs": CompoundSymmetry, "ar1": AR1, "toep": Toeplitz, "ou": OrnsteinUhlenbeck,
              "exp": ExponentialSpatial, "gau": GaussianSpatial, "mat": MaternSpatial}
#: the structures whose coefficients are positions given by pos(...)
COORDINATE_STRUCTURES = ("ou", "exp", "gau", "mat")
