"""Splits that leak - a "- Copy" file in train and test, a group on both sides - are refused by default, with
both ways out (split afresh / drop the held-out copies) in the CLI's words and as keyword arguments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ga_bench.balance_isic import main as bench_main
from gan_augment.cli import main as cli_main
from gan_augment.data import Manifest, build_manifest
from gan_augment.data.leaks import SplitLeakError, find_leaks, resolve_leaks
from gan_augment.training import Trainer, config_from_dict

from .conftest import make_image_folder


def leaky_folder(root: Path) -> tuple[Path, list[str]]:
    """A grey ImageFolder with its own train/val/test, and two training images copied into val and test."""
    for split, n, seed in (("train", 16, 0), ("val", 5, 1), ("test", 5, 2)):
        make_image_folder(root / split, {"glioma": n, "pituitary": n}, size=(36, 30), mode="L", seed=seed)
    src = sorted((root / "train" / "glioma").iterdir())
    copies = [root / "test" / "glioma" / f"{src[0].stem} - Copy{src[0].suffix}",
              root / "val" / "glioma" / f"{src[1].stem} - Copy{src[1].suffix}"]
    shutil.copy(src[0], copies[0])
    shutil.copy(src[1], copies[1])
    return root, [c.name for c in copies]


def test_find_leaks_by_group_and_by_content(tmp_path):
    folder, copies = leaky_folder(tmp_path / "d")
    with pytest.raises(SplitLeakError) as err:
        build_manifest(image_folder=str(folder), duplicates="keep")  # copies keep their own groups
    message = str(err.value)
    assert "2 image(s) in val/test are copies of" in message and "identical file" in message
    assert copies[0] in message and "respect_existing=False" in message and "on_leak='drop'" in message
    manifest, _ = build_manifest(image_folder=str(folder), duplicates="keep", on_leak="keep")
    leaks = find_leaks(manifest)
    assert sorted(Path(lk.path).name for lk in leaks) == sorted(copies)
    assert {lk.split for lk in leaks} == {"val", "test"} and all(lk.other_split == "train" for lk in leaks)
    assert find_leaks(manifest, by_content=False) == []  # no shared group: only the bytes tell
    # the default duplicate policy puts the copies in one group: found by group as well
    grouped, _ = build_manifest(image_folder=str(folder), on_leak="keep")
    assert {lk.why for lk in find_leaks(grouped, by_content=False)} == {"group"}


def test_drop_leaked_and_resplit_as_keyword_arguments(tmp_path):
    folder, copies = leaky_folder(tmp_path / "d")
    dropped, _ = build_manifest(image_folder=str(folder), on_leak="drop")
    names = {Path(p).name for p in dropped.paths}
    assert not names & set(copies) and len(dropped) == 16 * 2 + 5 * 2 * 2  # originals kept, copies gone
    assert sorted(Path(lk.path).name for lk in dropped.dropped_leaked) == sorted(copies)
    assert find_leaks(dropped) == []
    fresh, _ = build_manifest(image_folder=str(folder), respect_existing=False)
    assert len(fresh) == len(dropped) + 2 and find_leaks(fresh) == []  # copies kept, on one side with their twin
    m, leaks = resolve_leaks(fresh)
    assert m is fresh and leaks == []
    with pytest.raises(ValueError, match="on_leak must be one of"):
        resolve_leaks(fresh, on_leak="ignore")


def test_cli_split_refuses_with_its_own_flags_and_counts_what_it_dropped(tmp_path, capsys):
    folder, copies = leaky_folder(tmp_path / "d")
    out = tmp_path / "m.csv"
    assert cli_main(["split", "--image-folder", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "`--resplit`" in err and "`--drop-leaked`" in err and "respect_existing" not in err
    assert not out.exists()  # nothing half-written
    assert cli_main(["split", "--image-folder", str(folder), "--out", str(out), "--drop-leaked"]) == 0
    said = capsys.readouterr().out
    assert "leaked copies dropped: 2" in said and copies[0] in said
    assert cli_main(["split", "--image-folder", str(folder), "--out", str(out), "--resplit"]) == 0
    assert "leaked copies dropped: 0" in capsys.readouterr().out


def test_training_refuses_a_leaky_manifest_unless_told(tmp_path):
    folder, _ = leaky_folder(tmp_path / "d")
    manifest, _ = build_manifest(image_folder=str(folder), duplicates="keep", on_leak="keep")
    path = manifest.write(tmp_path / "leaky.csv")
    d = {"out": str(tmp_path / "run"), "data": {"manifest": str(path), "channels": 1},
         "model": {"generator": "dcgan", "discriminator": "dcgan", "resolution": 32, "z_dim": 8, "g_channels": 4,
                   "d_channels": 4},
         "train": {"steps": 1, "batch_size": 4, "progress": False, "tensorboard": False}}
    with pytest.raises(SplitLeakError, match=r"manifest .*leaky.csv: 2 image\(s\) in val/test .*`--drop-leaked`"):
        Trainer(config_from_dict(json.loads(json.dumps(d))))
    d["data"]["drop_leaked"] = True
    t = Trainer(config_from_dict(d))
    assert len(t.data.manifest) == len(manifest) - 2 and t.data.manifest_path == tmp_path / "run" / "manifest.csv"


def test_benchmark_refuses_then_lists_the_dropped_files_in_its_report(tmp_path, capsys):
    folder, copies = leaky_folder(tmp_path / "d")
    args = ["--preset", "quick", "--data-dir", str(folder), "--out", str(tmp_path / "b"), "--arms", "plain",
            "--seeds", "0", "--epochs", "1", "--image-size", "32", "--no-progress", "--num-workers", "0"]
    assert bench_main(args) == 2
    err = capsys.readouterr().err
    assert "--drop-leaked" in err and "--resplit" in err
    assert bench_main([*args, "--drop-leaked"]) == 0
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert sorted(Path(d["path"]).name for d in results["data"]["dropped_leaked"]) == sorted(copies)
    report = (tmp_path / "b" / "report.md").read_text()
    assert "**2 leaked held-out image(s) dropped**" in report and copies[0] in report
    m = Manifest.read(tmp_path / "b" / "manifest.csv")
    assert find_leaks(m) == []
