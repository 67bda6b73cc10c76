# Natural splines in a mixed model formula (issue 21): lme4 with splines::ns, and predictions on new data
# coded on the fitted knots (R's makepredictcall). Run from the repository root:
#   Rscript tests/reference/inference/make_ns.R     ->  tests/reference/inference/ns_refs.json
suppressMessages({library(lme4); library(splines); library(jsonlite)})
sleep <- read.csv("tests/reference/shared/sleepstudy_slopes/data.csv"); sleep$Subject <- factor(sleep$Subject)
m <- lmer(Reaction ~ ns(Days, df = 3) + (1 | Subject), data = sleep, REML = FALSE)
new <- data.frame(Days = c(-1, 0, 2.5, 4.5, 9, 11))
refs <- list(formula = "Reaction ~ ns(Days, df = 3) + (1 | Subject)", logLik = as.numeric(logLik(m)),
             fixef = unname(fixef(m)), newdata = new, predict = unname(predict(m, newdata = new, re.form = NA)))
writeLines(toJSON(refs, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/inference/ns_refs.json")
