"""A block of genes in the shape the fast path works on: the nonzero counts as flat arrays.

The nonzeros are sorted by ``pair = gene * S + subject``, so every per-(gene, subject) sum is one
``np.add.reduceat`` over contiguous runs (several times faster than a weighted bincount); zero counts
never appear (their contribution comes from the subject's softplus sums, see softplus.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln


@dataclass
class GeneBlock:
    y: np.ndarray          # nonzero counts (float)
    o: np.ndarray          # log library size of each nonzero's cell
    gene: np.ndarray       # local gene index of each nonzero
    pair: np.ndarray       # gene * S + subject
    n_genes: int
    n_subjects: int
    Y: np.ndarray          # (G, S) summed counts
    YO: np.ndarray         # (G, S) summed y * o
    dist_gene: np.ndarray  # distinct (gene, count) pairs, with their multiplicity
    dist_y: np.ndarray
    dist_n: np.ndarray
    lgamma_y1: np.ndarray  # (G,) sum of log(y!)
    starts: np.ndarray     # first nonzero of each non-empty pair
    pairs: np.ndarray      # the non-empty pairs

    @classmethod
    def from_csc(cls, counts: sp.csc_matrix, offset: np.ndarray, subject: np.ndarray, n_subjects: int) -> "GeneBlock":
        """``counts`` cells x genes (CSC, only this block's genes); ``offset``/``subject`` per cell.

        Parameters
        ----------
        counts : scipy.sparse.csc_matrix
            Cells x genes of this block.
        offset : numpy.ndarray
            (cells,) log library sizes.
        subject : numpy.ndarray
            (cells,) subject codes.
        n_subjects : int
            S.

        Returns
        -------
        GeneBlock
            The block's nonzeros sorted by (gene, subject), with its per-pair and per-gene sums.
        """
        G = counts.shape[1]
        y = counts.data.astype(float)
        cell = counts.indices
        gene = np.repeat(np.arange(G), np.diff(counts.indptr))
        return cls._build(y, offset[cell], gene, subject[cell], G, n_subjects)

    @classmethod
    def _build(cls, y, o, gene, subj, G, S) -> "GeneBlock":
        keep = y > 0
        if not keep.all():
            y, o, gene, subj = y[keep], o[keep], gene[keep], subj[keep]
        pair = gene * S + subj
        if len(pair) > 1 and np.any(pair[1:] < pair[:-1]):
            order = np.argsort(pair, kind="stable")
            y, o, gene, pair = y[order], o[order], gene[order], pair[order]
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, dtype=np.int64)
        Y = np.bincount(pair, weights=y, minlength=G * S).reshape(G, S)
        YO = np.bincount(pair, weights=y * o, minlength=G * S).reshape(G, S)
        ymax = int(y.max()) + 1 if len(y) else 1
        key, cnt = np.unique(gene.astype(np.int64) * ymax + y.astype(np.int64), return_counts=True)
        dist_gene, dist_y = key // ymax, (key % ymax).astype(float)
        lg = np.bincount(dist_gene, weights=cnt * gammaln(dist_y + 1), minlength=G)
        return cls(y, o, gene, pair, G, S, Y, YO, dist_gene, dist_y, cnt.astype(float), lg, starts, pair[starts])

    def subset(self, genes: np.ndarray) -> "GeneBlock":
        """The block restricted to ``genes`` (local indices, sorted), renumbered 0..len(genes)-1.

        Parameters
        ----------
        genes : numpy.ndarray
            Local gene indices, sorted.

        Returns
        -------
        GeneBlock
            The smaller block.
        """
        genes = np.asarray(genes)
        new = np.full(self.n_genes, -1)
        new[genes] = np.arange(len(genes))
        S = self.n_subjects
        m = new[self.gene] >= 0
        gene = new[self.gene[m]]
        pair = gene * S + self.pair[m] % S  # still sorted: the genes keep their order
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, dtype=np.int64)
        dm = new[self.dist_gene] >= 0
        # the per-pair and per-gene sums are rows of this block's (the same sums, in the same order)
        return GeneBlock(self.y[m], self.o[m], gene, pair, len(genes), S, self.Y[genes], self.YO[genes],
                         new[self.dist_gene[dm]], self.dist_y[dm], self.dist_n[dm], self.lgamma_y1[genes],
                         starts, pair[starts])

    def per_pair(self, w: np.ndarray) -> np.ndarray:
        """sum over the nonzeros of each (gene, subject) of w, as (G, S).

        Parameters
        ----------
        w : numpy.ndarray
            A value per nonzero.

        Returns
        -------
        numpy.ndarray
            (G, S).
        """
        out = np.zeros(self.n_genes * self.n_subjects)
        if len(self.starts):
            out[self.pairs] = np.add.reduceat(w, self.starts)
        return out.reshape(self.n_genes, self.n_subjects)

    def per_gene_distinct(self, w: np.ndarray) -> np.ndarray:
        """sum over the distinct counts of each gene of multiplicity * w, as (G,).

        Parameters
        ----------
        w : numpy.ndarray
            A value per (gene, distinct count).

        Returns
        -------
        numpy.ndarray
            (G,).
        """
        return np.bincount(self.dist_gene, weights=self.dist_n * w, minlength=self.n_genes)
