# Reference fits of zero models with random effects (issue 20: ziformula = ~ x + (1 | g)), with the real glmmTMB
# (Debian's r-cran-glmmtmb). Run from the repository root:  Rscript tests/reference/families/make_zi_re.R
# Writes tests/reference/families/zi_re_refs.json and the seeded simulation zi_re_sim.csv.
suppressMessages({library(glmmTMB); library(jsonlite)})
dir <- "tests/reference/families"
shared <- "tests/reference/shared"

set.seed(22)
ng <- 40; n <- 800
g <- factor(sprintf("g%02d", sample(ng, n, replace = TRUE))); x <- round(rnorm(n), 4)
bc <- rnorm(ng, 0, 0.5); bz <- rnorm(ng, 0, 1)
mu <- exp(0.5 + 0.4 * x + bc[g]); pz <- plogis(-0.5 + 0.3 * x + bz[g])
sim <- data.frame(g = g, x = x, y = ifelse(runif(n) < pz, 0, rpois(n, mu)))
write.csv(sim, file.path(dir, "zi_re_sim.csv"), row.names = FALSE)

sal <- read.csv(file.path(shared, "salamanders_nb2", "data.csv"))
sal$spp <- factor(sal$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
sal$mined <- factor(sal$mined, levels = c("yes", "no"))
owls <- read.csv(file.path(shared, "owls_offset", "data.csv"))

coefs <- function(m, part) {
  f <- fixef(m)[[part]]; v <- vcov(m)[[part]]
  if (length(f) == 0) return(NULL)
  setNames(lapply(seq_along(f), function(i) list(estimate = unname(f[i]), std_error = sqrt(v[i, i]))), names(f))
}
sds <- function(m, part) {
  vc <- VarCorr(m)[[part]]; out <- list()
  for (grp in names(vc)) {
    s <- attr(vc[[grp]], "stddev"); for (nm in names(s)) out[[paste(grp, nm, sep = "|")]] <- unname(s[nm])
    cr <- attr(vc[[grp]], "correlation")
    if (!is.null(cr) && nrow(cr) > 1) out[[paste(grp, "corr", sep = "|")]] <- cr[2, 1]
  }
  out
}
out <- list()
# population-level zero probabilities (b = 0) come from predict() at a new level (allow.new.levels = TRUE):
# glmmTMB 1.1.5's predict(type = "zprob", re.form = NA) on these fits is neither plogis(X_zi gamma) nor the
# conditional value (on zi_re_sim row 1: 0.1569 against 0.2708 and 0.1439)
add <- function(key, call, m, nd, group) {
  nd0 <- nd; nd0[[group]] <- NA
  t <- attr(m, "time_s")
  out[[key]] <<- list(call = call, version = as.character(packageVersion("glmmTMB")), loglik = as.numeric(logLik(m)),
                      df = attr(logLik(m), "df"), fixef = coefs(m, "cond"), zi = coefs(m, "zi"),
                      sd = sds(m, "cond"), zi_sd = sds(m, "zi"), sigma = sigma(m), convergence = m$fit$message,
                      pdHess = m$sdr$pdHess, time_s = t,
                      predict_response = unname(predict(m, newdata = nd, type = "response")),
                      predict_zprob = unname(predict(m, newdata = nd, type = "zprob")),
                      predict_zprob_pop = unname(predict(m, newdata = nd0, type = "zprob", allow.new.levels = TRUE)))
}
timed <- function(expr) { t <- system.time(m <- expr)[["elapsed"]]; attr(m, "time_s") <- t; m }

m <- timed(glmmTMB(y ~ x + (1 | g), zi = ~ x + (1 | g), family = poisson, data = sim))
add("zipoisson_re_sim", "glmmTMB(y ~ x + (1 | g), zi = ~ x + (1 | g), family = poisson, data = zi_re_sim)", m, sim[c(1, 2, 3), ], "g")
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 | site), family = poisson, data = sal))
add("zipoisson_re_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 | site), family = poisson, data = Salamanders)", m, sal[c(1, 100, 300), ], "site")
# (nbinom2 with zi = ~ mined + (1 | site) on Salamanders ends in glmmTMB's "false convergence (8)" with no logLik:
#  the Owls data carry the zero-inflated NB2 case instead)
m <- timed(glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest),
                   zi = ~ 1 + (1 | Nest), family = nbinom2, data = owls))
add("zinbinom2_re_owls", "glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), zi = ~ 1 + (1 | Nest), family = nbinom2, data = Owls)", m, owls[c(1, 100, 300), ], "Nest")
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 | site), family = truncated_nbinom2, data = sal))
add("hurdle_nbinom2_re_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 | site), family = truncated_nbinom2, data = Salamanders)", m, sal[c(1, 100, 300), ], "site")
m <- timed(glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest),
                   zi = ~ 1 + (1 | Nest), family = poisson, data = owls))
add("zipoisson_re_owls", "glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), zi = ~ 1 + (1 | Nest), family = poisson, data = Owls)", m, owls[c(1, 100, 300), ], "Nest")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), file.path(dir, "zi_re_refs.json"))
