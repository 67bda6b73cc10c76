"""A known covariance held sparse (a thresholded genomic relationship matrix) as a random-effects system.

    b = theta^2 K alpha,   cov(b) = theta^2 K,   K sparse (over the term's levels)

The engine's state for this term is alpha (u := alpha), so neither K^-1 nor a factor of K is needed:

    zlam_u = Z b = theta^2 Z K alpha,      penalty = b' (theta^2 K)^-1 b = theta^2 alpha' K alpha,
    PIRLS's step (W_b tau K + I) alpha = Z'W v  (tau = theta^2, W_b = Z'WZ, diagonal for a scalar term),
    logdet_re = log det(I + tau W_b^1/2 K W_b^1/2) = log det(Sigma) + log det(W_b),  Sigma = W_b^-1 + tau K,

which is the Laplace value of ``relmat={g: K}`` with K dense.  M = I + tau W^1/2 K W^1/2 is as sparse
as K: it is factored by a sparse LU (SuperLU, a fill-reducing ordering), which gives the exact
log-determinant that the Laplace value needs and the solves.  (Conjugate gradients solve Sigma x = r
without a factor, as the GWAS null model's PQL does, but give no log-determinant; an exact Laplace
objective needs the factor.  A thresholded GRM is block-diagonal by families, so the LU has little
fill-in.)

``glmer(..., relmat={"iid": (K_sparse, names)})`` with a scipy sparse K takes this path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph  # noqa: F401  (sp.csgraph)
import scipy.sparse.linalg as spla

from ..errors import FitError, InputError
from .covariance import KnownMatrix, factor_psd
from .resystem import OwnAlgebraSystem, SystemFactor

#: below this SD multiplier the term is off
TINY_THETA = 1e-8
#: connected blocks of K up to this size are checked to be positive semi-definite
MAX_CHECKED_BLOCK = 2000


class SparseKnownCovariance(KnownMatrix):
    """cov(b) = theta^2 K with K sparse over the term's levels (carried by ``SparseKnownSystem``).

    Parameters
    ----------
    K : scipy.sparse matrix
        Symmetric positive semi-definite, in the term's level order.
    group : str
        The grouping factor's name (for messages).
    """

    def __init__(self, K, group: str = "g"):
        self.k = 1
        K = sp.csr_matrix(K, dtype=float)
        if K.shape[0] != K.shape[1]:
            raise InputError(f"relationship matrix for {group!r} must be square; it has shape {K.shape}")
        if not np.all(np.isfinite(K.data)):
            raise InputError(f"relationship matrix for {group!r} has non-finite entries")
        asym = abs(K - K.T)
        if asym.nnz and asym.max() > 1e-8 * max(1.0, abs(K).max()):
            raise InputError(f"relationship matrix for {group!r} is not symmetric")
        self.K = K
        self.group = group
        self._factor = None
        n_comp, lab = sp.csgraph.connected_components(K, directed=False)
        order = np.argsort(lab, kind="stable")
        bounds = np.flatnonzero(np.r_[True, np.diff(lab[order]) != 0, True])
        self._blocks = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        # a covariance must be positive semi-definite; thresholding a GRM can break that. Checked block by
        # block (the connected components: families), up to blocks of MAX_CHECKED_BLOCK levels
        scale = max(1.0, float(abs(K).max())) if K.nnz else 1.0
        for idx in self._blocks:
            if 1 < len(idx) <= MAX_CHECKED_BLOCK:
                low = float(np.linalg.eigvalsh(K[idx][:, idx].toarray()).min())
                if low < -1e-6 * scale:
                    raise InputError(f"relationship matrix for {group!r} is not positive semi-definite (smallest "
                                     f"eigenvalue {low:.3g} in a block of {len(idx)} levels); a thresholded GRM can "
                                     "lose that: threshold within families, or fit the GWAS null model by PQL")

    @property
    def factor(self) -> np.ndarray:
        """A dense factor L with L L' = K (formed once, on first use: for dense uses on small K only)."""
        if self._factor is None:
            self._factor = factor_psd(self.K.toarray(), self.group)
        return self._factor

    def diag_covariance(self) -> np.ndarray:
        """diag(K).

        Returns
        -------
        numpy.ndarray
            (q,).
        """
        return self.K.diagonal()

    def draw(self, theta, rng, k: int) -> np.ndarray:
        """k draws of b ~ N(0, theta^2 K), block by block of K's connected components.

        Parameters
        ----------
        theta : numpy.ndarray
            (1,) the SD multiplier.
        rng : numpy.random.Generator
            The random generator.
        k : int
            Draws.

        Returns
        -------
        numpy.ndarray
            (q, k).
        """
        out = np.zeros((self.K.shape[0], k))
        z = rng.standard_normal((self.K.shape[0], k))
        for idx in self._blocks:  # one dense factor per family block (small)
            L = factor_psd(self.K[idx][:, idx].toarray(), self.group)
            out[idx] = L @ z[idx]
        return float(theta[0]) * out

    def __repr__(self):
        return f"SparseKnownCovariance(q={self.K.shape[0]}, nnz={self.K.nnz})"


@dataclass
class SparseKnownRaw:
    """W summed at each level."""

    w_level: np.ndarray
    G1: None = None  # no level Gram (the analytic gradient does not apply)


@dataclass
class SparseKnownFactor(SystemFactor):
    """M = I + tau W^1/2 K W^1/2 factored by a sparse LU, for the step (W tau K + I) x = r."""

    lu: object  # scipy SuperLU, or None when the term is off
    sw: np.ndarray  # W^1/2 per level
    logdet: float

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """x with (W tau K + I) x = rhs: x = W^1/2 M^-1 W^-1/2 rhs (rhs itself when the term is off).

        Parameters
        ----------
        rhs : numpy.ndarray
            (q,).

        Returns
        -------
        numpy.ndarray
            (q,).
        """
        if self.lu is None:
            return np.array(rhs, dtype=float)
        # I + tau W K = W^1/2 M W^-1/2, so x = W^1/2 M^-1 W^-1/2 rhs (levels without weight: x = rhs there)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(self.sw > 0, rhs / self.sw, 0.0)
        x = self.sw * self.lu.solve(scaled)
        return np.where(self.sw > 0, x, rhs)

    def logdet_re(self) -> float:
        """log det M: the Laplace log-determinant.

        Returns
        -------
        float
            The value.
        """
        return self.logdet


class SparseKnownSystem(OwnAlgebraSystem):
    """One scalar term with a sparse known covariance, as the engine's random-effects system.

    Parameters
    ----------
    terms : list of RandomTerm
        Exactly one scalar term whose covariance is a ``SparseKnownCovariance``.
    """

    name = "sparse known covariance (sparse LU)"
    def __init__(self, terms):
        if len(terms) != 1 or not isinstance(terms[0].cov, SparseKnownCovariance) or terms[0].k != 1:
            raise InputError("a sparse relationship matrix takes one scalar term (1 | group) and no other "
                             "random-effects terms; give the matrix dense for other models")
        self.terms = list(terms)
        self.order = [0]
        t = terms[0]
        self.codes = t.codes
        self.K = t.cov.K
        self.Q = t.q

    def split_theta(self, theta) -> list[np.ndarray]:
        """theta for the one term.

        Parameters
        ----------
        theta : numpy.ndarray
            The SD multiplier.

        Returns
        -------
        list of numpy.ndarray
            ``[theta]``.
        """
        return [np.asarray(theta, dtype=float)]

    @staticmethod
    def _tau(theta) -> float:
        return float(theta[0]) ** 2

    def zlam_u(self, theta, u) -> np.ndarray:
        """Z b with b = theta^2 K alpha.

        Parameters
        ----------
        theta, u : numpy.ndarray
            The SD multiplier and alpha.

        Returns
        -------
        numpy.ndarray
            (n,).
        """
        return (self._tau(theta) * (self.K @ u))[self.codes]

    def lam_zt(self, theta, v) -> np.ndarray:
        """Z'v (the step's right-hand side in alpha's coordinates).

        Parameters
        ----------
        theta, v : numpy.ndarray
            The SD multiplier and (n,) values.

        Returns
        -------
        numpy.ndarray
            (q,).
        """
        return np.bincount(self.codes, weights=v, minlength=self.Q)

    def penalty(self, theta, u) -> float:
        """theta^2 alpha' K alpha = b' (theta^2 K)^-1 b.

        Parameters
        ----------
        theta, u : numpy.ndarray
            The SD multiplier and alpha.

        Returns
        -------
        float
            The penalty.
        """
        return self._tau(theta) * float(u @ (self.K @ u))

    def raw(self, w, D) -> SparseKnownRaw:
        """W summed at each level (D must be None: no joint system).

        Parameters
        ----------
        w : numpy.ndarray
            (n,) weights.
        D : None
            No joint (u, beta) solve.

        Returns
        -------
        SparseKnownRaw
            The level weights.
        """
        if D is not None:
            raise FitError("the sparse known-covariance system has no joint (u, beta) solve")
        return SparseKnownRaw(np.bincount(self.codes, weights=w, minlength=self.Q))

    def factor(self, raw: SparseKnownRaw, theta) -> SparseKnownFactor:
        """The sparse LU of M = I + tau W^1/2 K W^1/2 and its log-determinant.

        Parameters
        ----------
        raw : SparseKnownRaw
            From ``raw``.
        theta : numpy.ndarray
            The SD multiplier.

        Returns
        -------
        SparseKnownFactor
            The factor (``LinAlgError`` when M is singular or not positive definite).
        """
        sw = np.sqrt(np.maximum(raw.w_level, 0.0))
        if float(theta[0]) < TINY_THETA:
            return SparseKnownFactor(None, sw, 0.0)
        S = sp.diags(sw)
        M = (sp.identity(self.Q, format="csc") + self._tau(theta) * (S @ self.K @ S)).tocsc()
        try:
            lu = spla.splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
        except RuntimeError as err:  # SuperLU reports a singular matrix this way
            raise np.linalg.LinAlgError(str(err)) from None
        d = lu.U.diagonal()
        if np.any(d <= 0):
            raise np.linalg.LinAlgError("the sparse Laplace system is not positive definite")
        return SparseKnownFactor(lu, sw, float(np.sum(np.log(d))))

    def ranef_condvar(self, theta, u, factor) -> tuple[list, list]:
        """The modes b = theta^2 K alpha and their conditional variances.

        var(b | y) = tau K - tau K W^1/2 M^-1 W^1/2 tau K; its diagonal by solves with the factor, in
        chunks of columns (O(q) solves: asked for by ``ranef``, not by the fit).

        Parameters
        ----------
        theta, u : numpy.ndarray
            The SD multiplier and alpha at the mode.
        factor : SparseKnownFactor
            The factor at the mode.

        Returns
        -------
        tuple
            ([(q, 1) modes], [(q, 1, 1) conditional variances]).
        """
        tau = self._tau(theta)
        b = tau * (self.K @ u)
        if factor.lu is None:
            return [b[:, None]], [np.zeros((self.Q, 1, 1))]
        var = np.empty(self.Q)
        diagK = self.K.diagonal()
        for start in range(0, self.Q, 512):
            cols = np.arange(start, min(start + 512, self.Q))
            A = (self.K[:, cols]).toarray() * tau  # tau K e_i
            B = factor.lu.solve(factor.sw[:, None] * A)  # M^-1 W^1/2 tau K e_i
            var[cols] = tau * diagK[cols] - np.sum(A * factor.sw[:, None] * B, axis=0)
        return [b[:, None]], [np.maximum(var, 0.0)[:, None, None]]


#: a sparse known covariance is carried by its own system (ModelSpec.random_effects_system asks the class)
SparseKnownCovariance.system = SparseKnownSystem
