"""Pearson dispersion ratio and its chi-square test.

    ratio = sum(pearson residuals^2) / df_resid,   p = P(chi2_{df_resid} > sum of squares)

(as R's performance::check_overdispersion for GLMMs). A ratio well above 1 says the counts vary
more than the family allows; the test is one-sided (overdispersion).
"""

from __future__ import annotations

from scipy import stats


def pearson_dispersion(fit) -> dict:
    """Pearson chi-square, residual df, dispersion ratio and the p-value for overdispersion."""
    r = fit.residuals("pearson")
    chisq = float(r @ r)
    df = int(fit.df_resid)
    return {"chisq": chisq, "df": df, "ratio": chisq / df, "p": float(stats.chi2.sf(chisq, df))}
