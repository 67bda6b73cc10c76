"""Phylogenetic GLMMs on large trees: the engine on the tree's random-effects system (sparse.py).

    eta = X beta + offset + a[tip of each observation],   a = Brownian motion on the tree,
    cov(a at the tips) = theta^2 K,   K = vcv(tree) (corr=False) or vcv(tree, corr=True) (ultrametric)

This is the same model and the same Laplace value as ``glmer(..., relmat={group: K})`` (the dense
path), at O(number of nodes) per evaluation instead of O(tips^3): the engine's PIRLS, Laplace objective
and optimiser run unchanged on ``TreeSystem`` (engine/resystem.py states the protocol), and the result
is a plain ``Fit`` (profile intervals, bootstrap, prediction, simulation, the report).
"""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from ..engine.control import as_control
from ..errors import InputError
from ..fitting import optimize
from ..formula.spec import ModelSpec
from ..results import Fit
from .sparse import TreeCovariance
from .tree import Tree, as_tree


def fit_tree_glmm(formula: str, data: pd.DataFrame, family, tree: Tree, *, group: str | None = None,
                  corr: bool = True, laplace: str | None = None, weights=None, offset=None, control=None) -> Fit:
    """Fit ``y ~ ... + (1 | group) [+ other terms]`` with cov(group effect) = theta^2 vcv(tree[, corr]) on the
    tree path.

    Parameters
    ----------
    formula : str
        An lme4 formula with a random intercept whose levels are tips of ``tree`` (matched by name; tips
        without data are allowed and marginalised out), and any other random-effects terms beside it.
    data : pandas.DataFrame
        The data.
    family : str or Family
        The response family (``"binomial"``, ``"poisson"``, ``"nbinom2"``, ...).
    tree : Tree, str or path
        The tree, Newick text or a Newick file (positive branch lengths).
    group : str, optional
        The grouping factor that follows the tree (default: the one random intercept whose levels are tips).
    corr : bool
        K = vcv(tree, corr=True) (needs an ultrametric tree) or the plain vcv.
    laplace : {"expected", "observed"}, optional
        The Laplace information (the family's default).
    weights, offset : optional
        As for ``glmer``.
    control : Control or dict, optional
        The optimiser's settings (``gk.Control``).

    Returns
    -------
    Fit
        A plain fit; its term's covariance is a ``TreeCovariance`` and its optimisation summary names the
        tree system.
    """
    t0 = time.perf_counter()
    tree = as_tree(tree)
    spec = ModelSpec.from_formula(formula, data, family, weights=weights, offset=offset)
    tips = {str(n) for i, n in enumerate(tree.names) if tree.is_tip[i]}
    scalar = [i for i, t in enumerate(spec.terms) if t.k == 1 and t.columns == ["(Intercept)"]]
    if group is not None:
        pos = [i for i in scalar if spec.terms[i].group == group]
        if not pos:
            raise InputError(f"the formula has no random intercept (1 | {group}); its terms: "
                             f"{[t.label for t in spec.terms]}")
    else:
        pos = [i for i in scalar if all(str(lv) in tips for lv in spec.terms[i].levels)]
        if not pos:
            raise InputError("the tree path needs one random intercept (1 | group) whose levels are the tips of the "
                             f"tree; none of {[t.label for t in spec.terms]} has its levels among the tips "
                             "(for other structures use glmer(..., relmat={group: vcv(tree)}))")
        if len(pos) > 1:
            raise InputError(f"several terms have levels among the tips ({[spec.terms[i].group for i in pos]}); "
                             "say which one follows the tree with group=")
    i = pos[0]
    term = spec.terms[i]
    spec.terms = [dataclasses.replace(t, cov=TreeCovariance(tree, t.levels, corr=corr, group=t.group)) if j == i else t
                  for j, t in enumerate(spec.terms)]
    control = as_control(control)
    obj = spec.objective(laplace=laplace or spec.family.default_laplace, quad_stop=control.quad_stop)
    return Fit(spec, optimize(obj, control=control), time_s=time.perf_counter() - t0)
