"""Zero-inflated families and hurdles (glmmTMB's ``ziformula``): a structural zero with probability pi.

    p(y) = pi 1[y = 0] + (1 - pi) f(y | mu),    logit(pi) = X_zi gamma

f is a count family (Poisson, NB1, NB2, generalized or Conway-Maxwell Poisson, binomial, beta-binomial).
With a zero-truncated f (glmmTMB's ``truncated_*`` families) it is a hurdle model: f(0) = 0, so every zero
is the zero model's and pi = P(y = 0). gamma (and f's own dispersion) are parameters of the outer
optimisation, as a dispersion is. For PIRLS and the Laplace approximation the family supplies the
score and the observed information in eta; for y = 0, with r = (1 - pi) f(0) / p(0) the probability
that a zero came from the count process, s0 = d log f(0) / d eta and o0 = -d^2 log f(0) / d eta^2:

    d log p / d eta = r s0,      -d^2 log p / d eta^2 = r o0 - r (1 - r) s0^2.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from .families import Family
from .errors import InputError
from .formula.coding import coded_matrix


#: the families ``ziformula`` is available for (the truncated ones make hurdle models)
ZI_FAMILIES = ("poisson", "nbinom2", "nbinom1", "binomial", "betabinomial", "genpois", "compois",
               "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2")


class ZeroInflated(Family):
    """A zero-inflated (or, with a zero-truncated base, hurdle) family (the module docstring).

    Parameters
    ----------
    base : Family
        The count family f.
    X_zi : numpy.ndarray
        The zero model's design (n, k).
    zi_names : list of str
        Its column names.
    zi_spec : object, optional
        formulaic's model spec of the zero model, for new data.
    """

    default_laplace = "observed"
    exponential_family = False  # a mixture: no analytic Laplace gradient terms (the derivative-free path)

    def __init__(self, base: Family, X_zi: np.ndarray, zi_names: list[str], zi_spec=None):
        if base.name not in ZI_FAMILIES:
            raise InputError(f"zero inflation is available for the families {list(ZI_FAMILIES)}, not {base.name!r}")
        if getattr(base, "hurdle", None) is False:  # a zero-truncated family: the hurdle model
            base = copy.copy(base)
            base.hurdle = True
        self.base = base
        self.trials_response = base.trials_response
        self.link = base.link
        self.name = f"hurdle_{base.name[len('truncated_'):]}" if self.is_hurdle else f"zi{base.name}"
        self.X_zi = np.asarray(X_zi, dtype=float)
        self.zi_names = list(zi_names)
        self.zi_spec = zi_spec
        self.gamma = np.zeros(self.X_zi.shape[1])
        self.dispersion_name = base.dispersion_name
        self.dispersion = base.dispersion
        self.dispersion_scales = False

    # ---- parameters ----------------------------------------------------------------------
    def param_names(self):
        return self.base.param_names() + [f"zi:{n}" for n in self.zi_names]

    @property
    def params(self):
        return np.concatenate([self.base.params, self.gamma])

    def params_start(self, y, mu, wt):
        excess = np.mean(y == 0) - np.mean(np.exp(self.base.start_family().loglik(np.zeros_like(mu), mu, wt)))
        g = np.zeros(len(self.gamma))
        if len(g) and "Intercept" in self.zi_names[0]:
            g[0] = special.logit(np.clip(excess, 0.02, 0.9))
        return np.concatenate([self.base.params_start(y, mu, wt), g])

    def with_params(self, psi):
        fam = copy.copy(self)
        k = len(self.base.param_names())
        fam.base = self.base.with_params(psi[:k]) if k else self.base
        fam.dispersion = fam.base.dispersion
        fam.gamma = np.array(psi[k:], dtype=float)  # a copy: psi may be the optimiser's reused buffer
        return fam

    def start_family(self):
        return self.base.start_family()

    def param_table(self, psi, cov_psi):
        k = len(self.base.param_names())
        rows = self.base.param_table(psi[:k], None if cov_psi is None else cov_psi[:k, :k])
        for j, name in enumerate(self.zi_names):
            sd = float(np.sqrt(cov_psi[k + j, k + j])) if cov_psi is not None else np.nan
            g = float(psi[k + j])
            rows.append((f"zi:{name}", g, sd, g - 1.959964 * sd, g + 1.959964 * sd))
        return rows

    @property
    def scale(self):
        return 1.0

    @property
    def pi(self) -> np.ndarray:
        """P(structural zero) of each fitted row, expit(X_zi gamma)."""
        return special.expit(self.X_zi @ self.gamma)

    def for_newdata(self, newdata):
        """This family for new rows: their zero model's design (and the base's own rows).

        Parameters
        ----------
        newdata : pandas.DataFrame
            Rows with the zero-inflation formula's columns.

        Returns
        -------
        ZeroInflated
            A copy for those rows.
        """
        fam = copy.copy(self)
        fam.X_zi = np.asarray(coded_matrix(self.zi_spec, newdata, "the zero-inflation formula"), dtype=float)
        fam.base = self.base.for_newdata(newdata)
        return fam

    def pi_new(self, newdata) -> np.ndarray:
        """P(structural zero) for new rows.

        Parameters
        ----------
        newdata : pandas.DataFrame
            Rows with the zero-inflation formula's columns.

        Returns
        -------
        numpy.ndarray
            One probability per row.
        """
        return self.for_newdata(newdata).pi

    # ---- likelihood -------------------------------------------------------------------------
    def loglik_kernel(self, y, mu, wt):
        x = self.X_zi @ self.gamma
        if np.ndim(mu) > 1:
            x = x[:, None]
        log_pi, log_1m = -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)  # stable log(pi), log(1 - pi)
        lf = self.base.loglik(y, mu, wt)
        return np.where(y == 0, np.logaddexp(log_pi, log_1m + lf), log_1m + lf)

    def loglik_const(self, y, wt):
        return np.zeros_like(np.asarray(y, dtype=float))

    def unit_deviance(self, y, mu, wt):
        """-2 log p (there is no saturated model to measure against)."""
        return -2 * self.loglik(y, mu, wt)

    def _r(self, y, mu, wt):
        """P(a zero came from the count process | y = 0) = (1 - pi) f(0) / p(0); 1 for y > 0."""
        x = self.X_zi @ self.gamma
        lf = self.base.loglik(y, mu, wt)
        # r = 1 / (1 + exp(log pi - log(1 - pi) - log f(0))) = expit(log f(0) - x)
        return np.where(y == 0, special.expit(lf - x), 1.0)

    def score_eta(self, y, eta, mu, wt):
        return self._r(y, mu, wt) * self.base.score_eta(y, eta, mu, wt)

    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        """The Laplace gradient's terms (observed information) from the base family's, or None.

        With q = P(count process | y) (``_r``: 1 for y > 0) and the base's r0 = dl/deta, W0 = -d2l/deta2,
        W0_eta = -d3l/deta3:  r = q r0,  W = q W0 - q (1 - q) r0^2,
        dW/deta = q W0_eta + 3 q (1 - q) r0 W0 - q (1 - q)(1 - 2q) r0^3  (dq/deta = q (1 - q) r0 on zero rows).

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Counts, linear predictor, means of the count process and prior weights.
        laplace : {"expected", "observed"}
            The Laplace information (only the observed one, the default, is given).

        Returns
        -------
        tuple or None
            (r, W, dW/deta, W); None for the expected information or prior weights other than 1.
        """
        if laplace != "observed" or np.any(np.asarray(wt) != 1):
            return None
        base = self.base.laplace_gradient_terms(y, eta, mu, wt, "observed")
        if base is None:
            return None
        r0, w0, dw0, _ = base
        q = self._r(y, mu, wt)
        qq = q * (1 - q)
        w = q * w0 - qq * r0 * r0
        return q * r0, w, q * dw0 + 3 * qq * r0 * w0 - qq * (1 - 2 * q) * r0 ** 3, w

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        """Per psi (the base's parameters, then the zero-inflation coefficients) the terms (dl, dr, dW).

        Base parameter with the base's (dl0, dr0, dW0): dq = q (1 - q) dl0, so dl = q dl0,
        dr = dq r0 + q dr0, dW = dq W0 + q dW0 - dq (1 - 2q) r0^2 - 2 q (1 - q) r0 dr0.
        Coefficient gamma_k of pi = expit(X_zi gamma): dl = (1 - q - pi) x_k, dq = -q (1 - q) x_k,
        dr = dq r0, dW = dq W0 - dq (1 - 2q) r0^2.

        Parameters
        ----------
        y, eta, mu, wt : numpy.ndarray
            Counts, linear predictor, means of the count process and prior weights.
        laplace : {"expected", "observed"}
            The Laplace information.

        Returns
        -------
        list or None
            One (dl, dr, dW) triple per psi; None where ``laplace_gradient_terms`` gives none.
        """
        if self.laplace_gradient_terms(y, eta, mu, wt, laplace) is None:
            return None
        base_psi = self.base.param_gradient_terms(y, eta, mu, wt, "observed")
        if base_psi is None:
            return None
        r0, w0, _, _ = self.base.laplace_gradient_terms(y, eta, mu, wt, "observed")
        q = self._r(y, mu, wt)
        qq = q * (1 - q)
        out = []
        for dl0, dr0, dw0 in base_psi:
            dq = qq * dl0
            out.append((q * dl0, dq * r0 + q * dr0, dq * w0 + q * dw0 - dq * (1 - 2 * q) * r0 * r0 - 2 * qq * r0 * dr0))
        X, pi = self.X_zi, self.pi
        if X.shape[0] != np.size(q):  # a probe away from the data's rows (the support check): shapes only
            X, pi = np.zeros((np.size(q), X.shape[1])), np.zeros(np.size(q))
        for k in range(X.shape[1]):
            x = X[:, k]
            dq = -qq * x
            out.append(((1 - q - pi) * x, dq * r0, dq * w0 - dq * (1 - 2 * q) * r0 * r0))
        return out

    def working_weights(self, eta, mu, wt):
        return (1 - self.pi) * self.base.working_weights(eta, mu, wt)

    def observed_weights(self, y, eta, mu, wt):
        r = self._r(y, mu, wt)
        s0 = self.base.score_eta(y, eta, mu, wt)
        o0 = self.base.observed_weights(y, eta, mu, wt)
        return r * o0 - r * (1 - r) * s0 * s0

    def variance(self, mu):
        """Variance of the response: (1 - pi)(V + pi m^2) with the count part's mean m and variance V."""
        pi = self.pi
        m = self.base.response_mean(mu)
        return (1 - pi) * (self.base.variance(mu) + pi * m * m)

    def variance_deriv(self, mu):
        pi = self.pi
        return (1 - pi) * (self.base.variance_deriv(mu) + 2 * pi * mu)

    @property
    def is_hurdle(self) -> bool:
        """Whether the base is zero-truncated (every zero is the zero model's)."""
        return bool(getattr(self.base, "hurdle", False))

    def response_mean(self, mu):
        return (1 - self.pi) * self.base.response_mean(mu)

    def conditional_mean(self, mu):
        """The mean of the count part (glmmTMB's ``predict(type = "conditional")``): mu, or mu / P(y > 0) for a
        hurdle's truncated counts.

        Parameters
        ----------
        mu : numpy.ndarray
            Means of the count family's linear predictor.

        Returns
        -------
        numpy.ndarray
            The count part's mean.
        """
        return self.base.response_mean(mu)

    def validate(self, y, wt, column, rows=None):
        self.base.validate(y, wt, column, rows)

    def mustart(self, y, wt):
        return self.base.mustart(y, wt)

    def simulate(self, mu, wt, rng):
        pi = self.pi if np.ndim(mu) == 1 else self.pi[:, None]
        y = self.base.simulate(mu, wt, rng)
        return np.where(rng.uniform(size=np.shape(mu)) < pi, 0.0, y)

    def __repr__(self):
        return f"ZeroInflated({self.base!r}, zi={self.zi_names})"
