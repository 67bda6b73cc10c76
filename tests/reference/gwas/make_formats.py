"""The same small cohort in every genotype format (issue 22), converted by the real plink2 (Debian's plink2).
Run from the repository root:  python tests/reference/gwas/make_formats.py
Writes tests/reference/gwas/formats/: cohort.bed/.bim/.fam (simulated, 1% missing calls), and plink2's
cohort_p.pgen/.pvar/.psam, cohort.vcf (GT), cohort_b.bgen + .sample, cohort_nosample.bgen (the same BGEN with
its sample-identifier block removed), and a dosage set: cohort_ds.vcf (DS only, fractional), plink2's
cohort_dsp.pgen (dosages) and cohort_dsb.bgen (16-bit probabilities) from it; pheno.tsv and covar.tsv.
"""

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

import glmmkit as gk

OUT = Path("tests/reference/gwas/formats")
OUT.mkdir(parents=True, exist_ok=True)
tmp = OUT / "_sim"
info = gk.gwas.simulate_cohort(tmp, n_families=50, n_variants=200, seed=5)
geno = gk.gwas.Genotypes.open(tmp)
G, _ = geno.read(0, geno.n_variants)
rng = np.random.default_rng(7)
G[rng.random(G.shape) < 0.01] = np.nan  # missing calls
with gk.gwas.BedWriter(OUT / "cohort", geno.samples) as w:
    w.write(G, geno.variants)
shutil.copy(info["pheno"], OUT / "pheno.tsv")
shutil.copy(info["covar"], OUT / "covar.tsv")
for f in tmp.parent.glob(tmp.name + "*"):
    f.unlink()


def plink2(*args):
    subprocess.run(["plink2", "--silent", *args], check=True)


b = str(OUT / "cohort")
plink2("--bfile", b, "--make-pgen", "--out", str(OUT / "cohort_p"))
plink2("--bfile", b, "--export", "vcf", "id-paste=iid", "--out", str(OUT / "cohort"))
plink2("--bfile", b, "--export", "bgen-1.2", "bits=16", "id-paste=iid", "--out", str(OUT / "cohort_b"))

# the BGEN without its sample-identifier block: header flags bit 31 cleared, the block cut out
raw = (OUT / "cohort_b.bgen").read_bytes()
offset, lh = struct.unpack("<II", raw[:8])
flags = struct.unpack("<I", raw[4 + lh - 4 : 4 + lh])[0] & ~(1 << 31)
header = raw[4 : 4 + lh - 4] + struct.pack("<I", flags)
(OUT / "cohort_nosample.bgen").write_bytes(struct.pack("<I", lh) + header + raw[4 + offset :])

# a dosage VCF: hard calls moved by up to 0.3 towards the neighbouring count, DS only
ids = geno.samples["IID"].tolist()
var = geno.variants
D = np.clip(np.nan_to_num(G, nan=1.0) + rng.uniform(-0.3, 0.3, G.shape), 0, 2)
with open(OUT / "cohort_ds.vcf", "w") as fh:
    fh.write("##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=2>\n##contig=<ID=3>\n##contig=<ID=4>\n"
             "##FORMAT=<ID=DS,Number=A,Type=Float,Description=\"ALT dosage\">\n")
    fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(ids) + "\n")
    for j, r in var.iterrows():
        vals = "\t".join(f"{d:.4f}" for d in D[:, j])
        fh.write(f"{r.CHR}\t{r.POS}\t{r.ID}\t{r.A2}\t{r.A1}\t.\t.\t.\tDS\t{vals}\n")
plink2("--vcf", str(OUT / "cohort_ds.vcf"), "dosage=DS", "--make-pgen", "--out", str(OUT / "cohort_dsp"))
plink2("--pfile", str(OUT / "cohort_dsp"), "--export", "bgen-1.2", "bits=16", "--out", str(OUT / "cohort_dsb"))
for f in OUT.glob("*.log"):
    f.unlink()
print("wrote", sorted(p.name for p in OUT.iterdir()))
