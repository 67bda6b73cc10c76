"""The canonical-link fast paths give the same numbers as the general path."""

import numpy as np
import pytest

import glmmkit as gk
from glmmkit.engine.kernels import Kernels
from glmmkit.families import Binomial, NegativeBinomial2, Poisson


@pytest.mark.parametrize("fam", [Binomial(), Poisson(), NegativeBinomial2().with_dispersion(1.7)])
def test_fast_equals_general(fam):
    rng = np.random.default_rng(0)
    n = 1000
    eta = rng.normal(0, 2, n)
    wt = rng.integers(1, 5, n).astype(float) if fam.name == "binomial" else np.ones(n)
    y = rng.binomial(wt.astype(int), 0.4) / wt if fam.name == "binomial" else rng.poisson(2.0, n).astype(float)
    base = rng.normal(size=n)
    if fam.name == "nbinom2":
        y = rng.negative_binomial(1.7, 0.5, n).astype(float)
    fast, plain = Kernels(fam), Kernels(fam, fast=False)
    assert fast.fast and not plain.fast
    k1, mu1 = fast.kernel(eta, y, wt)
    k2, mu2 = plain.kernel(eta, y, wt)
    assert k1 == pytest.approx(k2, rel=1e-12) and np.allclose(mu1, mu2, rtol=1e-14)
    w1, wv1 = fast.weights(eta, mu1, y, wt, base)
    w2, wv2 = plain.weights(eta, mu2, y, wt, base)
    # the score part is the same; NB2's fast path steps with the observed information (Newton)
    assert np.allclose(wv1 - w1 * base, wv2 - w2 * base, rtol=1e-10)
    expected_w = fam.observed_weights(y, eta, mu2, wt) if fam.name == "nbinom2" else w2
    assert np.allclose(w1, expected_w, rtol=1e-10)
    for kind in ("expected", "observed"):
        assert np.allclose(fast.final_weights(kind, eta, mu1, y, wt), plain.final_weights(kind, eta, mu2, y, wt))


def test_fit_is_the_same_on_both_paths(monkeypatch):
    d = gk.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    a = gk.glmer(f, d, "binomial")
    import glmmkit.engine.kernels as K

    orig = K.Kernels.__init__
    monkeypatch.setattr(K.Kernels, "__init__", lambda self, family, fast=True: orig(self, family, fast=False))
    b = gk.glmer(f, d, "binomial")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)
    assert np.allclose(a.fixef, b.fixef, rtol=1e-6)
