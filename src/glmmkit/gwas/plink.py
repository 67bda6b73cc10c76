"""PLINK 1 genotype files (.bed/.bim/.fam): read in variant chunks with bed-reader, write for simulations.

Genotypes are counts of allele A1 (the .bim's fifth column, PLINK's convention), 0/1/2; missing calls are
mean-imputed per variant and counted.  Nothing reads the whole matrix: ``chunks`` yields (start, stop, G)
with G samples x variants (float64) for the samples the analysis keeps, in the order it keeps them.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ..errors import FileFormatError, InputError, MissingFileError, SampleMismatchError
from ..output import atomic_paths
from ..readers import read_text_table


def _prefix(path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".bed", ".bim", ".fam") else p


@dataclass
class Genotypes:
    """An opened .bed/.bim/.fam triple."""

    prefix: Path
    samples: pd.DataFrame   # FID, IID
    variants: pd.DataFrame  # CHR, POS, ID, A1, A2
    #: a .fam always has family IDs: samples are matched to tables by FID and IID
    fid_known = True

    @classmethod
    def open(cls, path) -> "Genotypes":
        """Open a PLINK .bed/.bim/.fam set (sizes and the .bed's magic checked against .fam and .bim).

        Parameters
        ----------
        path : str or path-like
            The prefix (or any of the three files).

        Returns
        -------
        Genotypes
            The genotypes, read lazily.
        """
        prefix = _prefix(path)
        missing = [str(prefix.with_suffix(s)) for s in (".bed", ".bim", ".fam") if not prefix.with_suffix(s).exists()]
        if missing:
            raise MissingFileError(f"PLINK file set {prefix} is incomplete: missing {', '.join(missing)}")
        fam = read_text_table(prefix.with_suffix(".fam"), "PLINK .fam file", sep=r"\s+", header=None, dtype=str)
        if fam.shape[1] != 6:
            raise FileFormatError(f"{prefix.with_suffix('.fam')} must have 6 columns (FID IID PAT MAT SEX PHENO); "
                                  f"it has {fam.shape[1]}")
        fam = fam[[0, 1]]
        fam.columns = ["FID", "IID"]
        check_unique_ids(fam, prefix.with_suffix(".fam"))
        bim = read_text_table(prefix.with_suffix(".bim"), "PLINK .bim file", sep=r"\s+", header=None,
                              dtype={0: str, 1: str, 4: str, 5: str})
        if bim.shape[1] != 6:
            raise FileFormatError(f"{prefix.with_suffix('.bim')} must have 6 columns (CHR ID CM POS A1 A2); "
                                  f"it has {bim.shape[1]}")
        pos = pd.to_numeric(bim[3], errors="coerce")
        if pos.isna().any() or (pos < 0).any():
            bad = int(np.flatnonzero(pos.isna().to_numpy() | (pos < 0).to_numpy())[0])
            val = bim[3].iloc[bad]
            raise FileFormatError(f"{prefix.with_suffix('.bim')} line {bad + 1}: position "
                                  f"{'missing' if pd.isna(val) else repr(str(val))} is not a non-negative whole number")
        variants = pd.DataFrame({"CHR": bim[0].to_numpy(), "POS": pos.to_numpy(np.int64), "ID": bim[1].to_numpy(),
                                 "A1": bim[4].to_numpy(), "A2": bim[5].to_numpy()})
        expected = 3 + len(variants) * ((len(fam) + 3) // 4)
        size = prefix.with_suffix(".bed").stat().st_size
        with open(prefix.with_suffix(".bed"), "rb") as fh:
            magic = fh.read(3)
        if magic != bytes([0x6C, 0x1B, 0x01]):
            raise FileFormatError(f"{prefix.with_suffix('.bed')} is not a variant-major PLINK 1 .bed file "
                                  "(its first three bytes are not 6c 1b 01)")
        if size != expected:
            raise FileFormatError(f"{prefix.with_suffix('.bed')} has {size} bytes; {len(fam)} samples x "
                                  f"{len(variants)} variants need {expected} (truncated, or .fam/.bim from another set)")
        return cls(prefix, fam, variants)

    @property
    def n_samples(self) -> int:
        """The number of samples in the .fam."""
        return len(self.samples)

    @property
    def n_variants(self) -> int:
        """The number of variants in the .bim."""
        return len(self.variants)

    @property
    def bed_file(self) -> BedFile:
        """A picklable handle on the .bed for worker processes."""
        return BedFile(self.prefix.with_suffix(".bed"), self.n_samples, self.n_variants)

    @property
    def handle(self) -> BedFile:
        """The picklable reader every genotype source offers (``read(start, stop, rows)``)."""
        return self.bed_file

    @property
    def sample_file(self) -> str:
        """The file that lists the samples (for messages)."""
        return str(self.prefix.with_suffix(".fam"))

    def read_columns(self, idx, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(G, n_missing) of the variants ``idx`` for the sample rows, mean-imputed.

        Parameters
        ----------
        idx : array-like
            Variant indices.
        rows : numpy.ndarray, optional
            Sample rows.

        Returns
        -------
        tuple
            (G, missing calls per variant).
        """
        with self._bed() as bed:
            G = bed.read(index=(rows if rows is not None else np.s_[:], np.asarray(idx)), dtype="float64")
        return impute(G)

    def _bed(self):
        from bed_reader import open_bed

        return open_bed(self.prefix.with_suffix(".bed"), iid_count=self.n_samples, sid_count=self.n_variants,
                        properties={"fid": self.samples["FID"].to_numpy(), "iid": self.samples["IID"].to_numpy()},
                        num_threads=None)

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(G, n_missing): variants start..stop-1 for the sample rows (indices into .fam), mean-imputed.

        Parameters
        ----------
        start, stop : int
            The variant range.
        rows : numpy.ndarray, optional
            Sample rows (default: all).

        Returns
        -------
        tuple
            (G as samples x variants float64, missing calls per variant).
        """
        with self._bed() as bed:
            G = bed.read(index=(rows if rows is not None else np.s_[:], np.s_[start:stop]), dtype="float64")
        return impute(G)

    def chunks(self, size: int = 10_000, rows: np.ndarray | None = None, variants: np.ndarray | None = None,
               fill: np.ndarray | None = None):
        """Yield (variant indices, G, n_missing) for consecutive chunks of ``variants`` (default: all).
        Missing calls take the mean of the rows read, or ``fill`` (one value per variant of ``variants``:
        the means over a larger sample set, when ``rows`` is part of it).

        Parameters
        ----------
        size : int
            Variants per chunk.
        rows, variants : numpy.ndarray, optional
            Sample rows and variant indices.
        fill : numpy.ndarray, optional
            The value of a missing call per variant.

        Yields
        ------
        tuple
            (variant indices, G, missing calls per variant).
        """
        idx = np.arange(self.n_variants) if variants is None else positions("variants", variants, self.n_variants)
        rows = None if rows is None else positions("rows", rows, self.n_samples)
        with self._bed() as bed:
            for c in range(0, len(idx), size):
                sel = idx[c : c + size]
                sl = np.s_[sel[0] : sel[-1] + 1] if np.all(np.diff(sel) == 1) else sel
                G = bed.read(index=(rows if rows is not None else np.s_[:], sl), dtype="float64")
                G, miss = impute(G, None if fill is None else fill[c : c + size])
                yield sel, G, miss


def positions(name: str, idx, size: int) -> np.ndarray:
    """``idx`` as int64 positions in 0..size-1 (sample rows or variant indices), else an InputError.

    Parameters
    ----------
    name : str
        What the positions are (``"rows"``, ``"variants"``), for the message.
    idx : array-like
        The positions.
    size : int
        How many there are to choose from.

    Returns
    -------
    numpy.ndarray
        A one-dimensional int64 array.
    """
    a = np.asarray(idx)
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{name} must be a one-dimensional array of integer positions, got dtype {a.dtype}, "
                         f"shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= size):
        raise InputError(f"{name} must lie in 0..{size - 1}; got {a.min()}..{a.max()}")
    return a.astype(np.int64)


def check_unique_ids(ids: pd.DataFrame, source) -> None:
    """Refuse a sample list in which an FID/IID pair appears twice (matching by ID would be ambiguous).

    Parameters
    ----------
    ids : pandas.DataFrame
        With columns FID and IID.
    source : str or path-like
        The file they came from, for the message.

    Returns
    -------
    None
    """
    dup = ids.duplicated(["FID", "IID"])
    if dup.any():
        r = ids.loc[dup].iloc[0]
        raise SampleMismatchError(f"{source}: sample {r.FID}/{r.IID} appears more than once "
                                  f"({int(dup.sum())} duplicated FID/IID pairs); sample IDs must be unique")


def impute(G: np.ndarray, fill: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Replace missing calls (NaN) by the variant's mean over the called samples (or by ``fill``, one value
    per variant); count them per variant.  One pass finds the variants with a missing call (their column
    sum is NaN); only those are searched.

    Parameters
    ----------
    G : numpy.ndarray
        Samples x variants, NaN for a missing call (filled in place).
    fill : numpy.ndarray, optional
        One value per variant.

    Returns
    -------
    tuple
        (G, missing calls per variant).
    """
    miss = np.zeros(G.shape[1], dtype=np.int64)
    bad = np.flatnonzero(np.isnan(G.sum(axis=0)))
    if len(bad):
        sub = G[:, bad]
        nan = np.isnan(sub)
        miss[bad] = nan.sum(axis=0)
        if fill is None:
            called = G.shape[0] - miss[bad]
            mean = np.where(called > 0, np.nansum(sub, axis=0) / np.maximum(called, 1), 0.0)
        else:
            mean = np.asarray(fill, dtype=float)[bad]
        G[:, bad] = np.where(nan, mean[None, :], sub)
    return G, miss


@dataclass(frozen=True)
class BedFile:
    """The .bed alone, with its dimensions: what a worker needs to read a chunk (no .bim/.fam parsing)."""

    path: Path
    n_samples: int
    n_variants: int

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(G, n_missing) of variants start..stop-1 for the sample ``rows`` (indices into .fam), mean-imputed.

        Parameters
        ----------
        start, stop : int
            The variant range.
        rows : numpy.ndarray, optional
            Sample rows.

        Returns
        -------
        tuple
            (G, missing calls per variant).
        """
        from bed_reader import open_bed

        with open_bed(self.path, iid_count=self.n_samples, sid_count=self.n_variants) as bed:
            G = bed.read(index=(rows if rows is not None else np.s_[:], np.s_[start:stop]), dtype="float64")
        return impute(G)


_CODE = np.array([0b11, 0b10, 0b00, 0b01], dtype=np.uint8)  # A1 count 0, 1, 2, missing -> PLINK 2-bit code


class BedWriter:
    """Write a .bed/.bim/.fam set chunk by chunk (variant-major), for simulated cohorts of any size.

    The three files are written under temporary names and renamed into place together by ``close``; a
    writer left by an exception (``with`` block) removes them, so no half-written set is left behind."""

    def __init__(self, prefix, samples: pd.DataFrame):
        self.prefix = _prefix(prefix)
        self.n = len(samples)
        fam = pd.DataFrame({"FID": samples["FID"], "IID": samples["IID"], "PAT": samples.get("PAT", "0"),
                            "MAT": samples.get("MAT", "0"), "SEX": samples.get("SEX", 0), "PHENO": -9})
        self._files = contextlib.ExitStack()
        finals = [self.prefix.with_suffix(s) for s in (".fam", ".bed", ".bim")]
        self._tmp = self._files.enter_context(atomic_paths(finals))
        fam.to_csv(self._tmp[0], sep=" ", header=False, index=False)
        self._bed = open(self._tmp[1], "wb")
        self._bed.write(bytes([0x6C, 0x1B, 0x01]))
        self._bim = open(self._tmp[2], "w")

    def write(self, G: np.ndarray, variants: pd.DataFrame) -> None:
        """G: samples x variants of A1 counts (0, 1, 2; NaN or -1 missing); variants: CHR, POS, ID, A1, A2.

        Parameters
        ----------
        G : numpy.ndarray
            Samples x variants.
        variants : pandas.DataFrame
            Their .bim columns.
        """
        n, m = G.shape
        code = np.where(np.isnan(G) | (G < 0), 3, G).astype(np.uint8) if G.dtype.kind == "f" else np.where(G < 0, 3, G).astype(np.uint8)
        bits = _CODE[code]  # (n, m)
        pad = (-n) % 4
        if pad:
            bits = np.vstack([bits, np.zeros((pad, m), dtype=np.uint8)])
        b = bits.T.reshape(m, -1, 4)
        packed = (b[:, :, 0] | (b[:, :, 1] << 2) | (b[:, :, 2] << 4) | (b[:, :, 3] << 6)).astype(np.uint8)
        self._bed.write(packed.tobytes())
        v = variants
        lines = pd.DataFrame({"CHR": v["CHR"], "ID": v["ID"], "CM": 0, "POS": v["POS"], "A1": v["A1"], "A2": v["A2"]})
        lines.to_csv(self._bim, sep="\t", header=False, index=False)

    def close(self, error: BaseException | None = None):
        """Finish the set: rename the three files into place (or, after ``error``, remove them).

        Parameters
        ----------
        error : BaseException, optional
            The error that ended the writing (the files are then removed).
        """
        self._bed.close()
        self._bim.close()
        if error is None:
            self._files.close()
        else:
            self._files.__exit__(type(error), error, error.__traceback__)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(exc)
