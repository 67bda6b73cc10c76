# Reference fits of glmmTMB's further families (issue 20), with the real glmmTMB (Debian's r-cran-glmmtmb).
# Run from the repository root:  Rscript tests/reference/families/make_families.R
# Writes tests/reference/families/refs.json and the simulated data sets (beta.csv, tweedie.csv).
suppressMessages({library(glmmTMB); library(jsonlite)})
dir <- "tests/reference/families"
shared <- "tests/reference/shared"

# ---- simulated data where no real data set fits (seeded) ----
set.seed(20)
n <- 600; ng <- 30
g <- factor(rep(sprintf("g%02d", 1:ng), each = n / ng)); x <- round(rnorm(n), 4); b <- rnorm(ng, 0, 0.5)
mu <- plogis(0.2 + 0.6 * x + b[g]); phi <- 12
beta <- data.frame(g = g, x = x, y = signif(rbeta(n, mu * phi, (1 - mu) * phi), 8))
write.csv(beta, file.path(dir, "beta.csv"), row.names = FALSE)
set.seed(21)
mu <- exp(0.5 + 0.4 * x + b[g]); p <- 1.6; disp <- 1.3
lambda <- mu^(2 - p) / (disp * (2 - p)); N <- rpois(n, lambda)
shape <- (2 - p) / (p - 1); scale <- disp * (p - 1) * mu^(p - 1)
ytw <- ifelse(N > 0, rgamma(n, shape = N * shape, scale = scale), 0)
twd <- data.frame(g = g, x = x, y = signif(ytw, 8))
write.csv(twd, file.path(dir, "tweedie.csv"), row.names = FALSE)

sal <- read.csv(file.path(shared, "salamanders_nb2", "data.csv"))
sal$spp <- factor(sal$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
sal$mined <- factor(sal$mined, levels = c("yes", "no"))
owls <- read.csv(file.path(shared, "owls_offset", "data.csv"))
cbpp <- read.csv(file.path(shared, "cbpp_binomial", "data.csv")); cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
sleep <- read.csv(file.path(shared, "sleepstudy_slopes", "data.csv")); sleep$Subject <- factor(sleep$Subject)
gam <- read.csv(file.path(shared, "gamma_log", "data.csv"))

coefs <- function(m, part) {
  f <- fixef(m)[[part]]; v <- vcov(m)[[part]]
  if (length(f) == 0) return(NULL)
  setNames(lapply(seq_along(f), function(i) list(estimate = unname(f[i]), std_error = sqrt(v[i, i]))), names(f))
}
sds <- function(m) {
  vc <- VarCorr(m)$cond; out <- list()
  for (grp in names(vc)) {
    s <- attr(vc[[grp]], "stddev"); for (nm in names(s)) out[[paste(grp, nm, sep = "|")]] <- unname(s[nm])
    cr <- attr(vc[[grp]], "correlation")
    if (!is.null(cr) && nrow(cr) > 1) out[[paste(grp, "corr", sep = "|")]] <- cr[2, 1]
  }
  out
}
case <- function(call, m, extra = list()) {
  c(list(call = call, version = as.character(packageVersion("glmmTMB")), loglik = as.numeric(logLik(m)),
         df = attr(logLik(m), "df"), fixef = coefs(m, "cond"), zi = coefs(m, "zi"), sd = sds(m),
         sigma = sigma(m), convergence = m$fit$message, pdHess = m$sdr$pdHess), extra)
}
timed <- function(expr) { t <- system.time(m <- expr)[["elapsed"]]; attr(m, "time_s") <- t; m }
out <- list()
add <- function(name, call, m, extra = list()) {
  out[[name]] <<- c(case(call, m, extra), list(time_s = attr(m, "time_s")))
  cat(name, as.numeric(logLik(m)), "\n")
}

m <- timed(glmmTMB(y ~ x + (1 | g), family = beta_family(), data = beta))
add("beta_sim", "glmmTMB(y ~ x + (1 | g), family = beta_family(), data = beta)", m)
m <- timed(glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cbpp))
add("betabinomial_cbpp", "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cbpp)", m)
m <- timed(glmmTMB(Reaction ~ Days + (Days | Subject), family = t_family, data = sleep))
add("t_sleepstudy", "glmmTMB(Reaction ~ Days + (Days | Subject), family = t_family, data = sleepstudy)", m,
    list(df_t = exp(unname(m$fit$par[["psi"]]))))
m <- timed(glmmTMB(y ~ x + (1 | g), family = tweedie(), data = twd))
add("tweedie_sim", "glmmTMB(y ~ x + (1 | g), family = tweedie, data = tweedie)", m,
    list(power = 1 + plogis(unname(m$fit$par[["psi"]]))))
m <- timed(glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), family = genpois, data = owls))
add("genpois_owls", "glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), family = genpois, data = Owls)", m)
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), family = compois, data = sal))
add("compois_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), family = compois, data = Salamanders)", m)
pos <- subset(sal, count > 0)
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), family = truncated_poisson, data = pos))
add("truncated_poisson_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), family = truncated_poisson, data = subset(Salamanders, count > 0))", m)
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), family = truncated_nbinom1, data = pos))
add("truncated_nbinom1_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), family = truncated_nbinom1, data = subset(Salamanders, count > 0))", m)
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), zi = ~ spp + mined, family = truncated_nbinom2, data = sal))
nd <- sal[c(1, 100, 300), ]
add("hurdle_nbinom2_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), zi = ~ spp + mined, family = truncated_nbinom2, data = Salamanders)", m,
    list(predict_rows = c(1, 100, 300),
         predict_response = unname(predict(m, newdata = nd, type = "response")),
         predict_conditional = unname(predict(m, newdata = nd, type = "conditional")),
         predict_zprob = unname(predict(m, newdata = nd, type = "zprob"))))
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined, family = nbinom1, data = sal))
add("zinbinom1_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined, family = nbinom1, data = Salamanders)", m)
m <- timed(glmmTMB(Reaction ~ Days + (1 | Subject), family = gaussian(link = "log"), data = sleep))
add("gaussian_log_sleepstudy", "glmmTMB(Reaction ~ Days + (1 | Subject), family = gaussian(link = 'log'), data = sleepstudy)", m)
m <- timed(glmmTMB(y ~ x + (1 | g), family = Gamma(link = "identity"), data = gam))
add("gamma_identity", "glmmTMB(y ~ x + (1 | g), family = Gamma(link = 'identity'), data = gamma_log)", m)
# ---- dispersion models (dispformula) ----
dispcoefs <- function(m) coefs(m, "disp")
m <- timed(glmmTMB(Reaction ~ Days + (1 | Subject), dispformula = ~ Days, data = sleep))
add("gaussian_disp_sleepstudy", "glmmTMB(Reaction ~ Days + (1 | Subject), dispformula = ~ Days, data = sleepstudy)", m,
    list(disp = dispcoefs(m)))
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), dispformula = ~ mined, family = nbinom2, data = sal))
add("nbinom2_disp_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), dispformula = ~ mined, family = nbinom2, data = Salamanders)", m,
    list(disp = dispcoefs(m)))
m <- timed(glmmTMB(y ~ x + (1 | g), dispformula = ~ x, family = beta_family(), data = beta))
add("beta_disp_sim", "glmmTMB(y ~ x + (1 | g), dispformula = ~ x, family = beta_family(), data = beta)", m,
    list(disp = dispcoefs(m)))
m <- timed(glmmTMB(y ~ x + (1 | g), dispformula = ~ x, family = Gamma(link = "log"), data = gam))
add("gamma_disp", "glmmTMB(y ~ x + (1 | g), dispformula = ~ x, family = Gamma(link = 'log'), data = gamma_log)", m,
    list(disp = dispcoefs(m)))
m <- timed(glmmTMB(count ~ spp + mined + (1 | site), dispformula = ~ mined, family = compois, data = sal))
add("compois_disp_salamanders", "glmmTMB(count ~ spp + mined + (1 | site), dispformula = ~ mined, family = compois, data = Salamanders)", m,
    list(disp = dispcoefs(m)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), file.path(dir, "refs.json"))
