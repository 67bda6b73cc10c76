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
               "--dispformula", "~ mined", "--json", str(out)])
    assert rc == 0 and json.loads(out.read_text())["method"] == "REML (Laplace)"


@pytest.mark.slow  # 80-100 s on CI's 2 cores: the suite must stay under 5 minutes; `make demo` runs the same stories
def test_demo_runs_and_tells_the_stories(tmp_path, capsys):
    res = run_demo(tmp_path)
    text = capsys.readouterr().out
    assert "Birds" in text and "Clinics" in text
    assert 1.2 < res["birds"]["odds_ratio"] < 3.0  # simulated truth exp(0.8) = 2.2
    assert 1.1 < res["clinics"]["rate_ratio"] < 1.6  # simulated truth exp(0.25) = 1.28
    # simulated with a constant clinician effect (no drift): the AR(1) over months goes to rho = 1, no gain
    assert res["clinics"]["ar1"]["rho"] > 0.9 and res["clinics"]["ar1"]["lr"] < 3.84
    assert res["mating"]["se_ratio_nb_over_poisson"] > 1.5  # the Poisson GLMM's false confidence
    assert "Mating success" in text
    assert (tmp_path / "demo_results.json").exists()


def test_fit_command_takes_structures_reml_and_ordinal(tmp_path, capsys):
    from pathlib import Path

    ref_dir = Path(__file__).parent / "reference"
    out = tmp_path / "ar1.json"
    clinics = ref_dir / "covstruct" / "clinics.csv"
    rc = main(["fit", str(clinics), "--formula", "sessions ~ x + offset(log(opp)) + ar1(0 + month | clinic)",
               "--family", "poisson", "--json", str(out), "--report", str(tmp_path / "ar1.html"),
               "--report-intervals", "wald"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert {r["parameter"] for r in d["covpars"]} == {"sd", "rho"}
    assert "Wald confidence intervals" in (tmp_path / "ar1.html").read_text()  # the profile's: test_covstruct
    cbpp = tmp_path / "cbpp.csv"
    gk.datasets.load("cbpp").to_csv(cbpp, index=False)
    rc = main(["fit", str(cbpp), "--formula", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
               "--family", "binomial", "--factor", "period", "--reml", "--json", str(tmp_path / "reml.json")])
    assert rc == 0 and json.loads((tmp_path / "reml.json").read_text())["method"] == "REML (Laplace)"
    wine = ref_dir / "ordinal" / "wine.csv"
    rc = main(["fit", str(wine), "--formula", "rating ~ temp + contact + (1 | judge)", "--family", "ordinal",
               "--factor", "judge", "--json", str(tmp_path / "clmm.json")])
    assert rc == 0
    assert abs(json.loads((tmp_path / "clmm.json").read_text())["loglik"] - (-81.56541)) < 1e-3
    assert "cumulative link" in capsys.readouterr().out
    rc = main(["fit", str(wine), "--formula", "rating ~ temp + (1 | judge)", "--family", "ordinal", "--reml"])
    assert rc == 2 and "--family ordinal" in capsys.readouterr().err
