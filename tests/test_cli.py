"""The command line and the demo."""

import json

import pytest

import glmmkit as gk
from glmmkit.cli import main
from glmmkit.demo import run_demo


def test_fit_command_writes_json(tmp_path, capsys):
    csv = tmp_path / "cbpp.csv"
    gk.datasets.load("cbpp").to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    rc = main(["fit", str(csv), "--formula", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
               "--family", "binomial", "--factor", "period", "--json", str(out), "--names", "lme4"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["family"] == "binomial" and "period2" in d["fixef"]
    assert abs(d["loglik"] - (-92.0266)) < 1e-3
    assert "Fixed effects" in capsys.readouterr().out


def test_fit_command_reports_bad_input(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    gk.datasets.load("cbpp").to_csv(csv, index=False)
    rc = main(["fit", str(csv), "--formula", "incidence ~ nope + (1 | herd)", "--family", "poisson"])
    assert rc == 2
    assert "unknown column 'nope'" in capsys.readouterr().err


def test_fit_command_takes_the_new_families_hurdles_and_dispersion_models(tmp_path, capsys):
    sal = gk.datasets.load("salamanders")
    csv = tmp_path / "sal.csv"
    sal.to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    rc = main(["fit", str(csv), "--formula", "count ~ mined + (1 | site)", "--family", "truncated_nbinom2",
               "--ziformula", "~ mined", "--dispformula", "~ mined", "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    ref = gk.glmer("count ~ mined + (1 | site)", sal, "truncated_nbinom2", ziformula="~ mined", dispformula="~ mined")
    assert abs(d["loglik"] - ref.loglik) < 1e-8
    capsys.readouterr()
    rc = main(["fit", str(csv), "--formula", "count ~ mined + (1 | site)", "--family", "gaussian",
               "--dispformula", "~ mined"])
    assert rc == 2 and "--ml" in capsys.readouterr().err


@pytest.mark.slow  # 80-100 s on CI's 2 cores: the suite must stay under 5 minutes; `make demo` runs the same stories
def test_demo_runs_and_tells_the_stories(tmp_path, capsys):
    res = run_demo(tmp_path)
    text = capsys.readouterr().out
    assert "Birds" in text and "Clinics" in text
    assert 1.2 < res["birds"]["odds_ratio"] < 3.0  # simulated truth exp(0.8) = 2.2
    assert 1.1 < res["clinics"]["rate_ratio"] < 1.6  # simulated truth exp(0.25) = 1.28
    assert res["mating"]["se_ratio_nb_over_poisson"] > 1.5  # the Poisson GLMM's false confidence
    assert "Mating success" in text
    assert (tmp_path / "demo_results.json").exists()
