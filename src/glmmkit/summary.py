"""The printed report of a fit, laid out like lme4's ``summary(merMod)``."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:.4e}"


def format_summary(fit) -> str:
    """lme4's ``summary`` of a fit as text.

    Parameters
    ----------
    fit : Fit
        The fitted model.

    Returns
    -------
    str
        The report.
    """
    lines = []
    if fit.is_lmm:
        lines.append(f"Linear mixed model fit by {'REML' if fit.reml else 'maximum likelihood'} (glmmkit)")
    else:
        approx = "Laplace approximation" if fit.nagq == 1 else f"adaptive Gauss-Hermite quadrature, nAGQ = {fit.nagq}"
        how = ("REML (fixed effects integrated by Laplace with the random effects)" if fit.reml
               else f"maximum likelihood ({approx})")
        lines.append(f"Generalized linear mixed model fit by {how} (glmmkit)")
        if getattr(fit.family, "cdf", None):  # gk.clmm
            lines.append(f" Family: cumulative link  ( {fit.family.cdf} ), flexible thresholds")
        else:
            lines.append(f" Family: {fit.family.name}  ( {fit.family.link.name} )")
    lines.append(f"Formula: {fit.spec.formula}")
    for name, f in (("Zero inflation", getattr(fit.spec, "ziformula", None)),
                    ("Dispersion", getattr(fit.spec, "dispformula", None))):
        if f:
            lines.append(f"{name}: {f}")
    lines.append("")
    crit = "REML criterion" if fit.reml else "logLik"
    lines.append("     AIC      BIC   logLik  deviance  df.resid")
    lines.append(f"{fit.aic:8.1f} {fit.bic:8.1f} {fit.loglik:8.1f} {fit.deviance:9.1f} {fit.df_resid:9d}")
    if fit.reml:
        lines.append(f"{crit} at convergence: {-2 * fit.loglik:.4f}")
    lines.append("")
    lines.append("Random effects:")
    vc = fit.varcorr
    tab = []
    for _, r in vc.iterrows():
        if pd.isna(r["term2"]) or r["term2"] is None:
            tab.append([r["group"], r["term1"] or "", _fmt(r["variance"]), _fmt(r["sd"]), ""])
        else:
            tab.append(["", f"  corr({r['term1']}, {r['term2']})", "", "", f"{r['corr']:.3f}"])
    header = ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    widths = [max(len(str(row[i])) for row in tab + [header]) for i in range(5)]
    lines.append(" " + "  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in tab:
        lines.append(" " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    ng = "; ".join(f"{k}, {v}" for k, v in fit.ngroups.items())
    dropped = f" ({fit.spec.n_dropped} rows dropped: missing or non-finite values)" if fit.spec.n_dropped else ""
    lines.append(f"Number of obs: {fit.nobs}{dropped}, groups:  {ng}")
    if not fit.is_lmm and len(fit.family_params):
        lines.append("")
        lines.append("Thresholds (95% Wald intervals):" if getattr(fit.family, "cdf", None)
                     else "Family parameters (95% Wald intervals):")
        with pd.option_context("display.width", 120, "display.float_format", lambda v: f"{v: .5g}"):
            lines.append(fit.family_params.to_string())
    lines.append("")
    lines.append("Fixed effects:")
    ct = fit.coef_table.copy()
    with pd.option_context("display.width", 120, "display.float_format", lambda v: f"{v: .5g}"):
        lines.append(ct.to_string())
    lines.append(f"(standard errors: {fit.vcov_method})")
    if fit.messages:
        lines.append("")
        for m in fit.messages:
            lines.append(f"note: {m}")
    return "\n".join(lines)
