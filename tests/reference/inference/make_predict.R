# Reference prediction standard errors (issue 21) from the real glmmTMB (Debian's r-cran-glmmtmb):
# predict(fit, newdata, re.form = NULL | NA, se.fit = TRUE, type = "link" | "response").
# Run from the repository root:  Rscript tests/reference/inference/make_predict.R
# Writes tests/reference/inference/predict_refs.json.
suppressMessages({library(glmmTMB); library(jsonlite)})
dir <- "tests/reference/inference"
shared <- "tests/reference/shared"

sleep <- read.csv(file.path(shared, "sleepstudy_slopes", "data.csv"))
sleep$Subject <- factor(sleep$Subject)
cbpp <- read.csv(file.path(shared, "cbpp_binomial", "data.csv"))
cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
sal <- read.csv(file.path(shared, "salamanders_poisson", "data.csv"))
sal$spp <- factor(sal$spp, levels = sort(unique(sal$spp))); sal$mined <- factor(sal$mined); sal$site <- factor(sal$site)

preds <- function(m, newdata) {
  out <- list()
  for (re in c("conditional", "population")) for (type in c("link", "response")) {
    p <- predict(m, newdata = newdata, re.form = if (re == "population") NA else NULL, se.fit = TRUE, type = type)
    out[[paste(re, type, sep = "_")]] <- list(fit = unname(p$fit), se_fit = unname(p$se.fit))
  }
  out
}
new_sleep <- data.frame(Days = c(0, 3, 9, 0, 5, 9), Subject = factor(c("308", "308", "308", "335", "335", "372")))
new_cbpp <- data.frame(period = factor(c("1", "2", "3", "4", "1")), herd = factor(c("1", "1", "5", "9", "15")), size = 1)
new_sal <- data.frame(mined = factor(c("yes", "no", "no")), spp = factor(c("GP", "DM", "EC-L"), levels = levels(sal$spp)),
                      site = factor(c("VF-1", "R-1", "VF-2"), levels = levels(sal$site)))
m_sleep <- glmmTMB(Reaction ~ Days + (Days | Subject), data = sleep)
m_cbpp <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
m_sal <- glmmTMB(count ~ mined + spp + (1 | site), data = sal, family = poisson)
refs <- list(
  sleepstudy = list(formula = "Reaction ~ Days + (Days | Subject)", data = "sleepstudy_slopes", family = "gaussian",
                    logLik = as.numeric(logLik(m_sleep)), newdata = new_sleep, predict = preds(m_sleep, new_sleep)),
  cbpp = list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "cbpp_binomial",
              family = "binomial", logLik = as.numeric(logLik(m_cbpp)), newdata = new_cbpp, predict = preds(m_cbpp, new_cbpp)),
  salamanders = list(formula = "count ~ mined + spp + (1 | site)", data = "salamanders_poisson", family = "poisson",
                     logLik = as.numeric(logLik(m_sal)), newdata = new_sal, predict = preds(m_sal, new_sal))
)
writeLines(toJSON(refs, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(dir, "predict_refs.json"))
cat("wrote", file.path(dir, "predict_refs.json"), "\n")
