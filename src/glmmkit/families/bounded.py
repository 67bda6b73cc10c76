"""Proportions: the beta family (a continuous proportion) and the beta-binomial (successes of trials).

Both are glmmTMB's, in the mean-precision form of Ferrari & Cribari-Neto (2004): with a = mu phi and
b = (1 - mu) phi,

    beta:           log p(y) = lgamma(phi) - lgamma(a) - lgamma(b) + (a - 1) log y + (b - 1) log(1 - y),
                    E y = mu,  Var y = mu (1 - mu) / (1 + phi);
    beta-binomial:  log p(k) = log C(n, k) + lbeta(k + a, n - k + b) - lbeta(a, b),
                    E k = n mu,  Var k = n mu (1 - mu) (1 + (n - 1) / (phi + 1)).

The response of the beta-binomial is the proportion y = k / n with the trials n as prior weights (or
``cbind(k, n - k)``), as the binomial's.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import InputError
from .core import Binomial, _label, check_proportions, log_rising, rising_polygammas, trigamma
from .mean_family import MeanFamily

_PROPORTION_LINKS = ("logit", "probit", "cloglog")


def _precision_start(y, mu, wt) -> float:
    """phi from Var y = mu (1 - mu) / (1 + phi), by the moments of the start GLM's residuals."""
    ms = float(np.sum(wt * (y - mu) ** 2) / max(np.sum(wt), 1e-300))
    v = float(np.sum(wt * mu * (1 - mu)) / max(np.sum(wt), 1e-300))
    return float(np.clip(v / max(ms, 1e-12) - 1.0, 0.1, 1e4))


class Beta(MeanFamily):
    """glmmTMB's ``beta_family()``: y in (0, 1), mean mu, precision phi (``sigma(fit)`` in glmmTMB).

    Parameters
    ----------
    link : str, optional
        "logit" (default), "probit" or "cloglog".
    phi : float, optional
        Hold the precision fixed.
    """

    name = "beta"
    default_link = "logit"
    links = _PROPORTION_LINKS
    param_spec = (("phi", "log", 1.0),)
    expected_information_exact = True  # l_mumu does not depend on y: observed = expected in mu

    def __init__(self, link=None, phi=None):
        super().__init__(link, phi=phi)

    def _ab(self, mu):
        phi = self.values["phi"]
        return mu * phi, (1 - mu) * phi

    def variance(self, mu):
        return mu * (1 - mu) / (1 + self.values["phi"])

    def response_variance(self, mu, wt):
        return self.variance(mu) / wt

    def loglik_kernel(self, y, mu, wt):
        a, b = self._ab(mu)
        return wt * (-special.gammaln(a) - special.gammaln(b) + a * np.log(y) + b * np.log1p(-y))

    def loglik_const(self, y, wt):
        return wt * (special.gammaln(self.values["phi"]) - np.log(y) - np.log1p(-y))

    def mu_derivatives(self, y, mu, wt):
        # l_mu = phi (psi(b) - psi(a) + logit y);  l_mumu = -phi^2 (psi'(a) + psi'(b))
        a, b = self._ab(mu)
        phi = self.values["phi"]
        l_mu = wt * phi * (special.digamma(b) - special.digamma(a) + np.log(y) - np.log1p(-y))
        return l_mu, -self.mu_information(mu, wt)

    def mu_information(self, mu, wt):
        a, b = self._ab(mu)
        return wt * self.values["phi"] ** 2 * (trigamma(a) + trigamma(b))

    def start_values(self, y, mu, wt):
        return {"phi": _precision_start(y, mu, wt)}

    def start_family(self):
        return Binomial(link=self.link.name)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        bad = np.flatnonzero((y <= 0) | (y >= 1))
        if bad.size:
            raise InputError(f"beta response {column!r} must lie strictly between 0 and 1; row "
                             f"{_label(rows, bad[0])!r} has {float(y[bad[0]]):g} (for exact zeros or ones, "
                             "transform the response, e.g. (y (n - 1) + 0.5) / n, or model them separately)")

    def mustart(self, y, wt):
        return y

    def saturated_mean(self, y):
        return np.clip(y, 1e-12, 1 - 1e-12)

    def simulate(self, mu, wt, rng):
        a, b = self._ab(np.asarray(mu, dtype=float))
        return rng.beta(a, b)


class BetaBinomial(MeanFamily):
    """glmmTMB's ``betabinomial()``: successes of trials with a beta-distributed probability; precision phi.

    Parameters
    ----------
    link : str, optional
        "logit" (default), "probit" or "cloglog".
    phi : float, optional
        Hold the precision fixed.
    """

    name = "betabinomial"
    default_link = "logit"
    links = _PROPORTION_LINKS
    trials_response = True
    param_spec = (("phi", "log", 1.0),)

    def __init__(self, link=None, phi=None):
        super().__init__(link, phi=phi)

    def _abkn(self, y, mu, wt):
        phi = self.values["phi"]
        k = y * wt
        return mu * phi, (1 - mu) * phi, k, wt - k

    def variance(self, mu):
        return mu * (1 - mu)

    def response_variance(self, mu, wt):
        # of the proportion y = k / n
        return mu * (1 - mu) / wt * (1 + (wt - 1) / (self.values["phi"] + 1))

    def loglik_kernel(self, y, mu, wt):
        a, b, k, f = self._abkn(y, mu, wt)
        return log_rising(k, a) + log_rising(f, b)

    def loglik_const(self, y, wt):
        k = y * wt
        phi = self.values["phi"]
        return (special.gammaln(wt + 1) - special.gammaln(k + 1) - special.gammaln(wt - k + 1)
                - log_rising(wt, np.full_like(np.asarray(wt, dtype=float), phi)))

    def mu_derivatives(self, y, mu, wt):
        # l_mu = phi (psi(k + a) - psi(a) - psi(f + b) + psi(b)); l_mumu = phi^2 (psi'(k + a) - psi'(a) + ...)
        a, b, k, f = self._abkn(y, mu, wt)
        phi = self.values["phi"]
        Aa, Ba, _ = rising_polygammas(k, a, order=2)
        Ab, Bb, _ = rising_polygammas(f, b, order=2)
        return phi * (Aa - Ab), phi * phi * (Ba + Bb)

    def mu_information(self, mu, wt):
        # the binomial information deflated by the variance inflation (a quasi-likelihood information)
        return wt / (mu * (1 - mu) * (1 + (wt - 1) / (self.values["phi"] + 1)))

    def start_values(self, y, mu, wt):
        # Var(y) = mu (1 - mu) / n (1 + (n - 1) rho), rho = 1 / (phi + 1): moments of the residuals
        n = np.asarray(wt, dtype=float)
        ratio = (y - mu) ** 2 * n / np.maximum(mu * (1 - mu), 1e-12)  # about 1 + (n - 1) rho
        keep = n > 1
        if not np.any(keep):
            return {"phi": 10.0}
        rho = float(np.sum(ratio[keep] - 1) / np.sum(n[keep] - 1))
        return {"phi": float(np.clip(1 / max(rho, 1e-3) - 1, 0.1, 1e4))}

    def start_family(self):
        return Binomial(link=self.link.name)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        check_proportions(y, column, self.name, rows)

    def mustart(self, y, wt):
        return (wt * y + 0.5) / (wt + 1)

    def saturated_mean(self, y):
        return np.clip(y, 1e-12, 1 - 1e-12)

    def simulate(self, mu, wt, rng):
        mu = np.asarray(mu, dtype=float)
        phi = self.values["phi"]
        n = np.broadcast_to(np.asarray(wt), mu.shape)
        p = rng.beta(mu * phi, (1 - mu) * phi)
        return rng.binomial(n.astype(np.int64), p) / np.where(n > 0, n, 1)
