"""The dense GRM without forming it (BOLT-LMM-inf's way): K = Z Z' / m kept as the standardised genotypes Z.

At biobank n the GRM (n^2 8 bytes: 12.9 GB at 40,000 samples) and its Cholesky (n^3 / 3 flops) are out of
reach, but the model variants' genotypes are not: Z is n m 4 bytes (float32), and a product K V costs two
BLAS products, 4 n m k flops for k columns.  The null model's systems are then solved by conjugate gradients
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

import numpy as np

from ..errors import InputError
from .grm import standardised_columns

#: bytes of float32 genotypes an implicit GRM may hold before it is refused (thin the model variants)
IMPLICIT_MAX_BYTES = 8e9
#: conjugate gradients stop at this residual relative to the right-hand side (the products are float32:
#: relative error ~1e-6, so the answers are accurate to about that; the iteration itself goes below)
CG_TOL = 1e-6


class ImplicitGRM:
    """The standardised GRM K = Z Z' / m held as Z (n x m, float32): ``K @ V``, ``K.diagonal()``, ``K.shape``.

    Parameters
    ----------
    Z : numpy.ndarray
        Standardised genotypes (n samples x m variants), float32.
    chrom : array-like, optional
        The chromosome of each column (for ``without`` and LOCO).
    """

    def __init__(self, Z: np.ndarray, chrom=None):
        self.Z = np.ascontiguousarray(Z, dtype=np.float32)
        self.n, self.m = self.Z.shape
        self.chrom = None if chrom is None else np.asarray(chrom).astype(str)
        if self.chrom is not None and len(self.chrom) != self.m:
            raise InputError(f"chrom has {len(self.chrom)} labels for {self.m} columns")
        self._diag = None

    @property
    def shape(self) -> tuple:
        """(n, n)."""
        return (self.n, self.n)

    @property
    def nbytes(self) -> int:
        """Memory of the genotypes held."""
        return self.Z.nbytes

    def diagonal(self) -> np.ndarray:
        """K's diagonal, sum_j Z_ij^2 / m (float64).

        Returns
        -------
        numpy.ndarray
            The n diagonal entries.
        """
        if self._diag is None:
            self._diag = np.einsum("ij,ij->i", self.Z, self.Z, dtype=np.float64) / self.m
        return self._diag

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
        V2 = V.reshape(self.n, -1)
        T = _times(self.Z.T, V2.astype(np.float32)).astype(np.float64)  # (m, k): 2 n m k flops in float32 BLAS
        scale = np.full(V2.shape[1], float(self.m))
        if exclude is not None:
            for j, idx in enumerate(exclude):  # one loop step per right-hand side, not per sample or variant
                if idx is not None and len(idx):
                    T[idx, j] = 0.0
                    scale[j] = self.m - len(idx)
        out = _times(self.Z, (T / scale).astype(np.float32)).astype(np.float64)
        return out.reshape(V.shape)

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
        return _Without(self, self.columns_of(chrom))


#: up to this many columns a product is one matrix-vector product per column: OpenBLAS's sgemm with 2-4
#: columns took 2-4 times as long as as many sgemv calls (10,000 x 20,000 float32: sgemv 0.02 s, sgemm with 2
#: columns 0.09 s, with 31 columns 0.18 s)
GEMV_MAX_COLUMNS = 4


def _times(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A B, column by column when B has few columns."""
    if 1 < B.shape[1] <= GEMV_MAX_COLUMNS:
        return np.column_stack([A @ B[:, j] for j in range(B.shape[1])])
    return A @ B


class _Without(ImplicitGRM):
    """An ImplicitGRM's view without some of its columns."""

    def __init__(self, parent: ImplicitGRM, idx: np.ndarray):
        self.Z, self.n, self.chrom, self._parent, self._idx = parent.Z, parent.n, parent.chrom, parent, idx
        self.m = parent.m - len(idx)
        if self.m <= 0:
            raise InputError("leaving these variants out leaves no variant in the GRM")
        self._diag = None

    def diagonal(self) -> np.ndarray:
        if self._diag is None:
            Zc = self.Z[:, self._idx]
            full = self._parent.diagonal() * self._parent.m
            self._diag = (full - np.einsum("ij,ij->i", Zc, Zc, dtype=np.float64)) / self.m
        return self._diag

    def product(self, V, exclude=None) -> np.ndarray:
        V = np.asarray(V)
        k = 1 if V.ndim == 1 else V.shape[1]
        if exclude is None:
            exclude = [self._idx] * k
        else:
            exclude = [self._idx if e is None else np.union1d(self._idx, e) for e in exclude]
        return self._parent.product(V, exclude)

    def without(self, chrom: str) -> "ImplicitGRM":
        return _Without(self._parent, np.union1d(self._idx, self._parent.columns_of(chrom)))


def implicit_grm(geno, rows: np.ndarray | None = None, variants: np.ndarray | None = None, min_maf: float = 0.01,
                 max_bytes: float = IMPLICIT_MAX_BYTES) -> ImplicitGRM:
    """The standardised GRM of ``variants`` (default all) kept implicit: their genotypes in memory.

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
        The most memory the genotypes may take (n m 4 bytes); beyond it an InputError says to thin them.

    Returns
    -------
    ImplicitGRM
        K = Z Z' / m with each column's chromosome.
    """
    from .sources import open_genotypes

    g = open_genotypes(geno) if isinstance(geno, str) else geno
    n = g.n_samples if rows is None else len(rows)
    m = g.n_variants if variants is None else len(variants)
    if 4.0 * n * m > max_bytes:
        raise InputError(f"an implicit GRM of {n} samples x {m} variants holds {4.0 * n * m / 1e9:.1f} GB of "
                         f"genotypes (limit {max_bytes / 1e9:.1f} GB): give fewer model variants (LD-pruned, as "
                         "BOLT-LMM's --modelSnps), raise max_bytes, or use the sparse GRM (sparse=)")
    Z, kept = standardised_columns(g, rows, variants, min_maf, return_kept=True)
    chrom = g.variants["CHR"].to_numpy()[kept] if "CHR" in g.variants else None
    return ImplicitGRM(Z, chrom)


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
