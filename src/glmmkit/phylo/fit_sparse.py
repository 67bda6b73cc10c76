"""Phylogenetic GLMMs on large trees: the Laplace approximation in node space (see sparse.py).

    eta = X beta + offset + a[tip of each observation],   a = Brownian motion on the tree,
    cov(a at the tips) = theta^2 K,   K = vcv(tree) (corr=False) or vcv(tree, corr=True) (ultrametric)

    -2 log L ~= -2 sum log p(y | mu(a-hat)) + tau a-hat'Q a-hat + log det(P) - log det(tau Q),
    P = Z'WZ + tau Q,   tau = c / theta^2 (c = 1, or the root-to-tip height for corr=True)

This is the same model and the same Laplace value as ``glmer(..., relmat={group: K})`` (the dense
path), at O(number of nodes) per evaluation instead of O(tips^3). Tips without data are nodes without
observations: they are marginalised out for free.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..engine.glm import fit_glm
from ..engine.kernels import Kernels
from ..engine.optimize import _bad, _scaled_gradient, derivatives, minimize, newton_polish
from ..formula.spec import ModelSpec
from ..results import InformationCriteria
from .sparse import TreeAlgebra
from .tree import Tree, as_tree
from ..errors import InputError


@dataclass
class TreeFit(InformationCriteria):
    """Result of ``fit_tree_glmm``: estimates, standard errors, variance, logLik, tip effects."""

    formula: str
    family: object
    fixef: pd.Series
    coef_table: pd.DataFrame
    theta: float  # SD of the tip effect (variance theta^2 times K)
    loglik: float
    n_params: int
    nobs: int
    n_tips: int
    ranef: pd.DataFrame  # tips: conditional mode and conditional SD
    family_params: pd.DataFrame
    converged: bool = True
    messages: list = field(default_factory=list)
    fevals: int = 0
    time_s: float = 0.0

    @property
    def variance(self) -> float:
        return self.theta ** 2


class _TreeObjective:
    def __init__(self, spec: ModelSpec, alg: TreeAlgebra, tipnode: np.ndarray, c: float, laplace: str):
        self.spec, self.alg, self.tipnode, self.c, self.laplace = spec, alg, tipnode, c, laplace
        self.a = np.zeros(alg.m)
        self.fevals = 0
        fam = spec.family
        self._const = {}
        self.n_psi = len(fam.param_names())

    def family_at(self, psi):
        fam = self.spec.family
        return fam.with_params(np.array(psi, dtype=float)) if self.n_psi else fam

    def _ll_const(self, fam):
        key = tuple(fam.params) if self.n_psi else None
        if key not in self._const:
            self._const[key] = fam.loglik_const_sum(self.spec.y, self.spec.wt)
        return self._const[key]

    def evaluate(self, theta: float, beta, psi=None, tol=1e-11, u_tol=1e-9, maxit=100):
        """-2 log L by Laplace, and the mode a-hat (PIRLS in node space, warm-started)."""
        self.fevals += 1
        s, alg, node = self.spec, self.alg, self.tipnode
        fam = self.family_at(psi)
        kern = Kernels(fam)
        fixed = s.offset + s.X @ beta
        if theta < 1e-8:  # no phylogenetic variance: the GLM
            ks, _ = kern.kernel(fixed, s.y, s.wt)
            return -2 * (ks + self._ll_const(fam)), np.zeros(alg.m)
        tau = self.c / theta ** 2
        a = self.a.copy()

        def state(a_):
            eta_ = fixed + a_[node]
            ks_, mu_ = kern.kernel(eta_, s.y, s.wt)
            return eta_, mu_, ks_, -2 * ks_ + tau * alg.quad(a_)

        eta, mu, ks, pd_ = state(a)
        converged = False
        for _ in range(maxit):
            w, wv = kern.weights(eta, mu, s.y, s.wt, a[node])
            F = alg.factor(np.bincount(node, weights=w, minlength=alg.m), tau)
            new = F.solve(np.bincount(node, weights=wv, minlength=alg.m))
            da = new - a
            step = 1.0
            for _ in range(30):
                cand = a + step * da
                e2, m2, k2, p2 = state(cand)
                if np.isfinite(p2) and p2 <= pd_ + 1e-12 * abs(pd_):
                    break
                step *= 0.5
            else:
                break
            moved = step * float(np.max(np.abs(da)))
            change = pd_ - p2
            a, eta, mu, ks, pd_ = cand, e2, m2, k2, p2
            if change < tol * (abs(pd_) + 1) and moved < u_tol:
                converged = True
                break
        if not converged or not kern.steps_with(self.laplace):
            w = kern.final_weights(self.laplace, eta, mu, s.y, s.wt)
            F = alg.factor(np.bincount(node, weights=w, minlength=alg.m), tau)
        self.a = a
        M = alg.m - 1
        value = -2 * (ks + self._ll_const(fam)) + tau * alg.quad(a) + F.logdet() - (M * np.log(tau) + alg.logdet_q)
        self._last = (F, tau)
        return float(value), a


def fit_tree_glmm(formula: str, data: pd.DataFrame, family, tree: Tree, *, group: str | None = None,
                  corr: bool = True, laplace: str | None = None) -> TreeFit:
    """Fit ``y ~ ... + (1 | group)`` with cov(group effect) = theta^2 vcv(tree[, corr]) on the sparse path.

    The formula has exactly one random-effects term, a scalar intercept whose levels are tips of
    ``tree`` (matched by name; tips without data are allowed).
    """
    t0 = time.perf_counter()
    tree = as_tree(tree)
    spec = ModelSpec.from_formula(formula, data, family)
    if len(spec.terms) != 1 or spec.terms[0].k != 1 or not np.allclose(spec.terms[0].X[:, 0], 1.0):
        raise InputError("the sparse tree path takes one random intercept (1 | group) whose levels are the tips; "
                         "for other structures use glmer(..., relmat={group: vcv(tree)})")
    term = spec.terms[0]
    if group is not None and term.group != group:
        raise InputError(f"the formula's grouping factor is {term.group!r}, not {group!r}")
    tips = {name: i for i, name in enumerate(tree.names) if tree.is_tip[i]}
    missing = [str(lv) for lv in term.levels if str(lv) not in tips]
    if missing:
        raise InputError(f"levels of {term.group!r} missing from the tree: {missing[:10]}")
    alg = TreeAlgebra(tree)
    node_of_level = np.array([tips[str(lv)] for lv in term.levels])
    tipnode = node_of_level[term.codes]
    if corr:
        if not tree.is_ultrametric():
            raise InputError("corr=True on the sparse path needs an ultrametric tree (vcv(corr=True) then is "
                             "vcv / height); use corr=False or the dense path")
        c = float(tree.depth[tree.is_tip].max())
    else:
        c = 1.0
    fam = spec.family
    laplace = laplace or fam.default_laplace
    obj = _TreeObjective(spec, alg, tipnode, c, laplace)
    # start: GLM
    beta0, mu0, _, _ = fit_glm(spec.y, spec.X, spec.wt, spec.offset, fam.start_family())
    psi0 = fam.params_start(spec.y, mu0, spec.wt)
    eta0 = spec.offset + spec.X @ beta0
    w0 = fam.start_family().working_weights(eta0, mu0, spec.wt)
    try:
        se0 = np.sqrt(np.diag(np.linalg.inv(spec.X.T @ (w0[:, None] * spec.X))))
    except np.linalg.LinAlgError:
        se0 = np.ones(spec.p)
    p, m = spec.p, len(psi0)

    def unpack(x):
        return float(x[0]), beta0 + se0 * x[1 : 1 + p], (x[1 + p :] if m else None)

    f = lambda x: obj.evaluate(*unpack(x))[0]  # noqa: E731
    x0 = np.concatenate([[1.0], np.zeros(p), psi0])
    lower = np.concatenate([[0.0], np.full(p + m, -np.inf)])
    step = np.concatenate([[0.25], np.full(p, 0.5), np.full(m, 0.2)])
    log = []
    x, fv, nev, rc = minimize(f, x0, lower, step, ftol_abs=1e-7, xtol_rel=1e-6, log=log)
    messages = []
    h = np.concatenate([[1e-3 * max(abs(x[0]), 0.1)], np.full(p, 1e-2), np.full(m, 1e-3)])
    state = {"a": obj.a.copy()}

    def check(x_):
        obj.a = state["a"].copy()
        g_, H_, free_ = derivatives(f, x_, h, lower)
        return g_, H_, free_, _scaled_gradient(g_, H_, free_)

    derivs = check(x)
    if _bad(derivs[3]):
        x, fv, derivs = newton_polish(f, x, fv, derivs, lower, check, steps=3,
                                      on_accept=lambda: state.update(a=obj.a.copy()))
    g, H, free, sg = derivs
    a_best = state["a"]
    converged = not _bad(sg)
    if not converged:
        messages.append("Model failed to converge: scaled gradient above 0.002 after Newton steps")
    obj.a = a_best
    theta, beta, psi = unpack(x)
    fval, a = obj.evaluate(theta, beta, psi)
    if theta < 1e-4:
        messages.append("boundary (singular) fit: the phylogenetic variance is estimated as (near) zero")
    # standard errors from the Hessian (boundary coordinates held fixed)
    cov = np.full((len(x), len(x)), np.nan)
    try:
        Hf = H[np.ix_(free, free)]
        cov[np.ix_(free, free)] = 2 * np.linalg.inv(Hf)
    except np.linalg.LinAlgError:
        messages.append("Hessian not positive definite: no standard errors")
    se = np.sqrt(np.diag(cov)[1 : 1 + p]) * se0
    z = beta / se
    coef = pd.DataFrame({"estimate": beta, "std_error": se, "z": z, "p": 2 * stats.norm.sf(np.abs(z))},
                        index=spec.x_names)
    F, tau = obj._last if theta >= 1e-8 else (None, None)
    tip_idx = np.flatnonzero(tree.is_tip)
    condsd = np.sqrt(F.inverse_diagonal()[tip_idx]) if F is not None else np.zeros(tip_idx.size)
    ranef = pd.DataFrame({"mode": a[tip_idx], "condsd": condsd}, index=pd.Index(tree.tip_labels, name=term.group))
    fam_fit = obj.family_at(psi)
    rows = fam_fit.param_table(psi if m else np.zeros(0), cov[1 + p :, 1 + p :] if m else None)
    fparams = pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows],
                           columns=["estimate", "std_error", "ci_low", "ci_high"])
    return TreeFit(formula=formula, family=fam_fit, fixef=coef["estimate"], coef_table=coef, theta=theta,
                   loglik=-fval / 2, n_params=1 + p + m, nobs=spec.n, n_tips=tree.n_tips, ranef=ranef,
                   family_params=fparams, converged=converged, messages=messages, fevals=obj.fevals,
                   time_s=time.perf_counter() - t0)
