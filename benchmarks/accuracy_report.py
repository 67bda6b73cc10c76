"""Accuracy table: every reference case fitted by glmmkit beside the anchor's values.

    python benchmarks/accuracy_report.py   ->  benchmarks/results/accuracy.md

Reads tests/reference/shared (lme4 / glmmTMB fits) and tests/reference/extra_refs.json (values
computed with R by tests/reference/make_extra_refs.R).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pandas as pd

import glmmkit as gk
from glmmkit import lme4_name

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference" / "shared"
EXTRA = json.loads((ROOT / "tests" / "reference" / "extra_refs.json").read_text())
SPP = ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]


def load(case):
    return pd.read_csv(REF / case / "data.csv"), json.loads((REF / case / "ref.json").read_text())


def sal(d):
    d = d.copy()
    d["spp"] = pd.Categorical(d["spp"], categories=SPP)
    d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def cbpp(d):
    return d.assign(period=d["period"].astype(str))


def row(name, anchor, fit, ref_ll, ref_fixef, ref_sds, note=""):
    est = {lme4_name(k): v for k, v in fit.fixef.items()}
    se = {lme4_name(k): v for k, v in fit.coef_table["std_error"].items()}
    fe = max(abs(est[k] - v[0]) / max(abs(v[0]), 0.1) for k, v in ref_fixef.items())
    ses = max(abs(se[k] / v[1] - 1) for k, v in ref_fixef.items() if v[1])
    vc = fit.varcorr
    sd_err = 0.0
    for (grp, term), val in ref_sds.items():
        got = vc.loc[(vc.group == grp) & (vc.term1 == term) & vc.term2.isna(), "sd"].iloc[0]
        sd_err = max(sd_err, abs(got / val - 1))
    return (f"| {name} | {anchor} | {fit.loglik:.4f} | {ref_ll:.4f} | {fit.loglik - ref_ll:+.1e} | {fe:.1e} | "
            f"{sd_err:.1e} | {ses:.1%} | {note} |")


def shared_case(case, fit_fn, prep=None, anchor="lme4", note=""):
    d, r = load(case)
    d = prep(d) if prep else d
    fit = fit_fn(d)
    fx = {k: (v["estimate"], v["std_error"]) for k, v in r["fixef"].items()}
    sds = {}
    for v in r["varcorr"]:
        if v["group"] != "Residual" and not v.get("term2"):
            sds[(v["group"].split(".")[0], v["term1"])] = v["sd_or_corr"]
    return row(case, anchor, fit, r.get("loglik_full", r["loglik"]), fx, sds, note)


def extra_case(key, fit, anchor, note=""):
    r = EXTRA[key]
    if isinstance(next(iter(r["fixef"].values())), dict):
        fx = {k: (v["estimate"], v["std_error"]) for k, v in r["fixef"].items()}
    else:
        fx = {k: (v, r["se"][k]) for k, v in r["fixef"].items()}
    sds = {}
    for k, v in r.get("sd", {}).items():
        g, t1, t2 = k.split("|")
        if g != "Residual" and not t2:
            sds[(g, t1)] = v
    for k, v in r.items():  # glmmTMB entries: sd_<group>
        if k.startswith("sd_"):
            sds[(k[3:], "(Intercept)")] = v
    return row(key, anchor, fit, r["loglik"], fx, sds, note)


def main():
    warnings.simplefilter("ignore")
    K = pd.read_csv(REF / "phylo_poisson" / "vcv_corr.csv", index_col=0)
    cb = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    rows = [
        shared_case("cbpp_binomial", lambda d: gk.glmer(cb, d, "binomial"), cbpp),
        shared_case("cbpp_agq25", lambda d: gk.glmer(cb, d, "binomial", nagq=25), cbpp,
                    note="full logLik (lme4's loglik_full)"),
        shared_case("sleepstudy_slopes", lambda d: gk.lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)),
        shared_case("sleepstudy_slopes_reml", lambda d: gk.lmer("Reaction ~ Days + (Days | Subject)", d, reml=True)),
        shared_case("sleepstudy_uncorr", lambda d: gk.lmer("Reaction ~ Days + (Days || Subject)", d, reml=False)),
        shared_case("salamanders_poisson", lambda d: gk.glmer("count ~ mined + spp + (1 | site)", d, "poisson"), sal),
        shared_case("salamanders_poisson_olre",
                    lambda d: gk.glmer("count ~ mined + spp + (1 | site) + (1 | obs)", d, "poisson"), sal,
                    note="lme4 did not converge (max grad 0.10); see the glmmTMB row"),
        shared_case("phylo_poisson", lambda d: gk.glmer("y ~ x + (1 | species)", d, "poisson", relmat={"species": K}),
                    note="relmat = vcv(tree, corr = TRUE)"),
    ]
    s = sal(load("salamanders_poisson_olre")[0])
    rows.append(extra_case("salamanders_olre_glmmtmb",
                           gk.glmer("count ~ mined + spp + (1 | site) + (1 | obs)", s, "poisson"), "glmmTMB"))
    g = load("gamma_log")[0]
    rows.append(extra_case("gamma_log_glmmtmb", gk.glmer("y ~ x + (1 | g)", g, "Gamma", link="log", laplace="observed"),
                           "glmmTMB", "laplace='observed'"))
    cbd = cbpp(load("cbpp_binomial")[0])
    for lk in ("probit", "cloglog"):
        rows.append(extra_case(f"cbpp_{lk}", gk.glmer(cb, cbd, "binomial", link=lk), "lme4"))
    rows.append(extra_case("clinics_nested", gk.glmer(
        "sessions ~ training + offset(log(opportunities)) + (1 | clinic/clinician)", gk.datasets.load("clinics"),
        "poisson"), "lme4"))
    cs = pd.read_csv(ROOT / "tests" / "reference" / "crossed_small.csv")
    rows.append(extra_case("crossed_small", gk.glmer("y ~ x + (1 | g) + (1 | h)", cs, "binomial"), "lme4"))
    rows.append(extra_case("crossed_slope_small", gk.glmer("y ~ x + (1 + x | g) + (1 | h)", cs, "binomial"), "lme4"))
    head = ("| case | anchor | glmmkit logLik | anchor logLik | difference | max fixef rel. diff | "
            "max SD rel. diff | max SE diff | note |\n|---|---|---|---|---|---|---|---|---|")
    text = (head + "\n" + "\n".join(rows) + "\n\nfixef differences are relative to max(|estimate|, 0.1); "
            "a positive logLik difference means glmmkit found a higher likelihood.\n")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
