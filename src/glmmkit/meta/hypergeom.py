"""The conditional model with the exact likelihood (metafor's CM.EL): Fisher's noncentral hypergeometric.

Given both margins of study i's 2x2 table (arm sizes n1, n2; events m1), the treatment-arm events a
follow Fisher's noncentral hypergeometric distribution with log odds ratio theta_i:

    P(a | theta) = C(n1, a) C(n2, m1 - a) e^{a theta} / sum_y C(n1, y) C(n2, m1 - y) e^{y theta}

over y in [max(0, m1 - n2), min(n1, m1)]. With theta_i = x_i'b + tau z_i, z_i ~ N(0, 1), study i's
likelihood is the integral over z_i, computed by adaptive Gauss-Hermite quadrature at the mode of the
integrand (log P is concave in theta, so the mode is unique and Newton finds it). All studies are one
array (studies x nodes x support); no loop over studies.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import gammaln, logsumexp

_LOG2PI = np.log(2 * np.pi)


def _lchoose(n, k):
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


class HypergeometricTables:
    """The supports and log weights of all studies, padded to one array."""

    def __init__(self, a, n1, n2, m1):
        a, n1, n2, m1 = (np.asarray(v, dtype=float) for v in (a, n1, n2, m1))
        self.a = a
        lo = np.maximum(0, m1 - n2)
        hi = np.minimum(n1, m1)
        S = int(np.max(hi - lo)) + 1
        self.y = lo[:, None] + np.arange(S)[None, :]
        valid = self.y <= hi[:, None]
        yv = np.where(valid, self.y, lo[:, None])
        self.logc = np.where(valid, _lchoose(n1[:, None], yv) + _lchoose(n2[:, None], m1[:, None] - yv), -np.inf)
        self.logc_a = _lchoose(n1, a) + _lchoose(n2, m1 - a)
        self.at_bound = (a == lo) | (a == hi)  # the study's own MLE of theta is infinite

    @property
    def k(self) -> int:
        """The number of tables."""
        return len(self.a)

    def _z(self, theta):
        # theta (k,) or (k, Q) -> log weights (k, [Q,] S)
        if theta.ndim == 1:
            return self.logc + self.y * theta[:, None]
        return self.logc[:, None, :] + self.y[:, None, :] * theta[:, :, None]

    def logpmf(self, theta):
        """log P(a_i | theta_i); theta (k,) or (k, Q).

        Parameters
        ----------
        theta : numpy.ndarray
            Log odds ratio per table (or per table and node).

        Returns
        -------
        numpy.ndarray
            log P(a_i | margins, theta).
        """
        theta = np.asarray(theta, dtype=float)
        a = self.a if theta.ndim == 1 else self.a[:, None]
        c = self.logc_a if theta.ndim == 1 else self.logc_a[:, None]
        return c + a * theta - logsumexp(self._z(theta), axis=-1)

    def moments(self, theta):
        """Conditional mean and variance of a given theta (the score is a - E, the information Var).

        Parameters
        ----------
        theta : numpy.ndarray
            Log odds ratio per table.

        Returns
        -------
        tuple
            (mean, variance) of a_i.
        """
        z = self._z(theta)
        p = np.exp(z - logsumexp(z, axis=-1, keepdims=True))
        y = self.y if theta.ndim == 1 else self.y[:, None, :]
        m = np.sum(p * y, axis=-1)
        v = np.maximum(np.sum(p * y * y, axis=-1) - m * m, 0.0)
        return m, v

    # -- the common-effect and the saturated model ---------------------------------------
    def fit_fixed(self, X, b0=None, iters: int = 100):
        """ML of theta_i = X b by Newton (concave): returns b, -log L, information X'VX.

        Parameters
        ----------
        X : numpy.ndarray
            (k, p) design.
        b0 : numpy.ndarray, optional
            Start.
        iters : int
            Most Newton steps.

        Returns
        -------
        tuple
            (b, negative log-likelihood, information matrix).
        """
        b = np.zeros(X.shape[1]) if b0 is None else np.array(b0, dtype=float)
        nll = -np.sum(self.logpmf(X @ b))
        for _ in range(iters):
            m, v = self.moments(X @ b)
            g = X.T @ (self.a - m)
            H = (X.T * v) @ X
            step = np.linalg.lstsq(H, g, rcond=None)[0]
            t = 1.0
            while True:
                nb = b + t * step
                nn = -np.sum(self.logpmf(X @ nb))
                if nn <= nll + 1e-12 or t < 1e-8:
                    break
                t /= 2
            done = abs(nll - nn) < 1e-12 and np.max(np.abs(nb - b)) < 1e-10
            b, nll = nb, nn
            if done:
                break
        _, v = self.moments(X @ b)
        return b, nll, (X.T * v) @ X

    def saturated(self):
        """Each study's own theta: the MLE where finite, and the maximum log-likelihood (0 at the bounds).

        Returns
        -------
        tuple
            (theta per table, its variance, whether it is finite, the saturated log-likelihood).
        """
        inner = ~self.at_bound
        theta = np.zeros(self.k)
        # Newton on each interior study at once, from the empirical log odds ratio
        for _ in range(200):
            m, v = self.moments(theta)
            step = np.where(inner, (self.a - m) / np.maximum(v, 1e-300), 0.0)
            step = np.clip(step, -2, 2)
            theta = theta + step
            if np.max(np.abs(step)) < 1e-12:
                break
        ll = np.where(inner, self.logpmf(theta), 0.0)
        _, v = self.moments(theta)
        return theta, v, inner, float(ll.sum())

    # -- the random-effects likelihood ---------------------------------------------------
    def marginal_loglik(self, eta, tau: float, nagq: int = 21):
        """log of int P(a_i | eta_i + tau z) phi(z) dz for every study (adaptive Gauss-Hermite).

        Parameters
        ----------
        eta : numpy.ndarray
            X b per table.
        tau : float
            The SD of the random effect.
        nagq : int
            Gauss-Hermite nodes.

        Returns
        -------
        numpy.ndarray
            The marginal log-likelihood per table.
        """
        eta = np.asarray(eta, dtype=float)
        if tau <= 0:
            return self.logpmf(eta)
        z = np.zeros(self.k)

        def h(zz):
            return self.logpmf(eta + tau * zz) - 0.5 * zz * zz

        hz = h(z)
        for _ in range(100):
            m, v = self.moments(eta + tau * z)
            step = (tau * (self.a - m) - z) / (tau * tau * v + 1)
            t = np.ones(self.k)
            for _ in range(30):
                nz = z + t * step
                nh = h(nz)
                worse = nh < hz - 1e-12
                if not worse.any():
                    break
                t = np.where(worse, t / 2, t)
            z, hz = nz, nh
            if np.max(np.abs(t * step)) < 1e-10:
                break
        _, v = self.moments(eta + tau * z)
        s = np.sqrt(tau * tau * v + 1)
        x, w = hermegauss(nagq)
        zq = z[:, None] + x[None, :] / s[:, None]
        g = self.logpmf(eta[:, None] + tau * zq) - 0.5 * zq * zq + 0.5 * x[None, :] ** 2 + np.log(w)[None, :]
        return -np.log(s) - 0.5 * _LOG2PI + logsumexp(g, axis=1)
