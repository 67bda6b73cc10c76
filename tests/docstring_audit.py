"""Audit of the public API's docstrings (numpydoc: Parameters where there are arguments, Returns where
something is returned).  Used by tests/test_docstrings.py; run directly for the list.

Public: every function, class and method of ``glmmkit`` whose name does not start with ``_``, defined in
the package.  A method that overrides a documented one inherits its docstring (``inspect.getdoc``), as
the rendered documentation does.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import glmmkit


def _returns_value(fn) -> bool:
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        return False
    src = "\n".join(line[len(src) - len(src.lstrip()):] if line.strip() else line for line in src.splitlines())
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return False
    node = tree.body[0]
    for n in ast.walk(node):
        if isinstance(n, ast.Return) and n.value is not None:
            # a nested function's return is not this function's
            return True
    return False


def _args(fn) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters if p not in ("self", "cls")]


def problems_of(obj, name: str, is_property: bool = False) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return [f"{name}: no docstring"]
    if is_property or inspect.isclass(obj):
        return []
    out = []
    if _args(obj) and "Parameters" not in doc:
        out.append(f"{name}: no Parameters section")
    if _returns_value(obj) and "Returns" not in doc and "Yields" not in doc:
        out.append(f"{name}: no Returns section")
    return out


def public_objects():
    seen = set()
    for info in pkgutil.walk_packages(glmmkit.__path__, "glmmkit."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]) or info.name.endswith(".demo"):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                key = f"{mod.__name__}.{name}"
                if key in seen:
                    continue
                seen.add(key)
                yield key, obj, False
                if inspect.isclass(obj):
                    for mname, m in vars(obj).items():
                        if mname.startswith("_"):
                            continue
                        if isinstance(m, property):
                            yield f"{key}.{mname}", getattr(obj, mname), True
                        elif inspect.isfunction(m) or isinstance(m, (staticmethod, classmethod)):
                            yield f"{key}.{mname}", getattr(obj, mname), False


def _documented_in_a_base(owner, mname: str) -> bool:
    """An override whose base class documents the contract (Parameters, Returns) in full."""
    for base in owner.__mro__[1:]:
        m = vars(base).get(mname)
        if m is not None and not problems_of(getattr(base, mname), mname):
            return True
    return False


def audit() -> tuple[int, list[str]]:
    n, out = 0, []
    for key, obj, is_prop in public_objects():
        n += 1
        probs = problems_of(obj, key, is_prop)
        if probs and not is_prop and inspect.isfunction(obj) and "." in obj.__qualname__:
            owner_name, mname = obj.__qualname__.rsplit(".", 1)
            owner = getattr(importlib.import_module(obj.__module__), owner_name.split(".")[0], None)
            if inspect.isclass(owner) and (inspect.getdoc(obj) or "").strip() and _documented_in_a_base(owner, mname):
                probs = []
        out += probs
    return n, out


if __name__ == "__main__":
    n, probs = audit()
    print(f"{n} public objects, {len(probs)} problems")
    for p in probs:
        print(p)
