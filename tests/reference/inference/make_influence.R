# Reference leave-one-group-out influence (issue 21) from the real lme4 (Debian's r-cran-lme4):
# influence.merMod(fit, groups = ...), its dfbeta and cooks.distance. Run from the repository root:
#   Rscript tests/reference/inference/make_influence.R
# Writes tests/reference/inference/influence_refs.json.
suppressMessages({library(lme4); library(jsonlite)})
dir <- "tests/reference/inference"
shared <- "tests/reference/shared"
sleep <- read.csv(file.path(shared, "sleepstudy_slopes", "data.csv")); sleep$Subject <- factor(sleep$Subject)
cbpp <- read.csv(file.path(shared, "cbpp_binomial", "data.csv")); cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)

case <- function(m, groups, formula, data, family) {
  inf <- influence(m, groups = groups)
  db <- dfbeta(inf)
  list(formula = formula, data = data, family = family, groups = groups, deleted = as.character(inf$deleted),
       dfbeta = unname(db), fixef_deleted = unname(inf[[paste0("fixed.effects[-", groups, "]")]]),
       cooks = unname(cooks.distance(inf)), fixef_names = names(fixef(m)))
}
m_sleep <- lmer(Reaction ~ Days + (Days | Subject), data = sleep)
m_cbpp <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
refs <- list(sleepstudy = case(m_sleep, "Subject", "Reaction ~ Days + (Days | Subject)", "sleepstudy_slopes", "gaussian"),
             cbpp = case(m_cbpp, "herd", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp_binomial", "binomial"))
writeLines(toJSON(refs, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(dir, "influence_refs.json"))
cat("wrote", file.path(dir, "influence_refs.json"), "\n")
