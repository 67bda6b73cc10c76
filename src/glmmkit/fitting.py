"""The fitting stage: optimise an objective made from a ModelSpec (below the results, which import it).

    spec = ModelSpec.from_formula(...)  ->  obj = spec.objective()  ->  opt = optimize(obj)  ->  Fit(spec, opt)

``api.glmer`` / ``api.lmer`` compose these stages; ``Fit.refit`` and the inference modules call
``optimize`` directly, so nothing below the results imports the API or the results back.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from .engine.control import Control, as_control
from .engine.glm import fit_glm
from .engine.objective import GlmmObjective, LmmObjective
from .engine.optimize import OptSummary, optimize_glmm, optimize_lmm
from .errors import InputError


# Below this size of the dense trailing block BLAS threads cost more than they give: numpy and
# scipy each bring an OpenBLAS, and their idle threads spin against each other on small
# matrices (measured: 3x slower on 2 cores).  Larger tails keep every thread.
SMALL_TAIL = 1500


def optimize(obj: GlmmObjective | LmmObjective, *, calc_derivs: bool = True, control: Control | None = None,
             start: dict | None = None) -> OptSummary:
    """Optimise an objective made by ``ModelSpec.objective()`` or ``ModelSpec.lmm_objective()``.

    Parameters
    ----------
    obj : GlmmObjective or LmmObjective
        The objective.
    calc_derivs : bool
        Compute the gradient and Hessian at the optimum (convergence check, standard errors).
    control : Control, dict or None
        Switches and tolerances (the defaults when None); recorded as ``OptSummary.control``.
    start : dict, optional
        Start values ``{"theta": ..., "beta": ..., "psi": ...}`` (an LMM takes theta only: its fixed effects
        are profiled out) in place of the GLM start and the moment estimate of theta.

    Returns
    -------
    OptSummary
        How the optimum was found, with the objective and (GLMM) the PIRLS result at it.
    """
    control = as_control(control)
    start = check_start(obj, start)
    st = obj.structure if isinstance(obj, LmmObjective) else obj.data.structure
    if st.Qtt + obj_p(obj) < SMALL_TAIL:
        with threadpool_limits(limits=1, user_api="blas"):
            return _optimize(obj, calc_derivs, control, start)
    return _optimize(obj, calc_derivs, control, start)


def obj_p(obj) -> int:
    """The number of fixed effects of an objective.

    Parameters
    ----------
    obj : GlmmObjective or LmmObjective
        The objective.

    Returns
    -------
    int
        p.
    """
    return obj.p if isinstance(obj, LmmObjective) else obj.data.p


def check_start(obj, start) -> dict:
    """Start values checked against the objective: known keys, right lengths, finite, theta within bounds.

    Parameters
    ----------
    obj : GlmmObjective or LmmObjective
        The objective.
    start : dict or None
        ``{"theta": ..., "beta": ..., "psi": ...}``.

    Returns
    -------
    dict
        The values as float arrays (empty without a start).
    """
    if start is None:
        return {}
    if not isinstance(start, dict):
        raise InputError(f"start must be a dict such as {{'theta': [...], 'beta': [...]}}, got {type(start).__name__}")
    lmm = isinstance(obj, LmmObjective)
    sizes = {"theta": obj.n_theta} if lmm else {"theta": obj.n_theta, "beta": obj.data.p, "psi": obj.n_psi}
    unknown = sorted(set(start) - set(sizes))
    if unknown:
        extra = " (a linear mixed model's fixed effects are profiled out: give theta only)" if lmm else ""
        raise InputError(f"start has unknown keys {unknown}; it takes {sorted(sizes)}{extra}")
    out = {}
    for key, val in start.items():
        try:
            arr = np.atleast_1d(np.asarray(val, dtype=float))
        except (TypeError, ValueError):
            raise InputError(f"start[{key!r}] must be numbers") from None
        if arr.ndim != 1 or len(arr) != sizes[key] or not np.all(np.isfinite(arr)):
            raise InputError(f"start[{key!r}] needs {sizes[key]} finite values, got {np.ravel(val).tolist()}")
        out[key] = arr
    if "theta" in out and np.any(out["theta"] < obj.theta_lower):
        raise InputError(f"start['theta'] is below its lower bounds {obj.theta_lower.tolist()}")
    return out


def _optimize(obj, calc_derivs: bool, control: Control, start: dict) -> OptSummary:
    if isinstance(obj, LmmObjective):
        opt = optimize_lmm(obj, calc_derivs=calc_derivs, control=control, theta0=start.get("theta"))
        opt.kind, opt.reml, opt.objective = "lmm", obj.reml, obj
        return opt
    d = obj.data
    fam = d.family
    # the GLM start on the data's own rows (a zero model with random effects stacks them: zeroinflated.py)
    rows = slice(0, fam.n) if getattr(fam, "stacked", False) else slice(None)
    beta0, mu0, _, _ = fit_glm(d.y[rows], d.X[rows], d.wt[rows], d.offset[rows], fam.start_family())
    psi0 = fam.params_start(d.y, mu0, d.wt)
    beta0, psi0 = start.get("beta", beta0), start.get("psi", psi0)
    opt, res = optimize_glmm(obj, beta0, psi0, nagq=obj.nagq, calc_derivs=calc_derivs, control=control,
                             theta0=start.get("theta"))
    opt.kind, opt.nagq, opt.objective, opt.result, opt.laplace = "glmm", obj.nagq, obj, res, obj.laplace
    return opt
