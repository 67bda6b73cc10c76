# Reference fits of GLMM REML (glmmTMB's REML = TRUE; issue 20) with glmmTMB 1.1.5 (Debian's r-cran-glmmtmb).
# Run from the repository root:  Rscript tests/reference/reml/make_reml.R   ->  tests/reference/reml/refs.json
suppressMessages({library(glmmTMB); library(jsonlite)})
shared <- "tests/reference/shared"
cbpp <- read.csv(file.path(shared, "cbpp_binomial", "data.csv")); cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
sal <- read.csv(file.path(shared, "salamanders_nb2", "data.csv"))
sal$spp <- factor(sal$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
sal$mined <- factor(sal$mined, levels = c("yes", "no"))
sleep <- read.csv(file.path(shared, "sleepstudy_slopes", "data.csv")); sleep$Subject <- factor(sleep$Subject)
out <- list()
add <- function(name, call, m) {
  f <- fixef(m)$cond; v <- vcov(m)$cond
  vc <- VarCorr(m)$cond; sds <- list()
  for (g in names(vc)) { s <- attr(vc[[g]], "stddev"); for (nm in names(s)) sds[[paste(g, nm, sep = "|")]] <- unname(s[nm]) }
  out[[name]] <<- list(call = call, version = as.character(packageVersion("glmmTMB")), loglik = as.numeric(logLik(m)),
                       fixef = as.list(f), se = as.list(sqrt(diag(v))), sd = sds, sigma = sigma(m),
                       theta = unname(getME(m, "theta")), convergence = m$fit$message, pdHess = m$sdr$pdHess)
  cat(name, as.numeric(logLik(m)), "\n")
}
m <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = cbpp, REML = TRUE)
add("cbpp_binomial", "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial, cbpp, REML = TRUE)", m)
m <- glmmTMB(count ~ mined + spp + (1 | site), family = poisson, data = sal, REML = TRUE)
add("salamanders_poisson", "glmmTMB(count ~ mined + spp + (1 | site), poisson, Salamanders, REML = TRUE)", m)
m <- glmmTMB(count ~ mined + spp + (1 | site), family = nbinom2, data = sal, REML = TRUE)
add("salamanders_nbinom2", "glmmTMB(count ~ mined + spp + (1 | site), nbinom2, Salamanders, REML = TRUE)", m)
m <- glmmTMB(Reaction ~ Days + (Days | Subject), data = sleep, REML = TRUE)
add("sleepstudy_gaussian", "glmmTMB(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)", m)
m <- glmmTMB(Reaction ~ Days + (1 | Subject), dispformula = ~ Days, data = sleep, REML = TRUE)
add("sleepstudy_gaussian_disp", "glmmTMB(Reaction ~ Days + (1 | Subject), dispformula = ~ Days, sleepstudy, REML = TRUE)", m)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/reml/refs.json")
