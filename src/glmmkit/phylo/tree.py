"""Phylogenetic trees as arrays, read from Newick with the ``newick`` library.

A ``Tree`` holds its nodes in pre-order (parents before children): ``parent`` (-1 at the root),
``length`` (branch length to the parent), ``depth`` (root-to-node distance) and, for every node, the
range ``[tip_lo, tip_hi)`` of its descendant tips in tip order (contiguous in a pre-order walk).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Tree:
    parent: np.ndarray  # (m,) index of each node's parent, -1 for the root
    length: np.ndarray  # (m,) branch lengths
    names: list  # (m,) node names (None for unnamed internal nodes)
    is_tip: np.ndarray  # (m,) bool
    depth: np.ndarray  # (m,) root-to-node path length
    tip_lo: np.ndarray  # (m,) first tip (in tip order) below the node
    tip_hi: np.ndarray  # (m,) one past the last tip below the node

    @property
    def n_tips(self) -> int:
        return int(self.is_tip.sum())

    @property
    def tip_labels(self) -> list[str]:
        return [self.names[i] for i in np.flatnonzero(self.is_tip)]

    def is_ultrametric(self, rtol: float = 1e-4) -> bool:
        d = self.depth[self.is_tip]
        return bool(np.ptp(d) <= rtol * max(np.max(d), 1e-300))


def read_tree(source: str | Path) -> Tree:
    """Read a rooted tree with branch lengths from a Newick file or string."""
    try:
        import newick
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading trees needs the newick library: pip install glmmkit[phylo]") from None
    text = str(source)
    if not text.lstrip().startswith("(") and Path(text).exists():
        text = Path(text).read_text()
    text = text.strip()
    if not text.startswith("("):
        raise ValueError("not a Newick tree (it should start with '(' ) nor a readable file")
    try:
        trees = newick.loads(text)
    except Exception as err:  # the parser's own errors
        raise ValueError(f"cannot parse the Newick tree: {err}") from None
    if len(trees) != 1:
        raise ValueError(f"expected one tree, found {len(trees)}")
    root = trees[0]
    nodes = list(root.walk())  # pre-order
    index = {id(n): i for i, n in enumerate(nodes)}
    m = len(nodes)
    parent = np.full(m, -1)
    length = np.zeros(m)
    names = []
    is_tip = np.zeros(m, dtype=bool)
    missing = 0
    for i, n in enumerate(nodes):
        names.append(n.name)
        is_tip[i] = not n.descendants
        for c in n.descendants:
            parent[index[id(c)]] = i
        if i > 0:
            if getattr(n, "_length", None) in (None, ""):
                missing += 1
            length[i] = float(n.length or 0.0)
    if missing:
        raise ValueError(f"the tree has no branch length on {missing} of {m - 1} branches; "
                         "a phylogenetic covariance needs branch lengths")
    if np.any(length < 0):
        raise ValueError(f"the tree has {int(np.sum(length < 0))} negative branch lengths")
    tips = [names[i] for i in np.flatnonzero(is_tip)]
    if any(t in (None, "") for t in tips):
        raise ValueError("every tip of the tree needs a label")
    seen, dup = set(), None
    for t in tips:
        if t in seen:
            dup = t
            break
        seen.add(t)
    if dup is not None:
        raise ValueError(f"the tip label {dup!r} occurs more than once in the tree")
    depth = np.zeros(m)
    for i in range(1, m):  # pre-order: the parent's depth is known
        depth[i] = depth[parent[i]] + length[i]
    # descendant tip ranges: tips are numbered in pre-order, so each subtree's tips are contiguous
    tip_rank = np.cumsum(is_tip) - 1
    lo = np.where(is_tip, tip_rank, np.iinfo(np.int64).max)
    hi = np.where(is_tip, tip_rank + 1, -1)
    for i in range(m - 1, 0, -1):  # post-order accumulation towards the root
        p = parent[i]
        lo[p] = min(lo[p], lo[i])
        hi[p] = max(hi[p], hi[i])
    return Tree(parent, length, names, is_tip, depth, lo, hi)


def vcv(tree: Tree, corr: bool = False):
    """Brownian-motion covariance of the tips (ape's ``vcv``): C[i, j] = depth of the MRCA of i and j.

    ``corr=True`` divides by the square roots of the diagonal, as ``vcv(tree, corr = TRUE)``; on a tree
    that is not ultrametric that changes the model (tips get equal variance although their root-to-tip
    distances differ), which is said in a warning.
    Returns a labelled DataFrame (rows and columns in the tree's tip order).
    """
    import pandas as pd

    n = tree.n_tips
    if n > 40_000:
        raise ValueError(f"a dense {n} x {n} covariance needs {8 * n * n / 1e9:.0f} GB")
    C = np.zeros((n, n))
    kids: dict[int, list[int]] = {}
    for i in range(1, len(tree.parent)):
        kids.setdefault(int(tree.parent[i]), []).append(i)
    # each internal node sets the block between every pair of its children's tip ranges
    for v, ch in kids.items():
        dv = tree.depth[v]
        for a in range(len(ch)):
            la, ha = tree.tip_lo[ch[a]], tree.tip_hi[ch[a]]
            for b in range(a + 1, len(ch)):
                lb, hb = tree.tip_lo[ch[b]], tree.tip_hi[ch[b]]
                C[la:ha, lb:hb] = dv
                C[lb:hb, la:ha] = dv
    d = tree.depth[tree.is_tip]
    C[np.arange(n), np.arange(n)] = d
    if corr:
        if not tree.is_ultrametric():
            warnings.warn(f"the tree is not ultrametric (root-to-tip distances {d.min():.4g} to {d.max():.4g}); "
                          "corr=True standardises every tip's variance to 1 as ape's vcv(corr = TRUE) does",
                          stacklevel=2)
        s = np.sqrt(d)
        C = C / np.outer(s, s)
    labels = tree.tip_labels
    return pd.DataFrame(C, index=labels, columns=labels)


def pagel_lambda(C, lam: float):
    """Pagel's lambda: off-diagonal covariances multiplied by lam (0 = no signal, 1 = Brownian motion)."""
    import pandas as pd

    if not 0 <= lam <= 1:
        raise ValueError(f"Pagel's lambda must be in [0, 1], got {lam}")
    M = np.array(C, dtype=float)
    out = lam * M
    out[np.diag_indices_from(out)] = np.diag(M)
    return pd.DataFrame(out, index=C.index, columns=C.columns) if isinstance(C, pd.DataFrame) else out


def relmat_for(tree_or_matrix, levels, group: str = "species", corr: bool = True):
    """The covariance for a grouping factor's levels, checking names in both directions."""
    import pandas as pd

    K = vcv(tree_or_matrix, corr=corr) if isinstance(tree_or_matrix, Tree) else tree_or_matrix
    names = {str(x) for x in K.index}
    lv = {str(x) for x in pd.unique(pd.Series(levels).astype(str))}
    missing = sorted(lv - names)
    if missing:
        raise ValueError(f"levels of {group!r} missing from the tree: {missing[:10]}"
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    extra = sorted(names - lv)
    if extra:
        warnings.warn(f"{len(extra)} tips of the tree have no data (e.g. {extra[:3]}); they are marginalised "
                      "out (the covariance of the observed tips is used)", stacklevel=2)
    return K
