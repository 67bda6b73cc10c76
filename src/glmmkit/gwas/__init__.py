"""Genome-wide association with a mixed model: GRM, null GLMM, score tests over variant chunks.

    import glmmkit as gk
    K, m = gk.gwas.grm("cohort")                                   # PLINK prefix; W W'/m in blocks
    null = gk.gwas.null("cohort", "pheno.tsv", covar="covar.tsv", trait="binary", K=K)   # step 1
    null.save("step1")
    res = gk.gwas.test("cohort", "step1", out="results.tsv.gz")    # step 2: CHR POS ID A1 A2 A1_FREQ N BETA SE T_STAT P
    gk.gwas.lambda_gc(res["P"])

Genotypes in any format plink2 reads: ``gk.gwas.open_genotypes(pfile=...)``, ``bgen=..., sample=...``,
``vcf=...`` (or a path ending .pgen/.bgen/.vcf); the result goes wherever a PLINK prefix does.

Needs ``glmmkit[gwas]`` (bed-reader, pgenlib, cbgen, cyvcf2).  See docs/gwas.md.
"""

from .grm import check_psd, grm, pattern_grm, read_gcta, sparse_grm, threshold_grm, write_gcta
from .implicit import ImplicitGRM, implicit_grm
from .null import NullModel, fit_null, loco_models
from .pca import PCAResult, pca
from .plink import BedWriter, Genotypes
from .scan import lambda_gc, null, test, top_hits
from .screen import ScreenReport, build_sparse_grm, screened_sparse_grm, sketch_size
from .sources import BgenGenotypes, PgenGenotypes, VcfGenotypes, open_genotypes
from .score import ScoreTester, spa_pvalue
from .simulate import simulate_cohort
from .tables import Samples, match, read_table

__all__ = ["grm", "sparse_grm", "pattern_grm", "check_psd", "threshold_grm", "read_gcta", "write_gcta", "NullModel", "fit_null",
           "Genotypes", "BedWriter", "null", "test", "lambda_gc", "top_hits", "ScoreTester", "spa_pvalue", "simulate_cohort",
           "Samples", "match", "read_table", "open_genotypes", "PgenGenotypes", "BgenGenotypes", "VcfGenotypes",
           "build_sparse_grm", "screened_sparse_grm", "sketch_size", "ScreenReport", "pca", "PCAResult",
           "ImplicitGRM", "implicit_grm", "loco_models"]
