import json
import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = Path(os.environ.get("GLMMKIT_REFERENCE", ROOT.parent / "shared" / "reference"))
EXTRA = ROOT / "tests" / "reference" / "extra_refs.json"


def ref_case(name: str):
    """(data, ref) of a reference case in ../shared/reference."""
    folder = REF_DIR / name
    if not folder.exists():
        pytest.skip(f"reference case {name} not found in {REF_DIR} (set GLMMKIT_REFERENCE)")
    return pd.read_csv(folder / "data.csv"), json.loads((folder / "ref.json").read_text())


def extra_ref(key: str) -> dict:
    return json.loads(EXTRA.read_text())[key]
