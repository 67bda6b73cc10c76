"""Principal components of the genotypes: the top eigenvectors of the GRM without forming it.

The sparse GRM (``sparse=``) keeps close relatives only; population structure -- the small positive
relatedness of every pair within an ancestry group -- is thresholded away with the background, so, as
fastGWA and SAIGE advise, the top principal components go in as covariates.  They are the leading
eigenvectors of K = W W' / m (W the standardised genotypes, as ``grm``), found by randomized subspace
iteration (Halko, Martinsson and Tropp 2011), the genotypes held in memory packed (one byte each, as the
implicit GRM holds them: ``implicit.ImplicitGRM``) when they fit ``memory``, else streamed chunk by chunk on
every pass:

    Q <- orth(random n x l),   l = k + oversampling
    repeat:  Y = K Q = sum_chunks W_c (W_c' Q) / m;   B = Q' Y;   Q <- orth(Y)
    until the top k eigenvalues of B (Ritz values) change by less than ``tol`` relatively

then the Ritz vectors Q V of B = V diag(lambda) V'.  Each pass costs one read of the variants and
4 n m l flops; nothing n x n is held (memory: n x m bytes when held, else n x l and one chunk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import check_int, check_real
from ..errors import InputError
from ..output import atomic_paths
from ..progress import progress
from ..protocol import Result
from .grm import _standardise
from .implicit import implicit_grm
from .sources import open_genotypes


@dataclass(repr=False)
class PCAResult(Result):
    """Top principal components of the genotypes.

    ``eigenvec`` has FID, IID and PC1..PCk (unit-length eigenvectors of the GRM, plink2's ``--pca``
    convention: the sign makes each vector's largest loading positive); ``eigenval`` the GRM's eigenvalues.
    """

    eigenvec: pd.DataFrame
    eigenval: np.ndarray
    n_variants: int
    iterations: int
    converged: bool
    change: float = field(default=float("nan"))
    n_converged: int = 0  # leading components whose eigenvalues met the tolerance

    @property
    def table(self) -> pd.DataFrame:
        """``eigenvec`` (the result's table)."""
        return self.eigenvec

    def summary(self) -> str:
        """The components as text.

        Returns
        -------
        str
            Samples, variants, eigenvalues and convergence.
        """
        vals = ", ".join(f"{v:.3g}" for v in self.eigenval)
        return (f"PCA of the GRM: {len(self.eigenvec)} samples, {self.n_variants} variants, "
                f"{len(self.eigenval)} components\n  eigenvalues {vals}\n"
                f"  randomized subspace iteration: {self.iterations} passes, "
                f"{'converged' if self.converged else 'NOT converged'} (largest last relative change {self.change:.2g}"
                + ("" if self.converged else f"; PC1-PC{self.n_converged} converged, the rest not: near-equal eigenvalues, "
                   "as the many family eigenvalues of a cohort of relatives") + ")")

    def _as_dict(self) -> dict:
        return {"samples": len(self.eigenvec), "variants": self.n_variants, "eigenval": self.eigenval.tolist(),
                "iterations": self.iterations, "converged": self.converged, "change": self.change,
                "n_converged": self.n_converged}

    def write(self, prefix) -> list[str]:
        """``prefix.eigenvec`` (``#FID IID PC1 ...``, tab-separated, plink2's layout: usable as a ``--covar``
        file) and ``prefix.eigenval`` (one per line), each written atomically.

        Parameters
        ----------
        prefix : str or path-like
            The files' prefix.

        Returns
        -------
        list of str
            The paths written.
        """
        paths = [str(prefix) + ".eigenvec", str(prefix) + ".eigenval"]
        with atomic_paths(paths) as (vec, val):
            self.eigenvec.rename(columns={"FID": "#FID"}).to_csv(vec, sep="\t", index=False, float_format="%.8g")
            Path(val).write_text("".join(f"{v:.8g}\n" for v in self.eigenval))
        return paths

    def __repr__(self) -> str:
        return f"<glmmkit PCAResult: {len(self.eigenvec)} samples, {len(self.eigenval)} components>"


def pca(geno, n_pcs: int = 10, rows: np.ndarray | None = None, variants: np.ndarray | None = None,
        min_maf: float = 0.01, oversample: int = 10, tol: float = 1e-4, max_iter: int = 30, chunk: int = 5000,
        memory: float = 4e9, seed: int = 1, progress_bar: bool = True) -> PCAResult:
    """The top ``n_pcs`` principal components of the genotypes (eigenvectors of the GRM ``grm`` would build
    over the same samples and variants), without the n x n GRM.

    Parameters
    ----------
    geno : Genotypes, source or str
        The genotypes (any reader ``open_genotypes`` takes).
    n_pcs : int
        Components (fewer than the samples).
    rows : numpy.ndarray, optional
        Sample rows (default: all).
    variants : numpy.ndarray, optional
        Variant indices (default: all; a few tens of thousands spread over the genome are plenty, ideally
        pruned for linkage disequilibrium).
    min_maf : float
        Variants with a smaller minor-allele frequency are left out (as ``grm``).
    oversample : int
        Extra columns of the subspace (accuracy of the k-th vector).
    tol : float
        Relative change of the top eigenvalues between passes that ends the iteration.
    max_iter : int
        Most passes over the genotypes.
    chunk : int
        Variants read at a time.
    memory : float
        Bytes for the genotypes held in memory (packed, one byte each: n x m): when they fit, the genotypes
        are read once and every pass is a product over them; else they are read on every pass.
    seed : int
        Seed of the random start.
    progress_bar : bool
        Show a progress bar (one tick per pass).

    Returns
    -------
    PCAResult
        ``eigenvec`` (FID, IID, PC1..), ``eigenval``, variants used, passes, convergence (``converged``: every
        component; ``n_converged``: the leading ones that met ``tol``).
    """
    k = check_int("n_pcs", n_pcs, 1)
    oversample = check_int("oversample", oversample, 0)
    check_real("tol", tol, 0, None, open_lo=True)
    max_iter = check_int("max_iter", max_iter, 1)
    chunk = check_int("chunk", chunk, 1)
    check_real("min_maf", min_maf, 0, 0.5, open_hi=True)
    g = open_genotypes(geno)
    sample_rows = np.arange(g.n_samples) if rows is None else np.asarray(rows)
    n = len(sample_rows)
    if k >= n:
        raise InputError(f"n_pcs must be below the number of samples ({n}), got {k}")
    ell = min(k + oversample, n)
    n_var = g.n_variants if variants is None else len(variants)
    # read once when the packed genotypes (a byte each: implicit.ImplicitGRM) fit: every pass is then one
    # product over them, with no n x m float array at any time
    held = implicit_grm(g, rows, variants, min_maf, max_bytes=memory, chunk=min(chunk, 1000)) \
        if float(n) * n_var <= memory else None

    def times(Q):
        """(K Q, m): from the held genotypes or streamed."""
        if held is None:
            return _times_grm(g, Q, rows, variants, min_maf, chunk)
        return held.product(Q), held.m
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, ell)))
    old, change, converged, m, n_ok = None, np.inf, False, 0, 0
    it = 0
    for it in progress(range(1, max_iter + 1), total=max_iter, desc="PCA passes", enable=progress_bar):
        Y, m = times(Q)
        B = Q.T @ Y
        lam, V = np.linalg.eigh((B + B.T) / 2)
        lam, V = lam[::-1], V[:, ::-1]
        top = lam[:k]
        if old is not None:
            rel = np.abs(top - old) / np.maximum(np.abs(top), 1e-300)
            change = float(np.max(rel))
            n_ok = int(np.argmin(np.r_[rel < tol, False]))  # the leading run below tol
            if change < tol:
                converged = True
                Q = Q @ V  # the Ritz vectors of this pass
                break
        old = top
        Q, _ = np.linalg.qr(Y)
    else:
        # the last pass's Ritz vectors: Y = K Q was formed before Q was replaced; one more product settles them
        Y, m = times(Q)
        B = Q.T @ Y
        lam, V = np.linalg.eigh((B + B.T) / 2)
        lam, V = lam[::-1], V[:, ::-1]
        Q = Q @ V
    U = Q[:, :k]
    flip = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(k)])
    U = U * np.where(flip == 0, 1.0, flip)
    ids = g.samples.iloc[sample_rows][["FID", "IID"]].reset_index(drop=True)
    vec = pd.concat([ids, pd.DataFrame(U, columns=[f"PC{i + 1}" for i in range(k)])], axis=1)
    return PCAResult(vec, np.asarray(lam[:k], dtype=float), int(m), int(it), bool(converged), float(change),
                     k if converged else n_ok)


def _times_grm(g, Q: np.ndarray, rows, variants, min_maf: float, chunk: int) -> tuple[np.ndarray, int]:
    """(K Q, m): the GRM times Q, one chunk of standardised genotypes at a time (W_c (W_c' Q), summed)."""
    Y = np.zeros_like(Q)
    m = 0
    for _, G, _ in g.chunks(chunk, rows=rows, variants=variants):
        W = _standardise(G, min_maf)
        del G
        if W.shape[1]:
            Y += W @ (W.T @ Q)
            m += W.shape[1]
    if m == 0:
        raise InputError("no polymorphic variants: the principal components are undefined")
    return Y / m, m
