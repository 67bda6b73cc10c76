"""Empirical-Bayes prior on the between-subject variance v_g = sigma_g^2, shared by all genes.

With 10-20 subjects each gene's v_g is estimated from few degrees of freedom (d = S - p); borrowing
across genes, as limma does for residual variances and DESeq2 for dispersions, steadies the standard
errors.  The prior is the scaled inverse chi-square with d0 degrees of freedom and scale s0^2, written as
d0 pseudo-subjects: the fit of every gene adds

    d0 (log v + s0^2 / v)                                   to its -2 log L,

so that in the Gaussian case the estimate is (RSS + d0 s0^2) / (S + d0) and v never sits at 0.

d0 and s0^2 come from the genes whose subject variance is measurable -- the within-subject noise n_s of
the subjects' log totals (``subject_noise``) small beside it -- by limma's moment fit of log(v^REML):
E log v^ = log s0^2 + psi(d0/2) - log(d0/2) + psi(d/2) - log(d/2),  Var log v^ = psi'(d0/2) + psi'(d/2),
the sampling term inflated for what noise is left by ``noise_inflation``: subject s carries information
1 / (2 (v + n_s)^2) about v against 1 / (2 v^2) without noise, so a subject with a handful of cells
counts for little instead of spoiling the gene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, polygamma

#: a gene informs the prior when its noise inflation is at most (1 + this)^2: with equal subjects, when their
#: within-subject noise is at most this share of the typical v
INFORMATIVE_NOISE = 0.2
#: fewer informative genes than this: no prior (each gene on its own)
MIN_INFORMATIVE = 20
#: d0 above this is taken as "all genes share one v" (the penalty is then capped here)
D0_MAX = 1e4


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


def trigamma_inverse(y: float) -> float:
    """x with psi'(x) = y (limma's Newton iteration).

    Parameters
    ----------
    y : float
        A positive value.

    Returns
    -------
    float
        x.
    """
    if y > 1e7:
        return 1.0 / np.sqrt(y)
    if y < 1e-6:
        return 1.0 / y
    x = 0.5 + 1.0 / y
    for _ in range(50):
        tri = float(polygamma(1, x))
        step = tri * (1 - tri / y) / float(polygamma(2, x))
        x += step
        if -step / x < 1e-8:
            break
    return x


def noise_inflation(noise: np.ndarray, v: float) -> np.ndarray:
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


def fit_prior(v_ml: np.ndarray, noise: np.ndarray, ok: np.ndarray, S: int, d: float,
              expression: np.ndarray | None = None, trend_df: int = 3) -> VariancePrior:
    """Fit (d0, s0^2) to the ML estimates ``v_ml`` (scaled to REML's by S / d) of the genes ``ok``;
    ``noise``: the within-subject noise, (G, S) from ``subject_noise`` or (G,) for subjects alike.

    With ``expression`` (each gene's log mean expression), s0^2 follows it, as limma-trend's prior: the
    moment equation's left side E log v^ is a natural cubic spline (``trend_df`` df, knots at quantiles) in
    log expression fitted to the informative genes by least squares, d0 comes from the residuals' excess
    variance, and each gene's s0^2 is the trend at its expression (held at the boundary value beyond the
    informative genes' range).

    Parameters
    ----------
    v_ml : numpy.ndarray
        (G,) ML subject variances.
    noise : numpy.ndarray
        Within-subject noise.
    ok : numpy.ndarray
        Genes that inform the prior.
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
    v = np.asarray(v_ml, dtype=float) * S / d
    noise = np.asarray(noise, dtype=float)
    typical = noise if noise.ndim == 1 else noise.mean(axis=1)  # ranks the genes by how well they are measured
    ok = np.asarray(ok, dtype=bool) & np.isfinite(v) & np.isfinite(typical)
    if ok.sum() < MIN_INFORMATIVE:
        return VariancePrior(0.0, np.nan, int(ok.sum()), "too few fitted genes for a prior")
    quiet = ok & (typical <= np.quantile(typical[ok], 0.25))
    s_pre = float(np.median(v[quiet]))
    if s_pre <= 0:
        return VariancePrior(0.0, np.nan, 0, "no subject variance among the best-measured genes: no prior")
    inflation = noise_inflation(noise, s_pre)
    informative = ok & (inflation <= (1 + INFORMATIVE_NOISE) ** 2) & (v > 0)
    k = int(informative.sum())
    if k < MIN_INFORMATIVE:
        return VariancePrior(0.0, np.nan, k,
                             f"{k} genes with a measurable subject variance (< {MIN_INFORMATIVE}): no prior")
    e = np.log(v[informative]) - digamma(d / 2) + np.log(d / 2)
    sampling = float(polygamma(1, d / 2)) * float(np.mean(inflation[informative]))
    if expression is None:
        centre, centre_all, used = e.mean(), None, 1
    else:
        from ..formula.splines import natural_spline_basis

        x = np.asarray(expression, dtype=float)
        xi = x[informative]
        inner = np.quantile(xi, np.linspace(0, 1, trend_df + 1)[1:-1])
        lo, hi = float(xi.min()), float(xi.max())
        B = np.column_stack([np.ones(k), natural_spline_basis(xi, inner, lo, hi)])
        coef, *_ = np.linalg.lstsq(B, e, rcond=None)
        centre = B @ coef
        # beyond the informative genes' range the trend stays at its boundary value (as limma-trend's lowess):
        # a linear extrapolation to the lowly expressed genes, which rarely inform the prior, runs away
        xa = np.clip(np.where(np.isfinite(x), x, np.median(xi)), lo, hi)
        centre_all = np.column_stack([np.ones(len(xa)), natural_spline_basis(xa, inner, lo, hi)]) @ coef
        used = B.shape[1]
    resid = e - centre
    excess = float(np.sum(resid**2) / (k - used)) - sampling
    d0 = min(2 * trigamma_inverse(excess), D0_MAX) if excess > 0 else D0_MAX
    shift = digamma(d0 / 2) - np.log(d0 / 2)
    if centre_all is None:
        return VariancePrior(float(d0), float(np.exp(e.mean() + shift)), k)
    return VariancePrior(float(d0), np.exp(centre_all + shift), k, trend=True)


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
