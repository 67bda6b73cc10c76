"""The sums over a block's nonzero counts that the NB2 kernel needs, per (gene, subject) pair:

    Sys = sum y (1-p),   Syq = sum y p (1-p),   Sysp = sum y softplus(xz),   Syr = sum y p (1-p)(1-2p)

Sys and Syq are the count parts of the NB2 family's score and observed information in logistic form
(``NegativeBinomial2.logistic_score`` / ``logistic_information`` with theta = 0); the theta parts are the
tabulated sums over all of a subject's cells (softplus.py).

with xz = x_pair + o (o the cell's log library size) and p = expit(xz): a handful of numpy passes over the
nonzeros (numpy's SIMD exp and log1p), one ``np.add.reduceat`` per sum over the pair-sorted nonzeros.
(A fused numba loop was measured: no faster, its scalar exp costs what numpy's vector passes do.)"""

from __future__ import annotations

import numpy as np

from ..families import NegativeBinomial2


def nnz_sums(block, x: np.ndarray, n_out: int) -> list[np.ndarray]:
    """[Sys, Syq] (+ Sysp for n_out >= 3, + Syr for n_out = 4) as (G, S) arrays; x is (G, S).

    Parameters
    ----------
    block : GeneBlock
        The genes' nonzero counts, sorted by (gene, subject) pair.
    x : numpy.ndarray
        (G, S) the pair's eta - log theta without the cell offset.
    n_out : int
        How many sums (2 to 4).

    Returns
    -------
    list of numpy.ndarray
        The sums, each (G, S).
    """
    xz = x.ravel()[block.pair] + block.o
    with np.errstate(over="ignore"):
        e = np.exp(-xz)
    p = 1.0 / (1.0 + e)
    ys = NegativeBinomial2.logistic_score(block.y, p, 0.0)
    yq = NegativeBinomial2.logistic_information(block.y, p, 0.0)
    res = [block.per_pair(ys), block.per_pair(yq)]
    if n_out > 2:
        sp = xz + np.log1p(e)
        bad = ~np.isfinite(sp) | (xz <= -700.0)
        if bad.any():
            sp[bad] = np.exp(xz[bad])
        res.append(block.per_pair(block.y * sp))
    if n_out > 3:
        res.append(block.per_pair(yq * (1 - 2 * p)))
    return res
