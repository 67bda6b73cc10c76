"""The release gate (issue 17): fit every case of the validation catalogue and compare with the anchors.

    python benchmarks/validate.py                 # every case; writes results/validation.{md,json}
    python benchmarks/validate.py --subset fast   # the CI subset (small, quick cases)
    python benchmarks/validate.py --cases cbpp_078_binomial_logit,Owls_128_poisson_log

The catalogue (tests/reference/catalogue/cases.json, made by make_catalogue.R with lme4 and glmmTMB) holds
real data sets and, per case, each anchor's logLik, fixed effects with SEs, variance components, family
parameters, convergence messages, singularity and fit time.

A case passes when, for every anchor that fitted it (lme4 and/or glmmTMB):

- glmmkit's logLik is at least the anchor's minus 1e-4 (higher is fine and counted).  Each anchor is
  compared with glmmkit's fit under the same Laplace approximation: lme4's expected information
  (``laplace="expected"``) and glmmTMB's observed Hessian (``laplace="observed"``) differ for
  non-canonical links, and so do their logLiks; for canonical links they are one fit.  lme4's
  logLik at nAGQ > 1 omits the saturated model's log-likelihood: its ``loglik_full`` adds it back.
- the fixed effects are within 1e-2 of the anchor's standard errors, unless the anchor stopped short
  (its logLik more than 1e-4 below glmmkit's), in which case the anchor is not the optimum to match;
- the flags are honest: not ``converged=False`` for a fit at the anchors' optimum, never
  ``converged=True`` below it or with non-finite values; and the singular flag agrees with lme4's
  ``isSingular`` where lme4 reached the same optimum (a disagreement with a variance parameter
  between 1e-5 and 1e-3, where the threshold itself decides, is listed as a flag, not a failure).

A case may be marked a known difference only with a written reason (known_differences.json beside the
catalogue); lme4's logLik for Gamma, inverse-Gaussian and non-identity Gaussian GLMMs is not a
likelihood at its own estimates (it plugs in a moment estimate of the dispersion), so for those the
lme4 anchor is reported but not gated; nor is glmmTMB's for a weighted Gaussian model (its weights
multiply log-likelihood terms; lme4's and glmmkit's are precision weights).  The gate exits 1 on any unexplained failure or crash.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "tests" / "reference" / "catalogue"
sys.path.insert(0, str(ROOT / "src"))

import glmmkit as gk  # noqa: E402
from glmmkit.output import write_json, write_text  # noqa: E402
from glmmkit.results import lme4_name  # noqa: E402

LL_TOL = 1e-4
FIXEF_TOL = 1e-2
CANONICAL = {("binomial", "logit"), ("poisson", "log"), ("gaussian", "identity"), ("Gamma", "inverse"),
             ("inverse.gaussian", "1/mu^2")}
#: lme4 anchors whose logLik is not gated (see the module docstring)
LME4_NOT_A_LIKELIHOOD = {"Gamma", "inverse.gaussian"}


def load_catalogue(path: Path = CATALOGUE) -> dict:
    """The catalogue: versions, datasets (with factor levels) and cases."""
    cat = json.loads((path / "cases.json").read_text())
    known = path / "known_differences.json"
    cat["known"] = json.loads(known.read_text()) if known.exists() else {}
    return cat


_DATA: dict = {}


def dataset(cat: dict, name: str) -> pd.DataFrame:
    """A data set of the catalogue with R's factors as pandas categoricals in R's level order."""
    if name not in _DATA:
        info = cat["datasets"][name]
        df = pd.read_csv(CATALOGUE / info["file"], keep_default_na=False, na_values=["NA"])
        for col, levels in (info.get("factors") or {}).items():
            levels = [levels] if isinstance(levels, str) else levels
            df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in levels])
        _DATA[name] = df
    return _DATA[name]


def relmat(name: str) -> pd.DataFrame:
    K = pd.read_csv(CATALOGUE / "data" / f"{name}.csv.gz", index_col=0)
    K.index = K.index.astype(str)
    K.columns = K.columns.astype(str)
    return K


def is_lmm(case: dict) -> bool:
    return case["family"] == "gaussian" and case["link"] == "identity"


def variants(case: dict) -> dict[str, str | None]:
    """anchor -> the Laplace variant of glmmkit to compare it with (None: glmmkit's default / an LMM)."""
    out = {}
    canonical = (case["family"], case["link"]) in CANONICAL and not case.get("ziformula")
    for a, ref in case["refs"].items():
        if "error" in ref or ref.get("loglik") is None:  # the anchor failed, or gave no logLik (NA)
            continue
        if is_lmm(case) or canonical or case["nagq"] > 1:
            out[a] = None
        else:
            out[a] = "expected" if a == "lme4" else "observed"
    return out


def fit_case(cat: dict, case: dict, laplace: str | None):
    """glmmkit's fit of a case; returns (Fit, seconds)."""
    d = dataset(cat, case["data"])
    kw = {}
    if case.get("weights"):
        kw["weights"] = case["weights"]
    if case.get("relmat"):
        group = case["formula"].split("|")[-1].strip(" )")
        kw["relmat"] = {group: relmat(case["relmat"])}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_lmm(case):
            fit = gk.lmer(case["formula"], d, reml=case["reml"], **kw)
        else:
            fit = gk.glmer(case["formula"], d, case["family"], link=case["link"], nagq=case["nagq"],
                           ziformula=case.get("ziformula"), laplace=laplace, **kw)
    return fit, time.perf_counter() - t0


def anchor_loglik(case: dict, anchor: str) -> float:
    ref = case["refs"][anchor]
    return float(ref.get("loglik_full", ref["loglik"])) if case["nagq"] > 1 else float(ref["loglik"])


def gated(case: dict, anchor: str) -> bool:
    """Whether this anchor's logLik is a likelihood to match: not lme4's for the families of
    LME4_NOT_A_LIKELIHOOD and non-identity Gaussian GLMMs, and not glmmTMB's for a weighted Gaussian
    model (glmmTMB multiplies each log-likelihood term by its weight; lme4 and glmmkit take precision
    weights, var = sigma^2 / w: another model)."""
    if anchor == "lme4":
        return not (case["family"] in LME4_NOT_A_LIKELIHOOD or (case["family"] == "gaussian" and case["link"] != "identity"))
    return not (case["family"] == "gaussian" and case.get("weights"))


def fixef_gap(fit, ref: dict) -> tuple[float, str]:
    """The largest |glmmkit - anchor| / anchor SE over the fixed effects (and the coefficient)."""
    ours = {lme4_name(k): v for k, v in fit.fixef.items()}
    worst, name = 0.0, ""
    fixef = ref["fixef"]
    if isinstance(fixef, list):  # one unnamed coefficient: R dropped the name of a 1 x 2 matrix's row
        fixef = dict(zip(ours, fixef)) if len(fixef) == len(ours) == 1 else {}
    for k, r in fixef.items():
        if k not in ours:
            return np.inf, f"{k} missing from glmmkit's names {sorted(ours)[:6]}"
        se = r.get("std_error")
        se = float(se) if se is not None and np.isfinite(se) and se > 0 else max(abs(float(r["estimate"])), 1.0)
        g = abs(ours[k] - float(r["estimate"])) / se
        if g > worst:
            worst, name = g, k
    return worst, name


def theta_min(fit) -> float:
    """The smallest SD of the random effects relative to the scale (the singularity criterion's input)."""
    vc = fit.varcorr
    sd = vc.loc[vc["group"] != "Residual", "sd"].dropna()
    scale = fit.sigma if fit.is_lmm else 1.0
    return float(sd.min() / scale) if len(sd) else np.inf


def check_case(cat: dict, case: dict) -> dict:
    """Fit one case and judge it against its anchors."""
    row = {"id": case["id"], "data": case["data"], "family": case["family"], "link": case["link"],
           "nagq": case["nagq"], "reml": case["reml"], "hard": case.get("hard") or [], "anchors": {}}
    var = variants(case)
    if not var:
        row.update(status="no anchor", detail="no anchor fitted this case")
        return row
    fits = {}
    try:
        for lap in sorted(set(var.values()), key=str):
            fits[lap] = fit_case(cat, case, lap)
    except Exception as err:  # noqa: BLE001 - a crash is what the gate counts
        known = cat["known"].get(case["id"])
        row.update(status="known difference" if known else "crash", detail=f"{type(err).__name__}: {err}"[:300],
                   reason=known)
        return row
    failures, flags = [], []
    best_gap = -np.inf
    for a, lap in var.items():
        fit, secs = fits[lap]
        ref = case["refs"][a]
        ll_a = anchor_loglik(case, a)
        gap = fit.loglik - ll_a
        info = {"loglik": ll_a, "glmmkit_loglik": fit.loglik, "gap": gap, "laplace": lap or "default",
                "time_anchor": ref.get("time_s"), "time_glmmkit": secs, "gated": gated(case, a),
                "messages": ref.get("messages") or []}
        if gated(case, a):
            best_gap = max(best_gap, gap)
            if gap < -LL_TOL:
                failures.append(f"logLik {gap:.3g} below {a}")
            if gap >= -LL_TOL and (gap <= LL_TOL):
                fg, name = fixef_gap(fit, ref)
                info["fixef_gap_se"] = fg
                if fg > FIXEF_TOL:
                    failures.append(f"fixed effect {name} {fg:.3g} SE from {a}")
            elif gap > LL_TOL:
                info["anchor_stopped_short"] = True
        row["anchors"][a] = info
    fit = next(iter(fits.values()))[0]
    row["converged"] = bool(fit.converged)
    row["singular"] = bool(fit.singular)
    row["glmmkit_messages"] = list(fit.messages)
    at_optimum = best_gap >= -LL_TOL
    if not fit.converged and at_optimum:
        failures.append("converged=False at the anchors' optimum")
    if fit.converged and not at_optimum and best_gap > -np.inf:
        failures.append("converged=True below the anchors' optimum")
    lme = case["refs"].get("lme4", {})
    if "singular" in lme and "lme4" in row["anchors"] and abs(row["anchors"]["lme4"]["gap"]) <= 1e-3:
        if bool(lme["singular"]) != row["singular"]:
            tm = theta_min(fit)
            msg = f"singular: glmmkit {row['singular']}, lme4 {lme['singular']} (smallest relative SD {tm:.2g})"
            (flags if 1e-5 <= tm <= 1e-3 else failures).append(msg)
    row["higher"] = bool(best_gap > 1e-3)
    row["flags"] = flags
    known = cat["known"].get(case["id"])
    if best_gap == -np.inf and not failures:
        row.update(status="reference only", detail="no anchor whose logLik is gated (see the module docstring)")
        return row
    if failures:
        row.update(status="known difference" if known else "fail", detail="; ".join(failures),
                   reason=known)
    else:
        row.update(status="pass", detail="")
    return row


FAST_MAX_ROWS = 700


def fast_subset(cat: dict) -> list[dict]:
    """Cases small and quick enough for CI (at most about two minutes in all)."""
    out = []
    for c in cat["cases"]:
        rows = cat["datasets"][c["data"]]["rows"]
        times = [r.get("time_s", 9) for r in c["refs"].values() if "error" not in r]
        if rows <= FAST_MAX_ROWS and times and max(times) < 0.6 and c["family"] not in ("nbinom1",):
            out.append(c)
    return out


def run(cases: list[dict], cat: dict, progress: bool = True) -> list[dict]:
    rows = []
    for i, c in enumerate(cases):
        r = check_case(cat, c)
        rows.append(r)
        if progress:
            print(f"{i + 1:3d}/{len(cases)} {r['status']:16s} {c['id']:48s} {r.get('detail', '')[:90]}", flush=True)
    return rows


def summarise(rows: list[dict], cat: dict) -> dict:
    status = pd.Series([r["status"] for r in rows]).value_counts().to_dict()
    ratios = {"lme4": [], "glmmTMB": []}
    for r in rows:
        for a, info in r.get("anchors", {}).items():
            if info.get("time_anchor"):
                ratios[a].append(info["time_glmmkit"] / max(info["time_anchor"], 1e-3))
    rt = {a: {"n": len(v), "median": float(np.median(v)) if v else None,
              "p95": float(np.quantile(v, 0.95)) if v else None} for a, v in ratios.items()}
    gated_rows = [r for r in rows if any(i["gated"] for i in r.get("anchors", {}).values())]
    at_or_above = sum(1 for r in gated_rows if all(i["gap"] is not None and i["gap"] >= -LL_TOL
                                                   for i in r["anchors"].values() if i["gated"]))
    return {"cases": len(rows), "status": status, "gated_cases": len(gated_rows), "higher_by_1e-3": sum(r.get("higher", False) for r in rows),
            "at_or_above_best_anchor": at_or_above, "crashes": status.get("crash", 0), "time_ratios": rt,
            "flags": sum(len(r.get("flags", [])) for r in rows), "versions": cat["versions"]}


def write(rows: list[dict], summary: dict, out: Path) -> None:
    s = summary
    rt = s["time_ratios"]
    lines = ["# Validation gate (issue 17)", "",
             f"`python benchmarks/validate.py`: {s['cases']} cases of tests/reference/catalogue "
             f"(lme4 {s['versions']['lme4']}, glmmTMB {s['versions']['glmmTMB']}, {s['versions']['R']}).", "",
             "| measure | value |", "|---|---:|",
             f"| cases | {s['cases']} |"]
    for k, v in sorted(s["status"].items()):
        lines.append(f"| {k} | {v} |")
    lines += [f"| cases with a gated anchor | {s['gated_cases']} |",
              f"| logLik at or above every gated anchor (-1e-4) | {s['at_or_above_best_anchor']} |",
              f"| logLik above the best anchor by more than 1e-3 | {s['higher_by_1e-3']} |",
              f"| crashes | {s['crashes']} |",
              f"| flags (listed below) | {s['flags']} |"]
    for a in ("lme4", "glmmTMB"):
        if rt[a]["n"]:
            lines.append(f"| time ratio glmmkit / {a}: median (worst 5%) over {rt[a]['n']} fits | "
                         f"{rt[a]['median']:.2f} ({rt[a]['p95']:.2f}) |")
    lines += ["", "Time ratios: glmmkit's fit time in this run over the anchor's fit time measured by "
              "make_catalogue.R on this machine (not the same invocation; for orientation).", ""]
    bad = [r for r in rows if r["status"] not in ("pass", "no anchor", "reference only")]
    if bad:
        lines += ["## Not passed", "", "| case | status | detail | reason |", "|---|---|---|---|"]
        for r in bad:
            lines.append(f"| {r['id']} | {r['status']} | {r.get('detail', '')} | {r.get('reason') or ''} |")
    fl = [(r["id"], f) for r in rows for f in r.get("flags", [])]
    if fl:
        lines += ["", "## Flags", ""] + [f"- {i}: {f}" for i, f in fl]
    hi = [r for r in rows if r.get("higher")]
    if hi:
        lines += ["", "## glmmkit higher than an anchor by more than 1e-3", "",
                  "| case | anchor | gap |", "|---|---|---:|"]
        for r in hi:
            for a, info in r["anchors"].items():
                if info["gated"] and info["gap"] > 1e-3:
                    lines.append(f"| {r['id']} | {a} | {info['gap']:.4g} |")
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"summary": summary, "cases": rows})
    print("\n".join(lines[:20]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", choices=["all", "fast"], default="all")
    ap.add_argument("--cases", default=None, help="comma-separated case ids")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "validation"))
    args = ap.parse_args(argv)
    cat = load_catalogue()
    cases = cat["cases"]
    if args.subset == "fast":
        cases = fast_subset(cat)
    if args.cases:
        want = set(args.cases.split(","))
        cases = [c for c in cases if c["id"] in want]
    rows = run(cases, cat)
    summary = summarise(rows, cat)
    out = Path(args.out)
    if args.subset == "fast" and args.out == ap.get_default("out"):
        out = out.with_name("validation_fast")
    write(rows, summary, out)
    unexplained = summary["status"].get("fail", 0) + summary["status"].get("crash", 0)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
