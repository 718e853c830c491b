"""The external set's preparation control (issue #43, item 2): held-out images that the external folder also holds,
matched by name, scored from the training file, un-squashed and centre-cropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from gan_augment.data import Manifest
from studies.external_frames import main, pairs_of

from .conftest import make_image_folder


def _setup(tmp_path: Path):
    data = make_image_folder(tmp_path / "d", {"a": 6, "b": 6}, size=(40, 30))
    paths = sorted(str(p) for p in data.glob("*/*"))
    labels = [Path(p).parent.name for p in paths]
    splits = ["train" if int(Path(p).stem[-3:]) < 3 else "test" for p in paths]  # 3 train + 3 test per class
    manifest = Manifest(paths=paths, labels=labels, groups=paths, splits=splits)
    manifest.write(tmp_path / "manifest.csv")
    ext = tmp_path / "ext" / "Train"
    for folder, stem, new in (("Alpha", "a_003", "a_003"), ("Alpha", "a_004", "a_004(1)"),  # a renamed copy
                              ("Beta", "b_005", "b_005"), ("Alpha", "a_000", "a_000"),  # a training image: not held out
                              ("Zeta", "b_004", "b_004")):  # a folder the class map leaves out
        (ext / folder).mkdir(parents=True, exist_ok=True)
        src = next(p for p in paths if Path(p).stem == stem)
        Image.open(src).convert("RGB").resize((30, 30)).save(ext / folder / f"{new}.jpg")  # squashed to a square
    return manifest, tmp_path / "ext"


def test_pairs_are_the_held_out_images_the_external_folder_also_holds(tmp_path):
    manifest, ext = _setup(tmp_path)
    pairs = pairs_of(manifest, str(ext), "Alpha=a,Beta=b", "test")
    got = sorted((Path(t).stem, Path(e).name, lab) for t, e, lab in pairs)
    assert got == [("a_003", "a_003.jpg", "a"), ("a_004", "a_004(1).jpg", "a"), ("b_005", "b_005.jpg", "b")]
    assert pairs_of(manifest, str(ext), "Alpha=a,Beta=b", "train")[0][2] == "a"  # a_000 is a training image


def test_the_control_scores_each_classifier_three_ways(tmp_path):
    timm = pytest.importorskip("timm")
    from gan_augment.classifier_file import save_classifier

    manifest, ext = _setup(tmp_path)
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=2)
    clf = save_classifier(model.eval(), tmp_path / "c_classifier.safetensors", family="timm", name="test_efficientnet",
                          class_names=["a", "b"], image_size=32, mean=[0.5] * 3, std=[0.5] * 3)
    out = main(["--manifest", str(tmp_path / "manifest.csv"), "--classifiers", str(tmp_path / "*_classifier.safetensors"),
                "--external", str(ext), "--class-map", "Alpha=a,Beta=b", "--out", str(tmp_path / "frames")])
    assert out["n_images"] == 3 and out["per_class"] == {"a": 2, "b": 1}
    row = out["classifiers"][0]
    assert row["classifier"] == clf.name and len(out["classifiers"]) == 1
    assert row["training file"]["same_prediction_as_training_file"] == 1.0
    for way in ("training file", "external square, unsquash_4x3", "external square, center_crop"):
        assert 0 <= row[way]["balanced_accuracy"] <= 1 and 0 <= row[way]["macro_auroc"] <= 1
        assert out["mean"][way] == row[way]  # one classifier: the mean is its row
    d = out["unsquash_minus_training_file_ba"]
    assert d["mean"] == pytest.approx(row["external square, unsquash_4x3"]["balanced_accuracy"]
                                      - row["training file"]["balanced_accuracy"])
    assert json.loads((tmp_path / "frames.json").read_text())["n_images"] == 3
    assert "| training file |" in (tmp_path / "frames.md").read_text()
    with pytest.raises(SystemExit, match="neither a named set"):
        main(["--manifest", str(tmp_path / "manifest.csv"), "--classifiers", str(clf), "--external", str(ext),
              "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="no such file"):
        main(["--manifest", str(tmp_path / "manifest.csv"), "--classifiers", str(tmp_path / "none.safetensors"),
              "--external", str(ext), "--class-map", "Alpha=a", "--out", str(tmp_path / "x")])
