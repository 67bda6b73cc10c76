"""Formulas: lme4 bar terms parsed here, fixed effects by formulaic."""

from .parse import Bar, ParsedFormula, parse_formula
from .spec import ModelSpec

__all__ = ["Bar", "ParsedFormula", "parse_formula", "ModelSpec"]
