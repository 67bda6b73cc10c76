"""A calibrated test of a fixed effect in a phylogenetic GLMM: the parametric-bootstrap likelihood ratio.

With binary traits and trees of a hundred tips, the Wald and likelihood-ratio tests of a fixed effect
are anti-conservative (measured: 13% to 15% at the 5% level under pure phylogenetic confounding,
docs/phylo.md): the phylogenetic variance is often estimated at zero and the chi-square reference does
not hold.  The bootstrap refers the observed LR to its distribution under the fitted null model.

There is one bootstrap LRT in glmmkit, ``gk.bootstrap_lrt(m0, m1)``: the tree path's fits are plain
``Fit`` objects whose ``simulate`` draws Brownian motion on the tree and whose ``refit`` stays on the
tree path, so

    m0 = gk.phylo.fit_tree_glmm("y ~ 1 + (1 | sp)", d, "binomial", tree)
    m1 = gk.phylo.fit_tree_glmm("y ~ gene + (1 | sp)", d, "binomial", tree)
    gk.phylo.bootstrap_lrt(m0, m1, nsim=99, seed=1)       # the same function as gk.bootstrap_lrt
"""

from __future__ import annotations

from ..inference.bootstrap import bootstrap_lrt

__all__ = ["bootstrap_lrt"]
