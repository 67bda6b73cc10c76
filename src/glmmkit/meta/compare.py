"""All the methods on one table of studies, side by side: what the GLMM changes."""

from __future__ import annotations

import warnings

import pandas as pd

from .classic import mantel_haenszel, peto, rma
from .glmm import glmm
from .tables import DroppedStudiesWarning


def compare(data: pd.DataFrame, *, measure: str = "OR", models=("UM.FS", "UM.RS", "CM.EL", "CM.AL"),
            classic=("REML", "DL", "MH", "Peto"), study=None, level: float = 0.95, **cols) -> pd.DataFrame:
    """One row per method: pooled log effect, SE, CI, p, tau^2, I^2 and the prediction interval.

    The GLMMs (``models``; ``"PLO"`` data take the single binomial-normal model) and the classic
    methods (``"REML"``, ``"DL"``, ``"FE"`` inverse variance with the 0.5 continuity correction;
    ``"MH"`` Mantel-Haenszel; ``"Peto"``). Columns as in ``gk.meta.glmm``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study.
    measure : {"OR", "IRR"}
        The effect measure.
    models : tuple of str
        The GLMMs (``gk.meta.glmm``'s models).
    classic : tuple of str
        The classic methods (``"REML"``, ``"DL"``, ``"MH"``, ``"Peto"``).
    study : str, optional
        The study labels' column.
    level : float
        Confidence level.
    **cols
        The count columns.

    Returns
    -------
    pandas.DataFrame
        One row per method (``MetaFit.to_row``).
    """
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedStudiesWarning)
        for m in (models if measure != "PLO" else ("UM.FS",)):
            if measure == "IRR" and m == "CM.AL":
                continue
            rows.append(glmm(data, measure=measure, model=m, study=study, level=level, tau2_ci=False, **cols).to_row())
    for c in classic:
        if c in ("REML", "DL", "FE"):
            f = rma(data, measure=measure, method=c, study=study, level=level, **cols)
        elif c == "MH" and measure != "PLO":
            f = mantel_haenszel(data, measure=measure, study=study, level=level, **cols)
        elif c == "Peto" and measure == "OR":
            f = peto(data, study=study, level=level, **cols)
        else:
            continue
        rows.append(f.to_row())
    return pd.DataFrame(rows).set_index("method")
