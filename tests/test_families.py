"""Families and links: derivatives against finite differences, log-likelihoods against scipy."""

import numpy as np
import pytest
from scipy import stats

from glmmkit.families import Binomial, Gamma, Gaussian, InverseGaussian, Poisson, get_family
from glmmkit.links import LINKS, get_link

ETA = {"identity": 0.7, "log": 0.3, "logit": -0.4, "probit": 0.5, "cloglog": -0.2, "inverse": 1.3, "1/mu^2": 0.8}


@pytest.mark.parametrize("name", sorted(LINKS))
def test_link_derivatives(name):
    link = get_link(name)
    eta = np.array([ETA[name]])
    h = 1e-6
    d1 = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    d2 = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2 * h)
    assert link.mu_eta(eta) == pytest.approx(d1, rel=1e-6)
    assert link.mu_eta2(eta) == pytest.approx(d2, rel=1e-5, abs=1e-8)
    assert link.link(link.inverse(eta)) == pytest.approx(eta)


def test_logliks_match_scipy():
    y, mu = np.array([0.0, 2.0, 5.0]), np.array([0.5, 2.5, 4.0])
    wt = np.ones(3)
    assert np.allclose(Poisson().loglik(y, mu, wt), stats.poisson.logpmf(y, mu))
    n = np.array([4.0, 6.0, 10.0])
    k = np.array([1.0, 6.0, 3.0])
    p = np.array([0.3, 0.8, 0.4])
    assert np.allclose(Binomial().loglik(k / n, p, n), stats.binom.logpmf(k, n, p))
    g = Gamma(link="log").with_dispersion(0.3)
    yy = np.array([0.5, 1.2, 3.0])
    assert np.allclose(g.loglik(yy, mu, wt), stats.gamma.logpdf(yy, a=1 / 0.3, scale=mu * 0.3))
    ig = InverseGaussian().with_dispersion(0.5)
    assert np.allclose(ig.loglik(yy, mu, wt), stats.invgauss.logpdf(yy, mu=mu * 0.5, scale=1 / 0.5))
    ga = Gaussian(link="log").with_dispersion(2.0)
    assert np.allclose(ga.loglik(yy, mu, wt), stats.norm.logpdf(yy, mu, np.sqrt(2.0)))


@pytest.mark.parametrize("fam", [Binomial(link="probit"), Poisson(), Gamma(link="log"), InverseGaussian(link="log")])
def test_observed_weights_are_minus_second_derivative(fam):
    fam = fam.with_dispersion(0.7) if fam.dispersion_name else fam
    y = np.array([0.4 if fam.name == "binomial" else 1.7])
    wt = np.array([5.0 if fam.name == "binomial" else 1.0])
    eta = np.array([0.2])
    ll = lambda e: fam.loglik(y, fam.link.inverse(e), wt)  # noqa: E731
    h = 1e-4
    d2 = (ll(eta + h) - 2 * ll(eta) + ll(eta - h)) / h ** 2
    assert fam.observed_weights(y, eta, fam.link.inverse(eta), wt) == pytest.approx(-d2, rel=1e-4)


def test_kernel_plus_constant_is_loglik():
    fam = Binomial()
    y, mu, wt = np.array([0.25, 1.0]), np.array([0.3, 0.9]), np.array([4.0, 2.0])
    assert np.allclose(fam.loglik_kernel(y, mu, wt) + fam.loglik_const(y, wt), stats.binom.logpmf(y * wt, wt, mu))


def test_get_family():
    assert get_family("Gamma").name == "Gamma"
    assert get_family("binomial", "cloglog").link.name == "cloglog"
    fam = Poisson()
    assert get_family(fam) is fam
