"""Named warning classes, one per situation (so users can filter or escalate them)."""


class GlmmkitWarning(UserWarning):
    """Base class of glmmkit's warnings."""


class ConvergenceWarning(GlmmkitWarning):
    """The optimiser stopped where the gradient is not (near) zero."""


class SingularFitWarning(GlmmkitWarning):
    """A random-effect variance is estimated on the boundary (zero) or a correlation at +-1."""


class DroppedRowsWarning(GlmmkitWarning):
    """Rows with missing values were dropped; the warning counts them per column."""
