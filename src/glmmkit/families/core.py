"""Response distributions of a GLMM.

A family knows its variance function V(mu), unit deviance, conditional
log-likelihood log p(y | mu, phi), how to check a response, and how to
simulate.  Families with a free dispersion parameter (Gaussian with a
non-identity link, Gamma, inverse Gaussian) carry it as ``dispersion``; the
engine estimates it as an extra parameter of the outer optimisation and
scales the PIRLS weights by ``1 / scale`` where ``scale`` is phi.

For prior weights ``wt`` the binomial response is the proportion y = k / n with
wt = n; the other families treat ``wt`` as precision weights.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import numpy as np
from scipy import special

from ..links import Link, get_link
from ..errors import InputError

_LOG2PI = np.log(2 * np.pi)
_EPS = float(np.finfo(float).eps)


class Family(ABC):
    """Base class. Subclasses set ``name``, ``default_link`` and ``links``."""

    name = "family"
    default_link = "identity"
    links: tuple[str, ...] = ()
    #: name of the free dispersion parameter, or None when it is fixed at 1
    dispersion_name: str | None = None
    #: True when the dispersion divides the deviance and the weights (Gaussian, Gamma, inverse
    #: Gaussian); False when it shapes the variance instead (negative binomial)
    dispersion_scales: bool = True
    #: the Laplace information glmer uses by default ("expected" as lme4, "observed" as glmmTMB)
    default_laplace = "expected"
    #: the response is a proportion of trials given as weights or cbind(successes, failures)
    trials_response = False

    def __init__(self, link: str | Link | None = None, dispersion: float = 1.0):
        self.link = get_link(link or self.default_link)
        if self.links and self.link.name not in self.links:
            raise InputError(
                f"link {self.link.name!r} is not available for the {self.name} family; "
                f"choose one of {list(self.links)}"
            )
        self.dispersion = float(dispersion)

    # --- the dispersion hook --------------------------------------------
    @property
    def scale(self) -> float:
        """phi: divides the deviance and the PIRLS weights (1 for fixed-dispersion families)."""
        return self.dispersion if (self.dispersion_name and self.dispersion_scales) else 1.0

    def with_dispersion(self, value: float) -> "Family":
        """A copy with the dispersion parameter set.

        Parameters
        ----------
        value : float
            The new value (sigma^2, phi, NB2's theta, NB1's phi).

        Returns
        -------
        Family
            The copy.
        """
        fam = copy.copy(self)
        # one value, or one per row (a dispersion model: dispersion_model.py)
        fam.dispersion = np.asarray(value, dtype=float) if np.ndim(value) else float(value)
        return fam

    def dispersion_start(self, y, mu, wt) -> float:
        """Moment estimate of the dispersion (mean squared Pearson residual).

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, the GLM's means and prior weights.

        Returns
        -------
        float
            The starting value.
        """
        return float(np.sum(wt * (y - mu) ** 2 / self.variance(mu)) / len(y))

    # --- the family's parameters in the outer optimisation (unconstrained scale) ---------
    def param_names(self) -> list[str]:
        """Names of the family's parameters in the outer optimisation (on their unconstrained scale).

        Returns
        -------
        list of str
            E.g. ``["log(theta)"]``; empty for fixed-dispersion families.
        """
        return [f"log({self.dispersion_name})"] if self.dispersion_name else []

    @property
    def params(self) -> np.ndarray:
        """The family's parameters on the unconstrained scale (psi)."""
        return np.log([self.dispersion]) if self.dispersion_name else np.zeros(0)

    def params_start(self, y, mu, wt) -> np.ndarray:
        """Starting psi from the GLM's fit.

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, the GLM's means and prior weights.

        Returns
        -------
        numpy.ndarray
            psi (empty for fixed-dispersion families).
        """
        return np.log([self.dispersion_start(y, mu, wt)]) if self.dispersion_name else np.zeros(0)

    def with_params(self, psi) -> "Family":
        """A copy with the family's parameters set from psi.

        Parameters
        ----------
        psi : numpy.ndarray
            The unconstrained parameters (``param_names``' order).

        Returns
        -------
        Family
            The copy (self when there are none).
        """
        return self.with_dispersion(float(np.exp(psi[0]))) if self.dispersion_name else self

    def response_mean(self, mu):
        """E[y] given the linear predictor's mean (differs from mu only for zero-inflated families).

        Parameters
        ----------
        mu : numpy.ndarray
            The conditional means g^{-1}(eta).

        Returns
        -------
        numpy.ndarray
            The response's expectation.
        """
        return mu

    def param_table(self, psi, cov_psi):
        """Rows for the family's parameters with 95% Wald intervals on the psi scale.

        Parameters
        ----------
        psi : numpy.ndarray
            The estimates on the unconstrained scale.
        cov_psi : numpy.ndarray or None
            Their covariance (None: no standard errors).

        Returns
        -------
        list of tuple
            (name, estimate, std_error, lower, upper) on the natural scale.
        """
        rows = []
        if self.dispersion_name:
            sd = float(np.sqrt(cov_psi[0, 0])) if cov_psi is not None else np.nan
            est = float(np.exp(psi[0]))
            rows.append((self.dispersion_name, est, est * sd, float(np.exp(psi[0] - 1.959964 * sd)),
                         float(np.exp(psi[0] + 1.959964 * sd))))
        return rows

    def start_family(self) -> "Family":
        """The family used for the GLM that gives starting values.

        Returns
        -------
        Family
            This family with unit dispersion (families without a dispersion: itself).
        """
        return self.with_dispersion(1.0) if self.dispersion_name else self

    # --- what subclasses provide ----------------------------------------
    @abstractmethod
    def variance(self, mu: np.ndarray) -> np.ndarray:
        """The variance function V(mu) (the variance is phi V(mu) / wt).

        Parameters
        ----------
        mu : numpy.ndarray
            Means.

        Returns
        -------
        numpy.ndarray
            V(mu).
        """

    @abstractmethod
    def variance_deriv(self, mu: np.ndarray) -> np.ndarray:
        """dV/dmu.

        Parameters
        ----------
        mu : numpy.ndarray
            Means.

        Returns
        -------
        numpy.ndarray
            The derivative of the variance function.
        """

    @abstractmethod
    def unit_deviance(self, y, mu, wt) -> np.ndarray:
        """Deviance residuals squared, d_i (their sum is the deviance at phi = 1).

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, means and prior weights.

        Returns
        -------
        numpy.ndarray
            d_i per observation.
        """

    @abstractmethod
    def loglik_kernel(self, y, mu, wt) -> np.ndarray:
        """The part of log p(y_i | mu_i, phi) that depends on mu (the hot path).

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, means and prior weights.

        Returns
        -------
        numpy.ndarray
            Per observation.
        """

    @abstractmethod
    def loglik_const(self, y, wt) -> np.ndarray:
        """The part of log p(y_i | mu_i, phi) that does not depend on mu (cached by the engine).

        Parameters
        ----------
        y, wt : numpy.ndarray
            Response and prior weights.

        Returns
        -------
        numpy.ndarray
            Per observation.
        """

    def loglik(self, y, mu, wt) -> np.ndarray:
        """log p(y_i | mu_i, phi), per observation.

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, means and prior weights.

        Returns
        -------
        numpy.ndarray
            The log-likelihood of each observation.
        """
        return self.loglik_kernel(y, mu, wt) + self.loglik_const(y, wt)

    def loglik_const_sum(self, y, wt, unique=None) -> float:
        """sum_i loglik_const(y_i, wt_i).

        Parameters
        ----------
        y, wt : numpy.ndarray
            Response and prior weights.
        unique : tuple, optional
            (distinct values of y, their summed weights): families whose constant is wt times a function
            of y alone (Poisson, NB2) then work on the distinct values only.

        Returns
        -------
        float
            The sum.
        """
        return float(np.sum(self.loglik_const(y, wt)))

    def validate(self, y: np.ndarray, wt: np.ndarray, column: str, rows=None) -> None:
        """Refuse a response outside the family's support (InputError naming the row).

        Parameters
        ----------
        y, wt : numpy.ndarray
            Response and prior weights.
        column : str
            The response's name, for the message.
        rows : array-like, optional
            The data's row labels, for the message.
        """
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise InputError(f"response {column!r} has a non-finite value at row {_label(rows, bad[0])!r}")

    def mustart(self, y, wt) -> np.ndarray:
        """Starting means of the GLM (R's ``mustart``).

        Parameters
        ----------
        y, wt : numpy.ndarray
            Response and prior weights.

        Returns
        -------
        numpy.ndarray
            Means inside the family's range.
        """
        return y + 0.1 * (np.mean(y) - y)

    @abstractmethod
    def simulate(self, mu, wt, rng: np.random.Generator) -> np.ndarray:
        """Draw responses with means mu (on the scale of y: proportions for the binomial).

        Parameters
        ----------
        mu, wt : numpy.ndarray
            Means and prior weights (any shape; broadcast together).
        rng : numpy.random.Generator
            The random generator.

        Returns
        -------
        numpy.ndarray
            Draws of the shape of mu.
        """

    # --- derived quantities used by the engine ---------------------------
    def working_weights(self, eta, mu, wt) -> np.ndarray:
        """W = wt (dmu/deta)^2 / (phi V(mu)): Fisher-scoring weights.

        Parameters
        ----------
        eta, mu, wt : numpy.ndarray
            Linear predictor, means and prior weights.

        Returns
        -------
        numpy.ndarray
            The weights.
        """
        d = self.link.mu_eta(eta)
        return wt * d * d / (self.variance(mu) * self.scale)

    def score_eta(self, y, eta, mu, wt) -> np.ndarray:
        """d log p(y | eta) / d eta: wt (y - mu) mu' / (phi V(mu)) for exponential families.

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Response, linear predictor, means and prior weights.

        Returns
        -------
        numpy.ndarray
            The score in eta per observation.
        """
        if self.link.name == self.canonical_link:  # mu' = V(mu)
            return wt * (y - mu) / self.scale
        d = self.link.mu_eta(eta)
        return wt * (y - mu) * d / (self.variance(mu) * self.scale)

    def observed_weights(self, y, eta, mu, wt) -> np.ndarray:
        """-d^2 log p(y | eta) / d eta^2: the observed information (equals W for canonical links).

        W_obs = wt / phi [mu'^2 / V - (y - mu)(mu'' / V - mu'^2 V' / V^2)].

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Response, linear predictor, means and prior weights.

        Returns
        -------
        numpy.ndarray
            The observed information per observation.
        """
        d, d2 = self.link.mu_eta(eta), self.link.mu_eta2(eta)
        v = self.variance(mu)
        return wt / self.scale * (d * d / v - (y - mu) * (d2 / v - d * d * self.variance_deriv(mu) / (v * v)))

    # --- the Laplace gradient's per-observation terms (engine/gradient.py) ------------
    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "expected"):
        """The per-observation derivatives the analytic Laplace gradient needs, or None.

        r = d log p / d eta, the Laplace information W_L (expected or observed) with dW_L / d eta, and the
        observed information W_O (the Hessian of the penalised deviance: it moves the mode).  For the
        expected information of an exponential family, W_L = wt mu'^2 / (phi V) and

            dW_L / d eta = wt / phi (2 mu' mu'' / V - mu'^3 V' / V^2).

        The observed Laplace needs a third derivative: a family that does not give it returns None (the
        derivative-free path).

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Response, linear predictor, means and prior weights at the mode.
        laplace : {"expected", "observed"}
            The Laplace information.

        Returns
        -------
        tuple or None
            (r, W_L, dW_L / d eta, W_O), each (n,).
        """
        if not self.exponential_family:
            return None
        c = wt / self.scale
        if self.link.name == self.canonical_link:  # either information: they agree
            # mu' = V, mu'' = V' V: W = wt V / phi, dW/deta = wt V' V / phi, and W_O = W
            v = self.variance(mu)
            w_l = c * v
            return c * (y - mu), w_l, w_l * self.variance_deriv(mu), w_l
        if laplace != "expected":
            return None
        d, d2 = self.link.mu_eta(eta), self.link.mu_eta2(eta)
        v = self.variance(mu)
        w_l = c * d * d / v
        dw_l = c * (2 * d * d2 / v - d ** 3 * self.variance_deriv(mu) / (v * v))
        w_o = self.observed_weights(y, eta, mu, wt)
        return self.score_eta(y, eta, mu, wt), w_l, dw_l, w_o

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "expected"):
        """Derivatives in the family's own parameters psi (``param_names``) for the Laplace gradient, or None.

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Response, linear predictor, means and prior weights at the mode.
        laplace : {"expected", "observed"}
            The Laplace information.

        Returns
        -------
        list or None
            Per psi: (d log p / d psi, d r / d psi, d W_L / d psi), each (n,); [] without parameters; None
            when the family does not give them (the derivative-free path).
        """
        return [] if not self.param_names() else None

    #: the log-likelihood is an exponential family's in mu (NB1 and zero-inflated mixtures are not)
    exponential_family = True
    #: the link with mu' = V(mu) (logit, log, identity for binomial, Poisson, Gaussian): the expected and
    #: observed informations agree and r = wt (y - mu) / phi.  (Gamma's "inverse" link has mu' = -V.)
    canonical_link: str | None = None

    # --- the hot path of PIRLS (engine/kernels.py dispatches here) ------------------
    #: name of a fast path for this family and link ("logit", "poisson", "nb2"), or None
    @property
    def fast_path(self) -> str | None:
        """The key of this family's fast kernel for its link, or None (the general path).

        Returns
        -------
        str or None
            ``"logit"``, ``"poisson"`` or ``"nb2"`` where ``fast_kernel`` and ``fast_weights`` apply.
        """
        return None

    def fast_kernel(self, eta, y, wt):
        """(sum of the log-likelihood kernel, mu) from eta: the general path here; a family with a fast path
        for its link (canonical or NB2-log) overrides it with fewer transcendental passes.

        Parameters
        ----------
        eta, y, wt : numpy.ndarray
            Linear predictor, response and prior weights.

        Returns
        -------
        tuple
            (float, numpy.ndarray): the kernel's sum and the means.
        """
        mu = self.link.inverse(eta)
        return float(np.sum(self.loglik_kernel(y, mu, wt))), mu

    def fast_weights(self, eta, mu, y, wt, base):
        """(W, W v) with v = base + score / W (the information PIRLS steps with): Fisher weights and the
        score here; a family with a fast path overrides it.

        Parameters
        ----------
        eta, mu, y, wt : numpy.ndarray
            Linear predictor, means, response and prior weights.
        base : numpy.ndarray
            The part of eta the step solves for (Z Lambda u, or Z Lambda u + X beta).

        Returns
        -------
        tuple
            (numpy.ndarray, numpy.ndarray): the weights and the weighted pseudo-data.
        """
        w, score = self.stepping_weights_and_score(y, eta, mu, wt)
        return w, w * base + score

    def stepping_weights_and_score(self, y, eta, mu, wt):
        """(``stepping_weights``, ``score_eta``) together: a family whose two share dear terms computes
        them once.

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Response, linear predictor, means and prior weights.

        Returns
        -------
        tuple
            (weights, score), each (n,).
        """
        return self.stepping_weights(y, eta, mu, wt), self.score_eta(y, eta, mu, wt)

    def for_newdata(self, newdata) -> "Family":
        """The family for new rows (a family with row-wise parts, a zero model or a dispersion model, takes
        them from ``newdata``; the others are the same for every row).

        Parameters
        ----------
        newdata : pandas.DataFrame
            The new rows.

        Returns
        -------
        Family
            This family, or a copy for those rows.
        """
        return self

    def stepping_weights(self, y, eta, mu, wt) -> np.ndarray:
        """The positive information PIRLS and the GLM step with on the general path: Fisher's here.

        A family whose observed information is cheap and mostly positive overrides it (a Newton step where
        the observed information is positive, Fisher's elsewhere: still a descent direction).

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Response, linear predictor, means and prior weights.

        Returns
        -------
        numpy.ndarray
            Positive weights.
        """
        return self.working_weights(eta, mu, wt)

    def response_variance(self, mu, wt) -> np.ndarray:
        """The Pearson residuals' denominator: V(mu) / wt here, as lme4's (a dispersion that scales V is left
        out); a family whose variance involves its own parameters or the weights includes them.

        Parameters
        ----------
        mu, wt : numpy.ndarray
            Means and prior weights.

        Returns
        -------
        numpy.ndarray
            The variance of each response.
        """
        return self.variance(mu) / wt

    #: whether ``working_weights`` is the exact expected information (False: lme4's expected Laplace is not
    #: offered, the observed one is)
    expected_information_exact = True

    # --- the latent (link) scale -----------------------------------------------------
    def latent_variance(self, lam: float | None = None) -> float:
        """The distribution-specific variance on the link scale (Nakagawa, Johnson & Schielzeth 2017).

        The denominator of R^2, the ICC and the phylogenetic heritability, so that the three agree.
        Log-link counts use the lognormal approximation at ``lam``, the mean of the null model
        (``exp`` of its intercept, as R's performance::r2_nakagawa).

        Parameters
        ----------
        lam : float, optional
            The null model's mean on the response scale (needed when ``latent_needs_mean``).

        Returns
        -------
        float
            The variance; InputError where it is not defined for this family and link.
        """
        raise InputError(f"the latent-scale variance is defined for Gaussian (identity), binomial (logit, probit, "
                         f"cloglog) and log-link Poisson, NB2, NB1 and Gamma fits; not for family {self.name!r} "
                         f"with link {self.link.name!r}")

    @property
    def latent_needs_mean(self) -> bool:
        """Whether ``latent_variance`` needs the null model's mean (log-link counts and Gamma).

        Returns
        -------
        bool
            True for log-link Poisson, NB2, NB1 and Gamma.
        """
        return False

    def __repr__(self) -> str:
        extra = f", {self.dispersion_name}={self.dispersion:.4g}" if self.dispersion_name else ""
        return f"{type(self).__name__}(link={self.link.name!r}{extra})"


class Binomial(Family):
    name = "binomial"
    trials_response = True
    canonical_link = "logit"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "log")

    def variance(self, mu):
        return mu * (1 - mu)

    def variance_deriv(self, mu):
        return 1 - 2 * mu

    def unit_deviance(self, y, mu, wt):
        return 2 * wt * (special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu)))

    def loglik_kernel(self, y, mu, wt):
        # mu is kept inside (0, 1) by the links, so plain logs are safe (and 4x faster than xlogy)
        k = y * wt
        return k * np.log(mu) + (wt - k) * np.log1p(-mu)

    def loglik_const(self, y, wt):
        k = y * wt
        return special.gammaln(wt + 1) - special.gammaln(k + 1) - special.gammaln(wt - k + 1)

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        check_proportions(y, column, self.name, rows)

    def mustart(self, y, wt):
        return (wt * y + 0.5) / (wt + 1)

    def simulate(self, mu, wt, rng):
        n = np.rint(wt).astype(np.int64)
        return rng.binomial(n, mu) / np.maximum(n, 1)

    @property
    def fast_path(self):
        return "logit" if self.link.name == "logit" else None

    def fast_kernel(self, eta, y, wt):
        # logit: log p = k eta - wt softplus(eta), one exp and one log1p per row
        z = np.exp(-np.abs(eta))
        mu = np.where(eta >= 0, 1.0, z) / (1.0 + z)
        soft = np.maximum(eta, 0.0) + np.log1p(z)
        ks = float((y * wt) @ eta - wt @ soft)
        return ks, np.clip(mu, _EPS, 1 - _EPS)

    def fast_weights(self, eta, mu, y, wt, base):
        # canonical link: mu' = V(mu), so W = wt mu (1 - mu) and W (y - mu) / mu' = wt (y - mu)
        w = wt * mu * (1.0 - mu)
        return w, w * base + wt * (y - mu)

    def latent_variance(self, lam=None):
        table = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}
        if self.link.name not in table:
            return super().latent_variance(lam)
        return float(table[self.link.name])


class CountFamily(Family):
    """Families of counts: the response must be whole and non-negative."""

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        check_counts(y, column, self.name, rows)

    def mustart(self, y, wt):
        return y + 0.1


class Poisson(CountFamily):
    name = "poisson"
    canonical_link = "log"
    default_link = "log"
    links = ("log", "identity")

    def variance(self, mu):
        return mu

    def variance_deriv(self, mu):
        return np.ones_like(mu)

    def unit_deviance(self, y, mu, wt):
        return 2 * wt * (special.xlogy(y, y / mu) - (y - mu))

    def loglik_kernel(self, y, mu, wt):
        return wt * (y * np.log(mu) - mu)  # mu > 0 always (the links keep it so)

    def loglik_const(self, y, wt):
        return -wt * special.gammaln(y + 1)


    def simulate(self, mu, wt, rng):
        return rng.poisson(mu).astype(float)

    @property
    def fast_path(self):
        return "poisson" if self.link.name == "log" else None

    def fast_kernel(self, eta, y, wt):
        # log link: log p = wt (y eta - exp(eta)), one exp per row
        mu = np.maximum(np.exp(np.minimum(eta, 700.0)), 1e-300)
        return float((wt * y) @ eta - wt @ mu), mu

    def fast_weights(self, eta, mu, y, wt, base):
        w = wt * mu
        return w, w * base + wt * (y - mu)

    @property
    def latent_needs_mean(self):
        return self.link.name == "log"

    def latent_variance(self, lam=None):
        if self.link.name != "log":
            return super().latent_variance(lam)
        return float(np.log1p(1 / _need_mean(lam)))


class Gaussian(Family):
    name = "gaussian"
    canonical_link = "identity"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    dispersion_name = "sigma^2"

    def variance(self, mu):
        return np.ones_like(mu)

    def variance_deriv(self, mu):
        return np.zeros_like(mu)

    def unit_deviance(self, y, mu, wt):
        return wt * (y - mu) ** 2

    def loglik_kernel(self, y, mu, wt):
        return -0.5 * wt * (y - mu) ** 2 / self.dispersion

    def loglik_const(self, y, wt):
        return -0.5 * (_LOG2PI + np.log(self.dispersion / wt))

    def simulate(self, mu, wt, rng):
        return rng.normal(mu, np.sqrt(self.dispersion / wt))

    def latent_variance(self, lam=None):
        if self.link.name != "identity":
            return super().latent_variance(lam)
        return float(self.dispersion)


class PositiveFamily(Family):
    """Families of positive responses (Gamma, inverse Gaussian): the response is checked, the GLM starts at y."""

    def validate(self, y, wt, column, rows=None):
        super().validate(y, wt, column, rows)
        check_positive(y, column, self.name, rows)

    def mustart(self, y, wt):
        return y.copy()


class Gamma(PositiveFamily):
    name = "Gamma"
    default_link = "inverse"
    links = ("inverse", "log", "identity")
    dispersion_name = "phi"

    def variance(self, mu):
        return mu * mu

    def variance_deriv(self, mu):
        return 2 * mu

    def unit_deviance(self, y, mu, wt):
        return -2 * wt * (np.log(y / mu) - (y - mu) / mu)

    def loglik_kernel(self, y, mu, wt):
        a = 1.0 / self.dispersion
        return -wt * a * (y / mu + np.log(mu))

    def loglik_const(self, y, wt):
        a = 1.0 / self.dispersion
        return wt * (a * np.log(a) - special.gammaln(a) + (a - 1) * np.log(y))

    def simulate(self, mu, wt, rng):
        shape = wt / self.dispersion
        return rng.gamma(shape, mu / shape)

    @property
    def latent_needs_mean(self):
        return self.link.name == "log"

    def latent_variance(self, lam=None):
        if self.link.name != "log":
            return super().latent_variance(lam)
        return float(np.log1p(self.dispersion))  # phi = 1 / shape


class InverseGaussian(PositiveFamily):
    name = "inverse.gaussian"
    default_link = "1/mu^2"
    links = ("1/mu^2", "inverse", "log", "identity")
    dispersion_name = "phi"

    def variance(self, mu):
        return mu ** 3

    def variance_deriv(self, mu):
        return 3 * mu * mu

    def unit_deviance(self, y, mu, wt):
        return wt * (y - mu) ** 2 / (y * mu * mu)

    def loglik_kernel(self, y, mu, wt):
        return -(wt / self.dispersion) * (y - mu) ** 2 / (2 * mu * mu * y)

    def loglik_const(self, y, wt):
        lam = wt / self.dispersion
        return 0.5 * (np.log(lam) - _LOG2PI - 3 * np.log(y))

    def simulate(self, mu, wt, rng):
        lam = wt / self.dispersion
        return rng.wald(mu, lam)


class NegativeBinomial2(CountFamily):
    """NB2 (glmmTMB's nbinom2, lme4's glmer.nb): var = mu + mu^2 / theta, theta the size."""

    name = "nbinom2"
    default_link = "log"
    links = ("log",)
    dispersion_name = "theta"
    dispersion_scales = False

    def variance(self, mu):
        return mu + mu * mu / self.dispersion

    def variance_deriv(self, mu):
        return 1 + 2 * mu / self.dispersion

    def unit_deviance(self, y, mu, wt):
        th = self.dispersion
        return 2 * wt * (special.xlogy(y, y / mu) - (y + th) * np.log((y + th) / (mu + th)))

    def loglik_kernel(self, y, mu, wt):
        th = self.dispersion
        return wt * (y * np.log(mu) - (th + y) * np.log(th + mu))

    def loglik_const(self, y, wt):
        th = self.dispersion
        return wt * (special.gammaln(y + th) - special.gammaln(th) - special.gammaln(y + 1) + th * np.log(th))

    def loglik_const_sum(self, y, wt, unique=None):
        if unique is None:
            return super().loglik_const_sum(y, wt)
        vals, wsum = unique
        return float(wsum @ self.loglik_const(vals, np.ones_like(vals)))


    def dispersion_start(self, y, mu, wt) -> float:
        excess = np.sum(wt * ((y - mu) ** 2 - mu))
        th = np.sum(wt * mu * mu) / excess if excess > 0 else 100.0
        return float(np.clip(th, 0.05, 1e4))

    def simulate(self, mu, wt, rng):
        th = self.dispersion
        return rng.negative_binomial(th, th / (th + mu)).astype(float)

    # NB2 in logistic form: with p = mu / (theta + mu) = expit(eta - log theta),
    #   score = y (1 - p) - theta p,   observed information = (y + theta) p (1 - p),   Fisher = theta p
    # (the single-cell kernels sum the same terms over a gene's cells: singlecell/kernels.py)
    @staticmethod
    def logistic_score(y, p, theta):
        """d log p(y) / d eta in the logistic form: y (1 - p) - theta p.

        Parameters
        ----------
        y, p : numpy.ndarray
            Counts and p = mu / (theta + mu).
        theta : float or numpy.ndarray
            The size.

        Returns
        -------
        numpy.ndarray
            The score per count.
        """
        return y * (1 - p) - theta * p

    @staticmethod
    def logistic_information(y, p, theta, kind: str = "observed"):
        """-d^2 log p(y) / d eta^2 ("observed": (y + theta) p (1 - p)) or its mean ("expected": theta p).

        Parameters
        ----------
        y, p : numpy.ndarray
            Counts and p = mu / (theta + mu).
        theta : float or numpy.ndarray
            The size.
        kind : {"observed", "expected"}
            Which information.

        Returns
        -------
        numpy.ndarray
            The information per count.
        """
        return (y + theta) * p * (1 - p) if kind == "observed" else theta * p

    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "expected"):
        """NB2 with the log link, in the logistic form p = mu / (theta + mu) (see ``Family``'s method).

        r = wt (y - mu) theta / (theta + mu); W_exp = wt theta p, dW_exp / d eta = wt theta p (1 - p);
        W_obs = wt (y + theta) p (1 - p), dW_obs / d eta = W_obs (1 - 2 p).

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Counts, linear predictor, means and prior weights.
        laplace : {"expected", "observed"}
            The Laplace information.

        Returns
        -------
        tuple
            (r, W_L, dW_L / d eta, W_O).
        """
        th = self.dispersion
        p = mu / (th + mu)
        r = wt * self.logistic_score(y, p, th)
        w_o = wt * self.logistic_information(y, p, th)
        if laplace == "observed":
            return r, w_o, w_o * (1 - 2 * p), w_o
        w_e = wt * th * p
        return r, w_e, w_e * (1 - p), w_o

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "expected"):
        """d / d log theta of log p, r and W_L (see ``Family``'s method).

        With q = 1 - p = theta / (theta + mu):  d log p / d theta = digamma(y + theta) - digamma(theta)
        + log q + (mu - y) / (theta + mu);  dr / d theta = (y - mu) p q / theta;
        dW_exp / d theta = p^2;  dW_obs / d theta = p q (2 theta mu + y mu - theta y) / (theta (theta + mu)),
        each times wt and, for log theta, times theta.

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Counts, linear predictor, means and prior weights.
        laplace : {"expected", "observed"}
            The Laplace information.

        Returns
        -------
        list
            One (dl, dr, dW_L) triple, for log theta.
        """
        th = self.dispersion
        tm = th + mu
        p, q = mu / tm, th / tm
        dl = wt * th * (special.digamma(y + th) - special.digamma(th) + np.log(q) + (mu - y) / tm)
        dr = wt * (y - mu) * p * q
        if laplace == "observed":
            dw = wt * p * q * (2 * th * mu + y * mu - th * y) / tm
        else:
            dw = wt * th * p * p
        return [(dl, dr, dw)]

    @property
    def fast_path(self):
        return "nb2"

    def fast_kernel(self, eta, y, wt):
        th = self.dispersion
        mu = np.maximum(np.exp(np.minimum(eta, 700.0)), 1e-300)
        return float((wt * y) @ eta - (wt * (th + y)) @ np.log(th + mu)), mu

    def fast_weights(self, eta, mu, y, wt, base):
        # the observed information (always positive for NB2-log): PIRLS takes true Newton steps
        th = self.dispersion
        p = mu / (th + mu)
        w = wt * self.logistic_information(y, p, th)
        return w, w * base + wt * self.logistic_score(y, p, th)

    @property
    def latent_needs_mean(self):
        return True

    def latent_variance(self, lam=None):
        return float(np.log1p(1 / _need_mean(lam) + 1 / self.dispersion))


class NegativeBinomial1(CountFamily):
    """NB1 (glmmTMB's nbinom1): var = mu (1 + phi); y ~ NB(size = mu / phi, mean mu).

    Not an exponential family in mu for fixed phi: the score is not (y - mu) mu'/V, so PIRLS
    uses ``score_eta`` and the Laplace approximation the observed information (as glmmTMB).
    """

    name = "nbinom1"
    exponential_family = False
    default_link = "log"
    links = ("log",)
    dispersion_name = "phi"
    dispersion_scales = False
    default_laplace = "observed"

    def variance(self, mu):
        return mu * (1 + self.dispersion)

    def variance_deriv(self, mu):
        return np.full_like(mu, 1 + self.dispersion)

    def loglik_kernel(self, y, mu, wt):
        phi = self.dispersion
        s = mu / phi
        return wt * (log_rising(y, s) - s * np.log1p(phi))

    def loglik_const(self, y, wt):
        phi = self.dispersion
        return wt * (-special.gammaln(y + 1) + y * np.log(phi / (1 + phi)))

    def unit_deviance(self, y, mu, wt):
        sat = np.where(y > 0, self.loglik(y, np.maximum(y, 1e-300), wt), 0.0)
        return 2 * (sat - self.loglik(y, mu, wt))

    def score_eta(self, y, eta, mu, wt):
        s, A, _B, _C = self._polygamma_terms(y, mu, order=1)
        return wt * s * A

    def working_weights(self, eta, mu, wt):
        return wt * mu / (1 + self.dispersion)

    def observed_weights(self, y, eta, mu, wt):
        s, A, B, _C = self._polygamma_terms(y, mu, order=2)
        return -wt * (s * A + s * s * B)

    def _polygamma_terms(self, y, mu, order: int = 3):
        """s = mu / phi and A = psi(y + s) - psi(s) - log(1 + phi), B and C the trigamma and tetragamma
        differences, for the derivatives in eta (ds/deta = s)."""
        phi = self.dispersion
        s = np.asarray(mu / phi, dtype=float)
        A, B, C = rising_polygammas(y, s, order)
        return s, A - np.log1p(phi), B, C

    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        """NB1 under the observed Laplace (its default, as glmmTMB), or None (see ``Family``'s method).

        With s = mu / phi: r = wt s A, W_obs = -wt (s A + s^2 B), dW_obs / d eta = -wt (s A + 3 s^2 B + s^3 C).

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Counts, linear predictor, means and prior weights.
        laplace : {"expected", "observed"}
            The Laplace information (the expected one has no closed form here: None).

        Returns
        -------
        tuple or None
            (r, W_L, dW_L / d eta, W_O).
        """
        if laplace != "observed":
            return None
        s, A, B, C = self._polygamma_terms(y, mu)
        w = -wt * (s * A + s * s * B)
        return wt * s * A, w, -wt * (s * A + 3 * s * s * B + s ** 3 * C), w

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        """d / d log phi of log p, r and W_obs (see ``Family``'s method).

        dl/dlog phi = -s A - s phi / (1 + phi) + y / (1 + phi);  dr/dlog phi = -s A - s^2 B - s phi / (1 + phi);
        dW/dlog phi = s A + 3 s^2 B + s^3 C + s phi / (1 + phi), each times wt.

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Counts, linear predictor, means and prior weights.
        laplace : {"expected", "observed"}
            The Laplace information.

        Returns
        -------
        list or None
            One (dl, dr, dW) triple, for log phi; None for the expected Laplace.
        """
        if laplace != "observed":
            return None
        phi = self.dispersion
        s, A, B, C = self._polygamma_terms(y, mu)
        q = s * phi / (1 + phi)
        dl = wt * (-s * A - q + y / (1 + phi))
        dr = wt * (-s * A - s * s * B - q)
        dw = wt * (s * A + 3 * s * s * B + s ** 3 * C + q)
        return [(dl, dr, dw)]

    def dispersion_start(self, y, mu, wt) -> float:
        return float(np.clip(np.sum(wt * (y - mu) ** 2 / mu) / len(y) - 1, 0.05, 1e3))

    def simulate(self, mu, wt, rng):
        phi = self.dispersion
        return rng.negative_binomial(mu / phi, 1 / (1 + phi)).astype(float)

    @property
    def latent_needs_mean(self):
        return True

    def latent_variance(self, lam=None):
        return float(np.log1p((1 + self.dispersion) / _need_mean(lam)))  # var = mu (1 + phi)



def trigamma(x):
    """psi'(x) for x > 0: psi'(x) = sum_{i<8} 1 / (x + i)^2 + psi'(x + 8), the last from its asymptotic
    series 1/z + 1/(2z^2) + sum_k B_2k / z^(2k+1) to z^-15 (relative error about 1e-13 at z = 8, less
    above; the shift is skipped where x is already 8 or more).  About three times faster than scipy's
    polygamma(1, x), which goes through the Hurwitz zeta function.

    Parameters
    ----------
    x : array-like
        Positive arguments.

    Returns
    -------
    numpy.ndarray
        The trigamma function.
    """
    x = np.asarray(x, dtype=float)
    shift = x < 8
    z = np.where(shift, x + 8, x)
    acc = np.zeros_like(z)
    if shift.any():
        xs = x[shift]
        inv = 1 / xs
        a = inv * inv
        for i in range(1, 8):
            t = xs + i
            a += 1 / (t * t)
        acc[shift] = a
    r = 1 / z
    r2 = r * r
    series = r * (1 + r * (0.5 + r * (1 / 6 + r2 * (-1 / 30 + r2 * (1 / 42 + r2 * (-1 / 30 + r2 * (
        5 / 66 + r2 * (-691 / 2730 + r2 * 7 / 6))))))))
    return acc + series


# Log-gamma and polygamma differences at s and y + s (NB1's size s = mu / phi, the beta-binomial's
# mu phi): as s grows without bound (the Poisson or binomial limit) they cancel catastrophically (s = 1e13
# left 0.05 of noise per row in NB1's log-likelihood). Above LARGE_SIZE they come from Stirling's series,
# each term small itself.
LARGE_SIZE = 1e6


def log_rising(y, s):
    """log Gamma(y + s) - log Gamma(s), stable for large s.

    Parameters
    ----------
    y, s : numpy.ndarray
        Non-negative counts and positive sizes (broadcast together; s has the output's shape).

    Returns
    -------
    numpy.ndarray
        The log of the rising factorial s (s + 1) ... (s + y - 1).
    """
    s = np.asarray(s, dtype=float)
    big = s > LARGE_SIZE
    out = special.gammaln(y + s) - special.gammaln(s)
    if np.any(big):
        yb, sb = np.broadcast_to(y, s.shape)[big], s[big]
        # (s + y - 1/2) log(s + y) - (s - 1/2) log s - y + 1/(12 (s + y)) - 1/(12 s)
        out[big] = (yb * np.log(sb) + (sb + yb - 0.5) * np.log1p(yb / sb) - yb
                    - yb / (12 * sb * (sb + yb)))
    return out


def rising_polygammas(y, s, order: int = 3):
    """psi(y + s) - psi(s) and the trigamma and tetragamma differences, stable for large s.

    Parameters
    ----------
    y, s : numpy.ndarray
        Non-negative counts and positive sizes (broadcast together; s has the output's shape).
    order : {1, 2, 3}
        How many differences (the tetragamma's is the dear one; the score needs only the first).

    Returns
    -------
    tuple
        (A, B, C): the digamma, trigamma and tetragamma differences (None beyond ``order``).
    """
    s = np.asarray(s, dtype=float)
    A = special.digamma(y + s) - special.digamma(s)
    B = trigamma(y + s) - trigamma(s) if order >= 2 else None
    C = special.polygamma(2, y + s) - special.polygamma(2, s) if order >= 3 else None
    big = s > LARGE_SIZE
    if np.any(big):
        yb, sb = np.broadcast_to(y, s.shape)[big], s[big]
        t = sb + yb
        # psi(z) ~ log z - 1/(2z) - 1/(12 z^2); psi'(z) ~ 1/z + 1/(2 z^2) + 1/(6 z^3); psi''(z) ~ -1/z^2 - 1/z^3
        A[big] = np.log1p(yb / sb) + yb / (2 * sb * t) + yb * (2 * sb + yb) / (12 * sb ** 2 * t ** 2)
        if B is not None:
            B[big] = -yb / (sb * t) - yb * (2 * sb + yb) / (2 * sb ** 2 * t ** 2)
        if C is not None:
            C[big] = (yb * (2 * sb + yb) / (sb ** 2 * t ** 2)
                      + yb * (3 * sb ** 2 + 3 * sb * yb + yb ** 2) / (sb ** 3 * t ** 3))
    return A, B, C


def _need_mean(lam) -> float:
    if lam is None or not np.isfinite(lam) or lam <= 0:
        raise InputError(f"the latent-scale variance of a log-link count family needs the null model's mean, got {lam!r}")
    return float(lam)


def _label(rows, i):
    """The data's label of row i (its position when no labels are given), as a plain value."""
    lab = i if rows is None else rows[i]
    return lab.item() if hasattr(lab, "item") else lab


def check_positive(y: np.ndarray, column: str, family: str, rows=None) -> None:
    """A response that must be positive (Gamma, inverse Gaussian): InputError naming the first bad row.

    Parameters
    ----------
    y : numpy.ndarray
        The response.
    column, family : str
        Names for the message.
    rows : array-like, optional
        The data's row labels.
    """
    bad = np.flatnonzero(y <= 0)
    if bad.size:
        raise InputError(f"{family} response {column!r} must be positive; row {_label(rows, bad[0])!r} "
                         f"has {float(y[bad[0]]):g}")


def check_proportions(y: np.ndarray, column: str, family: str, rows=None) -> None:
    """A proportion of trials (binomial, beta-binomial) must lie in [0, 1] (InputError naming the first bad row).

    Parameters
    ----------
    y : numpy.ndarray
        The response.
    column, family : str
        Names for the message.
    rows : array-like, optional
        The data's row labels.
    """
    bad = np.flatnonzero((y < 0) | (y > 1))
    if bad.size:
        raise InputError(
            f"{family} response {column!r} must be a proportion in [0, 1] (or 0/1, or "
            f"cbind(successes, failures)); row {_label(rows, bad[0])!r} has {float(y[bad[0]]):g}"
        )


#: counts above this are not exact in double precision (2^53)
MAX_COUNT = 2.0 ** 53


def check_counts(y: np.ndarray, column: str, family: str, rows=None) -> None:
    """Counts must be non-negative whole numbers that double precision holds exactly (InputError otherwise).

    Parameters
    ----------
    y : numpy.ndarray
        The response.
    column, family : str
        Names for the message.
    rows : array-like, optional
        The data's row labels.
    """
    bad = np.flatnonzero(y < 0)
    if bad.size:
        raise InputError(f"{family} response {column!r} must be non-negative counts; row {_label(rows, bad[0])!r} has {float(y[bad[0]]):g}")
    bad = np.flatnonzero(np.abs(y - np.rint(y)) > 1e-8)
    if bad.size:
        raise InputError(f"{family} response {column!r} must be whole counts; row {_label(rows, bad[0])!r} has {float(y[bad[0]]):g}")
    bad = np.flatnonzero(y > MAX_COUNT)
    if bad.size:
        raise InputError(f"{family} response {column!r} has the count {float(y[bad[0]]):g} at row "
                         f"{_label(rows, bad[0])!r}, beyond the {MAX_COUNT:.0e} that double precision holds exactly")
