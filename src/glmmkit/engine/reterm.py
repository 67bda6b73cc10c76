"""A random-effects term: grouping codes, its raw model columns and covariance structure.

Z for the term has one column per (level, coefficient): column ``level * k + r``
holds ``X[i, r]`` for the rows i of that level.  Z is never formed densely; the
term keeps ``codes`` (n,) and ``X`` (n, k) and a sparse CSR copy for products.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .covariance import CovStructure, KnownMatrix
from ..errors import InputError


@dataclass
class RandomTerm:
    group: str  # grouping factor, e.g. "herd" or "a:b"
    levels: np.ndarray  # level labels (strings), in code order
    codes: np.ndarray  # (n,) int64 level code of each row
    X: np.ndarray  # (n, k) raw columns of the term
    columns: list[str]  # coefficient names, e.g. ["(Intercept)", "Days"]
    cov: CovStructure
    lhs: str = "1"  # the term's left-hand side as written
    lhs_spec: object = None  # formulaic ModelSpec for the lhs (to code new data)
    _csr: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def q(self) -> int:
        """The number of levels."""
        return len(self.levels)

    @property
    def k(self) -> int:
        """The number of coefficients per level."""
        return self.X.shape[1]

    @property
    def size(self) -> int:
        """q k: the term's columns of Z."""
        return self.q * self.k

    @property
    def is_known(self) -> bool:
        """Whether the term has a known covariance (relmat, tree)."""
        return isinstance(self.cov, KnownMatrix)

    def labels_in(self, newdata) -> np.ndarray:
        """The term's level label of each row of new data ("a:b" for an interaction of factors).

        Parameters
        ----------
        newdata : pandas.DataFrame
            Rows with the grouping columns.

        Returns
        -------
        numpy.ndarray
            One label per row (InputError when a grouping column is missing).
        """
        parts = [p.strip() for p in self.group.split(":")]
        for p in parts:
            if p not in newdata.columns:
                raise InputError(f"newdata lacks the grouping column {p!r} (or use re_form='~0')")
        labels = newdata[parts[0]].astype(str).to_numpy()
        for p in parts[1:]:
            labels = np.char.add(np.char.add(labels.astype(str), ":"), newdata[p].astype(str).to_numpy().astype(str))
        return labels

    @property
    def label(self) -> str:
        """The term as lme4 writes it, e.g. ``(1 + x | g)`` or ``(1 + x || g)``."""
        bar = "|" if not self.cov.__class__.__name__ == "Diagonal" else "||"
        return f"({' + '.join(self.columns)} {bar} {self.group})"

    def csr(self) -> sp.csr_matrix:
        """Z (n x q k) as CSR; fixed once the model is built.

        Returns
        -------
        scipy.sparse.csr_matrix
            The term's model matrix.
        """
        if self._csr is None:
            n, k = self.X.shape
            indices = (self.codes[:, None] * k + np.arange(k)[None, :]).ravel()
            indptr = np.arange(0, n * k + 1, k)
            self._csr = sp.csr_matrix((self.X.ravel().astype(float), indices, indptr), shape=(n, self.size))
        return self._csr

    # ---- Lambda applied to vectors -------------------------------------------------
    def zb(self, b: np.ndarray) -> np.ndarray:
        """Z b.

        Parameters
        ----------
        b : numpy.ndarray
            (q, k) coefficients per level.

        Returns
        -------
        numpy.ndarray
            (n,).
        """
        b = b.reshape(self.q, self.k)
        out = self.X[:, 0] * np.ascontiguousarray(b[:, 0])[self.codes]
        for r in range(1, self.k):  # per-column gathers beat a 2-D gather + einsum
            out += self.X[:, r] * np.ascontiguousarray(b[:, r])[self.codes]
        return out

    def zt(self, v: np.ndarray) -> np.ndarray:
        """Z' v (raw, without Lambda).

        Parameters
        ----------
        v : numpy.ndarray
            (n,) values.

        Returns
        -------
        numpy.ndarray
            (q, k).
        """
        if self.k == 1:
            return np.bincount(self.codes, weights=self.X[:, 0] * v, minlength=self.q)[:, None]
        return np.stack(
            [np.bincount(self.codes, weights=self.X[:, r] * v, minlength=self.q) for r in range(self.k)], axis=1
        )

    def lambda_t(self, theta: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Lambda' applied to raw Z' products.

        Parameters
        ----------
        theta : numpy.ndarray
            The term's parameters.
        raw : numpy.ndarray
            (q k,) or (q k, m).

        Returns
        -------
        numpy.ndarray
            The same shape, scaled.
        """
        if self.is_known:
            return self.cov.dense_lambda(theta).T @ raw
        t = self.cov.template(theta)
        if raw.ndim == 1:
            return (raw.reshape(self.q, self.k) @ t).ravel()
        m = raw.shape[1]
        return np.einsum("ji,qjm->qim", t, raw.reshape(self.q, self.k, m)).reshape(self.size, m)
