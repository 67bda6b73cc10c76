"""Tree-structured linear algebra for Brownian motion on a tree, with internal nodes included.

With a value a_v at every node (the root fixed at 0, its value absorbed by the intercept) and
a_v | a_parent ~ N(a_parent, l_v / tau), the prior precision is tau Q with

    a'Qa = sum over non-root v of (a_v - a_parent(v))^2 / l_v,    log det Q = -sum log l_v,

which is tree-structured (nonzeros on the diagonal and between a node and its parent). So is
P = diag(W at the tips) + tau Q, the Laplace system of a GLMM whose random effect lives on the tips:
eliminating nodes leaves-first gives P = L D L' with no fill-in,

    d_v = P_vv - sum over children c of P_vc^2 / d_c,     L_{parent(c), c} = P_{parent(c), c} / d_c,

solves are one sweep up the tree and one down, and the diagonal of P^{-1} follows from one more sweep
down (Sigma_vv = 1/d_v + L_pv^2 Sigma_pp). Every sweep is vectorised level by level (nodes of equal
height up, of equal depth down), so one factorisation costs O(number of nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tree import Tree
from ..errors import InputError


class TreeAlgebra:
    """The levels of a tree and its precision Q, analysed once."""

    def __init__(self, tree: Tree):
        m = len(tree.parent)
        self.m = m
        self.parent = tree.parent.copy()
        self.length = tree.length.copy()
        if np.any(self.length[1:] <= 0):
            raise InputError("the sparse tree path needs positive branch lengths (collapse zero-length branches)")
        self.inv_len = np.zeros(m)
        self.inv_len[1:] = 1.0 / self.length[1:]
        # Q's diagonal: 1/l_v + sum over children 1/l_c (the root row is not part of the system)
        self.q_diag = self.inv_len.copy()
        np.add.at(self.q_diag, self.parent[1:], self.inv_len[1:])
        self.logdet_q = -float(np.sum(np.log(self.length[1:])))
        # heights (edges to the deepest tip below), for the upward sweeps
        height = np.zeros(m, dtype=np.int64)
        for v in range(m - 1, 0, -1):  # pre-order reversed: children before parents
            p = self.parent[v]
            height[p] = max(height[p], height[v] + 1)
        edge_depth = np.zeros(m, dtype=np.int64)
        for v in range(1, m):
            edge_depth[v] = edge_depth[self.parent[v]] + 1
        nonroot = np.arange(1, m)
        self.up_levels = [nonroot[height[1:] == h] for h in range(int(height[1:].max()) + 1)]
        self.down_levels = [nonroot[edge_depth[1:] == k] for k in range(1, int(edge_depth.max()) + 1)]
        self.tip_nodes = np.flatnonzero(tree.is_tip)

    def quad(self, a: np.ndarray) -> float:
        """a'Qa with a[0] = 0 at the root."""
        diff = a[1:] - a[self.parent[1:]]
        return float(diff @ (diff * self.inv_len[1:]))

    def factor(self, w_node: np.ndarray, tau: float) -> "TreeFactor":
        """LDL' of P = diag(w_node) + tau Q over the non-root nodes."""
        pdiag = w_node + tau * self.q_diag
        poff = -tau * self.inv_len  # P_{parent(v), v}
        d = np.zeros(self.m)
        acc = np.zeros(self.m)
        for idx in self.up_levels:
            d[idx] = pdiag[idx] - acc[idx]
            np.add.at(acc, self.parent[idx], poff[idx] ** 2 / d[idx])
        if np.any(d[1:] <= 0):
            raise np.linalg.LinAlgError("tree system not positive definite")
        lpv = np.zeros(self.m)
        lpv[1:] = poff[1:] / d[1:]
        return TreeFactor(self, d, lpv)


@dataclass
class TreeFactor:
    alg: TreeAlgebra
    d: np.ndarray  # (m,) pivots (d[0] unused)
    lpv: np.ndarray  # (m,) L_{parent(v), v}

    def logdet(self) -> float:
        return float(np.sum(np.log(self.d[1:])))

    def solve(self, r: np.ndarray) -> np.ndarray:
        """x with P x = r (r, x over all nodes; the root entry is ignored and returned as 0)."""
        alg = self.alg
        z = np.zeros(alg.m)
        acc = np.zeros(alg.m)
        for idx in alg.up_levels:
            z[idx] = r[idx] - acc[idx]
            np.add.at(acc, alg.parent[idx], self.lpv[idx] * z[idx])
        y = np.zeros(alg.m)
        y[1:] = z[1:] / self.d[1:]
        x = np.zeros(alg.m)
        for idx in alg.down_levels:
            x[idx] = y[idx] - self.lpv[idx] * x[alg.parent[idx]]
        return x

    def inverse_diagonal(self) -> np.ndarray:
        """diag(P^{-1}) (0 at the root)."""
        alg = self.alg
        s = np.zeros(alg.m)
        for idx in alg.down_levels:
            s[idx] = 1.0 / self.d[idx] + self.lpv[idx] ** 2 * s[alg.parent[idx]]
        return s
