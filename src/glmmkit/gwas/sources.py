"""Genotype sources besides PLINK 1 .bed: PLINK 2 .pgen (pgenlib), BGEN v1.2 with dosages (cbgen) and VCF/BCF
with GT or DS (cyvcf2).  Each is what the scan reads from a ``Genotypes``:

    samples   FID, IID (a source without family IDs gets FID = IID and ``fid_known = False``: it is matched to
              phenotype tables by IID alone)
    variants  CHR, POS, ID, A1, A2 (A1 the counted allele)
    read(start, stop, rows), chunks(size, rows, variants, fill), read_columns(idx, rows), handle (picklable)

The counted allele: ALT for .pgen and VCF (as plink2 --glm counts A1 = ALT, and as plink2 writes a .bed's A1
as ALT), the first allele of a BGEN variant (plink2's default "ref-last" export puts ALT first).  Dosages are
expected counts (BGEN: 2 P(first/first) + P(first/second); VCF: DS, else the ALT calls of GT); missing calls
are mean-imputed and counted, as for .bed.

pgenlib reads ranges of variants into one array.  cbgen and cyvcf2 decode one variant per call: the BGEN
reader calls cbgen once per variant (about 20 us for a few thousand samples), and a VCF is decoded once, when
it is opened, into a float32 matrix in a temporary file that the scan then reads like any other source (for a
biobank-sized VCF, convert it to .pgen with plink2 first, as plink2's documentation advises).
"""

from __future__ import annotations

import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FileFormatError, InputError, MissingFileError, SampleMismatchError
from ..readers import read_text_table
from .plink import Genotypes, check_unique_ids, impute, positions


class _Source:
    """What every non-.bed source shares: ``read``, ``chunks`` and ``read_columns`` through its handle."""

    samples: pd.DataFrame
    variants: pd.DataFrame
    fid_known: bool = True
    label: str = ""

    @property
    def n_samples(self) -> int:
        """The number of samples in the file."""
        return len(self.samples)

    @property
    def n_variants(self) -> int:
        """The number of variants in the file."""
        return len(self.variants)

    @property
    def sample_file(self) -> str:
        """The file that lists the samples (for messages)."""
        return self.label

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(G, n_missing): variants start..stop-1 for the sample rows, mean-imputed.

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
        return self.handle.read(start, stop, rows)

    def read_columns(self, idx, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(G, n_missing) of the variants ``idx`` (any order) for the sample rows, mean-imputed.

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
        return impute(self.handle.raw(np.asarray(idx, dtype=np.int64), rows))

    def chunks(self, size: int = 10_000, rows: np.ndarray | None = None, variants: np.ndarray | None = None,
               fill: np.ndarray | None = None):
        """Yield (variant indices, G, n_missing) for consecutive chunks of ``variants`` (default: all), as
        ``Genotypes.chunks``.

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
        for c in range(0, len(idx), size):
            sel = idx[c : c + size]
            G, miss = impute(self.handle.raw(sel, rows), None if fill is None else fill[c : c + size])
            yield sel, G, miss


def _subset_order(rows, n: int):
    """Sorted unique rows (what the readers take) and the positions that put them back in the asked order."""
    if rows is None:
        return None, None
    rows = np.asarray(rows, dtype=np.int64)
    uniq, inv = np.unique(rows, return_inverse=True)
    if len(uniq) and (uniq[0] < 0 or uniq[-1] >= n):
        raise InputError(f"sample rows must lie in 0..{n - 1}")
    return uniq, inv


class _RawHandle:
    """What a picklable reader shares: ``read`` from its ``raw`` (dosages with NaN for missing calls)."""

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(G, n_missing) of variants start..stop-1, mean-imputed.

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
        return impute(self.raw(np.arange(start, stop), rows))


# ---- PLINK 2 ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PgenFile(_RawHandle):
    """The .pgen alone, with its dimensions: what a worker needs to read a chunk."""

    path: Path
    n_samples: int
    n_variants: int

    def raw(self, idx: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """Dosages (NaN for missing) of the variants ``idx`` for the sample rows: samples x variants.

        Parameters
        ----------
        idx : numpy.ndarray
            Variant indices.
        rows : numpy.ndarray, optional
            Sample rows.

        Returns
        -------
        numpy.ndarray
            float64.
        """
        import pgenlib

        uniq, inv = _subset_order(rows, self.n_samples)
        subset = None if uniq is None else uniq.astype(np.uint32)
        k = self.n_samples if uniq is None else len(uniq)
        out = np.empty((len(idx), k), dtype=np.float64)
        with pgenlib.PgenReader(bytes(str(self.path), "utf8"), raw_sample_ct=self.n_samples,
                                sample_subset=subset) as r:
            if len(idx) and np.all(np.diff(idx) == 1):
                r.read_dosages_range(int(idx[0]), int(idx[-1]) + 1, out)
            elif len(idx):
                r.read_dosages_list(np.asarray(idx, dtype=np.uint32), out)
        out[out < 0] = np.nan  # pgenlib's -9
        G = out.T
        return G if inv is None else G[inv]


class PgenGenotypes(_Source):
    """An opened .pgen/.pvar/.psam set (plink2's ``--pfile``)."""

    def __init__(self, prefix, samples, variants, fid_known):
        self.prefix, self.samples, self.variants, self.fid_known = Path(prefix), samples, variants, fid_known
        self.label = str(self.prefix.with_suffix(".psam"))
        self.handle = PgenFile(self.prefix.with_suffix(".pgen"), len(samples), len(variants))

    @classmethod
    def open(cls, prefix) -> "PgenGenotypes":
        """Open PREFIX.pgen/.pvar/.psam (the counts checked against the .pgen's header).

        Parameters
        ----------
        prefix : str or path-like
            The prefix (or the .pgen).

        Returns
        -------
        PgenGenotypes
            The source.
        """
        p = Path(prefix)
        p = p.with_suffix("") if p.suffix in (".pgen", ".pvar", ".psam") else p
        missing = [str(p.with_suffix(s)) for s in (".pgen", ".pvar", ".psam") if not p.with_suffix(s).exists()]
        if missing:
            raise MissingFileError(f"PLINK 2 file set {p} is incomplete: missing {', '.join(missing)}")
        samples, fid_known = _read_psam(p.with_suffix(".psam"))
        variants = _read_pvar(p.with_suffix(".pvar"))
        import pgenlib

        try:
            with pgenlib.PgenReader(bytes(str(p.with_suffix(".pgen")), "utf8")) as r:
                n, m = r.get_raw_sample_ct(), r.get_variant_ct()
        except Exception as err:  # pgenlib raises RuntimeError on a damaged file
            raise FileFormatError(f"{p.with_suffix('.pgen')} cannot be read as a PLINK 2 .pgen: {err}") from None
        if n != len(samples) or m != len(variants):
            raise FileFormatError(f"{p.with_suffix('.pgen')} holds {n} samples x {m} variants; the .psam lists "
                                  f"{len(samples)} and the .pvar {len(variants)} (files from different sets?)")
        return cls(p, samples, variants, fid_known)


def _read_psam(path) -> tuple[pd.DataFrame, bool]:
    """FID, IID of a .psam (or a .fam), and whether it has family IDs."""
    with open(path) as fh:
        head = fh.readline().rstrip("\n")
    if head.startswith("#"):
        cols = head.lstrip("#").split()
        t = read_text_table(path, "PLINK 2 .psam file", sep=r"\s+", header=None, skiprows=1, dtype=str)
        t.columns = cols[: t.shape[1]] + [f"_{i}" for i in range(max(0, t.shape[1] - len(cols)))]
        if "IID" not in t.columns:
            raise FileFormatError(f"{path}: the header {head!r} has no IID column")
        fid_known = "FID" in t.columns
        ids = pd.DataFrame({"FID": t["FID"] if fid_known else t["IID"], "IID": t["IID"]})
    else:  # headerless: .fam columns
        t = read_text_table(path, "PLINK 2 .psam file", sep=r"\s+", header=None, dtype=str)
        ids, fid_known = pd.DataFrame({"FID": t[0], "IID": t[1]}), True
    ids = ids.reset_index(drop=True)
    check_unique_ids(ids, path)
    return ids, fid_known


def _read_pvar(path) -> pd.DataFrame:
    """CHR, POS, ID, A1 (= ALT), A2 (= REF) of a .pvar (header lines ## skipped; a .bim-like file accepted)."""
    header = None
    skip = 0
    with open(path) as fh:
        for line in fh:
            if line.startswith("##"):
                skip += 1
                continue
            if line.startswith("#"):
                header = line.lstrip("#").split()
                skip += 1
            break
    t = read_text_table(path, "PLINK 2 .pvar file", sep=r"\s+", header=None, skiprows=skip, dtype=str)
    if header is None:  # .bim layout: CHR ID CM POS A1 A2
        header = ["CHROM", "ID", "CM", "POS", "ALT", "REF"]
    t.columns = header[: t.shape[1]] + [f"_{i}" for i in range(max(0, t.shape[1] - len(header)))]
    need = [c for c in ("CHROM", "POS", "ID", "REF", "ALT") if c not in t.columns]
    if need:
        raise FileFormatError(f"{path}: the .pvar has no column(s) {need}; it has {list(t.columns)}")
    pos = pd.to_numeric(t["POS"], errors="coerce")
    if pos.isna().any():
        raise FileFormatError(f"{path}: position {t['POS'][pos.isna()].iloc[0]!r} is not a whole number")
    if t["ALT"].str.contains(",").any():
        raise FileFormatError(f"{path}: multiallelic variants (ALT with a comma, first "
                              f"{t['ID'][t['ALT'].str.contains(',')].iloc[0]!r}); split them with plink2 "
                              "--make-pgen multiallelics=-")
    return pd.DataFrame({"CHR": t["CHROM"].to_numpy(), "POS": pos.to_numpy(np.int64), "ID": t["ID"].to_numpy(),
                         "A1": t["ALT"].to_numpy(), "A2": t["REF"].to_numpy()})


# ---- BGEN ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BgenFileHandle(_RawHandle):
    """The .bgen with its variants' byte offsets: what a worker needs."""

    path: Path
    n_samples: int
    offsets: np.ndarray

    def raw(self, idx: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """Dosages of the first allele (NaN for missing) of variants ``idx``: samples x variants.

        Parameters
        ----------
        idx : numpy.ndarray
            Variant indices.
        rows : numpy.ndarray, optional
            Sample rows.

        Returns
        -------
        numpy.ndarray
            float64.
        """
        import cbgen

        G = np.empty((self.n_samples, len(idx)))
        with cbgen.bgen_file(self.path) as b:
            for j, v in enumerate(idx):  # cbgen decodes one variant per call
                p = b.read_probability(int(self.offsets[v]))
                if p.shape[1] != 3:
                    raise FileFormatError(f"{self.path}: variant {int(v)} is not biallelic and diploid "
                                          f"({p.shape[1]} probabilities per sample)")
                G[:, j] = 2 * p[:, 0] + p[:, 1]  # NaN rows stay NaN (missing)
        return G if rows is None else G[np.asarray(rows)]


class BgenGenotypes(_Source):
    """An opened BGEN v1.2 file with its samples (``--bgen FILE [--sample FILE]``)."""

    def __init__(self, path, samples, variants, fid_known, offsets, sample_label):
        self.path, self.samples, self.variants, self.fid_known = Path(path), samples, variants, fid_known
        self.label = sample_label
        self.handle = BgenFileHandle(self.path, len(samples), offsets)

    @classmethod
    def open(cls, path, sample=None) -> "BgenGenotypes":
        """Open a .bgen; sample IDs from ``sample`` (an Oxford .sample file) or from the file itself.

        Parameters
        ----------
        path : str or path-like
            The .bgen.
        sample : str or path-like, optional
            Its .sample file (ID_1 = FID, ID_2 = IID), needed when the .bgen carries no sample IDs.

        Returns
        -------
        BgenGenotypes
            The source.
        """
        import cbgen

        path = Path(path)
        if not path.exists():
            raise MissingFileError(f"BGEN file {path} does not exist")
        try:
            b = cbgen.bgen_file(path)
        except Exception as err:  # cbgen raises RuntimeError on a damaged file
            raise FileFormatError(f"{path} cannot be read as a BGEN file: {err}") from None
        with b:
            n, m = b.nsamples, b.nvariants
            if sample is not None:
                samples, fid_known = _read_oxford_sample(sample, n)
                label = str(sample)
            elif b.contain_samples:
                iid = pd.Series([s.decode() for s in b.read_samples()])
                samples, fid_known, label = pd.DataFrame({"FID": iid, "IID": iid}), False, str(path)
            else:
                raise InputError(f"{path} carries no sample IDs: give its .sample file (--sample FILE, "
                                 "sample=...); samples are matched by ID, never by position")
            check_unique_ids(samples, label)
            with tempfile.TemporaryDirectory() as tmp:  # the variants' index (cbgen's metafile), read once
                meta = Path(tmp) / "bgen.metafile"
                b.create_metafile(meta, verbose=False)
                mf = cbgen.bgen_metafile(meta)
                parts = [mf.read_partition(i) for i in range(mf.npartitions)]
                mf.close()
        v = [p.variants for p in parts]
        alleles = np.concatenate([x.allele_ids for x in v]).astype(str)
        split = pd.Series(alleles).str.split(",", expand=True)
        if split.shape[1] != 2 or split.isna().any().any():
            raise FileFormatError(f"{path}: only biallelic variants are read (a variant has alleles "
                                  f"{alleles[int(np.flatnonzero(split.isna().any(axis=1).to_numpy())[0]) if split.shape[1] == 2 else 0]!r})")
        rsid = np.concatenate([x.rsid for x in v]).astype(str)
        vid = np.concatenate([x.id for x in v]).astype(str)
        variants = pd.DataFrame({"CHR": np.concatenate([x.chromosome for x in v]).astype(str),
                                 "POS": np.concatenate([x.position for x in v]).astype(np.int64),
                                 "ID": np.where(rsid != "", rsid, vid), "A1": split[0].to_numpy(),
                                 "A2": split[1].to_numpy()})
        offsets = np.concatenate([x.offset for x in v]).astype(np.int64)
        if len(variants) != m:
            raise FileFormatError(f"{path}: its header counts {m} variants, its index {len(variants)}")
        return cls(path, samples, variants, fid_known, offsets, label)


def _read_oxford_sample(path, n: int) -> tuple[pd.DataFrame, bool]:
    """FID, IID from an Oxford .sample file (ID_1, ID_2; the second line holds the column types)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"sample file {path} does not exist")
    t = read_text_table(path, "Oxford .sample file", sep=r"\s+", dtype=str)
    if not {"ID_1", "ID_2"} <= set(t.columns):
        raise FileFormatError(f"{path}: an Oxford .sample file starts with the columns ID_1 ID_2; it has "
                              f"{list(t.columns)[:4]}")
    t = t.iloc[1:].reset_index(drop=True)  # the types row (0 0 0 D ...)
    if len(t) != n:
        raise SampleMismatchError(f"{path} lists {len(t)} samples; the .bgen holds {n}")
    if (t["ID_1"] == "0").all():  # plink2 writes FID 0 for samples without family IDs: match by IID
        return pd.DataFrame({"FID": t["ID_2"], "IID": t["ID_2"]}), False
    return pd.DataFrame({"FID": t["ID_1"], "IID": t["ID_2"]}), True


# ---- VCF -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatrixFile(_RawHandle):
    """A float32 samples x variants matrix on disk (NaN missing): a decoded VCF."""

    path: Path
    n_samples: int
    n_variants: int

    def raw(self, idx: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """The dosages of variants ``idx`` for the sample rows.

        Parameters
        ----------
        idx : numpy.ndarray
            Variant indices.
        rows : numpy.ndarray, optional
            Sample rows.

        Returns
        -------
        numpy.ndarray
            float64, samples x variants.
        """
        M = np.memmap(self.path, dtype=np.float32, mode="r", shape=(self.n_variants, self.n_samples))
        G = np.asarray(M[np.asarray(idx)], dtype=np.float64).T
        return G if rows is None else G[np.asarray(rows)]


class VcfGenotypes(_Source):
    """An opened VCF/BCF (``--vcf FILE``): dosages from DS where present, else from GT."""

    def __init__(self, path, samples, variants, fid_known, matrix: MatrixFile, tmpdir, field, skipped):
        self.path, self.samples, self.variants, self.fid_known = Path(path), samples, variants, fid_known
        self.label, self.handle, self.field, self.skipped = str(path), matrix, field, skipped
        self._tmp = tmpdir  # the decoded matrix lives as long as this object
        self._finalizer = weakref.finalize(self, tmpdir.cleanup)

    @classmethod
    def open(cls, path, field: str | None = None, id_delim: str | None = None, chunk: int = 2000) -> "VcfGenotypes":
        """Decode a VCF/BCF once into a float32 matrix (a temporary file).

        Parameters
        ----------
        path : str or path-like
            The .vcf, .vcf.gz or .bcf.
        field : {"DS", "GT"}, optional
            The FORMAT field to read (default: DS where the header declares it, else GT).
        id_delim : str, optional
            Split sample IDs at this character into FID and IID (plink2's ``--id-delim``); otherwise the ID is
            the IID and samples are matched by IID.
        chunk : int
            Variants decoded per block.

        Returns
        -------
        VcfGenotypes
            The source; multiallelic records are skipped and counted (``skipped``).
        """
        from cyvcf2 import VCF

        path = Path(path)
        if not path.exists():
            raise MissingFileError(f"VCF file {path} does not exist")
        try:
            vcf = VCF(str(path), gts012=True, lazy=True, threads=1)
        except Exception as err:  # cyvcf2 raises OSError/Exception on a file it cannot parse
            raise FileFormatError(f"{path} cannot be read as a VCF/BCF: {err}") from None
        formats = {h.info().get("ID") for h in vcf.header_iter() if h.type == "FORMAT"}
        if field is None:
            field = "DS" if "DS" in formats else "GT" if "GT" in formats else None
        if field not in ("DS", "GT") or field not in formats:
            raise FileFormatError(f"{path} declares no {'GT or DS' if field is None else field} FORMAT field "
                                  f"(it has {sorted(f for f in formats if f)}): genotypes need GT (calls) or DS "
                                  "(dosages)")
        names = list(vcf.samples)
        if not names:
            raise FileFormatError(f"{path} has no samples")
        if id_delim:
            parts = [s.split(id_delim, 1) for s in names]
            if any(len(p) != 2 for p in parts):
                bad = next(s for s, p in zip(names, parts) if len(p) != 2)
                raise InputError(f"sample ID {bad!r} of {path} has no {id_delim!r} to split into FID and IID")
            samples, fid_known = pd.DataFrame({"FID": [p[0] for p in parts], "IID": [p[1] for p in parts]}), True
        else:
            samples, fid_known = pd.DataFrame({"FID": names, "IID": names}), False
        check_unique_ids(samples, path)
        n = len(names)
        tmp = tempfile.TemporaryDirectory(prefix="glmmkit-vcf-")
        mat_path = Path(tmp.name) / "dosages.f32"
        rows, meta, skipped = 0, [], 0
        with open(mat_path, "wb") as out:
            block, bmeta = [], []
            for v in vcf:  # cyvcf2 decodes one record per step
                if len(v.ALT) != 1:
                    skipped += 1
                    continue
                if field == "DS":
                    ds = v.format("DS")
                    if ds is None:
                        raise FileFormatError(f"{path}: record {v.CHROM}:{v.POS} has no DS values")
                    d = ds[:, 0].astype(np.float32)
                    d[~np.isfinite(d) | (d < -1e30)] = np.nan
                else:
                    g = v.gt_types.astype(np.float32)  # 0 hom ref, 1 het, 2 hom alt, 3 unknown (gts012)
                    d = np.where(g == 3, np.nan, g).astype(np.float32)
                block.append(d)
                bmeta.append((v.CHROM, v.POS, v.ID or f"{v.CHROM}:{v.POS}:{v.REF}:{v.ALT[0]}", v.ALT[0], v.REF))
                if len(block) == chunk:
                    out.write(np.vstack(block).tobytes())
                    rows += len(block)
                    meta += bmeta
                    block, bmeta = [], []
            if block:
                out.write(np.vstack(block).tobytes())
                rows += len(block)
                meta += bmeta
        vcf.close()
        if rows == 0:
            tmp.cleanup()
            raise FileFormatError(f"{path} has no biallelic variants ({skipped} multiallelic records skipped)")
        variants = pd.DataFrame(meta, columns=["CHR", "POS", "ID", "A1", "A2"])
        variants["CHR"] = variants["CHR"].astype(str)
        variants["POS"] = variants["POS"].astype(np.int64)
        src = cls(path, samples, variants, fid_known, MatrixFile(mat_path, n, rows), tmp, field, skipped)
        if skipped:
            import warnings

            from ..warnings import DroppedRowsWarning

            warnings.warn(f"{path}: {skipped} multiallelic records skipped (split them with bcftools norm -m- or "
                          "plink2 to test them)", DroppedRowsWarning, stacklevel=2)
        return src


def open_genotypes(bfile=None, *, pfile=None, bgen=None, sample=None, vcf=None, vcf_field: str | None = None,
                   id_delim: str | None = None):
    """Open genotypes from any of the formats plink2 reads: ``bfile`` (.bed/.bim/.fam), ``pfile``
    (.pgen/.pvar/.psam), ``bgen`` (+ ``sample``) or ``vcf``.  An already opened source is returned as it is.

    Parameters
    ----------
    bfile : str, path-like or source, optional
        A PLINK 1 prefix, or an opened source; a path ending .pgen/.bgen/.vcf/.vcf.gz/.bcf is opened by its
        suffix.
    pfile : str or path-like, optional
        A PLINK 2 prefix.
    bgen : str or path-like, optional
        A BGEN v1.2 file.
    sample : str or path-like, optional
        The BGEN's Oxford .sample file.
    vcf : str or path-like, optional
        A VCF/BCF file.
    vcf_field : {"DS", "GT"}, optional
        The VCF field to read.
    id_delim : str, optional
        Split VCF sample IDs into FID and IID at this character.

    Returns
    -------
    Genotypes, PgenGenotypes, BgenGenotypes or VcfGenotypes
        The source.
    """
    given = [x for x in (bfile, pfile, bgen, vcf) if x is not None]
    if len(given) != 1:
        raise InputError("give exactly one genotype source: bfile, pfile, bgen or vcf "
                         f"(got {len(given)})")
    if bfile is not None and not isinstance(bfile, (str, os.PathLike)):
        if hasattr(bfile, "samples") and hasattr(bfile, "chunks"):
            return bfile
        raise InputError(f"bfile must be a path or an opened genotype source, got {type(bfile).__name__}")
    if bfile is not None:
        s = str(bfile)
        if s.endswith(".pgen"):
            pfile = s
        elif s.endswith(".bgen"):
            bgen = s
        elif s.endswith((".vcf", ".vcf.gz", ".bcf")):
            vcf = s
        elif not Path(s + ".bed").exists() and Path(s + ".pgen").exists():
            pfile = s
        else:
            return Genotypes.open(bfile)
    if pfile is not None:
        return PgenGenotypes.open(pfile)
    if bgen is not None:
        return BgenGenotypes.open(bgen, sample)
    return VcfGenotypes.open(vcf, field=vcf_field, id_delim=id_delim)
