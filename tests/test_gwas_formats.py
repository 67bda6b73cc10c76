"""Genotype formats (issue 22): the same cohort as .bed, .pgen, BGEN and VCF (converted by plink2,
tests/reference/gwas/make_formats.py) gives identical score tests; dosages (VCF DS, .pgen dosages, 16-bit BGEN
probabilities) agree to their precision; sample bookkeeping is strict."""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

pytest.importorskip("pgenlib")
pytest.importorskip("cbgen")
pytest.importorskip("cyvcf2")

D = Path(__file__).parent / "reference" / "gwas" / "formats"


def _scan(source, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = gk.gwas.null(source, D / "pheno.tsv", pheno_col="y", covar=D / "covar.tsv", trait="binary",
                         progress_bar=False, **kw)
        return m, gk.gwas.test(source, m, progress_bar=False).table


@pytest.fixture(scope="module")
def bed_scan():
    return _scan(str(D / "cohort"))


@pytest.mark.parametrize("open_source", [
    lambda: gk.gwas.open_genotypes(pfile=D / "cohort_p"),
    lambda: gk.gwas.open_genotypes(str(D / "cohort_p.pgen")),
    lambda: gk.gwas.open_genotypes(bgen=D / "cohort_b.bgen", sample=D / "cohort_b.sample"),
    lambda: gk.gwas.open_genotypes(bgen=D / "cohort_b.bgen"),
    lambda: gk.gwas.open_genotypes(vcf=D / "cohort.vcf"),
], ids=["pfile", "pgen-path", "bgen+sample", "bgen-ids", "vcf-GT"])
def test_every_format_gives_the_bed_results(open_source, bed_scan):
    m0, r0 = bed_scan
    src = open_source()
    assert src.n_samples == 205 and src.n_variants == 200
    m, r = _scan(src)
    assert m.tau == pytest.approx(m0.tau, rel=1e-10)
    assert (r["ID"].to_numpy() == r0["ID"].to_numpy()).all() and (r["A1"] == r0["A1"]).all()
    np.testing.assert_allclose(r["P"], r0["P"], rtol=1e-9)
    np.testing.assert_allclose(r["BETA"], r0["BETA"], rtol=1e-9)
    np.testing.assert_array_equal(r["N"], r0["N"])  # the missing calls counted alike


def test_dosages_agree_across_formats():
    _, a = _scan(gk.gwas.open_genotypes(vcf=D / "cohort_ds.vcf"))
    _, b = _scan(gk.gwas.open_genotypes(pfile=D / "cohort_dsp"))
    _, c = _scan(gk.gwas.open_genotypes(bgen=D / "cohort_dsb.bgen", sample=D / "cohort_dsb.sample"))
    la, lb, lc = (-np.log10(x["P"].to_numpy()) for x in (a, b, c))
    np.testing.assert_allclose(lb, la, atol=2e-3)  # .pgen stores dosages in steps of 2^-14
    np.testing.assert_allclose(lc, la, atol=2e-3)  # 16-bit probabilities
    assert np.all(np.abs(a["A1_FREQ"] - np.round(a["A1_FREQ"] * 300) / 300) > 0)  # fractional dosages were read


def test_cli_takes_plink2s_flags(tmp_path, capsys):
    from glmmkit.cli import main

    out = tmp_path / "step1"
    assert main(["gwas", "null", "--pfile", str(D / "cohort_p"), "--pheno", str(D / "pheno.tsv"), "--pheno-name",
                 "y", "--covar", str(D / "covar.tsv"), "--out", str(out)]) == 0
    for flags in (["--vcf", str(D / "cohort.vcf")], ["--bgen", str(D / "cohort_b.bgen"), "--sample",
                                                    str(D / "cohort_b.sample")], ["--bfile", str(D / "cohort")]):
        res = tmp_path / "res.tsv"
        assert main(["gwas", "test", *flags, "--null", str(out), "--out", str(res)]) == 0
        assert len(pd.read_csv(res, sep="\t")) == 200
    assert main(["gwas", "grm", "--pfile", str(D / "cohort_p"), "--out", str(tmp_path / "g")]) == 0
    with pytest.raises(SystemExit):
        main(["gwas", "null", "--pfile", str(D / "cohort_p"), "--bfile", str(D / "cohort"), "--pheno", "x",
              "--out", str(out)])
    assert main(["gwas", "test", "--pfile", str(D / "cohort_p"), "--sample", "x.sample", "--null", str(out),
                 "--out", str(tmp_path / "r2.tsv")]) == 2
    assert "--sample goes with --bgen" in capsys.readouterr().err


def test_bad_genotype_input(tmp_path):
    with pytest.raises(gk.InputError, match="no sample IDs"):
        gk.gwas.open_genotypes(bgen=D / "cohort_nosample.bgen")
    src = gk.gwas.open_genotypes(bgen=D / "cohort_nosample.bgen", sample=D / "cohort_b.sample")
    assert src.samples["IID"].iloc[0] == pd.read_csv(D / "cohort.fam", sep=" ", header=None)[1].iloc[0]
    # a VCF without GT or DS
    bad = tmp_path / "ad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n##contig=<ID=1>\n##FORMAT=<ID=AD,Number=R,Type=Integer,Description=\"d\">\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2\n1\t10\trs1\tA\tG\t.\t.\t.\tAD\t3,1\t2,2\n")
    with pytest.raises(gk.FileFormatError, match="no GT or DS"):
        gk.gwas.open_genotypes(vcf=bad)
    # samples that match nothing in the phenotype table
    other = tmp_path / "pheno.tsv"
    p = pd.read_csv(D / "pheno.tsv", sep="\t")
    p.assign(IID="X" + p["IID"], FID="X" + p["FID"]).to_csv(other, sep="\t", index=False)
    with pytest.raises(gk.InputError, match="no sample has genotypes"):
        gk.gwas.null(gk.gwas.open_genotypes(pfile=D / "cohort_p"), other, pheno_col="y", progress_bar=False)
    # a step-2 file that lacks some of step 1's samples
    m, _ = _scan(str(D / "cohort"))
    keep = tmp_path / "sub"
    for suf in (".pgen", ".pvar"):
        shutil.copy(D / f"cohort_p{suf}", keep.with_suffix(suf))
    psam = pd.read_csv(D / "cohort_p.psam", sep="\t")
    psam.iloc[:, 1] = psam.iloc[:, 1].where(psam.index > 0, "someone_else")
    psam.to_csv(keep.with_suffix(".psam"), sep="\t", index=False)
    with pytest.raises(gk.SampleMismatchError, match="not in"):
        gk.gwas.test(gk.gwas.open_genotypes(pfile=keep), m, progress_bar=False)
    # duplicated sample IDs are refused
    psam.iloc[1, 1] = psam.iloc[2, 1]
    psam.to_csv(keep.with_suffix(".psam"), sep="\t", index=False)
    with pytest.raises(gk.SampleMismatchError, match="more than once"):
        gk.gwas.open_genotypes(pfile=keep)
    # a .pgen whose .psam lists another number of samples
    pd.read_csv(D / "cohort_p.psam", sep="\t").iloc[:-1].to_csv(keep.with_suffix(".psam"), sep="\t", index=False)
    with pytest.raises(gk.FileFormatError, match="holds 205 samples"):
        gk.gwas.open_genotypes(pfile=keep)
    with pytest.raises(gk.InputError, match="exactly one genotype source"):
        gk.gwas.open_genotypes(pfile=keep, vcf=bad)


def test_other_sources_go_to_worker_processes(bed_scan):
    """The handles of .pgen, BGEN and the decoded VCF are picklable: step 2 in 2 local processes gives the
    same table."""
    m0, r0 = bed_scan
    for src in (gk.gwas.open_genotypes(pfile=D / "cohort_p"), gk.gwas.open_genotypes(vcf=D / "cohort.vcf"),
                gk.gwas.open_genotypes(bgen=D / "cohort_b.bgen", sample=D / "cohort_b.sample")):
        r = gk.gwas.test(src, m0, progress_bar=False, workers=2, chunk=70).table
        np.testing.assert_allclose(r["P"], r0["P"], rtol=1e-9)
