"""Figures (matplotlib, the ``[plots]`` extra). Each function returns the figure and can save it."""

from .residuals import plot_simulated_residuals

__all__ = ["plot_simulated_residuals"]
