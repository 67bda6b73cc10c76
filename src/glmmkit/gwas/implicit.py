"""The dense GRM without forming it (BOLT-LMM-inf's way): K = Z Z' / m kept as the standardised genotypes Z.

At biobank n the GRM (n^2 8 bytes: 12.9 GB at 40,000 samples) and its Cholesky (n^3 / 3 flops) are out of
reach, but the model variants' genotypes are not: Z is kept packed, n m bytes (one a genotype, as
``ImplicitGRM`` says), and a product K V costs 4 n m k flops for k columns, block by block of variants
converted to float32 in cache.  The null model's systems are then solved by conjugate gradients
(``ImplicitProjection``), every variance-component step from products alone.

The projection P = Sigma^-1 - Sigma^-1 X (X' Sigma^-1 X)^-1 X' Sigma^-1 of Sigma = phi W^-1 + tau K is taken
in whitened coordinates, as BOLT-LMM projects the covariates out of everything:

    D = diag(sqrt(W / phi)),   D Sigma D = I + tau D K D,   Q an orthonormal basis of D X,  C = I - Q Q',
    P = D C A^+ C D,           A = I + tau C D K D C   (on the range of C),

so no right-hand side carries X's columns, and A >= I: conjugate gradients without a preconditioner need
O(sqrt(1 + tau lambda_max(D K D))) steps (lambda_max ~ (1 + sqrt(n / m))^2 for unrelated samples).

Leave-one-chromosome-out products use the same Z: K_-c V = (Z Z' V - Z_c Z_c' V) / (m - m_c), several
chromosomes' columns in one product (``ImplicitGRM.product(V, exclude=...)``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from ..errors import InputError

#: bytes of packed genotypes (one a genotype) an implicit GRM may hold before it is refused (thin the model variants)
IMPLICIT_MAX_BYTES = 8e9
#: conjugate gradients stop at this residual relative to the right-hand side (the products are float32:
#: relative error ~1e-6, so the answers are accurate to about that; the iteration itself goes below)
CG_TOL = 1e-6


class ImplicitGRM:
    """The standardised GRM K = Z Z' / m held as its genotypes: ``K @ V``, ``K.diagonal()``, ``K.shape``.

    ``implicit_grm`` keeps Z packed, one byte a genotype (G, an (m, n) uint8 array of variants x samples: the
    dosage in steps of 1 for hard calls or 0.01 for dosages), with each variant's centre c and scale s and the
    missing calls apart (E, sparse):

        Z' = diag(s) (G - c 1') + E,    E_ji = -(G_ji - c_j) s_j at a missing call (so Z_ij = 0 there:
                                        mean imputation; its code is the one nearest c_j, so E is small),

    a quarter of float32's memory.  A product never forms Z: with the columns of V centred (V = Vc + 1 v'),

        T = Z' V = diag(s) G Vc + E Vc + (Z' 1) v',      K V = Z T / m = G' diag(s) T - 1 (s c)' T + E' T,

    where G is converted to float32 a tile at a time (sized to stay in the processor's cache: one tile of
    whole sample rows serves both products when V has few columns), the tiles shared between threads.
    Centring V first keeps float32's rounding at the centred product's scale.  A float Z (the constructor's
    first argument) is kept as it is (n m 4 bytes) and multiplied directly.

    Parameters
    ----------
    Z : numpy.ndarray or None
        Standardised genotypes (n samples x m variants), float32; or None with ``codes``.
    chrom : array-like, optional
        The chromosome of each column (for ``without`` and LOCO).
    codes, centre, scale : numpy.ndarray, optional
        The packed form instead of Z: (m, n) uint8 G and the per-variant c and s.
    missing : scipy.sparse matrix, optional
        (m, n): the missing calls' positions (any stored value; E is computed from them).
    threads : int, optional
        Threads a product uses (default: the processors this process may use).
    """

    #: float32 bytes of one converted tile of genotypes (it should stay in cache between its two uses)
    TILE_BYTES = 2 ** 21

    def __init__(self, Z: np.ndarray | None, chrom=None, codes=None, centre=None, scale=None, missing=None,
                 threads: int | None = None):
        if Z is not None:
            Z = np.asarray(Z, dtype=np.float32)
            if Z.ndim != 2:
                raise InputError(f"Z must be samples x variants (2-d), got shape {Z.shape}")
            self._float, self._codes = np.ascontiguousarray(Z.T), None
            self.m, self.n = self._float.shape
        else:
            if codes is None or centre is None or scale is None:
                raise InputError("give Z, or codes with centre and scale")
            self._float, self._codes = None, np.ascontiguousarray(codes, dtype=np.uint8)
            self.m, self.n = self._codes.shape
            self._centre = np.asarray(centre, dtype=np.float64)
            self._scale = np.asarray(scale, dtype=np.float64)
            if self._centre.shape != (self.m,) or self._scale.shape != (self.m,):
                raise InputError(f"centre and scale need one value for each of the {self.m} variants")
            M = sp.csr_matrix((self.m, self.n)) if missing is None else sp.csr_matrix(missing, dtype=np.float64)
            M.sum_duplicates()
            rows = np.repeat(np.arange(self.m), np.diff(M.indptr))
            # E_ji = -(G_ji - c_j) s_j at each missing call
            vals = -(self._codes[rows, M.indices] - self._centre[rows]) * self._scale[rows]
            self._E = sp.csr_matrix((vals, M.indices, M.indptr), shape=(self.m, self.n))
            # Z' 1 = s (G 1 - n c) + E 1, exactly (float64), one pass over the codes
            sums = np.concatenate([self._codes[j : j + 4096].sum(axis=1, dtype=np.int64)
                                   for j in range(0, self.m, 4096)])
            self._z1 = self._scale * (sums - self.n * self._centre) + np.asarray(self._E.sum(axis=1)).ravel()
        self.chrom = None if chrom is None else np.asarray(chrom).astype(str)
        if self.chrom is not None and len(self.chrom) != self.m:
            raise InputError(f"chrom has {len(self.chrom)} labels for {self.m} columns")
        self.threads = max(1, threads if threads is not None else len(os.sched_getaffinity(0)))
        self._squares = None

    @property
    def shape(self) -> tuple:
        """(n, n)."""
        return (self.n, self.n)

    @property
    def nbytes(self) -> int:
        """Memory of the genotypes held."""
        if self._float is not None:
            return self._float.nbytes
        return self._codes.nbytes + self._E.data.nbytes + self._E.indices.nbytes + self._E.indptr.nbytes

    @property
    def Z(self) -> np.ndarray:
        """The standardised genotypes as one (n, m) float32 array (n m 4 bytes: for small GRMs and checks)."""
        return np.concatenate([self._standardised(j, min(j + 1024, self.m)) for j in range(0, self.m, 1024)]).T

    def _standardised(self, j0: int, j1: int) -> np.ndarray:
        """Z's columns j0..j1-1 as a (j1 - j0, n) float32 block."""
        if self._float is not None:
            return self._float[j0:j1]
        out = (self._codes[j0:j1] - self._centre[j0:j1, None]) * self._scale[j0:j1, None]
        out += self._E[j0:j1].toarray()
        return out.astype(np.float32)

    def _parts(self) -> list:
        """The variant ranges the threads share (whole chromosomes' order kept; one range per thread)."""
        cuts = np.linspace(0, self.m, min(self.threads, self.m) + 1).astype(int)
        return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

    def _in_threads(self, run, parts):
        """[run(part) for part in parts], one thread each, BLAS on one thread inside each."""
        with _blas_controller().limit(limits=1, user_api="blas"):  # the tiles are small: threaded BLAS only waits
            if len(parts) == 1:
                return [run(parts[0])]
            with ThreadPoolExecutor(len(parts)) as pool:
                return list(pool.map(run, parts))

    def _squares_by_chromosome(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, S): S[:, c] = sum of Z_ij^2 over the columns j on chromosome labels[c] (float64), one pass."""
        if self._squares is None:
            labels, which = np.unique(self.chrom if self.chrom is not None else np.zeros(self.m, str),
                                      return_inverse=True)

            def run(part):
                S = np.zeros((self.n, len(labels)))
                for j0 in range(part[0], part[1], 256):  # one step per 256 variants
                    j1 = min(j0 + 256, part[1])
                    Zb = self._standardised(j0, j1).astype(np.float64)
                    for c in np.unique(which[j0:j1]):  # the chromosomes in the block (usually one)
                        S[:, c] += (Zb[which[j0:j1] == c] ** 2).sum(axis=0)
                return S

            self._squares = (labels, sum(self._in_threads(run, self._parts())))
        return self._squares

    def diagonal(self) -> np.ndarray:
        """K's diagonal, sum_j Z_ij^2 / m (float64).

        Returns
        -------
        numpy.ndarray
            The n diagonal entries.
        """
        return self._squares_by_chromosome()[1].sum(axis=1) / self.m

    def columns_of(self, chrom: str) -> np.ndarray:
        """Indices of the columns on chromosome ``chrom``.

        Parameters
        ----------
        chrom : str
            The chromosome.

        Returns
        -------
        numpy.ndarray
            Column indices (empty when none is there).
        """
        if self.chrom is None:
            raise InputError("this implicit GRM carries no chromosome labels (build it with implicit_grm)")
        return np.flatnonzero(self.chrom == str(chrom))

    def product(self, V, exclude=None) -> np.ndarray:
        """K V; with ``exclude``, column j of V multiplied by the GRM without the variants ``exclude[j]``
        (an index array, or None for all of them): (Z Z' v - Z_c Z_c' v) / (m - m_c).

        Parameters
        ----------
        V : numpy.ndarray
            (n,) or (n, k).
        exclude : sequence, optional
            Per column of V, the column indices of Z left out (LOCO).

        Returns
        -------
        numpy.ndarray
            The product, float64, V's shape.
        """
        V = np.asarray(V, dtype=np.float64)
        if V.ndim not in (1, 2) or V.shape[0] != self.n:
            raise InputError(f"the GRM is {self.n} x {self.n}; V must have {self.n} rows, got shape {V.shape}")
        V2 = V.reshape(self.n, -1)
        k = V2.shape[1]
        # weight[j, i]: 1 / (m - m_left_out) for column i of V, 0 where variant j is left out of it
        weight = np.full((self.m, k), 1.0 / self.m)
        if exclude is not None:
            for i, idx in enumerate(exclude):  # one loop step per right-hand side, not per sample or variant
                if idx is not None and len(idx):
                    weight[:, i] = 1.0 / (self.m - len(idx))
                    weight[idx, i] = 0.0
        if self._float is not None:
            T = _times(self._float, V2.astype(np.float32)) * weight
            return _times(self._float.T, T.astype(np.float32)).astype(np.float64).reshape(V.shape)
        v = V2.mean(axis=0)
        Vc = np.ascontiguousarray(V2 - v, dtype=np.float32)
        T0 = self._E @ Vc + np.outer(self._z1, v)                      # E Vc + (Z' 1) v'
        out = sum(self._in_threads(lambda part: self._packed_product(part, Vc, T0, weight), self._parts()))
        return out.reshape(V.shape)

    def _packed_product(self, part, Vc, T0, weight) -> np.ndarray:
        """This thread's share of K V over the variants part[0]..part[1]-1: G' diag(s) T - 1 (s c)' T + E' T
        with T = (diag(s) G Vc + T0) * weight, tile by tile."""
        k = Vc.shape[1]
        # few columns: tiles of whole sample rows, each converted once and used for both products; many:
        # wider tiles of fewer rows (the accumulator of a narrow tile would be read and written per tile)
        b = max(1, self.TILE_BYTES // (4 * self.n))
        if k > b // 4:
            b = min(max(64, 8 * k), 1024)
        r = max(1, min(self.n, self.TILE_BYTES // (4 * b)))
        rows = [(i, min(i + r, self.n)) for i in range(0, self.n, r)]
        tile = np.empty(b * r, dtype=np.float32)
        acc = np.zeros((self.n, k), dtype=np.float32)
        total = np.zeros((self.n, k))
        T_all = np.empty((part[1] - part[0], k))
        for step, j0 in enumerate(range(part[0], part[1], b)):  # one step per block of variants, not per variant
            j1 = min(j0 + b, part[1])
            s = self._scale[j0:j1, None]

            def tile_of(r0, r1):
                t = tile[: (j1 - j0) * (r1 - r0)].reshape(j1 - j0, r1 - r0)
                np.copyto(t, self._codes[j0:j1, r0:r1], casting="unsafe")
                return t

            first = tile_of(*rows[0])
            GV = _times(first, Vc[rows[0][0] : rows[0][1]]).astype(np.float64)
            for r0, r1 in rows[1:]:
                GV += _times(tile_of(r0, r1), Vc[r0:r1])
            T = (s * GV + T0[j0:j1]) * weight[j0:j1]                    # (b, k) float64
            sT = (s * T).astype(np.float32)
            T_all[j0 - part[0] : j1 - part[0]] = T
            for i, (r0, r1) in enumerate(rows):
                t = first if len(rows) == 1 else tile_of(r0, r1)
                acc[r0:r1] += _times(t.T, sT)
            if step % 32 == 31:  # float32 sums of at most 32 blocks join the float64 total
                total += acc
                acc[:] = 0.0
        lo, hi = part
        corr = (self._scale[lo:hi] * self._centre[lo:hi]) @ T_all            # (s c)' T
        return total + acc - corr + self._E[lo:hi].T @ T_all

    def __matmul__(self, V) -> np.ndarray:
        return self.product(V)

    def without(self, chrom: str) -> "ImplicitGRM":
        """The GRM without chromosome ``chrom``'s variants, sharing Z (LOCO).

        Parameters
        ----------
        chrom : str
            The chromosome left out.

        Returns
        -------
        ImplicitGRM
            A view whose products leave those columns out.
        """
        return _Without(self, [str(chrom)])


#: up to this many columns a product is one matrix-vector product per column: OpenBLAS's sgemm with 2-4
#: columns took 2-4 times as long as as many sgemv calls (10,000 x 20,000 float32: sgemv 0.02 s, sgemm with 2
#: columns 0.09 s, with 31 columns 0.18 s)
GEMV_MAX_COLUMNS = 4


_CONTROLLER = []


def _blas_controller():
    """One threadpoolctl controller for the process (finding the BLAS libraries takes milliseconds)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _times(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A B, column by column when B has few columns."""
    if 1 < B.shape[1] <= GEMV_MAX_COLUMNS:
        return np.column_stack([A @ B[:, j] for j in range(B.shape[1])])
    return A @ B


class _Without(ImplicitGRM):
    """An ImplicitGRM's view without some chromosomes' columns."""

    def __init__(self, parent: ImplicitGRM, chroms: list):
        self._parent, self._chroms = parent, sorted(set(chroms))
        self.n, self.chrom = parent.n, parent.chrom
        self._idx = np.flatnonzero(np.isin(parent.chrom, self._chroms)) if parent.chrom is not None else \
            parent.columns_of(chroms[0])
        self.m = parent.m - len(self._idx)
        if self.m <= 0:
            raise InputError("leaving these variants out leaves no variant in the GRM")

    @property
    def nbytes(self) -> int:
        return self._parent.nbytes

    @property
    def Z(self) -> np.ndarray:
        return np.delete(self._parent.Z, self._idx, axis=1)

    def diagonal(self) -> np.ndarray:
        labels, S = self._parent._squares_by_chromosome()
        return S[:, ~np.isin(labels, self._chroms)].sum(axis=1) / self.m

    def product(self, V, exclude=None) -> np.ndarray:
        V = np.asarray(V)
        k = 1 if V.ndim == 1 else V.shape[1]
        if exclude is None:
            exclude = [self._idx] * k
        else:
            exclude = [self._idx if e is None else np.union1d(self._idx, e) for e in exclude]
        return self._parent.product(V, exclude)

    def without(self, chrom: str) -> "ImplicitGRM":
        return _Without(self._parent, self._chroms + [str(chrom)])


def implicit_grm(geno, rows: np.ndarray | None = None, variants: np.ndarray | None = None, min_maf: float = 0.01,
                 max_bytes: float = IMPLICIT_MAX_BYTES, chunk: int = 1000) -> ImplicitGRM:
    """The standardised GRM of ``variants`` (default all) kept implicit: their genotypes in memory, one byte each.

    Hard calls are kept exactly; dosages (BGEN, VCF DS) in steps of 0.01, half a step at most from the file's
    value; a missing call is mean-imputed (Z = 0) exactly.  Memory: n m bytes (a quarter of float32's).  The frequencies, the filter and the scale are the
    file's values, as in ``grm``.

    Parameters
    ----------
    geno : Genotypes, source or str
        The genotypes (any format ``open_genotypes`` reads).
    rows : numpy.ndarray, optional
        Sample rows (default all).
    variants : numpy.ndarray, optional
        Indices of the model variants (default all).
    min_maf : float
        Variants with a smaller minor-allele frequency are left out (as in ``grm``).
    max_bytes : float
        The most memory the genotypes may take (n m bytes); beyond it an InputError says to thin them.
    chunk : int
        Variants read at a time.

    Returns
    -------
    ImplicitGRM
        K = Z Z' / m with each column's chromosome.
    """
    from .plink import positions
    from .sources import open_genotypes

    g = open_genotypes(geno) if isinstance(geno, str) else geno
    rows = None if rows is None else positions("rows", rows, g.n_samples)
    n = g.n_samples if rows is None else len(rows)
    if n < 2:
        raise InputError(f"an implicit GRM needs at least 2 samples, got {n}")
    idx = np.arange(g.n_variants) if variants is None else positions("variants", variants, g.n_variants)
    if len(idx) == 0:
        raise InputError("variants is empty: give the model variants' indices, or None for all of them")
    if float(n) * len(idx) > max_bytes:
        raise InputError(f"an implicit GRM of {n} samples x {len(idx)} variants holds {n * len(idx) / 1e9:.1f} GB "
                         f"of genotypes (limit {max_bytes / 1e9:.1f} GB): give fewer model variants (LD-pruned, "
                         "as BOLT-LMM's --modelSnps), raise max_bytes, or use the sparse GRM (sparse=)")
    codes = np.empty((len(idx), n), dtype=np.uint8)  # rows past the kept ones are never written (nor paged in)
    centre, scale, kept, k, miss_rows, miss_cols = [], [], [], 0, [], []
    for sel, G, _ in g.chunks(chunk, rows=rows, variants=idx, fill=np.full(len(idx), np.nan)):
        with np.errstate(invalid="ignore"):
            p = np.nanmean(G, axis=0) / 2 if len(G) else np.full(G.shape[1], np.nan)
            keep = np.minimum(p, 1 - p) >= max(min_maf, 1e-12)
        if not keep.any():
            continue
        G, p = G[:, keep], p[keep]
        missing = np.isnan(G)
        G[missing] = 0.0
        # a variant of hard calls keeps them exactly (unit 1); dosages go in steps of 0.01
        unit = np.where((G == np.rint(G)).all(axis=0), 1.0, 0.01)
        mid = 2 * p / unit
        c = np.clip(np.rint(G / unit), 0, 255)
        c = np.where(missing, np.clip(np.rint(mid), 0, 255)[None, :], c)  # a missing call: the code nearest the centre
        codes[k : k + len(p)] = c.T
        i, j = np.nonzero(missing)
        miss_rows.append(j + k)
        miss_cols.append(i)
        centre.append(mid)
        scale.append(unit / np.sqrt(2 * p * (1 - p)))
        kept.append(np.asarray(sel)[keep])
        k += len(p)
    if k == 0:
        raise InputError(f"no variant has minor-allele frequency >= {min_maf}")
    kept = np.concatenate(kept)
    chrom = g.variants["CHR"].to_numpy()[kept] if "CHR" in g.variants else None
    rr, cc = np.concatenate(miss_rows), np.concatenate(miss_cols)
    missing = sp.csr_matrix((np.ones(len(rr)), (rr, cc)), shape=(k, n))
    return ImplicitGRM(None, chrom, codes=codes[:k], centre=np.concatenate(centre), scale=np.concatenate(scale),
                       missing=missing)


def conjugate_gradients(times, B: np.ndarray, diag: np.ndarray | None = None, tol: float = CG_TOL,
                        maxiter: int = 5000) -> np.ndarray:
    """Solve A X = B for a symmetric positive-definite A given by ``times(V) = A V``, all columns in lockstep
    (one product a step for the columns still above ``tol`` x |b|), with a diagonal preconditioner ``diag``.

    Parameters
    ----------
    times : callable
        (V, cols) -> A V for V (n, k) holding columns ``cols`` of B.
    B : numpy.ndarray
        (n,) or (n, k) right-hand sides.
    diag : numpy.ndarray, optional
        A's diagonal (Jacobi preconditioner; None: none).
    tol : float
        Relative residual that ends a column.
    maxiter : int
        Most steps; beyond them ``numpy.linalg.LinAlgError``.

    Returns
    -------
    numpy.ndarray
        X, B's shape.
    """
    B2 = np.asarray(B, dtype=float).reshape(len(B), -1)
    X = np.zeros_like(B2)
    R = B2.copy()
    pre = (lambda V: V / diag[:, None]) if diag is not None else (lambda V: V.copy())  # noqa: E731
    Z = pre(R)
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    goal = tol * np.linalg.norm(B2, axis=0)
    live = np.flatnonzero(np.linalg.norm(R, axis=0) > goal)
    for _ in range(maxiter):
        if live.size == 0:
            return X.reshape(np.shape(B))
        Pl = P[:, live]
        AP = times(Pl, live)
        alpha = rz[live] / np.einsum("ij,ij->j", Pl, AP)
        X[:, live] += alpha * Pl
        Rl = R[:, live] - alpha * AP
        R[:, live] = Rl
        Zl = pre(Rl)
        rz_new = np.einsum("ij,ij->j", Rl, Zl)
        P[:, live] = Zl + (rz_new / rz[live]) * Pl
        rz[live] = rz_new
        live = live[np.linalg.norm(Rl, axis=0) > goal[live]]
    raise np.linalg.LinAlgError(f"conjugate gradients did not converge in {maxiter} steps: is the GRM positive "
                                "semi-definite?")


class ImplicitProjection:
    """P V for Sigma = phi W^-1 + tau K with an implicit K, in the whitened coordinates of the module's note;
    ``PY``, ``KPY`` and ``beta`` of the working response Y at these variances.

    One system (W a vector) serves any number of columns.  Several systems at once (W an (n, s) array, one
    column per system, each with its own weights and with ``exclude[j]``, K's columns left out of system j:
    LOCO) solve column j of a right-hand side in system j, all of them in one product per step.

    Parameters
    ----------
    W : numpy.ndarray
        Working weights, (n,) or (n, s).
    phi, tau : float
        Dispersion and genetic variance.
    K : ImplicitGRM
        The GRM.
    X : numpy.ndarray
        Covariates (n, p).
    Y : numpy.ndarray
        Working response, (n,) or (n, s).
    exclude : list of numpy.ndarray, optional
        Per system, the GRM columns left out.
    also : numpy.ndarray, optional
        (n, k) columns whose P V is solved with Y in the same pass (one system only): ``P_also``.
    """

    def __init__(self, W, phi, tau, K, X, Y, exclude=None, also=None):
        W = np.asarray(W, dtype=float)
        self.W2 = W.reshape(len(W), -1)
        self.systems = self.W2.shape[1]
        self.D = np.sqrt(self.W2 / phi)                                   # (n, s)
        self.Q = np.stack([np.linalg.qr(self.D[:, j : j + 1] * X)[0] for j in range(self.systems)])  # (s, n, p)
        self.tau, self.K, self.X, self.phi = tau, K, X, phi
        self.exclude = exclude
        self.also = also
        if also is not None and self.systems == 1 and np.ndim(Y) == 1:
            both = self.apply(np.column_stack([Y, also]))
            self.PY, self.P_also = both[:, 0].copy(), both[:, 1:]
        else:
            self.PY = self.apply(Y)
            self.P_also = None if also is None else self.apply(also)
        PY2 = self.PY.reshape(len(W), -1)
        self.KPY = K.product(self.PY, exclude).reshape(self.PY.shape)
        # the mixed-model equations' identity Y = X beta + tau K P Y + phi W^-1 P Y gives beta
        rest = np.asarray(Y, dtype=float).reshape(len(W), -1) - tau * self.KPY.reshape(len(W), -1) - phi * PY2 / self.W2
        beta = np.linalg.lstsq(X, rest, rcond=None)[0]
        self.beta = beta[:, 0] if np.ndim(Y) == 1 else beta

    def _cols(self, cols, k):
        return np.zeros(k, dtype=int) if self.systems == 1 else np.asarray(cols)

    def _project(self, V, sys):
        """C V, column i of V in system sys[i]."""
        if self.systems == 1:
            Q = self.Q[0]
            return V - Q @ (Q.T @ V)
        Q = self.Q[sys]                                                 # (k, n, p)
        return V - np.einsum("knp,kp->nk", Q, np.einsum("knp,nk->kp", Q, V))

    def _times(self, U, live):
        # A U = U + tau C D K D C U, U in the range of C
        sys = self._cols(live, U.shape[1])
        D = self.D[:, sys]
        excl = None if self.exclude is None else [self.exclude[j] for j in sys]
        return U + self.tau * self._project(D * self.K.product(D * U, excl), sys)

    def apply(self, V) -> np.ndarray:
        """P V (with several systems: column j of V in system j).

        Parameters
        ----------
        V : numpy.ndarray
            (n,) or (n, k).

        Returns
        -------
        numpy.ndarray
            P V, V's shape.
        """
        V = np.asarray(V, dtype=float)
        V2 = V.reshape(len(V), -1)
        if self.systems > 1 and V2.shape[1] != self.systems:
            raise ValueError(f"{self.systems} systems take {self.systems} columns, got {V2.shape[1]}")
        sys = self._cols(np.arange(V2.shape[1]), V2.shape[1])
        D = self.D[:, sys]
        B = self._project(D * V2, sys)
        if self.tau > 0:
            offset = sys if self.systems > 1 else None
            U = conjugate_gradients(lambda P, live: self._times(P, live if offset is None else offset[live]), B)
        else:
            U = B
        return (D * self._project(U, sys)).reshape(V.shape)
