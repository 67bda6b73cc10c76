"""Cumulative-link ordinal responses (ordinal::clmm's model) as a family of the engine.

For a response with categories 1..J and the linear predictor eta (no intercept: the thresholds hold it),

    P(Y <= j) = F(theta_j - eta),   theta_1 < ... < theta_{J-1},   F = logistic or standard normal,

so an observation in category y contributes log p, p = F(a) - F(c), a = theta_y - eta, c = theta_{y-1} - eta
(theta_0 = -inf, theta_J = +inf).  With f = F' and f' = F'':

    d log p / d eta      = -(f(a) - f(c)) / p
    -d^2 log p / d eta^2 = ((f(a) - f(c)) / p)^2 - (f'(a) - f'(c)) / p   (> 0: F is log-concave)

The family's "mean" is eta itself (identity link): the engine's PIRLS, Laplace and gradients see eta, and
the family answers in it.  The thresholds are the family's own parameters, searched unconstrained as
psi = (theta_1, log(theta_2 - theta_1), ..., log(theta_{J-1} - theta_{J-2})), so they stay ordered.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ..errors import InputError
from .core import Family, Gaussian, _label
from .mean_family import difference_gradient_terms, difference_param_terms, difference_variance_deriv

_Z95 = 1.959964
CDFS = ("logit", "probit")


def _cdf_terms(cdf: str, x: np.ndarray):
    """(F, f, f') of the latent distribution at x (infinite x gives 0 or 1, 0, 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if cdf == "logit":
            F = special.expit(x)
            f = F * (1.0 - F)
            d = f * (1.0 - 2.0 * F)
        else:
            F = special.ndtr(x)
            f = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
            d = -x * f
    inf = ~np.isfinite(x)
    f = np.where(inf, 0.0, f)
    d = np.where(inf, 0.0, d)
    return F, f, d


class CumulativeLink(Family):
    """Cumulative-link model for ordered categories 1..J (``gk.clmm``).

    Parameters
    ----------
    n_categories : int
        J, the number of categories (at least 2).
    cdf : {"logit", "probit"}
        The latent distribution (ordinal's ``link``).
    thresholds : array-like, optional
        theta_1 < ... < theta_{J-1} (default: equally spaced around 0).
    """

    name = "ordinal"
    default_link = "identity"
    links = ("identity",)
    dispersion_name = None
    dispersion_scales = False
    exponential_family = False
    default_laplace = "observed"
    expected_information_exact = False

    def __init__(self, n_categories: int, cdf: str = "logit", thresholds=None):
        if int(n_categories) != n_categories or n_categories < 2:
            raise InputError(f"an ordinal response needs at least 2 categories, got {n_categories!r}")
        if cdf not in CDFS:
            raise InputError(f"clmm's link must be one of {CDFS}, got {cdf!r}")
        super().__init__("identity")
        self.n_categories = int(n_categories)
        self.cdf = cdf
        th = (np.arange(1, self.n_categories) - self.n_categories / 2.0 if thresholds is None
              else np.asarray(thresholds, dtype=float))
        if th.shape != (self.n_categories - 1,) or not np.all(np.diff(th) > 0) or not np.all(np.isfinite(th)):
            raise InputError(f"thresholds must be {self.n_categories - 1} increasing finite numbers, got {th}")
        self.thresholds = th
        self.labels = [str(j) for j in range(1, self.n_categories + 1)]

    # ---- thresholds as the family's parameters --------------------------------------------
    def threshold_names(self) -> list[str]:
        """ordinal's names of the thresholds, ``"1|2"``, ``"2|3"``, ...

        Returns
        -------
        list of str
            J - 1 names (the category labels when set).
        """
        return [f"{a}|{b}" for a, b in zip(self.labels[:-1], self.labels[1:])]

    def param_names(self):
        return ["threshold 1"] + [f"log(threshold {j + 1} - threshold {j})" for j in range(1, self.n_categories - 1)]

    @property
    def params(self):
        return np.concatenate([[self.thresholds[0]], np.log(np.diff(self.thresholds))])

    def with_params(self, psi):
        psi = np.asarray(psi, dtype=float)
        fam = CumulativeLink.__new__(CumulativeLink)
        fam.__dict__.update(self.__dict__)
        fam.thresholds = psi[0] + np.concatenate([[0.0], np.cumsum(np.exp(psi[1:]))])
        return fam

    def params_start(self, y, mu, wt):
        # the marginal cumulative proportions on the latent scale, moved by the start's mean eta
        counts = np.bincount(np.asarray(y, dtype=int) - 1, weights=wt, minlength=self.n_categories)
        cum = np.cumsum(counts)[:-1] / counts.sum()
        cum = np.clip(cum, 1e-4, 1 - 1e-4)
        q = special.logit(cum) if self.cdf == "logit" else special.ndtri(cum)
        q = np.maximum.accumulate(q + np.arange(len(q)) * 1e-3)
        th = q + float(np.average(mu, weights=wt))
        return self.with_params(np.r_[th[0], np.log(np.maximum(np.diff(th), 1e-3))]).params

    def param_table(self, psi, cov_psi):
        fam = self.with_params(psi)
        m = len(psi)
        # theta_j = psi_0 + sum_{i < j} exp(psi_i): J rows of d theta / d psi
        J = np.zeros((m, m))
        J[:, 0] = 1.0
        for j in range(1, m):
            J[j, 1 : j + 1] = np.exp(psi[1 : j + 1])
        cov = J @ cov_psi @ J.T if cov_psi is not None else None
        rows = []
        for j, (nm, est) in enumerate(zip(fam.threshold_names(), fam.thresholds)):
            se = float(np.sqrt(cov[j, j])) if cov is not None and cov[j, j] >= 0 else np.nan
            rows.append((nm, float(est), se, float(est - _Z95 * se), float(est + _Z95 * se)))
        return rows

    def start_family(self):
        # the fixed effects' start: a least-squares line through the category scores (the thresholds
        # absorb its level: ``params_start``)
        return Gaussian()

    # ---- the log-likelihood and its eta-derivatives ---------------------------------------
    def _bounds(self, y):
        th = np.concatenate([[-np.inf], self.thresholds, [np.inf]])
        yi = np.asarray(y, dtype=int)
        return th[yi], th[yi - 1]

    def _terms(self, y, eta):
        up, lo = self._bounds(y)
        eta = np.asarray(eta, dtype=float)
        Fa, fa, da = _cdf_terms(self.cdf, up - eta)
        Fc, fc, dc = _cdf_terms(self.cdf, lo - eta)
        if self.cdf == "logit":
            # p from the upper tail where both points are far right (no cancellation of 1 - 1)
            p = np.where(lo - eta > 0, special.expit(-(lo - eta)) - special.expit(-(up - eta)), Fa - Fc)
        else:
            p = np.where(lo - eta > 0, special.ndtr(-(lo - eta)) - special.ndtr(-(up - eta)), Fa - Fc)
        return np.maximum(p, 1e-300), fa - fc, da - dc

    def category_probabilities(self, eta) -> np.ndarray:
        """P(Y = j | eta) for every category.

        Parameters
        ----------
        eta : numpy.ndarray
            (n,) linear predictors.

        Returns
        -------
        numpy.ndarray
            (n, J), rows summing to 1.
        """
        cum = self.cumulative_probabilities(eta)
        return np.diff(np.column_stack([np.zeros(len(cum)), cum, np.ones(len(cum))]), axis=1)

    def cumulative_probabilities(self, eta) -> np.ndarray:
        """P(Y <= j | eta) for j = 1..J-1.

        Parameters
        ----------
        eta : numpy.ndarray
            (n,) linear predictors.

        Returns
        -------
        numpy.ndarray
            (n, J - 1).
        """
        x = self.thresholds[None, :] - np.asarray(eta, dtype=float)[:, None]
        return special.expit(x) if self.cdf == "logit" else special.ndtr(x)

    def loglik_kernel(self, y, mu, wt):
        p, _, _ = self._terms(y, mu)
        return wt * np.log(p)

    def loglik_const(self, y, wt):
        return np.zeros(len(y))

    def unit_deviance(self, y, mu, wt):
        return -2.0 * self.loglik_kernel(y, mu, wt)

    def score_eta(self, y, eta, mu, wt):
        p, df, _ = self._terms(y, eta)
        return -wt * df / p

    def observed_weights(self, y, eta, mu, wt):
        p, df, dd = self._terms(y, eta)
        r = df / p
        return wt * (r * r - dd / p)

    def working_weights(self, eta, mu, wt):
        # Fisher's information: sum_j (f(theta_j - eta) - f(theta_{j-1} - eta))^2 / p_j
        x = np.column_stack([np.full(len(eta), -np.inf), self.thresholds[None, :] - np.asarray(eta)[:, None],
                             np.full(len(eta), np.inf)])
        F, f, _ = _cdf_terms(self.cdf, x)
        p = np.maximum(np.diff(F, axis=1), 1e-300)
        return wt * np.sum(np.diff(f, axis=1) ** 2 / p, axis=1)

    def stepping_weights_and_score(self, y, eta, mu, wt):
        p, df, dd = self._terms(y, eta)
        r = df / p
        return wt * (r * r - dd / p), -wt * r

    def stepping_weights(self, y, eta, mu, wt):
        return self.stepping_weights_and_score(y, eta, mu, wt)[0]

    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return difference_gradient_terms(self, y, eta, mu, wt, laplace)

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return difference_param_terms(self, y, eta, mu, wt, laplace)

    # ---- moments, support, simulation -----------------------------------------------------
    def response_mean(self, mu):
        return self.category_probabilities(mu) @ np.arange(1, self.n_categories + 1)

    def variance(self, mu):
        P = self.category_probabilities(mu)
        j = np.arange(1, self.n_categories + 1)
        return P @ (j * j) - (P @ j) ** 2

    def variance_deriv(self, mu):
        return difference_variance_deriv(self, mu)

    def response_variance(self, mu, wt):
        return self.variance(mu) / wt

    def latent_variance(self, lam=None):
        return np.pi ** 2 / 3 if self.cdf == "logit" else 1.0

    def mustart(self, y, wt):
        return np.asarray(y, dtype=float)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        bad = np.flatnonzero((y != np.rint(y)) | (y < 1) | (y > self.n_categories))
        if bad.size:
            raise InputError(f"ordinal response {column!r} must be a category 1..{self.n_categories}; row "
                             f"{_label(rows, bad[0])!r} has {y[bad[0]]!r}")

    def simulate(self, mu, wt, rng):
        # the category is one more than the number of thresholds below the latent draw eta + e
        mu = np.asarray(mu, dtype=float)
        e = rng.logistic(size=mu.shape) if self.cdf == "logit" else rng.standard_normal(mu.shape)
        return 1.0 + np.sum((mu + e)[..., None] > self.thresholds, axis=-1)

    def __repr__(self):
        return f"CumulativeLink(J={self.n_categories}, cdf={self.cdf!r})"
