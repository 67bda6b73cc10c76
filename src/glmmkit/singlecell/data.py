"""Single-cell input: counts from AnnData (or .h5ad), cell metadata, library sizes, the subject design.

Counts stay sparse (a dense matrix is sliced a block of genes at a time).  Every check names what it
found: the gene and cell of a bad count, the subject that sits in two conditions, the condition level
with one subject, the cell with no library size."""

from __future__ import annotations

import os

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from ..errors import FileFormatError, InputError
from ..readers import require_file


@dataclass
class CellData:
    counts: object                 # cells x genes: scipy CSC or a dense ndarray
    genes: pd.Index
    cells: pd.Index
    obs: pd.DataFrame
    subject_col: str
    subject: np.ndarray            # per-cell subject code 0..S-1
    subjects: pd.Index             # subject names
    offset: np.ndarray             # per-cell log library size
    subject_table: pd.DataFrame    # one row per subject: the design columns
    Xs: np.ndarray                 # (S, p) subject-level design
    x_names: list[str]
    tested: str                    # the coefficient of interest
    condition: str
    covariates: list[str] = field(default_factory=list)
    subject_level: bool = True     # every design column constant within subject (the fast path's case)
    varying: dict = field(default_factory=dict)  # column -> subjects in which it varies

    @property
    def n_cells(self) -> int:
        """The number of cells."""
        return len(self.cells)

    @property
    def n_genes(self) -> int:
        """The number of genes."""
        return len(self.genes)

    @property
    def n_subjects(self) -> int:
        """The number of subjects."""
        return len(self.subjects)

    def gene_block(self, start: int, stop: int) -> sp.csc_matrix:
        """Counts of genes start..stop-1 as CSC (cells x genes).

        Parameters
        ----------
        start, stop : int
            The genes.

        Returns
        -------
        scipy.sparse.csc_matrix
            Cells x genes.
        """
        m = self.counts[:, start:stop]
        return m.tocsc() if sp.issparse(m) else sp.csc_matrix(m)

    def cell_table(self, gene: int) -> pd.DataFrame:
        """One gene's counts with the cell metadata and the offset (for the general engine).

        Parameters
        ----------
        gene : int
            The gene's index.

        Returns
        -------
        pandas.DataFrame
            One row per cell: ``y``, ``offset``, subject, condition and covariates.
        """
        col = self.gene_block(gene, gene + 1).toarray().ravel()
        cols = [self.subject_col, self.condition, *self.covariates]
        df = self.obs[list(dict.fromkeys(cols))].copy()
        df["_y"] = col
        df["_offset"] = self.offset
        return df.reset_index(drop=True)


def _load(data, layer):
    if isinstance(data, (str, Path)):
        path = require_file(data, "single-cell data")
        import anndata

        try:
            data = anndata.read_h5ad(path)
        except Exception as err:  # h5py and anndata raise many kinds for a bad file
            raise FileFormatError(f"{path} is not a readable .h5ad file: {type(err).__name__}: {err}") from None
    if not (hasattr(data, "obs") and hasattr(data, "X")):
        raise TypeError("data must be an AnnData object or the path of an .h5ad file")
    if layer is None:
        X = data.X
        where = "X"
        # scverse's convention: X normalised (log1p, scaled), the raw counts in layers["counts"]
        if X is not None and not _looks_like_counts(X) and "counts" in getattr(data, "layers", {}):
            import warnings

            from ..warnings import DataWarning

            warnings.warn("X holds normalised values (not whole numbers); the raw counts are read from "
                          "layers['counts'] (pass layer= to choose)", DataWarning, stacklevel=3)
            X, where = data.layers["counts"], "layer 'counts'"
    else:
        if layer not in data.layers:
            raise InputError(f"layer {layer!r} not in the AnnData object; layers: {list(data.layers.keys())}")
        X = data.layers[layer]
        where = f"layer {layer!r}"
    if X is None:
        raise InputError("the AnnData object has no counts in X; pass layer=")
    if sp.issparse(X):
        X = sp.csc_matrix(X)
        X.sum_duplicates()
    else:
        X = np.asarray(X)
    return data, X, where


def _looks_like_counts(X, probe: int = 100_000) -> bool:
    """Whether the first ``probe`` stored values are non-negative whole numbers (a quick look, not the check)."""
    vals = X.data[:probe] if sp.issparse(X) else np.asarray(X).ravel()[:probe]
    vals = np.asarray(vals, dtype=float)
    return bool(np.all(np.isfinite(vals)) and np.all(vals >= 0) and np.all(vals == np.floor(vals)))


def _check_counts(X, genes, cells, where):
    vals = X.data if sp.issparse(X) else X
    bad = ~np.isfinite(vals) | (vals < 0) | (vals != np.floor(vals))
    if not bad.any():
        return
    if sp.issparse(X):
        k = int(np.flatnonzero(bad)[0])
        g = int(np.searchsorted(X.indptr, k, side="right") - 1)
        c = int(X.indices[k])
        v = float(X.data[k])
    else:
        c, g = (int(i) for i in np.argwhere(bad)[0])
        v = float(X[c, g])
    what = "negative" if v < 0 else ("not finite" if not np.isfinite(v) else "not a whole number")
    raise InputError(f"counts in {where} must be raw non-negative integers: gene {genes[g]!r}, cell {cells[c]!r} "
                     f"has {v:g} ({what}; {int(bad.sum())} such entries). Pass the layer with raw counts (layer=).")


#: the obs column names scanpy, pertpy and CELLxGENE users have, tried in order when none is given
SUBJECT_NAMES = ("donor", "donor_id", "subject", "subject_id", "individual", "patient", "patient_id", "sample",
                 "sample_id", "replicate")
CONDITION_NAMES = ("condition", "group", "treatment", "perturbation", "stim", "disease", "label")


def resolve_column(obs, name, candidates, what: str) -> str:
    """The obs column to use: ``name`` when given, else the first of ``candidates`` that obs has.

    Parameters
    ----------
    obs : pandas.DataFrame
        The cell metadata.
    name : str or None
        The user's choice.
    candidates : sequence of str
        Common names, in order.
    what : str
        Its role, for messages.

    Returns
    -------
    str
        The column.
    """
    if name is not None:
        return name
    for c in candidates:
        if c in obs.columns:
            return c
    raise InputError(f"no {what} column given and none of the usual names {list(candidates)} is in obs; "
                     f"obs has {list(obs.columns)}: pass {what}=")


def prepare(data, subject: str | None, condition: str | None, covariates=(), *, layer: str | None = None,
            libsize: str | None = None, reference=None) -> CellData:
    """Read and check the input; build the subject-level design ``~ condition + covariates``.

    Parameters
    ----------
    data : anndata.AnnData or str
        The cells, or an ``.h5ad`` path.
    subject, condition : str
        Columns of ``obs``.
    covariates : sequence of str
        Subject-level covariates.
    layer : str, optional
        The counts' layer (default ``X``).
    libsize : str, optional
        Library sizes or size factors (default: each cell's total count).
    reference : optional
        The condition's reference level.

    Returns
    -------
    CellData
        The checked counts, offsets, subject codes and design.
    """
    adata, X, where = _load(data, layer)
    obs = adata.obs
    subject = resolve_column(obs, subject, SUBJECT_NAMES, "subject")
    condition = resolve_column(obs, condition, CONDITION_NAMES, "condition")
    genes = pd.Index(adata.var_names.astype(str))
    cells = pd.Index(adata.obs_names.astype(str))
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    for col in [subject, condition, *covariates] + ([libsize] if libsize else []):
        if col not in obs.columns:
            raise InputError(f"column {col!r} not in the cell metadata (obs); columns: {list(obs.columns)}")
    for col in [subject, condition, *covariates]:
        miss = obs[col].isna().to_numpy()
        if miss.any():
            raise InputError(f"column {col!r} is missing for {int(miss.sum())} cells, first {cells[np.flatnonzero(miss)[0]]!r}")
    _check_counts(X, genes, cells, where)
    # library size: a column, or the cell's total count over all genes
    if libsize:
        lib = pd.to_numeric(obs[libsize], errors="coerce").to_numpy(dtype=float)
        src = f"column {libsize!r}"
    else:
        lib = np.asarray(X.sum(axis=1)).ravel().astype(float)
        src = "the cell's total count"
    bad = ~np.isfinite(lib) | (lib <= 0)
    if bad.any():
        raise InputError(f"library size ({src}) must be positive: cell {cells[np.flatnonzero(bad)[0]]!r} has "
                         f"{lib[np.flatnonzero(bad)[0]]:g} ({int(bad.sum())} such cells); remove empty cells first")
    codes, subjects = pd.factorize(obs[subject].astype(str), sort=True)
    subjects = pd.Index(subjects, name=subject)
    S = len(subjects)
    # subject-level table: a design column must be constant within each subject for the fast path
    varying = {}
    rows = {}
    for col in [condition, *covariates]:
        nun = obs.groupby(codes, observed=True)[col].nunique()
        if (nun > 1).any():
            varying[col] = [subjects[i] for i in nun.index[nun > 1]]
        rows[col] = obs.groupby(codes, observed=True)[col].first().to_numpy()
    subject_table = pd.DataFrame(rows, index=subjects)
    cond = subject_table[condition]
    numeric = pd.api.types.is_numeric_dtype(obs[condition]) and obs[condition].nunique() > 2
    if not numeric:
        levels = sorted(pd.unique(obs[condition].astype(str)))
        if len(levels) < 2:
            raise InputError(f"condition {condition!r} has one level ({levels[0]!r}): nothing to compare")
        if len(levels) > 2:
            raise InputError(f"condition {condition!r} has {len(levels)} levels {levels}; give a two-level "
                             "condition (subset the cells, or code the contrast as a column)")
        ref = str(reference) if reference is not None else levels[0]
        if ref not in levels:
            raise InputError(f"reference {reference!r} is not a level of {condition!r}: {levels}")
        other = [lv for lv in levels if lv != ref][0]
        if condition not in varying:
            per = cond.astype(str).value_counts()
            for lv in levels:
                if per.get(lv, 0) < 2:
                    who = list(subject_table.index[cond.astype(str) == lv])
                    raise InputError(
                        f"condition level {lv!r} has {per.get(lv, 0)} subject(s) {who}: with one subject per level "
                        "the condition effect cannot be told apart from that subject's random effect")
        subject_table[condition] = pd.Categorical(cond.astype(str), categories=[ref, other])
        tested = f"{condition}[T.{other}]"
    else:
        tested = condition
    import formulaic

    rhs = " + ".join([condition, *covariates])
    mm = formulaic.model_matrix(rhs, subject_table, ensure_full_rank=True)
    x_names = list(mm.columns)
    Xs = np.asarray(mm, dtype=float)
    if Xs.shape[0] != S:
        raise InputError("a design column is missing for some subjects")
    const = [c for c in x_names[1:] if np.ptp(Xs[:, x_names.index(c)]) == 0]
    if const:
        raise InputError(f"design column(s) {const} are constant over subjects: they cannot be estimated")
    if np.linalg.matrix_rank(Xs) < Xs.shape[1]:
        raise InputError(f"the subject-level design {x_names} is rank deficient (collinear covariates)")
    if S - Xs.shape[1] < 1:
        raise InputError(f"{S} subjects for {Xs.shape[1]} subject-level coefficients: no subject-level residual")
    return CellData(X, genes, cells, obs, subject, codes.astype(np.int64), subjects, np.log(lib), subject_table, Xs,
                    x_names, tested, condition, covariates, subject_level=not varying, varying=varying)


def aggregate(cd) -> np.ndarray:
    """Subjects x genes summed counts (a sparse indicator product; dense only at S x G).

    Parameters
    ----------
    cd : CellData
        The cells.

    Returns
    -------
    numpy.ndarray
        (S, G).
    """
    S, n = cd.n_subjects, cd.n_cells
    ind = sp.csr_matrix((np.ones(n), (cd.subject, np.arange(n))), shape=(S, n))
    out = ind @ cd.counts
    return np.asarray(out.todense() if sp.issparse(out) else out)


def expressed_cells(X) -> np.ndarray:
    """Number of cells with a positive count, per gene.

    Parameters
    ----------
    X : scipy.sparse matrix or numpy.ndarray
        Cells x genes counts.

    Returns
    -------
    numpy.ndarray
        (genes,).
    """
    if sp.issparse(X):
        X = sp.csc_matrix(X)
        return np.diff(X.indptr) - np.bincount(
            np.repeat(np.arange(X.shape[1]), np.diff(X.indptr))[X.data <= 0], minlength=X.shape[1])
    return np.count_nonzero(X > 0, axis=0)


def gene_totals(X) -> np.ndarray:
    """The summed count of each gene.

    Parameters
    ----------
    X : scipy.sparse matrix or numpy.ndarray
        Cells x genes counts.

    Returns
    -------
    numpy.ndarray
        (genes,).
    """
    return np.asarray(X.sum(axis=0)).ravel().astype(float)


def default_workers(workers: int | None, nnz: int, n_tasks: int) -> int:
    """``de``'s processes: ``workers`` if given, else every core when the counts hold more than 2 million
    nonzeros (at most one per task), else one.

    Parameters
    ----------
    workers : int, optional
        Asked for.
    nnz : int
        Nonzero counts.
    n_tasks : int
        Tasks there are.

    Returns
    -------
    int
        Processes.
    """
    if workers is not None:
        return max(1, int(workers))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_tasks)) if nnz > 2_000_000 else 1
