"""The classic methods: inverse-variance (common effect, DerSimonian-Laird, REML), Mantel-Haenszel, Peto.

Inverse variance, with W = diag(1 / (v_i + tau^2)):
    b = (X'WX)^-1 X'W y,   Var(b) = (X'WX)^-1,   P = W - W X (X'WX)^-1 X'W
    DerSimonian-Laird   tau^2 = max(0, (Q - (k - p)) / tr(P_0))        (P_0: P at tau^2 = 0)
    REML                maximises  -1/2 [sum log(v_i + tau^2) + log|X'WX| + y'Py] + 1/2 log|X'X|
    Q = y'P_0 y (Cochran), I^2 = tau^2 / (tau^2 + v~), H^2 = tau^2 / v~ + 1, v~ = (k - p) / tr(P_0)
Mantel-Haenszel (OR):  log(sum a d / n  /  sum b c / n) with the Robins-Breslow-Greenland variance;
(IRR):  log(sum x1 t2 / T  /  sum x2 t1 / T) with Greenland and Robins' variance.
Peto (OR):  sum(O - E) / sum V,  Var = 1 / sum V  (O = a, E and V hypergeometric).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .effects import escalc
from .results import MetaFit, wald_table
from .tables import StudyTable, read_table, study_rows
from ..errors import InputError


def _hetero_rows(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["test", "statistic", "df", "p"]).set_index("test")


def _proj(X, w):
    XtW = X.T * w
    A = XtW @ X
    Ainv = np.linalg.inv(A)
    P = np.diag(w) - XtW.T @ Ainv @ XtW
    return Ainv, P


def typical_variance(vi: np.ndarray, X: np.ndarray) -> float:
    """metafor's 'typical' within-study variance (k - p) / tr(P_0), the denominator of I^2 and H^2.

    Parameters
    ----------
    vi : numpy.ndarray
        Within-study variances.
    X : numpy.ndarray
        The design.

    Returns
    -------
    float
        The typical variance.
    """
    _, P0 = _proj(X, 1 / vi)
    return (len(vi) - X.shape[1]) / np.trace(P0)


def reml_loglik(tau2: float, y, v, X) -> float:
    """The restricted log-likelihood of the random-effects model at tau^2.

    Parameters
    ----------
    tau2 : float
        Between-study variance.
    y, v : numpy.ndarray
        Per-study estimates and their variances.
    X : numpy.ndarray
        The design.

    Returns
    -------
    float
        The REML log-likelihood.
    """
    w = 1 / (v + tau2)
    Ainv, P = _proj(X, w)
    k, p = X.shape
    return float(-0.5 * (k - p) * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(X.T @ X)[1]
                 - 0.5 * np.sum(np.log(v + tau2)) + 0.5 * np.linalg.slogdet(Ainv)[1] - 0.5 * y @ P @ y)


def ml_loglik(tau2: float, y, v, X) -> float:
    """The log-likelihood of the random-effects model at tau^2 (beta at its GLS estimate).

    Parameters
    ----------
    tau2 : float
        Between-study variance.
    y, v : numpy.ndarray
        Per-study estimates and their variances.
    X : numpy.ndarray
        The design.

    Returns
    -------
    float
        The log-likelihood.
    """
    w = 1 / (v + tau2)
    Ainv = np.linalg.inv((X.T * w) @ X)
    b = Ainv @ (X.T * w) @ y
    r = y - X @ b
    return float(-0.5 * (len(y) * np.log(2 * np.pi) + np.sum(np.log(v + tau2)) + np.sum(w * r * r)))


def _tau2_reml(y, v, X) -> float:
    upper = max(10 * np.var(y) + 10 * np.max(v), 1.0)
    res = optimize.minimize_scalar(lambda t: -reml_loglik(t, y, v, X), bounds=(0, upper), method="bounded",
                                   options={"xatol": 1e-12, "maxiter": 500})
    t = float(res.x)
    # the bounded search never lands exactly on 0; a boundary maximum is one
    if reml_loglik(0.0, y, v, X) >= reml_loglik(t, y, v, X):
        return 0.0
    return t


def rma(data: pd.DataFrame, *, measure: str = "OR", method: str = "REML", mods: str | None = None, study=None,
        add: float = 0.5, to: str = "only0", level: float = 0.95, **cols) -> MetaFit:
    """Inverse-variance meta-analysis of the per-study log effects (metafor's ``rma``).

    ``method``: ``"REML"`` (default), ``"DL"`` (DerSimonian-Laird) or ``"FE"`` (common effect). Zero cells
    get ``add`` in every cell of the study (``to="only0"``; studies with no events in both arms stay in,
    corrected, as metafor's default does). Columns as in ``gk.meta.glmm``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study.
    measure : {"OR", "IRR", "PLO"}
        The effect measure.
    method : {"REML", "DL", "FE"}
        The estimator of tau^2.
    mods : str, optional
        Moderators, e.g. ``"~ year"``.
    study : str, optional
        The study labels' column.
    add : float
        The continuity correction.
    to : {"only0", "all", "none"}
        Where it is added.
    level : float
        Confidence level.
    **cols
        The count columns (``ai``, ``bi``, ``ci``, ``di``, ... as in ``glmm``).

    Returns
    -------
    MetaFit
        The pooled analysis.
    """
    t0 = time.perf_counter()
    table = read_table(data, measure, study=study, mods=mods, **cols)
    return rma_table(table, method=method, add=add, to=to, level=level, t0=t0)


def rma_table(table: StudyTable, *, method: str = "REML", add: float = 0.5, to: str = "only0",
              level: float = 0.95, t0: float | None = None) -> MetaFit:
    """Inverse-variance meta-analysis of a checked study table (``rma``'s work).

    Parameters
    ----------
    table : StudyTable
        The studies.
    method : {"REML", "DL", "FE"}
        The estimator of tau^2.
    add : float
        The continuity correction.
    to : {"only0", "all", "none"}
        Where it is added.
    level : float
        Confidence level.
    t0 : float, optional
        The start time (for ``time_s``).

    Returns
    -------
    MetaFit
        The pooled analysis.
    """
    if method not in ("REML", "DL", "FE"):
        raise InputError(f"method must be 'REML', 'DL' or 'FE', got {method!r}")
    t0 = time.perf_counter() if t0 is None else t0
    es = escalc(table, add=add, to=to)
    ok = es.yi.notna().to_numpy()
    messages = []
    if not ok.all():
        messages.append(f"{int((~ok).sum())} studies without a finite effect size left out "
                        f"(zero cells with to={to!r}): {', '.join(map(str, table.study[~ok][:10]))}")
    y, v = es.yi.to_numpy()[ok], es.vi.to_numpy()[ok]
    X = table.X.to_numpy()[ok]
    names = list(table.X.columns)
    k, p = X.shape
    if k <= p - (method == "FE"):
        raise InputError(f"{k} studies cannot estimate {p} coefficients" + ("" if method == "FE" else " and tau^2"))
    _, P0 = _proj(X, 1 / v)
    Q = float(y @ P0 @ y)
    vt = (k - p) / np.trace(P0)
    se_tau2 = None
    if method == "FE":
        tau2 = 0.0
    elif method == "DL":
        tau2 = max(0.0, (Q - (k - p)) / np.trace(P0))
    else:
        tau2 = _tau2_reml(y, v, X)
    w = 1 / (v + tau2)
    vb, P = _proj(X, w)
    b = vb @ (X.T * w) @ y
    if method == "REML":
        se_tau2 = float(np.sqrt(2 / np.sum(P * P)))
    coef = wald_table(b, vb, names, level)
    if method == "FE":
        I2 = max(0.0, 100 * (Q - (k - p)) / Q) if Q > 0 else 0.0
        H2 = Q / (k - p) if k > p else np.nan
    else:
        I2, H2 = 100 * tau2 / (vt + tau2), tau2 / vt + 1
    het = _hetero_rows([("Cochran's Q", Q, k - p, stats.chi2.sf(Q, k - p))])
    loglik = reml_loglik(tau2, y, v, X) if method == "REML" else ml_loglik(tau2, y, v, X)
    crit = stats.norm.ppf(0.5 + level / 2)
    studies = study_rows(es, table, crit)
    weight = np.full(table.k, np.nan)
    weight[ok] = 100 * w / w.sum()
    studies["weight"] = weight
    label = {"REML": "inverse variance, REML", "DL": "inverse variance, DerSimonian-Laird",
             "FE": "inverse variance, common effect"}[method]
    return MetaFit(method=label, measure=table.measure, k=k, coef=coef, vcov=vb, tau2=tau2, se_tau2=se_tau2,
                   I2=I2, H2=H2, heterogeneity=het, moderators=_qm(b, vb, names), loglik=loglik,
                   n_params=p + (method != "FE"), studies=studies, level=level, dropped=list(table.dropped),
                   messages=messages, time_s=time.perf_counter() - t0)


def _qm(b, vb, names) -> pd.DataFrame | None:
    """Omnibus Wald test of the moderators (all coefficients but the intercept)."""
    idx = [i for i, n in enumerate(names) if n != "intrcpt"]
    if not idx or len(idx) == len(names) and len(names) == 1:
        return None
    bb, V = b[idx], vb[np.ix_(idx, idx)]
    qm = float(bb @ np.linalg.solve(V, bb))
    return _hetero_rows([("QM", qm, len(idx), stats.chi2.sf(qm, len(idx)))])


def _two_arm(table: StudyTable, what: str):
    if table.measure == "PLO":
        raise InputError(f"{what} needs two arms (measure 'OR' or 'IRR')")
    if table.X.shape[1] > 1:
        raise InputError(f"{what} takes no moderators; use gk.meta.rma or gk.meta.glmm for a meta-regression")


def _cochran_about(table: StudyTable, b: float, add: float, to: str):
    es = escalc(table, add=add, to=to)
    ok = es.yi.notna().to_numpy()
    y, v = es.yi.to_numpy()[ok], es.vi.to_numpy()[ok]
    Q = float(np.sum((y - b) ** 2 / v))
    df = int(ok.sum()) - 1
    return es, Q, df


def mantel_haenszel(data: pd.DataFrame, *, measure: str = "OR", study=None, add: float = 0.5, to: str = "only0",
                    level: float = 0.95, **cols) -> MetaFit:
    """Mantel-Haenszel common effect (metafor's ``rma.mh``); zero cells need no correction.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study.
    measure : {"OR", "IRR"}
        The effect measure.
    study : str, optional
        The study labels' column.
    add, to : float, str
        The continuity correction of the per-study estimates shown beside the fit.
    level : float
        Confidence level.
    **cols
        The count columns.

    Returns
    -------
    MetaFit
        The common-effect analysis.
    """
    t0 = time.perf_counter()
    table = read_table(data, measure, study=study, **cols)
    _two_arm(table, "Mantel-Haenszel")
    c = table.counts
    if measure == "OR":
        a, b_, cc, d = (c[x].to_numpy() for x in ("ai", "bi", "ci", "di"))
        n = a + b_ + cc + d
        R, S = a * d / n, b_ * cc / n
        sR, sS = R.sum(), S.sum()
        if sR == 0 or sS == 0:
            raise InputError("the Mantel-Haenszel odds ratio is 0 or infinite here (no discordant cells)")
        Pp, Qq = (a + d) / n, (b_ + cc) / n
        var = (np.sum(Pp * R) / (2 * sR ** 2) + np.sum(Pp * S + Qq * R) / (2 * sR * sS)
               + np.sum(Qq * S) / (2 * sS ** 2))
    else:
        x1, t1, x2, t2 = (c[x].to_numpy() for x in ("x1i", "t1i", "x2i", "t2i"))
        T = t1 + t2
        R, S = x1 * t2 / T, x2 * t1 / T
        sR, sS = R.sum(), S.sum()
        if sR == 0 or sS == 0:
            raise InputError("the Mantel-Haenszel rate ratio is 0 or infinite here (no events in one arm overall)")
        var = np.sum(t1 * t2 * (x1 + x2) / T ** 2) / (sR * sS)
    b = np.log(sR / sS)
    return _common_fit("Mantel-Haenszel", table, b, var, add, to, level, t0)


def peto(data: pd.DataFrame, *, study=None, add: float = 0.5, to: str = "only0", level: float = 0.95, **cols) -> MetaFit:
    """Peto's one-step odds ratio (metafor's ``rma.peto``).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study.
    study : str, optional
        The study labels' column.
    add, to : float, str
        The continuity correction of the per-study estimates shown beside the fit.
    level : float
        Confidence level.
    **cols
        The count columns.

    Returns
    -------
    MetaFit
        The common-effect analysis.
    """
    t0 = time.perf_counter()
    table = read_table(data, "OR", study=study, **cols)
    _two_arm(table, "Peto's method")
    c = table.counts
    a, b_, cc, d = (c[x].to_numpy() for x in ("ai", "bi", "ci", "di"))
    n1, n2, m1 = a + b_, cc + d, a + cc
    n = n1 + n2
    E = n1 * m1 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        V = np.where(n > 1, n1 * n2 * m1 * (n - m1) / (n ** 2 * (n - 1)), 0.0)
    if V.sum() == 0:
        raise InputError("Peto's method has no information here (no study with events in only some participants)")
    b = np.sum(a - E) / V.sum()
    fit = _common_fit("Peto", table, b, 1 / V.sum(), add, to, level, t0)
    # Peto's own heterogeneity statistic
    use = V > 0
    Q = float(np.sum((a - E)[use] ** 2 / V[use]) - np.sum(a - E) ** 2 / V.sum())
    df = int(use.sum()) - 1
    fit.heterogeneity = _hetero_rows([("Cochran's Q (Peto)", Q, df, stats.chi2.sf(Q, df))])
    fit.I2 = max(0.0, 100 * (Q - df) / Q) if Q > 0 else 0.0
    fit.H2 = Q / df if df > 0 else np.nan
    return fit


def _common_fit(name, table, b, var, add, to, level, t0) -> MetaFit:
    coef = wald_table(np.array([b]), np.array([[var]]), ["intrcpt"], level)
    es, Q, df = _cochran_about(table, b, add, to)
    crit = stats.norm.ppf(0.5 + level / 2)
    studies = study_rows(es, table, crit)
    w = 1 / es.vi
    studies["weight"] = 100 * w / w.sum()
    return MetaFit(method=name, measure=table.measure, k=table.k, coef=coef, vcov=np.array([[var]]), tau2=0.0,
                   I2=max(0.0, 100 * (Q - df) / Q) if Q > 0 else 0.0, H2=Q / df if df > 0 else np.nan,
                   heterogeneity=_hetero_rows([("Cochran's Q", Q, df, stats.chi2.sf(Q, df))]),
                   studies=studies, level=level, time_s=time.perf_counter() - t0)

