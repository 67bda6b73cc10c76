"""Small classic datasets, bundled so that examples and docs run without files.

``gk.datasets.load(name)`` returns a DataFrame with factors coded as in R (level
order kept); ``gk.datasets.describe(name)`` says where it comes from.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from . import simulate  # noqa: F401  (gk.datasets.simulate: the seeded simulators)
from ..errors import InputError

_INFO = {
    "cbpp": ("Contagious bovine pleuropneumonia: new cases (incidence) of size animals per herd and period. "
             "lme4's cbpp (Lesnoff et al. 2004).",
             {"herd": [str(i) for i in range(1, 16)], "period": ["1", "2", "3", "4"]}),
    "sleepstudy": ("Reaction times (ms) of 18 subjects over 10 days of sleep deprivation. "
                   "lme4's sleepstudy (Belenky et al. 2003).", {}),
    "salamanders": ("Salamander counts at 23 sites, 7 species/life stages, mined or not. "
                    "glmmTMB's Salamanders (Price et al. 2016).",
                    {"spp": ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"], "mined": ["yes", "no"]}),
    "owls": ("Sibling negotiation calls of barn owl nestlings by food treatment and parent sex, 27 nests. "
             "glmmTMB's Owls (Roulin & Bersier 2007).",
             {"FoodTreatment": ["Deprived", "Satiated"], "SexParent": ["Female", "Male"]}),
    "bcg": ("13 trials of the BCG vaccine against tuberculosis: ai/bi treated TB cases/non-cases, ci/di control. "
            "metafor's dat.bcg (Colditz et al. 1994).", {}),
    "antibiotics": ("Simulated: 24 trials of antibiotic prophylaxis against post-operative infection (rare events; "
                    "infections ai of n1i treated, ci of n2i controls; true log odds ratio -0.7, tau 0.35); "
                    "glmmkit.datasets.simulate.antibiotic_trials(seed=6).", {}),
    "birds": ("Simulated: 60 birds x 12 trials, attack (0/1) vs testosterone; "
              "glmmkit.datasets.simulate.birds(seed=20261124).", {"season": ["early", "late"]}),
    "mating": ("Simulated: matings of 80 males over 6 seasons vs ornament size, winner-take-all "
               "(negative binomial, size 0.4); glmmkit.datasets.simulate.mating(seed=31).", {}),
    "isolates": ("Simulated: 200 bacterial isolates on a coalescent tree (isolates.nwk); a gene carried by one "
                 "clade, disease that follows the tree, no effect of the gene; "
                 "glmmkit.datasets.simulate.isolates(seed=5).", {}),
    "oats": ("Yates's split-plot oats experiment: yield of 3 varieties (main plots) in 6 blocks, 4 nitrogen levels "
             "(cwt/acre) on the subplots. nlme's Oats (Yates 1935).",
             {"nitro": ["0", "0.2", "0.4", "0.6"], "variety": ["Golden Rain", "Marvellous", "Victory"],
              "block": ["I", "II", "III", "IV", "V", "VI"]}),
    "clinics": ("Simulated: monthly therapy sessions of 150 clinicians in 25 clinics with exposure "
                "(opportunities); glmmkit.datasets.simulate.clinics(seed=7).", {"training": ["no", "yes"]}),
}


def list_datasets() -> list[str]:
    """The names of the bundled datasets.

    Returns
    -------
    list of str
        Names for ``load``.
    """
    return sorted(_INFO)


def describe(name: str) -> str:
    """What a bundled dataset is: its source, rows and columns.

    Parameters
    ----------
    name : str
        A name from ``list_datasets()``.

    Returns
    -------
    str
        The description.
    """
    if name not in _INFO:
        raise InputError(f"unknown dataset {name!r}; available: {list_datasets()}")
    return _INFO[name][0]


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset by name (see ``list_datasets()``).

    Parameters
    ----------
    name : str
        A name from ``list_datasets()`` (an unknown name is an InputError listing them).

    Returns
    -------
    pandas.DataFrame
        The data.
    """
    if name not in _INFO:
        raise InputError(f"unknown dataset {name!r}; available: {list_datasets()}")
    path = resources.files(__package__).joinpath("data", f"{name}.csv")
    levels_of = _INFO[name][1]
    with path.open("r") as fh:  # factor columns read as text: "0" stays "0", not 0.0
        df = pd.read_csv(fh, dtype={col: str for col in levels_of})
    for col, levels in levels_of.items():
        values = df[col].astype(str)
        unknown = sorted(set(values) - set(levels))
        if unknown:  # a bundled file and its level list disagree: a packaging error, never silent NaN
            raise InputError(f"dataset {name!r}: column {col!r} has values {unknown[:5]} outside its levels {levels}")
        df[col] = pd.Categorical(values, categories=levels)
    df.attrs["source"] = _INFO[name][0]
    return df


def tree_text(name: str) -> str:
    """The Newick tree bundled with a dataset (``isolates``).

    Parameters
    ----------
    name : str
        The dataset.

    Returns
    -------
    str
        Newick text.
    """
    path = resources.files(__package__).joinpath("data", f"{name}.nwk")
    if not path.is_file():
        raise InputError(f"dataset {name!r} has no tree")
    return path.read_text()
