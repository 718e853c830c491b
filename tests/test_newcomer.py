"""A newcomer's first hour: the embedded demo data, the default generator and dose, the shipped weights' licence,
and a repository a reader can use (no machine paths, no oversized files, a README per results folder)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from ga_bench.presets import PRESETS
from ga_bench.protocol import (DEMO_DATA, BenchmarkConfig, GeneratorMismatch, check_generator, prepare_manifest,
                               rare_classes_of, rare_classes_source)
from gan_augment import GANBalancedDataset
from gan_augment._io import display_path
from gan_augment.cli import main as cli_main
from gan_augment.data import Manifest
from gan_augment.pretrained import (DEFAULT_PRETRAINED, PretrainedUnavailable, list_pretrained, pretrained_info,
                                    pretrained_path)

from .conftest import DEMO_DIR, REPO

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


# ------------------------------------------------------------------------------------------------ demo data
def test_demo_data_is_a_slice_of_the_default_generators_split():
    demo, full = Manifest.read(DEMO_DIR / "manifest.csv"), Manifest.read(DEMO_DIR / "ham10000_split.csv")
    assert full.hash == pretrained_info(DEFAULT_PRETRAINED)["manifest_hash"]
    demo.check_subset_of(full)
    counts = demo.counts()
    assert sum(counts["train"].values()) == 1200 and counts["train"]["df"] == 14
    assert max(counts["val"].values()) == max(counts["test"].values()) == 40
    assert all(Path(p).is_file() for p in demo.paths)
    assert {Image.open(p).size for p in demo.paths[:50]} == {(64, 64)}
    size = sum(f.stat().st_size for f in DEMO_DIR.rglob("*") if f.is_file())
    assert size < 10e6  # the budget for an embedded set
    text = (DEMO_DIR / "README.md").read_text()
    assert "CC BY-NC-SA 4.0" in text and "10.1038/sdata.2018.161" in text


def test_demo_preset_takes_the_embedded_data_and_accepts_the_default_generator(tmp_path):
    cfg = BenchmarkConfig(**{**PRESETS["demo"], "out": str(tmp_path)})
    assert cfg.data_dir == DEMO_DATA and cfg.generator == f"pretrained:{DEFAULT_PRETRAINED}"
    assert cfg.arms == ["aug", "aug_oversample", "aug_weighted", "gan_light"]
    manifest = prepare_manifest(cfg, tmp_path)
    assert manifest.source_hash == pretrained_info(DEFAULT_PRETRAINED)["manifest_hash"] != manifest.hash
    path = str(pretrained_path(DEFAULT_PRETRAINED))
    assert check_generator(path, manifest, from_full_split=True)["step"] == 16500
    with pytest.raises(GeneratorMismatch, match="whole training split that this run only slices"):
        check_generator(path, manifest)  # without the named leave, a slice's generator must be its own


def test_a_demo_row_moved_to_another_split_is_refused(tmp_path):
    rows = (DEMO_DIR / "manifest.csv").read_text().splitlines()
    header, first = rows[0], rows[1].split(",")
    first[3] = "train" if first[3] != "train" else "test"  # a held-out image claimed for training, or back
    first[0] = str(DEMO_DIR / first[0])
    (tmp_path / "m.csv").write_text("\n".join([header, ",".join(first)] + [
        ",".join([str(DEMO_DIR / r.split(",")[0])] + r.split(",")[1:]) for r in rows[2:]]) + "\n")
    cfg = BenchmarkConfig(out=str(tmp_path / "b"), split_manifest=str(tmp_path / "m.csv"),
                          source_split=str(DEMO_DIR / "ham10000_split.csv"))
    with pytest.raises(ValueError, match=r"1 of its 1678 rows are not rows of the split .* e\.g\. \['" + first[0].split("/")[-2]):
        prepare_manifest(cfg, tmp_path / "b")
    assert not (tmp_path / "b" / "manifest.csv").exists()


def test_no_data_is_a_clear_error_not_a_download(tmp_path, monkeypatch):
    import ga_bench.data_source as protocol

    monkeypatch.setattr(protocol, "default_data_dir", lambda: None)
    with pytest.raises(ValueError, match="no data given: pass --data-dir .* demo:ham10000-64 .* --dataset dermamnist"):
        prepare_manifest(BenchmarkConfig(out=str(tmp_path)), tmp_path)


# ------------------------------------------------------------------------------------------------ arms
def test_the_product_benchmark_offers_its_arms_the_studies_add_theirs(tmp_path, monkeypatch, capsys):
    import ga_bench.protocol as protocol
    import studies.arms as study_arms
    from ga_bench.balance_isic import main as bench_main

    assert protocol.ARMS == ("plain", "aug", "aug_oversample", "aug_weighted", "gan", "gan_weighted", "gan_filtered",
                             "gan_light") == protocol.DEFAULT_ARMS
    assert {a.name for a in study_arms.STUDY_ARMS} == {"gan_rare", "gan_matched", "gan_real_last", "gan_crt",
                                                        "gan_real_ft", "gan_uniform"}
    assert all(protocol.ARM_SPECS[a.name].origin == "studies.arms" for a in study_arms.STUDY_ARMS)
    for name in [a.name for a in study_arms.STUDY_ARMS]:  # a process that never imported the studies
        monkeypatch.delitem(protocol.ARM_SPECS, name)
    assert bench_main(["--preset", "quick", "--out", str(tmp_path), "--arms", "aug,gan_rare"]) == 2
    assert "run through benchmarks/studies/balance_arms.py" in capsys.readouterr().err
    with pytest.raises(ValueError, match="already registered by ga_bench"):
        protocol.register_arm(protocol.ArmSpec("gan_light"))


# ------------------------------------------------------------------------------------------------ bad data
@pytest.mark.parametrize("counts, message", [
    ({"a": 40}, r"the data has 1 class \(\['a'\]\); a classifier needs at least two"),
    ({"a": 40, "b": 3}, r"classes with fewer than 5 images in all: \{'b': 3\}"),
])
def test_data_the_benchmark_cannot_answer_on_is_refused_before_any_work(tmp_path, counts, message):
    from .conftest import make_image_folder

    folder = make_image_folder(tmp_path / "d", counts, size=(16, 16))
    with pytest.raises(ValueError, match=message):
        prepare_manifest(BenchmarkConfig(data_dir=str(folder), out=str(tmp_path / "o")), tmp_path / "o")
    assert not (tmp_path / "o" / "manifest.csv").exists()  # nothing half-written


def test_a_class_missing_from_a_split_is_named(tmp_path):
    from .conftest import make_image_folder

    root = tmp_path / "d"
    make_image_folder(root / "train", {"a": 20, "b": 20}, size=(16, 16))
    make_image_folder(root / "val", {"a": 5, "b": 5}, size=(16, 16), seed=1)
    make_image_folder(root / "test", {"a": 5}, size=(16, 16), seed=2)
    with pytest.raises(ValueError, match=r"classes \['b'\] have no test image, so the benchmark can neither measure"):
        prepare_manifest(BenchmarkConfig(data_dir=str(root), out=str(tmp_path / "o")), tmp_path / "o")
    assert not (tmp_path / "o" / "manifest.csv").exists()


# ------------------------------------------------------------------------------------------------ rare classes
def test_rare_class_wording_says_which_rule_chose():
    labels = [0] * 100 + [1] * 58 + [2] * 70 + [3] * 90
    names = ["a", "b", "c", "d"]
    assert rare_classes_of(labels, names) == ["b"]  # none below 5 %: the smallest stands in
    text = rare_classes_source(labels, names)
    assert "no class has fewer than 5%" in text and "smallest class stands in (b: 58% of the largest)" in text
    skewed = [0] * 100 + [1] * 3 + [2] * 50
    assert rare_classes_of(skewed, names[:3]) == ["b"]
    assert rare_classes_source(skewed, names[:3]) == "derived: training count below 5% of the largest class's"
    assert rare_classes_source(skewed, names[:3], given=["c"]) == "given (--rare-classes)"


# ------------------------------------------------------------------------------------------------ generators
def test_one_generator_ships_the_others_load_from_the_repository():
    assert list_pretrained() == [DEFAULT_PRETRAINED]
    every = list_pretrained(archived=True)
    assert {"ham10000-64", "ham10000-64-ac", "ham10000-64-long", "ham10000-64-lite128"} <= set(every)
    assert pretrained_path("ham10000-64").is_relative_to(REPO / "benchmarks" / "results")
    shipped = sum(f.stat().st_size for f in (REPO / "gan_augment" / "pretrained").glob("*.safetensors"))
    assert shipped < 20e6  # one generator and its discriminator
    for row in list_pretrained(archived=True, details=True):
        assert row["licence"] == "CC BY-NC-SA 4.0" and row["default"] == (row["name"] == DEFAULT_PRETRAINED)


def test_an_archived_generator_outside_the_repository_says_where_it_is(tmp_path, monkeypatch):
    import gan_augment.pretrained as pretrained

    monkeypatch.setattr(pretrained, "REPO_ROOT", tmp_path)  # an installed package, no clone beside it
    with pytest.raises(PretrainedUnavailable, match="does not ship in the package: a clone of the gan-augment "
                                                    "repository keeps it at benchmarks/results/pretrained_ham10000_64/"):
        pretrained_path("ham10000-64")
    assert "ham10000-64" not in pretrained.list_pretrained(archived=True)


def test_pretrained_command_prints_each_licence(capsys):
    assert cli_main(["pretrained"]) == 0
    out = capsys.readouterr().out
    assert "MIT" in out and f"pretrained:{DEFAULT_PRETRAINED}  64 px, 7 classes, licence CC BY-NC-SA 4.0" in out
    assert "[default, with discriminator]" in out and "ham10000-64-long" not in out
    assert cli_main(["pretrained", "--archived"]) == 0
    listed = capsys.readouterr().out
    assert "pretrained:ham10000-64-long  64 px, 7 classes, licence CC BY-NC-SA 4.0  [repository only]" in listed
    assert "pretrained:ham10000-128  128 px, 7 classes, licence CC BY-NC-SA 4.0  [repository only, with " in listed
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "CC BY-NC-SA 4.0" in pyproject and "WEIGHTS_LICENSE.md" in pyproject
    assert "CC BY-NC-SA 4.0" in (REPO / "gan_augment" / "pretrained" / "WEIGHTS_LICENSE.md").read_text()


class _Real(Dataset):
    classes = CLASSES
    targets = [5] * 12 + [3] * 2 + [0] * 2 + [1] * 2 + [2] * 2 + [4] * 2 + [6] * 2

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return Image.fromarray(np.full((64, 64, 3), 10 * i, np.uint8)), self.targets[i]


def test_balanced_dataset_takes_a_shipped_generator_and_the_light_dose_by_default():
    ds = GANBalancedDataset(_Real(), f"pretrained:{DEFAULT_PRETRAINED}", device="cpu", seed=0)
    counts = ds.class_counts()
    assert counts["nv"]["synthetic"] == 0  # the majority class gets none
    for name in ("akiec", "bcc", "bkl", "df", "mel", "vasc"):  # at most one synthetic image per real one
        assert counts[name]["real"] == counts[name]["synthetic"] == 2
    image, label = ds[len(_Real()) + 0]
    assert isinstance(image, Image.Image) and image.size == (64, 64) and label == 0
    with pytest.raises(PretrainedUnavailable, match="no pretrained generator 'nope'"):
        GANBalancedDataset(_Real(), "pretrained:nope", device="cpu")
    filled = GANBalancedDataset(_Real(), f"pretrained:{DEFAULT_PRETRAINED}", device="cpu", max_synthetic_fraction=0.9,
                                bank_size=200)
    assert filled.class_counts()["df"]["synthetic"] == 10  # fill-to-majority stays available by name (capped 9:1)


# ------------------------------------------------------------------------------------------------ repository
def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / p for p in out.decode().split("\0") if p and (REPO / p).is_file()]


@pytest.fixture(scope="module")
def tracked():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    return _tracked()


def test_no_committed_file_names_a_machines_folder(tracked):
    text_ext = {".md", ".json", ".yaml", ".yml", ".csv", ".txt", ".py", ".jsonl", ".toml", ".cfg", ".sh"}
    bad = []
    for path in tracked:
        if path.suffix == ".safetensors":  # a weights file's JSON header (its metadata: the training config's paths)
            with path.open("rb") as fh:
                text = fh.read(int.from_bytes(fh.read(8), "little")).decode("utf-8", errors="replace")
        elif path.suffix in text_ext:
            text = path.read_text(encoding="utf-8", errors="replace")
        else:
            continue
        for marker in ("/work/", "/home/", "/root/", "/Users/", "C:\\Users"):
            if marker in text and path.name != Path(__file__).name:
                bad.append(f"{path.relative_to(REPO)} ({marker})")
    assert not bad, f"absolute paths of a machine in committed files: {bad[:10]}"


def test_no_new_file_over_2_mb_outside_the_generators(tracked):
    big = [p.relative_to(REPO).as_posix() for p in tracked if p.stat().st_size > 2_000_000
           and not (p.suffix == ".safetensors" and ("gan_augment/pretrained/" in p.as_posix()
                                                   or "/generator/" in p.as_posix()))]
    assert not big, f"files over 2 MB (grids as JPEG, manifests once): {big}"


def test_every_results_folder_says_its_question_answer_and_command():
    results = REPO / "benchmarks" / "results"
    index = (results / "README.md").read_text()
    missing, no_command, unindexed = [], [], []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        readme = folder / "README.md"
        if not readme.is_file():
            missing.append(folder.name)
            continue
        text = readme.read_text()
        if not any(k in text for k in ("python benchmarks/", "gan-augment ", "benchmarks/studies/", "make ")):
            no_command.append(folder.name)
        if f"({folder.name}/" not in index:
            unindexed.append(folder.name)
    assert not missing, f"results folders without a README: {missing}"
    assert not no_command, f"results READMEs without the command that reproduces them: {no_command}"
    assert not unindexed, f"folders missing from benchmarks/results/README.md: {unindexed}"


def test_display_path_keeps_machine_folders_out_of_records(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "runs" / "x") == "runs/x"
    assert display_path("rel/a.csv") == "rel/a.csv"
    assert display_path(Path.home() / ".cache" / "w.pth").startswith("~/")
    from gan_augment.provenance import run_metadata

    cmd = run_metadata(["gan-augment", "train", str(tmp_path / "c.yaml"), "--set", f"out={tmp_path / 'o'}"])["command"]
    assert cmd == "gan-augment train c.yaml --set out=o"


def test_readme_is_for_users():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 260
    for doc in ("docs/generator-study.md", "docs/benchmark.md", "docs/reference.md"):
        assert doc in readme and (REPO / doc).is_file()
    assert f"pretrained:{DEFAULT_PRETRAINED}" in readme and "runs/ham10000_256/generator.safetensors" not in readme
    assert json.loads((REPO / "gan_augment" / "pretrained" / "index.json").read_text())[DEFAULT_PRETRAINED]
    torch.manual_seed(0)  # nothing above may leave global state another test reads
