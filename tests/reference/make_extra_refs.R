# Extra reference values computed with the real R packages (Debian's r-cran-* packages).
# Run from the repository root:  Rscript tests/reference/make_extra_refs.R
suppressMessages({library(glmmTMB); library(jsonlite)})
out <- list()
d <- read.csv("tests/reference/shared/gamma_log/data.csv")
m <- glmmTMB(y ~ x + (1 | g), family = Gamma(link = "log"), data = d)
out$gamma_log_glmmtmb <- list(
  call = "glmmTMB(y ~ x + (1 | g), family = Gamma(link = 'log'), data = gamma_log)",
  version = as.character(packageVersion("glmmTMB")),
  loglik = as.numeric(logLik(m)),
  fixef = as.list(fixef(m)$cond),
  se = as.list(sqrt(diag(vcov(m)$cond))),
  sd_g = attr(VarCorr(m)$cond$g, "stddev")[[1]],
  sigma = sigma(m))
s <- read.csv("tests/reference/shared/salamanders_poisson_olre/data.csv")
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

# ---- lme4 fits of further structures (appended to the same JSON) ----
suppressMessages(library(lme4))
out <- fromJSON("tests/reference/extra_refs.json", simplifyVector = FALSE)
fx <- function(m) { s <- summary(m)$coefficients; setNames(lapply(seq_len(nrow(s)), function(i) list(estimate = s[i, 1], std_error = s[i, 2])), rownames(s)) }
sds <- function(m) { v <- as.data.frame(VarCorr(m)); setNames(as.list(v$sdcor), paste(v$grp, v$var1, ifelse(is.na(v$var2), "", v$var2), sep = "|")) }
cbpp <- read.csv("tests/reference/shared/cbpp_binomial/data.csv"); cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
for (lk in c("probit", "cloglog")) {
  m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial(link = lk), data = cbpp)
  out[[paste0("cbpp_", lk)]] <- list(call = paste0("glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial(", lk, "), cbpp)"),
                                     loglik = as.numeric(logLik(m)), fixef = fx(m), sd = sds(m))
}
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = cbpp)
re <- ranef(m, condVar = TRUE)$herd
out$cbpp_ranef <- list(levels = rownames(re), estimate = re[, 1], condsd = sqrt(as.numeric(attr(re, "postVar"))))
ss <- read.csv("tests/reference/shared/sleepstudy_slopes/data.csv"); ss$Subject <- factor(ss$Subject)
m <- lmer(Reaction ~ Days + (Days | Subject), ss)
re <- ranef(m, condVar = TRUE)$Subject; pv <- attr(re, "postVar")
out$sleepstudy_ranef <- list(levels = rownames(re), intercept = re[, 1], days = re[, 2],
                             condsd_intercept = sqrt(pv[1, 1, ]), condsd_days = sqrt(pv[2, 2, ]))
cl <- read.csv("src/glmmkit/datasets/data/clinics.csv")
m <- glmer(sessions ~ training + offset(log(opportunities)) + (1 | clinic/clinician), family = poisson, data = cl)
out$clinics_nested <- list(call = "glmer(sessions ~ training + offset(log(opportunities)) + (1 | clinic/clinician), poisson, clinics)",
                           loglik = as.numeric(logLik(m)), fixef = fx(m), sd = sds(m))
cs <- read.csv("tests/reference/crossed_small.csv")
m <- glmer(y ~ x + (1 | g) + (1 | h), family = binomial, data = cs)
out$crossed_small <- list(call = "glmer(y ~ x + (1 | g) + (1 | h), binomial, crossed_small)", loglik = as.numeric(logLik(m)), fixef = fx(m), sd = sds(m))
m <- glmer(y ~ x + (1 + x | g) + (1 | h), family = binomial, data = cs)
out$crossed_slope_small <- list(call = "glmer(y ~ x + (1 + x | g) + (1 | h), binomial, crossed_small)", loglik = as.numeric(logLik(m)),
                                fixef = fx(m), sd = sds(m), warnings = m@optinfo$conv$lme4$messages)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/extra_refs.json")

# ---- zero-inflated GLMMs (glmmTMB), appended ----
out <- fromJSON("tests/reference/extra_refs.json", simplifyVector = FALSE)
s <- read.csv("tests/reference/shared/salamanders_poisson/data.csv")
s$spp <- factor(s$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
s$mined <- factor(s$mined, levels = c("yes", "no"))
zi <- function(m, call) list(call = call, loglik = as.numeric(logLik(m)),
  fixef = setNames(lapply(seq_along(fixef(m)$cond), function(i) list(estimate = unname(fixef(m)$cond[i]), std_error = unname(sqrt(diag(vcov(m)$cond))[i]))), names(fixef(m)$cond)),
  zi = setNames(lapply(seq_along(fixef(m)$zi), function(i) list(estimate = unname(fixef(m)$zi[i]), std_error = unname(sqrt(diag(vcov(m)$zi))[i]))), names(fixef(m)$zi)),
  sd_site = attr(VarCorr(m)$cond$site, "stddev")[[1]], dispersion = sigma(m))
m <- glmmTMB(count ~ mined + spp + (1 | site), zi = ~ mined, family = poisson, data = s)
out$zip_salamanders <- zi(m, "glmmTMB(count ~ mined + spp + (1 | site), zi = ~ mined, family = poisson, Salamanders)")
m <- glmmTMB(count ~ mined + spp + (1 | site), zi = ~ 1, family = nbinom2, data = s)
out$zinb2_salamanders <- zi(m, "glmmTMB(count ~ mined + spp + (1 | site), zi = ~ 1, family = nbinom2, Salamanders)")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/extra_refs.json")

# ---- meta-analysis (metafor rma.glmm / rma / rma.mh / rma.peto), appended ----
suppressMessages({library(metafor); library(lme4)})
out <- fromJSON("tests/reference/extra_refs.json", simplifyVector = FALSE)
glmm_ref <- function(r) list(estimate = unname(coef(r)), se = unname(r$se), tau2 = r$tau2, I2 = r$I2,
  QE_Wld = r$QE.Wld, QE_LRT = r$QE.LRT, loglik = as.numeric(logLik(r)), k = r$k)
ab <- read.csv("src/glmmkit/datasets/data/antibiotics.csv")
res <- list(call = "rma.glmm(measure = 'OR', ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = antibiotics, model = M)",
            version = as.character(packageVersion("metafor")))
for (M in c("UM.FS", "UM.RS", "CM.EL", "CM.AL"))
  res[[M]] <- glmm_ref(suppressWarnings(rma.glmm(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = ab, model = M)))
r <- rma(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = ab, method = "REML")
res$IV.REML <- list(estimate = unname(coef(r)), se = r$se, tau2 = r$tau2, I2 = r$I2, QE = r$QE, k = r$k)
r <- rma.mh(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = ab)
res$MH <- list(estimate = unname(coef(r)), se = r$se, QE = r$QE)
r <- rma.peto(ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = ab)
res$Peto <- list(estimate = unname(coef(r)), se = r$se, QE = r$QE)
out$meta_antibiotics <- res
# BCG: meta-regression, and the marginal log-likelihood of the nAGQ = 7 fits (lme4 + saturated constant)
b <- dat.bcg
res <- list(version = as.character(packageVersion("metafor")))
for (M in c("UM.FS", "CM.AL")) {  # CM.EL with a moderator: metafor's nlminb does not converge here
  r <- rma.glmm(measure = "OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, mods = ~ ablat, data = b, model = M)
  res[[paste0(M, "_ablat")]] <- glmm_ref(r)
}
k <- nrow(b)
yy <- cbind(c(rbind(b$tpos, b$cpos)), c(rbind(b$tneg, b$cneg)))
g1 <- rep(c(1, 0), k); g12 <- g1 - 0.5; st <- factor(rep(seq_len(k), each = 2))
m <- glmer(yy ~ -1 + g1 + st + (g12 - 1 | st), family = binomial, nAGQ = 7)
sat <- sum(dbinom(yy[, 1], rowSums(yy), yy[, 1] / rowSums(yy), log = TRUE))
res$UM.FS_marginal_loglik <- as.numeric(logLik(m)) + sat
y2 <- cbind(b$tpos, b$cpos); off <- log((b$tpos + b$tneg) / (b$cpos + b$cneg)); s2 <- factor(seq_len(k))
m <- glmer(y2 ~ 1 + (1 | s2), offset = off, family = binomial, nAGQ = 7)
res$CM.AL_marginal_loglik <- as.numeric(logLik(m)) + sum(dbinom(y2[, 1], rowSums(y2), y2[, 1] / rowSums(y2), log = TRUE))
r <- rma.glmm(measure = "PLO", xi = tpos, ni = tpos + tneg, data = b)
res$PLO <- glmm_ref(r)
h <- dat.hart1999
for (M in c("UM.FS", "UM.RS", "CM.EL")) {
  r <- rma.glmm(measure = "IRR", x1i = x1i, t1i = t1i, x2i = x2i, t2i = t2i, data = h, model = M)
  res[[paste0("IRR_", M)]] <- glmm_ref(r)
}
out$meta_bcg_extra <- res
write.csv(h[, c("trial", "x1i", "t1i", "x2i", "t2i")], "tests/reference/hart1999.csv", row.names = FALSE)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/extra_refs.json")

# ---- profile confidence intervals (lme4 confint(method = "profile")), appended ----
suppressMessages({library(lme4); library(jsonlite)})
out <- fromJSON("tests/reference/extra_refs.json", simplifyVector = FALSE)
ci_list <- function(ci) setNames(lapply(seq_len(nrow(ci)), function(i) unname(ci[i, ])), rownames(ci))
cb <- read.csv("tests/reference/shared/cbpp_binomial/data.csv"); cb$period <- factor(cb$period); cb$herd <- factor(cb$herd)
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = cb)
out$confint_cbpp <- list(call = "confint(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial, cbpp), method = 'profile')",
                         ci = ci_list(confint(m, method = "profile")), wald = ci_list(confint(m, method = "Wald")))
ss <- read.csv("tests/reference/shared/sleepstudy_slopes/data.csv"); ss$Subject <- factor(ss$Subject)
m <- lmer(Reaction ~ Days + (Days | Subject), data = ss, REML = FALSE)
out$confint_sleepstudy_ml <- list(call = "confint(lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE), method = 'profile')",
                                  ci = ci_list(confint(m, method = "profile")))
m <- lmer(Reaction ~ Days + (Days | Subject), data = ss)
out$confint_sleepstudy_reml <- list(call = "confint(lmer(Reaction ~ Days + (Days | Subject), sleepstudy), method = 'profile')",
                                    ci = ci_list(confint(m, method = "profile")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/extra_refs.json")

# ---- R^2 and ICC (performance::r2_nakagawa / icc), appended ----
suppressMessages({library(lme4); library(performance); library(jsonlite)})
out <- fromJSON("tests/reference/extra_refs.json", simplifyVector = FALSE)
r2ref <- function(m, call) {
  r <- r2_nakagawa(m); i <- icc(m)
  list(call = call, version = as.character(packageVersion("performance")),
       R2_marginal = unname(r$R2_marginal), R2_conditional = unname(r$R2_conditional), ICC = unname(i$ICC_adjusted))
}
ss <- read.csv("tests/reference/shared/sleepstudy_slopes/data.csv"); ss$Subject <- factor(ss$Subject)
out$r2_sleepstudy <- r2ref(lmer(Reaction ~ Days + (Days | Subject), data = ss),
                           "lmer(Reaction ~ Days + (Days | Subject), sleepstudy)")
bd <- read.csv("src/glmmkit/datasets/data/birds.csv"); bd$season <- factor(bd$season, levels = c("early", "late"))
out$r2_birds <- r2ref(glmer(attack ~ testosterone + season + (1 | bird), family = binomial, data = bd),
                      "glmer(attack ~ testosterone + season + (1 | bird), binomial, birds)")
sa <- read.csv("tests/reference/shared/salamanders_poisson/data.csv")
sa$spp <- factor(sa$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF")); sa$mined <- factor(sa$mined, levels = c("yes", "no"))
out$r2_salamanders_poisson <- r2ref(glmer(count ~ mined + spp + (1 | site), family = poisson, data = sa),
                                    "glmer(count ~ mined + spp + (1 | site), poisson, Salamanders)")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/extra_refs.json")
