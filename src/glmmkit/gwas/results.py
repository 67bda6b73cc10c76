"""The result of a genome-wide scan (step 2): one row per variant in PLINK 2's columns, and a summary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..protocol import Result


@dataclass(repr=False)
class ScanResult(Result):
    """Step 2 of a GWAS.

    ``table`` has one row per variant with PLINK 2's ``--glm`` columns (CHR POS ID A1 A2 A1_FREQ N BETA SE
    T_STAT P, and P_NORMAL with the saddlepoint correction); variants below ``min_mac`` are kept with NaN
    statistics.
    """

    table: pd.DataFrame
    trait: str = ""
    min_mac: float = 1.0
    spa: bool = True
    loco: bool = False

    @property
    def n_tested(self) -> int:
        """Variants with a p-value."""
        return int(np.isfinite(self.table["P"]).sum())

    @property
    def lambda_gc(self) -> float:
        """The genomic-control inflation factor of the tested variants (median chi^2 / 0.455)."""
        p = self.table["P"].to_numpy(dtype=float)
        p = p[np.isfinite(p)]
        return float(np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1)) if len(p) else float("nan")

    def top(self, n: int = 10) -> pd.DataFrame:
        """The n smallest p-values.

        Parameters
        ----------
        n : int
            How many.

        Returns
        -------
        pandas.DataFrame
            Rows of ``table``.
        """
        return self.table.nsmallest(n, "P")

    def summary(self) -> str:
        """The scan as text.

        Returns
        -------
        str
            Variants, tested, lambda_GC, the genome-wide hits and the top five.
        """
        t = self.table
        hits = int((t["P"] < 5e-8).sum())
        lines = [f"GWAS score tests ({self.trait or 'trait'}{', LOCO' if self.loco else ''}"
                 f"{', saddlepoint-corrected' if self.spa else ''}): {len(t)} variants, {self.n_tested} tested "
                 f"(MAC >= {self.min_mac:g})",
                 f"  lambda_GC {self.lambda_gc:.3f}; p < 5e-8: {hits}",
                 "  top variants:"]
        cols = [c for c in ("CHR", "POS", "ID", "BETA", "SE", "P") if c in t.columns]
        lines += ["    " + line for line in self.top(5)[cols].to_string(index=False).splitlines()]
        return "\n".join(lines)

    def _as_dict(self) -> dict:
        return {"trait": self.trait, "variants": len(self.table), "tested": self.n_tested, "min_mac": self.min_mac,
                "spa": self.spa, "loco": self.loco, "lambda_gc": self.lambda_gc,
                "genome_wide_hits": int((self.table["P"] < 5e-8).sum()),
                "top": self.top(10).to_dict(orient="records")}

    def __repr__(self) -> str:
        return f"<glmmkit ScanResult: {len(self.table)} variants, {self.n_tested} tested>"
