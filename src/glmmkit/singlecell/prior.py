"""Empirical-Bayes prior on the between-subject variance v_g = sigma_g^2, shared by all genes.

With 10-20 subjects each gene's v_g is estimated from few degrees of freedom (d = S - p); borrowing
across genes, as limma does for residual variances and DESeq2 for dispersions, steadies the standard
errors.  The prior is the scaled inverse chi-square with d0 degrees of freedom and scale s0^2, written as
d0 pseudo-subjects: the fit of every gene adds

    d0 (log v + s0^2 / v)                                   to its -2 log L,

so that in the Gaussian case the estimate is (RSS + d0 s0^2) / (S + d0) and v never sits at 0.  With a
trend (limma-trend's idea, DESeq2's dispersion trend), log s0^2 is a natural spline in log mean expression.

(d0, s0^2) are fitted to every gene by maximum marginal likelihood, each gene with the information it
has about its own v.  That information is the gene's restricted likelihood of v at the subject level:
each subject's total count, linearised at the subject's mode (``working_responses``), is a Gaussian
observation

    y_s = x_s' beta + b_s + e_s,   b_s ~ N(0, v),   e_s ~ N(0, n_s),   n_s = 1 / (information about b_s),

so a subject with a handful of cells (n_s large) carries little information about v, and a gene whose
subjects are all noisy has a flat likelihood that moves the prior little.  Its REML log-likelihood
(``subject_loglik``) is tabulated on a grid of log v with every subject's own n_s, the prior's density
integrated against it there (a Riemann sum: the grid is finer than the prior's width up to d0 =
``D0_MAX``), and the sum over genes maximised in (log d0, spline coefficients).

Two earlier fits failed on simulated data (issue 22): limma's moment equations on the well-measured genes
shrank the noisy, lowly expressed genes towards the well-measured genes' small variance; and a likelihood
of the gene's estimate v^ alone, with one "effective" noise per gene, misread genes whose subjects have
very unequal numbers of cells -- it found a trend in expression that was not there (s0^2 0.005 at low
expression for a true harmonic mean of 0.075) and the tests were liberal (6.5% at 5%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

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


def working_responses(totals: np.ndarray, beta: np.ndarray, theta: np.ndarray, v: np.ndarray, Xs: np.ndarray,
                      lib: np.ndarray, lib2: np.ndarray, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Each subject's total count as a Gaussian observation of x_s' beta + b_s (the module's note).

    A subject's total T_s given b_s is taken as NB2 with mean M_s e^b, M_s = e^(x_s' beta) sum_i e^(o_i), and
    1 / size phi_s = sum_i e^(2 o_i) / (theta (sum_i e^(o_i))^2) (a sum of NB2 cells sharing b; Poisson:
    phi = 0).  b_s is its mode given v (Newton on the strictly concave log-likelihood + log N(b; 0, v); b = 0
    where v = 0); the working response is y_s = x_s' beta + b_s + score_s / I_s with the Fisher information
    I_s = mu_s / (1 + phi_s mu_s) at mu_s = M_s e^(b_s), and the noise n_s = 1 / I_s.  A subject with no
    counts has a finite y (b_s - 1 for Poisson at x' beta) and a large n.

    Parameters
    ----------
    totals : numpy.ndarray
        (G, S) each gene's summed counts per subject.
    beta : numpy.ndarray
        (G, p) fixed effects of the gene's fit.
    theta : numpy.ndarray
        (G,) NB sizes (inf for Poisson).
    v : numpy.ndarray
        (G,) the fit's subject variance (the modes' centre; 0 gives b = 0).
    Xs : numpy.ndarray
        (S, p) subject design.
    lib, lib2 : numpy.ndarray
        (S,) sums of exp(offset) and exp(2 offset) over each subject's cells.
    max_iter : int
        Newton steps for the modes at most.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        y and n, both (G, S).
    """
    T = np.asarray(totals, dtype=float)
    eta = np.asarray(beta, dtype=float) @ Xs.T
    M = np.exp(eta) * lib
    inv_theta = np.where(np.isfinite(theta), 1.0 / np.asarray(theta, dtype=float), 0.0)
    phi = inv_theta[:, None] * (lib2 / lib ** 2)
    v = np.asarray(v, dtype=float)[:, None]
    inv_v = np.where(v > 0, 1.0 / np.where(v > 0, v, 1.0), 0.0)
    b = np.zeros_like(M)
    free = np.broadcast_to(v > 0, M.shape)
    for _ in range(max_iter):
        mu = M * np.exp(b)
        score = (T - mu) / (1 + phi * mu) - b * inv_v
        info = mu * (1 + phi * T) / (1 + phi * mu) ** 2 + inv_v  # observed: d/db of -score (> 0: concave)
        step = np.where(free, np.clip(score / info, -1.0, 1.0), 0.0)
        b += step
        if np.max(np.abs(step), initial=0.0) < 1e-8:
            break
    mu = M * np.exp(b)
    fisher = mu / (1 + phi * mu)
    return eta + b + (T - mu) / (1 + phi * mu) / fisher, 1.0 / fisher


def subject_loglik(y: np.ndarray, noise: np.ndarray, Xs: np.ndarray) -> np.ndarray:
    """(G, L) restricted log-likelihood of each gene's v on ``LOG_V_GRID`` (each row's maximum 0), for
    y_s ~ N(x_s' beta, v + n_s) independently over subjects, beta profiled out (REML):

        -2 l(v) = sum_s log(v + n_s) + log det(X' W X) + y' W y - c' (X' W X)^-1 c,  W = diag(1 / (v + n_s)),
        c = X' W y.

    Parameters
    ----------
    y : numpy.ndarray
        (G, S) subject-level observations (``working_responses``).
    noise : numpy.ndarray
        (G, S) their noise variances n_s.
    Xs : numpy.ndarray
        (S, p) subject design.

    Returns
    -------
    numpy.ndarray
        (G, L).
    """
    G, S = y.shape
    p = Xs.shape[1]
    XX = (Xs[:, :, None] * Xs[:, None, :]).reshape(S, p * p)
    out = np.empty((G, len(LOG_V_GRID)))
    for col, Vl in enumerate(np.exp(LOG_V_GRID)):  # one grid point at a time: (G, S) temporaries
        w = 1.0 / (Vl + noise)
        A = (w @ XX).reshape(G, p, p)
        wy = w * y
        c = wy @ Xs
        sol = np.linalg.solve(A, c[:, :, None])[:, :, 0]
        quad = np.einsum("gs,gs->g", wy, y) - np.einsum("gp,gp->g", c, sol)
        out[:, col] = -0.5 * (np.sum(np.log(Vl + noise), axis=1) + np.linalg.slogdet(A)[1] + quad)
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


def marginal_nll(par: np.ndarray, ll: np.ndarray, B: np.ndarray) -> tuple[float, np.ndarray]:
    """Minus the prior's marginal log-likelihood over genes, -sum_g log sum_l L_g(v_l) p(v_l) du, and its gradient.

    With the posterior weights q_gl of the grid points, h = d0 / 2 and log s0^2 = B c:
    d/d(B c)_g = -h sum_l q_gl (1 - s0^2 / v_l) and d/d log d0 = -h sum_gl q_gl (log h + 1 + log s0^2 - psi(h)
    - log v_l - s0^2 / v_l).

    Parameters
    ----------
    par : numpy.ndarray
        (log d0, c): the trend's coefficients c (one: a constant scale).
    ll : numpy.ndarray
        (G, L) the genes' log-likelihoods of v on ``LOG_V_GRID``.
    B : numpy.ndarray
        (G, len(c)) the trend's basis.

    Returns
    -------
    (float, numpy.ndarray)
        The value and its gradient in ``par``.
    """
    from scipy.special import logsumexp

    u = LOG_V_GRID[None, :]
    ls, h = B @ par[1:], float(np.exp(par[0])) / 2
    joint = ll + log_prior_on_grid(ls, 2 * h)
    lse = logsumexp(joint, axis=1)
    q = np.exp(joint - lse[:, None])
    ratio = np.exp(ls[:, None] - u)
    g_ls = -h * np.sum(q * (1 - ratio), axis=1)
    g_d0 = -h * np.sum(q * (np.log(h) + 1 + ls[:, None] - digamma(h) - u - ratio))
    du = LOG_V_GRID[1] - LOG_V_GRID[0]
    return -float(np.sum(lse) + len(ll) * np.log(du)), np.r_[g_d0, B.T @ g_ls]


def fit_prior(y: np.ndarray, noise: np.ndarray, Xs: np.ndarray, ok: np.ndarray,
              expression: np.ndarray | None = None, trend_df: int = 3) -> VariancePrior:
    """Fit (d0, s0^2) by maximum marginal likelihood over the genes ``ok`` (the module's note), each gene
    with its subject-level restricted likelihood of v (``subject_loglik`` of ``y``, ``noise``).

    With ``expression`` (each gene's log mean expression), log s0^2 is a natural cubic spline in it (``trend_df``
    df, knots at quantiles of the fitted genes), held at its boundary value beyond their range.

    Parameters
    ----------
    y : numpy.ndarray
        (G, S) subject-level observations (``working_responses``).
    noise : numpy.ndarray
        (G, S) their noise variances.
    Xs : numpy.ndarray
        (S, p) subject design.
    ok : numpy.ndarray
        (G,) genes to fit the prior to (converged first fits).
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

    y = np.asarray(y, dtype=float)
    noise = np.asarray(noise, dtype=float)
    x = None if expression is None else np.asarray(expression, dtype=float)
    ok = (np.asarray(ok, dtype=bool) & np.all(np.isfinite(y), axis=1) & np.all(np.isfinite(noise), axis=1)
          & np.all(noise >= 0, axis=1) & (True if x is None else np.isfinite(x)))
    k = int(ok.sum())
    if k < MIN_INFORMATIVE:
        return VariancePrior(0.0, np.nan, k, f"{k} fitted genes (< {MIN_INFORMATIVE}): no prior")
    idx = np.flatnonzero(ok)
    if k > MAX_PRIOR_GENES:  # evenly spaced in expression (or in gene order without a trend)
        order = idx[np.argsort(x[idx], kind="stable")] if x is not None else idx
        idx = np.sort(order[np.linspace(0, k - 1, MAX_PRIOR_GENES).round().astype(int)])
    ll = subject_loglik(y[idx], noise[idx], Xs)
    if x is None:
        B = np.ones((len(idx), 1))
    else:
        from ..formula.splines import natural_spline_basis

        xi = x[idx]
        inner = np.quantile(xi, np.linspace(0, 1, trend_df + 1)[1:-1])
        lo, hi = float(xi.min()), float(xi.max())
        B = np.column_stack([np.ones(len(idx)), natural_spline_basis(xi, inner, lo, hi)])
    # start: s0^2 at the median of the genes' own REML estimates (the grid's argmax)
    v_start = float(np.median(np.exp(LOG_V_GRID[np.argmax(ll, axis=1)])))
    x0 = np.r_[np.log(4.0), np.log(max(v_start, 1e-4)), np.zeros(B.shape[1] - 1)]
    bounds = [(np.log(0.2), np.log(D0_MAX))] + [(np.log(1e-6), np.log(50.0))] + [(None, None)] * (B.shape[1] - 1)
    with np.errstate(over="ignore", under="ignore"):
        r = minimize(marginal_nll, x0, args=(ll, B), jac=True, method="L-BFGS-B", bounds=bounds)
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
