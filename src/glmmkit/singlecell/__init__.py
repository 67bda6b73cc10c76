"""Single-cell differential expression: NB GLMMs with cells nested in subjects, against pseudobulk.

    import glmmkit as gk
    res = gk.singlecell.de(adata, subject="donor", condition="group")   # or a path to an .h5ad file
    res.table            # one row per gene: log_fc, log2_fc, se, z, p, fdr, subject_sd, theta, ...
    res.cell_glm         # the same model without the subject effect (pseudoreplication)
    pb = gk.singlecell.pseudobulk(adata, subject="donor", condition="group")   # DESeq2 via pydeseq2

The fast path (one subject random intercept, subject-level design) fits blocks of genes at once and
is the same Laplace objective as ``gk.glmer`` on one gene; other designs go to the general engine.
Needs ``glmmkit[sc]`` (anndata; pydeseq2 for pseudobulk).
"""

from .celltypes import CellTypeDE
from .data import CellData, aggregate, prepare
from .de import cell_glm, de
from .pseudobulk import pseudobulk
from .results import DEResult, bh_fdr, power_at_fdp
from .simulate import simulate

__all__ = ["de", "CellTypeDE", "cell_glm", "pseudobulk", "aggregate", "prepare", "CellData", "DEResult", "bh_fdr", "power_at_fdp", "simulate"]
