"""Further count families of glmmTMB: generalized Poisson, Conway-Maxwell-Poisson, and the zero-truncated
Poisson, NB1 and NB2 (the count part of a hurdle model, with ``ziformula`` for the zeros).

Generalized Poisson (glmmTMB's ``genpois``), with s = sqrt(phi), theta = mu / s and lambda = 1 - 1 / s:

    log p(y) = log theta + (y - 1) log(theta + lambda y) - theta - lambda y - lgamma(y + 1),
    E y = mu,  Var y = phi mu.

Conway-Maxwell-Poisson in its mean form (glmmTMB's ``compois``), nu = 1 / phi:

    log p(y) = y log lambda - nu lgamma(y + 1) - log Z(lambda, nu),   Z = sum_j lambda^j / (j!)^nu,

with log lambda solved per row from E y = mu.  As log lambda is the natural parameter, d l / d log lambda =
y - mu and d mu / d log lambda = Var y, so

    d l / d mu = (y - mu) / V,    d^2 l / d mu^2 = -1 / V - (y - mu) k3 / V^3

with V and k3 the variance and third cumulant (series sums over the support, vectorised over rows).

Zero truncation of a count family f with P0 = f(0 | mu), a = log P0 and g(a) = log(1 - e^a):

    log p(y) = log f(y) - g(a)  (y >= 1),
    d l / d eta = r_f - g'(a) a',     -d^2 l / d eta^2 = W_f + g''(a) a'^2 + g'(a) a'',
    g'(a) = -1 / expm1(-a),  g''(a) = -e^-a / expm1(-a)^2,

with a' and a'' the derivatives in eta of the log link: Poisson a = -mu; NB2 a = -theta log(1 + mu / theta);
NB1 a = -(mu / phi) log(1 + phi).
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special, stats

from ..errors import InputError
from .core import Family, NegativeBinomial1, NegativeBinomial2, Poisson, _label, check_counts
from .mean_family import (MeanFamily, difference_gradient_terms, difference_param_terms,
                          difference_variance_deriv)


class GeneralizedPoisson(MeanFamily):
    """glmmTMB's ``genpois()``: counts with Var y = phi mu (phi < 1 under-, phi > 1 overdispersed).

    Parameters
    ----------
    link : str, optional
        "log" (default).
    phi : float, optional
        Hold the dispersion fixed.
    """

    name = "genpois"
    default_link = "log"
    links = ("log",)
    param_spec = (("phi", "log", 1.0),)

    def __init__(self, link=None, phi=None):
        super().__init__(link, phi=phi)

    def _theta_t(self, y, mu):
        s = np.sqrt(self.values["phi"])
        theta = mu / s
        return s, theta, theta + (1 - 1 / s) * y

    def variance(self, mu):
        return self.values["phi"] * mu

    def loglik_kernel(self, y, mu, wt):
        s, theta, t = self._theta_t(y, mu)
        with np.errstate(invalid="ignore", divide="ignore"):
            # theta + lambda y must stay positive (lambda < 0 bounds the support when phi < 1)
            val = np.log(theta) + special.xlogy(y - 1, t) - theta
        return wt * np.where(t > 0, val, -np.inf)

    def loglik_const(self, y, wt):
        lam = 1 - 1 / np.sqrt(self.values["phi"])
        return wt * (-lam * y - special.gammaln(y + 1))

    def mu_derivatives(self, y, mu, wt):
        s, theta, t = self._theta_t(y, mu)
        l_t = 1 / theta + (y - 1) / t - 1
        l_tt = -1 / theta ** 2 - (y - 1) / t ** 2
        return wt * l_t / s, wt * l_tt / (s * s)

    def mu_information(self, mu, wt):
        return wt / (self.values["phi"] * mu)

    def start_values(self, y, mu, wt):
        return {"phi": float(np.clip(np.sum(wt * (y - mu) ** 2 / mu) / max(np.sum(wt), 1), 0.2, 1e3))}

    def start_family(self):
        return Poisson(link=self.link.name)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        check_counts(y, column, self.name, rows)

    def mustart(self, y, wt):
        return y + 0.1

    def saturated_mean(self, y):
        # theta + lambda y > 0 at mu = y whatever phi: the saturated value is l(y | mu = y)
        return np.maximum(np.asarray(y, dtype=float), 1e-10)

    def pmf_log(self, k, mu):
        """log p(k | mu) for a grid of counts k (broadcast with mu): the sampler's inversion table.

        Parameters
        ----------
        k, mu : numpy.ndarray
            Counts and means.

        Returns
        -------
        numpy.ndarray
            The log-probabilities (-inf outside the support).
        """
        return self.loglik(k, mu, np.ones_like(k * mu))

    def simulate(self, mu, wt, rng):
        return _invert(self.pmf_log, np.asarray(mu, dtype=float), rng, self.values["phi"])


def _invert(pmf_log, mu, rng, spread, with_rows: bool = False):
    """Draws by inversion: u ~ U(0, 1), the smallest k with F(k) >= u, walking k = 0, 1, ... over all rows
    at once (a loop over counts, not rows) until every row has its draw (``with_rows``: pmf_log also takes
    the mask of the rows asked, for a parameter per row)."""
    u = rng.uniform(size=mu.shape)
    out = np.full(mu.shape, -1.0)
    cdf = np.zeros(mu.shape)
    k_max = int(np.max(mu + 40 * np.sqrt(spread * mu + 1) + 50)) if mu.size else 0
    for k in range(k_max + 1):
        open_ = out < 0
        if not open_.any():
            break
        k_rows = np.full(int(open_.sum()), float(k))
        cdf[open_] += np.exp(pmf_log(k_rows, mu[open_], open_) if with_rows else pmf_log(k_rows, mu[open_]))
        hit = open_.copy()
        hit[open_] = cdf[open_] >= u[open_]
        out[hit] = k
    out[out < 0] = k_max  # mass beyond 40 standard deviations
    return out


class ConwayMaxwellPoisson(MeanFamily):
    """glmmTMB's ``compois()``: counts with nu = 1 / phi (phi > 1 over-, phi < 1 underdispersed).

    The normalising series runs over a window of counts around the mean wide enough for terms down to
    e^-40 of the largest (the module docstring).

    Parameters
    ----------
    link : str, optional
        "log" (default).
    phi : float, optional
        Hold the dispersion fixed.
    """

    name = "compois"
    #: the largest mean the series is summed for (its window grows with the mean)
    MAX_MEAN = 1e4
    default_link = "log"
    links = ("log",)
    param_spec = (("phi", "log", 1.0),)

    def __init__(self, link=None, phi=None):
        super().__init__(link, phi=phi)
        self._cache = (None, None)

    def with_params(self, psi):
        fam = super().with_params(psi)
        fam._cache = (None, None)
        return fam

    def _nu_rows(self, shape) -> np.ndarray:
        """nu = 1 / phi per element of a mean array of this shape (phi is one number, or one per row under
        a dispersion model)."""
        return np.broadcast_to(1.0 / np.asarray(self.values["phi"], dtype=float), shape).ravel()

    def _window(self, mu, nu, widen=1.0):
        """Per row a window of counts around the mean wide enough for terms down to about e^-40, laid end
        to end (row index, count) with each row's start: the series costs what each row needs (``widen``:
        a factor per row on the half-width, for rows whose tail the first window cut)."""
        m1 = np.maximum(mu, 1.0)
        sd = np.sqrt(m1 / np.minimum(nu, 1.0))
        # Var y ~ mu / nu holds for large means; as nu -> 0 the law tends to the geometric (Var = mu (1 + mu),
        # term ratio lambda ~ mu / (1 + mu) at most), whose terms fall below e^-40 within 40 (1 + mu) counts:
        # without this bound the window grew as nu^-1/2 and a fit running to nu -> 0 (a dispersion model at its
        # boundary) slowed without end
        half = np.ceil(widen * (np.minimum(9 * sd, 40 * (1 + m1)) + 15)).astype(np.int64)
        lo = np.maximum(np.floor(mu).astype(np.int64) - half, 0)
        width = np.floor(mu).astype(np.int64) + half + 1 - lo
        starts = np.concatenate([[0], np.cumsum(width)[:-1]])
        row = np.repeat(np.arange(mu.size), width)
        j = (lo[row] + np.arange(row.size) - starts[row]).astype(float)
        return row, starts, j

    @staticmethod
    def _row_sums(w, starts):
        return np.add.reduceat(w, starts)

    def _weights(self, loglam, nu, row, starts, j, lgj):
        """Normalised series terms per (row, count) and log Z per row."""
        logw = loglam[row] * j - nu[row] * lgj
        m = np.maximum.reduceat(logw, starts)
        w = np.exp(logw - m[row])
        z = self._row_sums(w, starts)
        return w / z[row], np.log(z) + m

    def _moments(self, mu, nu=None):
        """(log lambda, log Z, V, k3) per row, log lambda solved by Newton's method from E y = mu (nu per
        element of mu: ``_nu_rows``)."""
        mu = np.asarray(mu, dtype=float)
        if nu is None:
            nu = self._nu_rows(mu.shape)
        key = (nu.tobytes(), mu.shape, mu.tobytes()) if mu.size < 200_000 else None
        if key is not None and self._cache[0] == key:
            return self._cache[1]
        ok = np.isfinite(mu) & (mu > 0) & (mu < self.MAX_MEAN)
        if not np.all(ok):
            # a mean the series cannot take (a PIRLS probe far out): no density there (-inf kernel)
            out = tuple(np.full(mu.shape, np.nan) for _ in range(4))
            if np.any(ok):
                inner = self._moments(mu[ok], nu[ok.ravel()])
                for a, v in zip(out, inner):
                    a[ok] = v
            return out
        flat = mu.ravel()
        nu = np.broadcast_to(nu, flat.shape)
        res = [np.empty(flat.size) for _ in range(4)]
        idx, widen = np.arange(flat.size), np.ones(flat.size)
        for _ in range(8):
            # a row whose solved series still has mass at its window's end (a heavy right tail at small nu and
            # moderate means: 9 SDs are not enough there) is solved again on twice the window, until none is cut
            part, cut = self._solve(flat[idx], nu[idx], widen[idx])
            for a, v in zip(res, part):
                a[idx] = v
            idx = idx[cut]
            if not idx.size:
                break
            widen[idx] *= 2
        out = tuple(a.reshape(mu.shape) for a in res)
        if key is not None:
            self._cache = (key, out)
        return out

    def _solve(self, flat, nu, widen):
        """(log lambda, log Z, V, k3) on the windows ``_window(flat, nu, widen)``, and the rows whose window cut
        the series (mass above 1e-12 at its last count)."""
        row, starts, j = self._window(flat, nu, widen)
        lgj = special.gammaln(j + 1)
        # start: the asymptotic mean lambda^(1/nu) - (nu - 1) / (2 nu) for large means, lambda = mu for small
        # ones (Z ~ 1 + lambda); E y is increasing in log lambda with slope Var y: Newton's steps, capped
        big = flat + (nu - 1) / (2 * nu)
        loglam = np.where((flat > 2) & (big > 1), nu * np.log(np.maximum(big, 1e-300)),
                          np.log(flat) - np.log1p(flat) * (1 - np.minimum(nu, 1.0)))
        ends = np.concatenate([starts[1:], [j.size]]) - 1
        prev = None
        halved = np.zeros(flat.size, dtype=int)
        self.newton_iterations = 0
        for _ in range(200):
            p, _ = self._weights(loglam, nu, row, starts, j, lgj)
            # a step past the root makes the series heavy beyond the window (its mean then looks too small):
            # such rows go back halfway to their last value; a row still heavy after 40 halvings has a window
            # too narrow even where it started, and is left to the caller's wider window (``_moments``)
            over = p[ends] > 1e-12
            back = over & (halved < 40) if prev is not None else np.zeros_like(over)
            if np.any(back):
                loglam = np.where(back, 0.5 * (loglam + prev), loglam)
                halved += back
                continue
            mean = self._row_sums(p * j, starts)
            dev = j - mean[row]
            var = np.maximum(self._row_sums(p * dev * dev, starts), 1e-300)
            gap = flat - mean
            self.newton_iterations += 1
            if np.all((np.abs(gap) <= 1e-12 * np.maximum(flat, 1.0)) | (halved >= 40)):
                break
            prev = loglam.copy()
            loglam = loglam + np.clip(gap / var, -2, 2)
        p, logz = self._weights(loglam, nu, row, starts, j, lgj)
        mean = self._row_sums(p * j, starts)
        dev = j - mean[row]
        var = np.maximum(self._row_sums(p * dev * dev, starts), 1e-300)
        k3 = self._row_sums(p * dev ** 3, starts)
        return (loglam, logz, var, k3), p[ends] > 1e-12

    def variance(self, mu):
        return self._moments(mu)[2]

    def loglik_kernel(self, y, mu, wt):
        loglam, logz, _, _ = self._moments(mu)
        val = wt * (y * loglam - logz)
        return np.where(np.isfinite(val), val, -np.inf)

    def loglik_const(self, y, wt):
        return -wt * special.gammaln(y + 1) / np.asarray(self.values["phi"], dtype=float)

    def mu_derivatives(self, y, mu, wt):
        _, _, v, k3 = self._moments(mu)
        return wt * (y - mu) / v, -wt * (1 / v + (y - mu) * k3 / v ** 3)

    def mu_information(self, mu, wt):
        return wt / self._moments(mu)[2]

    def start_values(self, y, mu, wt):
        return {"phi": float(np.clip(np.sum(wt * (y - mu) ** 2 / mu) / max(np.sum(wt), 1), 0.2, 20))}

    def start_family(self):
        return Poisson(link=self.link.name)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        check_counts(y, column, self.name, rows)

    def mustart(self, y, wt):
        return y + 0.1

    def saturated_mean(self, y):
        return np.maximum(np.asarray(y, dtype=float), 1e-10)

    def simulate(self, mu, wt, rng):
        mu = np.asarray(mu, dtype=float)
        fam = self

        nu_all = self._nu_rows(mu.shape).reshape(mu.shape)

        def pmf_log(k, m, rows):
            nu = nu_all[rows]
            loglam, logz, _, _ = fam._moments(m, nu.ravel())
            return k * loglam - special.gammaln(k + 1) * nu - logz

        return _invert(pmf_log, mu, rng, float(np.max(1.0 / nu_all)) if mu.size else 1.0, with_rows=True)


class ZeroTruncated(Family):
    """A count family conditioned on y >= 1 (the module docstring); the count part of a hurdle model.

    Parameters
    ----------
    base : Family
        Poisson, NB2 or NB1 with the log link.
    """

    exponential_family = False
    default_laplace = "observed"
    dispersion_scales = False
    expected_information_exact = False

    def __init__(self, base: Family):
        if base.name not in ("poisson", "nbinom2", "nbinom1") or base.link.name != "log":
            raise InputError(f"zero truncation is available for poisson, nbinom1 and nbinom2 with the log link, "
                             f"not {base.name} ({base.link.name})")
        self.base = base
        self.link = base.link
        self.name = f"truncated_{base.name}"
        self.dispersion_name = base.dispersion_name
        self.dispersion = base.dispersion
        #: set by ZeroInflated for a hurdle model: zeros are then the zero model's
        self.hurdle = False

    # ---- the base's parameters -------------------------------------------------------------
    def param_names(self):
        return self.base.param_names()

    @property
    def params(self):
        return self.base.params

    def params_start(self, y, mu, wt):
        return self.base.params_start(y, mu, wt)

    def with_params(self, psi):
        fam = copy.copy(self)
        fam.base = self.base.with_params(psi)
        fam.dispersion = fam.base.dispersion
        return fam

    def with_dispersion(self, value):
        fam = copy.copy(self)
        fam.base = self.base.with_dispersion(value)
        fam.dispersion = fam.base.dispersion
        return fam

    def param_table(self, psi, cov_psi):
        return self.base.param_table(psi, cov_psi)

    def start_family(self):
        return self.base.start_family()

    # ---- log P0 and its derivatives in eta --------------------------------------------------
    def log_p0(self, mu):
        """a = log f(0 | mu) with a' and a'' (derivatives in eta of the log link).

        Parameters
        ----------
        mu : numpy.ndarray
            Means of the untruncated family.

        Returns
        -------
        tuple
            (a, a', a'').
        """
        b = self.base
        if b.name == "poisson":
            return -mu, -mu, -mu
        if b.name == "nbinom2":
            th = b.dispersion
            p = mu / (th + mu)
            return -th * np.log1p(mu / th), -th * p, -th * p * (1 - p)
        a = -(mu / b.dispersion) * np.log1p(b.dispersion)
        return a, a, a

    @staticmethod
    def _g(a):
        """g(a) = log(1 - e^a), g'(a) and g''(a)."""
        em = np.expm1(-a)  # e^-a - 1 > 0
        return np.log(-np.expm1(a)), -1 / em, -np.exp(-a) / (em * em)

    def truncation_prob(self, mu):
        """P(y >= 1 | mu) of the untruncated family.

        Parameters
        ----------
        mu : numpy.ndarray
            Means.

        Returns
        -------
        numpy.ndarray
            1 - f(0 | mu).
        """
        return -np.expm1(self.log_p0(mu)[0])

    # ---- likelihood ----------------------------------------------------------------------------
    def loglik_kernel(self, y, mu, wt):
        g, _, _ = self._g(self.log_p0(mu)[0])
        val = self.base.loglik_kernel(y, mu, wt) - wt * g
        return np.where(y >= 1, val, -np.inf)

    def loglik_const(self, y, wt):
        return self.base.loglik_const(y, wt)

    def loglik_const_sum(self, y, wt, unique=None):
        return self.base.loglik_const_sum(y, wt, unique)

    def unit_deviance(self, y, mu, wt):
        """-2 log p (the truncated family has no closed-form saturated model)."""
        return -2 * self.loglik(y, mu, wt)

    def score_eta(self, y, eta, mu, wt):
        a, a1, _ = self.log_p0(mu)
        _, g1, _ = self._g(a)
        return self.base.score_eta(y, eta, mu, wt) - wt * g1 * a1

    def observed_weights(self, y, eta, mu, wt):
        a, a1, a2 = self.log_p0(mu)
        _, g1, g2 = self._g(a)
        return self.base.observed_weights(y, eta, mu, wt) + wt * (g2 * a1 * a1 + g1 * a2)

    def working_weights(self, eta, mu, wt):
        return self.base.working_weights(eta, mu, wt)

    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return difference_gradient_terms(self, y, eta, mu, wt, laplace)

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return difference_param_terms(self, y, eta, mu, wt, laplace)

    def stepping_weights(self, y, eta, mu, wt):
        obs = self.observed_weights(y, eta, mu, wt)
        return np.where(obs > 0, obs, self.working_weights(eta, mu, wt))

    def variance(self, mu):
        """Var y of the truncated family: (V + mu^2) / P(y >= 1) - m^2, m = mu / P(y >= 1)."""
        pz = self.truncation_prob(mu)
        m = mu / pz
        return (self.base.variance(mu) + mu * mu) / pz - m * m

    def variance_deriv(self, mu):
        return difference_variance_deriv(self, mu)

    def response_mean(self, mu):
        return mu / self.truncation_prob(mu)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        check_counts(y, column, self.name, rows)
        if not self.hurdle:
            zero = np.flatnonzero(y < 1)
            if zero.size:
                raise InputError(f"{self.name} response {column!r} must be positive counts (the family is "
                                 f"truncated at zero); row {_label(rows, zero[0])!r} has 0. For a hurdle model "
                                 f"give ziformula='~1' (the zeros' own model), or drop the zeros")

    def mustart(self, y, wt):
        return np.maximum(y - 0.5, 0.1)

    def simulate(self, mu, wt, rng):
        # inversion above the zero: u ~ U(P0, 1), the base's quantile
        mu = np.asarray(mu, dtype=float)
        p0 = np.exp(self.log_p0(mu)[0])
        u = p0 + rng.uniform(size=mu.shape) * (1 - p0)
        b = self.base
        if b.name == "poisson":
            k = stats.poisson.ppf(u, mu)
        elif b.name == "nbinom2":
            k = stats.nbinom.ppf(u, b.dispersion, b.dispersion / (b.dispersion + mu))
        else:
            k = stats.nbinom.ppf(u, mu / b.dispersion, 1 / (1 + b.dispersion))
        return np.maximum(k, 1.0)

    def latent_variance(self, lam=None):
        return self.base.latent_variance(lam)

    @property
    def latent_needs_mean(self):
        return self.base.latent_needs_mean

    def __repr__(self):
        return f"ZeroTruncated({self.base!r})"


class TruncatedPoisson(ZeroTruncated):
    """glmmTMB's ``truncated_poisson()``: Poisson counts conditioned on y >= 1.

    Parameters
    ----------
    link : str, optional
        "log" (the only link).
    """

    def __init__(self, link=None):
        super().__init__(Poisson(link=link or "log"))


class TruncatedNB2(ZeroTruncated):
    """glmmTMB's ``truncated_nbinom2()``: NB2 counts conditioned on y >= 1 (size theta).

    Parameters
    ----------
    link : str, optional
        "log" (the only link).
    """

    def __init__(self, link=None):
        super().__init__(NegativeBinomial2(link=link or "log"))


class TruncatedNB1(ZeroTruncated):
    """glmmTMB's ``truncated_nbinom1()``: NB1 counts conditioned on y >= 1 (dispersion phi).

    Parameters
    ----------
    link : str, optional
        "log" (the only link).
    """

    def __init__(self, link=None):
        super().__init__(NegativeBinomial1(link=link or "log"))
