"""Named warning classes, one per situation (so users can filter or escalate them).

docs/errors.md lists what triggers each and what to do about it.
"""


class GlmmkitWarning(UserWarning):
    """Base class of glmmkit's warnings."""


class ConvergenceWarning(GlmmkitWarning):
    """The optimiser stopped where the gradient is not (near) zero, or the estimates are not finite."""


class SingularFitWarning(GlmmkitWarning):
    """A random-effect variance is estimated on the boundary (zero) or a correlation at +-1."""


class DroppedRowsWarning(GlmmkitWarning):
    """Rows with missing or non-finite values were dropped; the warning counts them per column."""


class DroppedStudiesWarning(DroppedRowsWarning):
    """Studies were left out of a meta-analytic model (both arms without events, or all events); the warning
    names them."""


class DataWarning(GlmmkitWarning):
    """A value in the data is unusual but usable as it stands (a non-integer number of successes)."""


class ModelChangeWarning(GlmmkitWarning):
    """The model fitted differs from the one written: a predictor dropped as rank-deficient, a factor
    with a single level, a named column the model does not use."""


class CostWarning(GlmmkitWarning):
    """The model is very large for the data (random effects approaching the number of observations)."""
