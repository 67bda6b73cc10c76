"""Phenotype and covariate tables keyed by FID/IID (as PLINK and REGENIE take them), matched to the .fam.

Every sample that does not make it into the analysis is counted with its reason: not in the genotype
file, phenotype missing, a covariate missing.  Binary phenotypes may be coded 0/1 or PLINK's 1/2
(control/case); -9 and NA are missing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .plink import Genotypes, check_unique_ids
from ..errors import InputError
from ..readers import read_text_table


def read_table(path) -> pd.DataFrame:
    """A whitespace- or tab-separated table with a header naming FID and IID (``#FID`` accepted).

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    pandas.DataFrame
        The table (FileFormatError names a file without FID and IID).
    """
    df = read_text_table(path, "sample table", sep=r"\s+", dtype={0: str, 1: str})
    df.columns = [str(c).lstrip("#") for c in df.columns]
    for c in ("FID", "IID"):
        if c not in df.columns:
            raise InputError(f"{path}: the header must name FID and IID; it has {list(df.columns)}")
    df["FID"], df["IID"] = df["FID"].astype(str), df["IID"].astype(str)
    check_unique_ids(df, path)
    return df


@dataclass
class Samples:
    rows: np.ndarray             # indices into the .fam, in analysis order
    ids: pd.DataFrame            # FID, IID of those rows
    y: np.ndarray
    X: np.ndarray                # intercept + covariates
    x_names: list[str]
    trait: str
    report: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The number of samples analysed."""
        return len(self.rows)


def match(geno: Genotypes, pheno: pd.DataFrame, pheno_col: str | None = None, covar: pd.DataFrame | None = None,
          covar_cols=None, trait: str = "binary") -> Samples:
    """The samples with genotypes, phenotype and every covariate, in .fam order.

    Samples without a phenotype or a covariate are dropped and counted in ``report``.

    Parameters
    ----------
    geno : Genotypes
        The genotypes (their .fam order is kept).
    pheno : pandas.DataFrame
        FID, IID and the trait.
    pheno_col : str, optional
        The trait's column.
    covar : pandas.DataFrame, optional
        FID, IID and covariates.
    covar_cols : list of str, optional
        Covariates to use.
    trait : {"binary", "count", "quantitative"}
        The trait's kind (checked against the values).

    Returns
    -------
    Samples
        Response, design, IDs, .fam rows and the report.
    """
    if trait not in ("binary", "quantitative", "count"):
        raise InputError(f"trait must be 'binary', 'quantitative' or 'count', got {trait!r}")
    cols = [c for c in pheno.columns if c not in ("FID", "IID")]
    if pheno_col is None:
        if not cols:
            raise InputError("the phenotype table has no phenotype column")
        pheno_col = cols[0]
    if pheno_col not in pheno.columns:
        raise InputError(f"phenotype {pheno_col!r} not in the phenotype table; columns: {cols}")
    fam = geno.samples.reset_index(drop=True).assign(_row=np.arange(geno.n_samples))
    report = {"in .fam": geno.n_samples}
    # a genotype source without family IDs (VCF, BGEN, a .psam without FID) is matched by IID alone; the
    # tables' FIDs are then kept from the genotype side
    on = ["FID", "IID"] if getattr(geno, "fid_known", True) else ["IID"]
    for what, table in (("phenotype", pheno), ("covariate", covar)):
        if table is not None and on == ["IID"] and table["IID"].duplicated().any():
            dup = table["IID"][table["IID"].duplicated()].iloc[0]
            raise InputError(f"the {what} table repeats IID {dup!r}; {geno.sample_file} has no family IDs, so samples "
                             "are matched by IID, which must then be unique")
    keyed = pheno[on + [pheno_col]].rename(columns={pheno_col: "_y"})
    df = fam.merge(keyed, on=on, how="left", indicator=True)
    report["no phenotype row"] = int((df["_merge"] == "left_only").sum())
    report["phenotype rows not in .fam"] = int(len(pheno) - (df["_merge"] == "both").sum())
    df = df.drop(columns="_merge")
    y = pd.to_numeric(df["_y"], errors="coerce")
    y = y.where((y != -9) & np.isfinite(y))
    if trait == "binary":
        vals = set(np.unique(y.dropna()))
        if vals <= {1.0, 2.0} and 2.0 in vals:
            y = y - 1  # PLINK 1/2 coding
        elif vals <= {0.0, 1.0, 2.0} and 2.0 in vals:
            raise InputError(f"phenotype {pheno_col!r} mixes 0/1 and 1/2 coding: values {sorted(vals)}")
        bad = y.notna() & ~y.isin([0.0, 1.0])
        if bad.any():
            r = df.loc[bad].iloc[0]
            raise InputError(f"binary phenotype {pheno_col!r} must be 0/1 (or 1/2): sample {r.FID}/{r.IID} has {r._y}")
    report["phenotype missing"] = int((y.isna()).sum() - report["no phenotype row"])
    keep = y.notna().to_numpy()
    covar_cols = list(covar_cols or [])
    Xcov = np.zeros((len(df), 0))
    if covar is not None:
        if not covar_cols:
            covar_cols = [c for c in covar.columns if c not in ("FID", "IID")]
        missing_cols = [c for c in covar_cols if c not in covar.columns]
        if missing_cols:
            raise InputError(f"covariate(s) {missing_cols} not in the covariate table; columns: {list(covar.columns)}")
        cv = fam[["FID", "IID"]].merge(covar[on + covar_cols], on=on, how="left")
        vals = cv[covar_cols].apply(pd.to_numeric, errors="coerce")
        vals = vals.where((vals != -9) & np.isfinite(vals))
        ok = vals.notna().all(axis=1).to_numpy()
        report["covariate missing"] = int((keep & ~ok).sum())
        keep &= ok
        Xcov = vals.to_numpy(dtype=float)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise InputError("no sample has genotypes, phenotype and covariates: check that FID/IID match the .fam")
    yk = y.to_numpy(dtype=float)[rows]
    if trait == "binary" and len(np.unique(yk)) < 2:
        raise InputError(f"binary phenotype {pheno_col!r} has one class only ({int(yk[0])}) among the {len(rows)} samples")
    if trait == "count" and (np.any(yk < 0) or np.any(yk != np.round(yk))):
        raise InputError(f"count phenotype {pheno_col!r} must be non-negative integers")
    Xk = Xcov[rows]
    for j, c in enumerate(covar_cols):
        if np.ptp(Xk[:, j]) == 0:
            raise InputError(f"covariate {c!r} is constant ({Xk[0, j]:g}) over the {len(rows)} analysed samples")
    X = np.column_stack([np.ones(len(rows)), Xk])
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise InputError(f"covariates {covar_cols} are collinear (with the intercept or each other)")
    report["analysed"] = len(rows)
    ids = geno.samples.iloc[rows].reset_index(drop=True)
    return Samples(rows, ids, yk, X, ["(Intercept)", *covar_cols], trait, report)
