# Reference values for LMM inference (issue 21) from the real lmerTest 3.1 and pbkrtest 0.5 (Debian's
# r-cran-lmertest, r-cran-pbkrtest). Run from the repository root:
#   Rscript tests/reference/inference/make_lmertest.R
# Writes tests/reference/inference/lmertest_refs.json and the data sets it used (CSV, beside it).
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
dir <- "tests/reference/inference"

data("sleepstudy", package = "lme4"); data("Penicillin", package = "lme4"); data("cake", package = "lme4")
data("Oats", package = "nlme")
# nlme's Oats (Yates's split plot): Block / Variety main plots, nitrogen on the subplots
oats <- data.frame(Y = Oats$yield, B = factor(as.character(Oats$Block)), V = factor(as.character(Oats$Variety)),
                   nitro = Oats$nitro)
oats$N <- factor(paste0("n", oats$nitro))
cake <- as.data.frame(cake); cake$recipe <- factor(cake$recipe); cake$temperature <- factor(as.character(cake$temperature))
cake$replicate <- factor(cake$replicate)
pen <- as.data.frame(Penicillin)
# an unbalanced split plot with a covariate-by-factor interaction: rows removed at random
set.seed(21)
oats_unb <- oats[-sample(nrow(oats), 9), ]
sleep <- as.data.frame(sleepstudy)
sleep$grp <- factor(ifelse(as.integer(as.character(sleep$Subject)) %% 2 == 0, "even", "odd"))
sleep_unb <- sleep[-seq(3, nrow(sleep), by = 7), ]

write.csv(oats, file.path(dir, "oats.csv"), row.names = FALSE)
write.csv(oats_unb, file.path(dir, "oats_unbalanced.csv"), row.names = FALSE)
write.csv(cake, file.path(dir, "cake.csv"), row.names = FALSE)
write.csv(pen, file.path(dir, "penicillin.csv"), row.names = FALSE)
write.csv(sleep_unb, file.path(dir, "sleep_unbalanced.csv"), row.names = FALSE)

coef_rows <- function(m, ddf) {
  s <- summary(m, ddf = ddf)$coefficients
  setNames(lapply(rownames(s), function(r) list(estimate = s[r, "Estimate"], std_error = s[r, "Std. Error"],
    df = s[r, "df"], t = s[r, "t value"], p = s[r, "Pr(>|t|)"])), rownames(s))
}
anova_rows <- function(m, type, ddf) {
  a <- anova(m, type = type, ddf = ddf)
  setNames(lapply(rownames(a), function(r) list(F = a[r, "F value"], num_df = a[r, "NumDF"],
    den_df = a[r, "DenDF"], p = a[r, "Pr(>F)"])), rownames(a))
}
case <- function(formula, data, csv, reml = TRUE, contrasts = NULL, kr = TRUE) {
  if (!is.null(contrasts)) for (v in names(contrasts)) contrasts(data[[v]]) <- contrasts[[v]]
  # the data inlined in the call: lmerTest and pbkrtest re-evaluate it (update) outside this function
  m <- eval(bquote(lmer(.(as.formula(formula)), data = .(data), REML = .(reml))))
  out <- list(formula = formula, data = csv, reml = reml, contrasts = contrasts, logLik = as.numeric(logLik(m)),
              satterthwaite = coef_rows(m, "Satterthwaite"),
              anova_satterthwaite = list(`3` = anova_rows(m, 3, "Satterthwaite"), `2` = anova_rows(m, 2, "Satterthwaite"),
                                         `1` = anova_rows(m, 1, "Satterthwaite")))
  if (kr) {
    out$kenward_roger <- coef_rows(m, "Kenward-Roger")
    out$anova_kenward_roger <- list(`3` = anova_rows(m, 3, "Kenward-Roger"))
    out$vcov_adjusted <- unname(as.matrix(vcovAdj(m)))
  }
  # a user's contrast (two rows) with lmerTest's contest
  p <- length(fixef(m))
  if (p >= 2) {
    L <- rbind(c(0, 1, rep(0, p - 2)), c(0, rep(0, p - 2), 1))
    if (p == 2) L <- rbind(c(1, 1), c(0, 1))
    ct <- contest(m, L, joint = TRUE)
    out$contest <- list(L = L, F = ct[["F value"]], num_df = ct[["NumDF"]], den_df = ct[["DenDF"]], p = ct[["Pr(>F)"]])
    c1 <- contest(m, L[1, ], joint = FALSE)
    out$contest1 <- list(L = L[1, ], estimate = c1[["Estimate"]], std_error = c1[["Std. Error"]], df = c1[["df"]],
                         t = c1[["t value"]], p = c1[["Pr(>|t|)"]])
  }
  out
}
sum2 <- function(k) contr.sum(k)
refs <- list(
  sleepstudy = case("Reaction ~ Days + (Days | Subject)", sleep, "SHARED:sleepstudy_slopes"),
  sleepstudy_ml = case("Reaction ~ Days + (Days | Subject)", sleep, "SHARED:sleepstudy_slopes", reml = FALSE, kr = FALSE),
  sleep_unbalanced = case("Reaction ~ Days * grp + (Days || Subject)", sleep_unb, "sleep_unbalanced.csv"),
  penicillin = case("diameter ~ sample + (1 | plate)", pen, "penicillin.csv"),
  penicillin_crossed = case("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, "penicillin.csv"),
  oats = case("Y ~ N * V + (1 | B / V)", oats, "oats.csv"),
  oats_sum = case("Y ~ N * V + (1 | B / V)", oats, "oats.csv", contrasts = list(N = sum2(4), V = sum2(3))),
  oats_unbalanced = case("Y ~ nitro * V + (1 | B / V)", oats_unb, "oats_unbalanced.csv"),
  oats_unbalanced_factor = case("Y ~ N * V + (1 | B / V)", oats_unb, "oats_unbalanced.csv"),
  cake = case("angle ~ recipe * temperature + (1 | recipe:replicate)", cake, "cake.csv")
)
writeLines(toJSON(refs, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(dir, "lmertest_refs.json"))
cat("wrote", file.path(dir, "lmertest_refs.json"), "\n")
