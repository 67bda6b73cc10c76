"""A plain GLM by IRLS: starting values for the GLMM (and the no-random-effects comparison)."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..families import Family


def fit_glm(y, X, wt, offset, family: Family, maxit: int = 50, tol: float = 1e-10):
    """Return (beta, mu, deviance, converged). Fisher scoring with step-halving."""
    link = family.link
    mu = family.mustart(y, wt)
    eta = link.link(mu)
    beta = np.zeros(X.shape[1])
    dev = np.inf
    converged = False
    for _ in range(maxit):
        d = link.mu_eta(eta)
        w = wt * d * d / family.variance(mu)
        z = eta - offset + (y - mu) / d
        sw = np.sqrt(w)
        new, *_ = sla.lstsq(X * sw[:, None], z * sw, check_finite=False)
        step = 1.0
        for _ in range(30):
            b = beta + step * (new - beta) if np.isfinite(dev) else new
            eta_c = offset + X @ b
            mu_c = link.inverse(eta_c)
            dev_c = float(np.sum(family.unit_deviance(y, mu_c, wt)))
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
