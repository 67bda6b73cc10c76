# Reference fits of cumulative-link mixed models (issue 20) with ordinal::clmm (Debian's r-cran-ordinal).
# Run from the repository root:  Rscript tests/reference/ordinal/make_clmm.R
# Writes tests/reference/ordinal/wine.csv (ordinal's wine data) and refs.json.
suppressMessages({library(ordinal); library(jsonlite)})
dir <- "tests/reference/ordinal"
data(wine)
write.csv(data.frame(rating = as.integer(as.character(wine$rating)), temp = wine$temp, contact = wine$contact,
                     bottle = wine$bottle, judge = wine$judge), file.path(dir, "wine.csv"), row.names = FALSE)
out <- list()
add <- function(name, call, m) {
  V <- vcov(m); se <- sqrt(diag(V))
  out[[name]] <<- list(call = call, version = as.character(packageVersion("ordinal")),
                       loglik = as.numeric(logLik(m)), df = attr(logLik(m), "df"),
                       beta = as.list(m$beta), beta_se = as.list(se[names(m$beta)]),
                       alpha = as.list(m$alpha), alpha_se = as.list(se[names(m$alpha)]),
                       sd = lapply(VarCorr(m), function(v) unname(attr(v, "stddev"))),
                       convergence = m$optRes$convergence, time_s = attr(m, "time_s"))
  cat(name, as.numeric(logLik(m)), "\n")
}
timed <- function(expr) { t <- system.time(m <- expr)[["elapsed"]]; attr(m, "time_s") <- t; m }
m <- timed(clmm(rating ~ temp + contact + (1 | judge), data = wine))
add("wine_logit", "clmm(rating ~ temp + contact + (1 | judge), data = wine)", m)
m <- timed(clmm(rating ~ temp + contact + (1 | judge), data = wine, link = "probit"))
add("wine_probit", "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'probit')", m)
m <- timed(clmm(rating ~ temp + contact + (1 | judge), data = wine, nAGQ = 10))
add("wine_logit_agq10", "clmm(rating ~ temp + contact + (1 | judge), data = wine, nAGQ = 10)", m)
m <- timed(clmm(rating ~ temp * contact + (1 | judge) + (1 | bottle), data = wine))
add("wine_crossed", "clmm(rating ~ temp * contact + (1 | judge) + (1 | bottle), data = wine)", m)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(dir, "refs.json"))
