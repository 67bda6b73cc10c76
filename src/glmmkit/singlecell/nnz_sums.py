"""The sums over a block's nonzero counts that the NB2 kernel needs, per (gene, subject) pair:

    Syp = sum y p,   Syq = sum y p (1-p),   Sysp = sum y softplus(xz),   Syr = sum y p (1-p)(1-2p)

with xz = x_pair + o (o the cell's log library size) and p = expit(xz): a handful of numpy passes over the
nonzeros (numpy's SIMD exp and log1p), one ``np.add.reduceat`` per sum over the pair-sorted nonzeros.
(A fused numba loop was measured: no faster, its scalar exp costs what numpy's vector passes do.)"""

from __future__ import annotations

import numpy as np


def nnz_sums(block, x: np.ndarray, n_out: int) -> list[np.ndarray]:
    """[Syp, Syq] (+ Sysp for n_out >= 3, + Syr for n_out = 4) as (G, S) arrays; x is (G, S)."""
    xz = x.ravel()[block.pair] + block.o
    with np.errstate(over="ignore"):
        e = np.exp(-xz)
    p = 1.0 / (1.0 + e)
    yp = block.y * p
    yq = yp * (1 - p)
    res = [block.per_pair(yp), block.per_pair(yq)]
    if n_out > 2:
        sp = xz + np.log1p(e)
        bad = ~np.isfinite(sp) | (xz <= -700.0)
        if bad.any():
            sp[bad] = np.exp(xz[bad])
        res.append(block.per_pair(block.y * sp))
    if n_out > 3:
        res.append(block.per_pair(yq * (1 - 2 * p)))
    return res
