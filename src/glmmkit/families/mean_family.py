"""Families given by their log-density in the mean, with parameters of their own (glmmTMB's families).

A subclass supplies the log-density l(y | mu, params) split into a kernel (the part that depends on mu)
and a constant, the first two derivatives in mu (``mu_derivatives``) and a positive information in mu for
PIRLS's steps (``mu_information``).  The link turns them into the engine's quantities in eta:

    d l / d eta       = l_mu mu'
    -d^2 l / d eta^2  = -(l_mumu mu'^2 + l_mu mu'')          (the observed information, glmmTMB's Laplace)
    Fisher weights    = I(mu) mu'^2                          (PIRLS's steps where the observed one is not > 0)

The family's parameters (a precision phi, a scale sigma, a Tweedie power, Student-t's df) are estimated in
the outer optimisation on an unconstrained scale (``param_spec``): "log" for positive ones, "power" for
Tweedie's 1 < p < 2 (psi = logit(p - 1), as glmmTMB).  A parameter given to the constructor is held fixed.
The analytic Laplace gradient's per-observation terms beyond these (the information's derivative in eta,
the derivatives in the family's own parameters) come from central differences of the analytic score and
information (``difference_gradient_terms``, ``difference_param_terms``).
"""

from __future__ import annotations

import copy
from abc import abstractmethod

import numpy as np
from scipy import special

from ..errors import InputError
from .core import Family

_Z95 = 1.959964


def _to_natural(scale: str, psi: float) -> float:
    return float(np.exp(psi)) if scale == "log" else float(1.0 + special.expit(psi))


def _to_psi(scale: str, value: float) -> float:
    return float(np.log(value)) if scale == "log" else float(special.logit(value - 1.0))


def _psi_name(scale: str, name: str) -> str:
    return f"log({name})" if scale == "log" else f"logit({name} - 1)"


# The analytic Laplace gradient (engine/gradient.py) asks a family for the derivative in eta of its observed
# information and, per own parameter, the derivatives of log p, the score and the information.  For these
# families they come from central differences of the analytic score and information (and of log p in the
# parameters): one more family evaluation each side, with errors of order h^2 (about 1e-10 relative at
# h = 1e-5), far inside the optimiser's tolerances.
_H_ETA = 1e-5
_H_PSI = 1e-5


def difference_variance_deriv(fam: Family, mu):
    """dV / dmu by central differences of the family's variance (for families whose V has no simple form).

    Parameters
    ----------
    fam : Family
        The family.
    mu : numpy.ndarray
        Means.

    Returns
    -------
    numpy.ndarray
        The derivative of the variance function.
    """
    h = 1e-6 * np.maximum(np.abs(mu), 1e-8)
    return (fam.variance(mu + h) - fam.variance(mu - h)) / (2 * h)


def difference_gradient_terms(fam: Family, y, eta, mu, wt, laplace: str = "observed"):
    """(r, W, dW / d eta, W) for the observed Laplace, dW / d eta by central differences of W in eta.

    Parameters
    ----------
    fam : Family
        A family with ``score_eta`` and ``observed_weights``.
    y, eta, mu, wt : numpy.ndarray
        Response, linear predictor, means and prior weights at the mode.
    laplace : {"expected", "observed"}
        The Laplace information (only the observed one is given: None otherwise).

    Returns
    -------
    tuple or None
        (r, W_L, dW_L / d eta, W_O).
    """
    if laplace != "observed":
        return None
    eta = np.asarray(eta, dtype=float)
    h = _H_ETA * np.maximum(1.0, np.abs(eta))
    w = fam.observed_weights(y, eta, mu, wt)
    up = fam.observed_weights(y, eta + h, fam.link.inverse(eta + h), wt)
    down = fam.observed_weights(y, eta - h, fam.link.inverse(eta - h), wt)
    return fam.score_eta(y, eta, mu, wt), w, (up - down) / (2 * h), w


def difference_param_terms(fam: Family, y, eta, mu, wt, laplace: str = "observed", with_loglik: bool = True):
    """Per own parameter psi_j: (d log p, d r, d W) / d psi_j by central differences in psi_j.

    Parameters
    ----------
    fam : Family
        The family at its current parameters.
    y, eta, mu, wt : numpy.ndarray
        Response, linear predictor, means and prior weights at the mode.
    laplace : {"expected", "observed"}
        The Laplace information (only the observed one: None otherwise).
    with_loglik : bool
        Difference log p too (False: dl is None, for a family that has it in closed form).

    Returns
    -------
    list or None
        One (dl, dr, dW) triple per parameter.
    """
    if laplace != "observed":
        return None
    psi = np.asarray(fam.params, dtype=float)
    out = []
    for j in range(len(psi)):
        e = np.zeros(len(psi))
        e[j] = _H_PSI
        hi, lo = fam.with_params(psi + e), fam.with_params(psi - e)
        dl = None
        if with_loglik:
            with np.errstate(invalid="ignore"):
                dl = (hi.loglik(y, mu, wt) - lo.loglik(y, mu, wt)) / (2 * _H_PSI)
            dl = np.where(np.isfinite(dl), dl, 0.0)  # rows outside the support (a hurdle's zeros): no term
        dr = (hi.score_eta(y, eta, mu, wt) - lo.score_eta(y, eta, mu, wt)) / (2 * _H_PSI)
        dw = (hi.observed_weights(y, eta, mu, wt) - lo.observed_weights(y, eta, mu, wt)) / (2 * _H_PSI)
        out.append((dl, dr, dw))
    return out



class MeanFamily(Family):
    """Base of the families with a log-density in the mean and parameters of their own (module docstring).

    Parameters
    ----------
    link : str or Link, optional
        The link (the family's default otherwise).
    **fixed : float
        Parameters held at a value instead of estimated (e.g. ``StudentT(df=3)``).
    """

    exponential_family = False
    default_laplace = "observed"
    dispersion_scales = False
    expected_information_exact = False
    #: (name, scale, default) of the family's own parameters; scale "log" or "power"
    param_spec: tuple[tuple[str, str, float], ...] = ()

    def __init__(self, link=None, **fixed):
        self.values = {}
        super().__init__(link)
        names = [p[0] for p in self.param_spec]
        unknown = set(fixed) - set(names)
        if unknown:
            raise InputError(f"the {self.name} family has the parameters {names}, not {sorted(unknown)}")
        self.values = {name: float(default) for name, _, default in self.param_spec}
        self.fixed = set()
        for name, value in fixed.items():
            if value is None:
                continue
            scale = dict((p[0], p[1]) for p in self.param_spec)[name]
            value = float(value)
            ok = np.isfinite(value) and (value > 0 if scale == "log" else 1 < value < 2)
            if not ok:
                raise InputError(f"{self.name}'s {name} must be {'positive' if scale == 'log' else 'in (1, 2)'}, "
                                 f"got {value!r}")
            self.values[name] = value
            self.fixed.add(name)
        self.dispersion_name = self.param_spec[0][0] if self.param_spec else None

    # the first parameter is the one the rest of the package knows as the dispersion (Fit.phi)
    @property
    def dispersion(self) -> float:
        """The first parameter's value (phi, sigma), as the package reads a dispersion."""
        return self.values[self.param_spec[0][0]] if self.param_spec else 1.0

    @dispersion.setter
    def dispersion(self, value):
        if self.param_spec and self.values:
            self.values[self.param_spec[0][0]] = np.asarray(value, dtype=float) if np.ndim(value) else float(value)

    def _free(self):
        return [p for p in self.param_spec if p[0] not in self.fixed]

    # ---- the family's parameters in the outer optimisation --------------------------------
    def param_names(self):
        return [_psi_name(scale, name) for name, scale, _ in self._free()]

    @property
    def params(self):
        return np.array([_to_psi(scale, self.values[name]) for name, scale, _ in self._free()])

    def with_params(self, psi):
        fam = copy.copy(self)
        fam.values = dict(self.values)
        for (name, scale, _), v in zip(self._free(), psi):
            fam.values[name] = _to_natural(scale, float(v))
        return fam

    def with_dispersion(self, value):
        fam = copy.copy(self)
        fam.values = dict(self.values)
        fam.dispersion = value
        return fam

    def params_start(self, y, mu, wt):
        start = self.start_values(y, mu, wt)
        return np.array([_to_psi(scale, start.get(name, self.values[name])) for name, scale, _ in self._free()])

    def start_values(self, y, mu, wt) -> dict:
        """Moment starts of the free parameters from the GLM's means (the defaults here).

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, the start GLM's means and prior weights.

        Returns
        -------
        dict
            Parameter name to its starting value.
        """
        return {}

    def param_table(self, psi, cov_psi):
        rows = []
        for j, (name, scale, _) in enumerate(self._free()):
            sd = float(np.sqrt(cov_psi[j, j])) if cov_psi is not None and cov_psi[j, j] >= 0 else np.nan
            est = _to_natural(scale, float(psi[j]))
            # delta method for the standard error; the interval is the psi interval mapped back
            slope = est if scale == "log" else (est - 1) * (2 - est)
            rows.append((name, est, slope * sd, _to_natural(scale, psi[j] - _Z95 * sd),
                         _to_natural(scale, psi[j] + _Z95 * sd)))
        return rows

    # ---- what a subclass gives ---------------------------------------------------------------
    @abstractmethod
    def start_family(self):
        """The family whose GLM gives the starting fixed effects (a quasi-likelihood relative).

        Returns
        -------
        Family
            E.g. the binomial for beta responses, the Poisson for counts.
        """

    @abstractmethod
    def mu_derivatives(self, y, mu, wt):
        """d l / d mu and d^2 l / d mu^2 per observation (prior weights included).

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, means and prior weights.

        Returns
        -------
        tuple
            (l_mu, l_mumu).
        """

    @abstractmethod
    def mu_information(self, mu, wt):
        """A positive information in mu for PIRLS's steps (Fisher's where it has a closed form).

        Parameters
        ----------
        mu, wt : numpy.ndarray
            Means and prior weights.

        Returns
        -------
        numpy.ndarray
            Per observation.
        """

    # ---- the engine's quantities in eta (module docstring) ------------------------------------
    def score_eta(self, y, eta, mu, wt):
        l_mu, _ = self.mu_derivatives(y, mu, wt)
        return l_mu * self.link.mu_eta(eta)

    def observed_weights(self, y, eta, mu, wt):
        l_mu, l_mumu = self.mu_derivatives(y, mu, wt)
        d, d2 = self.link.mu_eta(eta), self.link.mu_eta2(eta)
        return -(l_mumu * d * d + l_mu * d2)

    def working_weights(self, eta, mu, wt):
        d = self.link.mu_eta(eta)
        return self.mu_information(mu, wt) * d * d

    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return difference_gradient_terms(self, y, eta, mu, wt, laplace)

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return difference_param_terms(self, y, eta, mu, wt, laplace)

    def stepping_weights_and_score(self, y, eta, mu, wt):
        # one pass of the mean derivatives for the score and both informations (the special functions are
        # the dear part)
        l_mu, l_mumu = self.mu_derivatives(y, mu, wt)
        d, d2 = self.link.mu_eta(eta), self.link.mu_eta2(eta)
        obs = -(l_mumu * d * d + l_mu * d2)
        # Newton's step where the observed information is positive (quadratic convergence near the mode),
        # Fisher's where it is not
        return np.where(obs > 0, obs, self.mu_information(mu, wt) * d * d), l_mu * d

    def stepping_weights(self, y, eta, mu, wt):
        return self.stepping_weights_and_score(y, eta, mu, wt)[0]

    def variance_deriv(self, mu):
        return difference_variance_deriv(self, mu)

    def unit_deviance(self, y, mu, wt):
        """2 (l(y | saturated mean) - l(y | mu)), the saturated mean being y clipped into the mean's range.

        Parameters
        ----------
        y, mu, wt : numpy.ndarray
            Response, means and prior weights.

        Returns
        -------
        numpy.ndarray
            The unit deviances (non-negative to rounding).
        """
        sat = self.saturated_mean(y)
        return 2 * (self.loglik_kernel(y, sat, wt) - self.loglik_kernel(y, mu, wt))

    def saturated_mean(self, y):
        """The mean that maximises each observation's density (y itself, moved inside the mean's range).

        Parameters
        ----------
        y : numpy.ndarray
            The response.

        Returns
        -------
        numpy.ndarray
            The saturated means.
        """
        return np.asarray(y, dtype=float)

    def __repr__(self):
        vals = ", ".join(f"{k}={v:.4g}" for k, v in self.values.items())
        return f"{type(self).__name__}(link={self.link.name!r}{', ' + vals if vals else ''})"
