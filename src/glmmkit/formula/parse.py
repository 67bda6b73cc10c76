"""Split an lme4 formula into response, fixed part, random-effect bars and offsets.

    y ~ x + (1 | g) + (x || h) + (1 | a/b) + offset(log(n))

The fixed part is handed to formulaic unchanged; the bar terms are parsed here:
``(e | g)`` correlated, ``(e || g)`` uncorrelated, ``g = a/b`` expands to
``a`` and ``b:a`` (as lme4 names them), ``g = a:b`` is the interaction factor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bar:
    """One random-effects term ``(lhs | group)`` after nesting is expanded."""

    lhs: str
    group: str
    correlated: bool = True

    def __str__(self) -> str:
        return f"({self.lhs} {'|' if self.correlated else '||'} {self.group})"


@dataclass
class ParsedFormula:
    response: str
    fixed: str
    bars: list[Bar] = field(default_factory=list)
    offsets: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def fixed_formula(self) -> str:
        return self.fixed


def _split_top(expr: str, seps: str) -> list[tuple[str, str]]:
    """Split at top-level separators; returns (separator-before, piece) pairs."""
    out, depth, start, sign = [], 0, 0, "+"
    for i, ch in enumerate(expr):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in formula: {expr!r}")
        elif depth == 0 and ch in seps:
            out.append((sign, expr[start:i].strip()))
            sign, start = ch, i + 1
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in formula: {expr!r}")
    out.append((sign, expr[start:].strip()))
    return out


def _strip_parens(term: str) -> str | None:
    """The inside of ``( ... )`` if the whole term is one parenthesised group."""
    if not (term.startswith("(") and term.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(term):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(term) - 1:
            return None
    return term[1:-1].strip()


def expand_group(group: str) -> list[str]:
    """``a/b/c`` -> ``[a, b:a, c:b:a]`` (lme4's names); ``a:b`` and ``a`` stay as they are."""
    parts = [p.strip() for p in group.split("/")]
    if any(not p for p in parts):
        raise ValueError(f"empty grouping factor in {group!r}")
    return [":".join(reversed(parts[: i + 1])) for i in range(len(parts))]


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4-style formula string."""
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"a formula needs a response and '~', e.g. 'y ~ x + (1 | g)'; got {formula!r}")
    lhs, rhs = formula.split("~", 1)
    lhs, rhs = lhs.strip(), rhs.strip()
    if not lhs:
        raise ValueError(f"formula {formula!r} has no response on the left of '~'")
    bars: list[Bar] = []
    offsets: list[str] = []
    fixed: list[str] = []
    for sign, term in _split_top(rhs, "+-"):
        if not term:
            if sign == "-":
                raise ValueError(f"dangling '-' in formula {formula!r}")
            continue
        inner = _strip_parens(term)
        if inner is not None and any(s == "|" for s in _top_chars(inner)):
            if sign == "-":
                raise ValueError(f"cannot subtract a random-effects term: {term!r}")
            bars.extend(_parse_bar(inner, term))
            continue
        m = re.fullmatch(r"offset\((.*)\)", term, flags=re.S)
        if m:
            offsets.append(m.group(1).strip())
            continue
        fixed.append(("- " if sign == "-" else "+ ") + term)
    fixed_text = " ".join(fixed).strip()
    if fixed_text.startswith("+ "):
        fixed_text = fixed_text[2:]
    if not fixed_text:
        fixed_text = "1"
    elif fixed_text.startswith("- "):
        fixed_text = "1 " + fixed_text
    return ParsedFormula(response=lhs, fixed=fixed_text, bars=bars, offsets=offsets, text=formula)


def _top_chars(expr: str):
    depth = 0
    for ch in expr:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            yield ch


def _parse_bar(inner: str, term: str) -> list[Bar]:
    # find the top-level '|' or '||'
    depth = 0
    for i, ch in enumerate(inner):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            double = inner[i + 1 : i + 2] == "|"
            lhs = inner[:i].strip()
            group = inner[i + (2 if double else 1) :].strip()
            break
    else:  # pragma: no cover - guarded by caller
        raise ValueError(f"no '|' in random-effects term {term!r}")
    if not lhs:
        raise ValueError(f"random-effects term {term!r} has nothing left of '|' (use 1 for an intercept)")
    if not group or "|" in group:
        raise ValueError(f"random-effects term {term!r} needs one grouping factor right of '|'")
    return [Bar(lhs=lhs, group=g, correlated=not double) for g in expand_group(group)]

