"""The null model of a GWAS: a GLMM  g(E y) = X beta + b,  b ~ N(0, tau K),  K the GRM.

Two ways to fit it:

- ``method="pql"`` (default; GMMAT's glmmkin, SAIGE's step 1): penalised quasi-likelihood with AI-REML.
  Working response Y = eta + (y - mu)/mu'(eta), weights W = mu'^2 / V(mu), Sigma = phi W^-1 + tau K,
  P = Sigma^-1 - Sigma^-1 X (X' Sigma^-1 X)^-1 X' Sigma^-1;  each iteration: beta by GLS, the REML score
  s = (Y'PKPY - tr(PK)) / 2 and average information AI = Y'PKPKPY / 2 give tau <- tau + s / AI (the first
  step EM-like, tau <- tau + 2 tau^2 s / n), then b = tau K P Y.  Dense: one Cholesky of Sigma per
  iteration; tr(PK) exact from Sigma^-1 (LAPACK potri) up to ``exact_max`` samples, above by Hutchinson's
  estimator with 30 Rademacher vectors (as SAIGE).  Gaussian traits: the same AI-REML over (tau, phi),
  which is exact REML.
- ``method="laplace"``: the core engine, ``gk.glmer(y ~ covariates + (1 | iid), relmat={iid: K})``
  (Laplace ML), at moderate n.

Either gives tau, beta, the conditional means mu, the weights, P Y (= (y - mu) / phi), and for the
score tests the variance ratio (SAIGE): the mean over >= 30 random variants of g'Pg / g~'W g~.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from ..engine.glm import glm
from ..families import get_family
from .implicit import ImplicitGRM, ImplicitProjection, conjugate_gradients
from .tables import Samples
from ..errors import InputError
from ..errors import FileFormatError, MissingFileError
from ..output import atomic_paths, dumps_strict
from ..protocol import Result
from ..readers import read_text_table, require_file


#: a genetic variance beyond this on the link scale means PQL's REML has no finite maximum for these data
TAU_MAX = 50.0


@dataclass(repr=False)
class NullModel(Result):
    """Step 1 of a GWAS: the null GLMM's estimates and the pieces the score tests need."""

    trait: str
    ids: pd.DataFrame
    y: np.ndarray
    X: np.ndarray
    x_names: list
    beta: np.ndarray
    tau: float
    phi: float
    mu: np.ndarray
    W: np.ndarray            # working weights mu'^2 / V(mu)
    b: np.ndarray            # predicted random effects
    method: str
    converged: bool
    iterations: int
    rows: np.ndarray | None = None  # .fam rows of the samples
    P: np.ndarray | None = field(default=None, repr=False)  # exact projection (moderate n)
    variance_ratio: float | None = None
    vr_detail: dict | None = None
    report: dict | None = None  # samples in the .fam, dropped and why, analysed
    loco: dict | None = field(default=None, repr=False)  # chromosome -> {"mu", "W", "b", "P"?}: leave-one-chromosome-out

    def for_chromosome(self, chrom: str) -> "NullModel":
        """The null model whose random effects were predicted without chromosome ``chrom`` (LOCO).

        Parameters
        ----------
        chrom : str
            The chromosome.

        Returns
        -------
        NullModel
            The LOCO model (self when there is none for ``chrom``).
        """
        if not self.loco or str(chrom) not in self.loco:
            return self
        d = self.loco[str(chrom)]
        return NullModel(self.trait, self.ids, self.y, self.X, self.x_names, d.get("beta", self.beta), self.tau,
                         self.phi, d["mu"], d["W"], d["b"], self.method, self.converged, self.iterations, self.rows,
                         d.get("P"), self.variance_ratio, self.vr_detail, self.report)

    @property
    def n(self) -> int:
        """The number of samples."""
        return len(self.y)

    @property
    def residuals(self) -> np.ndarray:
        """(y - mu) / phi = P Y: the score of a variant g is g' residuals."""
        return (self.y - self.mu) / self.phi

    def summary(self) -> str:
        """The null model as text.

        Returns
        -------
        str
            Trait, method, n, tau (and phi), convergence, the fixed effects and the variance ratio.
        """
        lines = [f"Null GLMM ({self.trait}, {self.method}): n = {self.n}, tau = {self.tau:.4g}"
                 + (f", phi = {self.phi:.4g}" if self.trait == "quantitative" else "")
                 + f", {'converged' if self.converged else 'NOT converged'} in {self.iterations} iterations"]
        for nm, b in zip(self.x_names, self.beta):
            lines.append(f"  {nm:20s} {b: .5f}")
        if self.variance_ratio is not None:
            lines.append(f"  variance ratio {self.variance_ratio:.4f} (from {self.vr_detail.get('n_variants', 0)} variants)")
        return "\n".join(lines)

    def _as_dict(self) -> dict:
        return {"trait": self.trait, "method": self.method, "n": self.n, "tau": self.tau, "phi": self.phi,
                "fixef": dict(zip(map(str, self.x_names), map(float, self.beta))), "converged": self.converged,
                "iterations": self.iterations, "variance_ratio": self.variance_ratio, "vr_detail": self.vr_detail,
                "report": self.report, "loco": sorted(self.loco) if self.loco else []}

    def __repr__(self) -> str:
        return (f"<glmmkit NullModel {self.trait} ({self.method}): n={self.n}, tau={self.tau:.4g}, "
                f"{'converged' if self.converged else 'NOT converged'}>")

    # ---- save / load (step 1 -> step 2) ------------------------------------------------------------
    def save(self, prefix) -> None:
        """Write the model as ``prefix.null.json``, ``.null.npz`` and ``.null.ids.tsv``, renamed into place together.

        Parameters
        ----------
        prefix : str or path-like
            The files' prefix (``gwas test --null`` reads it back with ``NullModel.load``).
        """
        prefix = str(prefix)
        meta = {k: getattr(self, k) for k in ("trait", "x_names", "tau", "phi", "method", "converged", "iterations",
                                             "variance_ratio", "vr_detail", "report")}
        meta["beta"] = list(map(float, self.beta))
        arrays = dict(y=self.y, X=self.X, mu=self.mu, W=self.W, b=self.b,
                      rows=self.rows if self.rows is not None else np.arange(self.n))
        if self.P is not None:
            arrays["P"] = self.P
        meta["loco"] = sorted(self.loco) if self.loco else []
        for c, d in (self.loco or {}).items():
            for k, v in d.items():
                arrays[f"loco_{c}_{k}"] = v
        with atomic_paths([prefix + ".null.json", prefix + ".null.npz", prefix + ".null.ids.tsv"]) as (js, npz, ids):
            Path(js).write_text(dumps_strict(meta, indent=1))
            with open(npz, "wb") as fh:  # a file object: np.savez would append .npz to a name
                np.savez(fh, **arrays)
            self.ids.to_csv(ids, sep="\t", index=False)

    @classmethod
    def load(cls, prefix) -> "NullModel":
        """Read a null model written by ``save`` (``gwas null``).

        Parameters
        ----------
        prefix : str or path-like
            The prefix of ``.null.json``, ``.null.npz`` and ``.null.ids.tsv``.

        Returns
        -------
        NullModel
            The model; a missing, truncated or inconsistent set raises ``FileFormatError``.
        """
        prefix = str(prefix)
        if not Path(prefix + ".null.json").exists():
            raise MissingFileError(f"no null model at {prefix} (expected {prefix}.null.json from `gwas null`)")
        for suffix in (".null.npz", ".null.ids.tsv"):
            require_file(prefix + suffix, "saved null model")
        try:
            meta = json.loads(Path(prefix + ".null.json").read_text())
            with np.load(prefix + ".null.npz") as npz:
                a = {k: npz[k] for k in npz.files}
        except Exception as err:  # json, zipfile and numpy raise many kinds for a damaged file
            raise FileFormatError(f"the saved null model {prefix} is damaged or truncated "
                                  f"({type(err).__name__}: {err}); run `gwas null` again") from None
        ids = read_text_table(prefix + ".null.ids.tsv", "saved null model's sample list", sep="\t", dtype=str)
        try:
            num = lambda v: np.nan if v is None else float(v)  # noqa: E731  (strict JSON keeps NaN as null)
            loco = {}
            for c in meta.get("loco", []):
                loco[c] = {k: a[f"loco_{c}_{k}"] for k in ("mu", "W", "b", "P", "beta") if f"loco_{c}_{k}" in a}
            model = cls(meta["trait"], ids, a["y"], a["X"], meta["x_names"], np.array(meta["beta"], dtype=float),
                        num(meta["tau"]), num(meta["phi"]), a["mu"], a["W"], a["b"], meta["method"],
                        bool(meta["converged"]), meta["iterations"], a["rows"], a.get("P"),
                        meta.get("variance_ratio"), meta.get("vr_detail"), meta.get("report"), loco or None)
        except (KeyError, TypeError, ValueError) as err:
            raise FileFormatError(f"the saved null model {prefix} lacks {err} or holds a wrong value; "
                                  "run `gwas null` again") from None
        n = len(model.y)
        if not (len(ids) == n == len(model.mu) == len(model.W) == model.X.shape[0]):
            raise FileFormatError(f"the saved null model {prefix} is inconsistent: {len(ids)} sample IDs, "
                                  f"{n} responses, {len(model.mu)} fitted means; run `gwas null` again")
        if not {"FID", "IID"} <= set(ids.columns):
            raise FileFormatError(f"{prefix}.null.ids.tsv must have FID and IID columns")
        return model


# ---- families on the working scale: the engine's families ---------------------------------------
#: the engine family of each trait
TRAIT_FAMILY = {"binary": "binomial", "count": "poisson", "quantitative": "gaussian"}
#: means are kept this far inside the family's range: a rare trait with a large tau can push b to where
#: mu underflows
MU_FLOOR = 1e-10


def trait_family(trait: str):
    """The engine's family for a GWAS trait (binomial-logit, Poisson-log, Gaussian-identity).

    Parameters
    ----------
    trait : {"binary", "count", "quantitative"}
        The trait.

    Returns
    -------
    Family
        The family with its canonical link.
    """
    return get_family(TRAIT_FAMILY[trait])


def _family(trait):
    """(inverse link, dmu/deta as a function of mu, variance) of the trait's engine family, with the means
    kept MU_FLOOR inside their range."""
    fam = trait_family(trait)
    link = fam.link
    if trait == "binary":
        inv = lambda eta: np.clip(link.inverse(eta), MU_FLOOR, 1 - MU_FLOOR)  # noqa: E731
    elif trait == "count":
        inv = lambda eta: np.maximum(link.inverse(eta), MU_FLOOR)  # noqa: E731
    else:
        inv = link.inverse
    return inv, (lambda mu: link.mu_eta(link.link(mu))), fam.variance


def _glm_start(y, X, trait):
    """The GLM's estimates (the engine's GLM routine)."""
    return glm(y, X, np.ones(len(y)), np.zeros(len(y)), trait_family(trait)).beta


def fit_null(samples: Samples, K: np.ndarray, method: str = "pql", tol: float = 1e-5, maxit: int = 100,
             exact_max: int = 5000, keep_P: bool | None = None, seed: int = 1, tau0: float | None = None,
             fix_tau: float | None = None, fix_phi: float | None = None) -> NullModel:
    """Fit the null GLMM of ``samples`` (from ``tables.match``) with relationship matrix ``K`` (n x n, in the
    samples' order).  ``fix_tau`` (and for a Gaussian trait ``fix_phi``): hold the variance there (tau = 0
    gives the GLM: the classic score test).

    Parameters
    ----------
    samples : Samples
        The matched samples (response, covariates, IDs).
    K : numpy.ndarray, scipy.sparse matrix or ImplicitGRM
        The GRM in the samples' order (sparse or implicit: conjugate gradients, PQL only).
    method : {"pql", "laplace"}
        PQL with AI-REML, or the core engine's Laplace ML.
    tol : float
        Relative change of beta and tau that ends the iterations.
    maxit : int
        Most iterations.
    exact_max : int
        Exact traces (and the projection P kept) up to this many samples.
    keep_P : bool, optional
        Keep the projection for exact score variances (default: n <= exact_max).
    seed : int
        Seed of the trace estimator.
    tau0 : float, optional
        Starting genetic variance.
    fix_tau, fix_phi : float, optional
        Hold the variances there.

    Returns
    -------
    NullModel
        The fitted null model.
    """
    n = samples.n
    if K.shape != (n, n):
        raise InputError(f"the GRM is {K.shape[0]} x {K.shape[1]} but {n} samples are analysed: "
                         "build it from the same samples (in .fam order)")
    if method == "laplace":
        if isinstance(K, ImplicitGRM):
            raise InputError("method='laplace' needs the GRM as a matrix; an implicit GRM is fitted by PQL "
                             "(method='pql')")
        if sp.issparse(K) and samples.trait == "quantitative":
            raise InputError("method='laplace' with a sparse GRM fits binary and count traits (the GLMM's sparse "
                             "system); a quantitative trait with a sparse GRM goes with method='pql'")
        return _fit_laplace(samples, K, keep_P if keep_P is not None else n <= exact_max)
    if method != "pql":
        raise InputError(f"method must be 'pql' or 'laplace', got {method!r}")
    return _fit_pql(samples, K, tol, maxit, exact_max, keep_P if keep_P is not None else n <= exact_max, seed,
                    tau0, fix_tau, fix_phi)


class _SparseSigma:
    """Sigma = diag(phi / W) + tau K with a sparse K: solves by conjugate gradients with the diagonal as
    preconditioner (SAIGE's PCG); nothing n x n is formed.  The right-hand sides (the probes of the traces,
    the covariates) run in lockstep -- one recurrence per column, their products with K as one sparse x dense
    product a step -- until each column's residual is below ``tol`` times its right-hand side."""

    def __init__(self, d, tau, K, tol=1e-10, maxiter=5000):
        self.d, self.tau, self.tol, self.maxiter = d, tau, tol, maxiter
        self.diag = d + tau * K.diagonal()
        self.strips = _row_strips(K)

    def _times(self, V, cols=None):
        """Sigma V; K V by strips of rows on threads (scipy's sparse product releases the GIL)."""
        KV = np.empty_like(V)
        if len(self.strips) == 1:
            KV[:] = self.strips[0][1] @ V
        else:
            def one(strip):
                r0, M = strip
                KV[r0 : r0 + M.shape[0]] = M @ V

            list(_threads().map(one, self.strips))
        return self.d[:, None] * V + self.tau * KV

    def solve(self, V):
        return conjugate_gradients(self._times, V, self.diag, self.tol, self.maxiter)


@lru_cache(maxsize=1)
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_cores())


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: a sparse K with more nonzeros than this is multiplied by strips of rows on threads
THREADED_NNZ = 1_000_000


def _row_strips(K) -> list:
    """K (CSR) as (first row, strip) pairs, two strips per core when K is large enough to pay for threads."""
    K = K.tocsr()
    parts = 2 * _cores() if K.nnz > THREADED_NNZ and _cores() > 1 else 1
    n = K.shape[0]
    cuts = [i * n // parts for i in range(parts + 1)]
    return [(a, K[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


class _DenseSigma:
    """Sigma = diag(phi / W) + tau K factorised by Cholesky."""

    def __init__(self, d, tau, K):
        S = tau * K
        S[np.diag_indices_from(S)] += d
        self.c = sla.cho_factor(S, lower=True, overwrite_a=True, check_finite=False)

    def solve(self, V):
        return sla.cho_solve(self.c, V, check_finite=False)


class _GLSProjection:
    """P V for Sigma = phi W^-1 + tau K with K a matrix: Sigma by Cholesky (dense) or conjugate gradients (sparse),
    P V = Sigma^-1 V - Sigma^-1 X (X' Sigma^-1 X)^-1 X' Sigma^-1 V; ``beta`` (GLS), ``PY`` and ``KPY`` at Y."""

    def __init__(self, W, phi, tau, K, X, Y):
        self.c = _SparseSigma(phi / W, tau, K) if sp.issparse(K) else _DenseSigma(phi / W, tau, K)
        self.SiX = self.c.solve(X)
        self.XSX = X.T @ self.SiX
        self.beta = np.linalg.solve(self.XSX, self.SiX.T @ Y)
        self.PY = self.c.solve(Y - X @ self.beta)
        self.KPY = K @ self.PY

    def apply(self, V):
        """P V for a vector or matrix V."""
        SiV = self.c.solve(V)
        return SiV - self.SiX @ np.linalg.solve(self.XSX, self.SiX.T @ V)


def _sigma_parts(W, phi, tau, K, X, Y, also=None):
    """The projection P of Sigma = phi W^-1 + tau K (``.apply(V)``, ``.beta``, ``.PY``, ``.KPY`` at Y): by a
    factorisation (dense K), conjugate gradients on Sigma (sparse K) or on the whitened, covariate-free
    system of ``implicit.py`` (an implicit GRM, where P ``also`` -- the trace probes -- is solved with Y in
    one pass over the genotypes and kept as ``.P_also``)."""
    if isinstance(K, ImplicitGRM):
        return ImplicitProjection(W, phi, tau, K, X, Y, also=also)
    return _GLSProjection(W, phi, tau, K, X, Y)


def _is_matrix(K) -> bool:
    """K held as an n x n array (exact traces and P possible)."""
    return isinstance(K, np.ndarray)


def _sigma_inverse(c):
    L = c.c[0]
    inv, info = sla.lapack.dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("potri failed")
    inv = np.tril(inv) + np.tril(inv, -1).T
    return inv


def _traces(proj, mats, exact, probes):
    """tr(P M) for each M in ``mats`` (n x n, or "I/W"-type diagonal vectors): exact, or Hutchinson's estimator
    with the fixed Rademacher ``probes`` (the same in every iteration, so that the iteration is deterministic
    and converges).  The estimator z' P M z = (P z)' (M z) (P symmetric): one solve of the probes serves
    every M."""
    out = []
    if exact:
        c, SiX, XSX = proj.c, proj.SiX, proj.XSX
        Si = _sigma_inverse(c)
        for M in mats:
            if M.ndim == 1:
                t1 = float(np.sum(np.diag(Si) * M))
                Q = SiX.T * M
                t2 = float(np.trace(np.linalg.solve(XSX, Q @ SiX)))
            else:
                t1 = float(np.sum(Si * M))
                t2 = float(np.trace(np.linalg.solve(XSX, SiX.T @ M @ SiX)))
            out.append(t1 - t2)
        return out, Si
    Z = probes
    PZ = proj.P_also if getattr(proj, "also", None) is probes else proj.apply(Z)
    for M in mats:
        MZ = (M[:, None] * Z) if np.ndim(M) == 1 else M @ Z
        out.append(float(np.mean(np.sum(MZ * PZ, axis=0))))
    return out, None


def _fit_pql(samples, K, tol, maxit, exact_max, keep_P, seed, tau0, fix_tau, fix_phi=None) -> NullModel:
    y, X, trait = samples.y.astype(float), samples.X, samples.trait
    n = len(y)
    inv, dmu, var = _family(trait)
    rng = np.random.default_rng(seed)
    beta = _glm_start(y, X, trait)
    eta = X @ beta
    mu = inv(eta)
    gauss = trait == "quantitative"
    phi = (float(fix_phi) if fix_phi is not None else float(np.var(y - mu))) if gauss else 1.0
    if fix_tau is not None and gauss and fix_phi is None:
        raise InputError("a Gaussian null model with tau held fixed needs phi held too (fix_phi)")
    d = dmu(mu)
    W = d * d / var(mu)
    Y = eta + (y - mu) / d
    if fix_tau is not None:
        tau = float(fix_tau)
    else:
        tau = float(tau0) if tau0 is not None else (0.5 * phi if gauss else max(0.1, float(np.var(Y)) / 2))
    exact = n <= exact_max and _is_matrix(K)
    keep_P = keep_P and _is_matrix(K)
    probes = None if exact else rng.choice([-1.0, 1.0], size=(n, 30))
    comps = [K] + ([1.0 / W] if gauss else [])
    theta = np.array([tau] + ([phi] if gauss else []))
    converged, it = False, 0
    parts = None  # a Gaussian trait keeps W = 1 and Y = y: the factorisation at the new variances is reused
    for it in range(1, maxit + 1):
        tau, phi = theta[0], (theta[1] if gauss else 1.0)
        if fix_tau is None:
            proj = parts if parts is not None else _sigma_parts(W, phi, tau, K, X, Y, also=probes)
            PY = proj.PY
            comps = [K] + ([1.0 / W] if gauss else [])
            score = np.empty(len(theta))
            MPY = [proj.KPY] + ([PY / W] if gauss else [])
            traces, _ = _traces(proj, comps, exact, probes)
            for k in range(len(theta)):
                score[k] = 0.5 * (PY @ MPY[k] - traces[k])
            PMPY = list(proj.apply(np.column_stack(MPY)).T)  # both components' columns in one solve
            AI = 0.5 * np.array([[MPY[k] @ PMPY[l] for l in range(len(theta))] for k in range(len(theta))])
            old = theta.copy()
            if it == 1:
                step = 2 * theta ** 2 * score / n  # EM-like first step keeps tau positive
            else:
                try:
                    step = np.linalg.solve(AI, score)
                except np.linalg.LinAlgError:
                    step = 2 * theta ** 2 * score / n
            # damped: at most a threefold increase per iteration (a sparse trait -- few cases -- can ask for
            # an AI step of many orders of magnitude when tau is barely identified)
            grow = 3 * theta + 0.1
            step = np.where(theta + step > grow, grow - theta, step)
            new = theta + step
            halvings = 0
            while np.any(new < 0) and halvings < 10:  # GMMAT: halve the step; a variance stuck at 0 stays 0
                step = step / 2
                new = theta + step
                halvings += 1
            new = np.where(new < tol, 0.0, new)
            if new[0] > TAU_MAX:  # PQL has no finite REML maximum here (e.g. a trait with very few cases)
                return NullModel(trait, samples.ids, y, X, samples.x_names, beta, float(new[0]), phi, mu, W,
                                 np.zeros(n), "pql", False, it, samples.rows, None)
            if gauss and new[1] <= 0:
                new[1] = max(old[1] * 0.5, 1e-8)
            theta = new
        # beta and b at the new tau (a second factorisation: reusing the first one with the new tau was
        # tried and measured -- the iteration then oscillates instead of converging)
        tau, phi = theta[0], (theta[1] if gauss else 1.0)
        proj = _sigma_parts(W, phi, tau, K, X, Y, also=probes if gauss and fix_tau is None else None)
        beta_new, PY = proj.beta, proj.PY
        parts = proj if gauss else None
        b = tau * proj.KPY
        eta = X @ beta_new + b
        mu = inv(eta)
        d = dmu(mu)
        W = d * d / var(mu) if not gauss else np.ones(n)
        Y = eta + (y - mu) / d if not gauss else y
        db = np.max(np.abs(beta_new - beta) / (np.abs(beta_new) + np.abs(beta) + tol))
        dt = 0.0 if fix_tau is not None else np.max(np.abs(theta - old) / (np.abs(theta) + np.abs(old) + tol))
        beta = beta_new
        if max(db, dt) < tol and it > 1:
            converged = True
            break
        if fix_tau is not None and db < tol:
            converged = True
            break
    tau, phi = float(theta[0]), float(theta[1] if gauss else 1.0)
    # final pieces at the converged weights
    proj = parts if parts is not None else _sigma_parts(W, phi, tau, K, X, Y)
    beta, PY = proj.beta, proj.PY
    b = tau * proj.KPY
    eta = X @ beta + b
    mu = inv(eta)
    if not gauss:
        d = dmu(mu)
        W = d * d / var(mu)
    P = None
    if keep_P:
        Si = _sigma_inverse(_DenseSigma(phi / W, tau, K))
        SiX2 = Si @ X
        P = Si - SiX2 @ np.linalg.solve(X.T @ SiX2, SiX2.T)
    return NullModel(trait, samples.ids, y, X, samples.x_names, beta, tau, phi, mu, W, b, "pql", converged, it,
                     samples.rows, P)


def loco_models(model: NullModel, K: ImplicitGRM, tol: float = 1e-5, maxit: int = 100) -> dict:
    """Every chromosome's leave-one-chromosome-out model at once, for an implicit GRM: tau (and phi) held at the
    model's, the random effects predicted with K_-c (K without c's variants).  The chromosomes' PQL
    iterations run in lockstep: one system per chromosome (``ImplicitProjection`` with ``exclude``), one
    product with Z per conjugate-gradient step for all of them.  A Gaussian trait needs one solve.

    Parameters
    ----------
    model : NullModel
        The fitted null model (its K was ``K``).
    K : ImplicitGRM
        The GRM, with its columns' chromosomes.
    tol : float
        Relative change of beta that ends the iterations (as ``fit_null``).
    maxit : int
        Most iterations.

    Returns
    -------
    dict
        chromosome -> {"mu", "W", "b", "beta"} (chromosomes with none or all of the GRM's variants are left
        out: their model is the full one).
    """
    if K.chrom is None:
        raise InputError("leave-one-chromosome-out needs the implicit GRM's chromosome labels (build it with "
                         "implicit_grm, or give ImplicitGRM(Z, chrom))")
    chroms = [c for c in pd.unique(K.chrom) if 0 < len(K.columns_of(c)) < K.m]
    if not chroms:
        return {}
    exclude = [K.columns_of(c) for c in chroms]
    inv, dmu, var = _family(model.trait)
    gauss = model.trait == "quantitative"
    n, s = model.n, len(chroms)
    y = model.y[:, None]
    eta = np.repeat((model.X @ model.beta + model.b)[:, None], s, axis=1)
    beta = np.repeat(model.beta[:, None], s, axis=1)

    def working(eta):
        mu = inv(eta)
        if gauss:
            return mu, np.ones((n, s)), np.repeat(y, s, axis=1)
        d = dmu(mu)
        return mu, d * d / var(mu), eta + (y - mu) / d

    mu, W, Y = working(eta)
    for _ in range(0 if gauss else maxit):  # a Gaussian trait's weights and response do not move
        proj = ImplicitProjection(W, model.phi, model.tau, K, model.X, Y, exclude)
        eta = model.X @ proj.beta + model.tau * proj.KPY
        mu, W, Y = working(eta)
        db = np.max(np.abs(proj.beta - beta) / (np.abs(proj.beta) + np.abs(beta) + tol))
        beta = proj.beta
        if db < tol:
            break
    # the final pieces at the converged weights (as fit_null ends)
    proj = ImplicitProjection(W, model.phi, model.tau, K, model.X, Y, exclude)
    b = model.tau * proj.KPY
    mu, W, _ = working(model.X @ proj.beta + b)
    return {str(c): {"mu": mu[:, j].copy(), "W": W[:, j].copy(), "b": b[:, j].copy(), "beta": proj.beta[:, j].copy()}
            for j, c in enumerate(chroms)}


def _sigma_matrix(W, phi, tau, K):
    S = tau * (K.toarray() if sp.issparse(K) else K)
    S[np.diag_indices_from(S)] += phi / W
    return S


def _fit_laplace(samples, K, keep_P) -> NullModel:
    from ..api import glmer, lmer

    y, X, trait = samples.y, samples.X, samples.trait
    labels = (samples.ids["FID"] + "/" + samples.ids["IID"]).to_numpy()
    df = pd.DataFrame(X[:, 1:], columns=[f"x{j}" for j in range(1, X.shape[1])])
    df["y"], df["iid"] = y, labels
    rhs = " + ".join(df.columns[:-2]) or "1"
    # a sparse GRM stays sparse: the engine's sparse known-covariance system (engine/sparse_known.py)
    rel = {"iid": (K, labels) if sp.issparse(K) else pd.DataFrame(K, index=labels, columns=labels)}
    formula = f"y ~ {rhs} + (1 | iid)"
    if trait == "quantitative":
        fit = lmer(formula, df, reml=True, relmat=rel)
        phi = float(fit.sigma ** 2)
    else:
        fit = glmer(formula, df, "binomial" if trait == "binary" else "poisson", relmat=rel)
        phi = 1.0
    tau = float(fit.varcorr.loc[fit.varcorr["group"] == "iid", "variance"].iloc[0])
    inv, dmu, var = _family(trait)
    eta = np.asarray(fit.predict(type="link"), dtype=float)
    beta = fit.fixef.to_numpy()
    mu = inv(eta)
    d = dmu(mu)
    W = d * d / var(mu) if trait != "quantitative" else np.ones(len(y))
    P = None
    if keep_P:
        S = _sigma_matrix(W, phi, tau, K)
        Si = np.linalg.inv(S)
        SiX = Si @ X
        P = Si - SiX @ np.linalg.solve(X.T @ SiX, SiX.T)
    return NullModel(trait, samples.ids, y.astype(float), X, samples.x_names, beta, tau, phi, mu, W, eta - X @ beta,
                     "laplace", bool(fit.converged), int(fit.optsummary.fevals), samples.rows, P)
