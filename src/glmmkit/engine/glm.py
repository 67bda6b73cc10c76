"""A plain GLM by IRLS, with Wald standard errors: the GLMM's start, and the one GLM routine of the
applications (the naive comparison of the phylogenetic story, the meta-analysis starts, the GWAS null
model's start, the tree path's stage-2 scaling).

    beta by Fisher scoring with step-halving (R's glm.fit),
    vcov(beta) = phi (X'WX)^-1,  W = wt mu'^2 / V(mu),  phi = Pearson chi^2 / (n - p) for families
    whose dispersion scales the variance (Gaussian, Gamma, inverse Gaussian), else 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats

from ..errors import FitError
from ..families import Family
from .kernels import Kernels


def fit_glm(y, X, wt, offset, family: Family, maxit: int = 50, tol: float = 1e-10):
    """A GLM by Fisher scoring with step-halving (the GLMM's start).

    Parameters
    ----------
    y, X, wt, offset : numpy.ndarray
        Response (on the family's scale), design, prior weights and offset.
    family : Family
        Family and link.
    maxit : int
        Most iterations.
    tol : float
        Relative change of the deviance that ends the iterations.

    Returns
    -------
    tuple
        (beta, mu, deviance, converged).

    The first step goes from ``family.mustart``, as R's ``glm.fit``.  When that step and all its halvings
    leave the link's domain (an inverse link whose linear predictor turns negative), the iterations start
    again from the intercept-only fit, whose linear predictor is valid, and halve towards each new step.
    """
    link = family.link
    mu = family.mustart(y, wt)
    out = _irls(y, X, wt, offset, family, link.link(mu), mu, np.zeros(X.shape[1]), np.inf, maxit, tol)
    if np.isfinite(out[2]):
        return out
    ref = _intercept_only(y, X, wt, offset, family)
    if ref is None:
        return out
    beta, eta = ref
    mu = link.inverse(eta)
    dev = float(np.sum(family.unit_deviance(y, mu, wt)))
    return _irls(y, X, wt, offset, family, eta, mu, beta, dev, maxit, tol) if np.isfinite(dev) else out


def _intercept_only(y, X, wt, offset, family: Family):
    """(beta, eta) of the intercept-only model at the weighted mean of y, or None without a constant column."""
    const = np.flatnonzero(np.all(X == X[:1], axis=0) & (X[0] != 0)) if len(X) else np.zeros(0, dtype=int)
    if not len(const):
        return None
    ybar = float(np.sum(wt * y) / max(np.sum(wt), 1e-300))
    beta = np.zeros(X.shape[1])
    beta[const[0]] = float(family.link.link(np.array([ybar]))[0]) / X[0, const[0]]
    return beta, offset + X @ beta


def _irls(y, X, wt, offset, family: Family, eta, mu, beta, dev, maxit, tol):
    link = family.link
    converged = False
    # families with a fast kernel (binomial-logit, Poisson-log, NB2-log) evaluate the deviance as
    # 2 (K_sat - K(eta)), K the summed log-likelihood kernel, with K_sat found once from one unit-deviance
    # pass: one or two transcendental functions per row instead of xlogy's
    kern = Kernels(family) if family.fast_path else None
    k_sat = None

    def deviance(eta_c, mu_c):
        nonlocal k_sat
        if kern is None:
            return float(np.sum(family.unit_deviance(y, mu_c, wt))), mu_c
        ks, mu_k = kern.kernel(eta_c, y, wt)
        if k_sat is None:
            k_sat = ks + 0.5 * float(np.sum(family.unit_deviance(y, mu_k, wt)))
            if not np.isfinite(k_sat):  # a point outside the domain: find K_sat at the next one
                k_sat = None
                return np.inf, mu_k
        return 2.0 * (k_sat - ks), mu_k

    for _ in range(maxit):
        if kern is not None:  # the family's fast weights: W and W z in one pass
            w, wz = kern.weights(eta, mu, y, wt, eta - offset)
            sw = np.sqrt(w)
            # W z / sqrt(W), with rows of zero prior weight left out (0, not 0/0)
            A, rhs = X * sw[:, None], np.divide(wz, sw, out=np.zeros_like(wz), where=sw > 0)
        else:
            d = link.mu_eta(eta)
            w = wt * d * d / family.variance(mu)
            z = eta - offset + (y - mu) / d
            sw = np.sqrt(w)
            A, rhs = X * sw[:, None], z * sw
        if not np.isfinite(float(A.sum()) + float(rhs.sum())):
            # LAPACK must not see a NaN (it prints to stdout and fails); the data are beyond the family's
            # numerical range (counts near 1e300, a response at a boundary the link cannot reach, ...)
            raise FitError("the GLM start is not finite: the weighted working response overflows for these data "
                           f"({family.name} with the {link.name} link); check the response's scale")
        # QR with column pivoting (LAPACK gelsy): rank-revealing like the SVD driver, several times faster
        new, *_ = sla.lstsq(A, rhs, check_finite=False, lapack_driver="gelsy")
        step = 1.0
        for _ in range(30):
            b = beta + step * (new - beta) if np.isfinite(dev) else new
            eta_c = offset + X @ b
            dev_c, mu_c = deviance(eta_c, link.inverse(eta_c) if kern is None else None)
            if np.isfinite(dev_c) and dev_c <= dev + 1e-12 * abs(dev_c):
                break
            step *= 0.5
        else:
            break
        change = dev - dev_c
        beta, eta, mu, dev = b, eta_c, mu_c, dev_c
        if abs(change) < tol * (abs(dev) + 0.1):
            converged = True
            break
    return beta, mu, dev, converged


def wald_vcov(X, w) -> np.ndarray:
    """(X'WX)^-1: the inverse Fisher information of a GLM's coefficients (pseudo-inverse when singular).

    Parameters
    ----------
    X : numpy.ndarray
        (n, p) design.
    w : numpy.ndarray
        (n,) working weights.

    Returns
    -------
    numpy.ndarray
        (p, p) covariance (before any dispersion).
    """
    info = (X.T * w) @ X
    try:
        c = sla.cho_factor(info, lower=True, check_finite=False)
        return sla.cho_solve(c, np.eye(info.shape[0]), check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return np.linalg.pinv(info)


@dataclass
class GlmFit:
    """A fitted GLM: estimates, Wald covariance, means, deviance and log-likelihood."""

    beta: np.ndarray
    vcov: np.ndarray
    mu: np.ndarray
    eta: np.ndarray
    deviance: float
    loglik: float
    dispersion: float
    converged: bool

    @property
    def se(self) -> np.ndarray:
        """Wald standard errors."""
        return np.sqrt(np.maximum(np.diag(self.vcov), 0.0))

    def coef_table(self, names) -> pd.DataFrame:
        """Estimates with Wald z tests.

        Parameters
        ----------
        names : list of str
            Coefficient names.

        Returns
        -------
        pandas.DataFrame
            Columns ``estimate``, ``std_error``, ``z``, ``p``.
        """
        se = self.se
        z = self.beta / se
        return pd.DataFrame({"estimate": self.beta, "std_error": se, "z": z, "p": 2 * stats.norm.sf(np.abs(z))},
                            index=list(names))


def glm(y, X, wt, offset, family: Family) -> GlmFit:
    """Fit a GLM with Wald standard errors (the one GLM routine of glmmkit's applications).

    Parameters
    ----------
    y, X, wt, offset : numpy.ndarray
        Response (on the family's scale), design, prior weights and offset.
    family : Family
        Family and link (a family with a size or a dispersion parameter is fitted at its start value,
        ``family.start_family()``).

    Returns
    -------
    GlmFit
        Estimates, covariance, means, deviance, log-likelihood and convergence.
    """
    fam = family.start_family()
    beta, mu, dev, converged = fit_glm(y, X, wt, offset, fam)
    eta = offset + X @ beta
    w = fam.working_weights(eta, mu, wt)
    phi = 1.0
    if fam.dispersion_name and fam.dispersion_scales:
        n, p = X.shape
        phi = float(np.sum(wt * (y - mu) ** 2 / fam.variance(mu)) / max(n - p, 1))
        fam = fam.with_dispersion(phi)
    return GlmFit(beta, phi * wald_vcov(X, w), mu, eta, float(dev), float(np.sum(fam.loglik(y, mu, wt))), phi,
                  bool(converged))
