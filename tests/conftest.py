import json
import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
# the anchors' reference fits, carried by the repository (copied from the steering repo's shared/reference)
REF_DIR = Path(os.environ.get("GLMMKIT_REFERENCE", ROOT / "tests" / "reference" / "shared"))
EXTRA = ROOT / "tests" / "reference" / "extra_refs.json"


def ref_case(name: str):
    """(data, ref) of a reference case in tests/reference/shared; a missing case fails the test."""
    folder = REF_DIR / name
    if not folder.exists():
        pytest.fail(f"reference case {name} not found in {REF_DIR}: the repository must carry it")
    return pd.read_csv(folder / "data.csv"), json.loads((folder / "ref.json").read_text())


def extra_ref(key: str) -> dict:
    return json.loads(EXTRA.read_text())[key]


def assert_fixef_matches(fit, ref_fixef: dict, *, abs_tol: float = 1e-4, se_rel: float = 0.02) -> None:
    """A fit's fixed effects (1e-3 relative) and standard errors (``se_rel``) against an R reference's
    ``{lme4 name: {"estimate", "std_error"}}``."""
    from glmmkit import lme4_name

    est = {lme4_name(k): v for k, v in fit.fixef.items()}
    se = {lme4_name(k): v for k, v in fit.coef_table["std_error"].items()}
    for k, v in ref_fixef.items():
        assert est[k] == pytest.approx(v["estimate"], rel=1e-3, abs=abs_tol), k
        assert se[k] == pytest.approx(v["std_error"], rel=se_rel), k


@pytest.fixture(params=["dense", "sparse"])
def cross_storage(request, monkeypatch):
    """Force the storage of the blocked factor's cross block (engine/blocked.py's rule) each way."""
    import glmmkit.engine.blocked as blocked

    monkeypatch.setattr(blocked, "SPARSE_COST", 1e12 if request.param == "dense" else 0.0)
    monkeypatch.setattr(blocked, "DENSE_ALWAYS", 0.0)  # small test blocks would otherwise always be dense
    return request.param
