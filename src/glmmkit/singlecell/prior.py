"""Empirical-Bayes prior on the between-subject variance v_g = sigma_g^2, shared by all genes.

With 10-20 subjects each gene's v_g is estimated from few degrees of freedom (d = S - p); borrowing
across genes, as limma does for residual variances and DESeq2 for dispersions, steadies the standard
errors.  The prior is the scaled inverse chi-square with d0 degrees of freedom and scale s0^2, written as
d0 pseudo-subjects: the fit of every gene adds

    d0 (log v + s0^2 / v)                                   to its -2 log L,

so that in the Gaussian case the estimate is (RSS + d0 s0^2) / (S + d0) and v never sits at 0.  With a
trend (limma-trend's idea, DESeq2's dispersion trend), log s0^2 is a natural spline in log mean expression.

(d0, s0^2) are fitted to every gene by maximum marginal likelihood, each gene with the information it
has.  A gene's estimate v^ (REML scale) is taken as a Gaussian subject-level variance estimate with
within-subject noise n_s (``subject_noise``: the delta-method variance of a subject's log total):

    (v^ + n) d / (v + n) ~ chi2_d,   n = v (1 / sqrt(mean_s (v / (v + n_s))^2) - 1),

the effective noise that costs the same information about v (a subject with a handful of cells counts for
little; a gene whose subjects are all noisy has a flat likelihood and moves the prior little).  Its
log-likelihood is tabulated on a grid of log v, the prior's density integrated against it there (a Riemann
sum: the grid is finer than the prior's width up to d0 = ``D0_MAX``), and the sum over genes maximised in
(log d0, spline coefficients).  The earlier fit -- limma's moment equations on the genes with little noise
only -- ignored the noisy, lowly expressed genes and, when their donor variance is larger (it is, in real
data), shrank them towards the well-measured genes' small variance: false discoveries (issue 22).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

#: fewer fitted genes than this: no prior (each gene on its own)
MIN_INFORMATIVE = 20
#: d0 is at most this ("all genes share one v" in practice; the grid resolves the prior up to it)
D0_MAX = 300.0
#: the grid of log v for the marginal likelihood (spacing 0.074: finer than the prior at D0_MAX, sd 0.08)
LOG_V_GRID = np.linspace(np.log(1e-6), np.log(50.0), 240)
#: the hyperparameters are fitted to at most this many genes, evenly spaced in mean expression
MAX_PRIOR_GENES = 4000


@dataclass
class VariancePrior:
    d0: float          # prior degrees of freedom (0: no prior)
    s2: object         # prior scale s0^2 of v = sigma^2: one value, or one per gene with a trend
    n_informative: int  # genes the prior was fitted to
    note: str = ""
    trend: bool = False  # s0^2 follows mean expression (limma-trend's way)

    @property
    def active(self) -> bool:
        """Whether the prior has weight (d0 > 0)."""
        return self.d0 > 0


def subject_noise(beta: np.ndarray, theta: np.ndarray, Xs: np.ndarray, lib: np.ndarray, lib2: np.ndarray) -> np.ndarray:
    """(G, S) variance of log(sum of a subject's counts) given its random effect, by the delta method:
    1 / sum_i mu_i + sum_i mu_i^2 / (theta (sum_i mu_i)^2)  (the second term 0 for Poisson, theta = inf).

    Parameters
    ----------
    beta : numpy.ndarray
        (G, p) fixed effects.
    theta : numpy.ndarray
        (G,) NB sizes (inf for Poisson).
    Xs : numpy.ndarray
        (S, p) subject design.
    lib, lib2 : numpy.ndarray
        (S,) sums of exp(offset) and exp(2 offset) over each subject's cells.

    Returns
    -------
    numpy.ndarray
        (G, S).
    """
    m = np.einsum("gp,sp->gs", beta, Xs)
    inv_theta = np.where(np.isfinite(theta), 1.0 / theta, 0.0)
    return np.exp(-m) / lib + inv_theta[:, None] * (lib2 / lib ** 2)


def noise_inflation(noise: np.ndarray, v) -> np.ndarray:
    """Var(log v^) with within-subject noise over its value without, per gene: S / sum_s (v / (v + n_s))^2.
    ``noise`` is (G, S) per subject, or (G,) for subjects alike (then (1 + n / v)^2).

    Parameters
    ----------
    noise : numpy.ndarray
        (G, S) or (G,).
    v : float
        The subject variance.

    Returns
    -------
    numpy.ndarray
        (G,) inflation factors.
    """
    n = np.asarray(noise, dtype=float)
    n = n[:, None] if n.ndim == 1 else n
    return 1.0 / np.mean((v / (v + n)) ** 2, axis=1)


def variance_loglik(v_reml: np.ndarray, noise: np.ndarray, d: float) -> np.ndarray:
    """(G, L) log-likelihood of each gene's v on ``LOG_V_GRID`` (each row's maximum 0): (v^ + n) d / (v + n) ~
    chi2_d with the effective noise n of the module's note.

    Parameters
    ----------
    v_reml : numpy.ndarray
        (G,) subject variances on the REML scale.
    noise : numpy.ndarray
        (G, S) or (G,) within-subject noise.
    d : float
        Degrees of freedom between subjects.

    Returns
    -------
    numpy.ndarray
        (G, L).
    """
    V = np.exp(LOG_V_GRID)
    out = np.empty((len(v_reml), len(V)))
    for col, Vl in enumerate(V):  # one grid point at a time: (G, S) temporaries, not (G, S, L)
        tot = Vl * np.sqrt(noise_inflation(noise, Vl))  # v + n
        out[:, col] = -(d / 2) * np.log(tot) - d * (v_reml + tot - Vl) / (2 * tot)
    return out - out.max(axis=1, keepdims=True)


def log_prior_on_grid(log_s2: np.ndarray, d0: float) -> np.ndarray:
    """(G, L) log density of the scaled inverse chi-square(d0, s0^2) at v = e^u on ``LOG_V_GRID``, times the
    Jacobian e^u (a density in u).

    Parameters
    ----------
    log_s2 : numpy.ndarray
        (G,) log s0^2 per gene.
    d0 : float
        Prior degrees of freedom.

    Returns
    -------
    numpy.ndarray
        (G, L).
    """
    u = LOG_V_GRID[None, :]
    h = d0 / 2
    return h * (np.log(h) + log_s2[:, None]) - gammaln(h) - h * u - h * np.exp(log_s2[:, None] - u)


def fit_prior(v_ml: np.ndarray, noise: np.ndarray, ok: np.ndarray, S: int, d: float,
              expression: np.ndarray | None = None, trend_df: int = 3) -> VariancePrior:
    """Fit (d0, s0^2) by maximum marginal likelihood over the genes ``ok`` (the module's note); ``v_ml`` are
    ML estimates (scaled to REML's by S / d); ``noise`` the within-subject noise, (G, S) from ``subject_noise``
    or (G,) for subjects alike.

    With ``expression`` (each gene's log mean expression), log s0^2 is a natural cubic spline in it (``trend_df``
    df, knots at quantiles of the fitted genes), held at its boundary value beyond their range.

    Parameters
    ----------
    v_ml : numpy.ndarray
        (G,) ML subject variances.
    noise : numpy.ndarray
        Within-subject noise.
    ok : numpy.ndarray
        Genes to fit the prior to (converged first fits).
    S : int
        Subjects.
    d : float
        Residual degrees of freedom between subjects.
    expression : numpy.ndarray, optional
        (G,) log mean expression: fit a trend.
    trend_df : int
        The trend's degrees of freedom.

    Returns
    -------
    VariancePrior
        d0, s0^2 (per gene with a trend) and how many genes it was fitted to.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    v = np.asarray(v_ml, dtype=float) * S / d
    noise = np.asarray(noise, dtype=float)
    noise2 = noise[:, None] if noise.ndim == 1 else noise
    x = None if expression is None else np.asarray(expression, dtype=float)
    ok = (np.asarray(ok, dtype=bool) & np.isfinite(v) & (v >= 0) & np.all(np.isfinite(noise2), axis=1)
          & np.all(noise2 >= 0, axis=1) & (True if x is None else np.isfinite(x)))
    k = int(ok.sum())
    if k < MIN_INFORMATIVE:
        return VariancePrior(0.0, np.nan, k, f"{k} fitted genes (< {MIN_INFORMATIVE}): no prior")
    idx = np.flatnonzero(ok)
    if k > MAX_PRIOR_GENES:  # evenly spaced in expression (or in gene order without a trend)
        order = idx[np.argsort(x[idx], kind="stable")] if x is not None else idx
        idx = np.sort(order[np.linspace(0, k - 1, MAX_PRIOR_GENES).round().astype(int)])
    ll = variance_loglik(v[idx], noise2[idx], d)
    if x is None:
        B = np.ones((len(idx), 1))
    else:
        from ..formula.splines import natural_spline_basis

        xi = x[idx]
        inner = np.quantile(xi, np.linspace(0, 1, trend_df + 1)[1:-1])
        lo, hi = float(xi.min()), float(xi.max())
        B = np.column_stack([np.ones(len(idx)), natural_spline_basis(xi, inner, lo, hi)])
    du = LOG_V_GRID[1] - LOG_V_GRID[0]

    def nll(par):
        lp = log_prior_on_grid(B @ par[1:], float(np.exp(par[0])))
        return -float(np.sum(logsumexp(ll + lp, axis=1)) + len(idx) * np.log(du))

    x0 = np.r_[np.log(4.0), np.log(max(float(np.median(v[idx])), 1e-4)), np.zeros(B.shape[1] - 1)]
    bounds = [(np.log(0.2), np.log(D0_MAX))] + [(np.log(1e-6), np.log(50.0))] + [(None, None)] * (B.shape[1] - 1)
    with np.errstate(over="ignore", under="ignore"):
        r = minimize(nll, x0, method="L-BFGS-B", bounds=bounds)
    note = "" if r.success else f"the prior's fit stopped early: {r.message}"
    d0 = float(np.exp(r.x[0]))
    if x is None:
        return VariancePrior(d0, float(np.exp(r.x[1])), k, note)
    xa = np.clip(np.where(np.isfinite(x), x, np.median(xi)), lo, hi)
    Ba = np.column_stack([np.ones(len(xa)), natural_spline_basis(xa, inner, lo, hi)])
    return VariancePrior(d0, np.exp(Ba @ r.x[1:]), k, note, trend=True)


def donor_share(v: np.ndarray, noise: np.ndarray, Xs: np.ndarray, j: int) -> np.ndarray:
    """The share of Var(beta_j) that the subject variance makes: v dVar/dv / Var with the subjects weighted
    as in the Laplace information, w_s = 1 / (v + noise_s):  Var = [(X'WX)^-1]_jj.

    Parameters
    ----------
    v : numpy.ndarray
        (G,) subject variances.
    noise : numpy.ndarray
        (G, S) within-subject noise.
    Xs : numpy.ndarray
        (S, p) subject-level design.
    j : int
        The coefficient.

    Returns
    -------
    numpy.ndarray
        (G,) the share.
    """
    w = 1.0 / (np.asarray(v, dtype=float)[:, None] + noise)
    A = np.einsum("si,gs,sj->gij", Xs, w, Xs)
    Ai = np.linalg.inv(A)
    B = np.einsum("si,gs,sj->gij", Xs, w * w, Xs)
    dvar = np.einsum("gi,gij,gj->g", Ai[:, j], B, Ai[:, j])
    return np.clip(v * dvar / Ai[:, j, j], 0.0, 1.0)
