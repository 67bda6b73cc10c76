"""Likelihood-ratio tests between nested fits (lme4's ``anova(m0, m1)``).

    LR = 2 (logLik_big - logLik_small) ~ chi2 with df = difference in parameters.

Fits must be to the same data (same response, same number of observations) and nested: the smaller
model's fixed effects and random-effect columns (per grouping factor) are among the bigger one's, the
family the same. When the models differ only in covariance parameters, the null puts a variance on
the boundary of its space and the LR statistic follows a mixture: ``p_boundary`` is the 50:50 mixture
of chi2(df - 1) and chi2(df) (Self & Liang 1987; Stram & Lee 1994), beside the naive p.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from ..checks import check_fits
from ..errors import InputError


def _label(fit) -> str:
    fam = "gaussian" if fit.is_lmm else fit.family.name
    extra = "".join(f", {name} = {f}" for name, f in (("zi", getattr(fit.spec, "ziformula", None)),
                                                        ("disp", getattr(fit.spec, "dispformula", None))) if f)
    return f"{fam}: {fit.spec.formula}{extra}"


def anova(*fits, type=3, ddf: str | None = None) -> pd.DataFrame:
    """An anova table of one fit's fixed-effects terms, or likelihood-ratio tests of nested fits.

    Parameters
    ----------
    *fits : Fit
        One fit: Wald tests per term (lmerTest's ``anova`` for an LMM, car's ``Anova`` for a GLMM).
        Two or more nested fits to the same data: sequential likelihood-ratio tests, smallest first.
    type : {1, 2, 3}
        One fit: the terms' hypotheses (sequential, adjusted for all but containing terms, or SAS's type III;
        docs/inference.md).
    ddf : str, optional
        One LMM: ``"satterthwaite"`` (default), ``"kenward-roger"``, ``"residual"`` or ``"none"``.

    Returns
    -------
    pandas.DataFrame
        One fit: index ``term``; LMM columns ``F``, ``num_df``, ``den_df``, ``p``; GLMM ``chisq``, ``df``,
        ``p``. Several: one row per model (index ``model``), by number of parameters: ``npar``, ``AIC``,
        ``BIC``, ``logLik``, ``deviance``, ``Chisq``, ``Df``, ``p`` and the boundary-corrected ``p_boundary``.
    """
    if len(fits) == 1:
        from .wald import anova_table

        check_fits(fits, "anova", at_least=1)
        return anova_table(fits[0], type=type, ddf=ddf)
    check_fits(fits, "anova", at_least=2)
    if any(f.reml for f in fits):
        raise InputError("compare LMMs fitted by ML (reml=False): REML criteria of different fixed effects "
                         "are not comparable")
    order = sorted(fits, key=lambda f: f.n_params)
    for small, big in zip(order, order[1:]):
        _check_nested(small, big)
    rows = []
    for i, f in enumerate(order):
        row = {"model": _label(f), "npar": f.n_params, "AIC": f.aic, "BIC": f.bic, "logLik": f.loglik,
               "deviance": -2 * f.loglik, "Chisq": np.nan, "Df": np.nan, "p": np.nan, "p_boundary": np.nan}
        if i:
            prev = order[i - 1]
            df = f.n_params - prev.n_params
            if df == 0:
                raise InputError(f"'{_label(prev)}' and '{_label(f)}' have the same number of parameters: "
                                 "they are not nested")
            chisq = max(0.0, 2 * (f.loglik - prev.loglik))
            row.update(Chisq=chisq, Df=df, p=float(stats.chi2.sf(chisq, df)))
            if _only_covariance(prev, f):
                lower = stats.chi2.sf(chisq, df - 1) if df > 1 else float(chisq <= 0)
                row["p_boundary"] = float(0.5 * lower + 0.5 * stats.chi2.sf(chisq, df))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def _re_columns(fit) -> dict[str, set]:
    out: dict[str, set] = {}
    for key, t in zip(fit._term_keys(), fit._all_terms):
        group = f"zi:{t.group}" if key.startswith("zi:") else t.group  # the zero model's terms apart
        out.setdefault(group, set()).update(t.columns)
    return out


def _check_nested(small, big) -> None:
    fs, fb = ("gaussian" if f.is_lmm else f.family.name for f in (small, big))
    if fs != fb:
        raise InputError(f"'{_label(small)}' and '{_label(big)}' have different families: not nested")
    missing = set(small.fixef.index) - set(big.fixef.index)
    rs, rb = _re_columns(small), _re_columns(big)
    missing_re = [f"({' + '.join(sorted(c - rb.get(g, set())))} | {g})" for g, c in rs.items() if c - rb.get(g, set())]
    if missing or missing_re:
        what = ", ".join(sorted(missing) + missing_re)
        raise InputError(f"'{_label(small)}' is not nested in '{_label(big)}': {what} only in the smaller model")


def _only_covariance(small, big) -> bool:
    """The bigger model adds covariance parameters only (same fixed effects and family parameters)."""
    return (list(small.fixef.index) == list(big.fixef.index)
            and len(small.theta) < len(big.theta)
            and (small.is_lmm or len(small._psi) == len(big._psi)))
