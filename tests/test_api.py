"""The Python API as the README shows it: its "From Python" block runs as written (a fold trained in this
process, on a tiny data set standing in for the demo; a Predictor on a pandas expression table and
regions; variant effects), and ``import chromtune`` stays light."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import chromtune.data.demo
from chromtune.data.dataset import write_dataset
from conftest import random_dataset

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_snippet() -> str:
    """The first ```python block of the README's "From Python" section."""
    section = README.read_text().split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_import_chromtune_is_light_and_exports_the_api():
    code = ("import sys, chromtune; heavy = {'torch', 'pandas', 'ray', 'mlflow'} & set(sys.modules); "
            "assert not heavy, heavy; print(sorted(n for n in dir(chromtune) if not n.startswith('_')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert {"Predictor", "interpret_cells", "predict_variant_effects", "train_fold"} <= set(eval(run.stdout))


def test_the_readme_snippet_runs(tmp_path, monkeypatch):
    """Two new cell types carry the TPM of two of the data set's cell types, so their predictions must be
    those cell types' own (genes matched by name, the model's transform applied)."""
    snippet = readme_snippet()
    assert len(snippet.strip().splitlines()) <= 10
    ds = random_dataset(n_chroms=2, chrom_len=150_000, n_cells=12, stride=200, positive_rate=0.2)
    ds.attrs = {"expression_transform": "log1p", "assembly": "test"}
    write_dataset(tmp_path / "tiny.h5", ds)
    monkeypatch.setattr(chromtune.data.demo, "demo_path", lambda: tmp_path / "tiny.h5")  # the snippet's data set
    own = [3, 7]
    tpm = pd.DataFrame(np.expm1(ds.expression[own]).T, index=ds.genes, columns=["newA", "newB"])
    tpm.rename_axis("gene").to_csv(tmp_path / "new_tpm.tsv", sep="\t")
    positions = [100_500, 120_001, 139_900]
    bases = ["ACGTN"[ds.genome["chr1"][p - 1]] for p in positions]
    alts = ["G" if b != "G" else "T" for b in bases]
    (tmp_path / "variants.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
        f"chr1\t{p}\tv{k}\t{b}\t{a}\n" for k, (p, b, a) in enumerate(zip(positions, bases, alts))))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "README.md (From Python)", "exec"), scope)

    accessibility, model, effects = scope["accessibility"], scope["model"], scope["effects"]
    assert (tmp_path / "runs/fold0/stage2/best.pt").is_file()
    assert list(accessibility.columns) == ["chrom", "start", "end", "newA", "newB"]
    per_chrom = accessibility.groupby("chrom")["start"].agg(["min", "max", "count"])
    assert per_chrom.to_dict("index") == {"chr1": {"min": 100_000, "max": 139_800, "count": 200},
                                          "chr2": {"min": 0, "max": 19_800, "count": 100}}
    values = accessibility[["newA", "newB"]].to_numpy()
    assert ((values >= 0) & (values <= 1)).all() and values.std() > 0
    bins = np.flatnonzero(np.isin(ds.bin_chrom, [0, 1]) & (
        ((ds.bin_chrom == 0) & (ds.bin_start >= 100_000) & (ds.bin_start < 140_000))
        | ((ds.bin_chrom == 1) & (ds.bin_start < 20_000))))
    expected = model.probabilities(ds.expression[own], bins)
    np.testing.assert_allclose(values, expected, atol=1e-4)
    assert len(effects) == 6 and effects["pos"].tolist() == [p for p in positions for _ in range(2)]
    assert effects["cell_type"].tolist() == ["newA", "newB"] * 3 and effects["n_bins"].min() >= 1
    assert np.isfinite(effects["delta_logit"]).all() and (effects["delta_logit"] != 0).any()
