"""Seeded simulated data for the speed benchmarks (the same data go to every package)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _expit(x):
    return 1 / (1 + np.exp(-x))


def crossed_binomial(n=100_000, q1=1000, q2=200, seed=1):
    """Binary y ~ x + (1 | g) + (1 | h), g and h crossed."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x = rng.normal(size=n)
    eta = -0.5 + 0.6 * x + rng.normal(0, 0.8, q1)[g] + rng.normal(0, 0.5, q2)[h]
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def crossed_slope_binomial(n=100_000, q1=1000, q2=200, seed=2):
    """Binary y ~ x1 + (1 + x1 | g) + (1 | h)."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x1 = rng.normal(size=n)
    L = np.linalg.cholesky(np.array([[0.6, 0.1], [0.1, 0.2]]))
    b = rng.normal(size=(q1, 2)) @ L.T
    eta = -0.3 + 0.5 * x1 + b[g, 0] + b[g, 1] * x1 + rng.normal(0, 0.5, q2)[h]
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x1": x1, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def nested_poisson(n=50_000, clinics=500, per=10, seed=3):
    """Counts y ~ x + offset(log(expo)) + (1 | clinic/clinician)."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, clinics, n)
    k = rng.integers(0, per, n)
    x = rng.normal(size=n)
    expo = rng.uniform(5, 50, n)
    eta = np.log(expo) - 2.0 + 0.3 * x + rng.normal(0, 0.4, clinics)[c] + rng.normal(0, 0.3, clinics * per)[c * per + k]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "expo": expo,
                         "clinic": [f"c{i}" for i in c], "clinician": [f"k{i}" for i in k]})


def slope_binomial(n=50_000, q=500, seed=4):
    """Binary y ~ x + (1 + x | g)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    L = np.linalg.cholesky(np.array([[0.5, 0.1], [0.1, 0.25]]))
    b = rng.normal(size=(q, 2)) @ L.T
    eta = -0.2 + 0.4 * x + b[g, 0] + b[g, 1] * x
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x": x, "g": [f"g{i}" for i in g]})


def intercept_binomial(n=100_000, q=1000, seed=5):
    """Binary y ~ x + (1 | g)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    eta = -0.4 + 0.5 * x + rng.normal(0, 0.9, q)[g]
    return pd.DataFrame({"y": rng.binomial(1, _expit(eta)), "x": x, "g": [f"g{i}" for i in g]})


def _sparse_crossed(rng, q1, q2, meets):
    """Level pairs of two crossed factors where each level of the first meets meets[0]..meets[1] levels of the second."""
    m = rng.integers(meets[0], meets[1] + 1, q1)
    order = np.argsort(rng.random((q1, q2)), axis=1)  # a random permutation of the second factor per level
    keep = np.arange(q2)[None, :] < m[:, None]
    g = np.repeat(np.arange(q1), m)
    h = order[keep]
    return g, h


def crossed_sparse_lmm(n=75_000, q1=3000, q2=1100, q3=14, seed=6):
    """Gaussian y ~ x + (1 | g) + (1 | h) + (1 | dept): students x instructors (InstEval's layout).

    Each student g meets 20-30 of the 1,100 instructors h (one row per pair, about 75,000 rows);
    dept (14 levels) is the instructor's department, so it is crossed with g.
    """
    rng = np.random.default_rng(seed)
    meets = (20, 30) if n >= 50_000 else (max(2, n // q1 - 5), max(3, n // q1 + 5))
    q1 = max(50, min(q1, n // 25))
    g, h = _sparse_crossed(rng, q1, q2, meets)
    dept = h % q3
    x = rng.normal(size=len(g))
    y = 3.0 + 0.3 * x + rng.normal(0, 0.6, q1)[g] + rng.normal(0, 0.5, q2)[h] + rng.normal(0, 0.2, q3)[dept] \
        + rng.normal(0, 1.1, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{i}" for i in g], "h": [f"d{i}" for i in h],
                         "dept": [f"t{i}" for i in dept]})


def crossed_sparse_binomial(n=75_000, q1=3000, q2=1100, q3=14, seed=7):
    """Binary y ~ x + (1 | g) + (1 | h) + (1 | dept) on the sparse crossed layout of ``crossed_sparse_lmm``."""
    rng = np.random.default_rng(seed)
    d = crossed_sparse_lmm(n, q1, q2, q3, seed=seed)
    gi = d["g"].str[1:].astype(int).to_numpy()
    hi = d["h"].str[1:].astype(int).to_numpy()
    ti = d["dept"].str[1:].astype(int).to_numpy()
    eta = -0.3 + 0.5 * d["x"].to_numpy() + rng.normal(0, 0.8, gi.max() + 1)[gi] + rng.normal(0, 0.6, q2)[hi] \
        + rng.normal(0, 0.3, q3)[ti]
    d["y"] = rng.binomial(1, _expit(eta))
    return d


def million_intercept_binomial(n=1_000_000, q=20_000, seed=8):
    """Binary y ~ x + (1 | g): 1,000,000 rows in 20,000 groups."""
    return intercept_binomial(n=n, q=max(10, q * n // 1_000_000), seed=seed)


def million_crossed_binomial(n=1_000_000, q1=10_000, q2=500, seed=9):
    """Binary y ~ x + (1 | g) + (1 | h): 1,000,000 rows, 10,000 x 500 crossed levels."""
    return crossed_binomial(n=n, q1=max(10, q1 * n // 1_000_000), q2=q2, seed=seed)


def nested_diag_poisson(n=200_000, clinics=2000, per=10, seed=10):
    """Counts y ~ x + offset(log(expo)) + (1 | clinic/clinician): the nested (diagonal trailing block) layout."""
    return nested_poisson(n=n, clinics=max(10, clinics * n // 200_000), per=per, seed=seed)


def crossed_nb2(n=50_000, q1=500, q2=100, seed=11):
    """Overdispersed counts y ~ x + (1 | g) + (1 | h), negative binomial (NB2, size 2)."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x = rng.normal(size=n)
    mu = np.exp(0.5 + 0.4 * x + rng.normal(0, 0.5, q1)[g] + rng.normal(0, 0.3, q2)[h])
    size = 2.0
    y = rng.poisson(rng.gamma(size, mu / size))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def agq_binomial(n=20_000, q=1000, seed=12):
    """Binary y ~ x + (1 | g) with few rows per group (where nAGQ matters), fitted with nAGQ = 9."""
    return intercept_binomial(n=n, q=max(10, q * n // 20_000), seed=seed)


MODELS = {
    "crossed": (crossed_binomial, "y ~ x + (1 | g) + (1 | h)", "binomial"),
    "crossed_slope": (crossed_slope_binomial, "y ~ x1 + (1 + x1 | g) + (1 | h)", "binomial"),
    "nested_offset": (nested_poisson, "y ~ x + offset(log(expo)) + (1 | clinic/clinician)", "poisson"),
    "slope": (slope_binomial, "y ~ x + (1 + x | g)", "binomial"),
    "intercept": (intercept_binomial, "y ~ x + (1 | g)", "binomial"),
}

# the engine-at-scale rows: (generator, formula, family, options); options: reml (LMM), nagq
SCALE_MODELS = {
    "sparse_crossed_lmm_ml": (crossed_sparse_lmm, "y ~ x + (1 | g) + (1 | h) + (1 | dept)", "gaussian", {"reml": False}),
    "sparse_crossed_lmm_reml": (crossed_sparse_lmm, "y ~ x + (1 | g) + (1 | h) + (1 | dept)", "gaussian", {"reml": True}),
    "sparse_crossed_binary": (crossed_sparse_binomial, "y ~ x + (1 | g) + (1 | h) + (1 | dept)", "binomial", {}),
    "million_intercept": (million_intercept_binomial, "y ~ x + (1 | g)", "binomial", {}),
    "million_crossed": (million_crossed_binomial, "y ~ x + (1 | g) + (1 | h)", "binomial", {}),
    "nested_diagonal": (nested_diag_poisson, "y ~ x + offset(log(expo)) + (1 | clinic/clinician)", "poisson", {}),
    "crossed_nb2": (crossed_nb2, "y ~ x + (1 | g) + (1 | h)", "nbinom2", {}),
    "agq9": (agq_binomial, "y ~ x + (1 | g)", "binomial", {"nagq": 9}),
}


def family_data(family: str, n: int = 5000, q: int = 100, seed: int = 30):
    """A medium data set for one of glmmTMB's further families (issue 20): y ~ x + (1 | g), drawn from the
    family itself (glmmkit's simulator, seeded) at moderate parameter values; counts for the truncated
    families are positive."""
    import glmmkit.families as F

    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.5, q)[g]
    fams = {
        "beta": F.Beta(phi=10.0), "betabinomial": F.BetaBinomial(phi=4.0), "tweedie": F.Tweedie(phi=1.2, power=1.5),
        "t": F.StudentT(sigma=0.8, df=4.0), "genpois": F.GeneralizedPoisson(phi=2.0),
        "compois": F.ConwayMaxwellPoisson(phi=2.0), "truncated_poisson": F.TruncatedPoisson(),
        "truncated_nbinom1": F.TruncatedNB1().with_dispersion(1.5), "truncated_nbinom2": F.TruncatedNB2().with_dispersion(2.0),
    }
    fam = fams[family]
    wt = np.full(n, 10.0) if fam.trials_response else np.ones(n)
    y = fam.simulate(fam.link.inverse(eta), wt, rng)
    d = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
    if fam.trials_response:
        d["k"] = np.rint(y * wt).astype(int)
        d["f"] = (wt - d["k"]).astype(int)
    return d


#: issue 20's family rows: name -> (family, formula, rows); compois's series makes it the dear one for
#: glmmTMB too, so it runs on fewer rows
def zi_re_data(n: int = 5000, q: int = 100, seed: int = 31):
    """Zero-inflated Poisson counts with random effects in both models (issue 20's ``ziformula`` with a term):
    log mu = 0.5 + 0.4 x + b_c (sd 0.5), logit pi = -0.5 + 0.3 x + b_z (sd 1), q groups, seeded."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = np.round(rng.normal(size=n), 4)
    mu = np.exp(0.5 + 0.4 * x + rng.normal(0, 0.5, q)[g])
    pz = 1 / (1 + np.exp(-(-0.5 + 0.3 * x + rng.normal(0, 1.0, q)[g])))
    y = np.where(rng.uniform(size=n) < pz, 0, rng.poisson(mu))
    return pd.DataFrame({"g": [f"g{i:03d}" for i in g], "x": x, "y": y})


#: name: (family, formula, n[, ziformula]); rows with a ziformula draw their data from ``zi_re_data``
FAMILY_MODELS = {
    "beta": ("beta", "y ~ x + (1 | g)", 5000),
    "betabinomial": ("betabinomial", "cbind(k, f) ~ x + (1 | g)", 5000),
    "tweedie": ("tweedie", "y ~ x + (1 | g)", 5000),
    "t": ("t", "y ~ x + (1 | g)", 5000),
    "genpois": ("genpois", "y ~ x + (1 | g)", 5000),
    "compois": ("compois", "y ~ x + (1 | g)", 1000),
    "truncated_poisson": ("truncated_poisson", "y ~ x + (1 | g)", 5000),
    "truncated_nbinom1": ("truncated_nbinom1", "y ~ x + (1 | g)", 5000),
    "truncated_nbinom2": ("truncated_nbinom2", "y ~ x + (1 | g)", 5000),
    "zipoisson_re": ("poisson", "y ~ x + (1 | g)", 5000, "~ x + (1 | g)"),
    "hurdle_poisson_re": ("truncated_poisson", "y ~ x + (1 | g)", 5000, "~ x + (1 | g)"),
}


def covstruct_data(kind: str, seed: int = 40):
    """Medium data for a glmmTMB covariance structure (run_covstruct.py): Poisson counts with
    ``ar1``: 200 clinics x 24 months, AR(1) clinic-month effects (sd 0.5, rho 0.7) and an exposure offset;
    ``exp``: 200 positions x 3 counts on a 10 x 10 square, an exponential field (sd 0.6, range 2);
    ``rr``: 300 sites x 12 species x 2 visits, a rank-2 site-by-species effect."""
    rng = np.random.default_rng(seed)
    if kind == "ar1":
        nc, nm = 200, 24
        R = 0.7 ** np.abs(np.subtract.outer(np.arange(nm), np.arange(nm)))
        b = rng.multivariate_normal(np.zeros(nm), 0.25 * R, size=nc)
        c, m = np.repeat(np.arange(nc), nm), np.tile(np.arange(nm), nc)
        x = np.round(rng.normal(size=nc * nm), 4)
        opp = rng.integers(5, 31, nc * nm)
        y = rng.poisson(opp * np.exp(-1.5 + 0.3 * x + b[c, m]))
        return pd.DataFrame({"clinic": [f"c{i:03d}" for i in c], "month": m + 1, "x": x, "opp": opp, "y": y})
    if kind == "exp":
        npos = 200
        pts = np.round(rng.uniform(0, 10, (npos, 2)), 3)
        D = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
        f = rng.multivariate_normal(np.zeros(npos), 0.36 * np.exp(-D / 2.0))
        site = np.repeat(np.arange(npos), 3)
        x = np.round(rng.normal(size=len(site)), 4)
        y = rng.poisson(np.exp(1.0 + 0.3 * x + f[site]))
        return pd.DataFrame({"px": pts[site, 0], "py": pts[site, 1], "field": "all", "x": x, "y": y})
    if kind == "rr":
        q, k = 300, 12
        lam = rng.normal(0, 0.5, (k, 2))
        b = rng.normal(size=(q, 2)) @ lam.T
        s, j = np.repeat(np.arange(q), k * 2), np.tile(np.repeat(np.arange(k), 2), q)
        y = rng.poisson(np.exp(0.5 + b[s, j]))
        return pd.DataFrame({"site": [f"s{i:03d}" for i in s], "sp": [f"sp{v:02d}" for v in j], "y": y})
    raise ValueError(kind)


#: name -> (structure data, glmmkit formula, glmmTMB formula)
COVSTRUCT_MODELS = {
    "ar1": ("ar1", "y ~ x + offset(log(opp)) + ar1(0 + month | clinic)",
            "y ~ x + offset(log(opp)) + ar1(0 + factor(month) | clinic)"),
    "exp": ("exp", "y ~ x + exp(0 + pos(px, py) | field)", "y ~ x + exp(0 + numFactor(px, py) | field)"),
    "rr": ("rr", "y ~ sp + rr(0 + sp | site, d = 2)", "y ~ sp + rr(0 + sp | site, d = 2)"),
}
