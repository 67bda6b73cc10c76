"""Diagnostics of a fit: dispersion, simulation-based residuals, overdispersion comparison."""

from .dispersion import dispersion_test, pearson_dispersion
from .overdispersion import OverdispersionReport, compare, overdispersion_report
from .simres import SimulatedResiduals, simulate_residuals

__all__ = ["pearson_dispersion", "dispersion_test", "simulate_residuals", "SimulatedResiduals", "compare",
           "overdispersion_report", "OverdispersionReport"]
