"""A calibrated test of a fixed effect in a phylogenetic GLMM: the parametric-bootstrap likelihood ratio.

With binary traits and trees of a hundred tips, the Wald and likelihood-ratio tests of a fixed effect
are anti-conservative (measured: 13% to 15% at the 5% level under pure phylogenetic confounding,
docs/phylo.md): the phylogenetic variance is often estimated at zero and the chi-square reference does
not hold. The bootstrap refers the observed LR to its distribution under the fitted null model:
simulate Brownian motion on the tree with the null fit's variance, the response given it, refit both
models, p = (1 + #{LR* >= LR}) / (1 + nsim). Each refit is on the sparse tree path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..formula.spec import ModelSpec
from .fit_sparse import fit_tree_glmm
from .sparse import TreeAlgebra
from .tree import Tree, as_tree
from ..checks import check_int
from ..errors import InputError


def _simulate_bm(alg: TreeAlgebra, rate: float, rng) -> np.ndarray:
    """Brownian motion down the tree (root 0), variance rate * branch length per branch."""
    v = np.zeros(alg.m)
    step = rng.standard_normal(alg.m) * np.sqrt(rate * alg.length)
    for idx in alg.down_levels:  # level by level from the root
        v[idx] = v[alg.parent[idx]] + step[idx]
    return v


def bootstrap_lrt(null_formula: str, full_formula: str, data: pd.DataFrame, family, tree: Tree, *,
                  nsim: int = 99, seed=None, corr: bool = True) -> dict:
    """Parametric-bootstrap likelihood-ratio test of the terms in ``full_formula`` beyond ``null_formula``."""
    tree = as_tree(tree)
    nsim = check_int("nsim", nsim, 1)
    resp = null_formula.split("~", 1)[0].strip()
    if resp not in data.columns:
        raise InputError(f"bootstrap_lrt needs the response as a column name, got {resp!r}")
    f0 = fit_tree_glmm(null_formula, data, family, tree, corr=corr)
    f1 = fit_tree_glmm(full_formula, data, family, tree, corr=corr)
    lr = max(0.0, 2 * (f1.loglik - f0.loglik))
    rng = np.random.default_rng(seed)
    alg = TreeAlgebra(tree)
    tips = {name: i for i, name in enumerate(tree.names) if tree.is_tip[i]}
    spec0 = ModelSpec.from_formula(null_formula, data, family)
    group = spec0.terms[0].group
    node = np.array([tips[str(v)] for v in data[group].astype(str)])
    c = float(tree.depth[tree.is_tip].max()) if corr else 1.0
    eta0 = spec0.offset + spec0.X @ f0.fixef.to_numpy()
    fam = f0.family
    wt = np.ones(len(data))
    lrs = np.empty(nsim)
    for b in range(nsim):  # one pair of refits per simulated data set
        a = _simulate_bm(alg, f0.theta ** 2 / c, rng)
        y = fam.simulate(fam.link.inverse(eta0 + a[node]), wt, rng)
        d = data.assign(**{resp: y})
        g0 = fit_tree_glmm(null_formula, d, family, tree, corr=corr)
        g1 = fit_tree_glmm(full_formula, d, family, tree, corr=corr)
        lrs[b] = max(0.0, 2 * (g1.loglik - g0.loglik))
    p = (1 + np.sum(lrs >= lr)) / (1 + nsim)
    return {"LR": lr, "p_bootstrap": float(p), "nsim": nsim, "LR_null_mean": float(np.mean(lrs))}
