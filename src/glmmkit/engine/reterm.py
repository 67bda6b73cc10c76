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

#: terms with more coefficients per level than this take products over Z's nonzeros and batched matrix
#: products (einsum's three-operand contractions are O(k^4) per level without a contraction path); small ones
#: keep per-column passes, which are faster there
SMALL_K = 3


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
    structure: str | None = None  # glmmTMB's covariance structure as written (ar1, exp, rr, ...), None for lme4's
    #: for columns that are indicators of values (times, positions): the columns read and each column's value
    value_columns: tuple = ()
    value_levels: np.ndarray | None = None
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
        """The term as lme4 writes it, e.g. ``(1 + x | g)`` or ``(1 + x || g)``; glmmTMB's for a structure,
        e.g. ``ar1(0 + month | clinic)``."""
        if self.structure:
            return f"{self.structure}({self.lhs} | {self.group})"
        bar = "|" if not self.cov.__class__.__name__ == "Diagonal" else "||"
        return f"({' + '.join(self.columns)} {bar} {self.group})"

    def new_matrix(self, newdata) -> np.ndarray:
        """The term's columns for new rows, coded as the fit coded its own.

        Parameters
        ----------
        newdata : pandas.DataFrame
            Rows with the term's variables.

        Returns
        -------
        numpy.ndarray
            (n_new, k); InputError for a time or position the fit did not have.
        """
        if self.value_levels is None:
            from ..formula.coding import coded_matrix

            return np.asarray(coded_matrix(self.lhs_spec, newdata, f"random-effects term {self.label}"), dtype=float)
        for c in self.value_columns:
            if c not in newdata.columns:
                raise InputError(f"newdata lacks the column {c!r} of the term {self.label}")
        try:
            vals = np.column_stack([newdata[c].to_numpy(dtype=float) for c in self.value_columns])
        except (TypeError, ValueError):
            raise InputError(f"newdata's {list(self.value_columns)} are not numeric (term {self.label})") from None
        lev = np.asarray(self.value_levels, dtype=float).reshape(len(self.value_levels), -1)
        match = np.all(np.isclose(vals[:, None, :], lev[None, :, :], rtol=1e-12, atol=0), axis=2)
        found = match.any(axis=1)
        if not found.all():
            i = int(np.flatnonzero(~found)[0])
            raise InputError(f"newdata row {i} has {dict(zip(self.value_columns, vals[i].tolist()))}, which the term "
                             f"{self.label} did not have: its coefficients exist at the fitted times or positions "
                             "only (use re_form='~0', or refit with these rows)")
        return match.astype(float)

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

    def csr_nonzero(self) -> sp.csr_matrix:
        """Z as CSR without its explicit zeros (the indicator columns of a structured term keep one entry a
        row); cached.

        Returns
        -------
        scipy.sparse.csr_matrix
            The term's model matrix.
        """
        if getattr(self, "_csr_nz", None) is None:
            z = self.csr().copy()
            z.eliminate_zeros()
            self._csr_nz = z
        return self._csr_nz

    def zt_matrix(self, V: np.ndarray) -> np.ndarray:
        """Z' V for several columns: per level and coefficient, sum over the level's rows of x_i[c] V_i.

        Parameters
        ----------
        V : numpy.ndarray
            (n, p).

        Returns
        -------
        numpy.ndarray
            (q, k, p).
        """
        p = V.shape[1]
        if self.k > SMALL_K:
            return np.asarray(self.csr_nonzero().T @ V).reshape(self.q, self.k, p)
        return np.stack([np.stack([np.bincount(self.codes, weights=self.X[:, c] * V[:, s], minlength=self.q)
                                   for s in range(p)], axis=1) for c in range(self.k)], axis=1)

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
        if self.k > SMALL_K:  # many coefficients per level (structured terms): one product over Z's nonzeros
            return self.csr_nonzero() @ np.ravel(b)
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
        if self.k > SMALL_K:
            return (self.csr_nonzero().T @ v).reshape(self.q, self.k)
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
