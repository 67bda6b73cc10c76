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
        #: the zero model's random part Z_zi b_zi at the modes (a fit with ``ziformula="~ x + (1 | g)"``; (n,) or,
        #: for simulation with new random effects, (n, nsim)); 0 without
        self.zi_offset = 0.0
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

    def zi_eta(self) -> np.ndarray:
        """The zero model's linear predictor of each fitted row, X_zi gamma (+ its random part at the modes).

        Returns
        -------
        numpy.ndarray
            (n,), or (n, nsim) when ``zi_offset`` holds draws.
        """
        x = self.X_zi @ self.gamma
        off = np.asarray(self.zi_offset, dtype=float)
        return x[:, None] + off if off.ndim == 2 else x + off

    @property
    def pi(self) -> np.ndarray:
        """P(structural zero) of each fitted row, expit(X_zi gamma [+ Z_zi b_zi])."""
        return special.expit(self.zi_eta())

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
        fam.zi_offset = 0.0  # the zero model's random part of new rows is the caller's (Fit.predict)
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
        x = self.zi_eta()
        if np.ndim(mu) > np.ndim(x):
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
        x = self.zi_eta()
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
        pi = self.pi
        if np.ndim(mu) > np.ndim(pi):
            pi = pi[:, None]
        y = self.base.simulate(mu, wt, rng)
        return np.where(rng.uniform(size=np.shape(mu)) < pi, 0.0, y)

    def __repr__(self):
        return f"ZeroInflated({self.base!r}, zi={self.zi_names})"


# ---- random effects in the zero model -----------------------------------------------------------------
#
# With ``ziformula = "~ x + (1 | g)"`` each row has two linear predictors, eta_c (the count part's) and
# eta_z = X_zi gamma + Z_zi b_zi (the zero model's), and the Laplace approximation needs the Hessian of
# -log p over (u_c, u_z): Z' W Z with a 2 x 2 block per row,
#
#     W_i = [[a, c], [c, b]],  for y = 0 with r = P(count process | y = 0) (1 for y > 0) and the base's
#           a = r o0 - r (1 - r) s0^2,   b = pi (1 - pi) - r (1 - r),   c = r (1 - r) s0,
#     score (r s0, (1 - r) - pi)
#
# (log p0 is a log-sum-exp of log pi and log(1 - pi) + log f0; its Hessian is the weighted mean of the two
# components' plus r (1 - r) times the outer product of their gradients' difference (-s0, 1)).
#
# The engine's random-effects system takes one weight per row, so the rows are stacked three times:
#
#     block A: eta_c's terms (X, Z_c),  weight a - c        (count part only)
#     block B: eta_z's terms (Z_zi),    weight b - c        (zero model only; X_zi gamma is added here)
#     block C: both,                    weight c            c (z_c + z_z)(z_c + z_z)' gives the cross terms
#
# so that sum over blocks of w z z' = Z' W Z exactly, and every stage (the blocked Cholesky, its
# log-determinant, the joint (u, beta) solve) works unchanged. The right-hand side W v + s goes in blocks
# A and B; block C's linear predictor is never read. gamma stays an outer parameter, as without random effects.


class ZeroInflatedRE(ZeroInflated):
    """The zero-inflated family over the stacked rows of a zero model with random effects (the block above).

    Parameters
    ----------
    family : ZeroInflated
        The model's zero-inflated (or hurdle) family on its n rows.
    """

    stacked = True

    def __init__(self, family: ZeroInflated):
        self.__dict__.update(copy.copy(family).__dict__)
        self.n = self.X_zi.shape[0]

    @property
    def fast_path(self):
        return "stacked_zi"

    def _blocks(self, eta, y, wt):
        """(eta_c, eta_z, y, wt) of the n rows from the stacked arrays."""
        n = self.n
        eta = np.asarray(eta, dtype=float)
        return eta[:n], self.X_zi @ self.gamma + eta[n:2 * n], np.asarray(y)[:n], np.asarray(wt)[:n]

    def _logp(self, y, mu, ez, wt):
        log_pi, log_1m = -np.logaddexp(0.0, -ez), -np.logaddexp(0.0, ez)
        lf = self.base.loglik(y, mu, wt)
        return np.where(y == 0, np.logaddexp(log_pi, log_1m + lf), log_1m + lf), lf

    def fast_kernel(self, eta, y, wt):
        ec, ez, yy, ww = self._blocks(eta, y, wt)
        mu = self.link.inverse(ec)
        lp, _ = self._logp(yy, mu, ez, ww)
        return float(np.sum(lp)), np.concatenate([mu, special.expit(ez), mu])

    def information(self, eta, y, wt):
        """Per row the score (s_c, s_z) and the information (a, b, c) of the block above.

        Parameters
        ----------
        eta, y, wt : numpy.ndarray
            The stacked linear predictor (3n), responses and prior weights.

        Returns
        -------
        tuple
            (s_c, s_z, a, b, c), each (n,).
        """
        ec, ez, yy, ww = self._blocks(eta, y, wt)
        mu = self.link.inverse(ec)
        pi = special.expit(ez)
        lf = self.base.loglik(yy, mu, ww)
        r = np.where(yy == 0, special.expit(lf - ez), 1.0)
        live = r > 0  # a hurdle's zeros (f(0) = 0) carry nothing of the count part
        s0 = np.where(live, self.base.score_eta(yy, ec, mu, ww), 0.0)
        o0 = np.where(live, self.base.observed_weights(yy, ec, mu, ww), 0.0)
        rr = r * (1 - r)
        return r * s0, (1 - r) - pi, r * o0 - rr * s0 * s0, pi * (1 - pi) - rr, rr * s0

    @staticmethod
    def _stacked_weights(a, b, c):
        return np.concatenate([a - c, b - c, c])

    def fast_weights(self, eta, mu, y, wt, base):
        # Newton steps with the exact information; PIRLS falls back on ``psd_weights`` where it is indefinite
        return self._step_weights(eta, y, wt, base, psd=False)

    def psd_weights(self, eta, y, wt, base):
        """(W, W v) with each row's information made positive semi-definite (``psd_2x2``): PIRLS's fallback.

        Parameters
        ----------
        eta, y, wt : numpy.ndarray
            The stacked linear predictor, responses and prior weights.
        base : numpy.ndarray
            The part of eta the step solves for.

        Returns
        -------
        tuple
            (W, W v) over the stacked rows.
        """
        return self._step_weights(eta, y, wt, base, psd=True)

    def _step_weights(self, eta, y, wt, base, psd):
        sc, sz, a, b, c = self.information(eta, y, wt)
        if psd:
            a, b, c = psd_2x2(a, b, c)
        n = self.n
        bc, bz = base[:n], base[n:2 * n]
        wv = np.concatenate([a * bc + c * bz + sc, c * bc + b * bz + sz, np.zeros(n)])
        return self._stacked_weights(a, b, c), wv

    def observed_weights(self, y, eta, mu, wt):
        _, _, a, b, c = self.information(eta, y, wt)
        return self._stacked_weights(a, b, c)

    def working_weights(self, eta, mu, wt):
        raise InputError("a zero model with random effects uses the observed information (laplace='observed')")

    def laplace_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return None

    def param_gradient_terms(self, y, eta, mu, wt, laplace: str = "observed"):
        return None

    def params_start(self, y, mu, wt):
        n = self.n
        return super().params_start(np.asarray(y)[:n], np.asarray(mu)[:n], np.asarray(wt)[:n])

    def loglik_const_sum(self, y, wt, unique=None):
        return 0.0

    def on_rows(self, eta) -> ZeroInflated:
        """The model's zero-inflated family on its n rows, with the zero model's random part at the modes.

        Parameters
        ----------
        eta : numpy.ndarray
            The stacked linear predictor at the mode.

        Returns
        -------
        ZeroInflated
            ``pi`` includes Z_zi b_zi (glmmTMB's fitted zero probabilities).
        """
        fam = ZeroInflated.__new__(ZeroInflated)
        fam.__dict__.update({k: v for k, v in self.__dict__.items() if k != "n"})
        fam.zi_offset = np.asarray(eta, dtype=float)[self.n:2 * self.n].copy()
        return fam


def psd_2x2(a, b, c, floor: float = 1e-8):
    """The nearest positive semi-definite [[a, c], [c, b]] per row (eigenvalues clipped at ``floor``).

    Parameters
    ----------
    a, b, c : numpy.ndarray
        The entries, one matrix per row.
    floor : float
        The smallest eigenvalue kept.

    Returns
    -------
    tuple
        (a, b, c), unchanged where both eigenvalues are at least ``floor``.
    """
    half = 0.5 * (a + b)
    d = np.sqrt(0.25 * (a - b) ** 2 + c * c)
    l1, l2 = half + d, half - d
    bad = l2 < floor
    if not np.any(bad):
        return a, b, c
    # the leading eigenvector: (c, l1 - a), or an axis when c = 0
    v1, v2 = np.where(c != 0, c, np.where(a >= b, 1.0, 0.0)), np.where(c != 0, l1 - a, np.where(a >= b, 0.0, 1.0))
    nrm = np.hypot(v1, v2)
    v1, v2 = v1 / nrm, v2 / nrm
    L1, L2 = np.maximum(l1, floor), floor
    # W = L1 v v' + L2 (I - v v')
    na = L2 + (L1 - L2) * v1 * v1
    nb = L2 + (L1 - L2) * v2 * v2
    nc = (L1 - L2) * v1 * v2
    return np.where(bad, na, a), np.where(bad, nb, b), np.where(bad, nc, c)


def stacked_glmm_data(spec):
    """The engine's data for a model whose zero model has random effects: the rows stacked three times.

    Parameters
    ----------
    spec : ModelSpec
        The model (``spec.zi_terms`` not empty, ``spec.family`` zero-inflated).

    Returns
    -------
    GlmmData
        3n rows: X = [X; 0; X], each count-part term with rows [Z_c; 0; Z_c], each zero-model term with
        [0; Z_zi; Z_zi], the family ``ZeroInflatedRE`` (the block comment above).
    """
    import dataclasses

    from .engine.blocked import Structure
    from .engine.pirls import GlmmData

    n = spec.n
    zero = np.zeros(n)

    def stack(t, blocks):
        X = np.vstack([t.X if on else np.zeros_like(t.X) for on in blocks])
        return dataclasses.replace(t, codes=np.tile(t.codes, 3), X=X, _csr=None)

    if any(t.cov.system is not None for t in spec.terms):
        raise InputError("random effects in the zero model go with the blocked system's terms in the conditional "
                         "model (lme4's, glmmTMB's structures, a dense relmat), not with a tree or a sparse known "
                         "covariance")
    terms = [stack(t, (True, False, True)) for t in spec.terms] + [stack(t, (False, True, True)) for t in spec.zi_terms]
    X3 = np.vstack([spec.X, np.zeros_like(spec.X), spec.X])
    return GlmmData(np.tile(spec.y, 3), np.tile(spec.wt, 3), np.concatenate([spec.offset, zero, spec.offset]), X3,
                    Structure(terms), ZeroInflatedRE(spec.family))
