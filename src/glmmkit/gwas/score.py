"""Score tests of every variant in a chunk under the null GLMM, vectorised (matrix products, no loop).

For a variant g (A1 dosages, mean-imputed):  U = g'(y - mu)/phi = g' P Y,   Var(U) = g' P g,
T = U / sqrt(Var), BETA = U / Var, SE = Var^-1/2 (the one-step estimate SAIGE reports).

- variance ratio (SAIGE): Var = r * g~' W~ g~, with g~ the covariate-adjusted genotype, W~ = W / phi, and r
  estimated in step 1 from random variants; O(n p) per variant.
- exact: Var = colsum(G * (P G)) with the stored projection P (moderate n); O(n^2) per variant.
- screened (the default where P is stored): the variance ratio for every variant, then the exact variance
  for those whose variance-ratio p-value is below ``SCREEN_P`` -- the only ones whose answer the exact
  variance can change at any threshold in use -- so that step 2 stays O(n) per variant at every n.
- SPA (binary traits, |T| > ``spa_cutoff``): the p-value of S = sum_i g~_i (y_i - mu_i), y_i ~ Bernoulli(mu_i),
  by the saddle-point approximation (Barndorff-Nielsen), as SAIGE: the observed value is U / sqrt(r_g),
  r_g = Var / (g~'W g~), so that the Bernoulli model's variance matches.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import expit

from .null import NullModel
from ..errors import InputError


#: variants whose variance-ratio p-value is below this get the exact variance g'Pg when P is stored
SCREEN_P = 0.01

#: the weighted sums of squares go by blocks of this many contiguous rows or columns (a block fits in cache)
BLOCK = 256


def _weighted_squares(G: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_i w_i g_ij^2 per column, by blocks along G's contiguous axis (bed-reader gives column-major)."""
    if G.flags.f_contiguous:
        out = np.empty(G.shape[1])
        for j in range(0, G.shape[1], BLOCK):
            Gb = G[:, j : j + BLOCK]
            out[j : j + BLOCK] = (Gb * Gb).T @ w
        return out
    out = np.zeros(G.shape[1])
    for i in range(0, G.shape[0], BLOCK):
        Gb = G[i : i + BLOCK]
        out += (Gb * Gb).T @ w[i : i + BLOCK]
    return out


class ScoreTester:
    """Precomputes what every chunk shares."""

    def __init__(self, null: NullModel, exact: bool | None = None, spa: bool = True, spa_cutoff: float = 2.0,
                 screen_p: float = SCREEN_P):
        self.null = null
        # None: screened where P is stored (exact below screen_p), the variance ratio otherwise
        self.screen = exact is None and null.P is not None and null.variance_ratio is not None
        self.exact = bool(exact) if exact is not None else (null.P is not None and null.variance_ratio is None)
        self.screen_p = float(screen_p)
        if self.exact and null.P is None:
            raise InputError("the exact score test needs the null model's projection P (fit it with keep_P=True)")
        if not self.exact and null.variance_ratio is None:
            raise InputError("the variance-ratio score test needs the null model's variance ratio (step 1)")
        self.res = null.residuals
        self.w = null.W / null.phi
        X = null.X
        self.WX = X * self.w[:, None]
        self.XWX_inv = np.linalg.inv(X.T @ self.WX)
        # one pass over G gives its column sums (allele frequencies), U and X'W~G
        self.RWX = np.column_stack([np.ones(len(self.res)), self.res, self.WX])
        self.spa = spa and null.trait == "binary"
        self.spa_cutoff = spa_cutoff

    def scores(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(column sums of G, U, g~'W~g~ per variant, X'W~G, g'Wg): the scores and the GLM-type variance,
        without relatedness, and the unadjusted weighted square it came from.

        Parameters
        ----------
        G : numpy.ndarray
            Samples x variants.

        Returns
        -------
        tuple
            (column sums of G, U, g~'W~g~, X'W~G, g'Wg), each per variant.
        """
        Z = G.T @ self.RWX
        gsum, U, XWG = Z[:, 0], Z[:, 1], Z[:, 2:].T
        gwg = _weighted_squares(G, self.w)
        return gsum, U, gwg - np.einsum("ij,ik,kj->j", XWG, self.XWX_inv, XWG), XWG, gwg

    def test(self, G: np.ndarray) -> dict[str, np.ndarray]:
        """Score statistics of every column of G (samples x variants).

        Parameters
        ----------
        G : numpy.ndarray
            Allele counts or dosages, mean-imputed, for the null model's samples in its order.

        Returns
        -------
        dict of numpy.ndarray
            ``U``, ``VAR``, ``BETA``, ``SE``, ``T_STAT``, ``P`` (and ``P_SPA``, ``P_NORMAL`` with SPA),
            ``G_SUM``.  A variant with no variation left after the covariates (monomorphic, every
            sample heterozygous, or collinear with a covariate) has no test: NaN, not P = 1.
        """
        gsum, U, vt, XWG, gwg = self.scores(G)
        # no variation beyond the covariates: the statistic is 0/0 (rounding decides its value)
        untestable = vt <= 1e-8 * np.maximum(gwg, 1e-300)
        if self.exact:
            var = np.einsum("ij,ij->j", G, self.null.P @ G)
        else:
            var = self.null.variance_ratio * vt
            if self.screen:  # the exact variance where it can change the answer (module text)
                with np.errstate(divide="ignore", invalid="ignore"):
                    p_vr = 2 * stats.norm.sf(np.abs(U) / np.sqrt(var))
                sel = np.flatnonzero((p_vr < self.screen_p) & ~untestable)
                if len(sel):
                    Gs = G[:, sel]
                    var[sel] = np.einsum("ij,ij->j", Gs, self.null.P @ Gs)
        with np.errstate(divide="ignore", invalid="ignore"):
            T = U / np.sqrt(var)
            p = 2 * stats.norm.sf(np.abs(T))
            out = {"U": U, "VAR": var, "BETA": U / var, "SE": 1 / np.sqrt(var), "T_STAT": T, "P": p, "G_SUM": gsum}
        for k in ("U", "VAR", "BETA", "SE", "T_STAT", "P"):
            out[k] = np.where(untestable, np.nan, out[k])
        p = out["P"]
        if self.spa:
            p_spa = p.copy()
            do = np.flatnonzero((np.abs(T) > self.spa_cutoff) & ~untestable)
            if len(do):
                Gt = G[:, do] - self.null.X @ (self.XWX_inv @ XWG[:, do])  # covariate-adjusted genotypes
                q = U[do] / np.sqrt(var[do] / vt[do])
                p_spa[do] = spa_pvalue(q, Gt, self.null.mu)
            out["P_SPA"] = p_spa
            out["P"] = p_spa  # the reported p-value; P_NORMAL keeps the normal approximation
            out["P_NORMAL"] = p
        return out


# ---- the saddle-point approximation ---------------------------------------------------------------
def _cgf(t, Gt, mu):
    """K(t), K'(t), K''(t) of S = sum g~_i (y_i - mu_i), y_i ~ Bernoulli(mu_i), for a vector of t (one per column)."""
    a = Gt * t[None, :]
    log1m = np.log1p(-mu)[:, None]
    logm = np.log(mu)[:, None]
    lse = np.logaddexp(log1m, logm + a)
    pi = np.exp(logm + a - lse)
    K0 = np.sum(lse, axis=0) - t * (Gt * mu[:, None]).sum(axis=0)
    K1 = np.sum(Gt * (pi - mu[:, None]), axis=0)
    K2 = np.sum(Gt * Gt * pi * (1 - pi), axis=0)
    return K0, K1, K2


def _slopes(t, Gt, mu_logit):
    """K'(t), K''(t) alone (the Newton steps need no K): pi_i = expit(logit mu_i + g~_i t)."""
    pi = expit(Gt * t[None, :] + mu_logit[:, None])
    return np.sum(Gt * pi, axis=0), np.sum(Gt * Gt * (pi * (1 - pi)), axis=0)


def _saddle(q, Gt, mu, maxit=100):
    """Solve K'(t) = q by safeguarded Newton, per column; columns leave the batch as they converge."""
    t = q / np.maximum(np.sum(Gt * Gt * (mu * (1 - mu))[:, None], axis=0), 1e-300)
    lo = np.where(q > 0, 0.0, -np.inf)
    hi = np.where(q > 0, np.inf, 0.0)
    mu_logit = np.log(mu) - np.log1p(-mu)
    shift = Gt.T @ mu  # K'(t) = sum g~ pi - sum g~ mu
    act = np.arange(len(q))
    G = Gt
    for _ in range(maxit):
        ta = t[act]
        K1, K2 = _slopes(ta, G, mu_logit)
        f = K1 - shift[act] - q[act]
        hi[act] = np.where(f > 0, np.minimum(hi[act], ta), hi[act])
        lo[act] = np.where(f < 0, np.maximum(lo[act], ta), lo[act])
        la, ha, qa = lo[act], hi[act], q[act]
        new = ta - f / np.maximum(K2, 1e-300)
        bounded = np.isfinite(la) & np.isfinite(ha)
        out = (new <= la) | (new >= ha)
        new = np.where(out & bounded, 0.5 * (np.where(bounded, la, 0) + np.where(bounded, ha, 0)), new)
        new = np.where(out & ~bounded, np.where(qa > 0, 2 * np.maximum(ta, 1e-3), 2 * np.minimum(ta, -1e-3)), new)
        t[act] = new
        moving = np.abs(new - ta) > 1e-10 * (1 + np.abs(ta))
        if not moving.any():
            break
        if not moving.all():
            act, G = act[moving], G[:, moving]
    return t


def _tail(s, Gt, mu):
    """P(S >= s) for s > 0, P(S <= s) for s < 0 (Lugannani-Rice / Barndorff-Nielsen form); 0 beyond the
    support of S (there the saddle-point equation has no root)."""
    lo_s = np.sum(np.minimum(-Gt * mu[:, None], Gt * (1 - mu)[:, None]), axis=0)
    hi_s = np.sum(np.maximum(-Gt * mu[:, None], Gt * (1 - mu)[:, None]), axis=0)
    outside = (s >= hi_s) | (s <= lo_s)
    s = np.where(outside, np.sign(s) * 1e-3, s)  # a harmless value; the result is overwritten below
    z = _saddle(s, Gt, mu)
    K0, _, K2 = _cgf(z, Gt, mu)
    w = np.sign(z) * np.sqrt(np.maximum(2 * (z * s - K0), 0.0))
    v = z * np.sqrt(K2)
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = w + np.log(v / w) / w
    upper = stats.norm.sf(arg)
    lower = stats.norm.cdf(arg)
    p = np.where(s > 0, upper, lower)
    # where the correction is undefined (s at the mean), the normal approximation
    bad = ~np.isfinite(p) | (np.abs(w) < 1e-8)
    sd = np.sqrt(np.sum(Gt * Gt * (mu * (1 - mu))[:, None], axis=0))
    p = np.where(bad, np.where(s > 0, stats.norm.sf(s / sd), stats.norm.cdf(s / sd)), p)
    return np.where(outside, 0.0, p)


def spa_pvalue(q: np.ndarray, Gt: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Two-sided saddle-point p-values of observed scores q (one per column of the adjusted genotypes Gt).

    Parameters
    ----------
    q : numpy.ndarray
        Observed scores.
    Gt : numpy.ndarray
        Covariate-adjusted genotypes (samples x variants).
    mu : numpy.ndarray
        The null model's means.

    Returns
    -------
    numpy.ndarray
        p-values.
    """
    a = np.abs(q)
    return np.minimum(1.0, _tail(a, Gt, mu) + _tail(-a, Gt, mu))
