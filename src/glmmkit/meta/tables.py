"""Study tables for meta-analysis: read the columns, check them, drop what carries no information.

One row per study. Two-arm binary outcomes (``measure="OR"``): events and non-events in the treatment
(``ai``, ``bi``) and control arm (``ci``, ``di``), or events and arm sizes (``ai``, ``n1i``, ``ci``,
``n2i``). Two-arm rates (``"IRR"``): events ``x1i``, ``x2i`` over person-time ``t1i``, ``t2i``.
Single arms (``"PLO"``): events ``xi`` of ``ni`` (or non-events ``mi``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..warnings import DroppedStudiesWarning
from ..errors import InputError
from ..formula.parse import check_formula_text

MEASURES = ("OR", "IRR", "PLO")


@dataclass
class StudyTable:
    """The counts of every study, checked: ``counts`` has the columns the measure needs."""

    measure: str
    study: np.ndarray  # labels
    counts: pd.DataFrame  # OR: ai bi ci di; IRR: x1i t1i x2i t2i; PLO: xi mi
    X: pd.DataFrame  # study-level design: "intrcpt" and the moderators' columns
    dropped: list = field(default_factory=list)

    @property
    def k(self) -> int:
        """The number of studies."""
        return len(self.study)

    def subset(self, keep: np.ndarray) -> StudyTable:
        """The table restricted to some studies.

        Parameters
        ----------
        keep : numpy.ndarray
            A boolean mask over the studies.

        Returns
        -------
        StudyTable
            The subset.
        """
        keep = np.asarray(keep, dtype=bool)
        return StudyTable(self.measure, self.study[keep], self.counts[keep].reset_index(drop=True),
                          self.X[keep].reset_index(drop=True), self.dropped + list(self.study[~keep]))


def _column(data: pd.DataFrame, name, role: str) -> tuple[str, np.ndarray]:
    if isinstance(name, str):
        if name not in data.columns:
            raise InputError(f"column {name!r} (given as {role}) is not in the data; columns: {list(data.columns)}")
        return name, data[name].to_numpy()
    v = np.asarray(name)
    if v.shape != (len(data),):
        raise InputError(f"{role} has {v.shape} values; the data have {len(data)} rows")
    return role, v


def read_table(data: pd.DataFrame, measure: str, *, study=None, mods: str | None = None, **cols) -> StudyTable:
    """Check and collect the counts of each study. Errors name the study and the column.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study.
    measure : {"OR", "IRR", "PLO"}
        The effect measure.
    study : str, optional
        The study labels' column.
    mods : str, optional
        Moderators.
    **cols
        The count columns.

    Returns
    -------
    StudyTable
        The checked counts, labels and design.
    """
    if measure not in MEASURES:
        raise InputError(f"measure must be one of {MEASURES}, got {measure!r}")
    from ..frames import as_pandas

    data = as_pandas(data, "the study table")
    if len(data) == 0:
        raise InputError("the study table is empty")
    if study is None:
        labels = np.asarray([str(i + 1) for i in range(len(data))], dtype=object)
    else:
        _, labels = _column(data, study, "study")
        labels = np.asarray([str(s) for s in labels], dtype=object)
        dup = pd.Series(labels)[pd.Series(labels).duplicated()].unique()
        if len(dup):
            raise InputError(f"study labels repeated: {', '.join(map(str, dup[:5]))} (one row per study)")

    given = {k: v for k, v in cols.items() if v is not None}
    if measure == "OR":
        need = [("ai", "bi", "ci", "di"), ("ai", "n1i", "ci", "n2i")]
    elif measure == "IRR":
        need = [("x1i", "t1i", "x2i", "t2i")]
    else:
        need = [("xi", "ni"), ("xi", "mi")]
    form = next((f for f in need if all(c in given for c in f)), None)
    if form is None:
        alts = " or ".join("(" + ", ".join(f) + ")" for f in need)
        raise InputError(f"measure={measure!r} needs the columns {alts}; given: {sorted(given)}")

    raw = {}
    names = {}
    for c in form:
        names[c], v = _column(data, given[c], c)
        raw[c] = pd.to_numeric(pd.Series(v), errors="coerce").to_numpy(dtype=float)
    for c, v in raw.items():
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "missing" if pd.isna(data.iloc[i][names[c]] if names[c] in data.columns else np.nan) else "not a number"
            raise InputError(f"study {labels[i]}: {names[c]} ({c}) is {what}; "
                             f"{int(bad.sum())} stud{'y' if bad.sum() == 1 else 'ies'} in all "
                             "(an arm with no data: leave the study out)")
        if (v < 0).any():
            i = int(np.flatnonzero(v < 0)[0])
            raise InputError(f"study {labels[i]}: {names[c]} ({c}) = {v[i]:g} is negative")
        is_count = c not in ("t1i", "t2i")
        if is_count and (v != np.round(v)).any():
            i = int(np.flatnonzero(v != np.round(v))[0])
            raise InputError(f"study {labels[i]}: {names[c]} ({c}) = {v[i]:g} is not a whole number of events")

    if measure == "OR":
        ai, ci = raw["ai"], raw["ci"]
        if "bi" in raw:
            bi, di = raw["bi"], raw["di"]
        else:
            for ev, n, en, nn in ((ai, raw["n1i"], "ai", "n1i"), (ci, raw["n2i"], "ci", "n2i")):
                over = ev > n
                if over.any():
                    i = int(np.flatnonzero(over)[0])
                    raise InputError(f"study {labels[i]}: events {names[en]} = {ev[i]:g} exceed the arm size "
                                     f"{names[nn]} = {n[i]:g}")
            bi, di = raw["n1i"] - ai, raw["n2i"] - ci
        for ev, ne, arm in ((ai, bi, "treatment"), (ci, di, "control")):
            empty = ev + ne == 0
            if empty.any():
                i = int(np.flatnonzero(empty)[0])
                raise InputError(f"study {labels[i]}: the {arm} arm has no participants (one arm missing); "
                                 "a two-arm measure needs both arms")
        counts = pd.DataFrame({"ai": ai, "bi": bi, "ci": ci, "di": di})
    elif measure == "IRR":
        for t, tn in (("t1i", "treatment"), ("t2i", "control")):
            zero = raw[t] <= 0
            if zero.any():
                i = int(np.flatnonzero(zero)[0])
                raise InputError(f"study {labels[i]}: person-time {names[t]} of the {tn} arm is {raw[t][i]:g}; "
                                 "it must be positive")
        counts = pd.DataFrame({k: raw[k] for k in ("x1i", "t1i", "x2i", "t2i")})
    else:
        xi = raw["xi"]
        if "ni" in raw:
            over = xi > raw["ni"]
            if over.any():
                i = int(np.flatnonzero(over)[0])
                raise InputError(f"study {labels[i]}: events {names['xi']} = {xi[i]:g} exceed n "
                                 f"{names['ni']} = {raw['ni'][i]:g}")
            mi = raw["ni"] - xi
        else:
            mi = raw["mi"]
        empty = xi + mi == 0
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise InputError(f"study {labels[i]}: no participants")
        counts = pd.DataFrame({"xi": xi, "mi": mi})

    X = moderator_matrix(data, mods, labels)
    return StudyTable(measure, labels, counts, X)


def moderator_matrix(data: pd.DataFrame, mods: str | None, labels) -> pd.DataFrame:
    """The study-level design of a meta-regression: ``"~ year + dose"`` -> intrcpt, year, dose (formulaic).

    Parameters
    ----------
    data : pandas.DataFrame
        The study rows.
    mods : str or None
        A one-sided formula such as ``"~ year + dose"``.
    labels : array-like
        The study labels.

    Returns
    -------
    pandas.DataFrame
        The design (intercept first).
    """
    if mods is None:
        return pd.DataFrame({"intrcpt": np.ones(len(data))})
    from formulaic import model_matrix

    check_formula_text(mods, "mods")
    rhs = mods.split("~", 1)[1] if "~" in mods else mods
    needed = [c for c in data.columns if re.search(rf"(?<![\w.]){re.escape(str(c))}(?![\w.])", rhs)]
    na = data[needed].isna().any(axis=1).to_numpy() if needed else np.zeros(len(data), dtype=bool)
    if na.any():
        i = int(np.flatnonzero(na)[0])
        col = [c for c in needed if pd.isna(data.iloc[i][c])][0]
        raise InputError(f"study {labels[i]}: moderator {col!r} is missing ({int(na.sum())} stud"
                         f"{'y' if na.sum() == 1 else 'ies'} in all)")
    try:
        X = model_matrix(rhs, data.reset_index(drop=True), na_action="raise")
    except Exception as err:  # formulaic names the term
        raise InputError(f"moderators {mods!r}: {err}") from None
    X = pd.DataFrame(np.asarray(X, dtype=float), columns=[("intrcpt" if c == "Intercept" else c) for c in X.columns])
    bad = ~np.isfinite(X.to_numpy()).all(axis=0)
    if bad.any():
        raise InputError(f"moderators {mods!r}: the column {X.columns[int(np.flatnonzero(bad)[0])]!r} has "
                         "non-finite values")
    rank = np.linalg.matrix_rank(X.to_numpy()) if X.shape[1] else 0
    if rank < X.shape[1]:
        for j in range(1, X.shape[1] + 1):
            if np.linalg.matrix_rank(X.to_numpy()[:, :j]) < j:
                raise InputError(f"moderators {mods!r}: the column {X.columns[j - 1]!r} is constant or a linear "
                                 "combination of the columns before it (with the intercept); the meta-regression "
                                 "cannot separate their effects: remove it")
    return X


def no_information(table: StudyTable) -> np.ndarray:
    """Studies without events in both arms (or only events in both): ``drop00`` candidates.

    Parameters
    ----------
    table : StudyTable
        The studies.

    Returns
    -------
    numpy.ndarray
        A boolean mask of the studies without information on the effect.
    """
    c = table.counts
    if table.measure == "OR":
        return ((c.ai == 0) & (c.ci == 0) | (c.bi == 0) & (c.di == 0)).to_numpy()
    if table.measure == "IRR":
        return ((c.x1i == 0) & (c.x2i == 0)).to_numpy()
    return np.zeros(table.k, dtype=bool)


def drop_double_zero(table: StudyTable, drop00: bool) -> StudyTable:
    """Leave out double-zero studies (metafor's ``drop00=TRUE``) with a warning that names them.

    Parameters
    ----------
    table : StudyTable
        The studies.
    drop00 : bool
        Drop them (otherwise only count them).

    Returns
    -------
    StudyTable
        The studies kept (the dropped ones listed in ``dropped`` and a DroppedStudiesWarning).
    """
    out = no_information(table)
    if not drop00 or not out.any():
        return table
    names = ", ".join(map(str, table.study[out][:10])) + (" ..." if out.sum() > 10 else "")
    warnings.warn(f"{int(out.sum())} stud{'y' if out.sum() == 1 else 'ies'} without events (or with only events) "
                  f"in both arms left out: {names} (drop00=False keeps them in the random-intercept models)",
                  DroppedStudiesWarning, stacklevel=3)
    kept = table.subset(~out)
    if kept.k == 0:
        raise InputError("no study is left after dropping those without events in both arms")
    return kept


def study_rows(es, table: StudyTable, crit: float) -> pd.DataFrame:
    """The per-study rows of a meta-analysis result: effect size, variance, interval, then the counts.

    Parameters
    ----------
    es : EffectSizes
        ``escalc``'s yi and vi.
    table : StudyTable
        The counts (the forest plot prints them, as metafor's).
    crit : float
        The interval's normal quantile.

    Returns
    -------
    pandas.DataFrame
        ``yi``, ``vi``, ``lower``, ``upper`` and the measure's count columns (ai bi ci di, x1i t1i x2i t2i or
        xi mi), one row per study.
    """
    out = pd.DataFrame({"yi": es.yi, "vi": es.vi, "lower": es.yi - crit * np.sqrt(es.vi),
                        "upper": es.yi + crit * np.sqrt(es.vi)})
    for c in table.counts.columns:
        out[c] = table.counts[c].to_numpy()
    return out
