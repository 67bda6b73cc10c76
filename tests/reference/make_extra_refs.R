# Extra reference values computed with the real R packages (Debian's r-cran-* packages).
# Run from the repository root:  Rscript tests/reference/make_extra_refs.R
suppressMessages({library(glmmTMB); library(jsonlite)})
out <- list()
d <- read.csv("../shared/reference/gamma_log/data.csv")
m <- glmmTMB(y ~ x + (1 | g), family = Gamma(link = "log"), data = d)
out$gamma_log_glmmtmb <- list(
  call = "glmmTMB(y ~ x + (1 | g), family = Gamma(link = 'log'), data = gamma_log)",
  version = as.character(packageVersion("glmmTMB")),
  loglik = as.numeric(logLik(m)),
  fixef = as.list(fixef(m)$cond),
  se = as.list(sqrt(diag(vcov(m)$cond))),
  sd_g = attr(VarCorr(m)$cond$g, "stddev")[[1]],
  sigma = sigma(m))
s <- read.csv("../shared/reference/salamanders_poisson_olre/data.csv")
s$spp <- factor(s$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
s$mined <- factor(s$mined, levels = c("yes", "no"))
s$obs <- factor(s$obs)
m <- glmmTMB(count ~ mined + spp + (1 | site) + (1 | obs), family = poisson, data = s)
out$salamanders_olre_glmmtmb <- list(
  call = "glmmTMB(count ~ mined + spp + (1 | site) + (1 | obs), family = poisson, data = Salamanders)",
  version = as.character(packageVersion("glmmTMB")),
  loglik = as.numeric(logLik(m)),
  fixef = as.list(fixef(m)$cond),
  se = as.list(sqrt(diag(vcov(m)$cond))),
  sd_site = attr(VarCorr(m)$cond$site, "stddev")[[1]],
  sd_obs = attr(VarCorr(m)$cond$obs, "stddev")[[1]])
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/extra_refs.json")
