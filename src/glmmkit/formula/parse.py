"""Split an lme4 formula into response, fixed part, random-effect bars and offsets.

    y ~ x + (1 | g) + (x || h) + (1 | a/b) + offset(log(n))

The fixed part is handed to formulaic unchanged; the bar terms are parsed here:
``(e | g)`` correlated, ``(e || g)`` uncorrelated, ``g = a/b`` expands to
``a`` and ``b:a`` (as lme4 names them), ``g = a:b`` is the interaction factor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ..errors import FormulaError


@dataclass(frozen=True)
class Bar:
    """One random-effects term ``(lhs | group)`` after nesting is expanded."""

    lhs: str
    group: str
    correlated: bool = True
    structure: str | None = None  # glmmTMB's covariance structure (cs, ar1, toep, ou, exp, gau, mat, rr)
    rank: int | None = None  # rr()'s d

    def __str__(self) -> str:
        if self.structure:
            extra = f", d = {self.rank}" if self.structure == "rr" else ""
            return f"{self.structure}({self.lhs} | {self.group}{extra})"
        return f"({self.lhs} {'|' if self.correlated else '||'} {self.group})"


@dataclass
class ParsedFormula:
    response: str
    fixed: str
    bars: list[Bar] = field(default_factory=list)
    offsets: list[str] = field(default_factory=list)
    text: str = ""


def _split_top(expr: str, seps: str) -> list[tuple[str, str]]:
    """Split at top-level separators; returns (separator-before, piece) pairs."""
    out, depth, start, sign = [], 0, 0, "+"
    for i, ch in enumerate(expr):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced parentheses in formula: {expr!r}")
        elif depth == 0 and ch in seps:
            out.append((sign, expr[start:i].strip()))
            sign, start = ch, i + 1
    if depth != 0:
        raise FormulaError(f"unbalanced parentheses in formula: {expr!r}")
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
    """Expand a nested grouping factor into lme4's terms.

    ``a/b/c`` -> ``[a, b:a, c:b:a]``; ``a:b`` and ``a`` stay as they are.

    Parameters
    ----------
    group : str
        The grouping expression.

    Returns
    -------
    list of str
        The grouping factors.
    """
    parts = [p.strip() for p in group.split("/")]
    if any(not p for p in parts):
        raise FormulaError(f"empty grouping factor in {group!r}")
    return [":".join(reversed(parts[: i + 1])) for i in range(len(parts))]


# Formulas are evaluated by formulaic as Python expressions of columns, so anything that could reach
# beyond the data (dunder names, statements, lambdas) is refused before that.
_FORBIDDEN = re.compile(r"__|\blambda\b|\bimport\b|\bexec\b|\beval\b|\bopen\b|\bgetattr\b|\bglobals\b|"
                        r"\blocals\b|\bcompile\b|;|:=|\\")
MAX_FORMULA_CHARS = 10_000


def check_formula_text(formula, what: str = "formula") -> str:
    """Refuse what is not a formula: a non-string, an over-long string, code or unbalanced brackets.

    Parameters
    ----------
    formula : object
        What the user passed.
    what : str
        The argument's name, for messages.

    Returns
    -------
    str
        The formula, unchanged.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"{what} must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}")
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(f"{what} has {len(formula)} characters; at most {MAX_FORMULA_CHARS} are accepted")
    outside = re.sub(r"`[^`]*`", "", formula)  # backticked names may hold any character
    if outside.count("`"):
        raise FormulaError(f"unmatched backtick in {what} {formula!r}")
    bad = _FORBIDDEN.search(outside)
    if bad:
        raise FormulaError(f"{what} {formula!r} contains {bad.group(0)!r}: a formula holds column names, numbers, "
                           "operators (+ - * / : ^ | ~) and calls such as log(x), not code")
    if "\x00" in formula:
        raise FormulaError(f"{what} contains a NUL character")
    _split_top(outside, "")  # balanced brackets
    return formula


#: glmmTMB's covariance-structure names; us() and diag() are lme4's (x | g) and (x || g), homdiag and homcs
#: (glmmTMB 1.1.10 and later) are refused by name
COVARIANCE_STRUCTURES = ("us", "diag", "cs", "ar1", "ou", "toep", "exp", "gau", "mat", "rr", "homdiag", "homcs")
AVAILABLE_STRUCTURES = ("us", "diag", "cs", "ar1", "ou", "toep", "exp", "gau", "mat", "rr")


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4-style formula string.

    Parameters
    ----------
    formula : str
        e.g. ``"y ~ x + (1 | g) + offset(log(n))"``.

    Returns
    -------
    ParsedFormula
        Response, fixed part, random-effects bars and offsets.
    """
    check_formula_text(formula)
    if "~" not in formula:
        raise FormulaError(f"a formula needs a response and '~', e.g. 'y ~ x + (1 | g)'; got {formula!r}")
    lhs, rhs = formula.split("~", 1)
    lhs, rhs = lhs.strip(), rhs.strip()
    if not lhs:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    bars: list[Bar] = []
    offsets: list[str] = []
    fixed: list[str] = []
    for sign, term in _split_top(rhs, "+-"):
        if not term:
            if sign == "-":
                raise FormulaError(f"dangling '-' in formula {formula!r}")
            continue
        m = re.fullmatch(r"(\w+)\((.*)\)", term, flags=re.S)
        if m and m.group(1) in COVARIANCE_STRUCTURES and any(s == "|" for s in _top_chars(m.group(2))):
            # glmmTMB's covariance-structure syntax: us(x | g) is lme4's (x | g), diag(x | g) its (x || g)
            if sign == "-":
                raise FormulaError(f"cannot subtract a random-effects term: {term!r}")
            kind = m.group(1)
            if kind not in AVAILABLE_STRUCTURES:
                raise FormulaError(f"the covariance structure {kind}() in {term!r} is not available; available: "
                                   + ", ".join(f"{k}()" for k in AVAILABLE_STRUCTURES))
            inner, rank = _structure_options(kind, m.group(2), term)
            if kind in ("us", "diag"):
                bars.extend(Bar(b.lhs, b.group, correlated=(kind == "us")) for b in _parse_bar(inner, term))
            else:
                bars.extend(Bar(b.lhs, b.group, True, kind, rank) for b in _parse_bar(inner, term))
            continue
        inner = _strip_parens(term)
        if inner is not None and any(s == "|" for s in _top_chars(inner)):
            if sign == "-":
                raise FormulaError(f"cannot subtract a random-effects term: {term!r}")
            bars.extend(_parse_bar(inner, term))
            continue
        m = re.fullmatch(r"offset\((.*)\)", term, flags=re.S)
        if m:
            offsets.append(m.group(1).strip())
            continue
        if "|" in re.sub(r"`[^`]*`", "", term):
            raise FormulaError(f"'|' in the fixed part of {formula!r} (term {term!r}): a random-effects term "
                               "stands alone in parentheses, joined by +, e.g. y ~ x + (1 | g)")
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
        raise FormulaError(f"no '|' in random-effects term {term!r}")
    if not lhs:
        raise FormulaError(f"random-effects term {term!r} has nothing left of '|' (use 1 for an intercept)")
    if not group or "|" in group:
        raise FormulaError(f"random-effects term {term!r} needs one grouping factor right of '|'")
    return [Bar(lhs=lhs, group=g, correlated=not double) for g in expand_group(group)]



def _structure_options(kind: str, inner: str, term: str) -> tuple[str, int | None]:
    """Split ``x | g, d = 2`` into the bar and rr()'s rank (glmmTMB's default d = 2); other structures take
    no options."""
    pieces = [p for _, p in _split_top(inner, ",")]
    bar, opts = pieces[0], pieces[1:]
    if kind != "rr":
        if opts:
            raise FormulaError(f"{kind}() takes no options, got {', '.join(opts)!r} in {term!r}")
        return bar, None
    if len(opts) > 1:
        raise FormulaError(f"rr() takes one option, d (the rank), got {', '.join(opts)!r} in {term!r}")
    if not opts:
        return bar, 2
    m = re.fullmatch(r"(?:d\s*=\s*)?(\d+)", opts[0].strip())
    if not m or int(m.group(1)) < 1:
        raise FormulaError(f"rr()'s rank must be written d = <positive integer>, got {opts[0]!r} in {term!r}")
    return bar, int(m.group(1))
