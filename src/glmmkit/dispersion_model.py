"""A dispersion model (glmmTMB's ``dispformula``): fixed effects on the log of a family's dispersion.

    log d_i = s * (X_disp delta)_i

d is the family's own dispersion parameter as glmmkit holds it (sigma^2 for the Gaussian, phi for Gamma,
NB1, beta, beta-binomial, generalized Poisson and Tweedie, theta for NB2, sigma for Student-t) and s the
sign that puts delta on glmmTMB's scale: glmmTMB's Gamma models the log shape, 1 / phi (s = -1); every
other family's coefficients are glmmTMB's as they are (its Gaussian models log sigma^2, as glmmkit's).

delta takes the place of the family's dispersion among the outer optimisation's parameters (the family's
other parameters, a Tweedie power or Student-t's df, stay).  The family's own mathematics runs with one
dispersion per row.  For the Laplace gradient, the derivatives in log d_i of log p, the score and the
information come from central differences of the family at d_i e^{+-h} (one row each), and
d / d delta_k sums them with the weights s x_ik.
"""

from __future__ import annotations

import copy

import numpy as np

from .errors import InputError
from .families import Family
from .formula.coding import coded_matrix

_Z95 = 1.959964
_H = 1e-5

#: families whose dispersion a dispformula can model
DISP_FAMILIES = ("gaussian", "Gamma", "inverse.gaussian", "nbinom1", "nbinom2", "beta", "betabinomial", "tweedie",
                 "t", "genpois", "compois", "truncated_nbinom1", "truncated_nbinom2")


class DispersionModel(Family):
    """A family whose dispersion follows fixed effects (the module docstring).

    Parameters
    ----------
    base : Family
        The family (one with a dispersion parameter: ``DISP_FAMILIES``).
    X_disp : numpy.ndarray
        The dispersion model's design (n, k).
    disp_names : list of str
        Its column names.
    disp_spec : object, optional
        formulaic's model spec, for new data.
    """

    def __init__(self, base: Family, X_disp: np.ndarray, disp_names: list[str], disp_spec=None):
        if base.name not in DISP_FAMILIES:
            raise InputError(f"dispformula is available for the families {list(DISP_FAMILIES)}, not {base.name!r}")
        if getattr(base, "fixed", None) and base.param_spec[0][0] in base.fixed:
            raise InputError(f"{base.name}'s {base.dispersion_name} is held fixed: it cannot also follow a dispformula")
        self.base = base
        self.link = base.link
        self.name = base.name
        self.X_disp = np.asarray(X_disp, dtype=float)
        self.disp_names = list(disp_names)
        self.disp_spec = disp_spec
        self.sign = -1.0 if base.name == "Gamma" else 1.0
        self.delta = np.zeros(self.X_disp.shape[1])
        for attr in ("exponential_family", "default_laplace", "trials_response", "canonical_link",
                     "expected_information_exact", "dispersion_scales"):
            setattr(self, attr, getattr(base, attr))
        self.dispersion_name = base.dispersion_name
        self.rest = np.asarray(base.params, dtype=float)[1:]  # the base's other parameters, on their psi scale
        self.base = base.with_dispersion(self._row_dispersion(self.delta))

    # ---- parameters: delta, then the base's others ------------------------------------------------
    def _row_dispersion(self, delta, X=None):
        X = self.X_disp if X is None else X
        return np.exp(self.sign * (X @ delta))

    @property
    def dispersion(self):
        """The dispersion of each row (an array)."""
        return self.base.dispersion

    @dispersion.setter
    def dispersion(self, value):  # the base holds it
        pass

    @property
    def scale(self):
        return self.base.scale

    def _rest(self):
        return self.base.param_names()[1:]

    def param_names(self):
        return [f"disp:{n}" for n in self.disp_names] + self._rest()

    @property
    def params(self):
        return np.concatenate([self.delta, self.rest])

    def params_start(self, y, mu, wt):
        start = self.base.params_start(y, mu, wt)  # log of one dispersion for all rows, and the rest
        delta = np.zeros(len(self.delta))
        if len(delta) and "Intercept" in self.disp_names[0]:
            delta[0] = self.sign * float(start[0])
        return np.concatenate([delta, np.asarray(start, dtype=float)[1:]])

    def with_params(self, psi):
        fam = copy.copy(self)
        k = len(self.delta)
        fam.delta = np.array(psi[:k], dtype=float)  # a copy: psi may be the optimiser's reused buffer
        fam.rest = np.array(psi[k:], dtype=float)
        base = self.base.with_params(np.concatenate([[0.0], fam.rest])) if self._rest() else self.base
        fam.base = base.with_dispersion(fam._row_dispersion(fam.delta))
        return fam

    def with_dispersion(self, value):
        raise InputError("a dispersion model's dispersion follows its formula; it has no single value")

    def param_table(self, psi, cov_psi):
        k = len(self.delta)
        rows = []
        for j, name in enumerate(self.disp_names):
            sd = float(np.sqrt(cov_psi[j, j])) if cov_psi is not None else np.nan
            d = float(psi[j])
            rows.append((f"disp:{name}", d, sd, d - _Z95 * sd, d + _Z95 * sd))
        if self._rest():
            probe = self.base.with_params(np.concatenate([[0.0], psi[k:]]))
            cov = None if cov_psi is None else np.pad(cov_psi[k:, k:], ((1, 0), (1, 0)))
            rows += probe.param_table(np.concatenate([[0.0], psi[k:]]), cov)[1:]
        return rows

    def start_family(self):
        return self.base.start_family()

    def dispersion_new(self, newdata):
        """The dispersion of new rows.

        Parameters
        ----------
        newdata : pandas.DataFrame
            Rows with the dispersion formula's columns.

        Returns
        -------
        numpy.ndarray
            One dispersion per row (glmmkit's parameter: sigma^2, phi, theta, ...).
        """
        return self.for_newdata(newdata).base.dispersion

    # ---- the base's mathematics with one dispersion per row --------------------------------------
    def _at(self, n):
        """The base family for n rows: the fitted rows', or (a one-row probe of the gradient's support
        check) the first row's; other row counts are new data, which ``for_newdata`` serves."""
        d = self.base.dispersion
        if np.ndim(d) and len(d) != n:
            if n > 1:
                raise InputError(f"the dispersion model holds {len(d)} rows' dispersions, asked for {n}: use "
                                 "family.for_newdata(newdata) for new rows")
            return self.base.with_dispersion(d[:1])
        return self.base

    def for_newdata(self, newdata):
        """This family with the dispersions of new rows.

        Parameters
        ----------
        newdata : pandas.DataFrame
            Rows with the dispersion formula's columns.

        Returns
        -------
        DispersionModel
            A copy for those rows.
        """
        fam = copy.copy(self)
        fam.X_disp = np.asarray(coded_matrix(self.disp_spec, newdata, "the dispersion formula"), dtype=float)
        fam.base = self.base.with_dispersion(fam._row_dispersion(self.delta))
        return fam

    def variance(self, mu):
        return self._at(np.shape(mu)[0] if np.ndim(mu) else 1).variance(mu)

    def variance_deriv(self, mu):
        return self._at(np.shape(mu)[0] if np.ndim(mu) else 1).variance_deriv(mu)

    def response_variance(self, mu, wt):
        return self._at(len(mu)).response_variance(mu, wt)

    def unit_deviance(self, y, mu, wt):
        return self._at(len(y)).unit_deviance(y, mu, wt)

    def loglik_kernel(self, y, mu, wt):
        return self._at(len(y)).loglik_kernel(y, mu, wt)

    def loglik_const(self, y, wt):
        return self._at(len(y)).loglik_const(y, wt)

    def loglik_const_sum(self, y, wt, unique=None):
        return float(np.sum(self.loglik_const(y, wt)))  # per-row dispersion: no shortcut over distinct y

    def score_eta(self, y, eta, mu, wt):
        return self._at(len(y)).score_eta(y, eta, mu, wt)

    def working_weights(self, eta, mu, wt):
        return self._at(len(eta)).working_weights(eta, mu, wt)

    def observed_weights(self, y, eta, mu, wt):
        return self._at(len(y)).observed_weights(y, eta, mu, wt)

    def stepping_weights_and_score(self, y, eta, mu, wt):
        return self._at(len(y)).stepping_weights_and_score(y, eta, mu, wt)

    def response_mean(self, mu):
        return self._at(len(mu)).response_mean(mu)

    def validate(self, y, wt, column, rows=None):
        self.base.validate(y, wt, column, rows)

    def mustart(self, y, wt):
        return self.base.mustart(y, wt)

    def simulate(self, mu, wt, rng):
        if np.ndim(mu) > 1:
            d = self.base.dispersion
            return self.base.with_dispersion(np.asarray(d)[:, None]).simulate(mu, wt, rng)
        return self._at(len(mu)).simulate(mu, wt, rng)

    # ---- the Laplace gradient's terms --------------------------------------------------------------
    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "expected"):
        return self._at(len(y)).laplace_gradient_terms(y, eta, mu, wt, laplace)

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "expected"):
        base = self._at(len(y))
        if base.laplace_gradient_terms(y, eta, mu, wt, laplace) is None:
            return None
        d = np.asarray(base.dispersion, dtype=float)
        hi, lo = base.with_dispersion(d * np.exp(_H)), base.with_dispersion(d * np.exp(-_H))
        with np.errstate(invalid="ignore"):
            dl = (hi.loglik(y, mu, wt) - lo.loglik(y, mu, wt)) / (2 * _H)
        dl = np.where(np.isfinite(dl), dl, 0.0)
        dr = (hi.score_eta(y, eta, mu, wt) - lo.score_eta(y, eta, mu, wt)) / (2 * _H)
        hi_w = hi.laplace_gradient_terms(y, eta, mu, wt, laplace)[1]
        lo_w = lo.laplace_gradient_terms(y, eta, mu, wt, laplace)[1]
        dw = (hi_w - lo_w) / (2 * _H)
        X = self.X_disp if self.X_disp.shape[0] == np.size(y) else np.zeros((np.size(y), self.X_disp.shape[1]))
        out = []
        for k in range(X.shape[1]):
            x = self.sign * X[:, k]  # d log d_i / d delta_k
            out.append((dl * x, dr * x, dw * x))
        # the base's other parameters by central differences of this family in them
        k0 = len(self.delta)
        psi = self.params
        for j in range(len(self.rest)):
            e = np.zeros(len(psi))
            e[k0 + j] = _H
            fh, fl = self.with_params(psi + e)._at(np.size(y)), self.with_params(psi - e)._at(np.size(y))
            with np.errstate(invalid="ignore"):
                dlj = (fh.loglik(y, mu, wt) - fl.loglik(y, mu, wt)) / (2 * _H)
            drj = (fh.score_eta(y, eta, mu, wt) - fl.score_eta(y, eta, mu, wt)) / (2 * _H)
            dwj = (fh.laplace_gradient_terms(y, eta, mu, wt, laplace)[1]
                   - fl.laplace_gradient_terms(y, eta, mu, wt, laplace)[1]) / (2 * _H)
            out.append((np.where(np.isfinite(dlj), dlj, 0.0), drj, dwj))
        return out

    def latent_variance(self, lam=None):
        raise InputError("the latent-scale variance of a model with a dispersion formula differs by row; "
                         "R^2 and the ICC are not defined for it here")

    def __repr__(self):
        return f"DispersionModel({self.base.name}, disp={self.disp_names})"
