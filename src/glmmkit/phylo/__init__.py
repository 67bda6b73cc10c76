"""Phylogenetic GLMMs: trees, their covariance, phylogenetic signal, and the naive comparison.

    tree = gk.phylo.read_tree("tree.nwk")
    K = gk.phylo.vcv(tree, corr=True)                      # equal to ape's vcv(tree, corr = TRUE)
    fit = gk.glmer("y ~ x + (1 | species)", d, "binomial", relmat={"species": K})
    gk.phylo.heritability(fit, "species", nsim=200)         # latent-scale H^2 with an interval
    gk.phylo.compare_naive("y ~ x + (1 | species)", d, "binomial", relmat={"species": K})
"""

from .compare import compare_naive
from .fit_sparse import fit_tree_glmm
from .sparse import TreeCovariance, TreeSystem
from .signal import heritability
from .testing import bootstrap_lrt
from .tree import Tree, pagel_lambda, read_tree, relmat_for, vcv

__all__ = ["bootstrap_lrt", "fit_tree_glmm", "TreeCovariance", "TreeSystem", "Tree", "read_tree", "vcv", "pagel_lambda", "relmat_for", "heritability", "compare_naive"]
