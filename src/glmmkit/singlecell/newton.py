"""Projected Newton for many small problems at once (one per gene), on a LaplaceProblem.

Each iteration: the Hessian by forward differences of the analytic gradient, a step from an eigenvalue-
guarded solve on the free parameters, a backtracking line search (Armijo) per gene.  Genes leave the
batch when the Newton decrement g' H^-1 g falls below ``tol``; the batch shrinks with them, so late
iterations cost only what is left."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NewtonResult:
    x: np.ndarray           # (G, d) estimates
    D: np.ndarray           # (G,) -2 log L at x
    H: np.ndarray           # (G, d, d) Hessian of D at x
    free: np.ndarray        # (G, d) parameters not held at a bound
    converged: np.ndarray   # (G,) bool
    iterations: np.ndarray  # (G,) Newton iterations used
    u: np.ndarray           # (G, S) conditional modes at x


def _newton_step(H, g, free, max_step=3.0):
    d = H.shape[-1]
    both = free[:, :, None] & free[:, None, :]
    Hf = np.where(both, H, 0.0) + np.eye(d) * (~free)[:, :, None]
    gf = np.where(free, g, 0.0)
    w, V = np.linalg.eigh(Hf)
    floor = np.maximum(1e-8 * np.abs(w).max(axis=1, keepdims=True), 1e-12)
    w = np.where(w < floor, np.maximum(np.abs(w), floor), w)
    step = -np.einsum("gij,gj->gi", V, np.einsum("gji,gj->gi", V, gf) / w)
    step = np.where(free, step, 0.0)
    big = np.abs(step).max(axis=1, keepdims=True)
    return step * np.minimum(1.0, max_step / np.maximum(big, 1e-300))


def newton(prob, x0: np.ndarray, tol: float = 1e-9, maxit: int = 50, max_halvings: int = 30) -> NewtonResult:
    """Newton with finite-difference Hessians of the analytic gradient, to Newton decrement ``tol``.
    (BFGS updates in place of the finite differences were tried: more iterations, slower overall.)

    Parameters
    ----------
    prob : LaplaceProblem
        The per-gene problems (evaluate, hessian, free, project).
    x0 : numpy.ndarray
        (G, d) start.
    tol : float
        Newton decrement that ends a gene's iterations.
    maxit : int
        Most iterations.
    max_halvings : int
        Most step halvings per iteration.

    Returns
    -------
    NewtonResult
        Parameters, values, convergence and iterations per gene.
    """
    return _iterate(prob, x0, tol, maxit, max_halvings)


def _iterate(prob, x0, tol, maxit, max_halvings) -> NewtonResult:
    G, d = x0.shape
    S = prob.u.shape[1]
    out = NewtonResult(np.array(x0, dtype=float), np.full(G, np.nan), np.full((G, d, d), np.nan),
                       np.ones((G, d), dtype=bool), np.zeros(G, dtype=bool), np.zeros(G, dtype=int), np.zeros((G, S)))
    rows = np.arange(G)  # original indices of the genes still in the batch
    x = prob.project(out.x.copy())
    D, g = prob.evaluate(x)
    H = prob.hessian(x, g)
    for it in range(1, maxit + 1):
        if it > 1:
            H = prob.hessian(x, g)
        free = prob.free(x, g)
        step = _newton_step(H, g, free)
        dec = -np.sum(g * step, axis=1)
        done = (dec < tol) | ~np.isfinite(dec)
        out.iterations[rows] = it
        # line search for those not done
        alpha = np.ones(len(rows))
        searching = ~done
        xn, Dn = x.copy(), D.copy()
        for _ in range(max_halvings):
            if not searching.any():
                break
            trial = prob.project(x + alpha[:, None] * step)
            Dt, _ = prob.evaluate(trial, grad=False)
            ok = searching & np.isfinite(Dt) & (Dt <= D - 1e-4 * alpha * np.maximum(dec, 0))
            xn[ok], Dn[ok] = trial[ok], Dt[ok]
            searching &= ~ok
            alpha = np.where(searching, alpha * 0.5, alpha)
        stuck = searching  # no decrease along the Newton direction: at the optimum to rounding, or lost
        finish = done | stuck
        if finish.any():
            f = np.flatnonzero(finish)
            r = rows[f]
            out.x[r], out.D[r], out.H[r], out.free[r] = x[f], D[f], H[f], free[f]
            out.converged[r] = done[f] | (stuck[f] & (dec[f] < 1e-5))
            out.u[r] = prob.u[f]  # modes at the last point tried: a warm start, not the final modes
        keep = np.flatnonzero(~finish)
        if len(keep) == 0:
            return out
        if len(keep) < len(rows):
            prob = prob.restrict(keep)
            rows, xn = rows[keep], xn[keep]
        x = xn
        D, g = prob.evaluate(x)
    # out of iterations: the Hessian at the last point (the batch may have shrunk since the last one)
    H = prob.hessian(x, g)
    out.x[rows], out.D[rows], out.H[rows], out.free[rows] = x, D, H, prob.free(x, g)
    out.u[rows] = prob.u
    return out
