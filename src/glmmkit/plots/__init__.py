"""Figures (matplotlib, the ``[plots]`` extra). Each function returns the figure and can save it."""

from .inference import caterpillar, coef_plot, effects_plot, fitted_observed, interval_plot, profile_plot
from .meta import forest_plot, funnel_plot
from .residuals import plot_simulated_residuals
from .gwas import manhattan, qq
from .singlecell import compare_methods, volcano

profile = profile_plot  # gk.plots.profile(fit.profile())
effects = effects_plot  # gk.plots.effects(fit, "x")

__all__ = ["plot_simulated_residuals", "caterpillar", "coef_plot", "effects_plot", "effects", "interval_plot", "fitted_observed",
           "profile_plot", "profile", "forest_plot", "funnel_plot", "volcano", "compare_methods", "manhattan", "qq"]
