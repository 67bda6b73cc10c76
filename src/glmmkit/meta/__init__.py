"""Meta-analysis: binomial- and Poisson-normal GLMMs over the arms of all studies, beside the classic methods.

    fit = gk.meta.glmm(df, ai="ai", bi="bi", ci="ci", di="di", model="UM.FS")
    print(fit.summary()); fit.forest("forest.png")
    gk.meta.compare(df, ai="ai", bi="bi", ci="ci", di="di")    # GLMMs, IV (DL, REML), MH, Peto side by side
"""

from .classic import mantel_haenszel, peto, rma
from .compare import compare
from .effects import escalc
from .glmm import glmm
from .results import MetaFit
from .tables import DroppedStudiesWarning, read_table

__all__ = ["glmm", "compare", "rma", "mantel_haenszel", "peto", "escalc", "MetaFit", "read_table", "DroppedStudiesWarning"]
