"""Wald tests of the fixed effects: the coefficient table with denominator df, user contrasts (lmerTest's
``contest``) and anova tables by type (lmerTest's ``anova`` for LMMs, car's ``Anova`` for GLMMs).

    L beta = rhs,  one row:  t = (l'beta - rhs) / sqrt(l'Vl)  on df (Satterthwaite, Kenward-Roger, n - p, or
                                                               infinite: a z test)
                   q rows:   F = (L beta - rhs)' (L V L')^-1 (L beta - rhs) / q  on (q, den_df)
                             (a GLMM: chisq = q F on q df)

Kenward-Roger uses its adjusted covariance V_A in place of V and scales F (inference/ddf.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError
from .ddf import KenwardRoger, Satterthwaite

#: the accepted names of each method
DDF_METHODS = {"satterthwaite": "satterthwaite", "kenward-roger": "kenward-roger", "kr": "kenward-roger",
               "kenward_roger": "kenward-roger", "residual": "residual", "none": "none", "asymptotic": "none",
               "lme4": "none"}


def ddf_method(fit, ddf) -> str:
    """The canonical name of a df method, checked against the kind of fit.

    Parameters
    ----------
    fit : Fit
        The fit.
    ddf : str or None
        ``"satterthwaite"`` (the LMM default), ``"kenward-roger"``, ``"residual"`` (n - p) or ``"none"``
        (asymptotic normal and chi-square; the only choice, and the default, for a GLMM).

    Returns
    -------
    str
        One of satterthwaite, kenward-roger, residual, none.
    """
    if ddf is None:
        return "satterthwaite" if fit.is_lmm else "none"
    if not isinstance(ddf, str) or ddf.lower() not in DDF_METHODS:
        raise InputError(f"ddf must be one of 'satterthwaite', 'kenward-roger', 'residual' or 'none', got {ddf!r}")
    method = DDF_METHODS[ddf.lower()]
    if not fit.is_lmm and method != "none":
        fam = fit.family.name
        raise InputError(f"ddf={ddf!r} is for linear mixed models (lmer fits); the tests of this {fam} GLMM are "
                         "asymptotic (Wald z and chi-square): leave ddf unset or pass 'none'")
    return method


def ddf_engine(fit, method: str):
    """The fit's Satterthwaite or Kenward-Roger pieces, computed once and kept on the fit.

    Parameters
    ----------
    fit : Fit
        An ``lmer`` fit.
    method : {"satterthwaite", "kenward-roger"}
        The method.

    Returns
    -------
    Satterthwaite or KenwardRoger
        The method's pieces.
    """
    cache = fit.__dict__.setdefault("_ddf_cache", {})
    if method not in cache:
        with np.errstate(all="ignore"):
            cache[method] = Satterthwaite(fit) if method == "satterthwaite" else KenwardRoger(fit)
    return cache[method]


def contrast_matrix(fit, L, what: str = "L") -> np.ndarray:
    """A contrast matrix from an array (one row or several) or a dict {coefficient: weight}.

    Parameters
    ----------
    fit : Fit
        The fit, whose fixed effects give the width.
    L : array-like or dict
        The contrasts.
    what : str
        Its name in messages.

    Returns
    -------
    numpy.ndarray
        (q, p).
    """
    names = list(fit.spec.x_names)
    p = len(names)
    if isinstance(L, dict):
        unknown = [k for k in L if k not in names]
        if unknown:
            raise InputError(f"{what} names {unknown}, which are not fixed effects; the fixed effects are {names}")
        row = np.zeros(p)
        for k, v in L.items():
            row[names.index(k)] = float(v)
        return row[None, :]
    if isinstance(L, pd.DataFrame):
        missing = [c for c in names if c not in L.columns]
        if missing:
            raise InputError(f"{what} has no columns {missing}: its columns must be the fixed effects {names}")
        L = L[names].to_numpy()
    try:
        M = np.atleast_2d(np.asarray(L, dtype=float))
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numbers (an array of width {p}) or a dict of coefficient weights") from None
    if M.ndim != 2 or M.shape[1] != p:
        raise InputError(f"{what} has {M.shape[-1]} columns but the model has {p} fixed effects {names}")
    if not np.all(np.isfinite(M)):
        raise InputError(f"{what} has non-finite entries")
    return M


def t_tests(fit, L: np.ndarray, rhs=0.0, ddf=None, level: float | None = None) -> pd.DataFrame:
    """One test per row of L: estimate, std_error, df, t (LMM) or z (GLMM), p, and optionally a confidence
    interval.

    Parameters
    ----------
    fit : Fit
        The fit.
    L : numpy.ndarray
        (q, p) contrasts.
    rhs : float or array
        Hypothesised values.
    ddf : str, optional
        The df method (``ddf_method``).
    level : float, optional
        Add ``lower`` and ``upper`` at this confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per contrast.
    """
    method = ddf_method(fit, ddf)
    beta = fit._beta
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
    est = L @ beta
    if method == "kenward-roger":
        kr = ddf_engine(fit, method)
        V = kr.vcov_adjusted
        df = np.array([kr.adjust(l[None, :], beta)["den_df"] for l in L])
    else:
        V = np.asarray(fit._vcov, dtype=float)
        if method == "satterthwaite":
            sat = ddf_engine(fit, method)
            df = np.array([sat.df(l) for l in L])
        elif method == "residual":
            df = np.full(len(L), float(fit.spec.n - fit.spec.p))
        else:
            df = np.full(len(L), np.inf)
    se = np.sqrt(np.einsum("ij,jk,ik->i", L, V, L))
    stat = (est - rhs) / se
    out = pd.DataFrame({"estimate": est, "std_error": se})
    if fit.is_lmm:
        out["df"] = df
        out["t"] = stat
    else:
        out["z"] = stat
    out["p"] = 2 * stats.t.sf(np.abs(stat), df)
    if level is not None:
        crit = stats.t.ppf(0.5 + level / 2, df)
        out["lower"], out["upper"] = est - crit * se, est + crit * se
    return out


def f_test(fit, L: np.ndarray, rhs=0.0, ddf=None) -> dict:
    """The joint test of L beta = rhs.

    Parameters
    ----------
    fit : Fit
        The fit.
    L : numpy.ndarray
        (q, p) the hypothesis (rank-deficient rows are reduced to a basis).
    rhs : float or array
        Hypothesised values.
    ddf : str, optional
        The df method.

    Returns
    -------
    dict
        LMM: ``F``, ``num_df``, ``den_df``, ``p``; GLMM: ``chisq``, ``df``, ``p``.
    """
    method = ddf_method(fit, ddf)
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
    beta = fit._beta - (np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else 0.0)
    V = np.asarray(fit._vcov, dtype=float)
    if L.shape[0] == 0:
        return _f_row(fit, np.nan, 0, np.nan)
    if method == "satterthwaite":
        F, q, den = ddf_engine(fit, method).f_test(L, beta)
        return _f_row(fit, F, q, den)
    # a basis of L's rows, in the metric of V (lmerTest's eigen-reduction)
    d, P = np.linalg.eigh(L @ V @ L.T)
    keep = d > max(np.sqrt(np.finfo(float).eps) * np.max(d, initial=0.0), 0.0)
    Lr = P[:, keep].T @ L
    q = int(np.sum(keep))
    if q == 0:
        return _f_row(fit, np.nan, 0, np.nan)
    if method == "kenward-roger":
        r = ddf_engine(fit, method).adjust(Lr, beta)
        return _f_row(fit, r["F"], q, r["den_df"])
    b = Lr @ beta
    F = float(b @ np.linalg.solve(Lr @ V @ Lr.T, b)) / q
    return _f_row(fit, F, q, float(fit.spec.n - fit.spec.p) if method == "residual" else np.inf)


def _f_row(fit, F: float, q: int, den: float) -> dict:
    if not fit.is_lmm:
        chisq = q * F
        return {"chisq": chisq, "df": q, "p": float(stats.chi2.sf(chisq, q)) if q else np.nan}
    p = float(stats.f.sf(F, q, den)) if q and np.isfinite(F) else np.nan
    return {"F": F, "num_df": q, "den_df": den, "p": p}


def anova_table(fit, type=3, ddf=None) -> pd.DataFrame:
    """The anova table of one fit: one row per fixed-effects term.

    Parameters
    ----------
    fit : Fit
        The fit.
    type : {1, 2, 3, "I", "II", "III"}
        The hypotheses (inference/hypotheses.py).
    ddf : str, optional
        The df method for an LMM (Satterthwaite by default); a GLMM's tests are Wald chi-square.

    Returns
    -------
    pandas.DataFrame
        Index ``term``; LMM: ``F``, ``num_df``, ``den_df``, ``p``; GLMM: ``chisq``, ``df``, ``p``.
    """
    from .hypotheses import hypothesis_matrices

    types = {1: 1, 2: 2, 3: 3, "1": 1, "2": 2, "3": 3, "I": 1, "II": 2, "III": 3}
    if isinstance(type, bool) or type not in types:
        raise InputError(f"type must be 1, 2 or 3 (or 'I', 'II', 'III'), got {type!r}")
    ddf_method(fit, ddf)
    Ls = hypothesis_matrices(fit, types[type])
    rows = {name: f_test(fit, L, 0.0, ddf) for name, L in Ls.items()}
    cols = ["F", "num_df", "den_df", "p"] if fit.is_lmm else ["chisq", "df", "p"]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    out.index.name = "term"
    return out
