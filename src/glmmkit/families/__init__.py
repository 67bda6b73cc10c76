"""Response distributions of a GLMM: the family protocol and the families, by name.

``core`` holds the protocol (``Family``) and lme4's families with NB1 and NB2; ``mean_family`` the base of
the families given by their log-density in the mean (glmmTMB's further families), which live in
``bounded`` (beta, beta-binomial), ``counts`` (generalized and Conway-Maxwell Poisson, the zero-truncated
families) and ``continuous`` (Student-t, Tweedie).
"""

from __future__ import annotations

from .core import (  # noqa: F401  (the public names of the package)
    MAX_COUNT, Binomial, CountFamily, Family, Gamma, Gaussian, InverseGaussian, NegativeBinomial1,
    NegativeBinomial2, Poisson, PositiveFamily, check_counts, check_positive, log_rising, rising_polygammas,
)
from ..errors import InputError
from .mean_family import MeanFamily  # noqa: F401
from .bounded import Beta, BetaBinomial
from .counts import ConwayMaxwellPoisson, GeneralizedPoisson, TruncatedNB1, TruncatedNB2, TruncatedPoisson
from .continuous import StudentT, Tweedie

FAMILIES: dict[str, type[Family]] = {
    "binomial": Binomial,
    "poisson": Poisson,
    "gaussian": Gaussian,
    "gamma": Gamma,
    "inverse.gaussian": InverseGaussian,
    "inverse_gaussian": InverseGaussian,
    "nbinom2": NegativeBinomial2,
    "negative_binomial": NegativeBinomial2,
    "nb2": NegativeBinomial2,
    "nbinom1": NegativeBinomial1,
    "nb1": NegativeBinomial1,
    # glmmTMB's names
    "beta": Beta,
    "beta_family": Beta,
    "betabinomial": BetaBinomial,
    "tweedie": Tweedie,
    "t": StudentT,
    "t_family": StudentT,
    "genpois": GeneralizedPoisson,
    "compois": ConwayMaxwellPoisson,
    "truncated_poisson": TruncatedPoisson,
    "truncated_nbinom1": TruncatedNB1,
    "truncated_nbinom2": TruncatedNB2,
}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """A family object from a name, or one passed through (every entry point resolves names here).

    Parameters
    ----------
    family : str, Family or Family subclass
        ``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"Gamma"``, ``"inverse.gaussian"``, ``"nbinom2"``
        (also ``"nb2"``, ``"negative_binomial"``), ``"nbinom1"`` (also ``"nb1"``), and glmmTMB's ``"beta"``,
        ``"betabinomial"``, ``"tweedie"``, ``"t"``, ``"genpois"``, ``"compois"``, ``"truncated_poisson"``,
        ``"truncated_nbinom1"``, ``"truncated_nbinom2"``; case does not matter.
    link : str, optional
        A link other than the family's default.

    Returns
    -------
    Family
        The family; InputError names the families there are.
    """
    if isinstance(family, Family):
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family(link=link)
    key = str(family).lower()
    if key not in FAMILIES:
        raise InputError(f"unknown family {family!r}; choose one of {sorted(set(FAMILIES))}")
    return FAMILIES[key](link=link)
