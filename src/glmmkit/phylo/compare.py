"""How an association changes once shared ancestry is modelled: the same model with and without the
phylogenetic term."""

from __future__ import annotations

import warnings

import formulaic
import numpy as np
import pandas as pd
from scipy import stats

from ..engine.glm import fit_glm
from ..families import get_family
from ..formula.parse import parse_formula
from ..formula.spec import _response
from ..errors import InputError


def _glm_table(formula: str, data: pd.DataFrame, family) -> pd.DataFrame:
    """A GLM (no random effects) fitted by IRLS, with Wald standard errors."""
    fam = get_family(family)
    pf = parse_formula(formula)
    y, wt, _ = _response(pf.response, data, fam, None)
    mm = formulaic.model_matrix(pf.fixed, data, na_action="ignore")
    X = np.asarray(mm, dtype=float)
    off = np.zeros(len(y))
    for expr in pf.offsets:
        off = off + np.asarray(data.eval(expr, engine="python"), dtype=float)
    beta, mu, _, _ = fit_glm(y, X, wt, off, fam.start_family())
    eta = off + X @ beta
    w = fam.start_family().working_weights(eta, mu, wt)
    se = np.sqrt(np.diag(np.linalg.inv(X.T @ (w[:, None] * X))))
    names = ["(Intercept)" if c == "Intercept" else c for c in mm.columns]
    z = beta / se
    return pd.DataFrame({"estimate": beta, "std_error": se, "z": z, "p": 2 * stats.norm.sf(np.abs(z))}, index=names)


def compare_naive(formula: str, data: pd.DataFrame, family="binomial", relmat: dict | None = None,
                  terms: list[str] | None = None, **kwargs) -> pd.DataFrame:
    """Fit ``formula`` with its known-covariance (phylogenetic) terms and without them, side by side.

    Returns one row per fixed effect (or per name in ``terms``): estimate, SE, z, p of the naive model
    and of the phylogenetic GLMM. Without other random effects the naive model is a plain GLM.
    """
    from ..api import glmer

    if not relmat:
        raise InputError("compare_naive needs relmat={group: K} (the phylogenetic term's covariance)")
    pf = parse_formula(formula)
    keep = [b for b in pf.bars if b.group not in relmat]
    rhs = [pf.fixed] + [str(b) for b in keep] + [f"offset({o})" for o in pf.offsets]
    naive_formula = f"{pf.response} ~ " + " + ".join(rhs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phylo = glmer(formula, data, family, relmat=relmat, **kwargs).coef_table
        if keep:
            naive = glmer(naive_formula, data, family, **kwargs).coef_table
        else:
            naive = _glm_table(naive_formula, data, family)
    zcol = "z" if "z" in phylo.columns else "t"
    naive = naive.rename(columns={"t": "z"})
    rows = terms or list(phylo.index)
    out = pd.DataFrame({
        "naive_estimate": naive.loc[rows, "estimate"], "naive_se": naive.loc[rows, "std_error"],
        "naive_p": naive.loc[rows, "p"] if "p" in naive else np.nan,
        "phylo_estimate": phylo.loc[rows, "estimate"], "phylo_se": phylo.loc[rows, "std_error"],
        "phylo_p": phylo.loc[rows, "p"] if zcol == "z" else np.nan,
    })
    out["se_ratio"] = out["phylo_se"] / out["naive_se"]
    return out
