"""Likelihood-ratio tests between nested fits (lme4's ``anova(m0, m1)``).

    LR = 2 (logLik_big - logLik_small) ~ chi2 with df = difference in parameters.

Fits must be to the same data (same response, same number of observations); models are ordered by
their number of parameters, and two fits with the same number of parameters are not nested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def _label(fit) -> str:
    fam = "gaussian" if fit.is_lmm else fit.family.name
    return f"{fam}: {fit.spec.formula}"


def anova(*fits) -> pd.DataFrame:
    """Sequential likelihood-ratio tests of nested fits, smallest first."""
    if len(fits) < 2:
        raise ValueError("anova needs at least two fits")
    y0 = fits[0].spec.y * fits[0].spec.wt
    for f in fits[1:]:
        if f.nobs != fits[0].nobs or not np.allclose(f.spec.y * f.spec.wt, y0):
            raise ValueError(f"fits are on different data ({fits[0].nobs} and {f.nobs} observations, or another "
                             "response): a likelihood-ratio test needs the same observations")
    if any(f.reml for f in fits):
        raise ValueError("compare LMMs fitted by ML (reml=False): REML criteria of different fixed effects "
                         "are not comparable")
    order = sorted(fits, key=lambda f: f.n_params)
    rows = []
    for i, f in enumerate(order):
        row = {"model": _label(f), "npar": f.n_params, "AIC": f.aic, "BIC": f.bic, "logLik": f.loglik,
               "deviance": -2 * f.loglik, "Chisq": np.nan, "Df": np.nan, "p": np.nan}
        if i:
            prev = order[i - 1]
            df = f.n_params - prev.n_params
            if df == 0:
                raise ValueError(f"'{_label(prev)}' and '{_label(f)}' have the same number of parameters: "
                                 "they are not nested")
            chisq = max(0.0, 2 * (f.loglik - prev.loglik))
            row.update(Chisq=chisq, Df=df, p=float(stats.chi2.sf(chisq, df)))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
