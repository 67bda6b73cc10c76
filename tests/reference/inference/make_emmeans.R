# Reference values for marginal means, contrasts and GLMM anova tables (issue 21) from the real emmeans,
# car and lme4 (Debian's r-cran-emmeans, r-cran-car, r-cran-lme4). Run from the repository root:
#   Rscript tests/reference/inference/make_emmeans.R
# Writes tests/reference/inference/emmeans_refs.json. GLMM cases carry lme4's fixed effects and vcov, so that
# the tests can check the algebra of means, contrasts and Wald tables at lme4's own estimates.
suppressMessages({library(lme4); library(emmeans); library(car); library(jsonlite)})
dir <- "tests/reference/inference"
shared <- "tests/reference/shared"

oats <- read.csv(file.path(dir, "oats.csv"), stringsAsFactors = TRUE)
sleep <- read.csv(file.path(shared, "sleepstudy_slopes", "data.csv"), stringsAsFactors = TRUE)
cbpp <- read.csv(file.path(shared, "cbpp_binomial", "data.csv"))
cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
sal <- read.csv(file.path(shared, "salamanders_poisson", "data.csv"))
# levels in sorted order, as pandas and formulaic take them
sal$spp <- factor(sal$spp, levels = sort(unique(sal$spp))); sal$mined <- factor(sal$mined); sal$site <- factor(sal$site)

tab <- function(x) {
  d <- as.data.frame(summary(x, infer = c(TRUE, TRUE)))
  lapply(seq_len(nrow(d)), function(i) as.list(d[i, ]))
}
emm_case <- function(m, specs, by = NULL, type = "link", at = NULL, contrasts = list(), lmer.df = NULL) {
  args <- list(m, specs = specs, by = by, type = type)
  if (!is.null(at)) args$at <- at
  if (!is.null(lmer.df)) args$lmer.df <- lmer.df
  e <- do.call(emmeans, args)
  out <- list(specs = specs, by = by, type = type, at = at, lmer.df = lmer.df, means = tab(e), contrasts = list())
  for (ct in contrasts) {
    cc <- contrast(e, method = ct$method, adjust = ct$adjust, type = type)
    out$contrasts[[length(out$contrasts) + 1]] <- list(method = ct$method, adjust = ct$adjust, table = tab(cc))
  }
  out
}
anova_car <- function(m, type) {
  a <- Anova(m, type = type)
  setNames(lapply(rownames(a), function(r) list(chisq = a[r, "Chisq"], df = a[r, "Df"], p = a[r, "Pr(>Chisq)"])),
           rownames(a))
}

m_oats <- lmer(Y ~ N * V + (1 | B / V), data = oats)
m_sleep <- lmer(Reaction ~ Days + (Days | Subject), data = sleep)
m_cbpp <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
m_sal <- glmer(count ~ mined + spp + (1 | site), data = sal, family = poisson)
options(contrasts = c("contr.sum", "contr.poly"))
m_sal_int <- glmer(count ~ mined * spp + (1 | site), data = sal, family = poisson)
options(contrasts = c("contr.treatment", "contr.poly"))

refs <- list(
  oats = list(formula = "Y ~ N * V + (1 | B / V)", data = "oats.csv", family = "gaussian", logLik = as.numeric(logLik(m_oats)),
    emmeans = list(
      emm_case(m_oats, "N", contrasts = list(list(method = "pairwise", adjust = "tukey"),
                                            list(method = "trt.vs.ctrl", adjust = "holm"),
                                            list(method = "consec", adjust = "bonferroni"))),
      emm_case(m_oats, "N", lmer.df = "satterthwaite", contrasts = list(list(method = "pairwise", adjust = "tukey"))),
      emm_case(m_oats, "N", by = "V", contrasts = list(list(method = "pairwise", adjust = "tukey"))),
      emm_case(m_oats, "V", contrasts = list(list(method = "pairwise", adjust = "none"))))),
  sleepstudy = list(formula = "Reaction ~ Days + (Days | Subject)", data = "SHARED:sleepstudy_slopes", family = "gaussian",
    logLik = as.numeric(logLik(m_sleep)),
    emmeans = list(emm_case(m_sleep, "Days", at = list(Days = c(0, 4.5, 9)),
                            contrasts = list(list(method = "pairwise", adjust = "tukey"))))),
  cbpp = list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "SHARED:cbpp_binomial",
    family = "binomial", logLik = as.numeric(logLik(m_cbpp)), beta = unname(fixef(m_cbpp)),
    vcov = unname(as.matrix(vcov(m_cbpp))),
    emmeans = list(
      emm_case(m_cbpp, "period", contrasts = list(list(method = "pairwise", adjust = "tukey"))),
      emm_case(m_cbpp, "period", type = "response", contrasts = list(list(method = "pairwise", adjust = "tukey"),
                                                                    list(method = "trt.vs.ctrl", adjust = "bonferroni")))),
    anova = list(`2` = anova_car(m_cbpp, 2), `3` = anova_car(m_cbpp, 3))),
  salamanders = list(formula = "count ~ mined + spp + (1 | site)", data = "SHARED:salamanders_poisson", family = "poisson",
    logLik = as.numeric(logLik(m_sal)), beta = unname(fixef(m_sal)), vcov = unname(as.matrix(vcov(m_sal))),
    emmeans = list(
      emm_case(m_sal, "spp", type = "response", contrasts = list(list(method = "pairwise", adjust = "tukey"))),
      emm_case(m_sal, "mined", type = "response", contrasts = list(list(method = "pairwise", adjust = "none"))))),
  salamanders_interaction = list(formula = "count ~ C(mined, contr.sum) * C(spp, contr.sum) + (1 | site)",
    data = "SHARED:salamanders_poisson", family = "poisson", logLik = as.numeric(logLik(m_sal_int)),
    beta = unname(fixef(m_sal_int)), vcov = unname(as.matrix(vcov(m_sal_int))),
    anova = list(`2` = anova_car(m_sal_int, 2), `3` = anova_car(m_sal_int, 3)))
)
writeLines(toJSON(refs, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), file.path(dir, "emmeans_refs.json"))
cat("wrote", file.path(dir, "emmeans_refs.json"), "\n")
