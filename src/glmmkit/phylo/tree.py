"""Phylogenetic trees as arrays, read from Newick text by an iterative parser of our own.

A ``Tree`` holds its nodes in pre-order (parents before children): ``parent`` (-1 at the root),
``length`` (branch length to the parent), ``depth`` (root-to-node distance) and, for every node, the
range ``[tip_lo, tip_hi)`` of its descendant tips in tip order (contiguous in a pre-order walk).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ..errors import FileFormatError, InputError
from ..warnings import DroppedRowsWarning, ModelChangeWarning


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
        """The number of tips."""
        return int(self.is_tip.sum())

    @property
    def tip_labels(self) -> list[str]:
        """The tips' names in tip order."""
        return [self.names[i] for i in np.flatnonzero(self.is_tip)]

    def is_ultrametric(self, rtol: float = 1e-4) -> bool:
        """Whether every root-to-tip distance is the same.

        Parameters
        ----------
        rtol : float
            Relative tolerance.

        Returns
        -------
        bool
            True for an ultrametric tree.
        """
        d = self.depth[self.is_tip]
        return bool(np.ptp(d) <= rtol * max(np.max(d), 1e-300))


def as_tree(tree) -> Tree:
    """A ``Tree``, or a Newick string or file read into one.

    Parameters
    ----------
    tree : Tree, str or path-like
        A tree from ``read_tree``, a Newick string, or the path of a Newick file.

    Returns
    -------
    Tree
        The tree.
    """
    if isinstance(tree, Tree):
        return tree
    if isinstance(tree, (str, Path)):
        return read_tree(tree)
    raise TypeError(f"a tree must be a glmmkit Tree (gk.phylo.read_tree), a Newick string or a file path; "
                    f"got {type(tree).__name__}")


def read_tree(source: str | Path) -> Tree:
    """Read a rooted tree with branch lengths from a Newick file or string.

    The parser is iterative (no recursion), so ladder-shaped trees of any depth are read.

    Parameters
    ----------
    source : str or path-like
        Newick text (``"((a:1,b:1):1,c:2);"``) or the path of a file holding it.

    Returns
    -------
    Tree
        Nodes in pre-order with parents, branch lengths, names and descendant-tip ranges.
    """
    if not isinstance(source, (str, Path)):
        raise TypeError(f"read_tree takes Newick text or a file path, got {type(source).__name__}")
    text = str(source)
    if not text.lstrip().startswith("("):
        if len(text) < 4096 and "\n" not in text and _is_file(text):
            try:
                text = Path(text).read_text()
            except (OSError, UnicodeDecodeError) as err:
                raise FileFormatError(f"cannot read the tree file {source}: {err}") from None
    text = text.strip()
    if not text.startswith("("):
        raise InputError("not a Newick tree (it should start with '(' ) nor a readable file")
    parent, names, raw_length = _parse_newick(text)
    m = len(parent)
    has_child = np.zeros(m, dtype=bool)
    has_child[parent[parent >= 0]] = True
    is_tip = ~has_child
    missing = sum(1 for i in range(1, m) if raw_length[i] is None)
    length = np.array([0.0 if v is None else v for v in raw_length], dtype=float)
    if missing:
        raise InputError(f"the tree has no branch length on {missing} of {m - 1} branches; "
                         "a phylogenetic covariance needs branch lengths")
    if np.any(length < 0):
        raise InputError(f"the tree has {int(np.sum(length < 0))} negative branch lengths")
    tips = [names[i] for i in np.flatnonzero(is_tip)]
    if any(t in (None, "") for t in tips):
        raise InputError("every tip of the tree needs a label")
    seen, dup = set(), None
    for t in tips:
        if t in seen:
            dup = t
            break
        seen.add(t)
    if dup is not None:
        raise InputError(f"the tip label {dup!r} occurs more than once in the tree")
    if not np.all(np.isfinite(length)):
        raise InputError("the tree has a branch length that is not a finite number")
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


# one Newick token: space, [comment], 'quoted label', :length, punctuation, or an unquoted label
_TOKEN = re.compile(r"\s+|\[[^\]]*\]|'(?:[^']|'')*'|:[^,();\[\s]*|[(),;]|[^,();:\[\s']+|.", re.S)


def _is_file(text: str) -> bool:
    """Whether ``text`` names an existing file (a name too long or otherwise invalid is not one)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _parse_newick(text: str) -> tuple[np.ndarray, list, list]:
    """(parent, names, lengths) of the nodes of one Newick tree, in pre-order, by a loop over tokens
    (no recursion: a ladder tree of any depth is read).

    Nodes are made in the order their text begins, which is pre-order: '(' opens the current node's
    first child, ',' a sibling, ')' returns to the parent, whose label and ':length' may follow.
    Quoted labels ('it''s') and [comments] are understood.
    """
    parent, names, lengths = [-1], [None], [None]
    stack: list[int] = []
    cur = 0
    done = False
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        c = tok[0]
        if done:
            if not (tok.isspace() or c == "["):
                raise InputError("expected one tree; found text after the first ';' (several trees?)")
            continue
        if tok.isspace() or (c == "[" and tok.endswith("]")):
            continue
        if c == "(":
            stack.append(cur)
            parent.append(cur), names.append(None), lengths.append(None)
            cur = len(parent) - 1
        elif c == ",":
            if not stack:
                raise InputError(f"Newick: ',' outside parentheses at character {m.start()}")
            parent.append(stack[-1]), names.append(None), lengths.append(None)
            cur = len(parent) - 1
        elif c == ")":
            if not stack:
                raise InputError(f"Newick: unbalanced ')' at character {m.start()}")
            cur = stack.pop()
        elif c == ":":
            try:
                lengths[cur] = float(tok[1:])
            except ValueError:
                raise InputError(f"Newick: branch length {tok[1:]!r} at character {m.start()} is not a number") from None
        elif c == ";":
            done = True
        elif c == "'" and len(tok) > 1 and tok.endswith("'"):
            names[cur] = tok[1:-1].replace("''", "'")
        elif c in "'[":
            raise InputError(f"Newick: a {'quoted label' if c == chr(39) else 'comment'} opened at character "
                             f"{m.start()} is never closed")
        else:
            names[cur] = tok
    if stack:
        raise InputError(f"Newick: {len(stack)} '(' never closed")
    return np.asarray(parent, dtype=np.int64), names, lengths


def vcv(tree: Tree, corr: bool = False):
    """Brownian-motion covariance of the tips (ape's ``vcv``): C[i, j] = depth of the MRCA of i and j.

    ``corr=True`` divides by the square roots of the diagonal, as ``vcv(tree, corr = TRUE)``; on a tree that
    is not ultrametric that changes the model (tips get equal variance although their root-to-tip distances
    differ), which is said in a warning.

    Parameters
    ----------
    tree : Tree, str or path
        The tree, Newick text or a Newick file.
    corr : bool
        The correlation matrix instead of the covariance.

    Returns
    -------
    pandas.DataFrame
        Labelled rows and columns in the tree's tip order.
    """
    import pandas as pd

    tree = as_tree(tree)
    n = tree.n_tips
    if n > 40_000:
        raise InputError(f"a dense {n} x {n} covariance needs {8 * n * n / 1e9:.0f} GB")
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
                          ModelChangeWarning, stacklevel=2)
        s = np.sqrt(d)
        C = C / np.outer(s, s)
    labels = tree.tip_labels
    return pd.DataFrame(C, index=labels, columns=labels)


def pagel_lambda(C, lam: float):
    """Pagel's lambda: off-diagonal covariances multiplied by lam (0 = no signal, 1 = Brownian motion).

    Parameters
    ----------
    C : pandas.DataFrame or numpy.ndarray
        A covariance of the tips.
    lam : float
        In [0, 1].

    Returns
    -------
    pandas.DataFrame or numpy.ndarray
        The transformed covariance (labels kept).
    """
    import pandas as pd

    if not 0 <= lam <= 1:
        raise InputError(f"Pagel's lambda must be in [0, 1], got {lam}")
    M = np.array(C, dtype=float)
    out = lam * M
    out[np.diag_indices_from(out)] = np.diag(M)
    return pd.DataFrame(out, index=C.index, columns=C.columns) if isinstance(C, pd.DataFrame) else out


def relmat_for(tree_or_matrix, levels, group: str = "species", corr: bool = True):
    """The covariance for a grouping factor's levels, checking names in both directions.

    Parameters
    ----------
    tree_or_matrix : Tree, str, path or pandas.DataFrame
        A tree (or Newick) or a labelled covariance.
    levels : array-like
        The grouping factor's values.
    group : str
        Its name, for messages.
    corr : bool
        For a tree: the correlation matrix.

    Returns
    -------
    pandas.DataFrame
        The labelled matrix (a level missing from it is an InputError; tips without data are counted in a
        warning).
    """
    import pandas as pd

    if isinstance(tree_or_matrix, (Tree, str, Path)):
        K = vcv(as_tree(tree_or_matrix), corr=corr)
    elif isinstance(tree_or_matrix, pd.DataFrame):
        K = tree_or_matrix
    else:
        raise TypeError("relmat_for takes a Tree, Newick text or file, or a labelled DataFrame; "
                        f"got {type(tree_or_matrix).__name__}")
    names = {str(x) for x in K.index}
    lv = {str(x) for x in pd.unique(pd.Series(levels).astype(str))}
    missing = sorted(lv - names)
    if missing:
        raise InputError(f"levels of {group!r} missing from the tree: {missing[:10]}"
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    extra = sorted(names - lv)
    if extra:
        warnings.warn(f"{len(extra)} tips of the tree have no data (e.g. {extra[:3]}); they are marginalised "
                      "out (the covariance of the observed tips is used)", DroppedRowsWarning, stacklevel=2)
    return K
