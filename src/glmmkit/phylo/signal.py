"""Phylogenetic signal: the latent-scale phylogenetic heritability of a fitted GLMM.

    H^2 = s2_phylo / (s2_phylo + s2_other + s2_distribution)

s2_phylo is the variance of the known-covariance term of ``group`` (the tip variance when its matrix
is a correlation matrix, as ``vcv(tree, corr=True)``), s2_other the variances of the other random
intercepts, s2_distribution the family's latent-scale variance (Nakagawa & Schielzeth 2013;
Nakagawa, Johnson & Schielzeth 2017): logit pi^2/3, probit 1, cloglog pi^2/6, Poisson-log
log(1 + 1/lambda) with lambda = mean exp(X beta + offset + total variance / 2), Gaussian the
residual variance. The interval is a parametric bootstrap (simulate with new random effects, refit).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from ..errors import InputError
from ..warnings import ModelChangeWarning


def _components(fit, group: str):
    vc = fit.varcorr
    rows = vc[vc.term2.isna() & (vc.group != "Residual")]
    if group not in set(rows.group):
        raise InputError(f"{group!r} is not a grouping factor of the fit (it has {sorted(set(rows.group))})")
    known = {t.group for t in fit.spec.terms if t.is_known}
    if group not in known:
        warnings.warn(f"the term of {group!r} has no known covariance (relmat); H^2 is then an ICC", ModelChangeWarning,
                      stacklevel=3)
    s2p = float(rows.loc[rows.group == group, "variance"].sum())
    s2o = float(rows.loc[(rows.group != group) & (rows.term1 == "(Intercept)"), "variance"].sum())
    if fit.is_lmm:
        return s2p, s2o, fit.sigma ** 2
    fam, link = fit.family.name, fit.family.link.name
    if fam == "binomial":
        dist = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}.get(link)
    elif fam == "poisson" and link == "log":
        lam = float(np.mean(np.exp(fit.spec.X @ fit.fixef.to_numpy() + fit.spec.offset + (s2p + s2o) / 2)))
        dist = float(np.log1p(1 / lam))
    else:
        dist = None
    if dist is None:
        raise InputError(f"the latent-scale distribution variance is not defined here for {fam} ({link})")
    return s2p, s2o, dist


def heritability(fit, group: str, nboot: int = 0, seed=None, level: float = 0.95) -> pd.Series:
    """Phylogenetic heritability H^2 of ``group``'s term, with a parametric-bootstrap interval if nboot > 0."""
    s2p, s2o, dist = _components(fit, group)
    h2 = s2p / (s2p + s2o + dist)
    out = {"H2": h2, "var_phylo": s2p, "var_other": s2o, "var_distribution": dist}
    if nboot:
        sims = fit.simulate(nboot, seed=seed).to_numpy()
        boots = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j in range(nboot):  # one refit per simulated data set
                b = fit.refit(sims[:, j])
                p, o, dv = _components(b, group)
                boots.append(p / (p + o + dv))
        a = (1 - level) / 2
        out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(boots, [a, 1 - a]))
        out["nboot"] = nboot
    return pd.Series(out)
