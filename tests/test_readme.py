"""The README stays true: its two commands match the Makefile and CI, its results table matches the committed
result files, and its plug-in snippet runs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

import studies.arms  # noqa: F401  (the committed folders' study arms must be known to draw their rows)
import studies.teach  # noqa: F401  (and the regimes study's mechanisms)
from ga_bench.results_table import table_files, update_readme

from .conftest import REPO

README = (REPO / "README.md").read_text()


def test_two_commands_first_and_ci_runs_the_test_command():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo: setup\n\t.*benchmarks/balance_isic.py --preset demo", makefile, re.M)
    assert re.search(r"^test: setup\n\t.*-m pytest", makefile, re.M)
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "make test"


def test_results_tables_come_from_committed_files():
    files = table_files(REPO)
    assert files[0][:2] == (REPO / "README.md", "benchmarks/results") and files[0][2]
    assert files[1] == (REPO / "docs" / "benchmark.md", "../benchmarks/results", None)
    for readme, results_dir, folders in files:
        assert update_readme(readme, results_dir, write=False, folders=folders), \
            f"{readme} results table is stale: run `python benchmarks/results_table.py --write`"


def test_plug_in_snippet_runs(tmp_path, monkeypatch):
    snippet = re.search(r"## Use it in your training code\n\n```python\n(.*?)```", README, re.S).group(1)

    class RealDS(Dataset):  # a user's dataset: raw PIL images + labels, at the shipped generator's 64 px
        classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
        targets = [5] * 20 + [3] * 2 + [0] * 3 + [1] * 3 + [2] * 3 + [4] * 3 + [6] * 2

        def __len__(self):
            return len(self.targets)

        def __getitem__(self, i):
            return Image.fromarray(np.full((64, 64, 3), i * 5, np.uint8)), self.targets[i]

    torch.manual_seed(0)
    code = snippet.replace("num_workers=4", "num_workers=0")  # the snippet as written, the shipped generator included
    namespace = {"real_ds": RealDS()}
    exec(compile(code, "README.md", "exec"), namespace)
    images, labels = next(iter(namespace["loader"]))
    assert images.shape == (64, 3, 64, 64) and images.dtype == torch.float32
    ds = namespace["train_ds"]
    assert len(ds) == 36 + 16  # the default dose: one synthetic image per real one, none for the majority class
    assert ds.class_counts()["nv"]["synthetic"] == 0 and ds.class_counts()["df"]["synthetic"] == 2
    counts = np.bincount(labels.numpy(), minlength=7)  # drawn class-balanced: no class dominates the batch
    assert counts.max() < 0.4 * len(labels)


def test_results_table_rows_and_study_tables(tmp_path):
    from ga_bench.results_table import BEGIN, END, README_RUNS, results_table

    run = tmp_path / "benchmarks" / "results" / "study" / "a"
    run.mkdir(parents=True)
    arms = {a: {"balanced_accuracy": v} for a, v in
            {"aug": [0.30, 0.34], "aug_oversample": [0.40, 0.42], "gan": [0.35, 0.37], "gan_light": [0.41, 0.45]}.items()}
    ci = {"mean": 0.02, "ci_low": -0.01, "ci_high": 0.05}
    (run / "results.json").write_text(__import__("json").dumps({
        "meta": {"regime": "full", "gpu": None}, "config": {"preset": "quick", "seeds": [0, 1], "image_size": 64},
        "arms": arms, "comparison": {"best_baseline": "aug_oversample", "gan": {"balanced_accuracy": ci},
                                     "gan_light": {"balanced_accuracy": ci}},
        "generator": {"step": 5000, "check": {"generator": {"resolution": 32}, "distribution": {
            "lite0": {"overall": {"fid": 75.64, "c2st": 0.9712}}}}}}))
    base = run.parent / "b"  # baselines only so far: the best of them still gets a row
    base.mkdir()
    (base / "results.json").write_text(__import__("json").dumps({
        "meta": {"regime": "full", "gpu": None}, "config": {"preset": "cpu64", "seeds": [0], "image_size": 64},
        "arms": {"aug": {"balanced_accuracy": [0.517]}, "aug_weighted": {"balanced_accuracy": [0.40]}}}))
    table = results_table(".", run.parent).splitlines()
    assert "| cpu64 | full | CPU | 1 | 64 | - | aug: 51.7 | -: - | - | - | - |" in table[-1]
    (base / "results.json").unlink()
    base.rmdir()
    table = results_table(".", run.parent).splitlines()
    assert len(table) == 4  # header, rule, one row per GAN arm
    assert table[2].startswith("| [a](a/report.md) | quick | full | CPU | 2 | 64 | 32 px, 5000 steps, FID 75.6 (lite0), "
                               "probe 97 % | aug_oversample: 41.0 ± 1.4 | gan: 36.0 ± 1.4 | +2.0 [-1.0, +5.0] |")
    assert "| gan_light: 43.0 ± 2.8 |" in table[3]
    # a run with another cap than the protocol's default for the arm says so
    r = __import__("json").loads((run / "results.json").read_text())
    r["arms"]["gan_light"]["synthetic_cap"], r["arms"]["gan"]["synthetic_cap"] = 0.25, 0.9
    (run / "results.json").write_text(__import__("json").dumps(r))
    table = results_table(".", run.parent).splitlines()
    assert "| gan_light (synthetic share ≤ 0.25): 43.0 ± 2.8 |" in table[3] and "| gan: 36.0 ± 1.4 |" in table[2]
    # a report over every finished run: a row counts the seeds its comparison paired, not the seeds asked for
    r = __import__("json").loads((run / "results.json").read_text())
    r["comparison"]["gan"]["seeds"] = [0]
    (run / "results.json").write_text(__import__("json").dumps(r))
    table = results_table(".", run.parent).splitlines()
    assert table[2].startswith("| [a](a/report.md) | quick | full | CPU | 1 | 64 |")
    assert table[3].startswith("| [a](a/report.md) | quick | full | CPU | 2 | 64 |")
    (tmp_path / "README.md").write_text(f"x\n{BEGIN}\n{END}\n")
    (run.parent / "README.md").write_text(f"# study\n{BEGIN}\nold\n{END}\nmore\n")
    assert table_files(tmp_path) == [(tmp_path / "README.md", "benchmarks/results", README_RUNS),
                                     (run.parent / "README.md", ".", None)]
    assert len(results_table(".", run.parent, folders=("a",)).splitlines()) == 4  # a chosen run only
    assert len(results_table(".", run.parent, folders=("zzz",)).splitlines()) == 3  # none: the placeholder row
    assert not update_readme(run.parent / "README.md", ".", write=True)
    assert update_readme(run.parent / "README.md", ".", write=False)
    text = (run.parent / "README.md").read_text()
    assert "old" not in text and "| [a](a/report.md) |" in text and text.endswith(f"{END}\nmore\n")
    (run.parent / "other.md").write_text(f"# study\n{BEGIN}\nno end marker\n")
    with pytest.raises(ValueError, match=r"other.md: no marker line '<!-- results-table:end -->'"):
        update_readme(run.parent / "other.md", ".", write=True)
    assert (run.parent / "other.md").read_text().endswith("no end marker\n")  # untouched
