"""Inference on fits: likelihood-ratio tests."""

from .lrt import anova

__all__ = ["anova"]
