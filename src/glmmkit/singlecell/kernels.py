"""Per-(gene, subject) log-likelihood sums and their derivatives in the subject's linear predictor.

With the fixed effects constant within a subject, subject s of gene g enters the likelihood only through
the scalar  zeta = x_s' beta + sigma u_s:  mu_i = exp(o_i + zeta)  for its cells.  A kernel returns, as
(G, S) arrays,

    l    = sum_i log f(y_i | zeta)            (per gene: the constants that do not depend on zeta)
    l1   = d l / d zeta,   wobs = -d^2 l / d zeta^2
    W    = the information in the Laplace log-determinant (expected: Fisher, as lme4; observed: as glmmTMB)
    W1   = d W / d zeta
    lk, l1k, Wk = derivatives in kappa = log theta at fixed zeta (NB2)

NB2 per cell, with p = mu / (theta + mu) = expit(zeta - kappa + o):
    log f = lgamma(y+theta) - lgamma(theta) - lgamma(y+1) + y(o+zeta) - y(kappa + softplus) - theta softplus
    score = y(1-p) - theta p,   observed info = (y+theta) p(1-p),   Fisher info = theta p
(the family's own formulas, ``NegativeBinomial2.logistic_score`` / ``logistic_information``).
A zero count contributes only through theta * softplus-terms, which summed over a subject's cells are the
tabulated a_s^(r) (softplus.py); the nonzero counts add their own sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from .block import GeneBlock
from .nnz_sums import nnz_sums
from .softplus import SoftplusSums


@dataclass
class Terms:
    l_pair: np.ndarray
    l_gene: np.ndarray
    l1: np.ndarray
    wobs: np.ndarray
    W: np.ndarray
    W1: np.ndarray | None = None
    lk_gene: np.ndarray | None = None
    l1k: np.ndarray | None = None
    Wk: np.ndarray | None = None


class NB2Kernel:
    """Negative binomial (var = mu + mu^2/theta), log link; dispersion parameter kappa = log theta."""

    n_psi = 1

    def __init__(self, block: GeneBlock, sums: SoftplusSums, laplace: str = "expected"):
        self.b, self.a, self.laplace = block, sums, laplace

    def restrict(self, genes) -> "NB2Kernel":
        """The kernel of some of the block's genes.

        Parameters
        ----------
        genes : numpy.ndarray
            Local gene indices.

        Returns
        -------
        NB2Kernel
            The smaller kernel.
        """
        return NB2Kernel(self.b.subset(genes), self.a, self.laplace)

    def mode_terms(self, zeta, kappa):
        """The score and observed information in zeta per (gene, subject), for the modes' Newton steps.

        Parameters
        ----------
        zeta : numpy.ndarray
            (G, S) subject linear predictors.
        kappa : numpy.ndarray
            (G,) log theta.

        Returns
        -------
        tuple
            (l1, wobs), each (G, S).
        """
        b = self.b
        x = zeta - kappa[:, None]
        th = np.exp(kappa)[:, None]
        Sys, Syq = nnz_sums(b, x, 2)
        A = self.a(x, orders=(1, 2))
        l1 = Sys - th * A[1]
        wobs = Syq + th * A[2]
        return l1, wobs

    def terms(self, zeta, kappa, grad: bool) -> Terms:
        """Every sum the Laplace value (and, with ``grad``, its gradient) needs.

        Parameters
        ----------
        zeta : numpy.ndarray
            (G, S) subject linear predictors.
        kappa : numpy.ndarray
            (G,) log theta.
        grad : bool
            Also the derivatives for the gradient.

        Returns
        -------
        Terms
            The sums.
        """
        b = self.b
        x = zeta - kappa[:, None]
        th_g = np.exp(kappa)
        th = th_g[:, None]
        sums = nnz_sums(b, x, 4 if grad else 3)
        Sys, Syq, Sysp = sums[:3]
        orders = (0, 1, 2, 3) if grad else (0, 1, 2)
        A = self.a(x, orders=orders)
        l1 = Sys - th * A[1]
        wobs = Syq + th * A[2]
        l_pair = b.Y * zeta + b.YO - b.Y * kappa[:, None] - Sysp - th * A[0]
        thd = th_g[b.dist_gene]
        l_gene = b.per_gene_distinct(gammaln(b.dist_y + thd) - gammaln(thd)) - b.lgamma_y1
        W = th * A[1] if self.laplace == "expected" else wobs
        t = Terms(l_pair, l_gene, l1, wobs, W)
        if grad:
            Syr = sums[3]
            if self.laplace == "expected":
                t.W1 = th * A[2]
                t.Wk = th * (A[1] - A[2])
            else:
                t.W1 = Syr + th * A[3]
                t.Wk = th * (A[2] - A[3]) - Syr
            lk_pair = -Sys - th * A[0] + th * A[1]
            t.lk_gene = th_g * b.per_gene_distinct(digamma(b.dist_y + thd) - digamma(thd)) + lk_pair.sum(axis=1)
            t.l1k = Syq - th * A[1] + th * A[2]
        return t


class PoissonKernel:
    """Poisson, log link: every sum is a sufficient statistic (no tabulation needed)."""

    n_psi = 0

    def __init__(self, block: GeneBlock, lib: np.ndarray):
        self.b, self.lib = block, lib  # lib: (S,) sum of exp(o_i) over the subject's cells

    def restrict(self, genes) -> "PoissonKernel":
        """The kernel of some of the block's genes.

        Parameters
        ----------
        genes : numpy.ndarray
            Local gene indices.

        Returns
        -------
        PoissonKernel
            The smaller kernel.
        """
        return PoissonKernel(self.b.subset(genes), self.lib)

    def mode_terms(self, zeta, kappa=None):
        """The score and information in zeta per (gene, subject).

        Parameters
        ----------
        zeta : numpy.ndarray
            (G, S) subject linear predictors.
        kappa : None
            Unused (no dispersion).

        Returns
        -------
        tuple
            (l1, wobs), each (G, S).
        """
        mu = np.exp(zeta) * self.lib
        return self.b.Y - mu, mu

    def terms(self, zeta, kappa, grad: bool) -> Terms:
        """Every sum the Laplace value (and its gradient) needs.

        Parameters
        ----------
        zeta : numpy.ndarray
            (G, S) subject linear predictors.
        kappa : None
            Unused.
        grad : bool
            Also the derivatives for the gradient.

        Returns
        -------
        Terms
            The sums.
        """
        b = self.b
        mu = np.exp(zeta) * self.lib
        t = Terms(b.Y * zeta + b.YO - mu, -b.lgamma_y1, b.Y - mu, mu, mu)
        if grad:
            t.W1 = mu
        return t
