"""The canonical-link fast paths give the same numbers as the general path."""

import numpy as np
import pytest

import glmmkit as gk
from glmmkit.engine.kernels import Kernels
from glmmkit.families import Binomial, Poisson


@pytest.mark.parametrize("fam", [Binomial(), Poisson()])
def test_fast_equals_general(fam):
    rng = np.random.default_rng(0)
    n = 1000
    eta = rng.normal(0, 2, n)
    wt = rng.integers(1, 5, n).astype(float) if fam.name == "binomial" else np.ones(n)
    y = rng.binomial(wt.astype(int), 0.4) / wt if fam.name == "binomial" else rng.poisson(2.0, n).astype(float)
    base = rng.normal(size=n)
    fast, plain = Kernels(fam), Kernels(fam, fast=False)
    assert fast.fast and not plain.fast
    k1, mu1 = fast.kernel(eta, y, wt)
    k2, mu2 = plain.kernel(eta, y, wt)
    assert k1 == pytest.approx(k2, rel=1e-12) and np.allclose(mu1, mu2, rtol=1e-14)
    w1, wv1 = fast.weights(eta, mu1, y, wt, base)
    w2, wv2 = plain.weights(eta, mu2, y, wt, base)
    assert np.allclose(w1, w2, rtol=1e-12) and np.allclose(wv1, wv2, rtol=1e-10)


def test_fit_is_the_same_on_both_paths(monkeypatch):
    d = gk.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    a = gk.glmer(f, d, "binomial")
    import glmmkit.engine.kernels as K

    orig = K.Kernels.__init__
    monkeypatch.setattr(K.Kernels, "__init__", lambda self, family, fast=True: orig(self, family, fast=False))
    b = gk.glmer(f, d, "binomial")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-9)
    assert np.allclose(a.fixef, b.fixef, rtol=1e-7)
