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
    xz = np.take(x.ravel(), block.pair)
    xz += block.o
    with np.errstate(over="ignore"):
        e = np.exp(np.negative(xz))
    p = e + 1.0
    np.reciprocal(p, out=p)  # p = expit(xz)
    q = 1.0 - p
    # the family's logistic score y (1 - p) - theta p and information (y + theta) p (1 - p) at theta = 0
    # (the theta parts are the tabulated sums), written as the products they reduce to, in the same order
    ys = block.y * q
    yq = block.y * p
    yq *= q
    res = [block.per_pair(ys), block.per_pair(yq)]
    if n_out > 2:
        sp = np.log1p(e)
        sp += xz
        bad = ~np.isfinite(sp) | (xz <= -700.0)
        if bad.any():
            sp[bad] = np.exp(xz[bad])
        sp *= block.y
        res.append(block.per_pair(sp))
    if n_out > 3:
        p *= -2.0
        p += 1.0
        yq *= p
        res.append(block.per_pair(yq))
    return res
