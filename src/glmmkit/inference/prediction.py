"""Prediction intervals by simulation (as merTools' ``predictInterval``).

Each of ``nsim`` draws takes beta ~ N(beta_hat, vcov), the random effects of a fitted level from
their conditional distribution N(b_hat, conditional variance), those of a new level from N(0, Sigma),
and (``which="observation"``) a response from the family at the drawn mean; the interval is the pair
of quantiles of the draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from ..checks import check_int, check_level
from ..errors import InputError


def predict_interval(fit, newdata: pd.DataFrame, nsim: int = 1000, level: float = 0.95, *, re_form=None,
                     which: str = "observation", type: str = "response", seed=None) -> pd.DataFrame:
    """Columns ``fit`` (the plug-in prediction), ``lower``, ``upper`` (and ``mean`` of the draws) per row.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    newdata : pandas.DataFrame
        The rows to predict.
    nsim : int
        Simulations.
    level : float
        Interval level.
    re_form : {None, "~0"}
        Condition on the fitted random effects of known levels (None) or draw new ones ("~0").
    which : {"observation", "mean"}
        An interval for a new observation or for its mean.
    type : {"response", "link"}
        The scale.
    seed : int, optional
        Seed.

    Returns
    -------
    pandas.DataFrame
        ``fit``, ``lower``, ``upper``, ``mean`` per row.
    """
    if which not in ("observation", "mean"):
        raise InputError("which must be 'observation' (a new response) or 'mean' (its expected value)")
    if type not in ("link", "response"):
        raise InputError("type must be 'link' or 'response'")
    if which == "observation" and type == "link":
        raise InputError("an interval for a new observation is on the response scale (type='response')")
    from ..frames import as_pandas

    newdata = as_pandas(newdata, "newdata")
    nsim = check_int("nsim", nsim, 2)
    level = check_level(level)
    rng = np.random.default_rng(seed)
    use_re = re_form is None
    X = fit.spec.new_fixed_matrix(newdata)
    off = fit.spec.new_offset(newdata)
    V = fit.vcov.to_numpy()
    L = np.linalg.cholesky(V + 1e-12 * np.eye(len(V)) * max(np.trace(V), 1e-12))
    betas = fit._beta[:, None] + L @ rng.standard_normal((len(fit._beta), nsim))
    eta = X @ betas + off[:, None]
    if use_re:
        b_all, v_all = fit._b_and_condvar()
        for t, th, b, v in zip(fit.spec.terms, fit._theta_by_term(), b_all, v_all):
            labels = t.labels_in(newdata)
            pos = pd.Index(t.levels).get_indexer(labels)
            Xr = t.new_matrix(newdata)
            draws = np.zeros((len(newdata), t.k, nsim))
            seen = np.unique(pos[pos >= 0])
            if len(seen):
                cv = v[seen]
                if t.is_known:
                    ch = np.sqrt(np.maximum(cv, 0))
                else:
                    ch = np.linalg.cholesky(cv + 1e-12 * np.eye(t.k)[None])
                e = rng.standard_normal((len(seen), t.k, nsim))
                bs = b[seen][:, :, None] + np.einsum("qij,qjs->qis", ch, e)
                where = np.searchsorted(seen, pos[pos >= 0])
                draws[pos >= 0] = bs[where]
            new = pos < 0
            if new.any():
                if t.is_known:
                    raise InputError(f"new levels of the known-covariance term {t.group!r}: "
                                     f"{sorted(set(labels[new]))[:5]}")
                codes, uniq = pd.factorize(labels[new])
                S = t.cov.covariance(th) * fit._b_scale ** 2
                ch = np.linalg.cholesky(S + 1e-12 * np.eye(t.k))
                bs = np.einsum("ij,qjs->qis", ch, rng.standard_normal((len(uniq), t.k, nsim)))
                draws[new] = bs[codes]
            eta = eta + np.einsum("nk,nks->ns", Xr, draws)
    point = fit.predict(newdata, re_form=re_form, type=type, allow_new_levels=True)
    if type == "link":
        sims = eta
    elif fit.is_lmm:
        sims = eta + (rng.standard_normal(eta.shape) * fit.sigma if which == "observation" else 0.0)
    else:
        mu = fit.family.link.inverse(eta)
        if which == "observation":
            wt = np.ones_like(mu)
            sims = fit.family.simulate(mu, wt, rng)
        else:
            sims = mu
    a = (1 - level) / 2
    return pd.DataFrame({"fit": point, "mean": sims.mean(axis=1), "lower": np.quantile(sims, a, axis=1),
                         "upper": np.quantile(sims, 1 - a, axis=1)}, index=newdata.index)


def parse_re_form(fit, re_form) -> list | None:
    """The random-effects terms a prediction conditions on.

    Parameters
    ----------
    fit : Fit
        The fit.
    re_form : None, str
        None (all terms), ``"~0"`` / ``"NA"`` (none), or a formula of bars naming some of the model's terms,
        e.g. ``"~ (1 | herd)"``.

    Returns
    -------
    list of int or None
        The indices of the kept terms in ``fit.spec.terms`` (None: all).
    """
    if re_form is None:
        return None
    if not isinstance(re_form, str):
        raise InputError(f"re_form must be None, '~0' or a formula of random-effects terms, got {re_form!r}")
    text = re_form.replace(" ", "")
    if text in ("~0", "0", "NA", "~NA", "~1", ""):
        return []
    from ..errors import FormulaError
    from ..formula.parse import parse_formula

    try:
        bars = parse_formula("y ~ " + re_form.split("~", 1)[-1]).bars
    except FormulaError as err:
        raise InputError(f"re_form {re_form!r} cannot be read: {err}") from None
    if not bars:
        raise InputError(f"re_form {re_form!r} names no random-effects term such as (1 | g)")
    kept = []
    for bar in bars:
        hits = [i for i, t in enumerate(fit.spec.terms)
                if t.group == bar.group and t.lhs.replace(" ", "") == bar.lhs.replace(" ", "")]
        if not hits:
            have = ", ".join(f"({t.lhs} | {t.group})" for t in fit.spec.terms)
            raise InputError(f"re_form names ({bar.lhs} | {bar.group}), which is not a term of the model; its "
                             f"terms are {have}")
        kept.extend(hits)
    return sorted(set(kept))


def new_level_positions(t, newdata, allow_new_levels: bool) -> np.ndarray:
    """Each new row's level of a term among the fitted levels (-1 for a level the fit never saw).

    Parameters
    ----------
    t : RandomTerm
        The term.
    newdata : pandas.DataFrame
        The rows.
    allow_new_levels : bool
        Accept unseen levels (otherwise an InputError names them).

    Returns
    -------
    numpy.ndarray
        Positions into the term's levels.
    """
    labels = t.labels_in(newdata)
    pos = pd.Index(t.levels).get_indexer(labels)
    if (pos < 0).any() and not allow_new_levels:
        raise InputError(f"new level(s) of {t.group!r} in newdata: {sorted(set(labels[pos < 0]))[:10]}; "
                         "pass allow_new_levels=True to predict them at b = 0")
    return pos


class _NewRandomRows:
    """The random-effects columns of new rows, in the engine's layout of u: A_u(theta) = Lambda' Z_new'."""

    def __init__(self, fit, newdata: pd.DataFrame, kept, allow_new_levels: bool):
        st = fit._structure
        keep_ids = {id(fit.spec.terms[i]) for i in (range(len(fit.spec.terms)) if kept is None else kept)}
        self.st, self.n = st, len(newdata)
        self.parts = []
        for pos, t in enumerate(st.terms):
            if id(t) not in keep_ids:
                continue
            lv = new_level_positions(t, newdata, allow_new_levels)
            self.parts.append((pos, t, lv, t.new_matrix(newdata)))

    def matrix(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """(A_u (Q, n_new), the prior variance of new levels' effects per row, before the residual scale)."""
        st = self.st
        thetas = st.split_theta(theta)
        A = np.zeros((st.Q, self.n))
        prior = np.zeros(self.n)
        rows = np.arange(self.n)
        for pos, t, lv, Xr in self.parts:
            th = thetas[pos]
            seen = lv >= 0
            raw = np.zeros((t.size, self.n))
            for r in range(t.k):  # k coefficients per level: a handful of columns
                raw[lv[seen] * t.k + r, rows[seen]] = Xr[seen, r]
            A[st.u_off[pos] : st.u_off[pos + 1]] = t.lambda_t(th, raw)
            if (~seen).any():  # a new level: its prior covariance T T'
                T = t.cov.template(th) if not t.is_known else np.atleast_2d(th[0])
                prior[~seen] += np.einsum("ij,jk,ik->i", Xr[~seen], T @ T.T, Xr[~seen])
        return A, prior


def _quadratic_forms(f, A: np.ndarray, width: int) -> np.ndarray:
    """a' B^-1 a for each column a of A, B the leading (width) block of the factored system."""
    total = f.Q1 + f.Qtt + f.m
    m = total - width
    out = np.empty(A.shape[1])
    chunk = max(1, int(2e7 // (total + 1)))
    for s in range(0, A.shape[1], chunk):
        sl = slice(s, s + chunk)
        fw = f.forward(np.vstack([A[:, sl], np.zeros((m, A[:, sl].shape[1]))]))[:width]
        out[sl] = np.sum(fw * fw, axis=0)
    return out


def _lmm_parameter_part(fit, X: np.ndarray, rows: _NewRandomRows) -> np.ndarray:
    """G Sigma G' for an LMM: eta_new(beta, theta) = X beta + A_u(theta)' u-hat(theta, beta).

    With beta-hat(theta) the profiled fixed effects, the inverse Hessian of the deviance in (beta, theta,
    sigma) is, in blocks (Sigma_t = 2 H_p^-1 of the profiled deviance, Satterthwaite's; J = d beta-hat / d theta),

        Sigma_bb = V + J Sigma_t J',   Sigma_bt = J Sigma_t,   Sigma_tt = Sigma_t,

    because the Hessian's beta block is 2 V^-1 and its cross block -2 V^-1 J.  d eta / d beta is exact
    (X - A_u' F^-1 Lambda'Z'WX, F the penalised system), d eta / d theta by Richardson's differences."""
    from ..engine.numderiv import jacobian
    from .wald import ddf_engine

    obj, st, spec = fit.optsummary.objective, fit._structure, fit.spec
    p, nt, Q = spec.p, len(fit.theta), st.Q
    sat = ddf_engine(fit, "satterthwaite")
    S_t = sat.vcov_varpar[:nt, :nt]
    floor = np.full(nt, 0.1)

    def beta_hat(theta):
        return obj.factor(theta).solve_last_column()[Q:]

    J = jacobian(beta_hat, fit.theta, floor=floor)  # (p, nt)
    resid0 = spec.y - spec.offset

    def eta_at(theta):
        f = st.factor(st.raw(spec.wt, None), theta)
        beta = fit._beta
        u = f.solve(st.lam_zt(theta, spec.wt * (resid0 - spec.X @ beta)))
        return X @ beta + rows.matrix(theta)[0].T @ u

    G_t = jacobian(eta_at, fit.theta, floor=floor)  # (n_new, nt)
    f = fit._ranef_factor
    A = rows.matrix(fit.theta)[0]
    # d u-hat / d beta = -F^-1 Lambda'Z'W X, one column per fixed effect (p columns)
    M = np.column_stack([f.solve(st.lam_zt(fit.theta, spec.wt * spec.X[:, j])) for j in range(p)])
    G_b = X - A.T @ M
    V = np.asarray(fit._vcov, dtype=float)
    Sbb = V + J @ S_t @ J.T
    Sbt = J @ S_t
    return (np.einsum("ij,jk,ik->i", G_b, Sbb, G_b) + 2 * np.einsum("ij,jk,ik->i", G_b, Sbt, G_t)
            + np.einsum("ij,jk,ik->i", G_t, S_t, G_t))


def _glmm_parameter_part(fit, X: np.ndarray, rows: _NewRandomRows) -> np.ndarray:
    """G Sigma G' for a GLMM: eta_new(theta, beta, psi) through the conditional mode, Sigma the fit's inverse
    Hessian of -2 log L / 2 over (theta, beta, psi) (the free coordinates)."""
    opt = fit.optsummary
    obj = opt.objective
    if opt.hessian is None or opt._free is None:
        return np.zeros(len(X))
    nt, p = len(fit.theta), fit.spec.p
    ts = np.where(obj.theta_scaled, opt.theta_scale, 1.0)
    D = np.r_[ts, opt._scale, np.ones(len(fit._psi))]
    free = opt._free
    Hf = opt.hessian[np.ix_(free, free)]
    Sig = np.zeros_like(opt.hessian)
    Sig[np.ix_(free, free)] = 2 * np.linalg.pinv(Hf)
    Sig = Sig * np.outer(D, D)
    warm = obj.warm.copy()
    phi = np.r_[fit.theta, fit._beta, fit._psi]

    def eta(x):
        theta, beta, psi = x[:nt], x[nt : nt + p], x[nt + p :]
        obj.warm = warm.copy()
        _, res = obj.evaluate(theta, beta, psi if len(psi) else None)
        return X @ beta + rows.matrix(theta)[0].T @ res.u

    h = np.r_[1e-4 * np.maximum(np.abs(fit.theta), 0.1), 1e-4 * np.maximum(np.sqrt(np.diag(fit._vcov)), 1e-8),
              np.full(len(fit._psi), 1e-4)]
    G = np.zeros((len(X), len(phi)))
    try:
        for j in np.flatnonzero(free):  # a handful of parameters
            e = np.zeros(len(phi))
            e[j] = h[j]
            G[:, j] = (eta(phi + e) - eta(phi - e)) / (2 * h[j])
    finally:
        obj.warm = warm
    return np.einsum("ij,jk,ik->i", G, Sig, G)


def link_standard_errors(fit, newdata: pd.DataFrame, kept: list | None, allow_new_levels: bool = False) -> np.ndarray:
    """Standard errors of the linear predictor of new rows, as glmmTMB's ``predict(se.fit = TRUE)``.

    Population level (no random effects): x' V x, V = vcov(beta).  With random effects, the delta method over
    all the parameters phi (fixed effects, variance and family parameters) plus the random effects' own
    conditional variance (TMB's ``sdreport``):

        var(eta-hat) = s^2 a' (Lambda'Z'WZLambda + I)^-1 a  +  g' Sigma_phi g,   a = Lambda' z,  g = d eta-hat / d phi

    with eta-hat = x'beta + z' b-hat(phi) through the conditional mode, s^2 = sigma^2 for an LMM and 1 for a
    GLMM, Sigma_phi the inverse of half the observed Hessian of -2 log L.  A new level adds its prior variance
    x' Sigma x.

    Parameters
    ----------
    fit : Fit
        The fit.
    newdata : pandas.DataFrame
        The rows.
    kept : list of int or None
        The conditioning terms (``parse_re_form``).
    allow_new_levels : bool
        Accept levels the fit never saw.

    Returns
    -------
    numpy.ndarray
        One standard error per row.
    """
    X = fit.spec.new_fixed_matrix(newdata)
    V = np.asarray(fit._vcov, dtype=float)
    if kept == []:
        return np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    if fit.spec.zi_terms or getattr(fit.family, "stacked", False) or (not fit.is_lmm and fit.optsummary.objective.reml):
        raise InputError("standard errors of conditional predictions are not available for a zero model with "
                         "random effects or a REML GLMM; use re_form='~0' or fit.predict_interval")
    st = fit._structure
    f = fit._ranef_factor
    if not hasattr(f, "forward"):
        raise InputError(f"standard errors of conditional predictions need the blocked system; the {st.name} "
                         "system of this model does not offer them: use re_form='~0'")
    rows = _NewRandomRows(fit, newdata, kept, allow_new_levels)
    A, prior = rows.matrix(fit.theta)
    scale = fit.sigma**2 if fit.is_lmm else 1.0
    var = scale * (_quadratic_forms(f, A, st.Q) + prior)
    with np.errstate(all="ignore"):
        var = var + (_lmm_parameter_part(fit, X, rows) if fit.is_lmm else _glmm_parameter_part(fit, X, rows))
    return np.sqrt(np.maximum(var, 0.0))
