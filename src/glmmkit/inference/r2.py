"""Variance explained: marginal and conditional R^2 (Nakagawa & Schielzeth 2013; Nakagawa, Johnson &
Schielzeth 2017) and the intra-class correlation.

    R^2_marginal    = s2_f / (s2_f + s2_re + s2_d)
    R^2_conditional = (s2_f + s2_re) / (s2_f + s2_re + s2_d)
    ICC (adjusted)  = s2_re / (s2_re + s2_d)

s2_f = var(X beta); s2_re = sum over terms of the mean over observations of z_i' Sigma z_i (random
slopes included, Johnson 2014); s2_d the distribution-specific variance on the latent (link) scale:
Gaussian sigma^2; binomial pi^2/3 (logit), 1 (probit), pi^2/6 (cloglog); log-link counts by the
lognormal approximation log(1 + 1/lambda) (Poisson), log(1 + 1/lambda + 1/theta) (NB2),
log(1 + (1 + phi)/lambda) (NB1), log(1 + phi) (Gamma, phi = 1/shape), with lambda = exp(b0) and b0
the intercept of the null model (intercept, offsets and the same random effects), as R's
performance::r2_nakagawa computes it (so the figures match the package users compare with).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from ..errors import InputError


def _term_variances(fit) -> dict[str, float]:
    out = {}
    scale2 = fit._b_scale ** 2
    for key, t, th in zip(fit._term_keys(), fit.spec.terms, fit._theta_by_term()):
        if t.is_known:
            v = float(th[0] ** 2 * scale2 * np.mean(t.cov.diag_covariance()[t.codes]))
        else:
            S = t.cov.covariance(th) * scale2
            v = float(np.mean(np.einsum("ij,jk,ik->i", t.X, S, t.X)))
        out[key] = out.get(key, 0.0) + v
    return out


def distribution_variance(fit, s2_re: float | None = None) -> float:
    """The family's latent-scale variance for this fit (``Family.latent_variance``; one definition for
    R^2, the ICC and the phylogenetic heritability).

    Parameters
    ----------
    fit : Fit
        The fitted model.
    s2_re : float, optional
        Unused; kept for callers that pass the random-effect variance.

    Returns
    -------
    float
        sigma^2 for an LMM; the family's variance on the link scale otherwise (log-link counts at the
        null model's mean, as R's performance::r2_nakagawa).
    """
    if fit.is_lmm:
        return float(fit.sigma ** 2)
    fam = fit.family
    lam = float(np.exp(_null_intercept(fit))) if fam.latent_needs_mean else None
    return fam.latent_variance(lam)


def term_variances(fit) -> dict[str, float]:
    """The variance of each random-effects term on the link scale, averaged over the observations.

    Parameters
    ----------
    fit : Fit
        The fitted model.

    Returns
    -------
    dict
        Term key (as in ``fit.varcorr``'s ``group``) to the mean of z_i' Sigma z_i over the rows.
    """
    return _term_variances(fit)


def _null_intercept(fit) -> float:
    """Intercept of the model with the same random effects and offsets but no predictors."""
    import warnings

    from ..families import get_family
    from ..fitting import optimize
    from ..formula.spec import ModelSpec

    pf = fit.spec.parsed
    rhs = ["1"] + [f"offset({o})" for o in pf.offsets] + [str(b) for b in pf.bars]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ModelSpec.from_formula(f"{pf.response} ~ {' + '.join(rhs)}", fit.spec.data,
                                      get_family(fit.family.name, fit.family.link.name),
                                      weights=fit.spec.wt if fit.spec.wt.any() and not np.all(fit.spec.wt == 1)
                                      else None)
        opt = optimize(spec.objective(laplace=spec.family.default_laplace), calc_derivs=False)
    return float(opt.beta[0])


def r2(fit) -> pd.Series:
    """Marginal and conditional R^2 with their variance components (a Series).

    Parameters
    ----------
    fit : Fit
        The fitted model.

    Returns
    -------
    pandas.Series
        ``R2_marginal``, ``R2_conditional``, ``var_fixed``, ``var_random``, ``var_distribution``.
    """
    re = _term_variances(fit)
    s2_re = sum(re.values())
    s2_f = float(np.var(fit.spec.X @ fit._beta, ddof=1))
    s2_d = distribution_variance(fit, s2_re)
    total = s2_f + s2_re + s2_d
    return pd.Series({"R2_marginal": s2_f / total, "R2_conditional": (s2_f + s2_re) / total,
                      "var_fixed": s2_f, "var_random": s2_re, "var_distribution": s2_d})


def icc(fit) -> pd.Series:
    """Adjusted ICC: the share of the random effects in the non-fixed variance, overall and per group.

    Parameters
    ----------
    fit : Fit
        The fitted model.

    Returns
    -------
    pandas.Series
        ``ICC`` and, with several grouping factors, ``ICC[group]``.
    """
    re = _term_variances(fit)
    s2_re = sum(re.values())
    s2_d = distribution_variance(fit, s2_re)
    out = {"ICC": s2_re / (s2_re + s2_d)}
    if len(re) > 1:
        out.update({f"ICC[{k}]": v / (s2_re + s2_d) for k, v in re.items()})
    return pd.Series(out)
