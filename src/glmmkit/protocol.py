"""The one result protocol every glmmkit result follows.

    text = result.summary()        # the report as text; print(result) shows the same text
    d = result.to_dict()           # strict JSON: json.dumps(d, allow_nan=False) accepts it
    result.table                   # where a result is a table: a DataFrame

A result class derives from ``Result`` and writes two methods: ``summary`` (text, never printed by
the library) and ``_as_dict`` (plain values; ``to_dict`` makes them strict JSON).  Interval columns
are ``lower`` and ``upper`` everywhere (docs/glossary.md maps them to lme4's ``2.5 %`` and metafor's
``ci.lb``).

``TestResult`` is the result of a test or a scalar estimate with an interval (a bootstrap LRT, a
dispersion test, a heritability): a read-only mapping of named values, so ``res["p"]`` works.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

from .output import dumps_strict, json_safe

#: the interval columns of every table with intervals
INTERVAL_COLUMNS = ("lower", "upper")


class Result(ABC):
    """Base of every result object: ``summary()`` text, ``to_dict()`` strict JSON, ``print`` shows the summary.

    A subclass must write ``summary`` and ``_as_dict`` (abstract: a class without them cannot be made)."""

    @abstractmethod
    def summary(self) -> str:
        """The report as text.

        Returns
        -------
        str
            Several lines; printing it is the caller's choice.
        """

    @abstractmethod
    def _as_dict(self) -> dict:
        """The result's values (plain or numpy; ``to_dict`` makes them strict JSON)."""

    def to_dict(self) -> dict:
        """The result as strict JSON.

        Returns
        -------
        dict
            Only str, int, finite float, bool, None, lists and dicts (a non-finite number becomes None).
        """
        return json_safe(self._as_dict())

    def to_json(self, **kwargs) -> str:
        """``to_dict()`` as JSON text.

        Parameters
        ----------
        **kwargs
            Passed to ``json.dumps`` (``indent=...``).

        Returns
        -------
        str
            Strict JSON (no NaN or Infinity).
        """
        return dumps_strict(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        return self.summary()


class TestResult(Result, Mapping):
    """A test or an estimate with its interval, as named values (``res["p"]``, ``dict(res)``).

    Parameters
    ----------
    title : str
        What was computed (first line of the summary).
    values : dict
        The named numbers and labels, in the order the summary shows them.
    notes : list of str, optional
        Lines added under the values.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, title: str, values: dict, notes: list | None = None):
        self.title = title
        self._values = dict(values)
        self.notes = list(notes or [])

    def __getitem__(self, key):
        return self._values[key]

    def __getattr__(self, name):
        # res.p as well as res["p"]; only called when normal lookup fails
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def summary(self) -> str:
        """The values one per line under the title.

        Returns
        -------
        str
            The report text.
        """
        lines = [self.title]
        width = max((len(k) for k in self._values), default=0)
        for k, v in self._values.items():
            lines.append(f"  {k:<{width}}  {_fmt(v)}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def _as_dict(self) -> dict:
        return {"title": self.title, **self._values, "notes": self.notes}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in self._values.items())
        return f"<{self.title}: {inner}>"


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return str(v)
