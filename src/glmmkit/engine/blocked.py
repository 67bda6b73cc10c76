"""The blocked system  [Lambda'Z'WZLambda + I, Lambda'Z'WD; D'WZLambda, D'WD]  and its Cholesky factor.

Terms are ordered by number of levels, largest first.  The first term that is
not a known-matrix term ("term 1") gives a block-diagonal leading block with
q1 blocks of k1 x k1, factored by a batched Cholesky.  Everything else (the
other terms, then the dense columns D: the fixed effects X, and y for an LMM)
forms a dense trailing block, reached through the Schur complement

    S = A_tt - M'M,   M = L11^{-1} A_1t,

which is sparse between terms (nested: one nonzero per row) and dense for D.
The pattern of every cross-product is analysed once (``Structure``); each
evaluation only refills numbers (``Structure.raw``) and factors (``factor``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .resystem import RandomEffectsSystem, SystemFactor
from .reterm import SMALL_K, RandomTerm
from ..errors import InputError

# a dense tail larger than this would need gigabytes: refuse with advice
MAX_DENSE_TAIL = 25_000

# The storage of the cross block M = L11^-1 A_1t (Q1 x Qtt) is chosen once per model from its pattern:
# the Schur update M'M costs Q1 Qtt^2 multiply-adds dense (BLAS syrk) and sum_r nnz_r^2 sparse (SciPy's
# sparse product, one row r of M at a time).  Measured on the benchmark machine (2 cores, one BLAS thread):
# the dense product runs at about 20e9 multiply-adds per second and the sparse one at 80e6 to 250e6, so
# sparse pays when sum_r nnz_r^2 * SPARSE_COST < Q1 Qtt^2.  The 3,000 x 1,100 students-by-instructors
# layout (25 instructors per student): 4.1e6 * 150 < 3.7e9, sparse (47 ms against 68 ms, and no dense
# Q1 x Qtt array); 10,000 x 500 with 91 levels met per level: 8.3e7 * 150 > 2.5e9, dense (35 ms against 320 ms).
SPARSE_COST = 150.0
# a dense M above this many entries is never held (memory): sparse whatever the cost
MAX_DENSE_CROSS = 8_000_000
# and a dense M'M below this many multiply-adds (about 0.5 ms) is always dense
DENSE_ALWAYS = 1e7


class PairPattern:
    """The observed (level of a, level of b) pairs of two terms, found once."""

    def __init__(self, ta: RandomTerm, tb: RandomTerm):
        key = ta.codes.astype(np.int64) * tb.q + tb.codes
        uniq, self.pidx = np.unique(key, return_inverse=True)
        self.npairs = len(uniq)
        la, lb = uniq // tb.q, uniq % tb.q
        self.ta, self.tb = ta, tb
        rows, cols = [], []
        for r in range(ta.k):
            for s in range(tb.k):
                rows.append(la * ta.k + r)
                cols.append(lb * tb.k + s)
        self.rows = np.concatenate(rows)
        self.cols = np.concatenate(cols)

    def values(self, w: np.ndarray) -> np.ndarray:
        """The weighted cross-products of the two terms' columns at the observed level pairs.

        Parameters
        ----------
        w : numpy.ndarray
            (n,) weights.

        Returns
        -------
        numpy.ndarray
            sum over rows of w x_a x_b per (pair, coefficient pair), in the order of ``rows`` / ``cols``.
        """
        xa, xb = self.ta.X, self.tb.X
        return np.concatenate(
            [
                np.bincount(self.pidx, weights=w * xa[:, r] * xb[:, s], minlength=self.npairs)
                for r in range(self.ta.k)
                for s in range(self.tb.k)
            ]
        )


class SchurPairs:
    """The lower triangle of C' diag(d) C for a sparse C with a fixed pattern, as one scatter-add.

    With scalar terms the cross block is M = diag(b) C1t Lambda_t (b = theta_1 / l per level of term 1),
    so the Schur update is M'M = Lambda_t (C1t' diag(b^2) C1t) Lambda_t.  Row r of C with nonzeros at
    columns c_1 < ... < c_k adds d_r C[r, c_a] C[r, c_b] to entry (c_a, c_b), a >= b.  The pairs
    (positions in C's data, the flat destination, the row) are found once per model and their products
    C[r, c_a] C[r, c_b] once per weighted system (``products``); each factorisation is then one gather of
    d, a product and a bincount: no symbolic phase and half the products of a full sparse product.  Used
    while the pairs number at most MAX_PAIRS (memory: 40 bytes a pair; the index arrays are native
    integers because numpy gathers with int32 indices run three times slower).  The pairs run row by row
    (built from one template per row length, no square roots): the per-row quadratic is a segmented sum.
    """

    MAX_PAIRS = 10_000_000

    def __init__(self, pa, pb, dest, row, size):
        self.pa, self.pb, self.dest, self.row, self.size = pa, pb, dest, row, size
        self.twice = np.where(self.pa != self.pb, 2.0, 1.0)  # an off-diagonal pair stands for two products

    @classmethod
    def build(cls, indptr: np.ndarray, indices: np.ndarray, size: int) -> "SchurPairs | None":
        """The pairs of a CSR pattern with sorted column indices.

        Parameters
        ----------
        indptr, indices : numpy.ndarray
            The pattern (CSR, sorted indices).
        size : int
            The number of columns.

        Returns
        -------
        SchurPairs or None
            None when the pairs would exceed ``MAX_PAIRS`` (the sparse product is used instead).
        """
        nnz_r = np.diff(indptr).astype(np.int64)
        tri = nnz_r * (nnz_r + 1) // 2
        total = int(tri.sum())
        if total > cls.MAX_PAIRS or total == 0:
            return None
        # rows with the same number of nonzeros k share one template of local pairs (a, b), a >= b: the pairs
        # of all such rows are their starts plus the template, written in row order (consecutive pairs then
        # share columns, which keeps the gathers local)
        starts = indptr[:-1].astype(np.int64)
        offs = np.cumsum(tri) - tri
        pa = np.empty(total, dtype=np.intp)
        pb = np.empty(total, dtype=np.intp)
        row = np.empty(total, dtype=np.intp)
        for k in np.unique(nnz_r[nnz_r > 0]):
            rows_k = np.flatnonzero(nnz_r == k)
            ta, tb = np.tril_indices(int(k))
            at = (offs[rows_k][:, None] + np.arange(len(ta))[None, :]).ravel()
            base = starts[rows_k][:, None]
            pa[at] = (base + ta[None, :]).ravel()
            pb[at] = (base + tb[None, :]).ravel()
            row[at] = np.repeat(rows_k, len(ta))
        pairs = cls(pa, pb, None, row, size)
        pairs.row_ids = np.flatnonzero(tri)  # rows with pairs, whose runs start at offs (row order)
        pairs.row_starts = offs[pairs.row_ids]
        pairs.dest = indices[pa].astype(np.int64) * size + indices[pb]
        return pairs

    def products(self, data: np.ndarray) -> np.ndarray:
        """C[r, c_a] C[r, c_b] for every pair.

        Parameters
        ----------
        data : numpy.ndarray
            C's values in CSR order.

        Returns
        -------
        numpy.ndarray
            One product per pair.
        """
        return data[self.pa] * data[self.pb]

    def subtract_lower(self, products: np.ndarray, d: np.ndarray, out: np.ndarray) -> None:
        """out -= tril(C' diag(d) C).

        Parameters
        ----------
        products : numpy.ndarray
            From ``products``.
        d : numpy.ndarray
            One weight per row of C.
        out : numpy.ndarray
            (size, size) block whose lower triangle is updated in place.
        """
        acc = np.bincount(self.dest, weights=products * np.take(d, self.row), minlength=self.size * self.size)
        out -= acc.reshape(self.size, self.size)

    def gather_lower(self, S: np.ndarray) -> np.ndarray:
        """S at every pair's place (c_a, c_b), c_a >= b, read from the lower triangle in S's own memory order
        (a Fortran-ordered LAPACK result is not copied).

        Parameters
        ----------
        S : numpy.ndarray
            (size, size); its lower triangle is read.

        Returns
        -------
        numpy.ndarray
            One value per pair.
        """
        if S.flags.c_contiguous:
            return np.take(S.reshape(-1), self.dest)
        if S.flags.f_contiguous:
            if getattr(self, "_dest_f", None) is None:
                ca, cb = np.divmod(self.dest, self.size)
                self._dest_f = cb * self.size + ca  # (c_a, c_b) in column-major order
            return np.take(S.reshape(-1, order="F"), self._dest_f)
        return np.take(np.ascontiguousarray(S).reshape(-1), self.dest)

    def row_quadratic(self, products: np.ndarray, S_lower: np.ndarray, nrows: int) -> np.ndarray:
        """C_r S C_r' for every row r of C, S symmetric and given by its lower triangle.

        Parameters
        ----------
        products : numpy.ndarray
            From ``products``.
        S_lower : numpy.ndarray
            (size, size), C-ordered; the lower triangle is read.
        nrows : int
            C's rows.

        Returns
        -------
        numpy.ndarray
            (nrows,).
        """
        w = self.gather_lower(S_lower)
        w *= products
        w *= self.twice
        # the pairs run row by row: a segmented sum (no scattered writes)
        out = np.zeros(nrows)
        out[self.row_ids] = np.add.reduceat(w, self.row_starts)
        return out




def sandwich(T: np.ndarray, V: np.ndarray, transpose_first: bool = False) -> np.ndarray:
    """T V_q T' per level (or T' V_q T with ``transpose_first``).

    Parameters
    ----------
    T : numpy.ndarray
        (k, k).
    V : numpy.ndarray
        (q, k, k).
    transpose_first : bool
        T' V T instead of T V T'.

    Returns
    -------
    numpy.ndarray
        (q, k, k).
    """
    if T.shape[0] <= SMALL_K:
        return np.einsum("ji,qjk,kl->qil", T, V, T) if transpose_first else np.einsum("ij,qjk,lk->qil", T, V, T)
    A = T.T if transpose_first else T
    return np.matmul(np.matmul(A, V), A.T)


def lower_inverse(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower triangular matrices by blocks, [[A, 0], [C, D]]^-1 =
    [[A^-1, 0], [-D^-1 C A^-1, D^-1]], recursively: batched products instead of one LU per level (twice as
    fast as numpy's inv for many small blocks); one large block goes to LAPACK's trtri.

    Parameters
    ----------
    L : numpy.ndarray
        (q, k, k) lower triangular, nonsingular.

    Returns
    -------
    numpy.ndarray
        (q, k, k).
    """
    k = L.shape[-1]
    if L.shape[0] < 8:
        return np.stack([sla.solve_triangular(l, np.eye(k), lower=True, check_finite=False) for l in L])
    if k == 1:
        return 1.0 / L
    h = k // 2
    Ai, Di = lower_inverse(L[:, :h, :h]), lower_inverse(L[:, h:, h:])
    out = np.zeros_like(L)
    out[:, :h, :h] = Ai
    out[:, h:, h:] = Di
    out[:, h:, :h] = -np.matmul(Di, np.matmul(L[:, h:, :h], Ai))
    return out


def level_sandwich(L: np.ndarray, M: np.ndarray) -> np.ndarray:
    """L_q' M_q L_q per level.

    Parameters
    ----------
    L, M : numpy.ndarray
        (q, k, k) each.

    Returns
    -------
    numpy.ndarray
        (q, k, k).
    """
    if L.shape[1] <= SMALL_K:
        return np.einsum("qki,qkl,qlj->qij", L, M, L)
    return np.matmul(np.transpose(L, (0, 2, 1)), np.matmul(M, L))


def row_quadratic(X: np.ndarray, codes: np.ndarray, P: np.ndarray, chunk_floats: int = 4_000_000,
                  csr=None) -> np.ndarray:
    """x_i' P_(level of i) x_i for every row.

    Parameters
    ----------
    X : numpy.ndarray
        (n, k) the term's columns.
    codes : numpy.ndarray
        (n,) level codes.
    P : numpy.ndarray
        (q, k, k) symmetric.
    chunk_floats : int
        Rows are taken in chunks of at most this many gathered floats (n_chunk k^2).
    csr : scipy.sparse.csr_matrix, optional
        Z without explicit zeros: rows with one nonzero (indicator columns) read P's diagonal only.

    Returns
    -------
    numpy.ndarray
        (n,).
    """
    n, k = X.shape
    if csr is not None and k > SMALL_K and csr.nnz == n and np.all(np.diff(csr.indptr) == 1):
        col = csr.indices % k
        return csr.data * csr.data * P[codes, col, col]
    h = np.zeros(n)
    if k <= SMALL_K:
        for i in range(k):  # per-level scalars: cheaper than gathering (n, k, k)
            for j in range(i, k):
                h += (P[:, i, j] * (1.0 if i == j else 2.0))[codes] * X[:, i] * X[:, j]
        return h
    step = max(1, chunk_floats // (k * k))
    for s in range(0, n, step):
        Xc = X[s : s + step]
        h[s : s + step] = np.einsum("nj,nj->n", np.matmul(Xc[:, None, :], P[codes[s : s + step]])[:, 0, :], Xc)
    return h


def level_gram(term: RandomTerm, w: np.ndarray) -> np.ndarray:
    """The per-level Gram matrices of a term: sum over the rows of each level of w x x'.

    Parameters
    ----------
    term : RandomTerm
        The term (its codes and columns).
    w : numpy.ndarray
        (n,) weights.

    Returns
    -------
    numpy.ndarray
        (q, k, k).
    """
    q, k, X = term.q, term.k, term.X
    if k > SMALL_K:
        # Z'WZ over Z's nonzeros (block diagonal by level), scattered into the levels' k x k blocks: the cost
        # follows the nonzeros (n for the indicator columns of ar1, toep, cs and the spatial classes)
        Z = term.csr_nonzero()
        P = (Z.T @ Z.multiply(w[:, None]).tocsr()).tocoo()
        g = np.zeros((q, k, k))
        g[P.row // k, P.row % k, P.col % k] = P.data
        return g
    g = np.empty((q, k, k))
    for r in range(k):
        for s in range(r + 1):
            g[:, r, s] = np.bincount(term.codes, weights=w * X[:, r] * X[:, s], minlength=q)
            g[:, s, r] = g[:, r, s]
    return g


@dataclass
class RawSystem:  # noqa: D101
    """Weighted cross-products without Lambda (depend on W and D only)."""

    G1: np.ndarray | None  # (q1, k1, k1)
    C1t: sp.csr_matrix | np.ndarray | None  # (Q1, Qtt) sparse, or its values for the dense path
    C1D: np.ndarray | None  # (Q1, m)
    Ctt: np.ndarray  # (Qtt, Qtt)
    CtD: np.ndarray  # (Qtt, m)
    DD: np.ndarray  # (m, m)
    pair_products: np.ndarray | None = None  # SchurPairs.products of C1t (the pairs' path)


class Structure(RandomEffectsSystem):
    """Order of the terms and the sparsity patterns, analysed once per model.

    The engine's default random-effects system (engine/resystem.py states the protocol): u is
    spherical (b = Lambda u, u ~ N(0, I)), so the penalty is |u|^2, and the joint (u, beta) system of
    PIRLS's first stage factors in the same blocked way.

    Parameters
    ----------
    terms : list of RandomTerm
        The model's random-effects terms, in the formula's order.
    """

    #: shown in the optimisation summary
    name = "blocked Cholesky"
    #: the joint (u, beta) system can be factored (stage 1, nAGQ = 0, the PIRLS standard errors)
    supports_joint = True

    def __init__(self, terms: list[RandomTerm]):
        order = sorted(range(len(terms)), key=lambda i: -terms[i].q)
        first = next((i for i in order if terms[i].cov.blockdiag), None)
        self.order = ([first] if first is not None else []) + [i for i in order if i != first]
        self.terms = [terms[i] for i in self.order]  # layout order of u
        self.first = terms[first] if first is not None else None
        self.tail = self.terms[1:] if first is not None else self.terms
        self.Q1 = self.first.size if self.first is not None else 0
        sizes = [t.size for t in self.tail]
        self.tail_off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.Qtt = int(self.tail_off[-1])
        self.Q = self.Q1 + self.Qtt
        if self.Qtt > MAX_DENSE_TAIL:
            raise InputError(
                f"the random-effects terms after the largest one have {self.Qtt} columns in all; "
                f"more than {MAX_DENSE_TAIL} would need a dense block of {self.Qtt}^2 numbers. "
                "Reorder or simplify the terms, or use a sparse-precision term for a known matrix."
            )
        self.u_off = np.concatenate([[0], np.cumsum([t.size for t in self.terms])]).astype(int)
        # term 1 x tail patterns, gathered into one CSR matrix with a fixed order
        self.p1t = [PairPattern(self.first, t) for t in self.tail] if self.first is not None else []
        self.dense_cross = False
        self.cross_cost = None
        if self.p1t:
            rows = np.concatenate([p.rows for p in self.p1t])
            cols = np.concatenate([p.cols + self.tail_off[j] for j, p in enumerate(self.p1t)])
            self._c1t_rows, self._c1t_cols = rows, cols
            self._c1t_flat = rows.astype(np.intp) * self.Qtt + cols  # positions in a dense C-ordered M
            probe = sp.csr_matrix((np.arange(1, len(rows) + 1, dtype=float), (rows, cols)), shape=(self.Q1, self.Qtt))
            probe.sort_indices()
            self._c1t_perm = probe.data.astype(np.int64) - 1
            self._c1t_indices, self._c1t_indptr = probe.indices, probe.indptr
            self._c1t_row_of = np.repeat(np.arange(self.Q1), np.diff(probe.indptr))
            nnz_r = np.diff(probe.indptr).astype(float)
            # the storage rule (see SPARSE_COST): the cost of M'M each way, in multiply-adds
            self.cross_cost = {"dense": float(self.Q1) * self.Qtt ** 2, "sparse": float(nnz_r @ nnz_r)}
            # a small block stays dense whatever the ratio: below DENSE_ALWAYS multiply-adds the sparse path's
            # fixed cost of a dozen numpy calls exceeds BLAS's (the catalogue's small LMMs ran 1.4x slower)
            self.dense_cross = (self.Q1 * self.Qtt <= MAX_DENSE_CROSS
                                and (self.cross_cost["dense"] <= DENSE_ALWAYS
                                     or self.cross_cost["sparse"] * SPARSE_COST >= self.cross_cost["dense"]))
        # scalar unknown-covariance tail terms: Lambda_t is a diagonal, applied as one vector
        self.tail_scalar = all(t.k == 1 and not t.is_known for t in self.tail)
        # M keeps C1t's pattern exactly when term 1 and the tail are scalar (M = diag * C1t * diag): then
        # the Schur update is the precomputed pairs' scatter-add, otherwise SciPy's sparse product
        self._schur_pairs = None
        if self.p1t and not self.dense_cross and self.first.k == 1 and self.tail_scalar:
            self._schur_pairs = SchurPairs.build(self._c1t_indptr, self._c1t_indices, self.Qtt)
        # the random-effects part of the trailing block stays diagonal when the tail is one scalar
        # term and each level of term 1 meets one level of it (two-level nesting, or an OLRE
        # beside one factor): then it is factored elementwise
        self.tail_diagonal = (
            len(self.tail) == 1 and self.tail[0].k == 1 and not self.tail[0].is_known
            and (self.first is None or self.p1t[0].npairs == self.first.q) and self.first is not None
            and self.first.k == 1
        )
        # tail x tail patterns (i < j) scattered into a dense block
        self.ptt = {}
        for i in range(len(self.tail)):
            for j in range(i + 1, len(self.tail)):
                self.ptt[i, j] = PairPattern(self.tail[i], self.tail[j])

    def row_pattern_positions(self, j: int) -> np.ndarray:
        """For every row, the position in C1t's CSR data of its (term-1 level, level of tail term j) pair.

        Scalar terms only (one coordinate per level); found once and kept.

        Parameters
        ----------
        j : int
            The tail term (index among the trailing terms).

        Returns
        -------
        numpy.ndarray
            (n,) positions.
        """
        cache = self.__dict__.setdefault("_row_positions", {})
        if j not in cache:
            offset = sum(len(self.p1t[i].rows) for i in range(j))
            inv = np.empty_like(self._c1t_perm)
            inv[self._c1t_perm] = np.arange(len(self._c1t_perm))
            cache[j] = inv[offset + self.p1t[j].pidx]
        return cache[j]

    # ------------------------------------------------------------------
    def raw(self, w: np.ndarray, D: np.ndarray | None) -> RawSystem:
        """Cross-products of [Z, D] weighted by w (the system's "assemble" step).

        Parameters
        ----------
        w : numpy.ndarray
            (n,) weights.
        D : numpy.ndarray or None
            (n, m) dense columns (X for the joint system, [X, y] for an LMM), or None.

        Returns
        -------
        RawSystem
            The unscaled blocks, ready for ``factor``.
        """
        m = 0 if D is None else D.shape[1]
        wD = None if D is None else D * w[:, None]
        G1 = C1t = C1D = pair_products = None
        if self.first is not None:
            G1 = level_gram(self.first, w)
            if self.p1t:
                vals = np.concatenate([p.values(w) for p in self.p1t])
                if self.dense_cross:
                    C1t = vals  # values in the order of (self._c1t_rows, self._c1t_cols)
                else:
                    C1t = sp.csr_matrix((vals[self._c1t_perm], self._c1t_indices.copy(), self._c1t_indptr.copy()),
                                        shape=(self.Q1, self.Qtt))
                    if self._schur_pairs is not None:
                        pair_products = self._schur_pairs.products(C1t.data)
            C1D = np.asarray(self.first.csr().T @ wD) if m else np.zeros((self.Q1, 0))
        if self.tail_diagonal:
            Ctt = level_gram(self.tail[0], w)[:, 0, 0]  # the diagonal only
            CtD = np.asarray(self.tail[0].csr().T @ wD) if m else np.zeros((self.Qtt, 0))
            DD = D.T @ wD if m else np.zeros((0, 0))
            return RawSystem(G1, C1t, C1D, Ctt, CtD, DD, pair_products)
        Ctt = np.zeros((self.Qtt, self.Qtt))
        for j, t in enumerate(self.tail):
            o = self.tail_off[j]
            g = level_gram(t, w)
            idx = o + np.arange(t.size).reshape(t.q, t.k)
            Ctt[idx[:, :, None], idx[:, None, :]] = g
        for (i, j), p in self.ptt.items():
            v = p.values(w)
            r, c = p.rows + self.tail_off[i], p.cols + self.tail_off[j]
            Ctt[r, c] = v
            Ctt[c, r] = v
        if m and self.tail:
            CtD = np.vstack([np.asarray(t.csr().T @ wD) for t in self.tail])
        else:
            CtD = np.zeros((self.Qtt, m))
        DD = D.T @ wD if m else np.zeros((0, 0))
        return RawSystem(G1, C1t, C1D, Ctt, CtD, DD, pair_products)

    # ------------------------------------------------------------------
    def split_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        """theta (in the formula's order of terms) split per term in the layout order.

        Parameters
        ----------
        theta : numpy.ndarray
            All variance parameters.

        Returns
        -------
        list of numpy.ndarray
            One array per layout term.
        """
        sizes = [t.cov.n_theta for t in self._orig_terms()]
        parts = np.split(np.asarray(theta, dtype=float), np.cumsum(sizes)[:-1])
        return [parts[i] for i in self.order]

    def _orig_terms(self):
        out = [None] * len(self.order)
        for pos, i in enumerate(self.order):
            out[i] = self.terms[pos]
        return out

    def tail_lambda_sparse(self, thetas: list[np.ndarray]) -> sp.spmatrix:
        """Lambda of the trailing terms as one sparse block-diagonal matrix.

        Parameters
        ----------
        thetas : list of numpy.ndarray
            theta per layout term.

        Returns
        -------
        scipy.sparse.csr_matrix
            (Qtt, Qtt).
        """
        off = 1 if self.first is not None else 0
        blocks = []
        for t, th in zip(self.tail, thetas[off:]):
            if t.is_known:
                blocks.append(sp.csr_matrix(t.cov.dense_lambda(th)))
            elif t.k == 1:
                blocks.append(sp.identity(t.q, format="csr") * float(th[0]))
            else:
                blocks.append(sp.kron(sp.identity(t.q, format="csr"), sp.csr_matrix(t.cov.template(th))))
        return sp.block_diag(blocks, format="csr")

    def tail_lambda_diag(self, thetas: list[np.ndarray]) -> np.ndarray:
        """Lambda of the trailing terms as its diagonal (every trailing term scalar, ``tail_scalar``).

        Parameters
        ----------
        thetas : list of numpy.ndarray
            theta per layout term.

        Returns
        -------
        numpy.ndarray
            (Qtt,).
        """
        off = 1 if self.first is not None else 0
        return np.repeat([float(th[0]) for th in thetas[off:]], [t.q for t in self.tail])

    def scale_tail_rows(self, thetas, A: np.ndarray) -> np.ndarray:
        """Lambda_t' A for a (Qtt, m) array.

        Parameters
        ----------
        thetas : list of numpy.ndarray
            theta per layout term.
        A : numpy.ndarray
            (Qtt, m) rows of the trailing block.

        Returns
        -------
        numpy.ndarray
            The scaled rows.
        """
        off = 1 if self.first is not None else 0
        out = np.empty_like(A)
        for j, (t, th) in enumerate(zip(self.tail, thetas[off:])):
            sl = slice(self.tail_off[j], self.tail_off[j + 1])
            if t.k == 1 and not t.is_known:
                np.multiply(A[sl], th[0], out=out[sl])
            else:
                out[sl] = t.lambda_t(th, A[sl])
        return out

    def factor(self, raw: RawSystem, theta: np.ndarray, eps_jitter: float = 0.0) -> "BlockedFactor":
        """Scale the raw system by Lambda(theta), add I on the random-effects block, and factor it.

        Parameters
        ----------
        raw : RawSystem
            From ``raw``.
        theta : numpy.ndarray
            Variance parameters.
        eps_jitter : float
            Added to the trailing block's diagonal (0: none).

        Returns
        -------
        BlockedFactor
            L with L L' the penalised system.
        """
        thetas = self.split_theta(theta)
        m = raw.DD.shape[0]
        L11 = L11inv = None
        Mt = None
        MD = np.zeros((0, m))
        if self.first is not None:
            t1 = self.first.cov.template(thetas[0])
            k1 = self.first.k
            if k1 == 1:
                a = t1[0, 0] ** 2 * raw.G1[:, 0, 0] + 1.0
                if np.any(a <= 0):  # negative weights (an indefinite observed information) can make it so
                    raise np.linalg.LinAlgError("first block not positive definite")
                l = np.sqrt(a)
                L11 = l[:, None, None]
                L11inv = (1.0 / l)[:, None, None]
                B = (t1[0, 0] / l)[:, None, None]
            else:
                A11 = sandwich(t1, raw.G1, transpose_first=True) + np.eye(k1)
                L11 = np.linalg.cholesky(A11)
                L11inv = lower_inverse(L11) if k1 > SMALL_K else np.linalg.inv(L11)
                B = L11inv @ t1.T
            q1 = self.first.q
            lam_d = self.tail_lambda_diag(thetas) if self.tail_scalar else None
            if raw.C1t is not None and self.dense_cross:
                # M = L11^-1 T1' C1t Lambda_t, filled at the observed pairs
                C = np.zeros((self.Q1, self.Qtt))
                if k1 == 1 and lam_d is not None:
                    C.ravel()[self._c1t_flat] = raw.C1t * B[self._c1t_rows, 0, 0] * lam_d[self._c1t_cols]
                    Mt = C
                else:
                    C[self._c1t_rows, self._c1t_cols] = raw.C1t
                    if k1 == 1:
                        C *= B[:, 0, :]
                    else:
                        C = np.matmul(B, C.reshape(q1, k1, self.Qtt)).reshape(self.Q1, self.Qtt)
                    Mt = self.scale_tail_rows(thetas, C.T.copy()).T  # C Lambda_t
            elif raw.C1t is not None and k1 == 1 and lam_d is not None:
                # the same pattern as C1t: scale its numbers in place of two sparse products
                Mt = sp.csr_matrix((raw.C1t.data * B[self._c1t_row_of, 0, 0] * lam_d[raw.C1t.indices],
                                    raw.C1t.indices, raw.C1t.indptr), shape=(self.Q1, self.Qtt))
            elif raw.C1t is not None:
                lam_t = self.tail_lambda_sparse(thetas)
                if k1 == 1:
                    left = sp.diags(B[:, 0, 0])
                else:
                    left = sp.bsr_matrix((B, np.arange(q1), np.arange(q1 + 1)), shape=(self.Q1, self.Q1))
                Mt = (left @ raw.C1t @ lam_t).tocsr()
            if m:
                MD = np.matmul(B, raw.C1D.reshape(q1, k1, m)).reshape(self.Q1, m)
        # trailing block
        n_t = self.Qtt + m
        if self.tail_diagonal:
            Lt = self._factor_diagonal_tail(raw, thetas, Mt, MD, m)
            return BlockedFactor(L11, L11inv, Mt, MD, Lt, self.Q1, self.Qtt, m)
        S = np.empty((n_t, n_t))
        pairs_done = False
        if self.Qtt:
            if self.tail_scalar:
                lam_d = self.tail_lambda_diag(thetas)
                Stt = S[: self.Qtt, : self.Qtt]
                if raw.pair_products is not None and Mt is not None:
                    # S_tt = Lambda_t (C_tt - C1t' diag(b^2) C1t) Lambda_t + I (lower triangle)
                    Stt[...] = raw.Ctt
                    self._schur_pairs.subtract_lower(raw.pair_products, B[:, 0, 0] ** 2, Stt)
                    pairs_done = True
                    Stt *= lam_d[:, None]
                else:
                    np.multiply(raw.Ctt, lam_d[:, None], out=Stt)
                Stt *= lam_d[None, :]
            else:
                att = self.scale_tail_rows(thetas, raw.Ctt)
                S[: self.Qtt, : self.Qtt] = self.scale_tail_rows(thetas, att.T.copy()).T
            S[np.arange(self.Qtt), np.arange(self.Qtt)] += 1.0
            if m:
                atd = self.scale_tail_rows(thetas, raw.CtD)
                S[: self.Qtt, self.Qtt :] = atd
                S[self.Qtt :, : self.Qtt] = atd.T
        if m:
            S[self.Qtt :, self.Qtt :] = raw.DD
        if Mt is not None:
            # the Schur update; the Cholesky reads only the lower triangle, so a dense M takes BLAS's
            # syrk (half a gemm: Mt.T is Fortran-ordered, no copy)
            if isinstance(Mt, np.ndarray):
                S[: self.Qtt, : self.Qtt] -= sla.blas.dsyrk(1.0, Mt.T, lower=1)
            elif pairs_done:
                pass
            else:
                S[: self.Qtt, : self.Qtt] -= (Mt.T.tocsr() @ Mt).toarray()
            if m:
                cross = np.asarray(Mt.T @ MD)
                S[: self.Qtt, self.Qtt :] -= cross
                S[self.Qtt :, : self.Qtt] -= cross.T
        if m and self.first is not None:
            S[self.Qtt :, self.Qtt :] -= MD.T @ MD
        if eps_jitter:
            S[np.diag_indices_from(S)] += eps_jitter
        Lt = sla.cholesky(S, lower=True, check_finite=False) if n_t else np.zeros((0, 0))
        return BlockedFactor(L11, L11inv, Mt, MD, Lt, self.Q1, self.Qtt, m)

    def _factor_diagonal_tail(self, raw, thetas, Mt, MD, m) -> "np.ndarray | DiagonalLower":
        """Trailing factor when its random-effects part is diagonal (see ``tail_diagonal``): a
        ``DiagonalLower`` without dense columns, else dense with the diagonal bordered by the D rows."""
        th = float(thetas[1][0])
        h = self.Qtt
        d = th * th * raw.Ctt + 1.0
        if Mt is not None:
            mt = Mt if isinstance(Mt, np.ndarray) else Mt.tocoo()
            if isinstance(mt, np.ndarray):
                d = d - np.einsum("ij,ij->j", mt, mt)
            else:
                d = d - np.bincount(mt.col, weights=mt.data * mt.data, minlength=h)
        if np.any(d <= 0):
            raise np.linalg.LinAlgError("trailing block not positive definite")
        l = np.sqrt(d)
        if not m:
            return DiagonalLower(l)  # no dense h x h array: the factor is its diagonal
        L = np.zeros((h + m, h + m))
        L[np.arange(h), np.arange(h)] = l
        if m:
            std = th * raw.CtD
            if Mt is not None:
                std = std - np.asarray(Mt.T @ MD)
            B = std.T / l  # (m, h)
            L[h:, :h] = B
            sdd = raw.DD - (MD.T @ MD if self.first is not None else 0.0) - B @ B.T
            L[h:, h:] = sla.cholesky(sdd, lower=True, check_finite=False)
        return L

    # ------------------------------------------------------------------
    def penalty(self, theta, u) -> float:
        """The prior term of the penalised deviance: |u|^2 (u is spherical).

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters (unused: the scale is in Lambda).
        u : numpy.ndarray
            Spherical random effects.

        Returns
        -------
        float
            u'u.
        """
        return float(u @ u)

    def ranef_condvar(self, theta, u, factor) -> tuple[list, list]:
        """Conditional modes b and conditional covariances per term, in the formula's order.

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters.
        u : numpy.ndarray
            Spherical modes.
        factor : BlockedFactor
            The factor at the mode (random-effects block only).

        Returns
        -------
        tuple
            (list of (q, k) arrays, list of (q, k, k) arrays), before any residual scale.
        """
        b_layout = self.b_blocks(theta, u)
        out_b, out_v = [None] * len(self.terms), [None] * len(self.terms)
        thetas = self.split_theta(theta)
        tail_inv = factor.inverse_tail() if self.Qtt else None
        for pos, (t, th) in enumerate(zip(self.terms, thetas)):
            if pos == 0 and self.first is not None:
                vu = factor.inverse_diag_blocks_first(t.k)
            else:
                o = self.tail_off[pos - (1 if self.first is not None else 0)]
                blk = tail_inv[o : o + t.size, o : o + t.size]
                if t.is_known:
                    lam = t.cov.dense_lambda(th)
                    out_b[pos] = b_layout[pos]
                    out_v[pos] = np.einsum("ij,jk,ik->i", lam, blk, lam)[:, None, None]
                    continue
                idx = np.arange(t.size).reshape(t.q, t.k)
                vu = blk[idx[:, :, None], idx[:, None, :]]
            T = t.cov.template(th)
            out_b[pos] = b_layout[pos]
            out_v[pos] = sandwich(T, vu)
        b, v = [None] * len(self.terms), [None] * len(self.terms)
        for pos, i in enumerate(self.order):  # back to the formula's order
            b[i], v[i] = out_b[pos], out_v[pos]
        return b, v

    def zlam_u(self, theta, u) -> np.ndarray:
        """Z Lambda u: the random part of the linear predictor.

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters.
        u : numpy.ndarray
            (Q,) spherical random effects.

        Returns
        -------
        numpy.ndarray
            (n,).
        """
        thetas = self.split_theta(theta)
        out = 0.0
        for pos, (t, th) in enumerate(zip(self.terms, thetas)):
            uu = u[self.u_off[pos] : self.u_off[pos + 1]]
            if t.is_known:
                b = (t.cov.dense_lambda(th) @ uu)[:, None]
            else:
                b = uu.reshape(t.q, t.k) @ t.cov.template(th).T
            out = out + t.zb(b)
        return out

    def lam_zt(self, theta, v) -> np.ndarray:
        """Lambda' Z' v.

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters.
        v : numpy.ndarray
            (n,) values.

        Returns
        -------
        numpy.ndarray
            (Q,).
        """
        thetas = self.split_theta(theta)
        parts = []
        for t, th in zip(self.terms, thetas):
            parts.append(t.lambda_t(th, t.zt(v).ravel()))
        return np.concatenate(parts) if parts else np.zeros(0)

    def b_blocks(self, theta, u) -> list[np.ndarray]:
        """b = Lambda u per layout term.

        Parameters
        ----------
        theta : numpy.ndarray
            Variance parameters.
        u : numpy.ndarray
            (Q,) spherical random effects.

        Returns
        -------
        list of numpy.ndarray
            (q, k) per layout term.
        """
        thetas = self.split_theta(theta)
        out = []
        for pos, (t, th) in enumerate(zip(self.terms, thetas)):
            uu = u[self.u_off[pos] : self.u_off[pos + 1]]
            if t.is_known:
                out.append((t.cov.dense_lambda(th) @ uu)[:, None])
            else:
                out.append(uu.reshape(t.q, t.k) @ t.cov.template(th).T)
        return out


class DiagonalLower:
    """A diagonal lower-triangular factor (a nested trailing block without dense columns), held as its
    diagonal: the operations the blocked factor uses, each elementwise."""

    def __init__(self, l: np.ndarray):
        self.l = l
        self.shape = (len(l), len(l))

    def diagonal(self) -> np.ndarray:
        """The diagonal.

        Returns
        -------
        numpy.ndarray
            (h,).
        """
        return self.l

    def solve(self, b: np.ndarray) -> np.ndarray:
        """L^-1 b (= L^-T b).

        Parameters
        ----------
        b : numpy.ndarray
            (h,) or (h, r).

        Returns
        -------
        numpy.ndarray
            The solution.
        """
        return b / (self.l if b.ndim == 1 else self.l[:, None])

    def dense(self) -> np.ndarray:
        """The dense matrix.

        Returns
        -------
        numpy.ndarray
            (h, h).
        """
        return np.diag(self.l)


def symmetric_from_lower(S_lower: np.ndarray) -> np.ndarray:
    """The full symmetric matrix from its lower triangle.

    Parameters
    ----------
    S_lower : numpy.ndarray
        (n, n), lower triangle valid.

    Returns
    -------
    numpy.ndarray
        (n, n) symmetric.
    """
    out = np.tril(S_lower)
    out += np.tril(out, -1).T
    return out


def _tri_solve(L, b, trans=False):
    """L^-1 b or L^-T b for a dense lower factor or a ``DiagonalLower``."""
    if isinstance(L, DiagonalLower):
        return L.solve(b)
    return sla.solve_triangular(L, b, lower=True, trans="T" if trans else "N", check_finite=False)


def _diag(L) -> np.ndarray:
    return L.diagonal() if isinstance(L, DiagonalLower) else np.diag(L)


@dataclass
class BlockedFactor(SystemFactor):
    """L = [[L11, 0], [M', Lt]] with L11 block-diagonal."""

    L11: np.ndarray | None
    L11inv: np.ndarray | None
    Mt: sp.csr_matrix | np.ndarray | None
    MD: np.ndarray
    Lt: "np.ndarray | DiagonalLower"
    Q1: int
    Qtt: int
    m: int

    def logdet_re(self) -> float:
        """log det of the random-effects block (L11 and the leading Qtt rows of Lt), squared.

        Returns
        -------
        float
            The Laplace log-determinant (the prior's is 0 for spherical u).
        """
        s = 0.0
        if self.L11 is not None:
            s += 2 * np.sum(np.log(np.diagonal(self.L11, axis1=1, axis2=2)))
        if self.Qtt:
            s += 2 * np.sum(np.log(_diag(self.Lt)[: self.Qtt]))
        return float(s)

    def logdet_tail(self, start: int, stop: int) -> float:
        """log det of a range of the dense columns' block (R_X for REML).

        Parameters
        ----------
        start, stop : int
            The range among the dense columns.

        Returns
        -------
        float
            2 sum log diag(Lt) over the range.
        """
        return float(2 * np.sum(np.log(_diag(self.Lt)[self.Qtt + start : self.Qtt + stop])))

    def _m_t(self, c1: np.ndarray) -> np.ndarray:
        """M' c1 -> (Qtt + m,)."""
        parts = []
        parts.append(self.Mt.T @ c1 if self.Mt is not None else np.zeros(self.Qtt))
        parts.append(self.MD.T @ c1 if self.m and self.Q1 else np.zeros(self.m))
        return np.concatenate(parts)

    def _m(self, xt: np.ndarray) -> np.ndarray:
        """M xt -> (Q1,)."""
        out = np.zeros(self.Q1)
        if self.Mt is not None:
            out += self.Mt @ xt[: self.Qtt]
        if self.m and self.Q1:
            out += self.MD @ xt[self.Qtt :]
        return out

    def _l11_solve(self, r, trans=False):
        q, k = self.L11inv.shape[0], self.L11inv.shape[1]
        r = r.reshape(q, k)
        if k == 1:
            return (r[:, 0] * self.L11inv[:, 0, 0])
        sub = "qji,qj->qi" if trans else "qij,qj->qi"
        return np.einsum(sub, self.L11inv, r).ravel()

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve A x = rhs with A = L L'.

        Parameters
        ----------
        rhs : numpy.ndarray
            (Q [+ m],) right-hand side.

        Returns
        -------
        numpy.ndarray
            x.
        """
        r1, rt = rhs[: self.Q1], rhs[self.Q1 :]
        c1 = self._l11_solve(r1) if self.Q1 else r1
        ct = rt - self._m_t(c1) if self.Q1 else rt
        if len(ct):
            ct = _tri_solve(self.Lt, ct)
            xt = _tri_solve(self.Lt, ct, trans=True)
        else:
            xt = ct
        x1 = self._l11_solve(c1 - self._m(xt), trans=True) if self.Q1 else c1
        return np.concatenate([x1, xt])

    def forward(self, rhs: np.ndarray) -> np.ndarray:
        """L^-1 rhs for many right-hand sides at once (the forward half of ``solve``).

        With A = L L', a' A^-1 a = |L^-1 a|^2; the leading rows of L^-1 [a; 0] depend only on the leading
        block, so a bordered factor (an LMM's, with y last) serves its leading system too.

        Parameters
        ----------
        rhs : numpy.ndarray
            (Q + m, c).

        Returns
        -------
        numpy.ndarray
            (Q + m, c).
        """
        r1, rt = rhs[: self.Q1], rhs[self.Q1 :]
        if self.Q1:
            q, k = self.L11inv.shape[0], self.L11inv.shape[1]
            c1 = np.einsum("qij,qjc->qic", self.L11inv, r1.reshape(q, k, -1)).reshape(self.Q1, -1)
            parts = [self.Mt.T @ c1 if self.Mt is not None else np.zeros((self.Qtt, rhs.shape[1]))]
            parts.append(self.MD.T @ c1 if self.m else np.zeros((0, rhs.shape[1])))
            rt = rt - np.vstack(parts)
        else:
            c1 = r1
        ct = _tri_solve(self.Lt, rt) if len(rt) else rt
        return np.vstack([c1, ct])

    def solve_last_column(self) -> np.ndarray:
        """For a system whose last D column is y: the solution of the system without y, rhs = its y column.

        With L the factor of [[A, a],[a', y'y]], the first block's solution is L_A^{-T} l where l is the last
        row of L without its diagonal.

        Returns
        -------
        numpy.ndarray
            (u, beta) of an LMM at theta.
        """
        nt = self.Qtt + self.m - 1
        ly = self.Lt[-1, :-1]
        xt = sla.solve_triangular(self.Lt[:-1, :-1], ly, lower=True, trans="T", check_finite=False)
        if self.Q1:
            my = self._my_column()
            x1 = self._l11_solve(my - self._m(np.concatenate([xt, [0.0]])), trans=True)
        else:
            x1 = np.zeros(0)
        assert len(xt) == nt
        return np.concatenate([x1, xt])

    def _my_column(self) -> np.ndarray:
        return self.MD[:, -1]

    def inverse_diag_blocks_first(self, k1: int) -> np.ndarray:
        """Diagonal k x k blocks of A^{-1} for term 1: L11^{-T}(I + V V')L11^{-1}, V = M Lt^{-T}.

        Parameters
        ----------
        k1 : int
            Term 1's coefficients per level.

        Returns
        -------
        numpy.ndarray
            (q1, k1, k1).
        """
        q = self.L11inv.shape[0]
        V = np.zeros((self.Q1, 0))
        if isinstance(self.Lt, DiagonalLower) and self.Mt is not None and not isinstance(self.Mt, np.ndarray):
            # V V' per level from M's nonzeros: (M diag(1/l^2) M')_l, no dense Q1 x Qtt array
            Ms = self.Mt.multiply(1.0 / self.Lt.l[None, :]).tocsr()
            if k1 == 1:
                inner = 1.0 + np.asarray(Ms.multiply(Ms).sum(axis=1)).ravel()
                return (self.L11inv[:, 0, 0] ** 2 * inner)[:, None, None]
            Vd = Ms.toarray().reshape(q, k1, -1)
            inner = np.eye(k1)[None] + np.matmul(Vd, np.transpose(Vd, (0, 2, 1)))
            return level_sandwich(self.L11inv, inner)
        if self.Qtt + self.m:
            Mfull = np.zeros((self.Q1, self.Qtt + self.m))
            if self.Mt is not None:
                Mfull[:, : self.Qtt] = self.Mt if isinstance(self.Mt, np.ndarray) else self.Mt.toarray()
            if self.m:
                Mfull[:, self.Qtt :] = self.MD
            V = _tri_solve(self.Lt, Mfull.T).T
        Vb = V.reshape(q, k1, -1)
        inner = np.eye(k1)[None] + np.matmul(Vb, np.transpose(Vb, (0, 2, 1)))
        return level_sandwich(self.L11inv, inner)

    def inverse_tail(self) -> np.ndarray:
        """The trailing block of A^{-1}: (Lt Lt')^{-1}.

        Returns
        -------
        numpy.ndarray
            Dense (Qtt + m, Qtt + m).
        """
        n = self.Lt.shape[0]
        if not n:
            return np.zeros((0, 0))
        if isinstance(self.Lt, DiagonalLower):
            return np.diag(1.0 / self.Lt.l ** 2)
        return symmetric_from_lower(self.tail_inverse_lower(n))

    def tail_inverse_lower(self, n0: int) -> np.ndarray:
        """(Lt Lt')^-1 over the trailing block's first n0 variables (LAPACK potri: the leading block of a
        Cholesky factor is the factor of the leading block), lower triangle valid only.

        Parameters
        ----------
        n0 : int
            How many of the trailing variables (tail columns, then dense columns).

        Returns
        -------
        numpy.ndarray
            (n0, n0), upper triangle not set.
        """
        if not n0:
            return np.zeros((0, 0))
        L = self.Lt.dense() if isinstance(self.Lt, DiagonalLower) else self.Lt
        inv, info = sla.lapack.dpotri(L[:n0, :n0], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("trailing block is singular")
        return inv
