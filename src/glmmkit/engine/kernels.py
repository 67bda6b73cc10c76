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

from ..families import Family


class Kernels:
    """Per-observation steps for one family: ``kernel`` (objective) and ``weights`` (PIRLS).

    The arithmetic is the family's own (``Family.fast_kernel`` / ``fast_weights`` for canonical and
    NB2-log links, ``loglik_kernel`` / ``working_weights`` / ``score_eta`` otherwise); this class only
    chooses the path.

    Parameters
    ----------
    family : Family
        The family (with its link and parameters).
    fast : bool
        Use the family's fast path where it has one (False: the general path, for cross-checks).
    """

    def __init__(self, family, fast: bool = True):
        self.family = family
        self.fast = family.fast_path if fast else None
        # the information PIRLS steps with: for canonical links expected = observed; NB2-log's observed
        # information is always positive, so PIRLS takes true Newton steps (quadratic convergence)
        self.pirls_kind = "observed" if self.fast in ("logit", "poisson", "nb2") else "expected"

    def kernel(self, eta, y, wt):
        """The summed log-likelihood kernel and the means.

        Parameters
        ----------
        eta, y, wt : numpy.ndarray
            Linear predictor, response and prior weights.

        Returns
        -------
        tuple
            (float, numpy.ndarray).
        """
        # the family's own method, or (fast=False) the base class's general one on the same family
        impl = type(self.family) if self.fast else Family
        return impl.fast_kernel(self.family, eta, y, wt)

    def weights(self, eta, mu, y, wt, base):
        """W and W v with the pseudo-data v = base + score / W (= base + (y - mu) / mu' for GLMs).

        Parameters
        ----------
        eta, mu, y, wt : numpy.ndarray
            Linear predictor, means, response and prior weights.
        base : numpy.ndarray
            The part of eta the PIRLS step solves for.

        Returns
        -------
        tuple
            (W, W v).
        """
        impl = type(self.family) if self.fast else Family
        return impl.fast_weights(self.family, eta, mu, y, wt, base)

    def steps_with(self, kind: str) -> bool:
        """Whether PIRLS's own weights are the information ``kind`` (both, for canonical links).

        Parameters
        ----------
        kind : {"expected", "observed"}
            The information.

        Returns
        -------
        bool
            True when the last PIRLS factor can serve the Laplace log-determinant.
        """
        return self.fast in ("logit", "poisson") or self.pirls_kind == kind

    def final_weights(self, kind, eta, mu, y, wt):
        """Weights for the Laplace log-determinant: expected (lme4) or observed (glmmTMB) information.

        Parameters
        ----------
        kind : {"expected", "observed"}
            The information.
        eta, mu, y, wt : numpy.ndarray
            Linear predictor, means, response and prior weights.

        Returns
        -------
        numpy.ndarray
            The weights.
        """
        fam = self.family
        if kind == "observed":
            return fam.observed_weights(y, eta, mu, wt)
        if self.fast in ("logit", "poisson"):
            return self.weights(eta, mu, y, wt, np.zeros_like(eta))[0]
        return fam.working_weights(eta, mu, wt)
