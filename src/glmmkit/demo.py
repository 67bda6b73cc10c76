"""``glmmkit demo``: the mission's stories, each fitted on bundled data and explained.

1. Birds: does testosterone raise the chance a bird attacks, given each bird's own baseline?
   (logistic GLMM, repeated binary choices, random intercept per bird)
2. Clinics: monthly therapy sessions per clinician, with exposure, clinicians nested in clinics
   (Poisson GLMM with an offset and nested random intercepts)
3. Mating success: winner-take-all counts, far more variable than Poisson allows; Poisson,
   Poisson + observation-level random effect and negative-binomial GLMMs side by side
4. Bacterial isolates: a gene carried by one clade and disease that follows the tree; the naive
   logistic regression finds the gene, the phylogenetic GLMM shows it is shared ancestry
5. Single cells: counts of thousands of genes in cells of 16 donors in two conditions; the cell-level
   GLM (pseudoreplication), pseudobulk DESeq2 and the NB GLMM with a donor random effect, on the truth
6. Antibiotic trials: a meta-analysis of rare events with zero-event arms; one binomial GLMM over all
   arms beside the classic inverse-variance, Mantel-Haenszel and Peto methods
7. A GWAS in families: PLINK files of a simulated cohort with relatives and two ancestries; plain logistic
   regression is inflated, the mixed model with the genomic relationship matrix is calibrated and finds
   the causal variant
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd


from . import datasets
from .api import glmer
from .engine.glm import fit_glm
from .families import Binomial
from .output import write_json


def _rule(title: str) -> None:
    print()
    print("=" * 78)
    print(title)
    print("=" * 78)


def _fit_story(title: str, name: str, formula: str, family: str):
    """Print the story's title and data description, fit the model, print its summary; (data, fit, seconds)."""
    _rule(title)
    d = datasets.load(name)
    print(datasets.describe(name))
    t0 = time.perf_counter()
    fit = glmer(formula, d, family)
    el = time.perf_counter() - t0
    print(fit.summary())
    return d, fit, el


def story_birds(out: Path) -> dict:
    d, fit, el = _fit_story("1. Birds: testosterone and attacks, with each bird's own baseline (logistic GLMM)",
                            "birds", "attack ~ testosterone + season + (1 | bird)", "binomial")
    ct = fit.coef_table
    b, se = ct.loc["testosterone", "estimate"], ct.loc["testosterone", "std_error"]
    orat, lo, hi = np.exp(b), np.exp(b - 1.96 * se), np.exp(b + 1.96 * se)
    var_bird = float(fit.varcorr.query("group == 'bird'")["variance"].iloc[0])
    icc = var_bird / (var_bird + np.pi ** 2 / 3)
    # the same question without the birds' baselines: a plain logistic regression
    X = fit.spec.X
    beta_glm, mu, _, _ = fit_glm(fit.spec.y, X, fit.spec.wt, fit.spec.offset, Binomial())
    w = mu * (1 - mu)
    se_glm = np.sqrt(np.diag(np.linalg.inv(X.T @ (w[:, None] * X))))
    j = fit.spec.x_names.index("testosterone")
    print()
    print(f"Answer: each unit of testosterone multiplies the odds of an attack by {orat:.2f} "
          f"(95% CI {lo:.2f} to {hi:.2f}, p = {ct.loc['testosterone', 'p']:.2g}),")
    print(f"  for the same bird. Birds differ a lot in boldness: SD {np.sqrt(var_bird):.2f} on the log-odds scale,")
    print(f"  an intra-class correlation of {icc:.2f} (latent scale).")
    print(f"  A logistic regression that ignores the birds says OR {np.exp(beta_glm[j]):.2f} "
          f"(SE {se_glm[j]:.3f} vs {se:.3f}): it mixes the within-bird effect with between-bird differences")
    print(f"  and treats {fit.nobs} choices of {fit.ngroups['bird']} birds as independent.")
    t1 = time.perf_counter()
    ci = fit.confint(method="profile")
    sd_lo, sd_hi = ci.loc["sd_(Intercept)|bird"]
    t_lo, t_hi = ci.loc["testosterone"]
    r2 = fit.r2()
    print(f"  Profile-likelihood 95% intervals: SD of boldness {sd_lo:.2f} to {sd_hi:.2f}; testosterone "
          f"{t_lo:.3f} to {t_hi:.3f} (log odds).")
    print(f"  ICC {fit.icc()['ICC']:.2f}; R^2 marginal {r2['R2_marginal']:.2f} (testosterone and season), "
          f"conditional {r2['R2_conditional']:.2f} (with each bird's boldness).")
    figs = []
    try:
        from .plots import caterpillar

        path = out / "birds_caterpillar.png"
        caterpillar(fit, "bird", path=path)
        figs.append(str(path))
        rep = fit.report(out / "birds_report.html")
        figs.append(str(rep))
        print(f"  Caterpillar plot of the birds' boldness and an HTML report: {', '.join(figs)}")
    except ImportError:
        print("  (install matplotlib for the figures: pip install glmmkit[plots])")
    print(f"  (fitted in {el:.2f} s; intervals, R^2 and figures in {time.perf_counter() - t1:.1f} s)")
    return {"odds_ratio": orat, "ci": [lo, hi], "sd_bird": np.sqrt(var_bird), "sd_bird_profile_ci": [sd_lo, sd_hi],
            "icc": icc, "r2": r2.to_dict(), "loglik": fit.loglik, "figures": figs}


def story_clinics(out: Path) -> dict:
    d, fit, el = _fit_story("2. Clinics: session rates with exposure, clinicians nested in clinics (Poisson GLMM)",
                            "clinics", "sessions ~ training + offset(log(opportunities)) + (1 | clinic/clinician)",
                            "poisson")
    ct = fit.coef_table
    key = [k for k in ct.index if k.startswith("training")][0]
    b, se = ct.loc[key, "estimate"], ct.loc[key, "std_error"]
    vc = fit.varcorr.set_index("group")["sd"]
    base = np.exp(fit.fixef.iloc[0])
    print()
    print(f"Answer: trained clinicians hold {100 * (np.exp(b) - 1):.0f}% more sessions per opportunity "
          f"(rate ratio {np.exp(b):.2f}, 95% CI {np.exp(b - 1.96 * se):.2f} to {np.exp(b + 1.96 * se):.2f}).")
    print(f"  Untrained clinicians in a typical clinic: {base:.3f} sessions per opportunity.")
    print(f"  Clinics differ (SD {vc['clinic']:.2f} on the log scale) and so do clinicians within a clinic "
          f"(SD {vc['clinician:clinic']:.2f}).")
    new = pd.DataFrame({"clinic": ["C00", "C00", "C00", "NEW"], "clinician": ["K1", "K9", "K9", "K1"],
                        "training": ["no", "no", "yes", "yes"], "opportunities": [100] * 4})
    who = ["clinician K1 of clinic C00", "a new untrained clinician in C00", "a new trained clinician in C00",
           "a trained clinician in a new clinic"]
    pred = fit.predict(new, allow_new_levels=True)
    pop = fit.predict(new, re_form="~0")
    print("  Expected sessions in a month with 100 opportunities (new levels at their average, b = 0):")
    for w, p, q in zip(who, pred, pop):
        print(f"    {w:36s} {p:6.1f}   (typical clinic and clinician, b = 0: {q:5.1f})")
    pi = fit.predict_interval(new, nsim=2000, seed=5, which="mean")
    print("  95% intervals for those expected counts (simulation: fixed and random effects drawn):")
    for w, (_, r) in zip(who, pi.iterrows()):
        print(f"    {w:36s} {r['lower']:6.1f} to {r['upper']:5.1f}")
    # does a clinician's rate drift from month to month? an AR(1) series over the months per clinician
    # (glmmTMB's ar1) in place of the constant clinician effect: rho -> 1 is the constant effect again
    t0 = time.perf_counter()
    ar = glmer("sessions ~ training + offset(log(opportunities)) + (1 | clinic) + ar1(0 + month | clinic:clinician)",
               d, "poisson")
    cp = ar.covpars.set_index("parameter")["estimate"]
    lr = 2 * (ar.loglik - fit.loglik)
    d_aic = ar.aic - fit.aic
    print(f"  Month-to-month drift? ar1(0 + month | clinic:clinician) instead of (1 | clinician): rho "
          f"{cp['rho']:.3f}, SD {cp['sd']:.2f}; logLik {ar.loglik:.3f} against {fit.loglik:.3f} "
          f"(LR {max(lr, 0.0):.3f} for one more parameter, AIC {d_aic:+.1f}; fitted in {time.perf_counter() - t0:.2f} s).")
    print("  " + ("A correlation at 1 is a constant clinician effect: the AR(1) term is not needed here."
                  if cp["rho"] > 0.99 and lr < 3.84 else
                  "The clinicians' rates drift: keep the AR(1) term." if lr >= 3.84 else
                  "No evidence of drift beyond a constant clinician effect: the simpler model stays."))
    figs = []
    try:
        from .plots import effects_plot

        path = out / "clinics_predicted_rate.png"
        effects_plot(fit, "training", path=path)
        figs.append(str(path))
        print(f"  Predicted session rate by training: {path}")
    except ImportError:
        print("  (install matplotlib for the figure: pip install glmmkit[plots])")
    print(f"  (fitted in {el:.2f} s)")
    return {"rate_ratio": float(np.exp(b)), "sd": {k: float(v) for k, v in vc.items()}, "loglik": fit.loglik,
            "ar1": {"rho": float(cp["rho"]), "sd": float(cp["sd"]), "loglik": ar.loglik, "lr": float(lr),
                    "delta_aic": float(d_aic)},
            "figures": figs}


def story_mating(out: Path) -> dict:
    _rule("3. Mating success: overdispersed counts (Poisson, OLRE, NB1, NB2, zero-inflated NB2, NB2 hurdle)")
    from .diagnostics import overdispersion_report, simulate_residuals

    d = datasets.load("mating")
    print(datasets.describe("mating"))
    print(f"Matings per male-season: mean {d.matings.mean():.2f}, variance {d.matings.var():.2f}, "
          f"{100 * (d.matings == 0).mean():.0f}% zeros, the top 10% of male-seasons have "
          f"{100 * d.matings.nlargest(len(d) // 10).sum() / d.matings.sum():.0f}% of all matings.")
    t0 = time.perf_counter()
    rep = overdispersion_report("matings ~ ornament + (1 | male)", d, nsim=250, seed=3, zero_models=True)
    el = time.perf_counter() - t0
    print()
    print(rep)
    rows = []
    for name, fit in rep.fits.items():
        ct = fit.coef_table.loc["ornament"]
        rows.append({"model": name, "ornament effect": ct["estimate"], "SE": ct["std_error"], "p": ct["p"],
                     "95% CI": f"{ct['estimate'] - 1.96 * ct['std_error']:.3f} to "
                               f"{ct['estimate'] + 1.96 * ct['std_error']:.3f}"})
    tab = pd.DataFrame(rows).set_index("model")
    print()
    print("The question (does ornament size raise mating success?) under each model:")
    with pd.option_context("display.width", 120, "display.float_format", lambda v: f"{v: .4g}"):
        print(tab.to_string())
    pois, nb = rep.fits["poisson"], rep.fits["nbinom2"]
    ratio = nb.coef_table.loc["ornament", "std_error"] / pois.coef_table.loc["ornament", "std_error"]
    print()
    print(f"Answer: the Poisson GLMM's standard error is {ratio:.1f}x too small (false confidence); "
          f"the negative-binomial GLMM gives theta = {nb.family_params.loc['theta', 'estimate']:.2f} "
          f"(variance mu + mu^2 / theta, truth 0.4) and an honest interval for the ornament effect (truth 0.35).")
    figs = []
    try:
        for name in ("poisson", "nbinom2"):
            path = out / f"mating_residuals_{name}.png"
            simulate_residuals(rep.fits[name], nsim=250, seed=4, conditional=True).plot(
                path, title=f"Mating success, {name} GLMM: simulated (DHARMa-style) residuals")
            figs.append(str(path))
        print(f"  Residual plots: {', '.join(figs)}")
    except ImportError:
        print("  (install matplotlib for the residual plots: pip install glmmkit[plots])")
    zi, hu = rep.fits["zinbinom2"], rep.fits["hurdle nbinom2"]
    print(f"  Zeros: the zero-inflated NB2 puts {100 * zi.predict(type='zprob')[0]:.1f}% of male-seasons in a "
          f"structural zero, the hurdle {100 * hu.predict(type='zprob')[0]:.1f}% of them at zero "
          f"(observed {100 * (d.matings == 0).mean():.1f}%); AIC against NB2: "
          f"{rep.table.loc['zinbinom2', 'AIC'] - rep.table.loc['nbinom2', 'AIC']:+.1f} (ZINB2), "
          f"{rep.table.loc['hurdle nbinom2', 'AIC'] - rep.table.loc['nbinom2', 'AIC']:+.1f} (hurdle).")
    print(f"  ({len(rep.fits)} models fitted and compared in {el:.2f} s)")
    return {"table": tab.reset_index().to_dict(orient="records"), "best": rep.table["AIC"].idxmin(),
            "se_ratio_nb_over_poisson": float(ratio), "figures": figs}


def story_isolates(out: Path) -> dict:
    _rule("4. Bacterial isolates: is it the gene, or shared ancestry? (phylogenetic logistic GLMM)")
    from . import phylo

    d = datasets.load("isolates")
    print(datasets.describe("isolates"))
    tree = phylo.read_tree(datasets.tree_text("isolates"))
    K = phylo.vcv(tree, corr=True)
    print(f"{tree.n_tips} isolates; the gene is carried by {d.gene.sum()} of them, all in one clade; "
          f"{100 * d.disease.mean():.0f}% have the disease.")
    t0 = time.perf_counter()
    cmp = phylo.compare_naive("disease ~ gene + (1 | isolate)", d, "binomial", relmat={"isolate": K}, terms=["gene"])
    fit = glmer("disease ~ gene + (1 | isolate)", d, "binomial", relmat={"isolate": K})
    h2 = phylo.heritability(fit, "isolate", nsim=100, seed=2)
    el = time.perf_counter() - t0
    print(fit.summary())
    r = cmp.loc["gene"]
    print()
    print("The gene's association with disease (log odds ratio):")
    print(f"  naive logistic regression:  {r.naive_estimate:.2f} (SE {r.naive_se:.2f}), p = {r.naive_p:.1g}")
    print(f"  phylogenetic GLMM:          {r.phylo_estimate:.2f} (SE {r.phylo_se:.2f}), p = {r.phylo_p:.2g}")
    print("Answer: the naive model 'finds' the gene; once the isolates' shared ancestry is modelled the")
    print("  association is not distinguishable from history (the gene marks a clade whose members share their")
    print(f"  risk). Phylogenetic heritability of disease on the latent scale H^2 = {h2.H2:.2f} "
          f"(bootstrap 95% interval {h2.lower:.2f} to {h2.upper:.2f}).")
    print(f"  (fits and 100 bootstrap refits in {el:.1f} s)")
    return {"naive_p": float(r.naive_p), "phylo_p": float(r.phylo_p), "H2": float(h2.H2),
            "H2_ci": [float(h2.lower), float(h2.upper)]}


def story_cells(out: Path) -> dict:
    _rule("5. Single cells: which genes does the condition change? (NB GLMM, cells nested in donors)")
    try:
        from . import singlecell
    except ImportError:  # pragma: no cover
        print("  (install anndata for this story: pip install glmmkit[sc])")
        return {}
    from .singlecell import bh_fdr, power_at_fdp

    ad = singlecell.simulate(n_genes=3000, n_cells=8000, n_subjects=16, frac_de=0.1, lfc=0.6, seed=55)
    path = out / "cells.h5ad"
    ad.write_h5ad(path)
    truth = ad.var["is_de"].to_numpy()
    print(f"Simulated {ad.n_vars} genes x {ad.n_obs} cells from 16 donors (8 per condition), "
          f"{ad.X.nnz / ad.n_obs / ad.n_vars:.0%} nonzero; {truth.sum()} genes truly changed "
          f"(|log fold change| 0.6). Written to {path}.")
    kw = dict(subject="subject", condition="condition", progress_bar=False)
    t0 = time.perf_counter()
    res = singlecell.de(path, cell_glm=True, **kw)
    el = time.perf_counter() - t0
    t0 = time.perf_counter()
    pb = singlecell.pseudobulk(path, "subject", "condition")
    el_pb = time.perf_counter() - t0
    print(res.summary())
    rows = {}
    for name, p in (("cell-level NB GLM (no donor effect)", res.cell_glm["p"]), ("pseudobulk (DESeq2)", pb["p"]),
                    ("NB GLMM, donor random effect", res.table["p"])):
        p = p.to_numpy()
        sig = bh_fdr(p) <= 0.05
        null = np.isfinite(p) & ~truth
        rows[name] = {"discoveries": int(sig.sum()), "false": int((sig & ~truth).sum()),
                      "power": float((sig & truth).sum() / truth.sum()),
                      "null p < 0.05": float(np.mean(p[null] < 0.05)),
                      "power at actual FDP 5%": power_at_fdp(p, truth)}
    table = pd.DataFrame(rows).T
    print()
    print("At FDR 5% (Benjamini-Hochberg), against the simulation's truth:")
    with pd.option_context("display.width", 140, "display.float_format", lambda v: f"{v: .3f}"):
        print(table.to_string())
    cg, pbk, gm = (rows[k] for k in rows)
    print()
    print(f"Answer: treating {ad.n_obs} cells as independent (the cell-level GLM) calls {cg['discoveries']} genes, "
          f"{cg['false']} of them")
    print(f"  false: {100 * cg['null p < 0.05']:.0f}% of unchanged genes have p < 0.05. Pseudobulk and the GLMM respect "
          f"the donors ({100 * pbk['null p < 0.05']:.1f}% and")
    print(f"  {100 * gm['null p < 0.05']:.1f}% of unchanged genes below 0.05). The GLMM finds {gm['discoveries']} genes "
          f"({gm['false']} false), pseudobulk {pbk['discoveries']} ({pbk['false']} false):")
    print(f"  DESeq2's shared dispersion trend buys discoveries at a false-discovery share of "
          f"{pbk['false'] / max(pbk['discoveries'], 1):.0%}")
    print(f"  (asked: 5%); the GLMM (donor variances under a prior fitted across genes) stays at "
          f"{gm['false'] / max(gm['discoveries'], 1):.0%}. Ranked by p with the truth known, the largest")
    print(f"  gene lists with at most 5% false hold {gm['power at actual FDP 5%']:.0%} of the changed genes for the GLMM, "
          f"{pbk['power at actual FDP 5%']:.0%} for pseudobulk.")
    figs = []
    try:
        from .plots import compare_methods, volcano

        volcano(res.table, path=out / "cells_volcano.png", title="NB GLMM: condition B vs A")
        compare_methods(res.table, pb, path=out / "cells_glmm_vs_pseudobulk.png", truth=ad.var["is_de"])
        figs = [str(out / "cells_volcano.png"), str(out / "cells_glmm_vs_pseudobulk.png")]
        print(f"  Figures: {', '.join(figs)}")
    except ImportError:
        print("  (install matplotlib for the figures: pip install glmmkit[plots])")
    res.to_tsv(out / "cells_de.tsv")
    print(f"  Table: {out / 'cells_de.tsv'}  (GLMM {el:.1f} s incl. the cell-level GLM; pseudobulk {el_pb:.1f} s)")
    return {k: v for k, v in rows.items()} | {"figures": figs}


def story_trials(out: Path) -> dict:
    _rule("6. Antibiotic trials: a meta-analysis of rare events (binomial-normal GLMM vs the classic methods)")
    import warnings

    from . import meta

    d = datasets.load("antibiotics")
    print(datasets.describe("antibiotics"))
    zero1 = int(((d.ai == 0) ^ (d.ci == 0)).sum())
    zero2 = int(((d.ai == 0) & (d.ci == 0)).sum())
    print(f"{len(d)} trials, {d.n1i.sum() + d.n2i.sum()} patients, {d.ai.sum() + d.ci.sum()} infections; "
          f"{zero1} trials with no infection in one arm, {zero2} with none in either.")
    cols = dict(ai="ai", n1i="n1i", ci="ci", n2i="n2i", study="trial")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", meta.DroppedStudiesWarning)
        fit = meta.glmm(d, model="UM.FS", **cols)
        table = meta.compare(d, **cols)
    el = time.perf_counter() - t0
    print()
    print(fit.summary())
    print()
    print("Every method on the same trials (log odds ratio; truth -0.70, tau 0.35):")
    with pd.option_context("display.width", 140, "display.float_format", lambda v: f"{v: .3f}"):
        print(table[["k", "estimate", "std_error", "lower", "upper", "p", "tau2"]].to_string())
    iv = table.loc["inverse variance, REML"]
    print()
    print(f"Answer: prophylaxis cuts the odds of infection to {np.exp(fit.estimate):.2f} "
          f"(95% CI {np.exp(fit.coef.lower.iloc[0]):.2f} to {np.exp(fit.coef.upper.iloc[0]):.2f}) in the GLMM, which")
    print("  takes the zero-event arms as they are. The inverse-variance method needs +0.5 in every cell of")
    print(f"  a trial with a zero, which pulls the small trials towards no effect: odds ratio {np.exp(iv.estimate):.2f}, "
          f"and tau^2 {iv.tau2:.2f} against the GLMM's {fit.tau2:.2f}.")
    print(f"  Trials without any infection ({', '.join(fit.dropped)}) say nothing about the odds ratio and are left out.")
    figs = []
    try:
        for name, f in (("forest", fit.forest), ("funnel", fit.funnel)):
            path = out / f"trials_{name}.png"
            f(path)
            figs.append(str(path))
        print(f"  Figures: {', '.join(figs)}")
    except ImportError:
        print("  (install matplotlib for the forest and funnel plots: pip install glmmkit[plots])")
    print(f"  (8 meta-analyses in {el:.1f} s)")
    return {"glmm_or": float(np.exp(fit.estimate)), "glmm_tau2": fit.tau2, "iv_or": float(np.exp(iv.estimate)),
            "iv_tau2": float(iv.tau2), "dropped": list(fit.dropped), "figures": figs}


def story_gwas(out: Path) -> dict:
    _rule("7. A GWAS in families: relatedness and ancestry (logistic mixed model with the GRM)")
    try:
        import bed_reader  # noqa: F401
    except ImportError:  # pragma: no cover
        print("  (install bed-reader for this story: pip install glmmkit[gwas])")
        return {}
    from . import gwas

    folder = out / "gwas"
    folder.mkdir(exist_ok=True)
    info = gwas.simulate_cohort(folder / "cohort", n_families=300, n_variants=6000, n_causal=300, h2=0.5, c2=0.1,
                                fst=0.02, pop_shift=0.5, prevalence=0.3, seed=7, causal_extra=0.8)
    n = info["n"]
    print(f"Simulated {n} people in {info['n_families']} families from two ancestral populations, 6,000 variants "
          f"on 22 chromosomes, written as PLINK files ({folder / 'cohort'}.bed/.bim/.fam); a binary trait with a "
          "polygenic")
    print("  basis, a shared family environment and a higher risk in one population; variant rs1 has a real effect.")
    kw = dict(pheno=info["pheno"], pheno_col="y", covar=info["covar"], covar_cols=["sex", "age"], trait="binary",
              progress_bar=False)
    t0 = time.perf_counter()
    glm = gwas.null(info["bfile"], fix_tau=0.0, K=np.eye(n), **kw)
    mm = gwas.null(info["bfile"], loco=True, **kw)
    mm.save(folder / "step1")
    r_glm = gwas.test(info["bfile"], glm, progress_bar=False).table
    r_mm = gwas.test(info["bfile"], folder / "step1", out=folder / "results.tsv.gz", progress_bar=False).table
    el = time.perf_counter() - t0
    null_var = ~r_mm["ID"].isin(info["causal"])
    lam_glm, lam_mm = gwas.lambda_gc(r_glm.loc[null_var, "P"]), gwas.lambda_gc(r_mm.loc[null_var, "P"])
    print()
    print(mm.summary())
    print()
    print("Top variants, mixed model (LOCO):")
    with pd.option_context("display.width", 140):
        print(gwas.top_hits(r_mm, 5)[["CHR", "POS", "ID", "A1_FREQ", "BETA", "SE", "P"]].to_string(index=False))
    rank = int(r_mm["P"].rank().loc[r_mm["ID"] == "rs1"].iloc[0])
    print()
    print(f"Answer: plain logistic regression is inflated, lambda_GC = {lam_glm:.2f} over the variants without an "
          f"effect (relatives and ancestry")
    print(f"  make unrelated variants look associated); the mixed model with the GRM gives lambda_GC = {lam_mm:.2f}, and "
          f"the causal variant rs1 ranks {rank} of {len(r_mm)}")
    print(f"  (p = {r_mm.loc[r_mm['ID'] == 'rs1', 'P'].iloc[0]:.2g}). Step 1 with LOCO, step 2, and the logistic "
          f"comparison in {el:.1f} s; results in {folder / 'results.tsv.gz'}.")
    figs = []
    try:
        from .plots import manhattan, qq

        manhattan(r_mm, path=folder / "manhattan.png", title="Mixed model (LOCO)")
        qq([r_glm.loc[null_var, "P"], r_mm.loc[null_var, "P"]], labels=["logistic regression", "mixed model"],
           path=folder / "qq.png")
        figs = [str(folder / "manhattan.png"), str(folder / "qq.png")]
        print(f"  Figures: {', '.join(figs)}")
    except ImportError:
        print("  (install matplotlib for the Manhattan and QQ plots: pip install glmmkit[plots])")
    return {"lambda_logistic": lam_glm, "lambda_mixed": lam_mm, "rank_rs1": rank, "tau": mm.tau, "figures": figs}


def run_demo(out_dir: str | Path = "glmmkit-demo") -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print("glmmkit demo: generalized linear mixed models with lme4's formula language")
    results = {"birds": story_birds(out), "clinics": story_clinics(out), "mating": story_mating(out),
               "isolates": story_isolates(out), "cells": story_cells(out), "trials": story_trials(out),
               "gwas": story_gwas(out)}
    write_json(out / "demo_results.json", results)
    print()
    print(f"Results written to {out / 'demo_results.json'}")
    return results


