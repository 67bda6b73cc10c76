"""The effect measures of the meta-analysis and their names (shared by the results and the figures)."""

#: each measure's name on the natural scale
NATURAL = {"OR": "odds ratio", "IRR": "incidence rate ratio", "PLO": "proportion"}
#: each measure's name on the scale the models work on
LOG = {"OR": "log odds ratio", "IRR": "log rate ratio", "PLO": "log odds"}
