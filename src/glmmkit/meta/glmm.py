"""Meta-analysis by one GLMM over the arms of all studies (metafor's ``rma.glmm``).

Two-arm binary outcomes (``measure="OR"``), arm j = 1 (treatment), 0 (control) of study i:

    UM.FS  logit p_ij = alpha_i + x_i'b g_ij + u_i (g_ij - 1/2),  alpha_i fixed,   u_i ~ N(0, tau^2)
    UM.RS  logit p_ij = alpha + v_i + x_i'b g_ij + u_i (g_ij - 1/2),  v_i ~ N(0, sigma^2), u_i ~ N(0, tau^2)
    CM.EL  a_i | margins ~ Fisher noncentral hypergeometric, log odds ratio x_i'b + u_i   (exact)
    CM.AL  a_i | a_i + c_i ~ Binomial(logit^-1(log(n1_i / n2_i) + x_i'b + u_i))       (rare-event approximation)

``measure="IRR"``: the same with Poisson arms and log person-time offsets (CM.EL is then exactly the
binomial model of x1 | x1 + x2). ``measure="PLO"``: single arms, logit p_i = x_i'b + u_i.
The ML fits use the core engine (adaptive Gauss-Hermite with 7 nodes where the model has one scalar
random term, as metafor; Laplace for UM.RS), the exact conditional model its own quadrature
(``hypergeom.py``). ``method="FE"`` fixes tau^2 = 0.

Heterogeneity as metafor: the Wald and likelihood-ratio tests of the saturated model (one log odds ratio
per study) against the fitted one on k - p df; I^2 = tau^2 / (tau^2 + v~), H^2 = tau^2 / v~ + 1 with the
typical within-study variance v~ of the per-study estimates. Beyond metafor: a profile-likelihood
interval for tau^2.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln, xlogy

from ..api import glmer
from ..engine.glm import glm
from ..engine.optimize import derivatives, minimize
from ..families import get_family
from ..inference.profile import ProfileProblem, profile_interval
from ..checks import check_choice, check_int, check_level
from ..warnings import ConvergenceWarning, SingularFitWarning
from .classic import _hetero_rows, _proj, _qm, typical_variance
from .effects import escalc
from .hypergeom import HypergeometricTables
from .results import MetaFit, wald_table
from .tables import StudyTable, drop_double_zero, no_information, read_table, study_rows
from ..errors import InputError

MODELS = ("UM.FS", "UM.RS", "CM.EL", "CM.AL")
#: the most terms (studies x support x nodes) CM.EL's exact likelihood may sum in one evaluation
CM_EL_MAX_CELLS = 5_000_000  # about 30 s a fit here (5 us a term), minutes with the tau^2 profile


def glmm(data: pd.DataFrame, *, measure: str = "OR", model: str | None = None, method: str = "ML",
         mods: str | None = None, study=None, drop00: bool = True, nagq: int | None = None,
         level: float = 0.95, tau2_ci: bool = True, add: float = 0.5, to: str = "only0", **cols) -> MetaFit:
    """Fit a meta-analytic GLMM to the counts of every arm of every study.

    Parameters
    ----------
    data : one row per study.
    ai, bi, ci, di : column names: events / non-events in the treatment arm, events / non-events in the
        control arm (``measure="OR"``); or ``ai, n1i, ci, n2i`` with the arm sizes.
    x1i, t1i, x2i, t2i : events and person-time per arm (``measure="IRR"``).
    xi, ni (or mi) : events and arm size (or non-events) of single arms (``measure="PLO"``).
    measure : ``"OR"``, ``"IRR"`` or ``"PLO"``.
    model : ``"UM.FS"`` (default), ``"UM.RS"``, ``"CM.EL"`` or ``"CM.AL"`` (two-arm measures only; ``PLO``
        has one model, the binomial-normal one, and takes no ``model``).
    method : ``"ML"`` (random treatment effect, tau^2 estimated) or ``"FE"`` (common effect).
    mods : moderators, e.g. ``"~ year + dose"`` (meta-regression).
    study : column with the study labels (default 1..k).
    drop00 : leave out studies without events (or with only events) in both arms (the default, as metafor);
        ``False`` keeps them in the random-intercept model UM.RS, the only one where they carry information.
    nagq : quadrature nodes; default 7 (metafor's) where the model allows it, 1 (Laplace) for UM.RS.
    tau2_ci : compute the profile-likelihood interval of tau^2.
    add, to : the continuity correction of the per-study estimates shown beside the fit (never used in
        the GLMM's likelihood).

    Returns
    -------
    MetaFit
        The pooled analysis, with the underlying engine fit in ``fit`` where there is one.
    """
    t0 = time.perf_counter()
    check_choice("measure", measure, ("OR", "IRR", "PLO"))
    if measure == "PLO" and model is not None:
        raise InputError(f"measure='PLO' (single arms) has one model, the binomial-normal GLMM; model={model!r} "
                         f"is for two-arm measures (OR, IRR): leave model out")
    model = "UM.FS" if model is None else model
    check_choice("model", model, MODELS)
    check_choice("method", method, ("ML", "FE"))
    level = check_level(level)
    if nagq is not None:
        nagq = check_int("nagq", nagq, 1, 25)
    table = read_table(data, measure, study=study, mods=mods, **cols)
    messages = []
    if measure == "PLO":
        model = "PLO"
    elif measure == "IRR" and model == "CM.AL":
        model = "CM.EL"  # for rates the conditional binomial model is exact
        messages.append("for rates (IRR) the conditional binomial model is exact: CM.AL is fitted as CM.EL")
    if measure != "PLO":
        if not drop00 and model != "UM.RS" and no_information(table).any():
            messages.append(f"drop00=False has effect in UM.RS only; under {model} studies without events in "
                            "both arms carry no information and are left out")
        table = drop_double_zero(table, drop00 or model != "UM.RS")
    k, p = table.X.shape
    if k <= p:
        raise InputError(f"{k} studies cannot estimate {p} coefficients and a heterogeneity variance")
    if nagq is None:
        nagq = 1 if model == "UM.RS" else 7

    if model == "CM.EL" and measure == "OR":
        c = table.counts
        support = int(np.max(np.minimum(c.ai + c.bi, c.ai + c.ci) - np.maximum(0, (c.ai + c.ci) - (c.ci + c.di)))) + 1
        cells = k * support * max(nagq, 1)
        if cells > CM_EL_MAX_CELLS:
            raise InputError(f"CM.EL's exact likelihood sums over each study's hypergeometric support: {k} studies "
                             f"with support up to {support} values at {nagq} quadrature nodes is {cells:.3g} terms "
                             f"per evaluation (the limit is {CM_EL_MAX_CELLS:.0e}: beyond it a fit takes many minutes). Use "
                             "model='CM.AL' (the approximate conditional model) or 'UM.FS', or fewer nodes")
        core = _fit_cm_el(table, method, nagq, level, tau2_ci)
    else:
        core = _fit_glmm_model(table, model, method, nagq, level, tau2_ci)

    es = escalc(table, add=add, to=to)
    ok = es.yi.notna().to_numpy()
    vt = typical_variance(es.vi.to_numpy()[ok], table.X.to_numpy()[ok]) if ok.sum() > p else np.nan
    tau2 = core["tau2"]
    crit = stats.norm.ppf(0.5 + level / 2)
    studies = study_rows(es, table, crit)
    w = np.where(ok, 1 / (es.vi.to_numpy() + tau2), 0.0)
    studies["weight"] = 100 * w / w.sum()  # approximate: inverse variance of the corrected estimates
    if core.get("blup") is not None:
        studies["model_estimate"] = core["blup"]
    names = list(table.X.columns)
    coef = wald_table(core["b"], core["vb"], names, level)
    df = k - p
    het = _hetero_rows([
        ("Wald-type (saturated vs fitted)", core["QE_wald"], df, stats.chi2.sf(core["QE_wald"], df)),
        ("likelihood ratio (saturated vs common effect)", core["QE_lrt"], df, stats.chi2.sf(core["QE_lrt"], df)),
    ])
    label = {"UM.FS": "fixed study intercepts", "UM.RS": "random study intercepts",
             "CM.EL": "conditional, exact likelihood", "CM.AL": "conditional, approximate likelihood",
             "PLO": "single arms"}[model]
    fit = MetaFit(
        method=f"GLMM {model if model != 'PLO' else 'binomial-normal'} ({label}), "
               + ("ML" if method == "ML" else "common effect"),
        measure=measure, k=k, coef=coef, vcov=core["vb"], tau2=tau2, tau2_ci=core.get("tau2_ci"),
        se_tau2=core.get("se_tau2"),
        I2=100 * tau2 / (vt + tau2) if method == "ML" else None,
        H2=tau2 / vt + 1 if method == "ML" else None,
        heterogeneity=het, moderators=_qm(core["b"], core["vb"], names), loglik=core["loglik"],
        n_params=core["n_params"], studies=studies, level=level, dropped=list(table.dropped),
        messages=messages + core.get("messages", []), fit=core.get("fit"), sigma2=core.get("sigma2"),
        converged=bool(core.get("converged", True)), time_s=time.perf_counter() - t0)
    if not fit.converged:
        reason = "; ".join(m for m in fit.messages if "converge" in m) or "the optimiser stopped short"
        warnings.warn(f"the meta-analytic GLMM did not converge: {reason}", ConvergenceWarning, stacklevel=2)
    return fit


# --------------------------------------------------------------------------------------------
# models fitted by the core engine
# --------------------------------------------------------------------------------------------

def _arm_data(table: StudyTable, model: str):
    """Long data (one row per arm, or per study for the conditional/single-arm models), the response
    and family, the offset, and the study-level design columns named x0, x1, ..."""
    c = table.counts
    k, p = table.X.shape
    Xs = table.X.to_numpy()
    xcols = [f"x{j}" for j in range(p)]
    if model in ("UM.FS", "UM.RS"):
        g = np.tile([1.0, 0.0], k)
        long = pd.DataFrame({"study": np.repeat(np.arange(k), 2).astype(str), "g1": g, "g12": g - 0.5})
        long["study"] = pd.Categorical(long["study"], categories=[str(i) for i in range(k)])
        for j, col in enumerate(xcols):
            long[col] = np.repeat(Xs[:, j], 2) * g
        if table.measure == "OR":
            long["ev"] = np.column_stack([c.ai, c.ci]).ravel()
            long["nev"] = np.column_stack([c.bi, c.di]).ravel()
            response, family, offset = "cbind(ev, nev)", "binomial", None
        else:
            long["ev"] = np.column_stack([c.x1i, c.x2i]).ravel()
            response, family = "ev", "poisson"
            offset = np.log(np.column_stack([c.t1i, c.t2i]).ravel())
    else:
        long = pd.DataFrame({"study": pd.Categorical([str(i) for i in range(k)], categories=[str(i) for i in range(k)])})
        for j, col in enumerate(xcols):
            long[col] = Xs[:, j]
        family = "binomial"
        if model == "PLO":
            long["ev"], long["nev"], offset = c.xi.to_numpy(), c.mi.to_numpy(), None
        elif table.measure == "OR":  # CM.AL
            long["ev"], long["nev"] = c.ai.to_numpy(), c.ci.to_numpy()
            offset = np.log((c.ai + c.bi).to_numpy() / (c.ci + c.di).to_numpy())
        else:  # IRR, conditional on the total events
            long["ev"], long["nev"] = c.x1i.to_numpy(), c.x2i.to_numpy()
            offset = np.log(c.t1i.to_numpy() / c.t2i.to_numpy())
        response = "cbind(ev, nev)"
    return long, response, family, offset, xcols


def _glm(long, response, family, offset, cols):
    """Plain GLM on named numeric columns (and 'study' dummies if listed): b, vcov, logLik."""
    fam = get_family(family)
    X = np.column_stack([_col(long, c) for c in cols])
    if response.startswith("cbind"):
        ev, nev = long["ev"].to_numpy(float), long["nev"].to_numpy(float)
        wt = ev + nev
        y = np.where(wt > 0, ev / np.where(wt > 0, wt, 1), 0.0)
    else:
        y, wt = long["ev"].to_numpy(float), np.ones(len(long))
    off = np.zeros(len(long)) if offset is None else offset
    g = glm(y, X, wt, off, fam)
    return g.beta, g.vcov, g.loglik


def _col(long, c):
    if c.startswith("study="):
        return (long["study"].astype(str) == c.split("=", 1)[1]).to_numpy(float)
    return long[c].to_numpy(float)


def _saturated_loglik(table: StudyTable, model: str) -> float:
    """log-likelihood of the saturated model (every arm, or every study, its own mean)."""
    c = table.counts

    def binom(x, n):  # sum log dbinom(x, n, x / n), with 0 log 0 = 0
        return float(np.sum(gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1) + xlogy(x, x / np.maximum(n, 1))
                            + xlogy(n - x, (n - x) / np.maximum(n, 1))))

    if model in ("UM.FS", "UM.RS"):
        if table.measure == "OR":
            return binom(c.ai.to_numpy(float), (c.ai + c.bi).to_numpy(float)) + binom(
                c.ci.to_numpy(float), (c.ci + c.di).to_numpy(float))
        x = np.concatenate([c.x1i, c.x2i]).astype(float)
        return float(np.sum(xlogy(x, x) - x - gammaln(x + 1)))
    if model == "PLO":
        return binom(c.xi.to_numpy(float), (c.xi + c.mi).to_numpy(float))
    ev, nev = (c.ai, c.ci) if table.measure == "OR" else (c.x1i, c.x2i)
    return binom(ev.to_numpy(float), (ev + nev).to_numpy(float))


def _unconstrained_estimates(table: StudyTable, model: str):
    """Per-study log effects of the saturated model and their variances (None where infinite)."""
    c = table.counts
    with np.errstate(divide="ignore", invalid="ignore"):
        if model == "PLO":
            cells = c[["xi", "mi"]].to_numpy(float)
            y = np.log(cells[:, 0] / cells[:, 1])
        elif table.measure == "OR" and model == "UM.FS":
            cells = c[["ai", "bi", "ci", "di"]].to_numpy(float)
            y = np.log(cells[:, 0] * cells[:, 3] / (cells[:, 1] * cells[:, 2]))
        elif table.measure == "OR":  # CM.AL: a | a + c, offset log(n1 / n2)
            cells = c[["ai", "ci"]].to_numpy(float)
            y = np.log(cells[:, 0] / cells[:, 1]) - np.log((c.ai + c.bi) / (c.ci + c.di)).to_numpy()
        else:
            cells = c[["x1i", "x2i"]].to_numpy(float)
            y = np.log(cells[:, 0] / c.t1i.to_numpy()) - np.log(cells[:, 1] / c.t2i.to_numpy())
        v = np.sum(1 / cells, axis=1)
    ok = (cells > 0).all(axis=1)
    return y, v, ok


def _wald_q(y, v, ok, X) -> float:
    """Wald test that the per-study effects lie in the span of X: min_b (y - Xb)' V^-1 (y - Xb)."""
    if ok.sum() <= X.shape[1]:
        return 0.0
    _, P = _proj(X[ok], 1 / v[ok])
    return float(max(y[ok] @ P @ y[ok], 0.0))


def _formula(response, fixed, random):
    return f"{response} ~ 0 + {' + '.join(fixed)}" + "".join(f" + ({r})" for r in random)


def _fit_glmm_model(table: StudyTable, model: str, method: str, nagq: int, level: float, tau2_ci: bool) -> dict:
    long, response, family, offset, xcols = _arm_data(table, model)
    k, p = table.X.shape
    ll_sat = _saturated_loglik(table, model)
    messages = []
    fixed = list(xcols)
    if model == "UM.FS":
        fixed_fe = fixed + ["study"]
        random_ml = ["0 + g12 | study"]
    elif model == "UM.RS":
        long["const"] = 1.0
        fixed_fe = fixed + ["const"]
        random_ml = ["1 | study", "0 + g12 | study"]
    else:
        fixed_fe = fixed
        random_ml = ["1 | study"]

    # the common-effect model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        if model == "UM.RS":
            fe_fit = glmer(_formula(response, fixed_fe, ["1 | study"]), long, family, offset=offset)
            b_fe, vb_fe, ll_fe = fe_fit._beta[:p], fe_fit.vcov.to_numpy()[:p, :p], fe_fit.loglik
            sigma2_fe = float(fe_fit.varcorr["variance"].iloc[0])
        else:
            cols = xcols + ([f"study={i}" for i in range(k)] if model == "UM.FS" else [])
            b_fe, vb_fe, ll_fe = _glm(long, response, family, offset, cols)
            b_fe, vb_fe = b_fe[:p], vb_fe[:p, :p]

    # heterogeneity tests
    if model == "UM.RS":
        qe_wald, ll_qe = _um_rs_saturated(long, response, family, offset, fixed_fe, k, p)
    else:
        y0, v0, ok0 = _unconstrained_estimates(table, model)
        qe_wald, ll_qe = _wald_q(y0, v0, ok0, table.X.to_numpy()), ll_sat
    qe_lrt = max(-2 * (ll_fe - ll_qe), 0.0)

    out = dict(QE_wald=qe_wald, QE_lrt=qe_lrt, messages=messages)
    if method == "FE":
        out.update(b=b_fe, vb=vb_fe, tau2=0.0, loglik=ll_fe,
                   n_params=p + (k if model == "UM.FS" else 1 if model == "UM.RS" else 0) + (model == "UM.RS"),
                   sigma2=sigma2_fe if model == "UM.RS" else None)
        return out

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmer(_formula(response, fixed_fe, random_ml), long, family, offset=offset, nagq=nagq)
    messages.extend(str(w.message) for w in caught if issubclass(w.category, Warning))
    j = len(fit.theta) - 1  # the treatment-effect term comes last
    tau = float(fit.theta[j])
    out["converged"] = fit.converged
    out.update(b=fit._beta[:p], vb=fit.vcov.to_numpy()[:p, :p], tau2=tau * tau, loglik=fit.loglik, fit=fit,
               n_params=fit.n_params, sigma2=float(fit.theta[0] ** 2) if model == "UM.RS" else None)
    if tau2_ci:
        lo, hi = ProfileProblem(fit).interval(j, level)
        out["tau2_ci"] = (lo * lo, hi * hi)
    # study-specific effects: b'x_i + u_i (conditional modes)
    re = fit.ranef_table()
    r = re[re["term"] == ("g12" if model in ("UM.FS", "UM.RS") else "(Intercept)")]
    u = r.set_index("level")["estimate"].reindex([str(i) for i in range(k)]).to_numpy()
    out["blup"] = table.X.to_numpy() @ out["b"] + u
    return out


def _um_rs_saturated(long, response, family, offset, fixed_fe, k, p):
    """The saturated model of UM.RS: a log odds ratio per study (fixed), random study intercepts."""
    inter = [f"s{i}" for i in range(k)]
    for i, name in enumerate(inter):
        long[name] = ((long["study"].astype(str) == str(i)) & (long["g1"] == 1)).to_numpy(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sat = glmer(_formula(response, fixed_fe + inter, ["1 | study"]), long, family, offset=offset,
                    calc_derivs=False)  # its estimates are infinite for trials with a zero arm
    names = list(sat.fixef.index)
    extra = [i for i, n in enumerate(names) if n in inter]
    b2 = sat._beta[extra]
    V = sat.vcov.to_numpy()[np.ix_(extra, extra)]
    try:
        q = float(b2 @ np.linalg.solve(V, b2))
    except np.linalg.LinAlgError:
        q = np.nan
    return max(q, 0.0), sat.loglik


# --------------------------------------------------------------------------------------------
# the conditional model with the exact likelihood
# --------------------------------------------------------------------------------------------

def _fit_cm_el(table: StudyTable, method: str, nagq: int, level: float, tau2_ci: bool) -> dict:
    c = table.counts
    ht = HypergeometricTables(c.ai, c.ai + c.bi, c.ci + c.di, c.ai + c.ci)
    X = table.X.to_numpy()
    k, p = X.shape
    # start: the approximate conditional model (CM.AL)
    long, response, family, offset, xcols = _arm_data(table, "CM.AL")
    b_al, _, _ = _glm(long, response, family, offset, xcols)
    b_fe, nll_fe, info_fe = ht.fit_fixed(X, b_al)
    theta_sat, v_sat, inner, ll_sat = ht.saturated()
    qe_wald = _wald_q(theta_sat, 1 / np.maximum(v_sat, 1e-300), inner, X)  # variance = 1 / information
    qe_lrt = max(-2 * (-nll_fe - ll_sat), 0.0)
    out = dict(QE_wald=qe_wald, QE_lrt=qe_lrt, messages=[])
    if method == "FE":
        out.update(b=b_fe, vb=np.linalg.inv(info_fe), tau2=0.0, loglik=-nll_fe, n_params=p)
        return out

    def nll(x):
        return -float(np.sum(ht.marginal_loglik(X @ x[:p], x[p], nagq=nagq)))

    lower = np.concatenate([np.full(p, -np.inf), [0.0]])
    x0 = np.concatenate([b_fe, [0.3]])
    step = np.concatenate([np.sqrt(np.diag(np.linalg.inv(info_fe))), [0.1]])
    x, f, _, rc = minimize(nll, x0, lower, step, ftol_abs=1e-10, xtol_rel=1e-9)
    # the boundary: tau = 0 is the common-effect model
    if nll_fe <= f:
        x, f = np.concatenate([b_fe, [0.0]]), nll_fe
    h = np.concatenate([np.full(p, 1e-4), [1e-4 * max(x[p], 0.1)]])
    _, H, free = derivatives(nll, x, h, lower)
    Hf = H[np.ix_(free, free)]
    cov = np.full_like(H, np.nan)
    try:
        np.linalg.cholesky(Hf)
        cov[np.ix_(free, free)] = np.linalg.inv(Hf)
        out["converged"] = bool(np.isfinite(f)) and not rc.startswith("failure")
    except np.linalg.LinAlgError:
        out["converged"] = False
        out["messages"].append("Model failed to converge: the Hessian of the CM.EL likelihood is not positive "
                               "definite at the optimum (no standard errors)")
    tau = float(x[p])
    out.update(b=x[:p], vb=cov[:p, :p], tau2=tau * tau, loglik=-f, n_params=p + 1)
    if free[p]:
        out["se_tau2"] = float(2 * tau * np.sqrt(cov[p, p]))
    if not free[p]:
        out["messages"].append("tau^2 is estimated at its boundary (0)")
    if tau2_ci:
        def prof(t):
            g = lambda b: nll(np.concatenate([b, [t]]))  # noqa: E731
            _, fv, _, _ = minimize(g, x[:p], np.full(p, -np.inf), step[:p], ftol_abs=1e-10, xtol_rel=1e-9)
            return 2 * fv

        lo, hi = profile_interval(prof, tau, 2 * f, level)
        out["tau2_ci"] = (lo * lo, hi * hi)
    return out
