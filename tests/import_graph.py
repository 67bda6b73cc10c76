"""The import graph of src/glmmkit, module by module (imports at any depth, lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "glmmkit"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in SRC.rglob("*.py")}
    out: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        is_pkg = p.name == "__init__.py"
        base = m.split(".") if is_pkg else m.split(".")[:-1]
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    pkg = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    root = ".".join(pkg + ([node.module] if node.module else []))
                else:
                    root = node.module or ""
                targets.append(root)
                targets += [f"{root}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            for t in targets:
                if t in mods and t != m:
                    out[m].add(t)
    return out


def cycles(g: dict[str, set[str]], skip_packages: bool = True) -> list[list[str]]:
    """Strongly connected components with more than one module (package __init__ re-exports left out)."""
    pk = {m for m in g if (SRC.parent / m.replace(".", "/") / "__init__.py").exists()}
    nodes = [m for m in g if not (skip_packages and m in pk)]
    edges = {m: {t for t in g[m] if t in nodes} for m in nodes}
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in nodes:
        if v not in index:
            strong(v)
    return comps


if __name__ == "__main__":
    for c in cycles(graph()):
        print(c)
