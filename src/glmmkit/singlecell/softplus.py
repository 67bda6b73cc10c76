"""Sums of softplus over the cells of each subject, and their derivatives, at any x.

The NB2 log-likelihood of a zero count is  -theta * log(1 + mu / theta),  and with a linear predictor that
is constant within a subject, mu_i / theta = exp(x + o_i)  (o_i the cell's log library size, x the
subject's linear predictor minus log theta).  Summed over *all* cells of subject s this is

    a_s(x) = sum_i softplus(x + o_i),      a_s^(r)(x) = sum_i softplus^(r)(x + o_i),

a function of one scalar that is the same for every gene.  It is tabulated once per data set, so a
gene's likelihood costs O(nonzero counts + subjects) instead of O(cells).  Tails are exact series:

    left   (x + max o <= -T):  softplus(z) = sum_k (-1)^(k+1) e^{k z} / k        (k = 1..3)
    right  (x + min o >=  T):  softplus(z) = z + sum_k (-1)^(k+1) e^{-k z} / k

(truncation error below e^{-3T} = 2e-16 relative for T = 12); in between, each derivative is a cubic
Hermite interpolant on a grid of step h with the next derivative as its slope: relative error about
h^4 / 384 (2.6e-11 at h = 0.01), measured against the direct sums in the tests.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from ..errors import InputError

N_ORDERS = 4  # a, a', a'', a''' are used; a'''' is the slope of a'''
_K = np.arange(1, 4)


def softplus_derivatives(z: np.ndarray, orders: int = N_ORDERS + 1) -> list[np.ndarray]:
    """softplus(z) and its derivatives up to order ``orders - 1``, elementwise.

    Parameters
    ----------
    z : numpy.ndarray
        Values.
    orders : int
        How many (softplus and orders - 1 derivatives).

    Returns
    -------
    list of numpy.ndarray
        softplus(z), its first derivative, ...
    """
    p = expit(z)
    q = p * (1 - p)
    out = [np.logaddexp(0.0, z), p, q]
    if orders > 3:
        r = q * (1 - 2 * p)
        out.append(r)
    if orders > 4:
        out.append(q * (1 - 6 * q))
    return out[:orders]


class SoftplusSums:
    """a_s^(r)(x) for subjects s = 0..S-1 (one grid shared by all subjects).

    ``offset`` is the per-cell log library size, ``subject`` the subject code of each cell."""

    def __init__(self, offset: np.ndarray, subject: np.ndarray, n_subjects: int, h: float = 0.01,
                 tail: float = 12.0, exact: bool = False, chunk_cells: int = 2_000_000):
        offset = np.asarray(offset, dtype=float)
        subject = np.asarray(subject, dtype=np.int64)
        S = int(n_subjects)
        self.S, self.h, self.tail, self.exact = S, float(h), float(tail), exact
        self.n = np.bincount(subject, minlength=S).astype(float)
        if np.any(self.n == 0):
            raise InputError(f"subject code {int(np.flatnonzero(self.n == 0)[0])} has no cells")
        self.sum_o = np.bincount(subject, weights=offset, minlength=S)
        self.omax = np.full(S, -np.inf)
        np.maximum.at(self.omax, subject, offset)
        self.omin = np.full(S, np.inf)
        np.minimum.at(self.omin, subject, offset)
        # tail moments, scaled by the extreme offset so that nothing overflows
        self.E = np.stack([np.bincount(subject, weights=np.exp(k * (offset - self.omax[subject])), minlength=S)
                           for k in _K])  # (3, S): sum_i e^{k (o_i - max o)}
        self.F = np.stack([np.bincount(subject, weights=np.exp(-k * (offset - self.omin[subject])), minlength=S)
                           for k in _K])  # (3, S): sum_i e^{-k (o_i - min o)}
        self.lo = -self.omax - tail  # per subject: below, the left series
        self.hi = -self.omin + tail  # per subject: above, the right series
        order = np.argsort(subject, kind="stable")
        self._o_sorted = offset[order]
        self._starts = np.concatenate([[0], np.cumsum(self.n.astype(np.int64))])
        if exact:
            return
        self.x0 = float(self.lo.min())
        n_grid = int(np.ceil((self.hi.max() - self.x0) / h)) + 2
        self.grid = self.x0 + h * np.arange(n_grid)
        # table[r, s, j] = a_s^(r)(grid[j]) for r = 0..4, filled subject by subject, in chunks of cells
        self.table = np.zeros((N_ORDERS + 1, S, n_grid))
        for s in range(S):  # set-up only: S is the number of subjects
            o_s = self._o_sorted[self._starts[s] : self._starts[s + 1]]
            step = max(1, chunk_cells // n_grid)
            for c in range(0, len(o_s), step):
                z = self.grid[:, None] + o_s[None, c : c + step]
                for r, d in enumerate(softplus_derivatives(z)):
                    self.table[r, s] += d.sum(axis=1)

    # ---- evaluation ------------------------------------------------------------
    def __call__(self, x: np.ndarray, orders=(0, 1, 2, 3)) -> dict[int, np.ndarray]:
        """a_s^(r)(x[..., s]) for the requested orders; x has the subjects on its last axis."""
        x = np.asarray(x, dtype=float)
        if self.exact:
            return self._direct(x, orders)
        S = self.S
        left = x <= self.lo
        right = x >= self.hi
        if not (left.any() or right.any()):  # the usual case: every pair inside the grid, no masks
            return self._interpolate(x, np.broadcast_to(np.arange(S), x.shape), orders)
        out = {r: np.empty_like(x) for r in orders}
        mid = ~(left | right)
        if mid.any():
            for r, val in self._interpolate(x[mid], np.broadcast_to(np.arange(S), x.shape)[mid], orders).items():
                out[r][mid] = val
        if left.any():
            s = np.broadcast_to(np.arange(S), x.shape)[left]
            e = np.exp(np.outer(x[left] + self.omax[s], _K))  # (m, 3): e^{k (x + max o)}
            sign = (-1.0) ** (_K + 1)
            Es = self.E[:, s].T
            for r in orders:
                out[r][left] = np.sum(sign * _K ** (r - 1.0) * e * Es, axis=1)
        if right.any():
            s = np.broadcast_to(np.arange(S), x.shape)[right]
            xr = x[right]
            e = np.exp(-np.outer(xr + self.omin[s], _K))
            sign = (-1.0) ** (_K + 1)
            Fs = self.F[:, s].T
            for r in orders:
                series = np.sum(sign * (-_K) ** float(r) / _K * e * Fs, axis=1)
                if r == 0:
                    out[r][right] = self.n[s] * xr + self.sum_o[s] + series
                elif r == 1:
                    out[r][right] = self.n[s] + series
                else:
                    out[r][right] = series
        return out

    def _interpolate(self, x: np.ndarray, s: np.ndarray, orders) -> dict[int, np.ndarray]:
        """The cubic Hermite interpolants at x (inside the grid) of subjects s: each table order gathered once
        (order r + 1 is order r's slope)."""
        pos = (x - self.x0) / self.h
        j = np.clip(np.floor(pos).astype(np.int64), 0, len(self.grid) - 2)
        t = pos - j
        t2 = t * t
        h00 = (1 + 2 * t) * (1 - t) ** 2
        h10 = t * (1 - t) ** 2 * self.h
        h01 = t2 * (3 - 2 * t)
        h11 = t2 * (t - 1) * self.h
        flat = s * len(self.grid) + j
        need = sorted(set(orders) | {r + 1 for r in orders})
        tab = self.table.reshape(self.table.shape[0], -1)
        at = {r: (tab[r].take(flat), tab[r].take(flat + 1)) for r in need}
        return {r: h00 * at[r][0] + h10 * at[r + 1][0] + h01 * at[r][1] + h11 * at[r + 1][1] for r in orders}

    def _direct(self, x: np.ndarray, orders) -> dict[int, np.ndarray]:
        """The sums themselves, cell by cell (tests and small data)."""
        out = {r: np.empty_like(x) for r in orders}
        for s in range(self.S):
            o_s = self._o_sorted[self._starts[s] : self._starts[s + 1]]
            z = x[..., s, None] + o_s
            ders = softplus_derivatives(z, max(orders) + 1)
            for r in orders:
                out[r][..., s] = ders[r].sum(axis=-1)
        return out
