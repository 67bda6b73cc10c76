"""The hypothesis matrices of anova tables: one matrix L_T per fixed-effects term T, tested as L_T beta = 0.

Linear mixed models follow lmerTest:

- type I (sequential): the rows of the Doolittle factor U of X'X (X'X = L U, U scaled to a unit diagonal)
  for T's columns: T adjusted for the terms before it;
- type II: for a term no other term contains, its own columns (a marginal test); otherwise type I with X's
  columns reordered as [unrelated, T, terms containing T]: T adjusted for everything but its containers;
- type III: SAS's hypotheses, whatever the coding.  With X coded by treatment contrasts and rdX the
  over-parameterised design (every level of every factor of every term), M = (X^+ rdX)' expresses rdX's
  parameters in X's; from the highest-order term down, the columns of each term are replaced by their
  residuals on the columns of the terms containing it, and L_T is M's rows for X's own parameters at T's
  columns, mapped to the fit's coding.

A term T1 is contained in T2 when T2 has all of T1's variables and more, and the same numeric ones (lmerTest's
rule, which keeps x:f from containing f).

GLMMs follow car::Anova's Wald chi-square tables: type II is T's columns made orthogonal, in the inner
product of vcov(beta), to the terms containing T (car's ``relatives``: all of T's variables, numeric or
not); type III is T's columns in the fit's own coding, which means what is intended only with sum-to-zero
(or other orthogonal) contrasts, so a warning names the factors with treatment coding that sit in an
interaction.  Type I is the sequential Wald version with vcov(beta)^-1 in place of X'X.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..warnings import GlmmkitWarning


@dataclass
class FixedTerm:
    """One term of the fixed-effects formula and its columns in the fit's X."""

    name: str
    columns: np.ndarray  # indices into the fit's X
    variables: frozenset  # the factor expressions
    numerics: frozenset  # the non-categorical ones
    expr: list  # the factor expressions in order

    @property
    def order(self) -> int:
        """The number of variables in the term (1 for a main effect, 2 for a two-way interaction, ...)."""
        return len(self.variables)


def fixed_terms(spec) -> tuple[list[FixedTerm], bool]:
    """The fixed-effects terms of a fit, with their columns of X (after aliased columns were dropped).

    Parameters
    ----------
    spec : ModelSpec
        The fit's specification.

    Returns
    -------
    tuple
        (terms other than the intercept, in formula order; the intercept's column of X, or None).
    """
    xs = spec.x_spec
    categorical = {k.expr for k in xs.factor_contrasts}
    kept = np.arange(spec.p) if spec._kept_cols is None else np.asarray(spec._kept_cols)
    position = {int(c): j for j, c in enumerate(kept)}
    out, start, intercept = [], 0, None
    for st in xs.structure:
        width = len(st.columns)
        cols = np.array([position[c] for c in range(start, start + width) if c in position], dtype=int)
        start += width
        exprs = [f.expr for f in st.term.factors if f.expr != "1"]
        if not exprs:
            if len(cols):
                intercept = int(cols[0])
            continue
        out.append(FixedTerm(str(st.term), cols, frozenset(exprs), frozenset(e for e in exprs if e not in categorical),
                             exprs))
    return out, intercept


def _contains(t1: FixedTerm, t2: FixedTerm, numeric_rule: bool = True) -> bool:
    """t2 contains t1: all of t1's variables and more (and, by lmerTest's rule, the same numeric ones)."""
    return (t1.variables < t2.variables) and (not numeric_rule or t1.numerics == t2.numerics)


def _unit_upper(A: np.ndarray) -> np.ndarray:
    """U of A = L U (Doolittle, no pivoting) scaled to a unit diagonal: R / diag(R) for A = R'R, with
    lmerTest's zeroing of entries below 1e-6."""
    R = np.linalg.cholesky(A).T
    U = R / np.diag(R)[:, None]
    U[np.abs(U) < 1e-6] = 0.0
    return U


def _sequential(A: np.ndarray, terms: list[FixedTerm]) -> dict[str, np.ndarray]:
    U = _unit_upper(A)
    return {t.name: U[t.columns] for t in terms}


def _type2_lmm(X: np.ndarray, terms: list[FixedTerm]) -> dict[str, np.ndarray]:
    p = X.shape[1]
    out = {}
    for t in terms:
        containers = [c for c in terms if _contains(t, c)]
        if not containers:
            out[t.name] = np.eye(p)[t.columns]
            continue
        last = np.concatenate([t.columns] + [c.columns for c in containers])
        order = np.concatenate([np.setdiff1d(np.arange(p), last, assume_unique=True), last])
        Xn = X[:, order]
        U = _unit_upper(Xn.T @ Xn)
        rows = U[len(order) - len(last) : len(order) - len(last) + len(t.columns)]
        L = np.zeros((len(t.columns), p))
        L[:, order] = rows
        out[t.name] = L
    return out


def _zap(M: np.ndarray) -> np.ndarray:
    M = M.copy()
    M[np.abs(M) < 1e-10 * max(np.max(np.abs(M), initial=0.0), 1.0)] = 0.0
    return M


def _treatment_design(spec, terms: list[FixedTerm], intercept) -> np.ndarray:
    """The fit's fixed design recoded with treatment contrasts (the basis of lmerTest's type III)."""
    import formulaic
    import scipy.linalg as sla

    if all(type(v.contrasts).__name__ == "TreatmentContrasts" for v in spec.x_spec.factor_contrasts.values()):
        return spec.X

    def plain(expr: str) -> str:
        m = re.match(r"^C\(\s*([^,]+?)\s*,.*\)$", expr)
        return f"C({m.group(1)})" if m else expr

    rhs = " + ".join([":".join(plain(e) for e in t.expr) for t in terms]) or "1"
    rhs = ("1 + " if intercept is not None else "0 + ") + rhs
    X = np.asarray(formulaic.model_matrix(rhs, spec.data, na_action="ignore"), dtype=float)
    # keep a full-rank set of columns, as lmerTest's ensure_full_rank
    _, R, piv = sla.qr(X, mode="economic", pivoting=True)
    rank = int(np.sum(np.abs(np.diag(R)) > 1e-7 * abs(R[0, 0])))
    return X[:, np.sort(piv[:rank])]


def _type3_lmm(spec, terms: list[FixedTerm], intercept) -> dict[str, np.ndarray]:
    import formulaic

    Xt = _treatment_design(spec, terms, intercept)
    blocks = [np.ones((spec.n, 1))] if intercept is not None else []
    owner = [None] if intercept is not None else []
    for t in terms:
        B = _full_dummies(spec, t)
        if B is None:  # a factor that is an expression: formulaic's full-dummy coding of the term
            B = np.asarray(formulaic.model_matrix("0 + " + ":".join(t.expr), spec.data, na_action="ignore"),
                           dtype=float)
        blocks.append(B)
        owner += [t.name] * B.shape[1]
    rdX = np.column_stack(blocks)
    pinv = np.linalg.pinv(Xt)
    M = _zap((pinv @ rdX).T)  # (m, p): rdX's parameters in Xt's
    # each column of Xt is one column of rdX (treatment coding: products of level indicators and numerics)
    sel = []
    for j in range(Xt.shape[1]):  # p columns
        hit = np.flatnonzero(np.all(rdX == Xt[:, [j]], axis=0))
        if not len(hit):
            hit = np.flatnonzero(np.all(np.isclose(rdX, Xt[:, [j]], rtol=1e-10, atol=1e-12), axis=0))
        if not len(hit):
            raise InputError("type III hypotheses: a column of the treatment-coded design is not a column of the "
                             "over-parameterised one; use type=2 or write the contrasts with fit.contest")
        sel.append(int(hit[0]))
    # terms by columns of Xt: recompute the term structure of the treatment-coded design
    xt_terms = _columns_by_term(Xt, rdX, sel, owner, terms)
    by_name = {t.name: t for t in xt_terms}
    for t in sorted(xt_terms, key=lambda t: -t.order):  # highest order first (stable)
        containers = [c for c in xt_terms if _contains(t, c)]
        if containers and len(t.columns):
            C = np.concatenate([c.columns for c in containers])
            coef, *_ = np.linalg.lstsq(M[:, C], M[:, t.columns], rcond=None)
            M[:, t.columns] = _zap(M[:, t.columns] - M[:, C] @ coef)
    Msel = M[sel]
    to_fit = pinv @ spec.X if Xt is not spec.X else None  # Xt's parameters in the fit's coding
    out = {}
    for t in terms:
        L = Msel[:, by_name[t.name].columns].T
        if to_fit is not None:
            L = _zap(L @ to_fit)
        out[t.name] = L[np.sum(np.abs(L), axis=1) > 1e-8]
    return out


def _full_dummies(spec, term: FixedTerm) -> np.ndarray | None:
    """The term's over-parameterised columns (every level of each factor, times its numeric variables) when its
    factors are plain data columns; None otherwise."""
    levels = {k.expr: list(v.levels) for k, v in spec.x_spec.factor_contrasts.items()}
    out = np.ones((spec.n, 1))
    for e in term.expr:
        if e not in spec.data.columns:
            return None
        v = spec.data[e]
        if e in levels:
            codes = pd.Categorical(v.astype(object), categories=levels[e]).codes
            if np.any(codes < 0):
                return None
            m = (codes[:, None] == np.arange(len(levels[e]))[None, :]).astype(float)
        elif pd.api.types.is_numeric_dtype(v):
            m = v.to_numpy(float)[:, None]
        else:
            return None
        out = (out[:, :, None] * m[:, None, :]).reshape(spec.n, -1)
    return out


def _columns_by_term(Xt, rdX, sel, owner, terms) -> list[FixedTerm]:
    cols: dict[str, list] = {t.name: [] for t in terms}
    for j, s in enumerate(sel):
        if owner[s] is not None:
            cols[owner[s]].append(j)
    return [FixedTerm(t.name, np.array(cols[t.name], dtype=int), t.variables, t.numerics, t.expr) for t in terms]


def conjugate_complement(X: np.ndarray, Z: np.ndarray, ip: np.ndarray) -> np.ndarray:
    """The part of span(Z) orthogonal to span(X) in the inner product ip (car's ConjComp).

    Parameters
    ----------
    X, Z : numpy.ndarray
        (p, r1) and (p, r2) column bases.
    ip : numpy.ndarray
        (p, p) the inner product.

    Returns
    -------
    numpy.ndarray
        (p, r2 - rank) a basis.
    """
    A = Z.T @ ip @ X
    Qf, R = np.linalg.qr(A, mode="complete")
    rank = int(np.sum(np.abs(np.diag(R)) > 1e-7 * max(np.max(np.abs(R), initial=0.0), 1e-300))) if R.size else 0
    return Z @ Qf[:, rank:]


def _type2_glmm(V: np.ndarray, terms: list[FixedTerm]) -> dict[str, np.ndarray]:
    p = V.shape[0]
    I = np.eye(p)
    out = {}
    for t in terms:
        rel = [c for c in terms if c is not t and t.variables <= c.variables]
        if not rel:
            out[t.name] = I[t.columns]
            continue
        H1 = I[np.concatenate([c.columns for c in rel])]
        H2 = I[np.concatenate([c.columns for c in rel] + [t.columns])]
        L = conjugate_complement(H1.T, H2.T, V).T
        out[t.name] = L[~np.all(L == 0, axis=1)]
    return out


def _warn_treatment_type3(spec, terms: list[FixedTerm]) -> None:
    coding = {k.expr: type(v.contrasts).__name__ for k, v in spec.x_spec.factor_contrasts.items()}
    marginal = {e for t in terms if any(t.variables < c.variables for c in terms) for e in t.variables}
    treated = sorted(e for e in marginal if coding.get(e) == "TreatmentContrasts")
    if treated:
        warnings.warn(
            f"type III tests of terms inside interactions depend on the coding: {treated} use treatment contrasts, "
            "so their main-effect rows test simple effects at the reference levels. Use sum-to-zero contrasts, "
            f"e.g. C({treated[0]}, contr.sum) in the formula, or type=2", GlmmkitWarning, stacklevel=4)


def hypothesis_matrices(fit, type: int) -> dict[str, np.ndarray]:
    """The anova table's hypothesis matrix of each fixed-effects term.

    Parameters
    ----------
    fit : Fit
        The fit.
    type : {1, 2, 3}
        Sequential, marginal-to-containers, or SAS/sum-to-zero hypotheses (module text).

    Returns
    -------
    dict
        Term name (formulaic's label) to its (rows, p) matrix; GLMM type III tables start with the intercept.
    """
    if not fit.is_lmm and type == 3:
        _warn_treatment_type3(fit.spec, fixed_terms(fit.spec)[0])
    cache = fit.__dict__.setdefault("_hypotheses", {})
    if type in cache:
        return cache[type]
    cache[type] = out = _hypothesis_matrices(fit, type)
    return out


def _hypothesis_matrices(fit, type: int) -> dict[str, np.ndarray]:
    spec = fit.spec
    terms, intercept = fixed_terms(spec)
    if fit.is_lmm:
        if type == 1 or len(terms) <= 1:
            return _sequential(spec.X.T @ spec.X, terms)
        if type == 2:
            return _type2_lmm(spec.X, terms)
        return _type3_lmm(spec, terms, intercept)
    V = np.asarray(fit._vcov, dtype=float)
    if type == 1:
        return _sequential(np.linalg.inv(V), terms)
    if type == 2:
        return _type2_glmm(V, terms)
    I = np.eye(spec.p)
    out = {"(Intercept)": I[[intercept]]} if intercept is not None else {}
    out.update({t.name: I[t.columns] for t in terms})
    return out
