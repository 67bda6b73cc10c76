"""Several cell types in one call at scale (issue 22): 8 cell types x 20,000 genes x 100,000 cells x 20 donors.

    python benchmarks/sc_celltypes_speed.py [--types 8] [--genes 20000] [--cells 100000] [--subjects 20]
        ->  benchmarks/results/sc_celltypes_speed.md

1. Simulate each cell type with ``gk.singlecell.simulate`` (its own seed: its own gene means, dispersions and
   donor SDs; the same donors and conditions), 10% DE genes, and write one .h5ad file.
2. In a fresh process: ``gk.singlecell.de(path, "subject", "condition", celltype="cell_type")`` with the
   defaults (every core in one shared worker pool, the trend prior): wall time of the whole call (reading
   the file included) and that process's memory peak (its maximum resident set).
3. Per cell type: cells, genes tested, discoveries at FDR 5%, actual FDP and power against the simulated truth.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import glmmkit as gk

sys.path.insert(0, str(Path(__file__).parent))
from gwas_sparse import _peak_gb  # noqa: E402
from results_io import write_result  # noqa: E402


def _run_de_to_file(path, out):
    """In a fresh, non-daemonic process (its own worker pool may start processes): _run_de, pickled to ``out``."""
    import pickle

    Path(out).write_bytes(pickle.dumps(_run_de(path)))


def _run_de(path):
    t0 = time.perf_counter()
    r = gk.singlecell.de(path, "subject", "condition", celltype="cell_type")
    t = time.perf_counter() - t0
    import resource

    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # the largest worker process (kB)
    return dict(seconds=t, peak=_peak_gb(), worker_peak=worker, table=r.table[["cell_type", "gene", "p", "fdr", "method"]],
                celltypes=r.celltypes, priors={k: (v.prior.d0 if v.prior is not None else np.nan)
                                               for k, v in r.results.items()})


def main():
    import anndata

    ap = argparse.ArgumentParser()
    ap.add_argument("--types", type=int, default=8)
    ap.add_argument("--genes", type=int, default=20000)
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--subjects", type=int, default=20)
    ap.add_argument("--data", default=None,
                    help="keep the simulated .h5ad here (reused when it exists: same sizes, truth in var)")
    ap.add_argument("--simulate-only", action="store_true", help="write --data and stop (the timed run later)")
    a = ap.parse_args()
    per = a.cells // a.types
    with tempfile.TemporaryDirectory(dir="/work/bench" if Path("/work/bench").is_dir() else None) as d:
        path = Path(a.data) if a.data else Path(d) / "cells.h5ad"
        t0 = time.perf_counter()
        if path.exists():  # a kept simulation: the truth is in var
            var = anndata.read_h5ad(path, backed="r").var
            truth = {c[len("is_de_"):]: var[c].to_numpy(bool) for c in var.columns if c.startswith("is_de_")}
        else:
            parts, truth = [], {}
            for k in range(a.types):
                name = f"type{k + 1}"
                x = gk.singlecell.simulate(n_genes=a.genes, n_cells=per, n_subjects=a.subjects, frac_de=0.1, lfc=0.5,
                                           seed=500 + k, sd_trend=0.3)
                x.obs["cell_type"] = name
                truth[name] = x.var["is_de"].to_numpy()
                x.var = x.var[[]]
                parts.append(x)
            allc = anndata.concat(parts, index_unique="-")
            allc.obs["cell_type"] = pd.Categorical(allc.obs["cell_type"])
            for name, is_de in truth.items():
                allc.var[f"is_de_{name}"] = is_de
            allc.write_h5ad(path)
            del allc, parts
        t_sim = time.perf_counter() - t0
        print(f"simulated and wrote (or found) {path} in {t_sim:.0f} s", flush=True)
        if a.simulate_only:
            return
        import pickle

        proc = mp.get_context("spawn").Process(target=_run_de_to_file, args=(str(path), str(Path(d) / "out.pkl")))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"the de run failed (exit code {proc.exitcode})")
        out = pickle.loads((Path(d) / "out.pkl").read_bytes())
        import h5py

        with h5py.File(path, "r") as f:
            nnz = f["X"]["data"].shape[0]
    rows = []
    for name, is_de in truth.items():
        t = out["table"][out["table"]["cell_type"] == name]
        s = (t["fdr"] <= 0.05).to_numpy()
        c = out["celltypes"].loc[name]
        rows.append([name, int(c["n_cells"]), int(c["n_tested"]), int(s.sum()),
                     f"{(s & ~is_de).sum() / max(s.sum(), 1):.3f}", f"{(s & is_de).sum() / is_de.sum():.3f}",
                     f"{out['priors'][name]:.2f}", int((t["method"] != "fast").sum())])
    table = pd.DataFrame(rows, columns=["cell type", "cells", "genes tested", "discoveries (FDR 5%)", "actual FDP",
                                        "power", "prior d0", "genes not on the fast path"])
    n_cells = int(out["celltypes"]["n_cells"].sum())
    text = f"""# Several cell types in one call at scale (issue 22)

`python benchmarks/sc_celltypes_speed.py --types {a.types} --genes {a.genes} --cells {a.cells} --subjects {a.subjects}`,
this machine (2 cores), one run.  {a.types} cell types x {per:,} cells x {a.genes:,} genes, {a.subjects} donors (half in
each condition), simulated by `gk.singlecell.simulate` (each cell type its own seed; donor SD falling with
expression, `sd_trend=0.3`; 10% DE genes, |log fc| 0.5): {n_cells:,} cells, {nnz / 1e6:.0f} million nonzero
counts in one .h5ad file (simulation and writing not counted).

`gk.singlecell.de(path, "subject", "condition", celltype="cell_type")`, defaults (the trend prior, every core
in one worker pool, a progress bar per cell type), in a fresh process: **{out['seconds']:.0f} s
({out['seconds'] / 60:.1f} min; asked: < 15 min), memory peak {out['peak']:.1f} GB** in the main process (reading the
file included), {out['worker_peak']:.1f} GB in the largest worker process.

{table.to_markdown(index=False)}
"""
    write_result("sc_celltypes_speed", text)


if __name__ == "__main__":
    main()
