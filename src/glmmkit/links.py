"""Link functions g(mu) = eta with their inverses and derivatives.

Each link is a small stateless object: ``link(mu)``, ``inverse(eta)`` and
``mu_eta(eta) = d mu / d eta``.  Families share them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy import special
from .errors import InputError

_EPS = np.finfo(float).eps
_TINY = 1e-300


class Link(ABC):
    """A link function g(mu) = eta, its inverse and the inverse's first two derivatives.

    Subclasses set ``name`` and write the four methods; inverses keep mu inside the family's range
    (probabilities in (eps, 1 - eps), positive means at least 1e-300).
    """

    name: str = "link"

    @abstractmethod
    def link(self, mu: np.ndarray) -> np.ndarray:
        """eta = g(mu).

        Parameters
        ----------
        mu : numpy.ndarray
            Means.

        Returns
        -------
        numpy.ndarray
            The linear predictor.
        """

    @abstractmethod
    def inverse(self, eta: np.ndarray) -> np.ndarray:
        """mu = g^{-1}(eta).

        Parameters
        ----------
        eta : numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray
            Means, kept inside the family's range.
        """

    @abstractmethod
    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """d mu / d eta.

        Parameters
        ----------
        eta : numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray
            The derivative of the inverse link.
        """

    @abstractmethod
    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        """d^2 mu / d eta^2 (for the observed-information Laplace).

        Parameters
        ----------
        eta : numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray
            The second derivative of the inverse link.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Link):
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(eta, dtype=float)

    def mu_eta2(self, eta):
        return np.zeros_like(eta, dtype=float)


class Log(Link):
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _TINY)

    def mu_eta(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _TINY)

    def mu_eta2(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _TINY)


class Logit(Link):
    name = "logit"

    def link(self, mu):
        return special.logit(mu)

    def inverse(self, eta):
        return np.clip(special.expit(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        p = special.expit(eta)
        return np.maximum(p * (1 - p), _EPS)

    def mu_eta2(self, eta):
        p = special.expit(eta)
        return p * (1 - p) * (1 - 2 * p)


class Probit(Link):
    name = "probit"

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        return np.clip(special.ndtr(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi), _EPS)

    def mu_eta2(self, eta):
        return -eta * np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi)


class Cloglog(Link):
    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)

    def mu_eta2(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.exp(eta - np.exp(eta)) * (1 - np.exp(eta))


class Inverse(Link):
    name = "inverse"

    def link(self, mu):
        return 1.0 / mu

    def inverse(self, eta):
        return 1.0 / eta

    def mu_eta(self, eta):
        return -1.0 / (eta * eta)

    def mu_eta2(self, eta):
        return 2.0 / eta ** 3


class InverseSquare(Link):
    name = "1/mu^2"

    def link(self, mu):
        return 1.0 / (mu * mu)

    def inverse(self, eta):
        return 1.0 / np.sqrt(eta)

    def mu_eta(self, eta):
        return -0.5 * eta ** -1.5

    def mu_eta2(self, eta):
        return 0.75 * eta ** -2.5


LINKS: dict[str, type[Link]] = {
    "identity": Identity,
    "log": Log,
    "logit": Logit,
    "probit": Probit,
    "cloglog": Cloglog,
    "inverse": Inverse,
    "1/mu^2": InverseSquare,
}


def get_link(link: str | Link) -> Link:
    """A link object from its name, or one passed through.

    Parameters
    ----------
    link : str or Link
        ``"identity"``, ``"log"``, ``"logit"``, ``"probit"``, ``"cloglog"``, ``"inverse"``, ``"1/mu^2"``.

    Returns
    -------
    Link
        The link; InputError names the links there are.
    """
    if isinstance(link, Link):
        return link
    try:
        return LINKS[link]()
    except KeyError:
        raise InputError(f"unknown link {link!r}; choose one of {sorted(LINKS)}") from None
