"""Genomic relationship matrices: the standardised GRM in blocks, GCTA's binary format, a sparse GRM.

    K = W W' / m,   W_ij = (g_ij - 2 p_j) / sqrt(2 p_j (1 - p_j))

over the m polymorphic variants (p_j the A1 frequency among the kept samples), accumulated chunk by
chunk with one BLAS syrk per chunk (one triangle: half a general product's flops), so memory is the n x n
sum (float64), an n x n float32 buffer for the single-precision products, and one chunk.

The sparse GRM (fastGWA's: off-diagonal entries below a threshold set to 0) is built without the n x n
matrix: ``sparse_grm`` forms K by strips of rows, K[r, r0:] for a block r = r0..r1-1, thresholds each strip
and keeps only what survives, so memory is one strip (``memory`` bytes) and the nonzeros; the genotypes
are streamed once per strip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import blas

from ..progress import progress
from .plink import Genotypes
from .sources import open_genotypes
from ..checks import check_choice, check_int, check_real
from ..errors import InputError
from ..output import atomic_paths
from ..readers import read_text_table, require_file
from .plink import check_unique_ids


def grm(geno: Genotypes | str, rows: np.ndarray | None = None, variants: np.ndarray | None = None,
        chunk: int = 5000, min_maf: float = 0.01, progress_bar: bool = True,
        precision: str = "single") -> tuple[np.ndarray, int]:
    """(K, m): the standardised GRM of the sample ``rows`` (default all) over ``variants`` (default all)
    with minor-allele frequency at least ``min_maf``.

    ``precision="single"`` (default) forms each chunk's product in float32 -- three times faster with
    OpenBLAS -- and adds it to the float64 sum, so entries are accurate to ~1e-6 (GCTA's binary GRM stores
    float32; the sampling noise of an entry is ~1/sqrt(m)); ``"double"`` does it all in float64.

    Parameters
    ----------
    geno : Genotypes or str
        The genotypes or their .bed prefix.
    rows : numpy.ndarray, optional
        Sample rows (indices into .fam).
    variants : numpy.ndarray, optional
        Variant indices.
    chunk : int
        Variants per product.
    min_maf : float
        Variants with a smaller minor-allele frequency are left out.
    progress_bar : bool
        Show a progress bar.
    precision : {"single", "double"}
        The chunk products' precision.

    Returns
    -------
    tuple
        (K, m): the n x n GRM and the number of variants used.
    """
    check_choice("precision", precision, ("single", "double"))
    chunk = check_int("chunk", chunk, 1)
    check_real("min_maf", min_maf, 0, 0.5, open_hi=True)
    g = open_genotypes(geno)
    n = g.n_samples if rows is None else len(rows)
    Kf = np.zeros((n, n), order="F")  # BLAS fills its upper triangle
    single = precision == "single"
    buf = np.zeros((n, n), dtype=np.float32, order="F") if single else None
    m = 0
    nv = g.n_variants if variants is None else len(variants)
    for _, G, _ in progress(g.chunks(chunk, rows=rows, variants=variants), total=-(-nv // chunk), desc="GRM",
                            enable=progress_bar):
        W = _standardise(G, min_maf)
        if W.shape[1] == 0:
            continue
        # Kf += W W' (upper triangle), W passed in the layout it has (no copy)
        if single:
            W = W.astype(np.float32, order="K")
            buf = (blas.ssyrk(1.0, W, beta=0.0, c=buf, overwrite_c=1) if W.flags.f_contiguous else
                   blas.ssyrk(1.0, W.T, beta=0.0, c=buf, trans=1, overwrite_c=1))
            Kf += buf  # its lower triangle stays 0
        else:
            Kf = (blas.dsyrk(1.0, W, beta=1.0, c=Kf, overwrite_c=1) if W.flags.f_contiguous else
                  blas.dsyrk(1.0, W.T, beta=1.0, c=Kf, trans=1, overwrite_c=1))
        m += W.shape[1]
    if m == 0:
        raise InputError("no polymorphic variants: the GRM is undefined")
    K = Kf.T  # C order; its lower triangle holds the sums
    for i0 in range(0, n, 1024):  # mirror by row blocks (not n x n of temporaries)
        i1 = min(i0 + 1024, n)
        K[i0:i1, i1:] = K[i1:, i0:i1].T
        blk = K[i0:i1, i0:i1]
        blk[np.triu_indices(i1 - i0, 1)] = blk.T[np.triu_indices(i1 - i0, 1)]
    K /= m
    return K, m


def _standardise(G: np.ndarray, min_maf: float, p: np.ndarray | None = None) -> np.ndarray:
    """The chunk's columns with minor-allele frequency >= ``min_maf``, centred and scaled: W above, with the
    A1 frequencies ``p`` (default: G's own)."""
    p = G.mean(axis=0) / 2 if p is None else p
    keep = np.minimum(p, 1 - p) >= max(min_maf, 1e-12)
    return (G[:, keep] - 2 * p[keep]) / np.sqrt(2 * p[keep] * (1 - p[keep]))


def standardised_columns(g, rows, variants, min_maf: float, max_columns: int | None = None,
                         chunk: int = 1000, return_kept: bool = False):
    """W of the module's note as an (n, m) float32 array held in memory, filled chunk by chunk in place (the
    only n x m array is the result): the kept columns (minor-allele frequency >= ``min_maf``) of ``variants``,
    at most ``max_columns`` of them (reading stops there).

    Parameters
    ----------
    g : Genotypes or source
        Open genotypes.
    rows, variants : numpy.ndarray or None
        Sample rows and variant indices (None: all).
    min_maf : float
        The frequency filter.
    max_columns : int, optional
        Most columns kept.
    chunk : int
        Variants read at a time.
    return_kept : bool
        Also return the indices of the variants kept (W's columns, in order).

    Returns
    -------
    numpy.ndarray or tuple
        (n, k) float32, k the columns kept (and their variant indices with ``return_kept``); InputError when
        none is.
    """
    n = g.n_samples if rows is None else len(rows)
    total = g.n_variants if variants is None else len(variants)
    W = np.empty((n, total if max_columns is None else min(max_columns, total)), dtype=np.float32)
    k = 0
    kept = []
    for sel, G, _ in g.chunks(chunk, rows=rows, variants=variants):
        p = G.mean(axis=0) / 2
        Z = _standardise(G, min_maf, p)
        del G
        use = min(Z.shape[1], W.shape[1] - k)
        W[:, k : k + use] = Z[:, :use]
        kept.append(np.asarray(sel)[np.minimum(p, 1 - p) >= max(min_maf, 1e-12)][:use])
        k += use
        if k >= W.shape[1]:
            break
    if k == 0:
        raise InputError(f"no variant has minor-allele frequency >= {min_maf}")
    W = W if k == W.shape[1] else np.ascontiguousarray(W[:, :k])
    return (W, np.concatenate(kept)) if return_kept else W


def sparse_grm(geno: Genotypes | str, threshold: float = 0.05, rows: np.ndarray | None = None,
               variants: np.ndarray | None = None, chunk: int | None = None, min_maf: float = 0.01,
               memory: float = 2e9, progress_bar: bool = True, precision: str = "single") -> tuple[sp.csr_matrix, int]:
    """(K_sparse, m): ``threshold_grm(grm(...)[0], threshold)`` without ever holding the n x n GRM.

    Rows are taken in strips of b = ``memory`` / (12 n) samples (a float64 strip and a float32 buffer);
    for each strip the genotypes of its rows and those after it are streamed and K[r0:r1, r0:] accumulated
    -- the diagonal block by BLAS syrk, the rest by gemm, in float32 chunk products added to a float64 sum
    (all float64 with ``precision="double"``) -- divided by m, thresholded (|K_ij| >= ``threshold`` off the
    diagonal) and kept as triplets; the lower triangle is the mirror.  The first pass reads every sample and
    keeps each variant's mean (its frequency, and the value of a missing call); the later passes read only
    the rows they need.  Cost: the dense GRM's flops (one triangle) and n / b passes over the genotypes;
    memory: one strip, one chunk (``chunk`` variants, default sized to ``memory`` / 4) and the nonzeros.

    Parameters
    ----------
    geno : Genotypes or str
        The genotypes or their .bed prefix.
    threshold : float
        Off-diagonal entries with |K_ij| below it are dropped (positive).
    rows, variants : numpy.ndarray, optional
        Sample rows and variant indices.
    chunk : int, optional
        Variants per product (default from ``memory``).
    min_maf : float
        Minor-allele-frequency filter.
    memory : float
        The strip budget in bytes.
    progress_bar : bool
        Show a progress bar.
    precision : {"single", "double"}
        The chunk products' precision.

    Returns
    -------
    tuple
        (K_sparse as CSR, m variants used).
    """
    check_choice("precision", precision, ("single", "double"))
    check_real("threshold", threshold, 0, None, open_lo=True)
    check_real("memory", memory, 0, None, open_lo=True)
    check_real("min_maf", min_maf, 0, 0.5, open_hi=True)
    if chunk is not None:
        chunk = check_int("chunk", chunk, 1)
    g = open_genotypes(geno)
    sample_rows = np.arange(g.n_samples) if rows is None else np.asarray(rows)
    n = len(sample_rows)
    b = int(min(n, max(64, memory // (12 * n))))
    chunk = chunk or int(np.clip(memory / 4 // (28 * n), 256, 5000))  # G, W, their float32 copy
    strips = [(r0, min(r0 + b, n)) for r0 in range(0, n, b)]
    nv = g.n_variants if variants is None else len(variants)
    ticks = iter(progress(range(len(strips) * -(-nv // chunk)), desc="sparse GRM", enable=progress_bar))
    means = None  # each variant's mean over all samples, from the first pass
    ii, jj, vv = [], [], []
    for r0, r1 in strips:
        reads = g.chunks(chunk, rows=sample_rows[r0:], variants=variants, fill=means)
        on, off, m, means = _strip_sums(reads, r1 - r0, means, min_maf, precision, lambda: next(ticks, None))
        i, j = np.nonzero(np.triu(_beyond(on, threshold), 1))
        k, l = np.nonzero(_beyond(off, threshold))
        diag = np.arange(r1 - r0)
        ii += [i + r0, k + r0, diag + r0]
        jj += [j + r0, l + r1, diag + r0]
        vv += [on[i, j], off[k, l], on[diag, diag]]
        del on, off  # before the next strip's are made
    for _ in ticks:  # close the bar
        pass
    i, j, v = (np.concatenate(a) for a in (ii, jj, vv))
    lower = i != j  # the mirror of the strict upper triangle
    K = sp.coo_matrix((np.concatenate([v, v[lower]]), (np.concatenate([i, j[lower]]), np.concatenate([j, i[lower]]))),
                      shape=(n, n)).tocsr()
    K.sort_indices()
    return K, m


def pattern_grm(geno, I: np.ndarray, J: np.ndarray, rows: np.ndarray | None = None,
                variants: np.ndarray | None = None, min_maf: float = 0.01, budget: float = 5e7) -> tuple[np.ndarray, int]:
    """The GRM's entries at given pairs only: K_ij = sum_k w_ik w_jk / m for (I, J), with the standardisation
    of ``grm`` over ``variants``.  Cost: (pairs) x m multiply-adds and one pass over the genotypes, against
    n^2 m / 2 for the whole GRM: a sparse GRM's pattern (its leave-one-chromosome-out versions) at the cost
    of its nonzeros.

    Parameters
    ----------
    geno : Genotypes, source or str
        The genotypes.
    I, J : numpy.ndarray
        The pairs (positions among ``rows``).
    rows, variants : numpy.ndarray, optional
        Sample rows and variant indices.
    min_maf : float
        Minor-allele-frequency filter (as ``grm``).
    budget : float
        Floats per block of pair products (sets the variants per chunk).

    Returns
    -------
    tuple
        (values at the pairs, m variants used).
    """
    g = open_genotypes(geno)
    I, J = np.asarray(I, dtype=np.int64), np.asarray(J, dtype=np.int64)
    vals = np.zeros(len(I))
    chunk = int(np.clip(budget // max(len(I), 1), 16, 5000))
    m = 0
    for _, G, _ in g.chunks(chunk, rows=rows, variants=variants):
        W = _standardise(G, min_maf).astype(np.float32)
        if W.shape[1] == 0:
            continue
        vals += np.einsum("ij,ij->i", W[I], W[J], dtype=np.float64)
        m += W.shape[1]
    if m == 0:
        raise InputError("no polymorphic variants: the GRM is undefined")
    return vals / m, m


def _beyond(A: np.ndarray, t: float) -> np.ndarray:
    """|A| >= t without a float temporary the size of A."""
    out = A >= t
    out |= A <= -t
    return out


def _strip_sums(reads, b: int, means: np.ndarray | None, min_maf: float, precision: str, tick):
    """(K[strip, strip] upper triangle, K[strip, after the strip], m, means) for a strip of b rows, from
    ``reads``: chunks of the strip's rows and every row after it (every sample on the first pass, which
    returns the variants' means for the later ones)."""
    dtype = np.float32 if precision == "single" else np.float64
    syrk = blas.ssyrk if precision == "single" else blas.dsyrk
    on = on_buf = off = off_buf = None
    m, pos, seen = 0, 0, []
    for sel, G, _ in reads:
        tick()
        if on is None:
            rest = G.shape[0] - b
            on = np.zeros((b, b), order="F")        # float64 sums; syrk fills the upper triangle
            on_buf = np.zeros((b, b), dtype=dtype, order="F")  # each chunk's products (reused)
            off, off_buf = np.zeros((b, rest)), np.empty((b, rest), dtype=dtype)
        if means is None:  # the first pass reads every sample
            mu = G.mean(axis=0)
            seen.append(mu)
        else:
            mu = means[pos : pos + len(sel)]
        pos += len(sel)
        W = _standardise(G, min_maf, mu / 2).astype(dtype, copy=False)
        if W.shape[1] == 0:
            continue
        Wr = W[:b]
        on_buf = (syrk(1.0, Wr, beta=0.0, c=on_buf, overwrite_c=1) if Wr.flags.f_contiguous else
                  syrk(1.0, Wr.T, beta=0.0, c=on_buf, trans=1, overwrite_c=1))
        on += on_buf
        if off.shape[1]:
            np.matmul(Wr, W[b:].T, out=off_buf)
            off += off_buf
        m += W.shape[1]
    if m == 0:
        raise InputError("no polymorphic variants: the GRM is undefined")
    on /= m
    off /= m
    return on, off, m, (np.concatenate(seen) if means is None else means)


def check_psd(K: np.ndarray, tol: float = 1e-4) -> None:
    """Refuse a GRM that is not symmetric positive semi-definite (to ``tol`` relative): a Cholesky factorisation
    of K + tol * mean(diag K) I (a third of an eigendecomposition's cost); the eigenvalues only for the message.
    A standardised GRM is singular by construction (centred variants: K 1 = 0), and float32 -- GCTA's files,
    ``grm``'s single-precision products -- moves that zero eigenvalue by ~1e-6 either way; ``tol`` lets such
    rounding through and still stops a matrix of the wrong samples.

    Parameters
    ----------
    K : numpy.ndarray
        The GRM.
    tol : float
        Relative tolerance.
    """
    import scipy.linalg as sla

    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise InputError(f"the GRM must be square; it is {K.shape}")
    if not np.allclose(K[:: max(1, len(K) // 200)], K.T[:: max(1, len(K) // 200)], atol=1e-8):
        raise InputError("the GRM is not symmetric")
    jitter = tol * max(float(np.mean(np.diag(K))), 1e-12)
    try:
        sla.cho_factor(K + jitter * np.eye(len(K)), lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        w = np.linalg.eigvalsh(K) if len(K) <= 5000 else None
        detail = f": smallest eigenvalue {w[0]:.3g} (largest {w[-1]:.3g})" if w is not None else ""
        raise InputError(f"the GRM is not positive semi-definite{detail}; was it computed from the same "
                         "samples?") from None


def threshold_grm(K: np.ndarray, threshold: float = 0.05) -> sp.csr_matrix:
    """fastGWA's sparse GRM: entries below ``threshold`` off the diagonal set to zero.

    Parameters
    ----------
    K : numpy.ndarray
        A square GRM.
    threshold : float
        Entries with |K_ij| below it (off the diagonal) become 0.

    Returns
    -------
    scipy.sparse.csr_matrix
        The thresholded GRM.
    """
    K = np.asarray(K, dtype=float)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise InputError(f"a GRM must be square; this one has shape {K.shape}")
    check_real("threshold", threshold, 0, None, open_lo=True)
    keep = np.abs(K) >= threshold
    np.fill_diagonal(keep, True)
    return sp.csr_matrix(np.where(keep, K, 0.0))


# ---- GCTA's binary format -------------------------------------------------------------------------
def write_gcta(prefix, K: np.ndarray, ids: pd.DataFrame, m: int | np.ndarray) -> None:
    """``prefix.grm.bin`` (lower triangle with diagonal, row by row, float32), ``prefix.grm.N.bin`` (variants
    used per pair, float32) and ``prefix.grm.id`` (FID IID, tab-separated).

    Every file is written atomically.

    Parameters
    ----------
    prefix : str or path-like
        The files' prefix.
    K : numpy.ndarray
        The GRM.
    ids : pandas.DataFrame
        FID and IID of its rows.
    m : int or numpy.ndarray
        Variants used (per pair, or one number).
    """
    prefix = str(prefix)
    n = K.shape[0]
    il = np.tril_indices(n)
    with atomic_paths([prefix + ".grm.bin", prefix + ".grm.N.bin", prefix + ".grm.id"]) as (kb, nb, idf):
        K[il].astype(np.float32).tofile(kb)
        N = (np.broadcast_to(np.asarray(m, dtype=np.float32), K.shape)[il] if np.ndim(m)
             else np.full(len(il[0]), m, np.float32))
        np.asarray(N, dtype=np.float32).tofile(nb)
        ids[["FID", "IID"]].to_csv(idf, sep="\t", header=False, index=False)


def read_gcta(prefix) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """(K, ids, N) from GCTA's binary GRM files.

    Parameters
    ----------
    prefix : str or path-like
        The prefix of ``.grm.bin``, ``.grm.N.bin`` and ``.grm.id``.

    Returns
    -------
    tuple
        (K, ids with FID and IID, N variants per pair); FileFormatError for a damaged set.
    """
    prefix = str(prefix)
    require_file(prefix + ".grm.bin", "GCTA GRM")
    ids = read_text_table(prefix + ".grm.id", "GCTA GRM id file", sep=r"\s+", header=None, dtype=str, usecols=[0, 1])
    ids.columns = ["FID", "IID"]
    check_unique_ids(ids, prefix + ".grm.id")
    n = len(ids)
    vals = np.fromfile(prefix + ".grm.bin", dtype=np.float32)
    if len(vals) != n * (n + 1) // 2:
        raise InputError(f"{prefix}.grm.bin holds {len(vals)} values; {n} samples need {n * (n + 1) // 2}")
    K = np.zeros((n, n))
    il = np.tril_indices(n)
    K[il] = vals
    K = K + np.tril(K, -1).T
    N = np.fromfile(prefix + ".grm.N.bin", dtype=np.float32) if Path(prefix + ".grm.N.bin").exists() else None
    return K, ids, N
