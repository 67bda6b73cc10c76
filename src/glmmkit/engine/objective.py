"""Objective functions: -2 log-likelihood of a GLMM (Laplace, AGQ) and of an LMM (profiled).

GLMM, Laplace (nAGQ = 1), at the conditional mode u-hat from PIRLS:

    -2 log L(theta, beta, phi) ~= -2 sum_i log p(y_i | mu_i(u-hat), phi) + |u-hat|^2
                                  + log det(Lambda'Z'WZLambda + I)

with W the expected (Fisher) information, as lme4 does (``laplace="expected"``),
or the observed information -d^2 log p / d eta^2, as glmmTMB does
(``laplace="observed"``).  The two agree for canonical links.

AGQ (nAGQ > 1, one scalar term): the integral over each level's u_j is done
with Gauss-Hermite nodes x_k centred at u-hat_j and scaled by s_j = L11_j:

    log I_j = -log s_j - log(2 pi)/2 + logsumexp_k [log w_k + x_k^2/2 + l_j(u_jk) - u_jk^2/2],
    u_jk = u-hat_j + x_k / s_j,

which reduces to the Laplace value for one node.

LMM (Gaussian, identity link), with r^2 the penalised residual sum of squares:

    ML:   log det(L_Z)^2 + n (1 + log(2 pi r^2 / n))
    REML: log det(L_Z)^2 + log det(R_X)^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from ..families import Family
from .blocked import Structure
from .pirls import GlmmData, PirlsError, PirlsResult, pirls
from ..checks import check_int
from ..errors import InputError

_LOG2PI = np.log(2 * np.pi)


@dataclass
class WarmStart:
    """Where the next PIRLS starts: the explicit warm-start state of a GLMM objective.

    The optimiser moves it (to the first-order move of the mode, to the best point), the profiler starts
    it from the fit's mode; nothing else reads or writes it.
    """

    u: np.ndarray  # the mode the next PIRLS starts from
    beta: np.ndarray | None = None  # the last joint (u, beta) mode's beta, the next joint search's start
    beta_start: np.ndarray | None = None  # the GLM start: the cold restart of a failed joint search

    def copy(self) -> "WarmStart":
        """An independent copy.

        Returns
        -------
        WarmStart
            The same state in new arrays.
        """
        return WarmStart(self.u.copy(), None if self.beta is None else self.beta.copy(),
                         None if self.beta_start is None else self.beta_start.copy())


#: adaptive Gauss-Hermite quadrature integrates up to this many random effects per level (glmm's limit)
MAX_AGQ_DIM = 3


class GlmmObjective:
    """-2 log L of a GLMM, with warm-started PIRLS; counts and logs every evaluation."""

    def __init__(self, data: GlmmData, nagq: int = 1, laplace: str = "expected", quad_stop: float = 1e-5,
                 reml: bool = False):
        if laplace not in ("expected", "observed"):
            raise InputError(f"laplace must be 'expected' (lme4) or 'observed' (glmmTMB), got {laplace!r}")
        if laplace == "expected" and not data.family.expected_information_exact:
            raise InputError(f"the {data.family.name} family has no closed-form expected information: its "
                             "Laplace approximation uses the observed information (laplace='observed', "
                             "glmmTMB's), which is its default")
        self.data = data
        self.quad_stop = float(quad_stop)  # Control.quad_stop: PIRLS's shortcut after a full Newton step
        self.nagq = check_int("nagq", nagq, 0, 25)
        self.laplace = laplace
        # REML (glmmTMB's REML = TRUE): beta is integrated with u by one Laplace approximation over (u, beta),
        #   -2 log L_R = -2 l(u, beta) + |u|^2 + log det A + log det(R_X' R_X) - p log(2 pi)
        # at the joint mode, R_X the fixed effects' block of the joint factor (the Schur complement of A)
        self.reml = bool(reml)
        if self.reml and self.nagq != 1:
            raise InputError("REML for a GLMM integrates the fixed effects by the Laplace approximation: use nagq=1")
        st = data.structure
        if self.reml and not st.supports_joint:
            raise InputError(f"REML needs the joint (u, beta) system, which the {st.name} system does not offer")
        self.n_theta = sum(t.cov.n_theta for t in st._orig_terms())
        self.theta_lower = np.concatenate([t.cov.lower() for t in st._orig_terms()])
        self.theta0 = np.concatenate([t.cov.theta0() for t in st._orig_terms()])
        self.theta_scaled = np.concatenate([t.cov.scaled() for t in st._orig_terms()])
        self.n_psi = len(data.family.param_names())
        if self.nagq > 1:
            t = st.terms
            if len(t) != 1 or t[0].is_known:
                raise InputError(
                    "adaptive Gauss-Hermite quadrature (nagq > 1) needs a single random-effects term on one "
                    "grouping factor, such as (1 | g) or (1 + x | g); this model has "
                    + ", ".join(x.label for x in t)
                    + ". Use nagq=1 (Laplace)."
                )
            if t[0].k > MAX_AGQ_DIM:
                raise InputError(
                    f"adaptive Gauss-Hermite quadrature handles up to {MAX_AGQ_DIM} random effects per level "
                    f"(nagq^k nodes per level); {t[0].label} has {t[0].k}. Use nagq=1 (Laplace)")
            if self.nagq > 25:
                raise InputError(f"nagq must be at most 25, got {self.nagq}")
            self._nodes, self._weights = hermegauss(self.nagq)
            term = t[0]
            if term.k > 1:
                # the tensor grid of the k-dimensional rule: nagq^k nodes z_m with weights prod w
                grids = np.meshgrid(*([self._nodes] * term.k), indexing="ij")
                self._grid = np.stack([g.ravel() for g in grids], axis=1)  # (M, k)
                lw = np.meshgrid(*([np.log(self._weights)] * term.k), indexing="ij")
                self._grid_logw = np.sum(np.stack([g.ravel() for g in lw], axis=1), axis=1)
            self._indicator = sp.csr_matrix(
                (np.ones(data.n), (term.codes, np.arange(data.n))), shape=(term.q, data.n)
            )
        self.warm = WarmStart(np.zeros(st.Q))
        self._const: dict = {}
        vals, inv = np.unique(data.y, return_inverse=True)
        # distinct responses with their summed weights (count data: a few dozen values)
        self._unique_y = (vals, np.bincount(inv.ravel(), weights=data.wt)) if len(vals) < data.n // 4 else None
        self._fam_cache: tuple = (None, None)
        self.fevals = 0
        self.log: list[tuple[np.ndarray, float]] = []

    def family_at(self, psi) -> Family:
        """The family with its own parameters (dispersion, zero-inflation) set to psi.

        Parameters
        ----------
        psi : numpy.ndarray or None
            The family's parameters on their unconstrained scale.

        Returns
        -------
        Family
            The family (cached for repeated psi).
        """
        fam = self.data.family
        if not self.n_psi or psi is None:
            return fam
        psi = np.array(psi, dtype=float)  # a copy: nlopt hands over a buffer it reuses in place
        key = tuple(psi)
        if self._fam_cache[0] != key:
            self._fam_cache = (key, fam.with_params(psi))
        return self._fam_cache[1]

    def evaluate(self, theta, beta=None, psi=None, joint=False, nagq=None) -> tuple[float, PirlsResult]:
        """-2 log L at (theta, beta, psi) by Laplace or AGQ, with PIRLS warm-started at the last mode.

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters.
        beta : numpy.ndarray, optional
            Fixed effects (default: the last joint mode's, or zeros).
        psi : numpy.ndarray, optional
            The family's parameters.
        joint : bool
            Find the joint mode of (u, beta) (stage 1; the value is then the joint-mode approximation).
        nagq : int, optional
            Override the objective's quadrature nodes.

        Returns
        -------
        tuple
            (value, PirlsResult); (inf, None) where there is no finite value (the search treats it as infeasible).
        """
        theta = np.asarray(theta, dtype=float)
        fam = self.family_at(psi)
        if beta is None:
            beta = self.warm.beta if self.warm.beta is not None else np.zeros(self.data.p)
        try:
            try:
                res = pirls(self.data, theta, beta, self.warm.u, fam, joint=joint,
                            laplace=self.laplace if not joint or self.reml else "expected", quad_stop=self.quad_stop)
            except PirlsError:
                # the warm start (the last mode, the last beta) can sit where this theta's linear predictor
                # leaves the link's domain: start cold, from u = 0 and the GLM's beta
                if joint and self.warm.beta_start is not None:
                    beta = self.warm.beta_start
                try:
                    res = pirls(self.data, theta, beta, np.zeros(self.data.structure.Q), fam, joint=joint,
                                laplace=self.laplace if not joint or self.reml else "expected",
                                quad_stop=self.quad_stop)
                except PirlsError:
                    if not joint:
                        raise
                    self.fevals += 1
                    return np.inf, None
        except np.linalg.LinAlgError:
            # an information matrix that is not positive definite here (the observed information can be
            # indefinite away from the optimum, e.g. for zero-inflated zeros): no Laplace value
            self.fevals += 1
            return np.inf, None
        if np.all(np.isfinite(res.u)):
            self.warm.u = res.u
            if joint:
                self.warm.beta = res.beta
        nagq = self.nagq if nagq is None else nagq
        if nagq > 1 and not joint:
            value = self._agq(theta, res, fam)
        else:
            ll = res.kernel_sum + self._loglik_const(fam)
            value = float(-2 * ll + self.data.structure.penalty(theta, res.u) + res.factor.logdet_re())
            if joint and self.reml:
                value += self._reml_term(res)
        self.fevals += 1
        return value, res

    def _reml_term(self, res: PirlsResult) -> float:
        """log det(R_X' R_X) - p log(2 pi): the fixed effects' part of the joint Laplace (module text above)."""
        st, p = self.data.structure, self.data.p
        if p == 0:
            return 0.0
        rx = np.diag(res.factor.Lt)[st.Qtt : st.Qtt + p]
        return float(2 * np.sum(np.log(np.abs(rx))) - p * _LOG2PI)

    def _loglik_const(self, fam: Family) -> float:
        key = tuple(fam.params) if self.n_psi else None
        if key not in self._const:
            if len(self._const) > 64:
                self._const.clear()
            self._const[key] = fam.loglik_const_sum(self.data.y, self.data.wt, self._unique_y)
        return self._const[key]

    def _agq(self, theta, res: PirlsResult, fam: Family) -> float:
        d = self.data
        term = d.structure.terms[0]
        if term.k > 1:
            return self._agq_vector(theta, res, fam)
        x = term.X[:, 0]
        th = float(theta[0])
        s = res.factor.L11[:, 0, 0]
        U = res.u[:, None] + self._nodes[None, :] / s[:, None]  # (q, K)
        eta0 = res.eta - th * x * res.u[term.codes]
        eta = eta0[:, None] + th * x[:, None] * U[term.codes]
        mu = fam.link.inverse(eta)
        # the kernel at the nodes; the constant does not depend on u and is added once
        LL = np.asarray(self._indicator @ fam.loglik_kernel(d.y[:, None], mu, d.wt[:, None]))
        g = LL - 0.5 * U * U + 0.5 * self._nodes[None, :] ** 2 + np.log(self._weights)[None, :]
        log_i = -np.log(s) - 0.5 * _LOG2PI + logsumexp(g, axis=1)
        res.agq_nodes = (U, eta, mu, g)  # the gradient (engine/gradient.py) reuses them
        return float(-2 * (np.sum(log_i) + self._loglik_const(fam)))

    def _agq_vector(self, theta, res: PirlsResult, fam: Family) -> float:
        """AGQ for a term with k = 2 or 3 coefficients per level. With A_j = L_j L_j' at the mode u-hat_j and
        u = u-hat_j + L_j^-T z,

            log I_j = -log det L_j - k/2 log 2 pi + logsumexp_m [l_j(U_jm) - |U_jm|^2 / 2 + |z_m|^2 / 2 + log w_m]

        over the tensor grid of Gauss-Hermite nodes (weight exp(-z^2 / 2)); nagq = 1 would be the Laplace."""
        d = self.data
        term = d.structure.terms[0]
        k, q, codes = term.k, term.q, term.codes
        T = term.cov.template(theta)
        Uhat = res.u.reshape(q, k)
        Linv = res.factor.L11inv  # (q, k, k)
        U = Uhat[:, None, :] + np.einsum("qji,mj->qmi", Linv, self._grid)  # (q, M, k): u-hat + L^-T z
        XT = term.X @ T  # (n, k): eta_i = eta0_i + (X T)_i . u_j(i)
        eta = (res.eta - np.sum(XT * Uhat[codes], axis=1))[:, None]
        for c in range(k):
            eta = eta + XT[:, c][:, None] * U[:, :, c][codes]  # (n, M)
        mu = fam.link.inverse(eta)
        LL = np.asarray(self._indicator @ fam.loglik_kernel(d.y[:, None], mu, d.wt[:, None]))  # (q, M)
        g = (LL - 0.5 * np.sum(U * U, axis=2) + 0.5 * np.sum(self._grid ** 2, axis=1)[None, :]
             + self._grid_logw[None, :])
        logdet = np.sum(np.log(np.diagonal(res.factor.L11, axis1=1, axis2=2)), axis=1)
        log_i = -logdet - 0.5 * k * _LOG2PI + logsumexp(g, axis=1)
        return float(-2 * (np.sum(log_i) + self._loglik_const(fam)))

    def reset(self, u=None, beta=None):
        """Set the warm start: the mode u (zeros by default) and the GLM start of the joint searches.

        Parameters
        ----------
        u : numpy.ndarray, optional
            The mode to start the next PIRLS from.
        beta : numpy.ndarray, optional
            The fixed effects of the next joint search (and its cold-restart start).
        """
        self.warm.u = np.zeros(self.data.structure.Q) if u is None else np.array(u, dtype=float)
        self.warm.beta = None if beta is None else np.array(beta, dtype=float)
        if beta is not None:
            self.warm.beta_start = self.warm.beta.copy()


class LmmObjective:
    """Profiled -2 log-likelihood (ML) or REML criterion of a linear mixed model."""

    def __init__(self, y, X, wt, offset, structure: Structure, reml: bool):
        self.structure = structure
        self.n, self.p = X.shape
        self.reml = reml
        self.wt = wt
        self.D = np.column_stack([X, y - offset])
        self.raw = structure.raw(wt, self.D)
        self.n_theta = sum(t.cov.n_theta for t in structure._orig_terms())
        self.theta_lower = np.concatenate([t.cov.lower() for t in structure._orig_terms()])
        self.theta0 = np.concatenate([t.cov.theta0() for t in structure._orig_terms()])
        self.theta_scaled = np.concatenate([t.cov.scaled() for t in structure._orig_terms()])
        self._logw = float(np.sum(np.log(wt)))
        self.fevals = 0
        self.log: list[tuple[np.ndarray, float]] = []

    def factor(self, theta):
        """The blocked factor of the LMM's system at theta.

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters.

        Returns
        -------
        BlockedFactor
            The factor of [Lambda'Z'WZLambda + I, ...; ..., [X y]'W[X y]].
        """
        return self.structure.factor(self.raw, np.asarray(theta, dtype=float))

    def __call__(self, theta) -> float:
        try:
            f = self.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        self.fevals += 1
        return self.value_from_factor(f)

    def value_from_factor(self, f) -> float:
        """The profiled deviance (ML) or REML criterion from a factor.

        Parameters
        ----------
        f : BlockedFactor
            From ``factor``.

        Returns
        -------
        float
            -2 log L (ML) or the REML criterion.
        """
        r2 = f.Lt[-1, -1] ** 2
        ld = f.logdet_re()
        nr = self.n
        if self.reml:
            ld += f.logdet_tail(0, self.p)
            nr = self.n - self.p
        return float(ld + nr * (1 + np.log(2 * np.pi * r2 / nr)) - self._logw)

    def estimates(self, theta):
        """The LMM's estimates at theta.

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters.

        Returns
        -------
        tuple
            (beta, u in y-units, sigma^2, vcov(beta), factor).
        """
        f = self.factor(theta)
        sol = f.solve_last_column()
        Q = self.structure.Q
        u, beta = sol[:Q], sol[Q:]
        nr = self.n - self.p if self.reml else self.n
        sigma2 = f.Lt[-1, -1] ** 2 / nr
        return beta, u, float(sigma2), sigma2 * self.unscaled_vcov(f), f

    def unscaled_vcov(self, f) -> np.ndarray:
        """(R_X' R_X)^-1 = (X' V^-1 X)^-1 / sigma^2 from a factor: vcov(beta) without sigma^2.

        Parameters
        ----------
        f : BlockedFactor
            From ``factor``.

        Returns
        -------
        numpy.ndarray
            (p, p).
        """
        qt = self.structure.Qtt
        rinv = np.linalg.inv(f.Lt[qt : qt + self.p, qt : qt + self.p])
        return rinv.T @ rinv
