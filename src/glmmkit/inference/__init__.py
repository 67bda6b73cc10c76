"""Inference on fits: likelihood-ratio tests, profiles, bootstrap, prediction intervals, R^2."""

from .emmeans import MarginalMeans, emmeans
from .influence import Influence, influence
from .power import Power, power
from .bootstrap import bootstrap, bootstrap_lrt, confint_boot
from .lrt import anova
from .profile import confint_profile, profile
from .r2 import icc, r2

__all__ = ["anova", "emmeans", "MarginalMeans", "influence", "Influence", "power", "Power", "bootstrap", "bootstrap_lrt", "confint_boot", "confint_profile", "profile", "r2", "icc"]
