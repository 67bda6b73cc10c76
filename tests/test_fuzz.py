"""Generated hostile input against every entry point (bounded profile; the long campaign is
benchmarks/fuzz_campaign.py): every outcome is a documented error or a finite, honestly flagged result."""

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzzing import CASES, FAILURES, case_cli

PROFILE = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
EXAMPLES = {"formula": 150, "glmer": 60, "after_fit": 6, "meta": 40, "tree": 60, "gwas": 12, "singlecell": 8}


@pytest.mark.parametrize("entry", sorted(CASES))
def test_entry_point_never_fails_unexpectedly(entry):
    case = CASES[entry]

    @settings(PROFILE, max_examples=EXAMPLES[entry])
    @given(st.data())
    def run(data):
        status, detail = case(data)
        assert status not in FAILURES, f"{entry}: {status}: {detail}"

    run()


def test_cli_never_prints_a_traceback():
    @settings(PROFILE, max_examples=25)
    @given(st.data())
    def run(data):
        with tempfile.TemporaryDirectory() as tmp:
            status, detail = case_cli(data, Path(tmp))
        assert status not in FAILURES, f"cli: {status}: {detail}"

    run()
