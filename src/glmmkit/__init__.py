"""glmmkit: generalized linear mixed models in Python, with lme4's formula language.

    import glmmkit as gk
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data=df, family="binomial")
    print(fit.summary())
"""

from . import datasets, errors, families, gwas, links, meta, phylo, plots, singlecell
from .api import add_olre, glmer, lmer, optimize, refit
from .allfit import AllFit, all_fit
from .ordinal import clmm
from .diagnostics import compare, dispersion_test, overdispersion_report, pearson_dispersion, simulate_residuals
from .inference import anova, bootstrap_lrt, emmeans, influence, power
from .engine.control import Control
from .engine.optimize import OptSummary
from .formula.spec import ModelSpec
from .results import Fit, lme4_name
from .errors import (FileFormatError, FitError, FormulaError, GlmmkitError, InputError, MissingFileError,
                     OutputPathError, SampleMismatchError)
from .warnings import (ConvergenceWarning, CostWarning, DataWarning, DroppedRowsWarning, DroppedStudiesWarning,
                       GlmmkitWarning, ModelChangeWarning, SingularFitWarning)

__version__ = "0.1.0"

__all__ = [
    "clmm", "emmeans", "all_fit", "AllFit", "influence", "power",
    "glmer", "lmer", "optimize", "add_olre", "anova", "bootstrap_lrt", "plots", "compare", "overdispersion_report",
    "pearson_dispersion", "dispersion_test", "simulate_residuals", "refit", "ModelSpec", "Fit", "OptSummary", "Control", "datasets", "families", "links", "meta", "phylo", "singlecell", "gwas", "lme4_name",
    "ConvergenceWarning", "SingularFitWarning", "DroppedRowsWarning", "GlmmkitWarning", "ModelChangeWarning",
    "CostWarning", "DataWarning", "DroppedStudiesWarning", "errors", "GlmmkitError", "InputError", "FormulaError", "FileFormatError", "MissingFileError",
    "SampleMismatchError", "OutputPathError", "FitError",
]
