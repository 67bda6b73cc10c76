"""The sparse GRM by screening its pairs first: a sketch on a few variants finds the candidate pairs, and the
GRM is computed over every variant at those pairs only (SAIGE's createSparseGRM takes the sketch alone).

The exact sparse GRM (``sparse_grm``) costs the dense GRM's flops, n^2 m / 2.  Here:

1. The sketch: k variants spread evenly over the genome (minor-allele frequency >= ``sketch_maf``, where
   the products of standardised genotypes are close to Gaussian), their standardised genotypes W_s held in
   float32 (n x k), and K_s = W_s W_s' / k formed by strips of rows by BLAS and thresholded at the cut
   c = threshold - z / sqrt(k): for a pair whose GRM over all variants is K_ij, K_s,ij is about
   N(K_ij, 1 / k) (unlinked variants), so a pair at the threshold is kept with probability Phi(z)
   (0.9987 at z = 3) and one above it with more.  n^2 k / 2 multiply-adds.
2. The exact values at the candidates (``pattern_grm`` over every variant): (candidates) x m.  Those with
   |K_ij| >= threshold are the sparse GRM.

k is chosen (``k="auto"``) so that a pair of unrelated samples passes the cut with probability about
2 / n -- about one false candidate per sample.  Without population structure that is
k = ((z + z_fp) / threshold)^2 with z_fp = Phi^-1(1 - 2 / n): at threshold 0.05, 17,000 variants for 10,000
samples and 20,000 for 100,000; at 0.125 (the third-degree relatives SAIGE keeps), 2,700-3,200.  Structure
raises the GRM of unrelated pairs from one population above 0: a pilot on 50,000 random pairs of that first
sketch measures the unrelated pairs' centre mu (median) and their spread beyond the sketch's noise,
s^2 = (1.4826 MAD)^2 - 1 / k (robust: the few relatives among random pairs do not count as structure),
and k is raised until threshold - z / sqrt(k) - mu >= z_fp sqrt(s^2 + 1 / k).  Where no k up to ``max_k``
does it, the exact strips (``sparse_grm``) are used and the report says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm

from ..checks import check_int, check_real
from ..errors import InputError
from ..progress import progress
from .grm import _beyond, pattern_grm, sparse_grm, standardised_columns
from .sources import open_genotypes

#: below this many samples the exact strips are cheap enough: "auto" does not screen
SCREEN_MIN_SAMPLES = 20_000
#: screening pays when the sketch is at most this share of the variants (its GEMM on a matrix in memory
#: against the exact strips re-reading the genotypes)
SCREEN_MAX_SHARE = 0.5
#: _structured_size's answer where no sketch will do
NO_SKETCH = 10**9
#: the sketch is held in memory (float32) up to this many bytes; beyond, its strips are streamed from the file
SKETCH_MEMORY = 6e9


@dataclass
class ScreenReport:
    """What the screen did: sizes, the cut, the candidates and the time of each stage."""

    n: int
    threshold: float
    k: int            # sketch variants used (after the frequency filter)
    cut: float        # the sketch's threshold
    candidates: int   # off-diagonal pairs (i < j) the sketch kept
    kept: int         # of them, pairs with |K_ij| >= threshold over every variant
    m: int            # variants of the exact values
    seconds_sketch: float
    seconds_exact: float
    screened: bool = True
    note: str = ""
    adjusted: int = 0  # covariate columns (ancestry PCs) projected out of the sketch (spread ones only)

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict.

        Returns
        -------
        dict
            The fields.
        """
        return {k: (v if isinstance(v, (bool, str)) else None if isinstance(v, float) and not np.isfinite(v)
                    else float(v) if isinstance(v, float) else int(v)) for k, v in self.__dict__.items()}


def sketch_size(n: int, threshold: float, z: float = 3.0) -> int:
    """Sketch variants for about one false candidate per sample: ((z + Phi^-1(1 - 2 / n)) / threshold)^2.

    Parameters
    ----------
    n : int
        Samples.
    threshold : float
        The sparse GRM's threshold.
    z : float
        Recall at the threshold: Phi(z).

    Returns
    -------
    int
        k.
    """
    z_fp = float(norm.isf(2.0 / max(n, 3)))
    return int(np.ceil(((z + z_fp) / threshold) ** 2))


def screened_sparse_grm(geno, threshold: float = 0.05, rows: np.ndarray | None = None,
                        variants: np.ndarray | None = None, k: int | str = "auto", z: float = 3.0,
                        min_maf: float = 0.01, sketch_maf: float = 0.05, memory: float = 2e9,
                        max_k: int | None = None, adjust: np.ndarray | None = None,
                        progress_bar: bool = True) -> tuple[sp.csr_matrix, int, ScreenReport]:
    """The sparse GRM (|K_ij| >= ``threshold`` off the diagonal, the whole diagonal) from screened pairs.

    ``adjust`` (n x q, e.g. the top principal components, or a model's covariates): projected out of the
    sketch, W <- (I - Q Q') W with Q an orthonormal basis of its columns, so that the sketch measures
    relatedness beyond ancestry: unrelated pairs of one population then sit at 0 instead of at about
    Fst, and a sketch of a few thousand variants separates the threshold from them (without it, two
    populations at Fst 0.02 leave only the exact strips).  The kept values are still the GRM's own (the
    exact values at the candidates); what the adjusted screen does not propose are pairs above the
    threshold through ancestry alone (unrelated pairs of one population plus noise), not relatives.  A column
    concentrated on a few samples (a large family's own eigenvector among the top PCs) is not projected out
    (``_basis``): it would erase that family's relatedness from the sketch.

    Parameters
    ----------
    geno : Genotypes, source or str
        The genotypes.
    threshold : float
        The sparse GRM's threshold (positive).
    rows, variants : numpy.ndarray, optional
        Sample rows and variant indices (of the GRM).
    k : int or "auto"
        Sketch variants (``"auto"``: ``sketch_size``; at most the variants there are).
    z : float
        The cut's distance below the threshold in sketch standard errors, 1 / sqrt(k).
    min_maf : float
        The GRM's minor-allele-frequency filter (as ``grm``).
    sketch_maf : float
        The sketch's.
    memory : float
        The strips' budget in bytes.
    max_k : int, optional
        The largest sketch worth screening with (default: every variant); beyond it, the exact strips.
    adjust : numpy.ndarray, optional
        (n, q) columns projected out of the sketch (module text above).
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    tuple
        (K_sparse as CSR, m variants, ScreenReport).
    """
    check_real("threshold", threshold, 0, None, open_lo=True)
    check_real("z", z, 0, None)
    g = open_genotypes(geno)
    sample_rows = np.arange(g.n_samples) if rows is None else np.asarray(rows)
    n = len(sample_rows)
    var_idx = np.arange(g.n_variants) if variants is None else np.asarray(variants)
    auto = isinstance(k, str)
    if auto and k != "auto":
        raise InputError(f"k must be a number of variants or 'auto', got {k!r}")
    want = sketch_size(n, threshold, z) if auto else int(k)
    if want < 1 or threshold - z / np.sqrt(want) <= 0:
        raise InputError(f"k = {want} sketch variants cannot screen at threshold {threshold}: the cut "
                         f"threshold - z / sqrt(k) must be positive, so k > (z / threshold)^2 = "
                         f"{(z / threshold) ** 2:.0f} ('auto' chooses {sketch_size(n, threshold, z)})")
    max_k = int(max_k if max_k is not None else len(var_idx))
    Q = _basis(adjust, n)
    t0 = time.perf_counter()
    W = None
    if auto:
        W = _sketch(g, sample_rows, var_idx, min(want, max_k), sketch_maf, Q)
        want = _structured_size(W, n, threshold, z)
    if want > max_k or n * want * 4 > SKETCH_MEMORY:
        why = ("no sketch separates the threshold from the unrelated pairs' GRM (population structure)"
               if want >= NO_SKETCH else
               f"the sketch would need {want:,} variants (more than {max_k:,})" if want > max_k else
               f"a sketch of {want:,} variants x {n:,} samples does not fit in {SKETCH_MEMORY / 1e9:.0f} GB")
        del W
        K, m = sparse_grm(g, threshold, rows=sample_rows, variants=variants, min_maf=min_maf, memory=memory,
                          progress_bar=progress_bar)
        t = time.perf_counter() - t0
        return K, m, ScreenReport(n, float(threshold), 0, float("nan"), 0, int((K.nnz - n) // 2), int(m), 0.0, t,
                                  screened=False, note=f"exact strips: {why}", adjusted=0 if Q is None else Q.shape[1])
    if W is None or W.shape[1] < want:
        del W  # before the larger sketch is read
        W = _sketch(g, sample_rows, var_idx, want, sketch_maf, Q)
    k_used = W.shape[1]
    cut = threshold - z / np.sqrt(k_used)
    I, J = _candidate_pairs(W, cut, memory, progress_bar)
    del W
    t_sketch = time.perf_counter() - t0
    t0 = time.perf_counter()
    diag = np.arange(n, dtype=np.int64)
    vals, m = pattern_grm(g, np.concatenate([I, diag]), np.concatenate([J, diag]), rows=sample_rows,
                          variants=variants, min_maf=min_maf)
    off, d = vals[: len(I)], vals[len(I):]
    keep = np.abs(off) >= threshold
    i, j, v = I[keep], J[keep], off[keep]
    K = sp.coo_matrix((np.concatenate([v, v, d]), (np.concatenate([i, j, diag]), np.concatenate([j, i, diag]))),
                      shape=(n, n)).tocsr()
    K.sort_indices()
    t_exact = time.perf_counter() - t0
    return K, m, ScreenReport(n, float(threshold), int(k_used), float(cut), int(len(I)), int(keep.sum()), int(m),
                              float(t_sketch), float(t_exact), adjusted=0 if Q is None else Q.shape[1])


def build_sparse_grm(geno, threshold: float, rows: np.ndarray | None = None, screen: int | str | None = "auto",
                     variants: np.ndarray | None = None, adjust: np.ndarray | None = None, min_maf: float = 0.01, memory: float = 2e9, chunk: int | None = None,
                     progress_bar: bool = True) -> tuple[sp.csr_matrix, int, ScreenReport | None]:
    """The sparse GRM the way ``gwas.null`` and ``glmmkit gwas grm --sparse-only`` build it: screened
    (``screened_sparse_grm``) or by the exact strips (``sparse_grm``).

    Parameters
    ----------
    geno : Genotypes, source or str
        The genotypes.
    threshold : float
        The sparse GRM's threshold.
    rows : numpy.ndarray, optional
        Sample rows.
    screen : int, "auto" or None
        k sketch variants; "auto": screened above ``SCREEN_MIN_SAMPLES`` samples when a sketch of at most
        ``SCREEN_MAX_SHARE`` of the variants will do (else the exact strips); None: the exact strips.
    variants : numpy.ndarray, optional
        Indices of the variants the GRM is built from (default: all).
    adjust : numpy.ndarray, optional
        Columns (ancestry PCs, covariates) projected out of the screen's sketch (``screened_sparse_grm``).
    min_maf : float
        The GRM's minor-allele-frequency filter.
    memory : float
        The strips' budget in bytes.
    chunk : int, optional
        Variants per product of the exact strips.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    tuple
        (K_sparse, m, ScreenReport or None where the exact strips were used without a screen).
    """
    g = open_genotypes(geno)
    n = g.n_samples if rows is None else len(rows)
    if isinstance(screen, str) and screen != "auto":
        raise InputError(f"screen must be a number of sketch variants, 'auto' or None, got {screen!r}")
    if screen is None or (screen == "auto" and n <= SCREEN_MIN_SAMPLES):
        K, m = sparse_grm(g, threshold, rows=rows, variants=variants, chunk=chunk, min_maf=min_maf, memory=memory,
                          progress_bar=progress_bar)
        return K, m, None
    k = "auto" if screen == "auto" else check_int("screen", screen, 1)
    n_var = g.n_variants if variants is None else len(variants)
    return screened_sparse_grm(g, threshold, rows=rows, variants=variants, k=k, adjust=adjust, min_maf=min_maf,
                               memory=memory,
                               max_k=int(SCREEN_MAX_SHARE * n_var) if k == "auto" else None,
                               progress_bar=progress_bar)


def _basis(adjust, n: int) -> np.ndarray | None:
    """An orthonormal float32 basis of ``adjust``'s spread columns (None without any).  A column concentrated
    on a few samples -- participation ratio (sum a^2)^2 / sum a^4 below n / 10, as the top "PCs" of a cohort
    with large families often are (a family's own eigenvector) -- is left out: projecting it out would erase
    that family's relatedness from the sketch.  Ancestry components, an intercept, sex or age are spread."""
    if adjust is None:
        return None
    A = np.asarray(adjust, dtype=float)
    A = A[:, None] if A.ndim == 1 else A
    if A.shape[0] != n or not np.all(np.isfinite(A)):
        raise InputError(f"adjust must be finite and have one row per sample ({n}), got shape {A.shape}")
    sq = A * A
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = sq.sum(axis=0) ** 2 / (sq * sq).sum(axis=0)
    A = A[:, np.nan_to_num(spread) >= 0.1 * n]
    if A.shape[1] == 0:
        return None
    U, sv, _ = np.linalg.svd(A, full_matrices=False)
    return np.ascontiguousarray(U[:, sv > 1e-10 * max(sv.max(initial=0.0), 1e-300)], dtype=np.float32)


def _sketch(g, rows, var_idx, want: int, sketch_maf: float, Q: np.ndarray | None = None) -> np.ndarray:
    """(n, k) float32 standardised genotypes of about ``want`` variants evenly spaced over ``var_idx``, scaled by
    1 / sqrt(k) so that W W' is the sketch GRM (a fifth more are read for those the frequency filter drops).
    Filled in place: the only n x k array is the result."""
    take = min(len(var_idx), int(np.ceil(want * 1.2)))
    sketch = var_idx[np.unique(np.linspace(0, len(var_idx) - 1, take).round().astype(int))]
    try:
        W = standardised_columns(g, rows, sketch, sketch_maf, max_columns=want)
    except InputError:
        raise InputError(f"no sketch variant has minor-allele frequency >= {sketch_maf}: the screen is "
                         "undefined") from None
    if Q is not None:  # W <- (I - Q Q') W, by column blocks (no second n x k array)
        for c in range(0, W.shape[1], 1024):
            blk = W[:, c : c + 1024]
            blk -= Q @ (Q.T @ blk)
    W /= np.float32(np.sqrt(W.shape[1]))
    return W


def _structured_size(W: np.ndarray, n: int, threshold: float, z: float, pairs: int = 50_000,
                     seed: int = 20220) -> int:
    """The sketch size for about one false candidate per sample, given the unrelated pairs' mean and spread
    measured on random pairs of the sketch W (a huge number where no size will do)."""
    rng = np.random.default_rng(seed)
    I, J = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
    I, J = I[I != J], J[I != J]
    step = max(1, int(2e7 // W.shape[1]))  # pairs per gather: two (step, k) float32 blocks
    x = np.concatenate([np.einsum("ij,ij->i", W[I[a : a + step]], W[J[a : a + step]], dtype=np.float64)
                        for a in range(0, len(I), step)])
    k0 = W.shape[1]
    # robust centre and spread (median, MAD): the few relatives among random pairs must not count as structure
    mu = float(np.median(x))
    s2 = max((1.4826 * float(np.median(np.abs(x - mu)))) ** 2 - 1.0 / k0, 0.0)
    z_fp = float(norm.isf(2.0 / max(n, 3)))
    for k in np.unique(np.geomspace(max(k0, 1), 1e8, 200).astype(int)):
        if threshold - z / np.sqrt(k) - mu >= z_fp * np.sqrt(s2 + 1.0 / k):
            return int(max(k, k0))
    return NO_SKETCH


def _candidate_pairs(W: np.ndarray, cut: float, memory: float, progress_bar: bool):
    """Pairs (i < j) with |W_i . W_j| >= cut, by strips of rows (BLAS); returns (I, J)."""
    n = W.shape[0]
    b = int(min(n, max(256, memory // (4 * n))))
    II, JJ = [], []
    for r0 in progress(range(0, n, b), total=-(-n // b), desc="sparse GRM screen", enable=progress_bar):
        S = W[r0 : r0 + b] @ W[r0:].T  # the strip's pairs with itself and every later row
        i, j = np.nonzero(_beyond(S, cut))
        upper = j > i
        II.append(i[upper] + r0)
        JJ.append(j[upper] + r0)
        del S
    return np.concatenate(II).astype(np.int64), np.concatenate(JJ).astype(np.int64)
