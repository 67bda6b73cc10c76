"""The Laplace approximation of a scalar random-intercept GLMM, for a block of genes at once.

Per gene, with v = sigma^2 and one random intercept u_s ~ N(0, 1) per subject (zeta_s = m_s + sigma u_s,
m_s = x_s' beta), the integral splits into one 1-D problem per subject:

    -2 log L = sum_s [ -2 l_s(zeta_s^) + u_s^2 + log(1 + v W_s(zeta_s^)) ]

where u_s^ is the conditional mode  (u = sigma l1_s(m_s + sigma u), a 1-D Newton solve for all
(gene, subject) pairs together) -- the same objective the general engine evaluates for one gene with
its blocked Cholesky (there W_s is the diagonal of Z'WZ).  The gradient is analytic (the mode's own
derivatives by the implicit function theorem; H = 1 + v wobs, HW = 1 + v W):

    dD/dbeta  = sum_s x_s [ -2 l1 + v W1 / (H HW) ]
    dD/dv     = sum_s [ -l1^2 + (W + v W1 l1 / H) / HW ]          (finite at v = 0: the score for v)
    dD/dkappa = -2 sum_s lk + sum_s v (v W1 l1k / H + Wk) / HW
"""

from __future__ import annotations

import numpy as np


def _rows_times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b without BLAS (einsum's own loop): the same bits in every process, whatever its BLAS threads,
    so that a Dask worker's fit equals the local one exactly."""
    return np.einsum("gi,ij->gj", a, b)


#: the modes' tolerance on |u - sigma l1| / (1 + |u|)
MODE_TOL = 1e-10

#: bounds of kappa = log theta; theta = 1e6 is the Poisson limit for any count a cell holds
KAPPA_MIN, KAPPA_MAX = np.log(1e-4), np.log(1e6)


def prior_penalty(v: np.ndarray, d0: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """d0 (log v + s0^2 / v): the variance prior's share of -2 log L (``prior.py``); 0 where d0 = 0,
    +inf where v <= 0.

    Parameters
    ----------
    v : numpy.ndarray
        Subject variances.
    d0, s2 : numpy.ndarray
        The prior's degrees of freedom and scale per gene.

    Returns
    -------
    numpy.ndarray
        The penalty per gene.
    """
    on = d0 > 0
    vp = np.where(on, v, 1.0)
    with np.errstate(divide="ignore"):
        pen = d0 * (np.log(np.maximum(vp, 1e-300)) + s2 / np.maximum(vp, 1e-300))
    return np.where(on, np.where(vp > 0, pen, np.inf), 0.0)


class LaplaceProblem:
    """Parameters per gene: x = [beta (p), v (if random), kappa (if the family has one)]."""

    def __init__(self, kernel, Xs: np.ndarray, random: bool = True, prior=None):
        self.k, self.Xs, self.random = kernel, np.asarray(Xs, dtype=float), random
        #: (d0, s0^2) per gene: the penalty d0 (log v + s0^2 / v) on v (see ``prior.py``), or None
        self.prior = None if prior is None or not random else tuple(np.asarray(a, dtype=float) for a in prior)
        G, S = kernel.b.n_genes, kernel.b.n_subjects
        self.p = self.Xs.shape[1]
        self.d = self.p + int(random) + kernel.n_psi
        self.iv = self.p if random else None
        self.ik = self.p + int(random) if kernel.n_psi else None
        self.u = np.zeros((G, S))
        #: the modes' linearisation at the last point evaluated with its gradient: (x, sigma, u, wobs, l1k)
        self._base = None

    def restrict(self, genes) -> "LaplaceProblem":
        """The problem for some of its genes (warm-start state kept).

        Parameters
        ----------
        genes : numpy.ndarray
            Local gene indices.

        Returns
        -------
        LaplaceProblem
            The smaller problem.
        """
        prior = None if self.prior is None else tuple(a[genes] for a in self.prior)
        new = LaplaceProblem(self.k.restrict(genes), self.Xs, self.random, prior)
        new.u = self.u[genes]
        if self._base is not None:
            new._base = tuple(None if a is None else a[genes] for a in self._base)
        return new

    def take_state(self, genes, other: "LaplaceProblem") -> None:
        """The modes and their linearisation of ``genes`` from ``other``, a restriction of this problem to them.

        Parameters
        ----------
        genes : numpy.ndarray
            Local gene indices here (``other``'s genes, in its order).
        other : LaplaceProblem
            ``self.restrict(genes)``, evaluated since.
        """
        self.u[genes] = other.u
        if other._base is not None and self._base is not None:
            for mine, theirs in zip(self._base, other._base):
                if mine is not None:
                    mine[genes] = theirs

    def predict_modes(self, x, m, sig, kappa) -> np.ndarray:
        """The modes at x to first order from the last linearisation (the implicit-function theorem on
        F(u) = u - sigma l1(m + sigma u) = 0):

            du = -(sigma wobs dm + (sigma u wobs - u / sigma) dsigma - sigma l1k dkappa) / (1 + v wobs)

        (at the mode l1 = u / sigma); the stored modes where there is no linearisation or sigma was 0.

        Parameters
        ----------
        x : numpy.ndarray
            (G, d) the new parameters.
        m, sig : numpy.ndarray
            (G, S) fixed part and (G, 1) sigma at x.
        kappa : numpy.ndarray or None
            (G,) log theta at x.

        Returns
        -------
        numpy.ndarray
            (G, S) the predicted modes.
        """
        b = self._base
        if b is None or b[0].shape != x.shape:
            return self.u
        xb, sb, ub, wb, l1kb = b
        dm = m - _rows_times(xb[:, : self.p], self.Xs.T)
        on = sb > 0
        sb_ = np.where(on, sb, 1.0)
        num = sb_ * wb * dm + (sb_ * ub * wb - ub / sb_) * (sig - sb_)
        if l1kb is not None and kappa is not None:
            num = num - sb_ * l1kb * (kappa - xb[:, self.ik])[:, None]
        du = -num / (1 + sb_ * sb_ * wb)
        return np.where(on & (sig > 0), ub + du, self.u)

    def unpack(self, x):
        """Split the parameters.

        Parameters
        ----------
        x : numpy.ndarray
            (G, d).

        Returns
        -------
        tuple
            (beta (G, p), v (G,), kappa (G,) or None).
        """
        beta = x[:, : self.p]
        v = x[:, self.iv] if self.random else np.zeros(len(x))
        kappa = x[:, self.ik] if self.ik is not None else None
        return beta, v, kappa

    def solve_modes(self, m, v, kappa, tol: float = MODE_TOL, maxit: int = 60):
        """u solving u = sigma l1(m + sigma u) for every (gene, subject): safeguarded Newton.

        Parameters
        ----------
        m : numpy.ndarray
            (G, S) fixed part of zeta.
        v : numpy.ndarray
            (G,) subject variances.
        kappa : numpy.ndarray or None
            (G,) log theta.
        tol : float
            Step size that ends the iterations.
        maxit : int
            Most iterations.

        Returns
        -------
        numpy.ndarray
            (G, S) modes u.
        """
        sig = np.sqrt(v)[:, None]
        if not self.random or not np.any(sig > 0):
            self.u[:] = 0.0
            return self.u
        u = np.where(sig > 0, self.u, 0.0)
        lo = np.full(u.shape, -np.inf)
        hi = np.full(u.shape, np.inf)
        settled = np.zeros(u.shape, dtype=bool)
        for _ in range(maxit):
            l1, wobs = self.k.mode_terms(m + sig * u, kappa)
            F = u - sig * l1
            active = (np.abs(F) > tol * (1 + np.abs(u))) & ~settled
            if not active.any():
                break
            hi = np.where(F > 0, np.minimum(hi, u), hi)
            lo = np.where(F < 0, np.maximum(lo, u), lo)
            step = -F / (1 + v[:, None] * wobs)
            dz = np.clip(sig * step, -5.0, 5.0)  # at most 5 on the linear-predictor scale
            new = u + np.divide(dz, sig, out=np.zeros_like(dz), where=sig > 0)
            bounded = np.isfinite(lo) & np.isfinite(hi)
            bad = ((new <= lo) | (new >= hi)) & bounded
            new = np.where(bad, 0.5 * (np.where(bounded, lo, 0.0) + np.where(bounded, hi, 0.0)), new)
            # a full Newton step this small leaves an error of its square: done without another pass
            settled |= active & ~bad & (np.abs(dz) < 5.0) & (np.abs(new - u) <= np.sqrt(tol) * 1e-1 * (1 + np.abs(u)))
            u = np.where(active, new, u)
            if np.all(~active | settled):  # each pair's F depends on its own u only: the rest stay solved
                break
        self.u = u
        return u

    def evaluate(self, x, grad: bool = True, fd: bool = False):
        """-2 log L per gene (G,) and, with grad, its gradient (G, d).

        The modes start from their first-order prediction (``predict_modes``); with ``fd`` (a point a
        finite-difference step from the last one evaluated with its gradient) the prediction is only
        checked -- the score at the predicted modes is computed with the terms anyway -- and solved for
        only if it misses the tolerance.

        Parameters
        ----------
        x : numpy.ndarray
            (G, d) parameters per gene.
        grad : bool
            Also the gradient.
        fd : bool
            x is a finite-difference neighbour of the last point evaluated with its gradient.

        Returns
        -------
        tuple
            (values (G,), gradient (G, d) or None).
        """
        beta, v, kappa = self.unpack(x)
        m = _rows_times(beta, self.Xs.T)
        sig = np.sqrt(v)[:, None]
        t = None
        if self.random and self._base is not None:
            self.u = self.predict_modes(x, m, sig, kappa)
            if fd:  # a finite-difference neighbour: the predicted modes are within h^2; checked, not solved
                u = np.where(sig > 0, self.u, 0.0)
                t = self.k.terms(m + sig * u, kappa, grad)
                if np.all(np.abs(u - sig * t.l1) <= MODE_TOL * (1 + np.abs(u))):
                    self.u = u
                else:
                    t = None
        if t is None:
            u = self.solve_modes(m, v, kappa)
            t = self.k.terms(m + sig * u, kappa, grad)
        if grad and not fd and self.random:
            self._base = (x.copy(), sig, u.copy(), t.wobs, t.l1k)
        vv = v[:, None]
        HW = 1 + vv * t.W
        D = -2 * (t.l_pair.sum(axis=1) + t.l_gene) + np.sum(u * u + np.log(HW), axis=1)
        if self.prior is not None:
            D = D + prior_penalty(v, *self.prior)
        if not grad:
            return D, None
        H = 1 + vv * t.wobs
        g = np.empty_like(x)
        g[:, : self.p] = _rows_times(-2 * t.l1 + vv * t.W1 / (H * HW), self.Xs)
        if self.random:
            g[:, self.iv] = np.sum(-t.l1 ** 2 + (t.W + vv * t.W1 * t.l1 / H) / HW, axis=1)
            if self.prior is not None:
                d0, s2 = self.prior
                vp = np.maximum(v, 1e-300)
                g[:, self.iv] += np.where(d0 > 0, d0 * (1.0 / vp - s2 / vp ** 2), 0.0)
        if self.ik is not None:
            g[:, self.ik] = -2 * t.lk_gene + np.sum(vv * (vv * t.W1 * t.l1k / H + t.Wk) / HW, axis=1)
        return D, g

    def project(self, x):
        """Parameters moved into their bounds (v >= 0, kappa within its limits).

        Parameters
        ----------
        x : numpy.ndarray
            (G, d).

        Returns
        -------
        numpy.ndarray
            The projected parameters.
        """
        if self.random:
            floor = 0.0 if self.prior is None else np.where(self.prior[0] > 0, 1e-6 * self.prior[1], 0.0)
            x[:, self.iv] = np.maximum(x[:, self.iv], floor)
        if self.ik is not None:
            x[:, self.ik] = np.clip(x[:, self.ik], KAPPA_MIN, KAPPA_MAX)
        return x

    def steps(self, x):
        """Finite-difference steps per coordinate.

        Parameters
        ----------
        x : numpy.ndarray
            (G, d) parameters.

        Returns
        -------
        numpy.ndarray
            (G, d).
        """
        h = np.full(x.shape, 1e-5)
        h[:, : self.p] = 1e-5 * np.maximum(1.0, np.abs(x[:, : self.p]))
        if self.random:
            h[:, self.iv] = 1e-5 * np.maximum(x[:, self.iv], 1e-2)
        if self.ik is not None:  # kappa's curvature is tiny near the Poisson limit: a longer step
            h[:, self.ik] = 1e-3
        return h

    def hessian(self, x, g):
        """Forward differences of the analytic gradient (d more evaluations, modes warm-started).

        Parameters
        ----------
        x, g : numpy.ndarray
            Parameters and gradient, (G, d).

        Returns
        -------
        numpy.ndarray
            (G, d, d), symmetrised.
        """
        u0 = self.u.copy()
        h = self.steps(x)
        H = np.empty((len(x), self.d, self.d))
        for j in range(self.d):  # over parameters (a handful), not genes
            xj = x.copy()
            xj[:, j] += h[:, j]
            _, gj = self.evaluate(xj, grad=True, fd=True)
            H[:, :, j] = (gj - g) / h[:, j : j + 1]
            self.u = u0.copy()
        return 0.5 * (H + H.transpose(0, 2, 1))

    def free(self, x, g):
        """Parameters moved by the next step: v (or kappa) at a bound with the gradient pushing out stays.

        Parameters
        ----------
        x, g : numpy.ndarray
            Parameters and gradient, (G, d).

        Returns
        -------
        numpy.ndarray
            (G, d) mask of the coordinates that move.
        """
        f = np.ones(x.shape, dtype=bool)
        if self.random:
            f[:, self.iv] = ~((x[:, self.iv] <= 0) & (g[:, self.iv] >= 0))
        if self.ik is not None:
            k, gk = x[:, self.ik], g[:, self.ik]
            f[:, self.ik] = ~(((k >= KAPPA_MAX) & (gk <= 0)) | ((k <= KAPPA_MIN) & (gk >= 0)))
        return f
