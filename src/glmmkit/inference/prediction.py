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
