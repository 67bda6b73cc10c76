"""How an association changes once shared ancestry is modelled: the same model with and without the
phylogenetic term."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..engine.glm import glm
from ..formula.parse import parse_formula
from ..formula.spec import ModelSpec
from ..errors import InputError


def _glm_table(formula: str, data: pd.DataFrame, family) -> pd.DataFrame:
    """A GLM (no random effects) with Wald standard errors, by the engine's one GLM routine."""
    spec = ModelSpec.from_formula(formula, data, family, fixed_only=True)
    return glm(spec.y, spec.X, spec.wt, spec.offset, spec.family).coef_table(spec.x_names)


def compare_naive(formula: str, data: pd.DataFrame, family="binomial", relmat: dict | None = None,
                  terms: list[str] | None = None, **kwargs) -> pd.DataFrame:
    """Fit ``formula`` with its known-covariance (phylogenetic) terms and without them, side by side.

    Without other random effects the naive model is a plain GLM (the engine's GLM routine).

    Parameters
    ----------
    formula : str
        The phylogenetic model's formula.
    data : pandas.DataFrame
        The data.
    family : str or Family
        The family.
    relmat : dict
        ``{group: K}`` of the phylogenetic terms (dropped from the naive model).
    terms : list of str, optional
        The fixed effects to show (default: all).
    **kwargs
        Passed to ``glmer``.

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect: ``naive_estimate``, ``naive_se``, ``naive_p``, ``phylo_estimate``,
        ``phylo_se``, ``phylo_p`` and ``se_ratio``.
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
