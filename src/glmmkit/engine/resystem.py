"""The random-effects system protocol: what PIRLS, the Laplace/AGQ objective and the optimiser ask of
the random effects, so that one engine drives every algebra.

A system owns the random-effects vector u (its meaning is the system's own) and answers:

    assemble   raw = system.raw(w, D)            weighted cross-products of [Z, D] (D: X for the joint
                                                 system, or None)
    factor     F = system.factor(raw, theta)     the penalised system  P = Lambda'Z'WZLambda + prior
    solve      F.solve(rhs)                      P x = rhs
    logdet     F.logdet_re()                     log det P - log det(prior precision): the Laplace term
    selected   system.ranef_condvar(theta, u, F) conditional modes and variances per term
    inverse
    and        system.zlam_u(theta, u)           the random part of eta
               system.lam_zt(theta, v)           its transpose applied to v (the right-hand side)
               system.penalty(theta, u)          the prior's quadratic form in u

so that the Laplace value is  -2 sum log p(y | u-hat) + penalty(u-hat) + logdet_re, whatever the system.

Implementations:

* ``engine.blocked.Structure``: the blocked Cholesky (u spherical, penalty |u|^2, prior log det 0).
* ``phylo.sparse.TreeSystem``: Brownian motion on a tree in node space (u = the node values a, penalty
  tau a'Qa, P tree-structured and factored leaves-first with no fill-in), with other terms beside it
  through a dense Schur complement.
* ``engine.sparse_known.SparseKnownSystem``: a known covariance held sparse (a thresholded GRM,
  ``relmat={g: (K_sparse, names)}``; u = alpha with b = theta^2 K alpha, penalty theta^2 alpha'K alpha,
  a sparse LU of I + tau W^1/2 K W^1/2 for the solves and the exact log-determinant).  The GWAS null
  model's Laplace fit with a sparse GRM runs on it; its PQL/AI-REML fit solves the same Sigma by
  preconditioned conjugate gradients (``gwas.null._SparseSigma``), which needs no log-determinant.

A system also says what it supports: ``supports_joint`` (the joint (u, beta) system of PIRLS's first
stage; without it the optimiser starts stage 2 from the GLM) and, through ``engine.gradient``'s tests,
the analytic gradient.  ``ModelSpec.random_effects_system()`` chooses the system from the terms'
covariance classes: a covariance class names its system class in ``system`` (None: the blocked one).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class SystemFactor(Protocol):
    """A factored penalised system."""

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """x with P x = rhs.

        Parameters
        ----------
        rhs : numpy.ndarray
            Right-hand side.

        Returns
        -------
        numpy.ndarray
            x.
        """

    def logdet_re(self) -> float:
        """log det P minus the log det of the prior precision (the Laplace log-determinant).

        Returns
        -------
        float
            The value.
        """


class RandomEffectsSystem(Protocol):
    """What the engine asks of the random effects (see the module's docstring)."""

    name: str
    supports_joint: bool
    terms: list
    Q: int
    Qtt: int

    def raw(self, w: np.ndarray, D: np.ndarray | None):
        """Weighted cross-products for ``factor`` (assemble).

        Parameters
        ----------
        w : numpy.ndarray
            (n,) weights.
        D : numpy.ndarray or None
            Dense columns for the joint system, or None.

        Returns
        -------
        object
            The system's assembled form.
        """

    def factor(self, raw, theta: np.ndarray) -> SystemFactor:
        """The factored penalised system at theta.

        Parameters
        ----------
        raw : object
            From ``raw``.
        theta : numpy.ndarray
            Variance parameters.

        Returns
        -------
        SystemFactor
            With ``solve`` and ``logdet_re``.
        """

    def zlam_u(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The random part of the linear predictor.

        Parameters
        ----------
        theta, u : numpy.ndarray
            Variance parameters and random effects.

        Returns
        -------
        numpy.ndarray
            (n,).
        """

    def lam_zt(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The transpose of ``zlam_u`` applied to v.

        Parameters
        ----------
        theta, v : numpy.ndarray
            Variance parameters and (n,) values.

        Returns
        -------
        numpy.ndarray
            (Q,).
        """

    def penalty(self, theta: np.ndarray, u: np.ndarray) -> float:
        """The prior's quadratic form in u.

        Parameters
        ----------
        theta, u : numpy.ndarray
            Variance parameters and random effects.

        Returns
        -------
        float
            The penalty of the penalised deviance.
        """

    def ranef_condvar(self, theta: np.ndarray, u: np.ndarray, factor) -> tuple[list, list]:
        """Conditional modes (q, k) and variances (q, k, k) per term, in the formula's order.

        Parameters
        ----------
        theta, u : numpy.ndarray
            Variance parameters and the mode.
        factor : SystemFactor
            The factor at the mode.

        Returns
        -------
        tuple
            (list of modes, list of conditional covariances).
        """

    def _orig_terms(self) -> list:
        """The terms in the formula's order (their covariance classes give theta's layout).

        Returns
        -------
        list of RandomTerm
            The terms.
        """


class OwnAlgebraSystem(RandomEffectsSystem):
    """Base of the systems with an algebra of their own (the tree, the sparse known covariance): no blocked
    layout (the analytic gradient's tests see no term 1 and no trailing block) and no joint (u, beta) solve."""

    supports_joint = False
    Qtt = 0
    Q1 = 0
    first = None
    tail_diagonal = False

    def _orig_terms(self) -> list:
        return self.terms
