"""The validation catalogue and its gate (issue 17): the fast subset passes, and the gate catches a broken
engine.  The whole gate is `python benchmarks/validate.py` (docs/accuracy.md)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import validate  # noqa: E402


@pytest.fixture(scope="module")
def catalogue():
    return validate.load_catalogue()


def test_catalogue_is_complete(catalogue):
    cases = catalogue["cases"]
    assert len(cases) >= 200
    assert len({c["id"] for c in cases}) == len(cases)
    for name, info in catalogue["datasets"].items():
        assert (validate.CATALOGUE / info["file"]).exists(), name
        assert info["source"] and info["licence"], name
    assert {"R", "lme4", "glmmTMB"} <= set(catalogue["versions"])
    families = {(c["family"], c["link"]) for c in cases}
    assert {("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"), ("poisson", "log"),
            ("nbinom2", "log"), ("nbinom1", "log"), ("Gamma", "log"), ("Gamma", "inverse"),
            ("inverse.gaussian", "1/mu^2"), ("gaussian", "log"), ("gaussian", "identity")} <= families
    assert any(c["nagq"] > 1 for c in cases) and any(c["reml"] for c in cases)
    assert any(c.get("relmat") for c in cases) and any(c.get("weights") for c in cases)
    assert any(c.get("ziformula") for c in cases) and any("offset(" in c["formula"] for c in cases)
    for id_, reason in catalogue["known"].items():
        assert isinstance(reason, str) and len(reason) > 20, id_


def test_fast_subset_passes_the_gate(catalogue):
    cases = validate.fast_subset(catalogue)
    assert len(cases) >= 40
    # every third fast case in CI (the suite's 5-minute budget); all of them: python benchmarks/validate.py
    rows = validate.run(cases[::3], catalogue, progress=False)
    bad = [(r["id"], r["status"], r.get("detail")) for r in rows if r["status"] in ("fail", "crash")]
    assert not bad, bad


def test_gate_catches_a_broken_engine(catalogue, monkeypatch):
    """PIRLS cut to two iterations (a loosened inner tolerance): the gate must fail the cases it spoils."""
    import glmmkit.engine.objective as objective
    import glmmkit.engine.pirls as pirls

    real = pirls.pirls

    def loose(*args, **kwargs):
        kwargs["maxit"] = 2
        kwargs["tol"] = 1e-2
        kwargs["u_tol"] = 1e-1
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "pirls", loose)
    cases = [c for c in validate.fast_subset(catalogue)
             if c["family"] in ("binomial", "poisson") and c["nagq"] == 1 and not c.get("ziformula")][:6]
    assert len(cases) == 6
    rows = validate.run(cases, catalogue, progress=False)
    failed = [r for r in rows if r["status"] in ("fail", "crash")]
    assert len(failed) >= 3, [(r["id"], r["status"], r.get("detail")) for r in rows]
    assert all("below" in r["detail"] or "fixed effect" in r["detail"] for r in failed if r["status"] == "fail")


def test_a_zero_variance_saddle_is_left(catalogue):
    """Arabidopsis' NB2 model: the gradient search reached gen's variance = 0, where the deviance's gradient
    is exactly 0 (it is even in theta) although 0 is a saddle; the fit must leave it and reach the anchors'
    optimum (it was 0.41 log-likelihood units short)."""
    case = next(c for c in catalogue["cases"] if c["id"] == "Arabidopsis_163_nbinom2_log")
    fit, _ = validate.fit_case(catalogue, case, "expected")
    assert fit.optsummary.stages[1].optimizer.startswith("L-BFGS-B")
    assert fit.loglik >= case["refs"]["lme4"]["loglik"] - 1e-4
    assert fit.converged and not fit.singular
