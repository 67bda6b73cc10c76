# Reference fits of glmmTMB's covariance structures (issue 20), with the real glmmTMB (Debian's r-cran-glmmtmb).
# Run from the repository root:  Rscript tests/reference/covstruct/make_covstruct.R
# Writes tests/reference/covstruct/refs.json and the seeded simulations (clinics.csv, visits.csv, ou.csv,
# spatial.csv). Each case gives logLik, fixed effects with SEs, sigma, glmmTMB's theta and, from VarCorr,
# the SDs and the correlation matrix of the structured term (the natural parameters are compared through them).
suppressMessages({library(glmmTMB); library(jsonlite); library(MASS)})
dir <- "tests/reference/covstruct"
shared <- "tests/reference/shared"

# ---- seeded simulations ----
set.seed(31)  # clinicians x months, sessions per opportunity: the mission's AR(1) story
nc <- 40; nm <- 12; rho <- 0.7; s <- 0.5
R <- rho^abs(outer(1:nm, 1:nm, "-"))
b <- mvrnorm(nc, rep(0, nm), s^2 * R)
clin <- expand.grid(month = 1:nm, clinic = sprintf("c%02d", 1:nc))
clin$x <- round(rnorm(nrow(clin)), 4); clin$opp <- sample(5:30, nrow(clin), replace = TRUE)
clin$sessions <- rpois(nrow(clin), clin$opp * exp(-1.5 + 0.3 * clin$x + b[cbind(as.integer(clin$clinic), clin$month)]))
write.csv(clin, file.path(dir, "clinics.csv"), row.names = FALSE)

set.seed(32)  # 6 visits per patient, Poisson, exchangeable-ish correlation with unequal SDs
np <- 60; nv <- 6
S <- diag(seq(0.4, 0.8, length = nv)) %*% (0.5 + 0.5 * diag(nv)) %*% diag(seq(0.4, 0.8, length = nv))
b <- mvrnorm(np, rep(0, nv), S)
vis <- expand.grid(visit = 1:nv, id = sprintf("p%02d", 1:np)); vis$x <- round(rnorm(nrow(vis)), 4)
vis$y <- rpois(nrow(vis), exp(1 + 0.25 * vis$x + b[cbind(as.integer(vis$id), vis$visit)]))
write.csv(vis, file.path(dir, "visits.csv"), row.names = FALSE)

set.seed(33)  # irregular times, OU process per subject, Gaussian
ns <- 30; times <- sort(unique(round(runif(15, 0, 20), 1)))
D <- abs(outer(times, times, "-")); b <- mvrnorm(ns, rep(0, length(times)), 0.8^2 * exp(-0.3 * D))
ou <- expand.grid(t = times, subject = sprintf("s%02d", 1:ns))
ou$y <- round(2 + 0.1 * ou$t + b[cbind(as.integer(ou$subject), match(ou$t, times))] + rnorm(nrow(ou), 0, 0.4), 5)
write.csv(ou, file.path(dir, "ou.csv"), row.names = FALSE)

set.seed(34)  # 50 positions, 3 counts each, exponential spatial field
npos <- 50; xy <- data.frame(px = round(runif(npos, 0, 10), 3), py = round(runif(npos, 0, 10), 3))
D <- as.matrix(dist(xy)); f <- mvrnorm(1, rep(0, npos), 0.6^2 * exp(-D / 2))
sp <- data.frame(px = rep(xy$px, each = 3), py = rep(xy$py, each = 3), site = rep(1:npos, each = 3))
sp$x <- round(rnorm(nrow(sp)), 4); sp$y <- rpois(nrow(sp), exp(1 + 0.3 * sp$x + f[sp$site])); sp$field <- "all"
write.csv(sp, file.path(dir, "spatial.csv"), row.names = FALSE)

sleep <- read.csv(file.path(shared, "sleepstudy_slopes", "data.csv")); sleep$Subject <- factor(sleep$Subject)
sal <- read.csv(file.path(shared, "salamanders_nb2", "data.csv"))
sal$spp <- factor(sal$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
sal$mined <- factor(sal$mined, levels = c("yes", "no"))

clin$clinic <- factor(clin$clinic); clin$month <- factor(clin$month)
vis$id <- factor(vis$id); vis$visit <- factor(vis$visit)
ou$subject <- factor(ou$subject); ou$times <- numFactor(ou$t)
sp$pos <- numFactor(sp$px, sp$py); sp$field <- factor(sp$field)
sleep$dayf <- factor(sleep$Days)

coefs <- function(m) {
  f <- fixef(m)$cond; v <- vcov(m)$cond
  setNames(lapply(seq_along(f), function(i) list(estimate = unname(f[i]), std_error = sqrt(v[i, i]))), names(f))
}
out <- list()
add <- function(name, call, m, group) {
  vc <- VarCorr(m)$cond[[group]]
  cr <- attr(vc, "correlation")
  out[[name]] <<- list(call = call, version = as.character(packageVersion("glmmTMB")),
                       loglik = as.numeric(logLik(m)), df = attr(logLik(m), "df"), fixef = coefs(m),
                       sigma = sigma(m), theta = unname(getME(m, "theta")),
                       sd = unname(attr(vc, "stddev")), corr = if (is.null(cr)) NULL else unname(cr),
                       convergence = m$fit$message, pdHess = m$sdr$pdHess,
                       time_s = attr(m, "time_s"))
  cat(name, as.numeric(logLik(m)), m$fit$message, "\n")
}
timed <- function(expr) { t <- system.time(m <- expr)[["elapsed"]]; attr(m, "time_s") <- t; m }

m <- timed(glmmTMB(sessions ~ x + offset(log(opp)) + ar1(0 + month | clinic), family = poisson, data = clin))
add("ar1_clinics", "glmmTMB(sessions ~ x + offset(log(opp)) + ar1(0 + month | clinic), family = poisson, data = clin)", m, "clinic")
# sleepstudy with ar1(0 + factor(Days) | Subject) is left out: glmmTMB 1.1.5 stops there with false convergence (8)
m <- timed(glmmTMB(y ~ x + cs(0 + visit | id), family = poisson, data = vis))
add("cs_visits", "glmmTMB(y ~ x + cs(0 + visit | id), family = poisson, data = vis)", m, "id")
m <- timed(glmmTMB(y ~ x + toep(0 + visit | id), family = poisson, data = vis))
add("toep_visits", "glmmTMB(y ~ x + toep(0 + visit | id), family = poisson, data = vis)", m, "id")
m <- timed(glmmTMB(y ~ t + ou(0 + times | subject), data = ou, REML = FALSE))
add("ou_irregular", "glmmTMB(y ~ t + ou(0 + numFactor(t) | subject), data = ou)", m, "subject")
m <- timed(glmmTMB(y ~ x + exp(0 + pos | field), family = poisson, data = sp))
add("exp_spatial", "glmmTMB(y ~ x + exp(0 + numFactor(px, py) | field), family = poisson, data = sp)", m, "field")
m <- timed(glmmTMB(y ~ x + gau(0 + pos | field), family = poisson, data = sp))
add("gau_spatial", "glmmTMB(y ~ x + gau(0 + numFactor(px, py) | field), family = poisson, data = sp)", m, "field")
m <- timed(glmmTMB(y ~ x + mat(0 + pos | field), family = poisson, data = sp))
add("mat_spatial", "glmmTMB(y ~ x + mat(0 + numFactor(px, py) | field), family = poisson, data = sp)", m, "field")
m <- timed(glmmTMB(count ~ mined + rr(0 + spp | site, d = 1), family = poisson, data = sal))
add("rr1_salamanders", "glmmTMB(count ~ mined + rr(0 + spp | site, d = 1), family = poisson, data = Salamanders)", m, "site")
m <- timed(glmmTMB(count ~ mined + rr(0 + spp | site, d = 2), family = poisson, data = sal))
add("rr2_salamanders", "glmmTMB(count ~ mined + rr(0 + spp | site, d = 2), family = poisson, data = Salamanders)", m, "site")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), file.path(dir, "refs.json"))
