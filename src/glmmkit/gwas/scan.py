"""The two steps of a mixed-model GWAS (as SAIGE and REGENIE split them), and the summary checks.

    step 1  gk.gwas.null(bfile, pheno, ...)  -> NullModel (saved with .save(prefix))
    step 2  gk.gwas.test(bfile, null, ...)   -> one row per variant (CHR POS ID A1 A2 A1_FREQ N BETA SE
                                                 T_STAT P [P_NORMAL]), written as TSV (gzip by suffix)

Variant chunks are independent tasks: in this process, in local processes (``workers``) or on a Dask
cluster (``client``) -- the same numbers.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from ..parallel import map_tasks
from .results import ScanResult
from .grm import check_psd, grm, pattern_grm, read_gcta, sparse_grm, threshold_grm
from .screen import build_sparse_grm
from .implicit import IMPLICIT_MAX_BYTES, ImplicitGRM, implicit_grm
from .null import NullModel, _sigma_parts, fit_null, loco_models
from .plink import Genotypes
from .sources import open_genotypes
from .score import ScoreTester
from .tables import match, read_table
from ..checks import check_choice, check_int
from ..errors import InputError, SampleMismatchError
from ..warnings import DroppedRowsWarning, ModelChangeWarning
from ..output import check_output_path, write_table


def _as_table(x):
    if x is None or isinstance(x, pd.DataFrame):
        return x
    return read_table(x)


def null(bfile, pheno, pheno_col: str | None = None, covar=None, covar_cols=None, trait: str = "binary",
         grm_prefix=None, K: np.ndarray | None = None, method: str = "pql", exact_max: int = 5000,
         vr_variants: int = 30, min_mac: int = 20, seed: int = 1, progress_bar: bool = True,
         fix_tau: float | None = None, loco: bool = False, loco_exact_max: int = 3000,
         sparse: float | None = None, screen: int | str | None = "auto", grm_form: str = "auto") -> NullModel:
    """Step 1: match the samples, get the GRM (given ``K`` in the samples' order, a GCTA ``grm_prefix``, or
    built from ``bfile``), fit the null GLMM, and estimate the variance ratio from ``vr_variants`` random
    variants with minor-allele count >= ``min_mac``.

    ``loco``: leave-one-chromosome-out (SAIGE's way): for each chromosome c the GRM without c's variants,
    K_-c = (m K - m_c K_c) / (m - m_c), and the random effects predicted again with tau held at its
    estimate; step 2 tests c's variants against that model (the tested variant no longer sits in its own
    GRM: no proximal contamination).  Needs the GRM built here from ``bfile``.

    ``sparse``: threshold the GRM (fastGWA's sparse GRM, entries below ``sparse`` set to 0) and fit the null
    model by conjugate gradients on it (SAIGE's PCG): nothing n x n is factorised, and when the GRM is
    built here (no ``K``, no ``grm_prefix``) nothing n x n is held either (``sparse_grm``: by strips).
    ``screen``: how that sparse GRM is built -- from pairs screened by a sketch on a few variants
    (``screen.py``: n^2 k / 2 + pairs x m instead of n^2 m / 2), an int k for k sketch variants, ``None`` for
    the exact strips; ``"auto"`` screens above 20,000 samples when the sketch is at most half of the
    variants.  The model's covariates are projected out of the sketch (``adjust``): with ancestry PCs among
    them, the screen also works in a structured cohort.  What the screen did is in ``model.report["sparse_grm_screen"]``.

    ``grm_form``: how a dense GRM built here is held -- ``"matrix"`` (n x n, Cholesky), ``"implicit"`` (the
    standardised genotypes Z, K = Z Z'/m, every system solved by conjugate gradients from products with Z:
    n m bytes, packed, instead of n^2 8, no n^3 factorisation; ``implicit.py``), or ``"auto"``: implicit above
    ``IMPLICIT_MIN_SAMPLES`` (5,000) and ``exact_max`` samples when Z fits in ``implicit.IMPLICIT_MAX_BYTES``.
    An ``ImplicitGRM`` can also be passed as ``K``.

    Parameters
    ----------
    bfile : str
        The PLINK prefix.
    pheno : str or pandas.DataFrame
        The phenotype table (FID, IID, trait).
    pheno_col : str, optional
        The trait's column (default: the first after FID and IID).
    covar : str or pandas.DataFrame, optional
        The covariate table.
    covar_cols : list of str, optional
        Covariates to use (default: all).
    trait : {"binary", "count", "quantitative"}
        The trait's kind (binomial-logit, Poisson-log or Gaussian).
    grm_prefix : str, optional
        A GCTA GRM to use.
    K : numpy.ndarray, optional
        A GRM in the samples' order.
    method : {"pql", "laplace"}
        How the null model is fitted.
    exact_max : int
        Exact variances up to this many samples.
    vr_variants : int
        Random variants for the variance ratio.
    min_mac : int
        Their minimum minor-allele count.
    seed : int
        Seed.
    progress_bar : bool
        Show progress bars.
    fix_tau : float, optional
        Hold the genetic variance (0: the GLM).
    loco : bool
        Leave one chromosome out.
    loco_exact_max : int
        Exact LOCO projections up to this many samples.
    sparse : float, optional
        Threshold a sparse GRM there and fit by conjugate gradients.
    screen : int, "auto" or None
        Screen the sparse GRM's pairs with a sketch of this many variants ("auto": where it pays; None: never).
    grm_form : {"auto", "matrix", "implicit"}
        How the dense GRM built here is held.

    Returns
    -------
    NullModel
        Step 1's model (``.save(prefix)`` for the command line's step 2).
    """
    if loco and (grm_prefix is not None or (K is not None and not isinstance(K, ImplicitGRM))):
        raise InputError("loco=True needs the GRM built here from bfile, or an implicit GRM (implicit_grm, which "
                         "knows its variants' chromosomes): pass neither a GRM matrix K nor grm_prefix (--grm) "
                         "with loco")
    if loco and isinstance(K, ImplicitGRM) and K.chrom is None:
        raise InputError("leave-one-chromosome-out needs the implicit GRM's chromosome labels (build it with "
                         "implicit_grm, or give ImplicitGRM(Z, chrom))")
    method = check_choice("method", method, ("pql", "laplace"))
    grm_form = check_choice("grm_form", grm_form, ("auto", "matrix", "implicit"))
    if grm_form == "implicit" and (sparse is not None or grm_prefix is not None or K is not None):
        raise InputError("grm_form='implicit' builds the dense GRM from the genotypes and holds it implicitly; "
                         "it cannot be combined with sparse=, grm_prefix= or a K (pass an ImplicitGRM as K "
                         "instead)")
    screened = None
    geno = open_genotypes(bfile)
    s = match(geno, _as_table(pheno), pheno_col, _as_table(covar), covar_cols, trait)
    if K is None and grm_prefix is not None:
        Kfull, ids, _ = read_gcta(grm_prefix)
        key = ids["FID"] + "\t" + ids["IID"]
        pos = pd.Series(np.arange(len(ids)), index=key)
        want = s.ids["FID"] + "\t" + s.ids["IID"]
        missing = ~want.isin(pos.index)
        if missing.any():
            raise InputError(f"{int(missing.sum())} analysed samples are not in the GRM {grm_prefix}.grm.id, "
                             f"first {want[missing].iloc[0]!r}")
        ix = pos[want].to_numpy()
        K = Kfull[np.ix_(ix, ix)]
    elif K is None and sparse is not None:
        # the model's covariates (ancestry PCs among them) projected out of the screen's sketch
        K, m_all, screened = build_sparse_grm(geno, sparse, rows=s.rows, screen=screen, adjust=s.X,
                                              progress_bar=progress_bar)  # never n x n
    elif K is None and _implicit_wanted(grm_form, s.n, geno.n_variants, exact_max):
        K = implicit_grm(geno, rows=s.rows)
        m_all = K.m
    elif K is None:
        K, m_all = grm(geno, rows=s.rows, progress_bar=progress_bar)
    if sparse is not None:
        if isinstance(K, ImplicitGRM):
            raise InputError("sparse= thresholds a GRM matrix; an implicit GRM is dense (give one or the other)")
        K = threshold_grm(np.asarray(K, dtype=float), sparse) if not sp.issparse(K) else K
    elif isinstance(K, ImplicitGRM):
        if K.shape != (s.n, s.n):
            raise InputError(f"the implicit GRM is over {K.n} samples but {s.n} are analysed: build it from the "
                             "same samples (rows=) in .fam order")
    else:
        K = np.asarray(K, dtype=float)
        check_psd(K)
    model = fit_null(s, K, method=method, exact_max=exact_max, seed=seed, fix_tau=fix_tau)
    if not model.converged and method == "pql" and fix_tau is None:
        if s.n > exact_max or isinstance(K, ImplicitGRM):
            raise InputError(f"the PQL null model did not converge (tau = {model.tau:.3g} after {model.iterations} "
                             "iterations); with very few cases PQL can diverge. Try method='laplace' on a subset, "
                             "or fewer covariates")
        warnings.warn(f"PQL did not converge (tau -> {model.tau:.3g}); refitted by the core engine's Laplace "
                      "approximation (method='laplace')", ModelChangeWarning, stacklevel=2)
        model = fit_null(s, K, method="laplace", exact_max=exact_max)
        if model.tau > 50:
            raise InputError(f"no finite estimate of tau for these data (PQL diverged; Laplace gives {model.tau:.3g}): "
                             "a binary trait with one observation per person and a nearly full-rank GRM can be "
                             "separated by the random effects. Use fewer, more distant relatives or fix tau")
    model.report = dict(s.report)
    if screened is not None:
        model.report["sparse_grm_screen"] = screened.to_dict()
    _variance_ratio(model, geno, K, vr_variants, min_mac, seed)
    if loco and isinstance(K, ImplicitGRM):
        model.loco = loco_models(model, K)
    elif loco:
        model.loco = _loco(model, geno, s, K, m_all, keep_P=s.n <= loco_exact_max and not sp.issparse(K),
                           progress_bar=progress_bar)
    return model


#: ``grm_form="auto"`` holds the GRM implicitly above this many samples and above ``exact_max`` (up to which the
#: matrix keeps P, for the exact variance of the hits).  Measured beside BOLT-LMM-inf (docs/gwas.md), the whole
#: job at 10,012 samples: 55 s implicit against 94 s with the matrix; at 4,990: 29 s against 42 s, where P wins
IMPLICIT_MIN_SAMPLES = 5_000


def _implicit_wanted(form: str, n: int, m: int, exact_max: int) -> bool:
    if form == "implicit":
        return True
    return (form == "auto" and n > max(IMPLICIT_MIN_SAMPLES, exact_max)
            and float(n) * m <= IMPLICIT_MAX_BYTES)


def _loco(model: NullModel, geno: Genotypes, s, K, m_all, keep_P, progress_bar) -> dict:
    from ..progress import progress

    out = {}
    chroms = pd.unique(geno.variants["CHR"])
    sparse = sp.issparse(K)
    if sparse:  # the sparse GRM's pattern: each chromosome's share computed at its nonzeros only
        Kc_ = K.tocoo()
        I, J = Kc_.row, Kc_.col
    for c in progress(chroms, total=len(chroms), desc="LOCO", enable=progress_bar):
        idx = np.flatnonzero(geno.variants["CHR"].to_numpy() == c)
        try:
            if sparse:
                vals, mc = pattern_grm(geno, I, J, rows=s.rows, variants=idx)
                Kc = sp.csr_matrix((vals, (I, J)), shape=K.shape)
            else:
                Kc, mc = grm(geno, rows=s.rows, variants=idx, progress_bar=False)
        except ValueError:  # no polymorphic variant on c
            continue
        if mc >= m_all:
            continue
        Km = (m_all * K - mc * Kc) / (m_all - mc)
        if sparse:
            Km = sp.csr_matrix(Km)
        sub = fit_null(s, Km, fix_tau=model.tau, fix_phi=model.phi if model.trait == "quantitative" else None,
                       keep_P=keep_P, tau0=model.tau)
        d = {"mu": sub.mu, "W": sub.W, "b": sub.b, "beta": sub.beta}
        if sub.P is not None:
            d["P"] = sub.P
        out[str(c)] = d
    return out


def _variance_ratio(model: NullModel, geno: Genotypes, K, n_var, min_mac, seed) -> None:
    """r = mean over random variants of g'Pg / g~'W~g~ (SAIGE's variance ratio)."""
    rng = np.random.default_rng(seed)
    cand = rng.permutation(geno.n_variants)
    picked, ratios = [], []
    proj = _sigma_parts(model.W, model.phi, model.tau, K, model.X, np.zeros(model.n))
    tester_w = model.W / model.phi
    for start in range(0, len(cand), 200):
        idx = np.sort(cand[start : start + 200])
        G, _ = _read_cols(geno, idx, model.rows)
        ac = G.sum(axis=0)
        mac = np.minimum(ac, 2 * model.n - ac)
        # only as many as are still wanted: with a sparse or implicit GRM each column is a solve
        ok = np.flatnonzero(mac >= min_mac)[: n_var - len(ratios)]
        G = G[:, ok]
        if G.shape[1] == 0:
            continue
        exact = np.einsum("ij,ij->j", G, proj.apply(G))
        WX = model.X * tester_w[:, None]
        XWG = WX.T @ G
        vt = np.einsum("ij,ij->j", G * tester_w[:, None], G) - np.einsum(
            "ij,ik,kj->j", XWG, np.linalg.inv(model.X.T @ WX), XWG)
        ratios.extend(exact / vt)
        picked.extend(idx[ok])
        if len(ratios) >= n_var:
            break
    ratios = np.array(ratios[:n_var])
    if len(ratios) == 0:
        raise InputError(f"no variant with minor-allele count >= {min_mac}: cannot estimate the variance ratio")
    model.variance_ratio = float(np.mean(ratios))
    model.vr_detail = {"n_variants": int(len(ratios)), "cv": float(np.std(ratios) / np.mean(ratios)),
                       "variants": [int(v) for v in picked[:n_var]]}


def _read_cols(geno, idx, rows):
    return geno.read_columns(idx, rows)


def _test_task(shared, item):
    bed, testers, rows = shared
    start, stop, chrom = item
    tester = testers.get(chrom, testers[None])
    G, miss = bed.read(start, stop, rows)
    r = tester.test(G)
    n = len(rows)
    r["A1_FREQ"] = r.pop("G_SUM") / (2 * n)
    r["N"] = n - miss
    return start, r


#: step 2's tasks read about this many bytes of genotypes (float64) each when ``chunk`` is not given
CHUNK_BYTES = 4e8


def chunk_for(n: int, chunk: int | None = None) -> int:
    """Variants per step-2 task: ``chunk`` when given, else as many as fit ``CHUNK_BYTES`` at n samples (500 to
    20,000: 5,000 at 10,000 samples, 1,246 at 40,121), so a task's memory does not grow with the cohort.

    Parameters
    ----------
    n : int
        Samples tested.
    chunk : int, optional
        The asked size (checked: a positive integer).

    Returns
    -------
    int
        Variants per task.
    """
    if chunk is not None:
        return check_int("chunk", chunk, 1)
    return int(min(20_000, max(500, CHUNK_BYTES // (8 * max(n, 1)))))


def test(bfile, null_model: NullModel | str, out=None, chunk: int | None = None, exact: bool | None = None,
         spa: bool = True, min_mac: float = 1, workers: int = 1, client=None, progress_bar: bool = True) -> ScanResult:
    """Step 2: the score test of every variant.

    Parameters
    ----------
    bfile : str
        The PLINK .bed/.bim/.fam prefix.
    null_model : NullModel or str
        The step-1 model, or the prefix it was saved under.
    out : str or path, optional
        Write the per-variant table there (TSV; ``.gz`` compresses), atomically.
    chunk : int, optional
        Variants per task (default: ``chunk_for``'s, sized to the samples so a task reads about 400 MB).
    exact : bool, optional
        True: the exact variance g'Pg for every variant (needs the stored P); False: the variance ratio for
        every variant; None (default): the variance ratio, and the exact variance for the variants with a
        variance-ratio p below 0.01 where the null model kept P (O(n) per variant at every n).
    spa : bool
        Saddlepoint-corrected p-values (binary traits).
    min_mac : float
        Variants with a smaller minor-allele count get NaN statistics (kept in the table).
    workers : int
        Local processes.
    client : dask.distributed.Client, optional
        Spread the chunks on a Dask cluster.
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    ScanResult
        ``table`` (PLINK 2's columns), ``summary()``, ``to_dict()``, ``lambda_gc``, ``top()``.
    """
    workers = check_int("workers", workers, 1)
    if out is not None:
        check_output_path(out, "out")
    geno = open_genotypes(bfile)
    model = NullModel.load(null_model) if isinstance(null_model, (str, Path)) else null_model
    rows = match_null_samples(model, geno)
    chunk = chunk_for(len(rows), chunk)
    tester = ScoreTester(model, exact=exact, spa=spa)
    testers = {None: tester}
    chrom = geno.variants["CHR"].astype(str).to_numpy()
    if model.loco:
        for c in model.loco:
            testers[c] = ScoreTester(model.for_chromosome(c), exact=exact, spa=spa)
    # chunks never straddle chromosomes (each chromosome has its own LOCO model)
    bounds = np.flatnonzero(np.r_[True, chrom[1:] != chrom[:-1], True])
    items = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        items += [(s, min(s + chunk, b), chrom[a] if model.loco else None) for s in range(a, b, chunk)]
    res = map_tasks(_test_task, items, shared=(geno.handle, testers, rows), workers=workers, client=client,
                    desc="score tests", progress_bar=progress_bar, total=len(items))
    cols = ["A1_FREQ", "N", "BETA", "SE", "T_STAT", "P"] + (["P_NORMAL"] if tester.spa else [])
    parts = {c: np.concatenate([r[c] for _, r in res]) for c in cols}
    df = pd.concat([geno.variants.reset_index(drop=True), pd.DataFrame(parts)], axis=1)
    mac = np.minimum(df["A1_FREQ"], 1 - df["A1_FREQ"]) * 2 * df["N"]
    low = mac < min_mac
    df.loc[low, ["BETA", "SE", "T_STAT", "P"] + (["P_NORMAL"] if tester.spa else [])] = np.nan
    if out is not None:
        write_table(df, out, sep="\t", index=False, float_format="%.6g")
    return ScanResult(df, trait=model.trait, min_mac=float(min_mac), spa=bool(tester.spa), loco=bool(model.loco))


def match_null_samples(model: NullModel, geno: Genotypes) -> np.ndarray:
    """Rows of the genotype file's samples that are the null model's samples, in the model's order,
    matched by FID/IID (never by position).

    Every sample of the null model must be in the genotype file: its residuals were fitted with all of
    them, so a subset cannot be tested against it (refused).  Extra samples in the genotype file are
    left out and counted in a warning.

    Parameters
    ----------
    model : NullModel
        Step 1's model, with its sample IDs.
    geno : Genotypes
        Step 2's genotype files.

    Returns
    -------
    numpy.ndarray
        Indices into the genotype file's samples.
    """
    ids = model.ids
    if ids is None or len(ids) != model.n:
        raise SampleMismatchError("the null model carries no sample IDs for its samples; run `gwas null` again")
    # a source without family IDs (VCF, BGEN, a .psam without FID) is matched by IID alone
    key = ((lambda d: d["FID"].astype(str).str.cat(d["IID"].astype(str), sep="\t")) if geno.fid_known  # noqa: E731
           else (lambda d: d["IID"].astype(str)))
    pos = pd.Series(np.arange(geno.n_samples), index=key(geno.samples))
    want = key(ids)
    found = want.isin(pos.index).to_numpy()
    if not found.all():
        first = ids.loc[~found].iloc[0]
        raise SampleMismatchError(
            f"{int((~found).sum())} of the null model's {model.n} samples are not in {geno.sample_file} "
            f"(first: {first['FID']}/{first['IID']}); step 2 needs every sample of step 1 (match FID/IID, or "
            "fit the null model on the samples this genotype file has)")
    rows = pos[want].to_numpy()
    extra = geno.n_samples - model.n
    if extra:
        warnings.warn(f"{extra} samples of {geno.sample_file} are not in the null model and are not tested "
                      f"({model.n} of {geno.n_samples} used)", DroppedRowsWarning, stacklevel=3)
    return rows


def lambda_gc(p) -> float:
    """Genomic-control lambda: median chi-square(1) of the p-values over its null median (0.4549).

    Parameters
    ----------
    p : array-like
        p-values (non-finite ones are ignored).

    Returns
    -------
    float
        lambda_GC.
    """
    p = np.asarray(p, dtype=float)
    p = p[np.isfinite(p)]
    return float(np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1))


def top_hits(results: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The variants with the smallest p-values.

    Parameters
    ----------
    results : pandas.DataFrame or ScanResult
        Step 2's table (or its result).
    n : int
        How many.

    Returns
    -------
    pandas.DataFrame
        The rows.
    """
    table = results.table if isinstance(results, ScanResult) else results
    return table.nsmallest(n, "P")

