"""The per-observation steps of PIRLS, with fast paths for canonical links.

A profile of 100,000-row fits showed the elementwise work dominating PIRLS (inverse link,
its derivative, variance, weights, working response, log-likelihood kernel: about fifteen
passes over the data, several of them transcendental).  For a canonical link the work
shrinks: mu' = V(mu), so

    W = wt V(mu) / phi,    W (y - mu) / mu' = wt (y - mu) / phi,

and the log-likelihood kernel is simplest in eta:

    binomial-logit:  k eta - wt softplus(eta)        (one exp, one log1p)
    Poisson-log:     wt (y eta - exp(eta))           (one exp)

A fused numba loop was tried and measured slower than this (scalar exp/log in numba are
not vectorised; numpy's are), so there is no compiled kernel.  Non-canonical links take the
general path.  The tests check both paths against each other.
"""

from __future__ import annotations

import numpy as np

_EPS = float(np.finfo(float).eps)


class Kernels:
    """Per-observation steps for one family: ``kernel`` (objective) and ``weights`` (PIRLS)."""

    def __init__(self, family, fast: bool = True):
        self.family = family
        key = (family.name, family.link.name)
        known = {("binomial", "logit"): "logit", ("poisson", "log"): "poisson", ("nbinom2", "log"): "nb2"}.get(key)
        self.fast = known if fast else None
        # the information PIRLS steps with: for canonical links expected = observed; NB2-log's observed
        # information is always positive, so PIRLS takes true Newton steps (quadratic convergence)
        self.pirls_kind = "observed" if self.fast in ("logit", "poisson", "nb2") else "expected"

    def kernel(self, eta, y, wt):
        """(sum of the mu-dependent log-likelihood kernel, mu)."""
        if self.fast == "logit":
            z = np.exp(-np.abs(eta))
            mu = np.where(eta >= 0, 1.0, z) / (1.0 + z)
            soft = np.maximum(eta, 0.0) + np.log1p(z)
            ks = float((y * wt) @ eta - wt @ soft)
            return ks, np.clip(mu, _EPS, 1 - _EPS)
        if self.fast == "poisson":
            mu = np.maximum(np.exp(np.minimum(eta, 700.0)), 1e-300)
            return float((wt * y) @ eta - wt @ mu), mu
        if self.fast == "nb2":
            th = self.family.dispersion
            mu = np.maximum(np.exp(np.minimum(eta, 700.0)), 1e-300)
            return float((wt * y) @ eta - (wt * (th + y)) @ np.log(th + mu)), mu
        fam = self.family
        mu = fam.link.inverse(eta)
        return float(np.sum(fam.loglik_kernel(y, mu, wt))), mu

    def weights(self, eta, mu, y, wt, base):
        """W and W v with the pseudo-data v = base + score / W (= base + (y - mu) / mu' for GLMs)."""
        if self.fast == "logit":
            w = wt * mu * (1.0 - mu)
            return w, w * base + wt * (y - mu)
        if self.fast == "poisson":
            w = wt * mu
            return w, w * base + wt * (y - mu)
        if self.fast == "nb2":
            th = self.family.dispersion
            r = th / (th + mu)
            w = wt * mu * r * (th + y) / (th + mu)  # observed information (Newton)
            return w, w * base + wt * (y - mu) * r
        fam = self.family
        w = fam.working_weights(eta, mu, wt)
        return w, w * base + fam.score_eta(y, eta, mu, wt)

    def steps_with(self, kind: str) -> bool:
        """Whether PIRLS's own weights are the information ``kind`` (both, for canonical links)."""
        return self.fast in ("logit", "poisson") or self.pirls_kind == kind

    def final_weights(self, kind, eta, mu, y, wt):
        """Weights for the Laplace log-determinant: expected (lme4) or observed (glmmTMB) information."""
        fam = self.family
        if kind == "observed":
            return fam.observed_weights(y, eta, mu, wt)
        if self.fast in ("logit", "poisson"):
            return self.weights(eta, mu, y, wt, np.zeros_like(eta))[0]
        return fam.working_weights(eta, mu, wt)
