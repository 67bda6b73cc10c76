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


def newton(prob, x0: np.ndarray, tol: float = 1e-9, maxit: int = 50, max_halvings: int = 30,
           quasi: bool = True, refresh_every: int = 8, H0: np.ndarray | None = None) -> NewtonResult:
    """Newton with finite-difference Hessians of the analytic gradient, to Newton decrement ``tol``.

    With ``quasi`` the finite-difference Hessian (d more evaluations, each with its modes) is formed at
    the start and then only where it is needed: between those, BFGS updates from the gradients already
    at hand carry it (one evaluation an iteration).  It is formed again for a gene whose decrement
    falls below ``tol`` (so convergence is always declared, and the covariance formed, on the
    finite-difference Hessian at the final point), whose line search had to halve the step, whose
    update failed the curvature condition, or after ``refresh_every`` updates.  (BFGS alone, from a
    scaled identity, was tried before: more iterations, slower overall; from a Hessian it is the
    iterations between them that get cheaper.)

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
    quasi : bool
        BFGS updates between finite-difference Hessians (False: a finite-difference Hessian every
        iteration).
    refresh_every : int
        Most BFGS updates before the Hessian is formed again.
    H0 : numpy.ndarray, optional
        (G, d, d) a Hessian near x0 to start from (a first fit's): no finite differences at the start.

    Returns
    -------
    NewtonResult
        Parameters, values, convergence and iterations per gene.
    """
    return _iterate(prob, x0, tol, maxit, max_halvings, quasi, refresh_every, H0)


def _bfgs(H, s, y):
    """BFGS update of each gene's Hessian with step s and gradient change y; (H, updated) where a gene
    whose pair fails the curvature condition s'y > 0 keeps its H (and is marked not updated)."""
    Hs = np.einsum("gij,gj->gi", H, s)
    sHs = np.sum(s * Hs, axis=1)
    sy = np.sum(s * y, axis=1)
    scale = np.linalg.norm(s, axis=1) * np.linalg.norm(y, axis=1)
    ok = (sy > 1e-10 * scale) & (sHs > 0) & np.isfinite(sy) & np.isfinite(sHs)
    with np.errstate(divide="ignore", invalid="ignore"):
        upd = H - Hs[:, :, None] * Hs[:, None, :] / sHs[:, None, None] + y[:, :, None] * y[:, None, :] / sy[:, None, None]
    return np.where(ok[:, None, None], upd, H), ok


def _exact_hessian(prob, x, g, idx):
    """The finite-difference Hessian of the genes ``idx`` of the batch (a sub-problem when they are not all)."""
    if len(idx) == len(x):
        return prob.hessian(x, g)
    sub = prob.restrict(idx)
    return sub.hessian(x[idx], g[idx])


def _iterate(prob, x0, tol, maxit, max_halvings, quasi=True, refresh_every=8, H0=None) -> NewtonResult:
    G, d = x0.shape
    S = prob.u.shape[1]
    out = NewtonResult(np.array(x0, dtype=float), np.full(G, np.nan), np.full((G, d, d), np.nan),
                       np.ones((G, d), dtype=bool), np.zeros(G, dtype=bool), np.zeros(G, dtype=int), np.zeros((G, S)))
    rows = np.arange(G)  # original indices of the genes still in the batch
    x = prob.project(out.x.copy())
    D, g = prob.evaluate(x)
    start_H = quasi and H0 is not None
    H = np.array(H0, dtype=float) if start_H else prob.hessian(x, g)
    exact = np.full(G, not start_H)  # H is the finite-difference Hessian at x
    renew = np.zeros(G, dtype=bool)  # form it at the next iteration
    if start_H:  # a given Hessian that is not finite is formed at the first iteration
        bad = ~np.all(np.isfinite(H), axis=(1, 2))
        H[bad], renew[bad] = np.eye(d), True
    updates = np.zeros(G, dtype=int)  # BFGS updates since it was formed

    def finish(f, converged):
        """Record the genes at positions ``f`` of the batch as they are now."""
        r = rows[f]
        out.x[r], out.D[r], out.H[r], out.free[r] = x[f], D[f], H[f], free[f]
        out.converged[r] = converged
        out.u[r] = prob.u[f]  # modes at the last point tried: a warm start, not the final modes

    for it in range(1, maxit + 1):
        free = prob.free(x, g)
        step = _newton_step(H, g, free)
        dec = -np.sum(g * step, axis=1)
        # a decrement below tol on an updated Hessian is checked on the finite-difference one
        need = ~exact & (renew | (dec < tol) | ~np.isfinite(dec)) if quasi else ~exact
        if need.any():
            idx = np.flatnonzero(need)
            H[idx] = _exact_hessian(prob, x, g, idx)
            exact[idx], updates[idx] = True, 0
            step[idx] = _newton_step(H[idx], g[idx], free[idx])
            dec[idx] = -np.sum(g[idx] * step[idx], axis=1)
        out.iterations[rows] = it
        done = (dec < tol) | ~np.isfinite(dec)
        if done.any():  # they leave the batch before the line search
            f = np.flatnonzero(done)
            finish(f, dec[f] < tol)
            keep = np.flatnonzero(~done)
            if len(keep) == 0:
                return out
            prob = prob.restrict(keep)
            rows, x, D, g, H, step, dec, free = (a[keep] for a in (rows, x, D, g, H, step, dec, free))
            exact, renew, updates = exact[keep], renew[keep], updates[keep]
        # line search (Armijo); each trial with its gradient, the next iteration's where accepted
        xn, Dn, gn = x.copy(), D.copy(), g.copy()
        searching = np.ones(len(rows), dtype=bool)
        idx, sub, alpha = np.arange(len(rows)), prob, np.ones(len(rows))
        for h in range(max_halvings):
            trial = sub.project(x[idx] + alpha[:, None] * step[idx])
            Dt, gt = sub.evaluate(trial, grad=True)
            ok = searching[idx] & np.isfinite(Dt) & (Dt <= D[idx] - 1e-4 * alpha * np.maximum(dec[idx], 0))
            acc = idx[ok]
            xn[acc], Dn[acc], gn[acc] = trial[ok], Dt[ok], gt[ok]
            searching[acc] = False
            if not searching.any():
                break
            if h == 0:  # the halvings evaluate only the genes still searching
                idx = np.flatnonzero(searching)
                sub, alpha = prob.restrict(idx), np.full(len(idx), 0.5)
            else:
                alpha = np.where(searching[idx], alpha * 0.5, alpha)
        if sub is not prob:
            prob.take_state(idx, sub)  # their modes' warm start
        halved = np.zeros(len(rows), dtype=bool)
        halved[idx] = sub is not prob
        # no decrease along the Newton direction: at the optimum to rounding, or lost -- judged on the
        # finite-difference Hessian (an updated one gets another iteration with it)
        stuck = searching & exact
        if stuck.any():
            f = np.flatnonzero(stuck)
            finish(f, dec[f] < 1e-5)
            keep = np.flatnonzero(~stuck)
            if len(keep) == 0:
                return out
            prob = prob.restrict(keep)
            rows, x, D, g, H, xn, Dn, gn = (a[keep] for a in (rows, x, D, g, H, xn, Dn, gn))
            searching, halved, exact, updates = searching[keep], halved[keep], exact[keep], updates[keep]
        if quasi:
            moved = ~searching  # accepted a step
            Hn, ok_upd = _bfgs(H, xn - x, gn - g)
            H = np.where(moved[:, None, None], Hn, H)
            updates = np.where(moved, updates + 1, updates)
            exact &= ~moved
            renew = halved | (moved & ~ok_upd) | (updates >= refresh_every) | searching
        else:  # a finite-difference Hessian at every point: the next iteration forms it
            exact[:] = False
            renew = np.zeros(len(rows), dtype=bool)
        x, D, g = xn, Dn, gn
    # out of iterations: the Hessian at the last point
    H = prob.hessian(x, g)
    free = prob.free(x, g)
    finish(np.arange(len(rows)), np.zeros(len(rows), dtype=bool))
    return out
