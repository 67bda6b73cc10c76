"""Penalised iteratively re-weighted least squares: the conditional mode of u.

For fixed theta (and beta, unless ``joint``), minimise the penalised deviance

    d(u) = sum_i dev_i(y_i, mu_i(u)) / phi + |u|^2,   eta = offset + X beta + Z Lambda u,

(computed as -2 times the mu-dependent part of the log-likelihood, which differs
from the deviance by a constant),

by Fisher-scoring steps: with weights W = wt (dmu/deta)^2 / (phi V(mu)) and
pseudo-data v = Z Lambda u [+ X beta] + (y - mu) / (dmu/deta), solve

    (Lambda'Z'WZLambda + I) u_new = Lambda'Z'W v        (stage 2: beta fixed)
    [same, jointly with X'WX beta_new]                   (stage 1: joint mode)

with the blocked factor, halving the step while d rises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..families import Family
from .blocked import BlockedFactor, Structure
from .kernels import Kernels
from ..errors import FitError


@dataclass
class GlmmData:
    """What the GLMM objective needs from the model specification."""

    y: np.ndarray
    wt: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    structure: Structure
    family: Family

    @property
    def n(self) -> int:
        """The number of observations."""
        return len(self.y)

    @property
    def p(self) -> int:
        """The number of fixed effects."""
        return self.X.shape[1]


@dataclass
class PirlsResult:
    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    w: np.ndarray
    factor: BlockedFactor
    pdev: float  # -2 sum loglik kernel + penalty(u) (|u|^2 for the blocked system)
    iterations: int
    converged: bool
    kernel_sum: float = np.nan  # sum of the log-likelihood kernel at the mode
    gram1: np.ndarray | None = None  # term 1's level Gram sums of the final weights (for the gradient)
    agq_nodes: tuple | None = None  # (U, eta, mu, g) at the quadrature nodes, set by the AGQ objective



class PirlsError(FitError):
    pass


def pirls(
    data: GlmmData,
    theta: np.ndarray,
    beta: np.ndarray,
    u: np.ndarray,
    family: Family,
    joint: bool = False,
    tol: float = 1e-11,
    u_tol: float = 1e-9,
    maxit: int = 100,
    laplace: str = "expected",
    quad_stop: float = 1e-5,
) -> PirlsResult:
    """The conditional mode of u (and beta, with ``joint``) by penalised IRLS (see the module docstring).

    Parameters
    ----------
    data : GlmmData
        Response, weights, offset, X, the random-effects system and the family.
    theta, beta, u : numpy.ndarray
        Variance parameters, fixed effects and the starting mode.
    family : Family
        The family with its parameters.
    joint : bool
        Solve for (u, beta) together (stage 1).
    tol, u_tol : float
        Stop when the penalised deviance changes by less than tol (relative) and u by less than u_tol.
    maxit : int
        Most iterations.
    laplace : {"expected", "observed"}
        The information of the final factor.
    quad_stop : float
        Stop after a full Newton step on a canonical link that moved u by less than this (the next would
        move it by about its square); 0 turns the shortcut off (``Control.quad_stop``).

    Returns
    -------
    PirlsResult
        The mode, the linear predictor, weights, factor and penalised deviance.
    """
    st, y, wt, off, X = data.structure, data.y, data.wt, data.offset, data.X
    kern = Kernels(family)
    quadratic = kern.fast in ("logit", "poisson") and not joint
    u = np.array(u, dtype=float)
    beta = np.array(beta, dtype=float)

    def state(u_, beta_):
        xb = X @ beta_
        eta_ = off + xb + st.zlam_u(theta, u_)
        # -2 (log-likelihood kernel) differs from deviance / phi by a constant in u and beta
        ks, mu_ = kern.kernel(eta_, y, wt)
        pd_ = -2 * ks + st.penalty(theta, u_)
        return xb, eta_, mu_, pd_

    xb, eta, mu, pd = state(u, beta)
    if not np.isfinite(pd):
        u = np.zeros_like(u)
        xb, eta, mu, pd = state(u, beta)
    converged = False
    it = 0
    factor = None
    for it in range(1, maxit + 1):
        base = eta - off - (0.0 if joint else xb)
        w, wv = kern.weights(eta, mu, y, wt, base)
        try:
            raw = st.raw(w, X if joint else None)
            factor = st.factor(raw, theta)
        except np.linalg.LinAlgError:
            # an indefinite observed information (a family that steps with it, e.g. a zero model with random
            # effects): step with its positive semi-definite part instead
            if not hasattr(family, "psd_weights"):
                raise
            w, wv = family.psd_weights(eta, y, wt, base)
            raw = st.raw(w, X if joint else None)
            factor = st.factor(raw, theta)
        rhs = st.lam_zt(theta, wv)
        if joint:
            rhs = np.concatenate([rhs, X.T @ wv])
        sol = factor.solve(rhs)
        du = sol[: st.Q] - u
        db = sol[st.Q :] - beta if joint else 0.0
        step = 1.0
        for _ in range(30):
            u_c = u + step * du
            b_c = beta + step * db if joint else beta
            xb_c, eta_c, mu_c, pd_c = state(u_c, b_c)
            if np.isfinite(pd_c) and pd_c <= pd + 1e-12 * abs(pd):
                break
            step *= 0.5
        else:
            break  # no decrease along the Newton direction: we are at the mode to rounding
        change = pd - pd_c
        moved = step * max(np.max(np.abs(du), initial=0.0), np.max(np.abs(db), initial=0.0))
        u, beta, xb, eta, mu, pd = u_c, b_c, xb_c, eta_c, mu_c, pd_c
        # stop when the objective has settled and the mode has (|step| < u_tol): the Laplace
        # log-determinant depends on u-hat to first order, so a loose mode makes a noisy objective
        if change < tol * (abs(pd) + 1.0) and moved < u_tol:
            converged = True
            break
        if quad_stop and quadratic and step == 1.0 and moved < quad_stop:
            # a full Newton step on a canonical link converges quadratically: the next step would move
            # u by about moved^2, below u_tol; take the mode as found, refactor there (below)
            converged = True
            factor = None
            break
    # weights and factor at the mode itself (for the Laplace log-determinant, with the information
    # it asks for); when the last step moved u by less than u_tol and PIRLS stepped with that same
    # information, the last factor is already there (to that order) and is kept
    if not converged or factor is None or not kern.steps_with(laplace):
        w = kern.final_weights(laplace, eta, mu, y, wt)
        raw = st.raw(w, X if joint else None)
        factor = st.factor(raw, theta)
    if not np.isfinite(pd):
        raise PirlsError("PIRLS did not find a finite penalised deviance")
    return PirlsResult(u, beta, eta, mu, w, factor, pd, it, converged or it < maxit,
                       kernel_sum=-(pd - st.penalty(theta, u)) / 2, gram1=None if joint else raw.G1)
