"""The external test set: scanning and mapping another source's ImageFolder, leaving out what cannot be a fair test
image (conflicting copies, the training data's own files, copies and near-copies of training images), restoring
squashed 4:3 frames, and the benchmark scoring every classifier on it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ga_bench import runner as R
from ga_bench.balance_isic import main as bench_main
from ga_bench.external import external_metrics, near_copies
from gan_augment.data.external import parse_class_map, scan_external, training_copies
from gan_augment.data.transforms import resize_to_square

from .conftest import make_image_folder

CLASSES = ["akiec", "mel", "nv"]


def test_class_maps_in_words():
    assert parse_class_map("melanoma=mel, seborrheic keratosis=bkl") == {"melanoma": "mel",
                                                                         "seborrheic keratosis": "bkl"}
    for bad, why in [("melanoma", "external_class=training_class"), ("a=b,a=c", "mapped twice"),
                     ("=mel", "external_class=training_class")]:
        with pytest.raises(ValueError, match=why):
            parse_class_map(bad)


@pytest.fixture
def other_clinic(tmp_path):
    root = tmp_path / "other"
    make_image_folder(root / "Train", {"melanoma": 6, "nevus": 5, "wart": 3}, seed=5)
    make_image_folder(root / "Test", {"melanoma": 2, "nevus": 2}, seed=6)
    # the same file filed as melanoma and nevus (unknowable label), and a second copy within one class
    shutil.copy(root / "Train" / "melanoma" / "melanoma_000.jpg", root / "Train" / "nevus" / "dup.jpg")
    shutil.copy(root / "Train" / "nevus" / "nevus_001.png", root / "Test" / "nevus" / "again.png")
    return root


def test_another_sources_folder_mapped_with_what_is_left_out_and_why(other_clinic):
    ext = scan_external(other_clinic, "melanoma=mel,nevus=nv", CLASSES, drop_same_names=["nevus_003.jpg"])
    # mel: 8 files less the one also filed as nevus; nv: 7 own files (+ that conflict and a copy, both out) less the
    # one named like a training image
    assert ext.counts == {"akiec": 0, "mel": 6 + 2 - 1, "nv": 5 + 2 - 1}
    assert ext.unmapped == {"wart": 3}
    whys = sorted(d["why"] for d in ext.dropped)
    assert whys == ["a copy of another external file", "named like an image of the training data",
                    "the same file under two classes", "the same file under two classes"]
    assert set(ext.manifest.splits) == {"external"}
    assert ext.scored_classes(5) == ["mel", "nv"] and ext.scored_classes(7) == ["mel"]


def test_a_class_map_that_names_what_is_not_there_is_refused(other_clinic):
    with pytest.raises(ValueError, match=r"names \['bcc'\], not classes of the training data"):
        scan_external(other_clinic, "melanoma=bcc", CLASSES)
    with pytest.raises(ValueError, match=r"names \['naevus'\], not class folders there"):
        scan_external(other_clinic, "naevus=nv", CLASSES)


def test_byte_copies_of_training_images_are_found(other_clinic, tmp_path):
    train = tmp_path / "train_img.jpg"
    shutil.copy(other_clinic / "Test" / "melanoma" / "melanoma_001.png", train)
    ext = scan_external(other_clinic, "melanoma=mel,nevus=nv", CLASSES)
    assert training_copies(ext, [str(train)]) == [(str(other_clinic / "Test" / "melanoma" / "melanoma_001.png"),
                                                   str(train))]


def test_a_squashed_4x3_frame_is_restored_to_the_crop_center_crop_takes_of_the_original():
    w, h = 400, 300
    yy, xx = np.mgrid[:h, :w]
    disc = ((xx - 200) ** 2 + ((yy - 150) * 1.0) ** 2 < 60 ** 2).astype(np.uint8) * 255
    original = Image.fromarray(np.stack([disc] * 3, -1))
    squashed = original.resize((180, 180), Image.BICUBIC)
    want = np.asarray(resize_to_square(original, 64, "center_crop"), dtype=float)
    restored = np.asarray(resize_to_square(squashed, 64, "unsquash_4x3"), dtype=float)
    naive = np.asarray(resize_to_square(squashed, 64, "center_crop"), dtype=float)
    assert np.abs(restored - want).mean() < 1.5 < 5 < np.abs(naive - want).mean()
    assert resize_to_square(Image.new("RGB", (90, 300)), 32, "unsquash_4x3").size == (32, 32)  # a tall image too


def test_near_copies_are_those_closer_to_a_training_image_than_any_validation_image_is():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20, 8))
    val = rng.normal(size=(5, 8))
    # a near copy of training image 3, and images exactly as far from the training set as validation ones are
    external = np.concatenate([train[3:4] + 0.01, val[1:4]])

    nearest, sim, threshold = near_copies(external, train, val, features=lambda x: x)
    flagged = np.flatnonzero(sim > threshold)
    assert flagged.tolist() == [0] and nearest[0] == 3 and sim[0] > 0.99


def test_external_metrics_score_only_the_classes_it_has_enough_of():
    labels = np.array([1, 1, 1, 2, 2, 0])  # class 0 has one image: not scored
    probs = np.eye(3)[[1, 1, 2, 2, 0, 0]]
    m = external_metrics(probs, labels, CLASSES, ["mel", "nv"])
    assert m["per_class_recall"] == {"mel": pytest.approx(2 / 3), "nv": 0.5}
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5) / 2) and m["n_images"] == 5
    assert 0 <= m["mel_auroc"] <= 1


def _bench(tmp_path, out, *extra):
    data = make_image_folder(tmp_path / "imgs", {"akiec": 14, "mel": 14, "nv": 16})
    return bench_main(["--preset", "quick", "--out", str(out), "--data-dir", str(data), "--no-progress", "--epochs",
                       "1", "--seeds", "0,1", "--arms", "aug,aug_oversample", "--batch-size", "16", "--num-workers",
                       "0", "--image-size", "32", *extra])


def test_every_classifier_is_scored_on_the_external_set_and_the_report_says_how(tmp_path, other_clinic):
    out = tmp_path / "bench"
    # first without it, classifiers kept: the second call scores the kept ones without training anything
    assert _bench(tmp_path, out, "--keep-classifiers") == 0
    (out / "runs" / "aug_seed0_classifier.safetensors").unlink()  # aug seed 0 is the judge: scored from its file
    ext = ["--external-test", str(other_clinic), "--class-map", "melanoma=mel,nevus=nv", "--external-min-per-class",
           "3"]

    def no_training(*a, **k):
        raise AssertionError("a finished run was retrained")

    mp = pytest.MonkeyPatch()
    mp.setattr(R.Runner, "train_model", no_training)
    try:
        assert _bench(tmp_path, out, "--keep-classifiers", *ext) == 0
    finally:
        mp.undo()
    assert "external_test" in json.loads((out / "runs" / "aug_seed0.json").read_text())
    record = json.loads((out / "runs" / "aug_seed1.json").read_text())
    e = record["external_test"]
    assert e["classes"] == ["mel", "nv"] and e["n_images"] == 14  # 7 mel, 7 nv (see above)
    assert np.load(out / "runs" / "aug_seed1_external_probs.npy").shape == (14, 3)
    results = json.loads((out / "results.json").read_text())
    assert results["external"]["arms"]["aug"]["seeds"] == [0, 1]
    assert results["external"]["info"]["unmapped"] == {"wart": 3}
    report = (out / "report.md").read_text()
    assert "## External test" in report and "recall mel" in report and "3 of class `wart`" in report
    n_train = sum(results["data"]["counts"]["train"].values())
    assert f"near copies were looked for among {n_train} training images." in report  # the split's own


def test_an_external_image_that_copies_a_training_image_is_refused_named(tmp_path, other_clinic, capsys):
    data = make_image_folder(tmp_path / "imgs", {"akiec": 14, "mel": 14, "nv": 16})
    shutil.copy(data / "mel" / "mel_000.jpg", other_clinic / "Test" / "melanoma" / "leak.jpg")
    args = ["--external-test", str(other_clinic), "--class-map", "melanoma=mel,nevus=nv"]
    assert _bench(tmp_path, tmp_path / "b1", *args) == 2
    err = capsys.readouterr().err
    assert "leak.jpg" in err and "--external-drop-copies" in err
    assert not list((tmp_path / "b1" / "runs").glob("*.json"))


def test_a_slices_left_out_images_are_data_names_too(tmp_path):
    # a few-shot or 25 % slice's manifest lists the slice only; the rest of its folder (seen by a shared generator,
    # from the same clinic) must still be recognised in an external folder by name
    from ga_bench.external import _data_names
    from gan_augment.data import Manifest

    data = make_image_folder(tmp_path / "ham", {"mel": 3, "nv": 3})
    sliced = Manifest(paths=[str(data / "mel" / "mel_000.jpg"), str(data / "nv" / "nv_000.jpg")],
                      labels=["mel", "nv"], groups=["a", "b"], splits=["train", "test"], class_names=["mel", "nv"])
    names = set(_data_names(None, sliced))
    assert names == {f"{c}_{i:03d}.{'png' if i % 2 else 'jpg'}" for c in ("mel", "nv") for i in range(3)}
    assert set(_data_names(str(data / "mel"), sliced)) == names  # a given folder adds to it, never replaces it
    # an external folder inside the data's folder: its own files are not the data's
    assert set(_data_names(str(data), sliced, external=str(data / "nv"))) == {"mel_000.jpg", "mel_001.png",
                                                                              "mel_002.jpg", "nv_000.jpg"}


def test_a_record_scored_on_another_external_set_is_scored_again_or_refused(tmp_path):
    from ga_bench.external import external_rescore

    info = {"set_id": "abc", "n_scored": 12, "scored_classes": ["mel", "nv"]}
    path, kept = tmp_path / "aug_seed0.json", tmp_path / "aug_seed0_classifier.safetensors"
    assert not external_rescore({}, info, path, kept)  # no score and no classifier: the record stays as it is
    kept.write_bytes(b"x")
    assert external_rescore({}, info, path, kept)  # no score yet: scored from the kept classifier
    assert not external_rescore({"external_test": {"set": "abc"}}, info, path, kept)
    assert external_rescore({"external_test": {"set": "old"}}, info, path, kept)  # another set: scored again
    info["n_images"] = 14  # 12 of the scored classes, 2 of a class too small to score
    legacy_same = {"external_test": {"n_images": 12, "classes": ["mel", "nv"]}}  # before sets had an id
    np.save(tmp_path / "aug_seed0_external_probs.npy", np.zeros((14, 3), np.float32))
    assert not external_rescore(legacy_same, info, path, None)
    np.save(tmp_path / "aug_seed0_external_probs.npy", np.zeros((13, 3), np.float32))  # one unscored image less
    assert external_rescore(legacy_same, info, path, kept)
    np.save(tmp_path / "aug_seed0_external_probs.npy", np.zeros((14, 3), np.float32))
    legacy_other = {"external_test": {"n_images": 5, "classes": ["mel"]}}
    assert external_rescore(legacy_other, info, path, kept)
    with pytest.raises(ValueError, match=r"aug_seed0.json: scored on another external test set \(5 images of "
                                         r"\['mel'\]\) than this one \(12 of \['mel', 'nv'\]\)"):
        external_rescore(legacy_other, info, path, None)
    with pytest.raises(ValueError, match="its classifier was not kept"):
        external_rescore({"external_test": {"set": "old"}}, info, path, tmp_path / "absent.safetensors")


def test_in_the_shared_generator_regime_copies_are_looked_for_among_the_generators_training_images(tmp_path):
    from types import SimpleNamespace

    from ga_bench.shared_regime import generator_manifest
    from gan_augment.data import Manifest

    data = make_image_folder(tmp_path / "ham", {"mel": 2, "nv": 2})
    paths = sorted(str(p) for p in data.rglob("*.*"))
    full = Manifest(paths=paths, labels=["mel", "mel", "nv", "nv"], groups=list("abcd"),
                    splits=["train", "test", "train", "val"], class_names=["mel", "nv"])
    (tmp_path / "upper").mkdir()
    full.write(tmp_path / "upper" / "manifest.csv")
    sliced = Manifest(paths=paths[1:], labels=["mel", "nv", "nv"], groups=list("bcd"), splits=["test", "train", "val"],
                      class_names=["mel", "nv"])
    shared = generator_manifest(SimpleNamespace(upper_bound_from=str(tmp_path / "upper")), sliced)
    assert shared.hash == full.hash and len(shared.indices("train")) == 2  # the slice's 1 and the one left out
    assert generator_manifest(SimpleNamespace(upper_bound_from=None), sliced) is sliced


def test_a_data_folder_beside_the_repository_is_shown_relative_to_it(tmp_path, monkeypatch):
    from ga_bench.data_source import REPO
    from ga_bench.external import _shown

    monkeypatch.chdir(tmp_path)  # outside the repository: the committed report must still name no machine folder
    beside = REPO.parent / "shared" / "data" / "isic9_180" / "Train" / "x.jpg"
    assert _shown(str(beside)) == f"../{beside.relative_to(REPO.parent).as_posix()}"
    assert _shown(str(tmp_path / "ext" / "a.jpg")) == "ext/a.jpg"  # under the working folder: relative to it


def test_the_external_summary_pairs_each_gan_arm_with_the_best_baseline_of_each_metric(tmp_path):
    from ga_bench.report_sections import _external_lines, external_summary

    names = ["akiec", "mel", "nv"]
    labels = np.array([1] * 40 + [2] * 40 + [0] * 5)  # mel, nv scored; akiec too few, left out of the metrics
    rng = np.random.default_rng(0)
    runs = tmp_path / "runs"
    runs.mkdir()

    def probs(right: float, mel_score: np.ndarray) -> np.ndarray:
        p = np.full((len(labels), 3), 0.05)
        hit = np.arange(len(labels)) % 10 < round(right * 10)  # this share of each class right, exactly
        p[np.arange(len(labels)), np.where(hit, labels, (labels + 1) % 3)] = 5.0  # the decision
        p[:, 1] += mel_score  # the melanoma column's ranking, too small to change a decision
        return p

    signal = (labels == 1).astype(float)
    arms = {"aug_oversample": (0.8, 0.0 * signal), "aug": (0.6, 0.3 * signal), "gan_light": (0.7, 0.2 * signal)}
    records = {}
    for arm, (right, score) in arms.items():
        records[arm] = []
        for s in (0, 1):
            p = probs(right, score + rng.random(len(labels)) * 0.5)
            np.save(runs / f"{arm}_seed{s}_external_probs.npy", p)
            records[arm].append({"seed": s, "external_test": external_metrics(p, labels, names, ["mel", "nv"])})
    info = {"scored_classes": ["mel", "nv"], "name": "x", "n_images": 80, "counts": {"akiec": 5, "mel": 40, "nv": 40},
            "min_images_per_class": 10}
    ext = external_summary(records, lambda a: runs, labels, names, info, n_boot=200)
    assert ext["best_baseline"] == "aug_oversample"  # by balanced accuracy
    assert ext["best_baseline_mel_auroc"] == "aug"  # by melanoma AUROC: another baseline
    d = ext["gan_light"]["mel_auroc"]
    mean = np.mean([r["external_test"]["mel_auroc"] for r in records["gan_light"]]) - np.mean(
        [r["external_test"]["mel_auroc"] for r in records["aug"]])
    assert d["mean"] == pytest.approx(mean) and d["ci_low"] <= d["mean"] <= d["ci_high"]
    assert ext["gan_light"]["balanced_accuracy"]["mean"] == pytest.approx(-0.1)  # 0.7 vs oversampling's 0.8
    text = "\n".join(_external_lines(ext))
    assert "Melanoma-vs-rest AUROC, GAN arms minus the baseline best on it (`aug`)" in text
