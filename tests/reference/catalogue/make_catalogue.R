# The validation catalogue (issue 17): real data sets that ship with R packages, many models on each,
# fitted by lme4 and glmmTMB where the model is expressible in them.
#
#   Rscript tests/reference/catalogue/make_catalogue.R      (from the repository root; about 10 minutes)
#
# Writes, in tests/reference/catalogue/:
#   data/<dataset>.csv.gz   only the columns the cases use (derived columns such as age2 = age^2 made here,
#                           so both sides fit the same numbers); factor levels in R's order in cases.json
#   cases.json              per data set: source, licence, factor levels; per case: the model (formula,
#                           family, link, nAGQ, REML, weights, zero inflation, relmat), what is hard about it,
#                           and each anchor's logLik, fixed effects with SEs, variance components, family
#                           parameters, convergence messages, singularity and fit time
# Package versions are recorded in cases.json ("versions").
suppressMessages({
  library(lme4); library(glmmTMB); library(jsonlite); library(mlmRev); library(MASS); library(ape)
})
OUT <- "tests/reference/catalogue"
dir.create(file.path(OUT, "data"), showWarnings = FALSE, recursive = TRUE)
set.seed(20261201)

datasets <- list()
cases <- list()

plain <- function(df) {
  df <- as.data.frame(df)
  for (c in names(df)) {
    if (is.ordered(df[[c]])) df[[c]] <- factor(as.character(df[[c]]), levels = levels(df[[c]]))
    if (is.character(df[[c]])) df[[c]] <- factor(df[[c]])
  }
  df
}
defdata <- function(name, df, source, licence) {
  df <- plain(df)
  datasets[[name]] <<- list(df = df, source = source, licence = licence)
}

add <- function(data, formula, family = "gaussian", link = NULL, reml = FALSE, nagq = 1, weights = NULL,
                zi = NULL, relmat = NULL, anchors = c("lme4", "glmmTMB"), hard = character(0), id = NULL,
                note = NULL) {
  if (is.null(link)) link <- switch(family, gaussian = "identity", binomial = "logit", poisson = "log",
                                    Gamma = "inverse", inverse.gaussian = "1/mu^2", nbinom2 = "log",
                                    nbinom1 = "log")
  if (family == "gaussian" && link == "identity" && !reml) family_tag <- "lmm_ml" else
    if (family == "gaussian" && link == "identity") family_tag <- "lmm_reml" else
      family_tag <- paste0(family, "_", gsub("[^a-z0-9]", "", link))
  if (nagq > 1) { anchors <- setdiff(anchors, "glmmTMB"); family_tag <- paste0(family_tag, "_agq", nagq) }
  if (!is.null(zi)) { anchors <- setdiff(anchors, "lme4"); family_tag <- paste0(family_tag, "_zi") }
  if (!is.null(relmat)) anchors <- setdiff(anchors, "glmmTMB")
  if (family %in% c("inverse.gaussian")) anchors <- setdiff(anchors, "glmmTMB")
  if (family == "nbinom1") anchors <- setdiff(anchors, "lme4")
  if (is.null(id)) id <- sprintf("%s_%03d_%s", data, length(cases) + 1, family_tag)
  cases[[length(cases) + 1]] <<- list(id = id, data = data, formula = formula, family = family, link = link,
                                      reml = reml, nagq = nagq, weights = weights, ziformula = zi,
                                      relmat = relmat, anchors = anchors, hard = hard, note = note)
}

# ---------------------------------------------------------------------------------------------------
# data sets (derived columns made here)
# ---------------------------------------------------------------------------------------------------
data(sleepstudy, cbpp, Dyestuff, Dyestuff2, Penicillin, Pastes, cake, grouseticks, VerbAgg, Arabidopsis,
     package = "lme4")
ss <- sleepstudy; ss$w <- 1 + (as.integer(ss$Subject) %% 3); ss$Days2 <- ss$Days^2
defdata("sleepstudy", ss, "lme4::sleepstudy (Belenky et al. 2003)", "lme4: GPL (>= 2)")
cb <- cbpp; cb$obs <- factor(seq_len(nrow(cb))); cb$prop <- cb$incidence / cb$size
cb$nonzero <- factor(ifelse(cb$incidence > 0, "Y", "N"))
defdata("cbpp", cb, "lme4::cbpp (Lesnoff et al. 2004)", "lme4: GPL (>= 2)")
defdata("Dyestuff", Dyestuff, "lme4::Dyestuff (Davies 1947)", "lme4: GPL (>= 2)")
defdata("Dyestuff2", Dyestuff2, "lme4::Dyestuff2 (Box and Tiao 1973), a boundary fit", "lme4: GPL (>= 2)")
defdata("Penicillin", Penicillin, "lme4::Penicillin (Davies 1947)", "lme4: GPL (>= 2)")
defdata("Pastes", Pastes, "lme4::Pastes (Davies 1947)", "lme4: GPL (>= 2)")
ck <- cake; ck$temperature <- factor(as.character(ck$temperature)); ck$rr <- factor(paste(ck$recipe, ck$replicate))
ck$temp_c <- (ck$temp - 200) / 10
defdata("cake", ck, "lme4::cake (Cook 1938)", "lme4: GPL (>= 2)")
gt <- grouseticks; gt$hs <- as.numeric(scale(gt$HEIGHT)); gt$INDEX <- factor(gt$INDEX)
defdata("grouseticks", gt, "lme4::grouseticks (Elston et al. 2001)", "lme4: GPL (>= 2)")
va <- VerbAgg; va$y <- as.integer(va$r2 == "Y"); va$Anger_c <- (va$Anger - 20) / 5
defdata("VerbAgg", va[, c("y", "Anger_c", "Gender", "btype", "situ", "mode", "id", "item")],
        "lme4::VerbAgg (De Boeck and Wilson 2004)", "lme4: GPL (>= 2)")
ar <- Arabidopsis; ar$nutrient <- factor(ar$nutrient); ar$rack <- factor(ar$rack); ar$gen <- factor(ar$gen)
ar$obs <- factor(seq_len(nrow(ar))); names(ar)[names(ar) == "total.fruits"] <- "total_fruits"
defdata("Arabidopsis", ar, "lme4::Arabidopsis (Banta et al. 2010)", "lme4: GPL (>= 2)")

data(Owls, Salamanders, package = "glmmTMB")
ow <- Owls; ow$obs <- factor(seq_len(nrow(ow))); ow$ArrivalTime_c <- ow$ArrivalTime - 24
defdata("Owls", ow[, c("SiblingNegotiation", "FoodTreatment", "SexParent", "ArrivalTime_c", "logBroodSize",
                       "Nest", "obs", "NegPerChick", "BroodSize")],
        "glmmTMB::Owls (Roulin and Bersier 2007)", "glmmTMB: AGPL-3")
sa <- Salamanders; sa$obs <- factor(seq_len(nrow(sa)))
defdata("Salamanders", sa[, c("count", "mined", "spp", "cover", "DOP", "Wtemp", "DOY", "site", "obs")],
        "glmmTMB::Salamanders (Price et al. 2016)", "glmmTMB: AGPL-3")

data(Contraception, Exam, Hsb82, ScotsSec, Early, Mmmec, guImmun, Oxboys, bdf, Gcsemv, package = "mlmRev")
co <- Contraception; co$y <- as.integer(co$use == "Y"); co$age2 <- co$age^2; co$ch <- factor(ifelse(co$livch == "0", "N", "Y"))
co$urbanY <- as.integer(co$urban == "Y")
defdata("Contraception", co[, c("y", "age", "age2", "urban", "urbanY", "livch", "ch", "district")],
        "mlmRev::Contraception (Bangladesh Fertility Survey 1989)", "mlmRev: GPL (>= 2)")
defdata("Exam", Exam[, c("normexam", "standLRT", "sex", "schgend", "school", "schavg")],
        "mlmRev::Exam (Goldstein et al. 1993)", "mlmRev: GPL (>= 2)")
hs <- Hsb82; hs$school <- factor(as.character(hs$school))
defdata("Hsb82", hs[, c("mAch", "meanses", "cses", "sector", "minrty", "sx", "school")],
        "mlmRev::Hsb82 (High School and Beyond 1982)", "mlmRev: GPL (>= 2)")
sc <- ScotsSec; sc$verbal_c <- sc$verbal / 10
defdata("ScotsSec", sc[, c("attain", "verbal_c", "sex", "social", "primary", "second")],
        "mlmRev::ScotsSec (Paterson 1991)", "mlmRev: GPL (>= 2)")
defdata("Early", Early, "mlmRev::Early (Burchinal et al. 1997)", "mlmRev: GPL (>= 2)")
mm <- Mmmec; mm$loge <- log(mm$expected)
defdata("Mmmec", mm[, c("deaths", "uvb", "loge", "nation", "region", "county")],
        "mlmRev::Mmmec (Langford et al. 1998)", "mlmRev: GPL (>= 2)")
gi <- guImmun; gi$y <- as.integer(gi$immun == "Y")
defdata("guImmun", gi[, c("y", "kid2p", "mom25p", "ord", "ethn", "momEd", "husEd", "rural", "pcInd81", "mom", "comm")],
        "mlmRev::guImmun (Rodriguez and Goldman 1995)", "mlmRev: GPL (>= 2)")
ox <- Oxboys; ox$Subject <- factor(as.character(ox$Subject)); ox$age2 <- ox$age^2
defdata("Oxboys", ox, "mlmRev::Oxboys (Goldstein 1987)", "mlmRev: GPL (>= 2)")
bd <- bdf; bd$schoolNR <- factor(as.character(bd$schoolNR)); bd$IQ_verb <- bd$IQ.verb
defdata("bdf", bd[, c("langPOST", "IQ_verb", "sex", "Minority", "ses", "schoolNR", "aritPOST")],
        "mlmRev::bdf (Brandsma and Knuver 1989)", "mlmRev: GPL (>= 2)")
gc <- Gcsemv[complete.cases(Gcsemv[, c("written", "course")]), ]
defdata("Gcsemv", gc[, c("written", "course", "gender", "school")], "mlmRev::Gcsemv (Rasbash et al. 2000)",
        "mlmRev: GPL (>= 2)")

data(Orthodont, Machines, Rail, Oats, Pixel, package = "nlme")
orth <- as.data.frame(Orthodont); orth$Subject <- factor(as.character(orth$Subject)); orth$age_c <- orth$age - 11
defdata("Orthodont", orth, "nlme::Orthodont (Potthoff and Roy 1964)", "nlme: GPL (>= 2)")
mach <- as.data.frame(Machines); mach$Worker <- factor(as.character(mach$Worker))
defdata("Machines", mach, "nlme::Machines (Milliken and Johnson 1992)", "nlme: GPL (>= 2)")
rl <- as.data.frame(Rail); rl$Rail <- factor(as.character(rl$Rail))
defdata("Rail", rl, "nlme::Rail (Devore 2000)", "nlme: GPL (>= 2)")
oa <- as.data.frame(Oats); oa$Block <- factor(as.character(oa$Block))
defdata("Oats", oa, "nlme::Oats (Yates 1935)", "nlme: GPL (>= 2)")
px <- as.data.frame(Pixel); px$Dog <- factor(as.character(px$Dog)); px$day2 <- px$day^2
defdata("Pixel", px, "nlme::Pixel (Darrow et al.)", "nlme: GPL (>= 2)")

data(epil, bacteria, package = "MASS")
ep <- epil; ep$subject <- factor(ep$subject); ep$obs <- factor(seq_len(nrow(ep)))
defdata("epil", ep[, c("y", "trt", "lbase", "lage", "V4", "subject", "obs", "period")],
        "MASS::epil (Thall and Vail 1990)", "MASS: GPL-2 | GPL-3")
ba <- bacteria; ba$y <- as.integer(ba$y == "y"); ba$late <- as.integer(ba$week > 2)
defdata("bacteria", ba, "MASS::bacteria (Menard 1982)", "MASS: GPL-2 | GPL-3")

cw <- as.data.frame(ChickWeight); cw$Chick <- factor(as.character(cw$Chick)); cw$Diet <- factor(cw$Diet)
cw$Time_c <- cw$Time / 10
defdata("ChickWeight", cw, "datasets::ChickWeight (Crowder and Hand 1990)", "R datasets: GPL (>= 2)")
co2 <- as.data.frame(CO2); co2$Plant <- factor(as.character(co2$Plant)); co2$lconc <- log(co2$conc)
co2$Type <- factor(as.character(co2$Type)); co2$Treatment <- factor(as.character(co2$Treatment))
defdata("CO2", co2, "datasets::CO2 (Potvin et al. 1990)", "R datasets: GPL (>= 2)")
defdata("InsectSprays", InsectSprays, "datasets::InsectSprays (Beall 1942)", "R datasets: GPL (>= 2)")

# ---------------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------------
both <- function(data, formula, ..., hard = character(0)) {  # an LMM by ML and by REML
  add(data, formula, reml = FALSE, ..., hard = hard); add(data, formula, reml = TRUE, ..., hard = hard)
}
# linear mixed models
both("sleepstudy", "Reaction ~ Days + (1 | Subject)")
both("sleepstudy", "Reaction ~ Days + (Days | Subject)", hard = "correlated slope")
both("sleepstudy", "Reaction ~ Days + (Days || Subject)", hard = "uncorrelated slope")
both("sleepstudy", "Reaction ~ Days + Days2 + (Days | Subject)")
both("sleepstudy", "Reaction ~ Days + (1 | Subject)", weights = "w", hard = "prior weights")
both("Dyestuff", "Yield ~ 1 + (1 | Batch)")
both("Dyestuff2", "Yield ~ 1 + (1 | Batch)", hard = "boundary: variance 0")
both("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", hard = "crossed")
both("Pastes", "strength ~ 1 + (1 | batch/cask)", hard = "nested")
both("Pastes", "strength ~ 1 + (1 | batch) + (1 | sample)")
both("Pastes", "strength ~ 1 + (1 | sample)", hard = "two rows per level")
both("cake", "angle ~ recipe * temperature + (1 | rr)", hard = "many fixed effects")
both("cake", "angle ~ recipe + temp_c + (1 | replicate) + (1 | rr)", hard = "nested, one level of nesting near 0")
both("Orthodont", "distance ~ age_c + Sex + (1 | Subject)")
both("Orthodont", "distance ~ age_c + Sex + (age_c | Subject)")
both("Orthodont", "distance ~ age_c * Sex + (age_c || Subject)")
both("Machines", "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", hard = "interaction grouping")
both("Machines", "score ~ Machine + (Machine | Worker)", hard = "factor slope, 3 x 3 covariance")
both("Rail", "travel ~ 1 + (1 | Rail)")
both("Oats", "yield ~ nitro + Variety + (1 | Block/Variety)", hard = "nested")
both("Pixel", "pixel ~ day + day2 + Side + (day | Dog) + (1 | Side:Dog)", hard = "slope plus nested intercept")
both("ChickWeight", "weight ~ Time_c + Diet + (Time_c | Chick)")
both("ChickWeight", "weight ~ Time_c * Diet + (1 | Chick)")
both("CO2", "uptake ~ lconc + Type * Treatment + (1 | Plant)")
both("CO2", "uptake ~ lconc + Type + (lconc | Plant)")
both("Oxboys", "height ~ age + (age | Subject)")
both("Oxboys", "height ~ age + age2 + (age + age2 | Subject)", hard = "3 x 3 covariance")
both("Exam", "normexam ~ standLRT + sex + (1 | school)")
both("Exam", "normexam ~ standLRT + sex + schavg + (standLRT | school)")
both("Hsb82", "mAch ~ meanses * cses + sector + (cses | school)", hard = "7,185 rows, 160 schools")
both("Hsb82", "mAch ~ minrty + sx + cses + (1 | school)")
both("ScotsSec", "attain ~ verbal_c + sex + social + (1 | primary) + (1 | second)", hard = "crossed, 148 x 19")
both("Early", "cog ~ age + trt + (1 | id)")
both("Early", "cog ~ age * trt + (age | id)", hard = "tiny groups (3 rows), near-singular")
both("bdf", "langPOST ~ IQ_verb + sex + Minority + (1 | schoolNR)")
both("bdf", "langPOST ~ IQ_verb + ses + (IQ_verb | schoolNR)")
both("bdf", "aritPOST ~ IQ_verb + ses + Minority + (1 | schoolNR)")
both("Exam", "normexam ~ standLRT * sex + (1 | school) + (1 | school:sex)", hard = "interaction grouping")
both("Gcsemv", "written ~ gender + (1 | school)")
both("Gcsemv", "course ~ gender + (gender | school)", hard = "factor slope")

# relmat: a known covariance of the subjects' levels (a coalescent tree over the 18 subjects)
tr <- rcoal(18, tip.label = levels(sleepstudy$Subject))
K <- vcv(tr, corr = TRUE)
write.csv(K, gzfile(file.path(OUT, "data", "sleepstudy_relmat.csv.gz")))
add("sleepstudy", "Reaction ~ Days + (1 | Subject)", relmat = "sleepstudy_relmat", hard = "relmat", reml = FALSE)
add("sleepstudy", "Reaction ~ Days + (1 | Subject)", relmat = "sleepstudy_relmat", hard = "relmat", reml = TRUE)
add("sleepstudy", "Reaction ~ Days + (1 | Subject)", family = "Gamma", link = "log", relmat = "sleepstudy_relmat",
    hard = c("relmat", "non-canonical link"))

# binomial
cbf <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
for (lk in c("logit", "probit", "cloglog")) add("cbpp", cbf, "binomial", lk, hard = if (lk != "logit") "non-canonical link" else character(0))
for (q in c(3, 5, 9, 15, 25)) add("cbpp", cbf, "binomial", nagq = q, hard = "nAGQ > 1")
add("cbpp", "prop ~ period + (1 | herd)", "binomial", weights = "size", hard = "proportion with weights")
add("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", "binomial", hard = "OLRE")
add("cbpp", "cbind(incidence, size - incidence) ~ 1 + (1 | herd)", "binomial")
add("cbpp", "nonzero ~ period + (1 | herd)", "binomial", hard = "binary from counts")
add("cbpp", "nonzero ~ period + (1 | herd)", "binomial", nagq = 9, hard = "nAGQ > 1")
for (lk in c("logit", "probit")) {
  add("VerbAgg", "y ~ Anger_c + Gender + btype + situ + mode + (1 | id) + (1 | item)", "binomial", lk,
      hard = c("crossed", "7,584 rows, 316 x 24 levels"))
}
add("VerbAgg", "y ~ Anger_c + Gender + btype + (1 | id)", "binomial", hard = "316 levels")
add("VerbAgg", "y ~ Anger_c + Gender + btype + (1 | id)", "binomial", nagq = 7, hard = c("nAGQ > 1", "316 levels"))
add("VerbAgg", "y ~ btype + situ + (1 | item)", "binomial", "cloglog", hard = "non-canonical link")
add("Contraception", "y ~ age + age2 + urban + livch + (1 | district)", "binomial")
add("Contraception", "y ~ age + age2 + urban + livch + (1 | district)", "binomial", nagq = 9, hard = "nAGQ > 1")
add("Contraception", "y ~ age + age2 + urban + ch + (urbanY | district)", "binomial", hard = "slope")
add("Contraception", "y ~ age + age2 + urban + ch + (urbanY || district)", "binomial", hard = "uncorrelated slope")
add("Contraception", "y ~ age + age2 + urban + ch + (1 | district)", "binomial", "probit", hard = "non-canonical link")
add("Contraception", "y ~ age + age2 + urban + ch + (1 | district)", "binomial", "cloglog", hard = "non-canonical link")
add("Contraception", "y ~ age + urban + (1 | district) + (1 | district:urban)", "binomial", hard = "nested interaction")
add("bacteria", "y ~ trt + late + (1 | ID)", "binomial")
add("bacteria", "y ~ trt + late + (1 | ID)", "binomial", nagq = 12, hard = "nAGQ > 1")
add("bacteria", "y ~ trt + week + (week | ID)", "binomial", hard = "slope, near-singular")
add("bacteria", "y ~ trt * late + (1 | ID)", "binomial", "probit", hard = "non-canonical link")
add("bacteria", "y ~ trt + late + (1 | ID)", "binomial", "cloglog", hard = "non-canonical link")
add("cbpp", cbf, "binomial", "probit", nagq = 9, hard = c("nAGQ > 1", "non-canonical link"))
add("guImmun", "y ~ kid2p + mom25p + ord + ethn + momEd + husEd + rural + pcInd81 + (1 | mom) + (1 | comm)", "binomial",
    hard = c("nested, 1,595 mothers with 1-3 children", "tiny groups"))
add("guImmun", "y ~ kid2p + mom25p + ord + ethn + (1 | comm)", "binomial")
add("guImmun", "y ~ kid2p + mom25p + ord + ethn + (1 | comm)", "binomial", nagq = 5, hard = "nAGQ > 1")
add("Arabidopsis", "total_fruits > 0 ~ nutrient + amd + rack + status + (1 | popu) + (1 | gen)", "binomial",
    id = "Arabidopsis_fruiting_binomial", hard = "crossed")
add("Gcsemv", "written > 45 ~ gender + (1 | school)", "binomial", id = "Gcsemv_written45_binomial")
add("Orthodont", "distance > 25 ~ age_c + Sex + (1 | Subject)", "binomial", id = "Orthodont_over25_binomial",
    hard = "small data")
add("ChickWeight", "weight > 150 ~ Time_c + Diet + (1 | Chick)", "binomial", id = "ChickWeight_over150_binomial",
    hard = "near separation")

# Poisson and negative binomial
for (lk in c("log", "sqrt")) add("grouseticks", "TICKS ~ YEAR + hs + (1 | BROOD) + (1 | LOCATION)", "poisson", lk,
                                 hard = if (lk == "sqrt") "non-canonical link" else "nested")
add("grouseticks", "TICKS ~ YEAR + hs + (1 | BROOD) + (1 | LOCATION) + (1 | INDEX)", "poisson", hard = "OLRE")
add("grouseticks", "TICKS ~ YEAR + hs + (1 | BROOD) + (1 | LOCATION)", "nbinom2")
add("grouseticks", "TICKS ~ YEAR + hs + (1 | BROOD)", "nbinom1")
add("grouseticks", "TICKS ~ YEAR + hs + (1 | BROOD)", "poisson", nagq = 7, hard = "nAGQ > 1")
add("grouseticks", "TICKS ~ YEAR * hs + (1 | LOCATION)", "poisson")
sal <- "count ~ mined + spp + (1 | site)"
add("Salamanders", sal, "poisson")
add("Salamanders", sal, "poisson", nagq = 9, hard = "nAGQ > 1")
add("Salamanders", sal, "nbinom2")
add("Salamanders", sal, "nbinom1")
add("Salamanders", "count ~ mined + spp + (1 | site) + (1 | obs)", "poisson", hard = "OLRE")
add("Salamanders", "count ~ mined * spp + (1 | site)", "poisson", hard = "many fixed effects")
add("Salamanders", "count ~ mined * spp + (1 | site)", "nbinom2", hard = "many fixed effects")
add("Salamanders", "count ~ mined + cover + DOY + Wtemp + (1 | site)", "poisson")
add("Salamanders", "count ~ mined + cover + DOY + Wtemp + (1 | site)", "nbinom2")
add("Salamanders", "count ~ spp + cover + (cover | site)", "poisson", hard = "slope")
add("Salamanders", sal, "poisson", zi = "~ 1", hard = "zero inflation")
add("Salamanders", sal, "poisson", zi = "~ mined", hard = "zero inflation with a covariate")
add("Salamanders", sal, "nbinom2", zi = "~ 1", hard = "zero-inflated NB2")
add("Salamanders", "count ~ mined + spp + (1 | site)", "poisson", "sqrt", hard = "non-canonical link")
owl <- "SiblingNegotiation ~ FoodTreatment * SexParent + offset(logBroodSize) + (1 | Nest)"
add("Owls", owl, "poisson", hard = "offset")
add("Owls", owl, "poisson", nagq = 11, hard = c("offset", "nAGQ > 1"))
add("Owls", owl, "nbinom2", hard = "offset")
add("Owls", owl, "nbinom1", hard = "offset")
add("Owls", "SiblingNegotiation ~ FoodTreatment * SexParent + offset(logBroodSize) + (1 | Nest) + (1 | obs)", "poisson",
    hard = c("offset", "OLRE"))
add("Owls", owl, "poisson", zi = "~ 1", hard = c("offset", "zero inflation"))
add("Owls", "SiblingNegotiation ~ FoodTreatment + ArrivalTime_c + offset(logBroodSize) + (ArrivalTime_c | Nest)",
    "poisson", hard = c("offset", "slope"))
add("Owls", "SiblingNegotiation ~ FoodTreatment + ArrivalTime_c + offset(logBroodSize) + (1 | Nest)", "nbinom2",
    hard = "offset")
add("epil", "y ~ trt + lbase + lage + V4 + (1 | subject)", "poisson")
add("epil", "y ~ trt * lbase + lage + V4 + (1 | subject) + (1 | obs)", "poisson", hard = "OLRE")
add("epil", "y ~ trt + lbase + lage + V4 + (1 | subject)", "nbinom2")
add("epil", "y ~ trt + lbase + lage + V4 + (1 | subject)", "nbinom1")
add("epil", "y ~ trt + lbase + lage + V4 + (1 | subject)", "poisson", nagq = 15, hard = "nAGQ > 1")
add("epil", "y ~ trt + lbase + lage + period + (period | subject)", "poisson", hard = "slope")
add("Mmmec", "deaths ~ uvb + offset(loge) + (1 | region) + (1 | nation)", "poisson", hard = c("offset", "nested"))
add("Mmmec", "deaths ~ uvb + offset(loge) + (1 | nation)", "poisson", hard = "offset")
add("Mmmec", "deaths ~ uvb + offset(loge) + (1 | region) + (1 | nation)", "nbinom2", hard = c("offset", "nested"))
add("Mmmec", "deaths ~ uvb + offset(loge) + (1 | nation/region) + (1 | county)", "poisson",
    hard = c("offset", "nested", "OLRE"))
add("Arabidopsis", "total_fruits ~ nutrient * amd + rack + status + (1 | popu) + (1 | gen)", "poisson",
    hard = c("crossed", "heavy overdispersion"))
add("Arabidopsis", "total_fruits ~ nutrient * amd + rack + status + (1 | popu) + (1 | gen) + (1 | obs)", "poisson",
    hard = c("crossed", "OLRE"))
add("Arabidopsis", "total_fruits ~ nutrient * amd + rack + status + (1 | popu) + (1 | gen)", "nbinom2",
    hard = "crossed")
add("InsectSprays", "count ~ 1 + (1 | spray)", "poisson", hard = "6 levels")
add("InsectSprays", "count ~ 1 + (1 | spray)", "poisson", nagq = 20, hard = "nAGQ > 1")
add("InsectSprays", "count ~ 1 + (1 | spray)", "nbinom2")
add("cake", "angle ~ recipe + temp_c + (1 | replicate)", "poisson", hard = "counts far from 0")

# Gamma, inverse Gaussian, Gaussian with other links (lme4's Gamma logLik uses a moment estimate of the
# dispersion: glmmTMB is the anchor for the likelihood, lme4's value is kept for reference)
for (lk in c("log", "inverse", "identity")) {
  add("sleepstudy", "Reaction ~ Days + (1 | Subject)", "Gamma", lk, hard = if (lk == "inverse") "inverse link, tiny SD" else "non-canonical link")
  add("ChickWeight", "weight ~ Time_c + Diet + (1 | Chick)", "Gamma", lk, hard = if (lk == "inverse") "inverse link, tiny SD" else character(0))
  add("Orthodont", "distance ~ age_c + Sex + (1 | Subject)", "Gamma", lk, hard = if (lk == "inverse") "inverse link, tiny SD" else character(0))
  add("cake", "angle ~ recipe + temp_c + (1 | replicate)", "Gamma", lk)
  add("Oats", "yield ~ nitro + Variety + (1 | Block)", "Gamma", lk)
  add("CO2", "uptake ~ lconc + Type + (1 | Plant)", "Gamma", lk)
}
add("sleepstudy", "Reaction ~ Days + (Days | Subject)", "Gamma", "log", hard = c("slope", "non-canonical link"))
add("Rail", "travel ~ 1 + (1 | Rail)", "Gamma", "log", hard = "6 levels")
add("Early", "cog ~ age + trt + (1 | id)", "Gamma", "log")
add("Exam", "normexam + 4 ~ standLRT + (1 | school)", "Gamma", "log", id = "Exam_shifted_Gamma_log")
for (lk in c("1/mu^2", "log", "inverse")) {
  add("sleepstudy", "Reaction ~ Days + (1 | Subject)", "inverse.gaussian", lk, hard = c("inverse Gaussian", "tiny SD"))
  add("ChickWeight", "weight ~ Time_c + Diet + (1 | Chick)", "inverse.gaussian", lk, hard = "inverse Gaussian")
  add("Orthodont", "distance ~ age_c + Sex + (1 | Subject)", "inverse.gaussian", lk, hard = "inverse Gaussian")
}
for (lk in c("log", "inverse")) {
  add("sleepstudy", "Reaction ~ Days + (1 | Subject)", "gaussian", lk, hard = "Gaussian GLMM, non-identity link")
  add("ChickWeight", "weight ~ Time_c + Diet + (1 | Chick)", "gaussian", lk, hard = "Gaussian GLMM, non-identity link")
  add("Orthodont", "distance ~ age_c + Sex + (1 | Subject)", "gaussian", lk, hard = "Gaussian GLMM, non-identity link")
  add("CO2", "uptake ~ lconc + Type + (1 | Plant)", "gaussian", lk, hard = "Gaussian GLMM, non-identity link")
}

# ---------------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------------
fam_object <- function(family, link) {
  switch(family, gaussian = gaussian(link = link), binomial = binomial(link = link), poisson = poisson(link = link),
         Gamma = Gamma(link = link), inverse.gaussian = inverse.gaussian(link = link),
         nbinom2 = nbinom2(link = link), nbinom1 = nbinom1(link = link))
}
varcorr_rows <- function(vc) {  # one row per SD and per correlation (lme4's VarCorr or glmmTMB's $cond)
  rows <- list()
  for (g in names(vc)) {
    sd <- attr(vc[[g]], "stddev"); cr <- attr(vc[[g]], "correlation")
    nm <- names(sd)
    for (i in seq_along(sd)) rows[[length(rows) + 1]] <- list(group = g, term1 = nm[i], term2 = NULL, sdcor = unname(sd[i]))
    if (length(sd) > 1 && !is.null(cr)) for (i in 1:(length(sd) - 1)) for (j in (i + 1):length(sd))
      rows[[length(rows) + 1]] <- list(group = g, term1 = nm[i], term2 = nm[j], sdcor = cr[i, j])
  }
  rows
}
fixef_rows <- function(est, se) {
  setNames(lapply(seq_along(est), function(i) list(estimate = unname(est[i]), std_error = unname(se[i]))), names(est))
}
saturated <- function(m, family) {  # lme4's logLik at nAGQ > 1 leaves out the saturated model's log-likelihood
  y <- m@resp$y; w <- m@resp$weights
  if (family == "binomial") return(sum(dbinom(round(y * w), round(w), y, log = TRUE)))
  if (family == "poisson") return(sum(dpois(y, y, log = TRUE)))
  NA
}
relfit <- function(cs, d) {  # lme4's modular stages with Z' premultiplied by the relmat's Cholesky factor
  K <- as.matrix(read.csv(gzfile(file.path(OUT, "data", paste0(cs$relmat, ".csv.gz"))), row.names = 1, check.names = FALSE))
  if (cs$family == "gaussian") {
    lf <- lFormula(as.formula(cs$formula), d, REML = cs$reml)
  } else {
    lf <- glFormula(as.formula(cs$formula), d, family = fam_object(cs$family, cs$link))
  }
  lev <- rownames(lf$reTrms$Zt)
  R <- chol(K[lev, lev])
  lf$reTrms$Zt <- as(R %*% lf$reTrms$Zt, "CsparseMatrix")
  if (cs$family == "gaussian") {
    dfun <- do.call(mkLmerDevfun, lf); opt <- optimizeLmer(dfun)
    mkMerMod(environment(dfun), opt, lf$reTrms, fr = lf$fr)
  } else {
    dfun <- do.call(mkGlmerDevfun, lf); opt <- optimizeGlmer(dfun)
    dfun <- updateGlmerDevfun(dfun, lf$reTrms); opt <- optimizeGlmer(dfun, stage = 2)
    mkMerMod(environment(dfun), opt, lf$reTrms, fr = lf$fr)
  }
}
fit_lme4 <- function(cs, d) {
  f <- as.formula(cs$formula)
  w <- if (is.null(cs$weights)) NULL else d[[cs$weights]]
  d$.w <- w
  warn <- character(0)
  t0 <- proc.time()[["elapsed"]]
  m <- withCallingHandlers(tryCatch({
    if (!is.null(cs$relmat)) relfit(cs, d)
    else if (cs$family == "gaussian" && cs$link == "identity") {
      if (is.null(w)) lmer(f, d, REML = cs$reml) else lmer(f, d, REML = cs$reml, weights = .w)
    } else if (cs$family == "nbinom2") glmer.nb(f, d)
    else if (is.null(w)) glmer(f, d, family = fam_object(cs$family, cs$link), nAGQ = cs$nagq)
    else glmer(f, d, family = fam_object(cs$family, cs$link), nAGQ = cs$nagq, weights = .w)
  }, error = function(e) e), warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  t1 <- proc.time()[["elapsed"]]
  if (inherits(m, "error")) return(list(error = conditionMessage(m), time_s = t1 - t0))
  s <- summary(m)$coefficients
  ll <- as.numeric(logLik(m))
  out <- list(version = as.character(packageVersion("lme4")), loglik = ll,
              fixef = fixef_rows(setNames(s[, 1], rownames(s)), setNames(s[, 2], rownames(s))), varcorr = varcorr_rows(VarCorr(m)),
              sigma = sigma(m), singular = isSingular(m), messages = unique(c(m@optinfo$conv$lme4$messages, warn)),
              time_s = t1 - t0, nobs = nobs(m))
  if (cs$nagq > 1) out$loglik_full <- ll + saturated(m, cs$family)
  if (cs$family == "nbinom2") out$family_params <- list(theta = getME(m, "glmer.nb.theta"))
  if (cs$family %in% c("Gamma", "inverse.gaussian") || (cs$family == "gaussian" && cs$link != "identity"))
    out$family_params <- list(dispersion = sigma(m)^2)
  out
}
fit_tmb <- function(cs, d) {
  f <- as.formula(cs$formula)
  d$.w <- if (is.null(cs$weights)) 1 else d[[cs$weights]]
  zi <- if (is.null(cs$ziformula)) ~0 else as.formula(cs$ziformula)
  warn <- character(0)
  t0 <- proc.time()[["elapsed"]]
  m <- withCallingHandlers(tryCatch(
    glmmTMB(f, d, family = fam_object(cs$family, cs$link), REML = cs$reml, ziformula = zi, weights = .w),
    error = function(e) e), warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  if (inherits(m, "error") || is.na(logLik(m))) {
    # an inverse-type link needs a start inside its domain: the fixed-effects GLM's estimates (as lme4 takes)
    g <- tryCatch(glm(nobars(f), family = fam_object(cs$family, cs$link), data = d,
                      mustart = pmax(model.response(model.frame(nobars(f), d)), 1e-8)), error = function(e) NULL)
    if (!is.null(g)) {
      warn <- c(warn, "fitted from the fixed-effects GLM's estimates as start values")
      m2 <- withCallingHandlers(tryCatch(
        glmmTMB(f, d, family = fam_object(cs$family, cs$link), REML = cs$reml, ziformula = zi, weights = .w,
                start = list(beta = unname(coef(g)))),
        error = function(e) e), warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
      if (!inherits(m2, "error")) m <- m2
    }
  }
  t1 <- proc.time()[["elapsed"]]
  if (inherits(m, "error")) return(list(error = conditionMessage(m), time_s = t1 - t0))
  fe <- fixef(m)$cond
  se <- tryCatch(sqrt(diag(vcov(m)$cond)), error = function(e) rep(NA, length(fe)), warning = function(w) rep(NA, length(fe)))
  out <- list(version = as.character(packageVersion("glmmTMB")), loglik = as.numeric(logLik(m)),
              fixef = fixef_rows(fe, se), varcorr = varcorr_rows(VarCorr(m)$cond),
              sigma = sigma(m), messages = unique(c(warn, if (m$fit$convergence != 0) m$fit$message)),
              pdHess = isTRUE(m$sdr$pdHess), time_s = t1 - t0, nobs = nobs(m))
  if (cs$family == "nbinom2") out$family_params <- list(theta = sigma(m))
  if (cs$family == "nbinom1") out$family_params <- list(phi = sigma(m))
  if (cs$family %in% c("Gamma")) out$family_params <- list(dispersion = sigma(m)^2)
  if (cs$family == "gaussian") out$family_params <- list(dispersion = sigma(m)^2)
  if (!is.null(cs$ziformula)) {
    z <- fixef(m)$zi
    out$zi <- setNames(as.list(unname(z)), names(z))
  }
  out
}

versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                 glmmTMB = as.character(packageVersion("glmmTMB")), mlmRev = as.character(packageVersion("mlmRev")),
                 nlme = as.character(packageVersion("nlme")), MASS = as.character(packageVersion("MASS")),
                 ape = as.character(packageVersion("ape")), Matrix = as.character(packageVersion("Matrix")),
                 TMB = as.character(packageVersion("TMB")))
for (i in seq_along(cases)) {
  cs <- cases[[i]]
  d <- datasets[[cs$data]]$df
  refs <- list()
  for (a in cs$anchors) refs[[a]] <- if (a == "lme4") fit_lme4(cs, d) else fit_tmb(cs, d)
  cases[[i]]$refs <- refs
  cat(sprintf("%3d %-45s %s\n", i, cs$id, paste(sapply(names(refs), function(a)
    sprintf("%s %s", a, if (is.null(refs[[a]]$error)) format(refs[[a]]$loglik, digits = 10) else "ERROR")), collapse = "  ")))
}

# data: only the columns the cases use
ds_out <- list()
for (nm in names(datasets)) {
  df <- datasets[[nm]]$df
  used <- unique(unlist(lapply(Filter(function(c) c$data == nm, cases), function(c)
    c(all.vars(as.formula(c$formula)), c$weights, if (!is.null(c$ziformula)) all.vars(as.formula(c$ziformula))))))
  used <- intersect(names(df), used)
  if (!length(used)) next
  df <- df[, used, drop = FALSE]
  con <- gzfile(file.path(OUT, "data", paste0(nm, ".csv.gz")), "w")
  write.csv(df, con, row.names = FALSE, na = "NA"); close(con)
  fl <- lapply(Filter(is.factor, df), levels)
  ds_out[[nm]] <- list(file = paste0("data/", nm, ".csv.gz"), source = datasets[[nm]]$source,
                       licence = datasets[[nm]]$licence, rows = nrow(df), factors = fl)
}
writeLines(toJSON(list(versions = versions, datasets = ds_out, cases = cases), auto_unbox = TRUE, digits = NA,
                  null = "null", na = "null", pretty = TRUE), file.path(OUT, "cases.json"))
cat(length(cases), "cases written\n")
