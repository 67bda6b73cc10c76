"""Outer optimisation: BOBYQA (nlopt) in two stages, derivative checks, one restart.

GLMM (as lme4's glmer):
  stage 1  theta [, psi]           beta and u jointly inside PIRLS
  stage 2  theta, delta [, psi]    beta = beta1 + s * delta (s: stage-1 standard errors), u in PIRLS
(psi: the family's own parameters on an unconstrained scale, e.g. log dispersion, zero-inflation
coefficients).
Then the gradient and Hessian of -2 log L by central differences at the optimum
give the convergence check (scaled gradient |H^{-1} g|, as lme4) and the
standard errors.  If the check fails, the search restarts once from the best
point with Nelder-Mead and is checked again.  Everything is kept on an
``OptSummary``: start and final values, every (parameters, objective) pair,
return codes, evaluation counts.
"""

from __future__ import annotations

import dataclasses

import time
from dataclasses import dataclass, field

import nlopt
import numpy as np

from .blocked import level_gram
from .lmm_gradient import lmm_gradient, supports_lmm_gradient
from .gradient import (agq_gradient, laplace_gradient, laplace_gradient_general, supports_agq_gradient,
                       supports_general_gradient, supports_gradient)
from .objective import GlmmObjective, LmmObjective
from .control import Control, DEFAULT_CONTROL
from ..errors import FitError, InputError

SINGULAR_TOL = 1e-4
#: the objective's value where PIRLS finds no mode (outside the family's or link's domain): the searches step back
INFEASIBLE = 1e300
GRAD_TOL = 2e-3
# the tolerances and switches of one fit are its Control (engine/control.py): stage 1 only has to come
# close (stage 2 starts from it); the gradient check and Newton polish after stage 2 catch a search that
# stops short

_RC = {
    1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached", 5: "maxeval reached",
    6: "maxtime reached", -1: "failure", -2: "invalid arguments", -3: "out of memory",
    -4: "roundoff limited", -5: "forced stop",
}


@dataclass
class OptStage:
    name: str
    optimizer: str
    x0: np.ndarray
    x: np.ndarray
    fval: float
    fevals: int
    return_code: str


@dataclass
class OptSummary:
    """Everything about how the optimum was found (MixedModels.jl's OptSummary)."""

    stages: list[OptStage] = field(default_factory=list)
    theta: np.ndarray | None = None
    beta: np.ndarray | None = None
    psi: np.ndarray | None = None
    family: object = None
    fval: float = np.nan
    fevals: int = 0
    log: list = field(default_factory=list)
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    param_names: list[str] = field(default_factory=list)
    vcov_method: str = ""
    converged: bool = True
    singular: bool = False
    messages: list[str] = field(default_factory=list)
    time_s: float = 0.0
    theta_scale: float = 1.0  # theta was searched as theta / theta_scale (the linear predictor's scale)
    kind: str = "glmm"  # "glmm" or "lmm"
    reml: bool = False
    nagq: int = 1
    control: Control = DEFAULT_CONTROL  # the switches and tolerances this fit was optimised with
    laplace: str = "expected"  # the Laplace information ("expected" as lme4, "observed" as glmmTMB)
    objective: object = field(default=None, repr=False)  # the objective optimised (read once, by Fit())
    result: object = field(default=None, repr=False)  # the PIRLS result at the optimum (GLMMs)
    _scale: np.ndarray | None = field(default=None, repr=False)  # beta = beta1 + _scale * x in stage 2
    _free: np.ndarray | None = field(default=None, repr=False)  # coordinates off their bounds at the optimum
    #: REML (GLMM): the fixed effects' covariance from the variance parameters' uncertainty, added to the
    #: conditional (R_X' R_X)^-1 (glmmTMB's marginal of its joint precision)
    reml_beta_extra: np.ndarray | None = field(default=None, repr=False)
    #: REML (GLMM): the family's parameters' covariance from the REML criterion's Hessian
    reml_cov_psi: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """The summary as plain values (stages, evaluations, convergence, messages, the Control).

        Returns
        -------
        dict
            JSON-ready values.
        """
        return {
            "stages": [
                {"name": s.name, "optimizer": s.optimizer, "fval": s.fval, "fevals": s.fevals,
                 "return_code": s.return_code} for s in self.stages
            ],
            "fevals": self.fevals,
            "converged": self.converged,
            "singular": self.singular,
            "vcov_method": self.vcov_method,
            "messages": list(self.messages),
            "max_abs_gradient": None if self.gradient is None else float(np.max(np.abs(self.gradient), initial=0)),
            "control": self.control.to_dict(),
        }


def minimize(f, x0, lower, step, *, upper=None, ftol_abs=1e-8, xtol_rel=1e-8, maxeval=20000, algorithm="bobyqa",
             log=None):
    """Minimise f with nlopt, tracking the best point seen.

    Parameters
    ----------
    f : callable
        f(x) -> float (a non-finite value counts as infeasible).
    x0, lower, step : numpy.ndarray
        Start, lower bounds and initial steps.
    upper : numpy.ndarray, optional
        Upper bounds.
    ftol_abs, xtol_rel : float
        Stopping rules.
    maxeval : int
        Most evaluations.
    algorithm : {"bobyqa", "neldermead", "sbplx"}
        The nlopt algorithm.
    log : list, optional
        Appended with every (x, f(x)).

    Returns
    -------
    tuple
        (x, f(x), evaluations, return-code text).
    """
    x0 = np.asarray(x0, dtype=float)
    step = np.asarray(step, dtype=float)
    lower = np.asarray(lower, dtype=float)
    d = len(x0)
    # nlopt is never handed a NaN (it can corrupt its memory): a non-finite start, step or bound is
    # a failure of what came before, reported as such
    if not (np.all(np.isfinite(x0)) and np.all(np.isfinite(step))
            and not np.any(np.isnan(lower)) and (upper is None or not np.any(np.isnan(upper)))):
        raise FitError(f"the optimiser was asked to start from non-finite values (start {x0}, steps {step}); "
                       "the estimates before this step are not finite")
    if d == 0:
        v = f(x0)
        return x0, v, 1, "no free parameters"
    best = {"f": np.inf, "x": x0.copy(), "n": 0}

    def fn(x, grad):
        if not np.all(np.isfinite(x)):
            return INFEASIBLE
        v = finite_or_inf(f, x)
        best["n"] += 1
        if log is not None:
            log.append((np.array(x), v))
        if not np.isfinite(v):
            return INFEASIBLE
        if v < best["f"]:
            best["f"], best["x"] = v, np.array(x)
        return v

    alg = {"bobyqa": nlopt.LN_BOBYQA, "neldermead": nlopt.LN_NELDERMEAD, "sbplx": nlopt.LN_SBPLX}[algorithm]
    opt = nlopt.opt(alg, d)
    opt.set_min_objective(fn)
    opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
    if upper is not None:
        opt.set_upper_bounds(np.asarray(upper, dtype=float))
    opt.set_initial_step(np.asarray(step, dtype=float))
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_rel(xtol_rel)
    opt.set_maxeval(maxeval)
    try:
        opt.optimize(np.clip(x0, lower, np.inf if upper is None else upper))
        rc = _RC.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
    except nlopt.RoundoffLimited:
        rc = "roundoff limited"
    except (RuntimeError, ValueError) as err:  # nlopt reports failures as exceptions
        rc = f"failure: {err}"
    return best["x"], best["f"], best["n"], rc


def finite_or_inf(f, x) -> float:
    """f(x), or +inf where the objective has no finite value there.

    PIRLS finds no finite mode where an inverse-type link's linear predictor left the link's domain; the
    searches treat such a point as infeasible instead of failing.

    Parameters
    ----------
    f : callable
        The objective.
    x : numpy.ndarray
        The point.

    Returns
    -------
    float
        f(x) or inf.
    """
    try:
        v = float(f(x))
    except (FitError, np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError, OverflowError):
        return np.inf
    return v if np.isfinite(v) else np.inf


def derivatives(f, x, h, lower):
    """Central-difference gradient and Hessian; coordinates on their lower bound are held fixed.

    A step whose probe has no finite objective (it left the link's domain) is shrunk tenfold, up to four
    times, for that coordinate.

    Parameters
    ----------
    f : callable
        The objective.
    x, h, lower : numpy.ndarray
        The point, the steps and the lower bounds.

    Returns
    -------
    tuple
        (gradient, Hessian, mask of free coordinates).
    """
    x = np.asarray(x, dtype=float)
    h = np.array(h, dtype=float)
    d = len(x)
    free = ~(x - h <= lower)
    f0 = f(x)
    g = np.zeros(d)
    H = np.zeros((d, d))
    fp, fm = np.zeros(d), np.zeros(d)
    idx = np.flatnonzero(free)
    for i in idx:
        for _ in range(5):
            e = np.zeros(d)
            e[i] = h[i]
            fp[i], fm[i] = finite_or_inf(f, x + e), finite_or_inf(f, x - e)
            if np.isfinite(fp[i]) and np.isfinite(fm[i]):
                break
            h[i] /= 10
        g[i] = (fp[i] - fm[i]) / (2 * h[i])
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for a, i in enumerate(idx):
        for j in idx[a + 1 :]:
            e = np.zeros(d)
            e[i], e[j] = h[i], h[j]
            fpp, fmm = finite_or_inf(f, x + e), finite_or_inf(f, x - e)
            H[i, j] = H[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (2 * h[i] * h[j])
    return g, H, free


def gradient_derivatives(fg, x, h, lower):
    """Gradient (analytic) and Hessian by forward differences of the gradient, symmetrised.

    d evaluations (the gradient is exact, so the step's error is O(h) in the Hessian, 1e-3 relative on theta
    and 0.01 standard errors on beta; central differences gave the same standard errors to 4 digits).

    Parameters
    ----------
    fg : callable
        fg(x) -> (value, gradient).
    x, h, lower : numpy.ndarray
        The point, the steps and the lower bounds.

    Returns
    -------
    tuple
        (gradient, Hessian, mask of free coordinates).
    """
    x = np.asarray(x, dtype=float)
    d = len(x)
    free = ~(x - h <= lower)
    _, g = fg(x)
    H = np.zeros((d, d))
    for i in np.flatnonzero(free):
        e = np.zeros(d)
        e[i] = h[i]
        H[:, i] = (fg(x + e)[1] - g) / h[i]
    H = 0.5 * (H + H.T)
    H[~free, :] = 0.0
    H[:, ~free] = 0.0
    g = np.where(free, g, 0.0)
    return g, H, free


def _minimize_gradient(fg, x0, lower, log, n_theta: int = 0, control: Control = DEFAULT_CONTROL):
    """L-BFGS-B with the analytic gradient (scipy); returns (x, fval, nevals, message).

    beta is already in standard-error units (curvature of -2 log L about 2 in each coordinate); the
    first ``n_theta`` coordinates are put on the same footing by a forward difference of the gradient at
    the start (one evaluation each), since L-BFGS-B starts from an identity Hessian. (A full Hessian
    preconditioner was tried: from lme4's theta0 its first steps overshoot through zero; no gain.)"""
    from scipy.optimize import minimize as sp_minimize

    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    n = [0]

    best = {"f": np.inf, "x": x0}

    def count(x):
        n[0] += 1
        v, g = fg(x)
        log.append((np.array(x), v))
        if v < min(best["f"], INFEASIBLE):
            best.update(f=v, x=np.array(x))
        return v, g

    f0, g0 = count(x0)
    S = np.ones(len(x0))
    for i in range(n_theta):
        h = 1e-3 * max(abs(x0[i]), 0.1)
        e = np.zeros(len(x0))
        e[i] = h
        curv = (count(x0 + e)[1][i] - g0[i]) / h
        if np.isfinite(curv) and curv > 0:
            S[i] = 1 / np.sqrt(curv / 2)

    def scaled(y):
        if not np.any(y):  # the start, already evaluated
            return f0, g0 * S
        v, g = count(x0 + S * y)
        return v, g * S

    # stop when a step gains less than ftol2 / 10 in -2 log L (scipy's ftol is relative), or when the
    # gradient in these unit-curvature coordinates is below gtol (a Newton step of about gtol / 2)
    opts = {"maxiter": 1000, "ftol": 0.1 * control.ftol2 / max(abs(f0), 1.0), "gtol": control.gtol, "maxcor": 20}
    for attempt in range(4):
        lo = (lower - x0) / S
        n_before = n[0]
        r = sp_minimize(scaled, np.zeros(len(x0)), jac=True, method="L-BFGS-B",
                        bounds=[(b if np.isfinite(b) else None, None) for b in lo], options=opts)
        seen = [v for _, v in log[len(log) - (n[0] - n_before):]]
        # L-BFGS-B's first step has unit length in these coordinates; where it lands outside the objective's
        # domain (PIRLS finds no mode: fg's INFEASIBLE with a zero gradient) its line search cannot step back
        # and it stops where it started. Then (no feasible point below the start seen) start again with steps
        # a tenth as long, at most three times
        stuck = min([v for v in seen if v < INFEASIBLE], default=np.inf) >= f0 - opts["ftol"] * max(abs(f0), 1.0)
        if not (any(v >= INFEASIBLE for v in seen) and stuck and attempt < 3):
            break
        S = S / 10
    x, fx, msg = x0 + S * np.asarray(r.x, dtype=float), float(r.fun), str(r.message)
    if attempt:
        msg += f" (the first {attempt} searches met an infeasible first step; steps shortened 10x each time)"
    if not fx < INFEASIBLE:  # ended on a point without a mode (its zero gradient looks converged): the best seen
        x, fx = best["x"], best["f"]
        msg += "; it ended where PIRLS found no mode: the best point it had evaluated is kept"
    return np.maximum(x, lower), fx, n[0], msg


def final_newton_step(f, x, fx, g, sg, free, lower, summ):
    """One Newton step on the finite-difference derivatives in hand after a BOBYQA search, kept if lower.

    BOBYQA stops when a step gains less than its tolerance, which can leave the optimum 1e-5 away in
    -2 log L on a flat ridge (the zero-inflated Salamanders model, Pixel's REML fit); the step costs one
    evaluation and is recorded as a stage.

    Parameters
    ----------
    f : callable
        The objective.
    x : numpy.ndarray
        The search's end.
    fx : float
        f(x).
    g : numpy.ndarray
        The gradient at x.
    sg : numpy.ndarray
        H^-1 g over the free coordinates (``_scaled_gradient``).
    free : numpy.ndarray
        Mask of the coordinates not on a bound.
    lower : numpy.ndarray
        Lower bounds.
    summ : OptSummary
        Where the stage is recorded.

    Returns
    -------
    tuple or None
        (x, f(x)) of the step when it is lower, else None.
    """
    if 0.5 * float(g[free] @ sg) <= 1e-8:  # the predicted gain is below the noise
        return None
    step = np.zeros(len(x))
    step[free] = sg
    x_n = np.maximum(x - step, lower)
    f_n = finite_or_inf(f, x_n)
    kept = f_n < fx - 1e-10
    summ.stages.append(OptStage("final Newton step", "newton", x, x_n, f_n, 1, "kept" if kept else "not kept"))
    return (x_n, f_n) if kept else None


def boundary_escape(f, x, fx, nt, theta_lower, scale=1.0):
    """A point off the boundary that is lower than x, or None.

    For every variance parameter on its bound 0 (the first ``nt`` coordinates, theta = scale * x), probe
    theta = 0.01 and 0.1: the deviance is even in it, so a gradient search cannot tell a minimum there
    from a saddle.

    Parameters
    ----------
    f : callable
        The objective in the search's coordinates.
    x : numpy.ndarray
        The point the search ended at.
    fx : float
        f(x).
    nt : int
        The number of theta coordinates (first in x).
    theta_lower : numpy.ndarray
        theta's lower bounds.
    scale : float or numpy.ndarray
        theta per unit of x (per coordinate).

    Returns
    -------
    numpy.ndarray or None
        The lowest probe below fx - 1e-8, else None.
    """
    best, best_v = None, fx - 1e-8
    scale = np.broadcast_to(np.asarray(scale, dtype=float), (nt,))
    for i in range(nt):
        if theta_lower[i] != 0 or x[i] * scale[i] > SINGULAR_TOL:
            continue
        for delta in (0.01, 0.1):
            xt = np.array(x, dtype=float)
            xt[i] = delta / scale[i]
            v = finite_or_inf(f, xt)
            if v < best_v:
                best, best_v = xt, v
    return best


def flat_directions(g, H, free) -> np.ndarray:
    """Free coordinates whose curvature and gradient are both ~0 (|H_ii|, |g_i| < 1e-6): a parameter run to
    its limit on a flat, stationary ridge (a zero-inflation probability or an NB size going to 0 or to
    infinity). Mask over the free coordinates.

    Parameters
    ----------
    g, H : numpy.ndarray
        Gradient and Hessian.
    free : numpy.ndarray
        Mask of the coordinates not held on a bound.

    Returns
    -------
    numpy.ndarray
        Boolean mask over ``g[free]``.
    """
    gi, Hi = g[free], H[np.ix_(free, free)]
    return (np.abs(np.diag(Hi)) < 1e-6) & (np.abs(gi) < 1e-6)


def _scaled_gradient(g, H, free):
    """H^-1 g over the free coordinates, the flat stationary ones (``flat_directions``) left at 0; None when
    the rest of the Hessian is not positive definite."""
    gi, Hi = g[free], H[np.ix_(free, free)]
    keep = ~flat_directions(g, H, free)
    out = np.zeros(len(gi))
    if keep.any():
        Hk, gk = Hi[np.ix_(keep, keep)], gi[keep]
        try:
            c = np.linalg.cholesky(Hk)
            out[keep] = np.linalg.solve(c.T, np.linalg.solve(c, gk))
            if np.max(np.abs(out), initial=0) <= GRAD_TOL:
                return out
        except np.linalg.LinAlgError:
            pass
        # a flat ridge along a combination of parameters (two zero-inflation coefficients run to +-infinity
        # with their sum identified): eigendirections of ~0 curvature and ~0 slope are left out as the
        # coordinate ones are; the rest must still be positive definite
        if not (np.all(np.isfinite(Hk)) and np.all(np.isfinite(gk))):
            return None
        try:
            lam, V = np.linalg.eigh(Hk)
        except np.linalg.LinAlgError:
            return None
        slope = V.T @ gk
        flat = (np.abs(lam) < 1e-6) & (np.abs(slope) < 1e-6)
        if np.any(lam[~flat] <= 0):
            return None
        out[keep] = V[:, ~flat] @ (slope[~flat] / lam[~flat])
    return out


def _diag_theta_mask(obj) -> np.ndarray:
    return obj.theta_lower == 0


def optimize_glmm(obj: GlmmObjective, beta0: np.ndarray, psi0: np.ndarray, *, nagq: int = 1,
                  calc_derivs: bool = True, control: Control = DEFAULT_CONTROL,
                  theta0: np.ndarray | None = None) -> tuple[OptSummary, object]:
    """Fit theta, beta (and the family's parameters psi) of a GLMM.

    Parameters
    ----------
    obj : GlmmObjective
        The objective (on any random-effects system).
    beta0, psi0 : numpy.ndarray
        The GLM start and the family's starting parameters.
    nagq : int
        Quadrature nodes (0: stop at the joint mode).
    calc_derivs : bool
        Compute the gradient and Hessian at the optimum (convergence check, standard errors).
    control : Control
        Switches and tolerances.
    theta0 : numpy.ndarray, optional
        A start for theta (the user's ``start``) in place of the moment estimate.

    Returns
    -------
    tuple
        (OptSummary, the PIRLS result at the optimum).
    """
    t0 = time.perf_counter()
    summ = OptSummary(control=control)
    nt, p = obj.n_theta, obj.data.p
    m = obj.n_psi
    psi0 = np.asarray(psi0, dtype=float)
    m1 = m  # family parameters searched in stage 1

    # theta is searched as theta / ts: its steps, its bound tests and the singularity threshold are then
    # relative to the scale of the linear predictor (ts = 1 for logit, probit, cloglog and log links)
    summ.theta_scale = theta_scale(obj, beta0)
    # per coordinate: SD-like parameters in units of the scale, correlation and range parameters as they are
    ts = np.where(obj.theta_scaled, summ.theta_scale, 1.0)

    def unpack1(x):
        return ts * x[:nt], ((x[nt:] if m1 else psi0) if m else None)

    # ---- stage 1: theta [, psi], beta inside PIRLS --------------------------------
    obj.reset(beta=beta0)
    th0 = (np.asarray(theta0, dtype=float) if theta0 is not None
           else moment_theta(obj, beta0, psi0) if control.moment_start else obj.theta0)
    x0 = np.concatenate([th0 / ts, psi0[:m1]])
    lower1 = np.concatenate([obj.theta_lower, np.full(m1, -np.inf)])
    f1 = lambda x: obj.evaluate(*_t(unpack1(x)), joint=True)[0]  # noqa: E731
    step1 = np.concatenate([np.full(nt, 0.25), np.full(m1, 0.25)])
    grad_kind = ("single" if supports_gradient(obj) else "general" if supports_general_gradient(obj)
                 else "agq" if supports_agq_gradient(obj) else None)
    system = obj.data.structure
    if not system.supports_joint:
        # a random-effects system without the joint (u, beta) solve (the tree path): stage 2 starts
        # from the GLM, its beta coordinates in units of the GLM's Wald standard errors
        if nagq == 0:
            raise InputError(f"nagq=0 needs the joint (u, beta) system, which the {system.name} system does not "
                             "offer; use nagq=1")
        theta1, psi1 = unpack1(x0)
        fv1, _ = obj.evaluate(theta1, beta0, psi1)
        summ.stages.append(OptStage("stage 1 (beta in PIRLS)", "none", x0, x0, fv1, 1,
                                    f"skipped: the {system.name} system has no joint (u, beta) solve; "
                                    "stage 2 starts from the GLM"))
        res1 = None
        beta1 = np.asarray(beta0, dtype=float)
        scale = glm_standard_errors(obj, beta0, psi0)
    elif nagq >= 1 and control.skip_stage1 and control.gradient and grad_kind and not obj.reml:
        # the gradient path needs only a start: the joint mode at the moment estimate of theta
        theta1, psi1 = unpack1(x0)
        fv1, res1 = obj.evaluate(theta1, psi=psi1, joint=True)
        summ.stages.append(OptStage("stage 1 (beta in PIRLS)", "none", x0, x0, fv1, 1,
                                    "skipped: analytic gradient in stage 2"))
    else:
        # REML's answer is this stage's: it is searched to stage 2's tolerances
        ftol1, xtol1 = (control.ftol2, control.xtol2) if obj.reml else (control.ftol1, control.xtol1)
        x1, fv1, n1, rc1 = minimize(f1, x0, lower1, step1, ftol_abs=ftol1, xtol_rel=xtol1,
                                    maxeval=control.maxfev, log=summ.log, algorithm=control.algorithm)
        summ.stages.append(OptStage("REML (beta integrated, in PIRLS)" if obj.reml else "stage 1 (beta in PIRLS)",
                                    control.algorithm, x0, x1, fv1, n1, rc1))
        theta1, psi1 = unpack1(x1)
        _, res1 = obj.evaluate(theta1, psi=psi1, joint=True)
    if not system.supports_joint:
        pass
    elif res1 is None:
        # the joint (u, beta) system is singular here (e.g. separation in binary data): go on from the
        # GLM start with unit scaling; stage 2 solves for u alone and does not need that system
        summ.messages.append("the joint PIRLS system was singular at the stage-1 optimum (separation?); "
                             "stage 2 started from the GLM estimates")
        beta1 = obj.warm.beta if obj.warm.beta is not None else np.asarray(beta0, dtype=float)
        scale = np.ones(p)
    else:
        beta1 = res1.beta
        scale = _beta_scale(res1, obj)
    if nagq == 0 or obj.reml:
        # the joint mode's criterion is the answer: the nAGQ = 0 approximation, or the REML criterion (beta
        # integrated with u, its estimate the joint mode at the optimal theta)
        if res1 is None:
            raise FitError(("REML" if obj.reml else "nAGQ = 0") + " needs the joint PIRLS system, which is "
                           "singular here" + ("" if obj.reml else "; use nagq=1"))
        summ.theta, summ.beta, summ.psi, summ.fval = theta1, beta1, psi1, fv1
        summ.family = obj.family_at(psi1)
        summ.vcov_method = "PIRLS (nAGQ = 0)" if not obj.reml else "PIRLS (R_X' R_X)^-1 at the REML estimates"
        if obj.reml:
            summ.reml = True
            if summ.stages and summ.stages[-1].fevals >= control.maxfev:
                summ.messages.append("the REML search stopped at maxfev")
            if calc_derivs:
                x1 = np.concatenate([theta1 / ts, psi1[:m1] if m1 else []])
                out = reml_beta_extra(lambda x: obj.evaluate(*_t(unpack1(x)), joint=True), x1, lower1, summ)
                if out is not None:
                    summ.reml_beta_extra, V, free = out
                    if m1:
                        pos = {j: i for i, j in enumerate(free)}
                        idx = [pos.get(nt + j) for j in range(m1)]
                        C = np.full((m1, m1), np.nan)
                        for a, ia in enumerate(idx):
                            for b, ib in enumerate(idx):
                                if ia is not None and ib is not None:
                                    C[a, b] = V[ia, ib]
                        summ.reml_cov_psi = C
                obj.reset(u=res1.u, beta=res1.beta)
                obj.evaluate(theta1, psi=psi1, joint=True)
        summ.fevals = obj.fevals
        summ.time_s = time.perf_counter() - t0
        return summ, res1

    # ---- stage 2: theta, beta (scaled), [psi]; u inside PIRLS ----------------------
    def unpack2(x):
        theta = ts * x[:nt]
        beta = beta1 + scale * x[nt : nt + p]
        psi = x[nt + p :] if m else None
        return theta, beta, psi

    # a point where PIRLS finds no finite mode (a family parameter run far out) is infeasible, not fatal
    f2 = lambda x: finite_or_inf(lambda z: obj.evaluate(*unpack2(z))[0], x)  # noqa: E731
    x20 = np.concatenate([theta1 / ts, np.zeros(p), psi1 if m else []])
    lower2 = np.concatenate([obj.theta_lower, np.full(p, -np.inf), np.full(m, -np.inf)])
    step2 = np.concatenate([np.maximum(control.step2_theta * np.abs(theta1 / ts), 0.05), np.full(p, control.step2_beta),
                            np.full(m, 0.1)])
    use_grad = control.gradient and nagq >= 1 and grad_kind is not None

    last = {}

    def fg(x):
        """-2 log L and its analytic gradient in the stage-2 coordinates; PIRLS starts from the last mode
        moved to first order (u + du/dx (x - x_last))."""
        if "fg" in last and np.array_equal(x, last["fg"][0]):  # asked again at the same point
            return last["fg"][1], last["fg"][2].copy()
        theta, beta, psi = unpack2(x)
        # PIRLS from the last mode moved to first order (without du/dx: the objective's own warm start); where
        # that start fails, from the last mode itself, then from zero: a point is infeasible only if PIRLS finds
        # no mode from any of them
        starts = [last["u"] + last["J"] @ (x - last["x"]), last["u"]] if "J" in last else [obj.warm.u]
        for k, u_start in enumerate(starts + [None]):
            if k or "J" in last:  # (the warm start as it stands is used without a reset)
                obj.reset(u=u_start)
            try:
                val, res = obj.evaluate(theta, beta, psi)
            except (FitError, np.linalg.LinAlgError, FloatingPointError, OverflowError):
                val, res = np.inf, None  # outside the family's domain: infeasible, the line search steps back
            if res is not None and np.isfinite(val):
                break
        if res is None or not np.isfinite(val):
            return INFEASIBLE, np.zeros_like(x)
        if grad_kind in ("single", "agq"):
            gt, gb, gp, J = (laplace_gradient(obj, theta, beta, res, du=True, psi=psi) if grad_kind == "single"
                             else agq_gradient(obj, theta, beta, res))
            J[:, :nt] *= ts
            J[:, nt : nt + p] *= scale
            last.update(x=np.array(x), u=res.u.copy(), J=J)
        else:
            gt, gb, gp = laplace_gradient_general(obj, theta, beta, res, psi=psi)
        grad = np.concatenate([gt * ts, gb * scale, gp])
        last["fg"] = (np.array(x), val, grad.copy())
        if val < last.get("best", (None, np.inf))[1]:
            last["best"] = (np.array(x), val, res)
        return val, grad

    if use_grad:
        x2, fv2, n2, rc2 = _minimize_gradient(fg, x20, lower2, summ.log, n_theta=nt, control=control)
        summ.stages.append(OptStage("stage 2 (theta, beta)", "L-BFGS-B, analytic gradient", x20, x2, fv2, n2, rc2))
    else:
        x2, fv2, n2, rc2 = minimize(f2, x20, lower2, step2, ftol_abs=control.ftol2, xtol_rel=control.xtol2,
                                    algorithm=control.algorithm,
                                    maxeval=control.maxfev, log=summ.log)
        summ.stages.append(OptStage("stage 2 (theta, beta)", control.algorithm, x20, x2, fv2, n2, rc2))

    on_bound = x2[:nt][obj.theta_lower == 0] <= SINGULAR_TOL
    if on_bound.any():
        # a variance parameter ended on its bound: a boundary reached from this start can be a worse one
        # than lme4 finds from theta0 (a vector-valued term can go singular along another direction), so
        # search once more from lme4's start and keep the better optimum
        x2b0 = np.concatenate([obj.theta0, np.zeros(p), psi1 if m else []])
        if use_grad:
            x2b, fv2b, n2b, rc2b = _minimize_gradient(fg, x2b0, lower2, summ.log, n_theta=nt, control=control)
            how = "L-BFGS-B, analytic gradient"
        else:
            x2b, fv2b, n2b, rc2b = minimize(f2, x2b0, lower2, step2, ftol_abs=control.ftol2, xtol_rel=control.xtol2,
                                            algorithm=control.algorithm,
                                            maxeval=control.maxfev, log=summ.log)
            how = control.algorithm
        summ.stages.append(OptStage("stage 2 from lme4's theta0 (boundary reached)", how, x2b0, x2b, fv2b, n2b, rc2b))
        if np.isfinite(fv2b) and fv2b < fv2 - 1e-8:
            summ.messages.append(f"the first search ended on the boundary at -2 log L {fv2:.6f}; a second one from "
                                 f"lme4's start reached {fv2b:.6f}")
            x2, fv2 = x2b, fv2b
        obj.reset()
        obj.evaluate(*unpack2(x2))  # leave the warm start at the kept optimum
        last.pop("fg", None)
    if use_grad:
        # the deviance is even in a scalar variance parameter, so its gradient there is exactly 0: a search
        # that reached theta_j = 0 stays there even when 0 is a saddle (Arabidopsis' NB2 model: gen's
        # variance; 0.41 log-likelihood units lost). Probe off the boundary and search again from a point
        # that is lower
        for _ in range(3):
            x_off = boundary_escape(f2, x2, fv2, nt, obj.theta_lower, ts)
            if x_off is None:
                break
            x2c, fv2c, n2c, rc2c = _minimize_gradient(fg, x_off, lower2, summ.log, n_theta=nt, control=control)
            summ.stages.append(OptStage("stage 2 off the boundary (a zero variance was a saddle)",
                                        "L-BFGS-B, analytic gradient", x_off, x2c, fv2c, n2c, rc2c))
            if not (np.isfinite(fv2c) and fv2c < fv2 - 1e-8):
                break
            summ.messages.append(f"a variance on its bound was a saddle at -2 log L {fv2:.6f}; the search off the "
                                 f"boundary reached {fv2c:.6f}")
            x2, fv2 = x2c, fv2c
        obj.reset()
        obj.evaluate(*unpack2(x2))
        last.pop("fg", None)

    names = [f"theta{i + 1}" for i in range(nt)] + [f"beta{i + 1}" for i in range(p)] + obj.data.family.param_names()
    summ.param_names = names
    # steps: 1e-3 relative on theta, 0.01 standard errors on beta, 1e-3 on psi
    h = np.concatenate([1e-3 * np.maximum(np.abs(x2[:nt]), 0.1), np.full(p, 1e-2), np.full(m, 1e-3)])
    best_u = obj.warm.u.copy()

    def check(x):
        obj.reset(u=best_u)
        g, H, free = gradient_derivatives(fg, x, h, lower2) if use_grad else derivatives(f2, x, h, lower2)
        sg = _scaled_gradient(g, H, free)
        return g, H, free, sg

    if calc_derivs:
        g, H, free, sg = check(x2)
        if _bad(sg):
            # another optimiser from the best point: Newton steps on the finite-difference
            # gradient and Hessian we already have (quadratic near the optimum) ...
            n_before = obj.fevals

            def keep_mode():
                nonlocal best_u
                best_u = obj.warm.u.copy()

            x2, fv2, (g, H, free, sg) = newton_polish(f2, x2, fv2, (g, H, free, sg), lower2, check,
                                                      on_accept=keep_mode)
            summ.stages.append(OptStage("restart", "newton", x20, x2, fv2, obj.fevals - n_before,
                                        "converged" if not _bad(sg) else "not converged"))
            summ.messages.append(f"the {'L-BFGS-B' if use_grad else 'BOBYQA'} search stopped short of the "
                                 "optimum's gradient tolerance; finished with Newton steps on the finite-difference "
                                 "Hessian")
        if _bad(sg):
            # ... and if that fails, Nelder-Mead
            x3, fv3, n3, rc3 = minimize(f2, x2, lower2, step2 * 0.5, ftol_abs=1e-10, xtol_rel=1e-10,
                                        maxeval=control.maxfev, algorithm="neldermead", log=summ.log)
            summ.stages.append(OptStage("restart", "neldermead", x2, x3, fv3, n3, rc3))
            summ.messages.append(
                f"scaled gradient {'NA' if sg is None else f'{np.max(np.abs(sg)):.3g}'} after the first search; "
                "restarted once with Nelder-Mead"
            )
            if fv3 < fv2:
                x2, fv2 = x3, fv3
                obj.reset()
                obj.evaluate(*unpack2(x2))
                best_u = obj.warm.u.copy()
            g, H, free, sg = check(x2)
            if _bad(sg) and use_grad:
                # the gradient path failed: the derivative-free path from the same start, the better kept
                # (a family's objective can be numerically rough where the gradient led, e.g. NB1 with phi
                # near 0, where log-gamma differences cancel)
                x4, fv4, n4, rc4 = minimize(f2, x20, lower2, step2, ftol_abs=control.ftol2, xtol_rel=control.xtol2,
                                            maxeval=control.maxfev, log=summ.log)
                summ.stages.append(OptStage("stage 2 without the gradient (the gradient path failed)", "bobyqa",
                                            x20, x4, fv4, n4, rc4))
                if np.isfinite(fv4) and fv4 < fv2:
                    x2, fv2 = x4, fv4
                    obj.reset()
                    obj.evaluate(*unpack2(x2))
                    best_u = obj.warm.u.copy()
                    last.clear()
                    use_grad = False
                    g, H, free, sg = check(x2)
            if _bad(sg):
                summ.converged = False
                summ.messages.append(
                    "Model failed to converge: scaled gradient max|H^-1 g| = "
                    + ("NA (Hessian not positive definite)" if sg is None else f"{np.max(np.abs(sg)):.3g}")
                    + f" (tol {GRAD_TOL}). Try rescaling predictors, simplifying the random effects, "
                    "or check fit.optsummary.log."
                )
        if not use_grad and not _bad(sg):
            kept = final_newton_step(f2, x2, fv2, g, sg, free, lower2, summ)
            if kept is not None:  # the gradient and Hessian are those before it
                x2, fv2 = kept
                best_u = obj.warm.u.copy()
        summ.gradient, summ.hessian = g, H
        flat = flat_directions(g, H, free)
        if flat.any():
            names_flat = [names[i] for i in np.flatnonzero(free)[flat]]
            summ.messages.append(f"flat at the optimum (curvature and gradient ~0, run to a limit): {names_flat}; "
                                 "the other parameters passed the convergence check")
    else:
        summ.vcov_method = "PIRLS (derivatives not computed)"
    obj.reset(u=best_u)
    theta, beta, psi = unpack2(x2)
    if "best" in last and np.array_equal(last["best"][0], x2):  # the gradient path evaluated it already
        fval, res = last["best"][1], last["best"][2]
        obj.reset(u=res.u)
    else:
        fval, res = obj.evaluate(theta, beta, psi)
    summ.theta, summ.beta, summ.psi, summ.fval = theta, beta, psi, fval
    summ.family = obj.family_at(psi)
    summ.singular = bool(np.any((theta / ts)[_diag_theta_mask(obj)] < SINGULAR_TOL))
    if summ.singular:
        summ.messages.append(
            "boundary (singular) fit: a random-effect variance is estimated as (near) zero; "
            "see fit.varcorr and consider removing that term"
        )
    summ.fevals = obj.fevals
    summ._scale = scale  # for the vcov transform
    summ._free = free if calc_derivs else None
    summ.time_s = time.perf_counter() - t0
    return summ, res


#: links whose linear predictor is on a scale of order one whatever the data (theta_scale = 1)
UNIT_SCALE_LINKS = ("logit", "probit", "cloglog", "log")


def theta_scale(obj, beta0) -> float:
    """The scale of the linear predictor, on which random-effect SDs live: 1 for logit, probit, cloglog
    and log links; for the others (identity, inverse, 1/mu^2, sqrt: their linear predictor is on the
    data's scale or its reciprocal) the root mean square of the GLM start's X beta.

    Parameters
    ----------
    obj : GlmmObjective
        The objective (its family's link and its X).
    beta0 : numpy.ndarray
        The GLM start.

    Returns
    -------
    float
        A positive scale.
    """
    if obj.data.family.link.name in UNIT_SCALE_LINKS:
        return 1.0
    xb = obj.data.X @ np.asarray(beta0, dtype=float)
    s = float(np.sqrt(np.mean(xb * xb))) if xb.size else 1.0
    return s if np.isfinite(s) and s > 0 else 1.0


def moment_theta(obj, beta0, psi0) -> np.ndarray:
    """Starting theta: for each scalar intercept term, a moment estimate from the GLM start.

    With the GLM's working residuals r = (y - mu) / mu' and weights w, the weighted mean of r over a level
    estimates b_l plus noise of variance 1 / sum(w); so sd(b) ~ sqrt(max(var(level means) - mean(1 / sum w),
    0)).  Vector terms start from per-level regressions; other terms at lme4's theta0.

    Parameters
    ----------
    obj : GlmmObjective
        The objective.
    beta0, psi0 : numpy.ndarray
        The GLM start and the family's parameters.

    Returns
    -------
    numpy.ndarray
        theta.
    """
    d = obj.data
    fam = obj.family_at(psi0 if obj.n_psi else None)
    if getattr(fam, "stacked", False):  # a zero model with random effects: its rows are stacked (zeroinflated.py)
        return np.array(obj.theta0, dtype=float)
    eta = d.offset + d.X @ beta0
    mu = fam.link.inverse(eta)
    dmu = fam.link.mu_eta(eta)
    w = fam.working_weights(eta, mu, d.wt)
    r = (d.y - fam.response_mean(mu)) / dmu
    return moment_theta_from_residuals(d.structure._orig_terms(), obj.theta0, w, r)


def moment_theta_from_residuals(terms, theta0: np.ndarray, w: np.ndarray, r: np.ndarray,
                                sigma2: float = 1.0) -> np.ndarray:
    """theta from the residuals of a fit without random effects (the GLM start, or an LMM's OLS fit).

    A level's weighted mean of r estimates b_l plus noise of variance sigma^2 / sum(w): so
    sd(b) / sigma ~ sqrt(max(var(level means) - sigma^2 mean(1 / sum w), 0)) / sigma for a scalar intercept;
    vector terms from per-level regressions; other terms keep theta0.

    Parameters
    ----------
    terms : list of RandomTerm
        In the formula's order.
    theta0 : numpy.ndarray
        The default start (lme4's).
    w, r : numpy.ndarray
        (n,) weights and residuals.
    sigma2 : float
        The residual variance (1 for a GLM's working residuals).

    Returns
    -------
    numpy.ndarray
        theta, relative to sigma.
    """
    theta = np.array(theta0, dtype=float)
    sigma = np.sqrt(sigma2)
    pos = 0
    for t in terms:
        n_th = t.cov.n_theta
        if t.k == 1 and not t.is_known and np.allclose(t.X[:, 0], 1.0):
            sw = np.bincount(t.codes, weights=w, minlength=t.q)
            ok = sw > 0
            means = np.bincount(t.codes, weights=w * r, minlength=t.q)[ok] / sw[ok]
            var_b = np.var(means) - sigma2 * np.mean(1.0 / sw[ok])
            theta[pos] = float(np.clip(np.sqrt(max(var_b, 0.0)) / sigma, 0.05, 5.0))
        elif t.k > 1 and not t.is_known:
            S = _vector_moment_covariance(t, w, r, sigma2)
            start = None if S is None else t.cov.start_from_covariance(S)
            if start is not None:
                theta[pos : pos + n_th] = start
        pos += n_th
    return theta


def _vector_moment_covariance(t, w, r, sigma2: float = 1.0) -> np.ndarray | None:
    """The relative covariance of a vector term (1 + x | g) from per-level weighted regressions of the
    residuals: Sigma ~ cov(b_l) - sigma^2 mean((X_l'W X_l)^-1), made positive definite, relative to sigma
    (the covariance class turns it into its theta: ``start_from_covariance``)."""
    G = level_gram(t, w)
    rhs = np.stack([np.bincount(t.codes, weights=w * r * t.X[:, c], minlength=t.q) for c in range(t.k)], axis=1)
    ok = np.linalg.cond(G) < 1e8
    if ok.sum() < 2 * t.k + 2:
        return None
    Vinv = G[ok]
    V = np.linalg.inv(Vinv)
    b = np.einsum("qij,qj->qi", V, rhs[ok])
    S = (np.cov(b, rowvar=False) - sigma2 * V.mean(axis=0)) / sigma2
    vals, vecs = np.linalg.eigh(0.5 * (S + S.T))
    floor = 0.05 ** 2
    return (vecs * np.maximum(vals, floor)) @ vecs.T


def _bad(sg) -> bool:
    return sg is None or np.max(np.abs(sg), initial=0) > GRAD_TOL


def newton_polish(f, x, fx, derivs, lower, check, steps: int = 4, on_accept=None):
    """Damped Newton steps on finite-difference derivatives until the scaled-gradient check passes.

    Parameters
    ----------
    f : callable
        The objective.
    x : numpy.ndarray
        The start.
    fx : float
        f(x).
    derivs : tuple
        (g, H, free, scaled gradient) at x.
    lower : numpy.ndarray
        Lower bounds.
    check : callable
        check(x) recomputes ``derivs``.
    steps : int
        Most Newton steps.
    on_accept : callable, optional
        Called after each accepted step (to keep the warm-start state that goes with the new point).

    Returns
    -------
    tuple
        (x, f(x), derivs).
    """
    for _ in range(steps):
        g, H, free, _sg = derivs
        x_new, f_new = _newton_step(f, x, fx, g, H, free, lower)
        if x_new is None:
            break
        x, fx = x_new, f_new
        if on_accept is not None:
            on_accept()
        derivs = check(x)
        if not _bad(derivs[3]):
            break
    return x, fx, derivs


def _newton_step(f, x, fx, g, H, free, lower):
    """One damped Newton step x - H^{-1} g over the free coordinates, kept inside the bounds."""
    try:
        step = np.zeros_like(x)
        step[free] = np.linalg.solve(H[np.ix_(free, free)], g[free])
    except np.linalg.LinAlgError:
        return None, None
    t = 1.0
    for _ in range(6):
        cand = np.maximum(x - t * step, lower)
        fc = f(cand)
        if np.isfinite(fc) and fc < fx:
            return cand, fc
        t *= 0.5
    return None, None


def reml_beta_extra(f, x, lower, summ, h: float = 1e-4) -> np.ndarray | None:
    """J V J': the fixed effects' covariance carried from the variance parameters at a GLMM's REML optimum.

    beta-hat(x) is the joint mode at the variance parameters x, V = 2 H^-1 the inverse of half the REML
    criterion's Hessian in x, J = d beta-hat / dx; both by central differences (coordinates on a bound are
    held there, as their uncertainty is not Gaussian).  glmmTMB reports the same first-order quantity as the
    marginal of its joint precision over (b, beta, theta).

    Parameters
    ----------
    f : callable
        x -> (REML criterion, PirlsResult at the joint mode).
    x : numpy.ndarray
        The optimum.
    lower : numpy.ndarray
        x's lower bounds.
    summ : OptSummary
        Where a message goes when the Hessian is not positive definite.
    h : float
        The relative step.

    Returns
    -------
    tuple or None
        ((p, p) J V J', V over the free coordinates, the free coordinates), or None when it cannot be formed.
    """
    free = np.flatnonzero(x - lower > 10 * h * np.maximum(1.0, np.abs(x)))
    if not len(free):
        return None
    steps = h * np.maximum(1.0, np.abs(x[free]))
    f0, r0 = f(x)
    if r0 is None:
        return None
    k = len(free)
    fp, fm, bp, bm = np.zeros(k), np.zeros(k), [], []
    for i, (j, hj) in enumerate(zip(free, steps)):
        e = np.zeros(len(x))
        e[j] = hj
        (fp[i], rp), (fm[i], rm) = f(x + e), f(x - e)
        if rp is None or rm is None:
            return None
        bp.append(rp.beta)
        bm.append(rm.beta)
    J = np.column_stack([(a - b) / (2 * hj) for a, b, hj in zip(bp, bm, steps)])
    H = np.zeros((k, k))
    H[np.diag_indices(k)] = (fp - 2 * f0 + fm) / steps ** 2
    for i in range(k):
        for j in range(i + 1, k):
            e = np.zeros(len(x))
            e[free[i]], e[free[j]] = steps[i], steps[j]
            e2 = np.zeros(len(x))
            e2[free[i]], e2[free[j]] = steps[i], -steps[j]
            H[i, j] = H[j, i] = (f(x + e)[0] - f(x + e2)[0] - f(x - e2)[0] + f(x - e)[0]) / (4 * steps[i] * steps[j])
    try:
        np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        summ.messages.append("the REML criterion's Hessian in the variance parameters is not positive definite: "
                             "the fixed effects' standard errors are conditional on them")
        return None
    V = 2 * np.linalg.inv(H)
    return J @ V @ J.T, V, free


def _t(pair):
    theta, psi = pair
    return theta, None, psi


def glm_standard_errors(obj, beta0, psi0) -> np.ndarray:
    """The GLM's Wald standard errors at the start (stage 2's beta units when there is no joint system).

    Parameters
    ----------
    obj : GlmmObjective
        The objective (its data and family).
    beta0 : numpy.ndarray
        The GLM estimates.
    psi0 : numpy.ndarray
        The family's starting parameters.

    Returns
    -------
    numpy.ndarray
        Positive scales, 1 where the information is singular.
    """
    from .glm import wald_vcov

    d = obj.data
    fam = d.family.start_family()
    eta = d.offset + d.X @ np.asarray(beta0, dtype=float)
    w = fam.working_weights(eta, fam.link.inverse(eta), d.wt)
    s = np.sqrt(np.diag(wald_vcov(d.X, w)))
    return np.where(np.isfinite(s) & (s > 0), s, 1.0)


def _beta_scale(res, obj) -> np.ndarray:
    """Approximate standard errors of beta from the joint PIRLS factor (for scaling stage 2)."""
    f = res.factor
    p = obj.data.p
    st = obj.data.structure
    rx = f.Lt[st.Qtt : st.Qtt + p, st.Qtt : st.Qtt + p]
    try:
        rinv = np.linalg.inv(rx)
        s = np.sqrt(np.sum(rinv * rinv, axis=0))
    except np.linalg.LinAlgError:
        s = np.ones(p)
    return np.where(np.isfinite(s) & (s > 0), s, 1.0)


# an LMM takes the analytic gradient when one evaluation of its profiled deviance takes at least this long
# (measured at lme4's start): below it, BOBYQA's many cheap evaluations are faster than the gradient's
# fewer dear ones (each an inverse of the trailing block and one more Schur update)
LMM_GRADIENT_MIN_SECONDS = 2e-3


def lmm_moment_theta(obj: LmmObjective) -> np.ndarray:
    """Starting theta of an LMM: moment estimates from the residuals of the weighted least-squares fit.

    The residual variance is the least-squares one less the terms' variances (at least a tenth of it);
    one pass over the rows, once per fit.

    Parameters
    ----------
    obj : LmmObjective
        The profiled objective.

    Returns
    -------
    numpy.ndarray
        theta.
    """
    X, y, w = obj.D[:, :-1], obj.D[:, -1], obj.wt
    p = X.shape[1]
    DD = obj.raw.DD
    try:
        beta = np.linalg.lstsq(DD[:p, :p], DD[:p, p], rcond=None)[0]
    except np.linalg.LinAlgError:
        return obj.theta0
    r = y - X @ beta
    s2 = float(np.sum(w * r * r) / max(obj.n - p, 1))
    if not np.isfinite(s2) or s2 <= 0:
        return obj.theta0
    terms = obj.structure._orig_terms()
    theta = moment_theta_from_residuals(terms, obj.theta0, w, r, s2)
    # the share of s2 the terms take (scalar terms; vector terms' intercept variance), then rescale
    var_re = sum(float(th[0]) ** 2 for th in np.split(theta, np.cumsum([t.cov.n_theta for t in terms])[:-1]))
    s2e = max(s2 / (1.0 + var_re), 0.1 * s2)
    return moment_theta_from_residuals(terms, obj.theta0, w, r, s2e)


def optimize_lmm(obj: LmmObjective, calc_derivs: bool = True, control: Control = DEFAULT_CONTROL,
                 theta0: np.ndarray | None = None) -> OptSummary:
    """Fit theta of a linear mixed model on the profiled (RE)ML deviance (BOBYQA, then a gradient check).

    Parameters
    ----------
    obj : LmmObjective
        The profiled objective.
    calc_derivs : bool
        Compute the gradient and Hessian at the optimum.
    control : Control
        Recorded on the summary (``maxfev`` bounds the searches; the LMM's tolerances are fixed, 1e-10).
    theta0 : numpy.ndarray, optional
        A start for theta (the user's ``start``).

    Returns
    -------
    OptSummary
        How the optimum was found.
    """
    t0 = time.perf_counter()
    summ = OptSummary(control=control)
    use_grad = control.gradient and supports_lmm_gradient(obj)
    if use_grad:
        # the gradient pays where an evaluation is dear (large or crossed designs); on a small model BOBYQA's
        # cheap evaluations win (sleepstudy: 0.011 s by BOBYQA, 0.035 s by the gradient): time one
        t_eval = time.perf_counter()
        finite_or_inf(obj, obj.theta0)
        use_grad = time.perf_counter() - t_eval >= LMM_GRADIENT_MIN_SECONDS or control.optimizer == "lbfgs"
    x0 = (np.asarray(theta0, dtype=float) if theta0 is not None
          else lmm_moment_theta(obj) if control.moment_start and use_grad else obj.theta0)
    summ.param_names = [f"theta{i + 1}" for i in range(len(x0))]
    h = np.full(len(x0), 1e-4)

    def fg(x):
        """The profiled deviance and its gradient (analytic; by central differences where it is not
        defined, a vector term's singular factor on the boundary)."""
        v, g = lmm_gradient(obj, x)
        if g is None and np.isfinite(v):
            g = np.zeros(len(x))
            for i in range(len(x)):
                e = np.zeros(len(x))
                e[i] = h[i]
                lo = max(x[i] - h[i], obj.theta_lower[i])
                e_lo = np.zeros(len(x))
                e_lo[i] = x[i] - lo
                g[i] = (finite_or_inf(obj, x + e) - finite_or_inf(obj, x - e_lo)) / (h[i] + x[i] - lo)
        if g is None:
            g = np.zeros(len(x))
        return v, g

    if use_grad:
        # L-BFGS-B on the analytic gradient (engine/lmm_gradient.py); the convergence check below uses the
        # Hessian from differences of gradients (d evaluations)
        x, fv, n, rc = _minimize_gradient(fg, x0, obj.theta_lower, summ.log, n_theta=len(x0),
                                          control=dataclasses.replace(control, ftol2=1e-8, gtol=1e-5))
        summ.stages.append(OptStage("theta", "L-BFGS-B, analytic gradient", x0, x, fv, n, rc))
        for _ in range(3):  # a zero variance can be a saddle the gradient cannot leave (boundary_escape)
            x_off = boundary_escape(obj, x, fv, len(x), obj.theta_lower)
            if x_off is None:
                break
            xc, fvc, nc, rcc = _minimize_gradient(fg, x_off, obj.theta_lower, summ.log, n_theta=len(x0),
                                                  control=dataclasses.replace(control, ftol2=1e-8, gtol=1e-5))
            summ.stages.append(OptStage("theta off the boundary (a zero variance was a saddle)",
                                        "L-BFGS-B, analytic gradient", x_off, xc, fvc, nc, rcc))
            if not (np.isfinite(fvc) and fvc < fv - 1e-8):
                break
            x, fv = xc, fvc
    else:
        x, fv, n, rc = minimize(obj, x0, obj.theta_lower, np.full(len(x0), 0.25), ftol_abs=1e-10, algorithm=control.algorithm,
                                xtol_rel=1e-10, maxeval=control.maxfev, log=summ.log)
        summ.stages.append(OptStage("theta", control.algorithm, x0, x, fv, n, rc))

    def derivs(x):
        return gradient_derivatives(fg, x, h, obj.theta_lower) if use_grad else derivatives(obj, x, h, obj.theta_lower)

    if calc_derivs:
        g, H, free = derivs(x)
        sg = _scaled_gradient(g, H, free)
        if not use_grad and not _bad(sg):
            kept = final_newton_step(obj, x, fv, g, sg, free, obj.theta_lower, summ)
            if kept is not None:
                x, fv = kept
        summ.gradient, summ.hessian = g, H
        if sg is None or np.max(np.abs(sg), initial=0) > GRAD_TOL:
            x3, fv3, n3, rc3 = minimize(obj, x, obj.theta_lower, np.full(len(x), 0.05), ftol_abs=1e-12,
                                        xtol_rel=1e-12, algorithm="neldermead", log=summ.log)
            summ.stages.append(OptStage("restart", "neldermead", x, x3, fv3, n3, rc3))
            summ.messages.append("restarted once with Nelder-Mead after a failed gradient check")
            if fv3 < fv:
                x, fv = x3, fv3
            g, H, free = derivs(x)
            sg = _scaled_gradient(g, H, free)
            summ.gradient, summ.hessian = g, H
            if sg is not None and np.max(np.abs(sg), initial=0) > GRAD_TOL:
                summ.converged = False
                summ.messages.append(
                    f"Model failed to converge: scaled gradient {np.max(np.abs(sg)):.3g} (tol {GRAD_TOL})"
                )
    summ.theta = x
    summ.fval = fv
    summ.singular = bool(np.any(x[obj.theta_lower == 0] < SINGULAR_TOL))
    if summ.singular:
        summ.messages.append(
            "boundary (singular) fit: a random-effect variance is estimated as (near) zero; "
            "see fit.varcorr and consider removing that term"
        )
    summ.fevals = obj.fevals
    summ.vcov_method = "sigma^2 (R_X' R_X)^-1"
    summ.time_s = time.perf_counter() - t0
    return summ
