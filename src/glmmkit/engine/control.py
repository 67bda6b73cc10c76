"""How one fit is optimised: a ``Control`` per call (lme4's ``glmerControl``), recorded on the fit's
optimisation summary (``fit.optsummary.control``), as MixedModels.jl's ``OptSummary`` does.

    gk.glmer(formula, data, "binomial", control=gk.Control(gradient=False))   # the derivative-free path

Every switch has a tested off-path (tests/test_control.py): each reaches the same optimum.  Switches
that no longer earned their keep were removed (always on: theta searched in unit-curvature coordinates
on the gradient path, PIRLS warm-started at the first-order move of the mode; always off: holding the
family's parameters in stage 1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..checks import check_int, check_real
from ..errors import InputError


#: the searches a Control can ask for
OPTIMIZERS = ("default", "lbfgs", "bobyqa", "nelder-mead")


@dataclass(frozen=True)
class Control:
    """The optimiser's switches and tolerances for one fit.

    Parameters
    ----------
    gradient : bool
        L-BFGS-B with the analytic gradient where the model allows it (GLMMs: the Laplace or AGQ gradient
        of docs/engine.md's list; LMMs: the profiled deviance's, when one evaluation costs at least 2 ms);
        False: BOBYQA on the objective alone.
    skip_stage1 : bool
        On the gradient path, start stage 2 from the joint mode at the moment estimate of theta instead of
        a stage-1 BOBYQA search.
    moment_start : bool
        Start theta at moment estimates from the GLM's working residuals (False: lme4's theta0).
    ftol1, xtol1 : float
        Stage 1's stopping rules (-2 log L units; relative step).
    ftol2, xtol2 : float
        Stage 2's stopping rules.
    gtol : float
        The gradient path's gradient tolerance (unit-curvature coordinates).
    step2_theta : float
        Stage 2's initial BOBYQA step on theta, relative.
    step2_beta : float
        Stage 2's initial BOBYQA step on beta, in stage-1 standard errors.
    quad_stop : float
        PIRLS stops after a full Newton step on a canonical link that moved u by less than this (the next
        would move it by about its square); 0 turns the shortcut off.
    maxfev : int
        Most objective evaluations per BOBYQA or Nelder-Mead search.
    optimizer : {"default", "lbfgs", "bobyqa", "nelder-mead"}
        The search: the default path (L-BFGS-B on the analytic gradient where the model has one and it pays,
        BOBYQA otherwise), L-BFGS-B wherever an analytic gradient exists, or a derivative-free search by
        BOBYQA or by Nelder-Mead (nlopt's) throughout; ``gk.all_fit`` tries each.
    """

    gradient: bool = True
    skip_stage1: bool = True
    moment_start: bool = True
    ftol1: float = 1e-4
    xtol1: float = 1e-3
    ftol2: float = 1e-7
    xtol2: float = 1e-6
    gtol: float = 1e-4
    step2_theta: float = 0.1
    step2_beta: float = 0.25
    quad_stop: float = 1e-5
    maxfev: int = 20000
    optimizer: str = "default"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"Control.optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer in ("bobyqa", "nelder-mead"):
            object.__setattr__(self, "gradient", False)  # a derivative-free search throughout
        elif self.optimizer == "lbfgs":
            object.__setattr__(self, "gradient", True)
        for name in ("gradient", "skip_stage1", "moment_start"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"Control.{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("ftol1", "xtol1", "ftol2", "xtol2", "gtol", "step2_theta", "step2_beta"):
            check_real(f"Control.{name}", getattr(self, name), 0.0, None, open_lo=True)
        check_real("Control.quad_stop", self.quad_stop, 0.0, None)
        check_int("Control.maxfev", self.maxfev, 1)

    @property
    def algorithm(self) -> str:
        """The derivative-free searches' nlopt algorithm ("neldermead" or "bobyqa")."""
        return "neldermead" if self.optimizer == "nelder-mead" else "bobyqa"

    def replace(self, **changes) -> "Control":
        """A copy with some settings changed.

        Parameters
        ----------
        **changes
            Field names and new values.

        Returns
        -------
        Control
            The new control.
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The settings as plain values.

        Returns
        -------
        dict
            Field name to value.
        """
        return dataclasses.asdict(self)


#: the settings every fit uses unless told otherwise
DEFAULT_CONTROL = Control()


def as_control(control) -> Control:
    """A ``Control`` from None (the defaults), a ``Control`` or a dict of its fields.

    Parameters
    ----------
    control : Control, dict or None
        The settings.

    Returns
    -------
    Control
        The settings; InputError names an unknown field.
    """
    if control is None:
        return DEFAULT_CONTROL
    if isinstance(control, Control):
        return control
    if isinstance(control, dict):
        unknown = sorted(set(control) - {f.name for f in dataclasses.fields(Control)})
        if unknown:
            raise InputError(f"unknown Control settings {unknown}; settings: "
                             f"{[f.name for f in dataclasses.fields(Control)]}")
        return Control(**control)
    raise InputError(f"control must be a glmmkit.Control, a dict of its settings or None, got {type(control).__name__}")
