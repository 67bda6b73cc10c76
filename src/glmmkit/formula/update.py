"""lme4's ``update`` of a formula: ``.`` stands for the old side, ``+`` adds terms, ``-`` removes them.

    update_formula("y ~ x + z + (1 | g)", "~ . - z")          ->  "y ~ x + (1 | g)"
    update_formula("y ~ x + (1 | g)", "log(y) ~ . + (0 + x | g)")  ->  "log(y) ~ x + (1 | g) + (0 + x | g)"

Terms are compared as written, spaces ignored.  A removed term the old formula does not have stays as a
removal (``- 1`` drops the intercept).
"""

from __future__ import annotations

import re

from ..errors import FormulaError
from .parse import _split_top


def _norm(term: str) -> str:
    return re.sub(r"\s+", "", term)


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with ``.`` replaced by the parts of ``old``.

    Parameters
    ----------
    old : str
        The fitted formula, e.g. ``"y ~ x + z + (1 | g)"``.
    new : str
        The change, e.g. ``"~ . - z"``, ``". ~ . + w"``, ``"log(y) ~ ."``.

    Returns
    -------
    str
        The new formula.
    """
    if not isinstance(new, str) or "~" not in new:
        raise FormulaError(f"an update formula has a '~', e.g. '~ . - x' or '. ~ . + (1 | g)'; got {new!r}")
    old_lhs, old_rhs = (part.strip() for part in old.split("~", 1))
    new_lhs, new_rhs = (part.strip() for part in new.split("~", 1))
    lhs = old_lhs if new_lhs in ("", ".") else re.sub(r"(?<![\w.])\.(?![\w.])", f"({old_lhs})", new_lhs)
    old_terms = [(s, t) for s, t in _split_top(old_rhs, "+-") if t]
    terms: list[tuple[str, str]] = []
    for sign, term in _split_top(new_rhs, "+-"):
        if not term:
            continue
        if term == ".":
            terms.extend(old_terms)
        elif sign == "-":
            kept = [(s, t) for s, t in terms if not (s == "+" and _norm(t) == _norm(term))]
            if len(kept) == len(terms):
                kept.append(("-", term))
            terms = kept
        elif all(_norm(t) != _norm(term) or s == "-" for s, t in terms):
            terms.append(("+", term))
    if not terms:
        return f"{lhs} ~ 1"
    text = " ".join(f"{s} {t}" for s, t in terms).strip()
    text = text[2:] if text.startswith("+ ") else "1 " + text if text.startswith("- ") else text
    return f"{lhs} ~ {text}"
