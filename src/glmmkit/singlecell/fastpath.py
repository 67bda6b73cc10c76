"""Fit the NB (or Poisson) GLMM  y ~ X_subject + offset(o) + (1 | subject)  for a block of genes at once.

Start: beta from the subject totals (least squares of log((Y_s + 1/2) / sum_i e^o_i)), theta by moments;
then the GLM (sigma = 0) by batched Newton; then the GLMM from the GLM with a moment start for v.
Output per gene: beta, its covariance (2 H^-1 over the free parameters, the general engine's convention),
sigma, theta, -2 log L, convergence, iterations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .block import GeneBlock
from .kernels import NB2Kernel, PoissonKernel
from .laplace import KAPPA_MAX, KAPPA_MIN, LaplaceProblem, prior_penalty
from .newton import NewtonResult, newton
from .softplus import SoftplusSums
from .laplace import _rows_times
from ..errors import InputError
from ..families import get_family


@dataclass
class BlockFit:
    beta: np.ndarray       # (G, p)
    vcov: np.ndarray       # (G, p, p)
    sigma: np.ndarray      # (G,) subject SD (0 for the GLM)
    theta: np.ndarray      # (G,) NB size (inf for Poisson)
    deviance: np.ndarray   # (G,) -2 log L
    converged: np.ndarray  # (G,)
    iterations: np.ndarray
    hessian: np.ndarray | None = None  # (G, d, d) of -2 log L (unpenalised) over (beta, v, kappa) at the estimate


def sc_family(family) -> str:
    """The single-cell family's canonical name: "nbinom2" or "poisson" (any name ``get_family`` knows for them).

    Parameters
    ----------
    family : str or Family
        ``"nbinom2"`` (also ``"nb2"``, ``"negative_binomial"``) or ``"poisson"``.

    Returns
    -------
    str
        ``"nbinom2"`` or ``"poisson"``; InputError for any other family.
    """
    name = get_family(family).name
    if name not in ("nbinom2", "poisson"):
        raise InputError(f"the single-cell path fits 'nbinom2' or 'poisson' (log link), got {family!r}")
    return name


class Design:
    """What every block shares: subject-level design, offsets, tabulated softplus sums."""

    def __init__(self, Xs: np.ndarray, offset: np.ndarray, subject: np.ndarray, n_subjects: int,
                 family: str = "nbinom2", laplace: str = "expected", exact: bool = False):
        family = sc_family(family)
        if laplace not in ("expected", "observed"):
            raise InputError(f"laplace must be 'expected' or 'observed', got {laplace!r}")
        self.Xs = np.asarray(Xs, dtype=float)
        self.offset = np.asarray(offset, dtype=float)
        self.subject = np.asarray(subject, dtype=np.int64)
        self.S = int(n_subjects)
        self.family, self.laplace = family, laplace
        self.lib = np.bincount(self.subject, weights=np.exp(self.offset), minlength=self.S)
        self.lib2 = np.bincount(self.subject, weights=np.exp(2 * self.offset), minlength=self.S)
        self.sums = SoftplusSums(self.offset, self.subject, self.S, exact=exact) if family == "nbinom2" else None
        self._pinv = np.linalg.pinv(self.Xs)

    def kernel(self, block: GeneBlock):
        """The likelihood kernel of a block for this design's family.

        Parameters
        ----------
        block : GeneBlock
            The genes.

        Returns
        -------
        NB2Kernel or PoissonKernel
            The kernel.
        """
        if self.family == "nbinom2":
            return NB2Kernel(block, self.sums, self.laplace)
        return PoissonKernel(block, self.lib)

    def start(self, block: GeneBlock) -> tuple[np.ndarray, np.ndarray | None]:
        """beta from subject totals; log theta by the method of moments (clipped to [0.05, 1e4]).

        Parameters
        ----------
        block : GeneBlock
            The genes.

        Returns
        -------
        tuple
            (beta (G, p), log theta (G,) or None for Poisson).
        """
        beta = _rows_times(np.log((block.Y + 0.5) / self.lib), self._pinv.T)
        if self.family != "nbinom2":
            return beta, None
        em = np.exp(beta @ self.Xs.T)  # (G, S): per-unit-library mean of each subject
        s_mu = em * self.lib  # sum_i mu_i
        s_mu2 = em ** 2 * self.lib2
        mu_nz = np.exp(_rows_times(beta, self.Xs.T).ravel()[block.pair] + block.o)
        s_y2 = block.per_pair(block.y ** 2).sum(axis=1)
        s_ymu = block.per_pair(block.y * mu_nz).sum(axis=1)
        excess = s_y2 - 2 * s_ymu + s_mu2.sum(axis=1) - s_mu.sum(axis=1)
        theta = np.where(excess > 0, s_mu2.sum(axis=1) / np.maximum(excess, 1e-300), 1e4)
        return beta, np.log(np.clip(theta, 0.05, 1e4))


def _pack(beta, v, kappa):
    cols = [beta] + ([v[:, None]] if v is not None else []) + ([kappa[:, None]] if kappa is not None else [])
    return np.hstack(cols)


def _vcov_beta(res: NewtonResult, prob: LaplaceProblem) -> np.ndarray:
    """2 H^-1 over the free parameters, beta block.  Where that Hessian is not positive definite (the
    dispersion's curvature vanishes in the Poisson limit, the variance's at its boundary), the
    parameter is held fixed -- kappa first, then v -- as the general engine's free set does at a bound."""
    G, d, _ = res.H.shape
    p = prob.p
    V = np.full((G, p, p), np.nan)
    todo = np.all(np.isfinite(res.H), axis=(1, 2))
    attempts = [res.free]
    for ix in (prob.ik, prob.iv):
        if ix is not None:
            f = attempts[-1].copy()
            f[:, ix] = False
            attempts.append(f)
    for free in attempts:
        if not todo.any():
            break
        both = free[:, :, None] & free[:, None, :]
        Hf = (np.where(both, res.H, 0.0) + np.eye(d) * (~free)[:, :, None])[todo]
        w = np.linalg.eigvalsh(Hf)
        pd = w[:, 0] > 1e-9 * np.maximum(w[:, -1], 1e-300)
        if pd.any():
            rows = np.flatnonzero(todo)[pd]
            V[rows] = 2 * np.linalg.inv(Hf[pd])[:, :p, :p]
            todo[rows] = False
    return V


def fit_block(design: Design, block: GeneBlock, random: bool = True, glm: bool = True, tol: float = 1e-7,
              maxit: int = 50, prior=None, start=None) -> tuple[BlockFit | None, BlockFit | None]:
    """(GLMM fit, GLM fit) of every gene in ``block``.  With ``glm`` the cell-level GLM is fitted first and
    starts the GLMM; without, the GLMM starts from the moment estimates.  ``prior`` = (d0, s0^2) per gene
    puts the empirical-Bayes penalty on v (``prior.py``); ``start`` = (beta, v, theta) per gene, a first fit,
    starts it (no GLM then), and with a fourth element, that fit's ``hessian``, so does its Hessian (the
    prior's curvature in v added): Newton's first steps then need no finite differences.

    Parameters
    ----------
    design : Design
        What the blocks share.
    block : GeneBlock
        The genes.
    random : bool
        Fit the GLMM.
    glm : bool
        Fit the cell-level GLM (and start the GLMM from it).
    tol : float
        Newton decrement that ends the iterations.
    maxit : int
        Most iterations.
    prior : tuple, optional
        (d0, s0^2) per gene.
    start : tuple, optional
        (beta, v, theta) or (beta, v, theta, hessian) per gene.

    Returns
    -------
    tuple
        (GLMM BlockFit or None, GLM BlockFit or None).
    """
    kern = design.kernel(block)
    p = design.Xs.shape[1]
    if start is not None:
        beta0, v0, theta0 = (np.asarray(a, dtype=float) for a in start[:3])
        if prior is not None:  # near the penalised optimum: (d v + d0 s0^2) / (d + d0), d = S - p (module prior.py)
            d0, s2 = (np.asarray(a, dtype=float) for a in prior)
            d = max(design.S - np.linalg.matrix_rank(design.Xs), 1)
            v0 = np.maximum((d * v0 + d0 * s2) / (d + d0), 0.25 * s2)
        kappa0 = np.log(np.clip(theta0, np.exp(KAPPA_MIN), np.exp(KAPPA_MAX))) if design.family == "nbinom2" else None
        prob = LaplaceProblem(kern, design.Xs, random=True, prior=prior)
        H0 = None
        if len(start) > 3 and start[3] is not None:
            H0 = np.array(start[3], dtype=float)
            if prior is not None:  # d^2/dv^2 of d0 (log v + s0^2 / v)
                d0, s2 = (np.asarray(a, dtype=float) for a in prior)
                H0[:, prob.iv, prob.iv] += np.where(d0 > 0, d0 * (2 * s2 / v0 ** 3 - 1 / v0 ** 2), 0.0)
        res = newton(prob, _pack(beta0, v0, kappa0), tol=tol, maxit=maxit, H0=H0)
        return _as_fit(res, prob, p), None
    beta, kappa = design.start(block)
    glm_fit = None
    if glm or not random:
        glm_prob = LaplaceProblem(kern, design.Xs, random=False)
        g = newton(glm_prob, _pack(beta, None, kappa), tol=tol, maxit=maxit)
        glm_fit = _as_fit(g, glm_prob, p)
        beta = g.x[:, :p]
        kappa = g.x[:, p] if design.family == "nbinom2" else None
    if not random:
        return None, glm_fit
    # moment start for v: spread of the subject totals around the fixed effects beyond Poisson noise
    fitted = np.exp(_rows_times(beta, design.Xs.T)) * design.lib
    r = np.log((block.Y + 0.5) / (fitted + 0.5))
    v0 = np.clip(np.mean(r * r, axis=1) - np.mean(1.0 / (block.Y + 0.5), axis=1), 0.01, 4.0)
    prob = LaplaceProblem(kern, design.Xs, random=True, prior=prior)
    res = newton(prob, _pack(beta, v0, kappa), tol=tol, maxit=maxit)
    return _as_fit(res, prob, p), glm_fit


def _as_fit(res: NewtonResult, prob: LaplaceProblem, p: int) -> BlockFit:
    beta, v, kappa = prob.unpack(res.x)
    theta = np.exp(kappa) if kappa is not None else np.full(len(beta), np.inf)
    D = res.D if prob.prior is None else res.D - prior_penalty(v, *prob.prior)  # -2 log L, not the penalised
    return BlockFit(beta, _vcov_beta(res, prob), np.sqrt(v), theta, D, res.converged, res.iterations,
                    res.H if prob.prior is None else None)
