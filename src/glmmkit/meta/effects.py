"""Per-study effect sizes and their sampling variances (metafor's ``escalc``).

    OR   y = log(a d / (b c)),              v = 1/a + 1/b + 1/c + 1/d
    IRR  y = log((x1 / t1) / (x2 / t2)),    v = 1/x1 + 1/x2
    PLO  y = log(x / m),                    v = 1/x + 1/m

A study with a zero cell gets ``add`` (default 1/2) in every cell (``to="only0"``), ``to="all"``
adds it everywhere and ``to="none"`` nowhere (then such studies have no finite y and are left out of
the inverse-variance methods with a note). The GLMMs never use these corrected values in their
likelihood; they serve for I^2 and for the per-study rows of tables and plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tables import StudyTable
from ..errors import InputError


def escalc(table: StudyTable, add: float = 0.5, to: str = "only0") -> pd.DataFrame:
    """Columns ``yi`` and ``vi`` (NaN where undefined), one row per study, indexed by study label.

    Parameters
    ----------
    table : StudyTable
        The studies.
    add : float
        The continuity correction.
    to : {"only0", "all", "none"}
        Where it is added.

    Returns
    -------
    pandas.DataFrame
        ``yi`` and ``vi``.
    """
    if to not in ("only0", "all", "none"):
        raise InputError(f"to must be 'only0', 'all' or 'none', got {to!r}")
    c = table.counts
    if table.measure == "OR":
        cells = c[["ai", "bi", "ci", "di"]].to_numpy(dtype=float)
    elif table.measure == "IRR":
        cells = c[["x1i", "x2i"]].to_numpy(dtype=float)
    else:
        cells = c[["xi", "mi"]].to_numpy(dtype=float)
    has0 = (cells == 0).any(axis=1)
    if to == "all":
        cells = cells + add
    elif to == "only0":
        cells = cells + add * has0[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if table.measure == "OR":
            a, b, cc, d = cells.T
            y = np.log(a) + np.log(d) - np.log(b) - np.log(cc)
        elif table.measure == "IRR":
            x1, x2 = cells.T
            y = np.log(x1 / c.t1i.to_numpy()) - np.log(x2 / c.t2i.to_numpy())
        else:
            x, m = cells.T
            y = np.log(x) - np.log(m)
        v = np.sum(1.0 / cells, axis=1)
    ok = np.isfinite(y) & np.isfinite(v)
    return pd.DataFrame({"yi": np.where(ok, y, np.nan), "vi": np.where(ok, v, np.nan)},
                        index=pd.Index(table.study, name="study"))
