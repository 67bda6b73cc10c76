"""Continuous families of glmmTMB beyond lme4's: Student-t and Tweedie.

Student-t (glmmTMB's ``t_family``), y = mu + sigma e with e ~ t(nu), r = (y - mu) / sigma:

    log p(y) = lgamma((nu + 1) / 2) - lgamma(nu / 2) - log(nu pi) / 2 - log sigma - (nu + 1) / 2 log(1 + r^2 / nu),
    d l / d mu = (nu + 1) r / (sigma (nu + r^2)),   d^2 l / d mu^2 = (nu + 1)(r^2 - nu) / (sigma^2 (nu + r^2)^2),
    Fisher's information (nu + 1) / ((nu + 3) sigma^2).

Tweedie (glmmTMB's ``tweedie``), 1 < p < 2, a compound Poisson-gamma with a point mass at zero: an
exponential dispersion family in mu, Var y = phi mu^p,

    log p(y) = (y mu^(1-p) / (1-p) - mu^(2-p) / (2-p)) / phi + c(y, phi, p),

so the mean enters only the kernel; the constant c is Dunn & Smyth's (2005) series for y > 0,

    c = log W - log y,  W = sum_j z^j / (j! Gamma(-j alpha)),  alpha = (2-p)/(1-p),
    z = y^-alpha (p-1)^alpha / (phi^(1-alpha) (2-p)),

summed over a window around its largest term j* = y^(2-p) / (phi (2-p)), and c = 0 at y = 0.  p is estimated
on glmmTMB's scale psi = logit(p - 1).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import InputError
from .core import Gaussian, Poisson, _label
from .mean_family import MeanFamily, difference_param_terms


class StudentT(MeanFamily):
    """glmmTMB's ``t_family()``: a heavy-tailed continuous response with scale sigma and degrees of freedom df.

    Parameters
    ----------
    link : str, optional
        "identity" (default), "log" or "inverse".
    sigma : float, optional
        Hold the scale fixed.
    df : float, optional
        Hold the degrees of freedom fixed (estimated otherwise, as glmmTMB).
    """

    name = "t"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    param_spec = (("sigma", "log", 1.0), ("df", "log", 10.0))
    expected_information_exact = True  # Fisher's information for the location is exact

    def __init__(self, link=None, sigma=None, df=None):
        super().__init__(link, sigma=sigma, df=df)

    def _r(self, y, mu):
        return (y - mu) / self.values["sigma"]

    def variance(self, mu):
        nu = self.values["df"]
        return np.full_like(np.asarray(mu, dtype=float), self.values["sigma"] ** 2 * (nu / (nu - 2) if nu > 2 else np.inf))

    def loglik_kernel(self, y, mu, wt):
        nu = self.values["df"]
        return -wt * (nu + 1) / 2 * np.log1p(self._r(y, mu) ** 2 / nu)

    def loglik_const(self, y, wt):
        nu, sigma = self.values["df"], self.values["sigma"]
        c = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(sigma)
        return wt * c * np.ones_like(np.asarray(y, dtype=float))

    def mu_derivatives(self, y, mu, wt):
        nu, sigma = self.values["df"], self.values["sigma"]
        r = self._r(y, mu)
        den = nu + r * r
        return wt * (nu + 1) * r / (sigma * den), wt * (nu + 1) * (r * r - nu) / (sigma * sigma * den * den)

    def mu_information(self, mu, wt):
        nu, sigma = self.values["df"], self.values["sigma"]
        return wt * (nu + 1) / ((nu + 3) * sigma * sigma) * np.ones_like(np.asarray(mu, dtype=float))

    def start_values(self, y, mu, wt):
        ms = float(np.sum(wt * (y - mu) ** 2) / max(np.sum(wt), 1e-300))
        return {"sigma": float(np.sqrt(max(ms, 1e-12)) * 0.8), "df": 10.0}

    def start_family(self):
        return Gaussian(link=self.link.name)

    def simulate(self, mu, wt, rng):
        mu = np.asarray(mu, dtype=float)
        return mu + self.values["sigma"] * rng.standard_t(self.values["df"], size=mu.shape) / np.sqrt(wt)

    def latent_variance(self, lam=None):
        if self.link.name != "identity":
            return super().latent_variance(lam)
        return float(self.variance(np.zeros(1))[0])


class Tweedie(MeanFamily):
    """glmmTMB's ``tweedie()``: non-negative continuous responses with exact zeros; Var y = phi mu^p, 1 < p < 2.

    Parameters
    ----------
    link : str, optional
        "log" (default).
    phi : float, optional
        Hold the dispersion fixed.
    power : float, optional
        Hold the power p fixed (in (1, 2); estimated otherwise).
    """

    name = "tweedie"
    default_link = "log"
    links = ("log",)
    param_spec = (("phi", "log", 1.0), ("power", "power", 1.5))
    expected_information_exact = True  # an exponential dispersion family in mu

    def __init__(self, link=None, phi=None, power=None):
        super().__init__(link, phi=phi, power=power)

    def variance(self, mu):
        return self.values["phi"] * np.asarray(mu, dtype=float) ** self.values["power"]

    def loglik_kernel(self, y, mu, wt):
        phi, p = self.values["phi"], self.values["power"]
        return wt * (y * mu ** (1 - p) / (1 - p) - mu ** (2 - p) / (2 - p)) / phi

    def _series(self, y):
        """(log W - log y, d log W / d log phi, d log W / d psi_p) per row (0 at y = 0), cached for the last
        response and parameters: the objective's constant and the gradient's terms share one summation."""
        phi, p = self.values["phi"], self.values["power"]
        y = np.asarray(y, dtype=float)
        key = None if np.ndim(phi) else (y.__array_interface__["data"][0], y.shape, y.strides, phi, p)
        cached = getattr(self, "_series_cache", None)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        out = tuple(np.zeros_like(y) for _ in range(3))
        pos = y > 0
        if np.any(pos):
            phi_pos = phi[pos] if np.ndim(phi) else phi  # one dispersion per row under a dispformula
            logw, d1, d2 = _tweedie_log_w(y[pos], phi_pos, p)
            out[0][pos], out[1][pos], out[2][pos] = logw - np.log(y[pos]), d1, d2
        if key is not None:
            self._series_cache = (key, out)
        return out

    def loglik_const(self, y, wt):
        return wt * self._series(y)[0]

    def with_params(self, psi):
        fam = super().with_params(psi)
        fam._series_cache = None
        return fam

    def with_dispersion(self, value):
        fam = super().with_dispersion(value)
        fam._series_cache = None
        return fam

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        """d / d (log phi, logit(p - 1)) of log p (analytic, the series' derivatives from the same summation),
        and of the score and the information (central differences: they do not involve the series).

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Response, linear predictor, means and prior weights at the mode.
        laplace : {"expected", "observed"}
            The Laplace information.

        Returns
        -------
        list or None
            One (dl, dr, dW) triple per free parameter.
        """
        terms = difference_param_terms(self, y, eta, mu, wt, laplace, with_loglik=False)
        if terms is None:
            return None
        phi, p = self.values["phi"], self.values["power"]
        _, d1, d2 = self._series(y)
        kernel = self.loglik_kernel(y, mu, wt)
        lm = np.log(mu)
        # the kernel's p-derivative: theta = mu^(1-p) / (1-p), kappa = mu^(2-p) / (2-p)
        dtheta = mu ** (1 - p) * (1 / (1 - p) ** 2 - lm / (1 - p))
        dkappa = mu ** (2 - p) * (1 / (2 - p) ** 2 - lm / (2 - p))
        dl = {"phi": -kernel + wt * d1,
              "power": wt * ((y * dtheta - dkappa) / phi * (p - 1) * (2 - p) + d2)}
        return [(dl[name], dr, dw) for (name, _, _), (_, dr, dw) in zip(self._free(), terms)]

    def mu_derivatives(self, y, mu, wt):
        phi, p = self.values["phi"], self.values["power"]
        mp = mu ** (-p)
        return wt * (y - mu) * mp / phi, -wt * (mp + p * (y - mu) * mp / mu) / phi

    def mu_information(self, mu, wt):
        return wt * mu ** (-self.values["power"]) / self.values["phi"]

    def start_values(self, y, mu, wt):
        p = self.values["power"] if "power" in self.fixed else 1.5
        phi = float(np.sum(wt * (y - mu) ** 2 / mu ** p) / max(np.sum(wt), 1e-300))
        return {"phi": float(np.clip(phi, 1e-4, 1e4)), "power": p}

    def start_family(self):
        return Poisson(link=self.link.name)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        bad = np.flatnonzero(y < 0)
        if bad.size:
            raise InputError(f"tweedie response {column!r} must be non-negative; row {_label(rows, bad[0])!r} "
                             f"has {float(y[bad[0]]):g}")

    def mustart(self, y, wt):
        return y + 0.1 * np.mean(y) + 1e-3

    def saturated_mean(self, y):
        return np.maximum(np.asarray(y, dtype=float), 1e-10)

    def simulate(self, mu, wt, rng):
        # compound Poisson-gamma: N ~ Poisson(lambda), y = Gamma(N (2-p)/(p-1), phi (p-1) mu^(p-1))
        phi, p = self.values["phi"], self.values["power"]
        mu = np.asarray(mu, dtype=float)
        lam = mu ** (2 - p) / (phi * (2 - p))
        n = rng.poisson(lam)
        shape = n * (2 - p) / (p - 1)
        scale = phi * (p - 1) * mu ** (p - 1)
        out = np.zeros_like(mu)
        pos = n > 0
        out[pos] = rng.gamma(shape[pos], scale[pos] if np.ndim(scale) else scale)
        return out


def _tweedie_log_w(y, phi, p):
    """log W(y, phi, p) of Dunn & Smyth's series (module docstring) by rows, with its derivatives in log phi
    and in psi = logit(p - 1), over a window of terms around the largest one wide enough that the terms
    left out are below e^-37 of it.

    With t_j = j log z - lgamma(1 + j) - lgamma(-j alpha) and w_j the terms' shares,
    d log W = sum_j w_j d t_j:  d t_j / d log phi = -j (1 - alpha);
    d t_j / d p = j (d log z / d p + psi(-j alpha) d alpha / d p),  d alpha / d p = 1 / (1 - p)^2,
    d log z / d p = d alpha / d p (log(p - 1) + log phi - log y) + alpha / (p - 1) + 1 / (2 - p).
    """
    alpha = (2 - p) / (1 - p)
    logz = -alpha * np.log(y) + alpha * np.log(p - 1) - (1 - alpha) * np.log(phi) - np.log(2 - p)
    jstar = np.maximum(np.rint(y ** (2 - p) / (phi * (2 - p))), 1.0)

    def log_terms(j):
        return j * logz[:, None] - special.gammaln(1 + j) - special.gammaln(-j * alpha)

    # the terms are log-concave in j: widen the window until its edges are negligible
    half = int(np.ceil(6 * np.sqrt(np.max(jstar)) + 10))
    while True:
        j = jstar[:, None] + np.arange(-half, half + 1)[None, :]
        valid = j >= 1
        j = np.maximum(j, 1.0)
        lt = np.where(valid, log_terms(j), -np.inf)
        top = np.max(lt, axis=1)
        edge = np.maximum(np.where(valid[:, 0], lt[:, 0], -np.inf), lt[:, -1])
        if np.all(edge < top - 37) or half > 1e6:
            break
        half *= 2
    w = np.exp(lt - top[:, None])
    total = np.sum(w, axis=1)
    w /= total[:, None]
    ej = np.sum(w * j, axis=1)  # E_w[j]
    dalpha = 1 / (1 - p) ** 2
    dlogz = dalpha * (np.log(p - 1) + np.log(phi) - np.log(y)) + alpha / (p - 1) + 1 / (2 - p)
    d_logphi = -(1 - alpha) * ej
    d_p = dlogz * ej + dalpha * np.sum(w * j * special.digamma(-j * alpha), axis=1)
    return top + np.log(total), d_logphi, d_p * (p - 1) * (2 - p)
