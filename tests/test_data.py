"""Data layer: sources, grouped split, manifest, decoding, dataset."""

from __future__ import annotations

import csv
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_augment.cli import main as cli_main
from gan_augment.data import (
    ImageDecodeError,
    Manifest,
    ManifestDataset,
    build_manifest,
    gan_preprocess,
    grouped_stratified_split,
    load_image,
    parse_fractions,
    resolve_duplicates,
    scan_image_folder,
    scan_medmnist_npz,
    scan_metadata_csv,
    split_scan,
)

from .conftest import HAM_DIR, make_image_folder, needs_ham


# ------------------------------------------------------------------------------------------------ split
def _synthetic_groups(seed=0, n_groups=600):
    """Labels with a 20:5:2:1 imbalance and 1-4 images per group (group = lesion)."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    classes = ["a"] * 20 + ["b"] * 5 + ["c"] * 2 + ["d"]
    for g in range(n_groups):
        c = classes[rng.integers(len(classes))]
        for _ in range(rng.integers(1, 5)):
            labels.append(c)
            groups.append(f"g{g}")
    return np.array(labels), np.array(groups)


def test_split_keeps_groups_together_and_class_ratios():
    labels, groups = _synthetic_groups()
    out = grouped_stratified_split(labels, groups, (0.7, 0.15, 0.15), seed=0)
    # no group in two splits
    per_group = {}
    for g, s in zip(groups, out):
        per_group.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in per_group.values())
    # overall fractions and per-class ratios within tolerance
    n = len(labels)
    for split, target in zip(("train", "val", "test"), (0.7, 0.15, 0.15)):
        assert abs((out == split).sum() / n - target) < 0.03
        for c in "abcd":
            share_all = (labels == c).mean()
            share_split = (labels[out == split] == c).mean()
            assert abs(share_split - share_all) < 0.04, (split, c)


def test_split_is_deterministic_by_seed():
    labels, groups = _synthetic_groups()
    a = grouped_stratified_split(labels, groups, seed=3)
    b = grouped_stratified_split(labels, groups, seed=3)
    c = grouped_stratified_split(labels, groups, seed=4)
    assert (a == b).all()
    assert (a != c).any()


def test_split_errors_and_warnings():
    with pytest.raises(ValueError, match="sum to 1"):
        parse_fractions("0.5,0.2,0.2")
    with pytest.raises(ValueError, match="comma-separated"):
        parse_fractions("0.7;0.3")
    with pytest.raises(ValueError, match="3 images in 3 groups"):
        grouped_stratified_split(["a", "a", "b"], ["1", "2", "3"], (0.7, 0.15, 0.15))
    labels = ["a"] * 40 + ["b"]
    groups = [str(i) for i in range(41)]
    with pytest.warns(UserWarning, match="class 'b'"):
        grouped_stratified_split(labels, groups, (0.5, 0.5), names=("train", "test"))


def test_split_fraction_granularity():
    labels, groups = _synthetic_groups(n_groups=900)
    out = grouped_stratified_split(labels, groups, (0.8, 0.1, 0.1), seed=1)
    counts = Counter(out)
    assert abs(counts["train"] / len(out) - 0.8) < 0.03
    assert abs(counts["val"] / len(out) - 0.1) < 0.03


# ------------------------------------------------------------------------------------------------ manifest
def test_manifest_roundtrip_and_hash(tmp_path, tiny_folder):
    manifest = split_scan(scan_image_folder(tiny_folder), (0.5, 0.25, 0.25), seed=0)
    h = manifest.hash
    assert len(h) == 64 and manifest.hash == h  # stable
    out = manifest.write(tmp_path / "m" / "manifest.csv")
    back = Manifest.read(out)
    assert back.hash == h
    assert back.paths == [str(Path(p).resolve()) for p in manifest.paths]
    assert back.labels == manifest.labels and back.splits == manifest.splits
    # the CSV stores relative paths; moving data + CSV together keeps the hash
    moved = tmp_path / "moved"
    shutil.copytree(tiny_folder, moved / "imgs")
    shutil.copy(out, moved / "manifest.csv")
    (moved / "m").mkdir()
    shutil.move(str(moved / "manifest.csv"), moved / "m" / "manifest.csv")
    moved_back = Manifest.read(moved / "m" / "manifest.csv")
    assert Path(moved_back.paths[0]).exists()
    assert moved_back.hash == h
    # any change of content changes the hash
    changed = Manifest.read(out)
    changed.splits[0] = "val" if changed.splits[0] != "val" else "train"
    assert changed.hash != h
    relabelled = Manifest.read(out)
    relabelled.labels[1] = "gamma" if relabelled.labels[1] != "gamma" else "alpha"
    assert relabelled.hash != h


def test_manifest_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.jpg,a\n")
    with pytest.raises(ValueError, match=r"lacks columns \['group', 'split'\]"):
        Manifest.read(bad)
    with pytest.raises(ValueError, match="does not exist"):
        Manifest.read(tmp_path / "nope.csv")
    m = Manifest(paths=["a", "b"], labels=["x", "y"], groups=["1", "2"], splits=["train", "test"])
    with pytest.raises(ValueError, match=r"split 'val' not in manifest.*\['train', 'test'\]"):
        m.indices("val")
    with pytest.raises(ValueError, match="unknown class 'z'"):
        m.class_index("z")


def test_manifest_write_is_atomic(tmp_path, monkeypatch):
    m = Manifest(paths=[str(tmp_path / "a.jpg")], labels=["x"], groups=["1"], splits=["train"])
    target = tmp_path / "manifest.csv"
    target.write_text("previous content\n")

    import csv as csv_mod

    class Boom(Exception):
        pass

    real_writer = csv_mod.writer

    def failing_writer(fh, *a, **k):
        w = real_writer(fh, *a, **k)

        class W:
            def writerow(self, row):
                if row[0] != "path":
                    raise Boom()
                return w.writerow(row)
        return W()

    monkeypatch.setattr("gan_augment.data.manifest.csv.writer", failing_writer)
    with pytest.raises(Boom):
        m.write(target)
    assert target.read_text() == "previous content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]  # no temp file left behind


# ------------------------------------------------------------------------------------------------ sources
def test_image_folder_with_split_level(tmp_path):
    make_image_folder(tmp_path / "d" / "Train", {"x": 10, "y": 10})
    make_image_folder(tmp_path / "d" / "Test", {"x": 3, "y": 3}, seed=1)
    scan = scan_image_folder(tmp_path / "d")
    assert {s.split for s in scan.samples} == {"train", "test"}
    manifest = split_scan(scan, (0.7, 0.15, 0.15), seed=0)
    counts = manifest.counts()
    assert set(counts) == {"train", "val", "test"}  # val carved out of train
    assert sum(counts["test"].values()) == 6
    assert sum(counts["val"].values()) + sum(counts["train"].values()) == 20
    # the folders' Test images stay test (none moved into train or val) ...
    test_paths = {p for p, sp in zip(manifest.paths, manifest.splits) if sp == "test"}
    assert test_paths == {s.path for s in scan.samples if s.split == "test"}
    # ... unless asked to split afresh: then the 26 images are split 70/15/15 regardless of their folder
    again = split_scan(scan, (0.7, 0.15, 0.15), seed=0, respect_existing=False)
    fresh = again.counts()
    assert sum(sum(c.values()) for c in fresh.values()) == 26
    moved = {p for p, sp in zip(again.paths, again.splits) if sp != "test"} & test_paths
    assert moved  # some of the folders' test images now train or validate


def test_empty_class_folder_is_an_error(tmp_path):
    make_image_folder(tmp_path / "d", {"x": 3})
    (tmp_path / "d" / "empty").mkdir()
    (tmp_path / "d" / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"class folder .*empty contains no images"):
        scan_image_folder(tmp_path / "d")
    with pytest.raises(ValueError, match="does not exist"):
        scan_image_folder(tmp_path / "missing")


def _write_metadata(path: Path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["lesion_id", "image_id", "dx"])
        w.writerows(rows)


def test_metadata_csv_finds_files_anywhere_and_reports_mismatches(tmp_path):
    imgs = tmp_path / "images"
    (imgs / "nested" / "deeper").mkdir(parents=True)
    (imgs / "flat").mkdir()
    Image.new("RGB", (8, 8), "red").save(imgs / "nested" / "deeper" / "ISIC_1.jpg")
    Image.new("RGB", (8, 8), "blue").save(imgs / "flat" / "ISIC_2.png")
    Image.new("RGB", (8, 8), "green").save(imgs / "ISIC_3.JPEG")
    Image.new("RGB", (8, 8), "white").save(imgs / "ISIC_orphan.jpg")
    meta = tmp_path / "meta.csv"
    _write_metadata(meta, [("L1", "ISIC_1", "nv"), ("L1", "ISIC_2", "nv"), ("L2", "ISIC_3", "df"),
                           ("L3", "ISIC_missing", "df")])
    scan = scan_metadata_csv(meta, imgs)
    assert {Path(s.path).name for s in scan.samples} == {"ISIC_1.jpg", "ISIC_2.png", "ISIC_3.JPEG"}
    assert {s.group for s in scan.samples} == {"L1", "L2"}
    assert scan.missing_files == ["ISIC_missing"]
    assert scan.orphan_files == ["ISIC_orphan.jpg"]
    report = scan.report()
    assert "1 ids in the CSV with no image file (e.g. ISIC_missing)" in report
    assert "1 image files with no CSV row (e.g. ISIC_orphan.jpg)" in report


def test_metadata_csv_errors(tmp_path):
    imgs = tmp_path / "images"
    imgs.mkdir()
    Image.new("RGB", (8, 8)).save(imgs / "a.jpg")
    meta = tmp_path / "meta.csv"
    _write_metadata(meta, [("L1", "a", "nv")])
    with pytest.raises(ValueError, match=r"label column 'diagnosis' not found; columns are \['lesion_id'"):
        scan_metadata_csv(meta, imgs, label_col="diagnosis")
    _write_metadata(meta, [("L1", "a", "")])
    with pytest.raises(ValueError, match="image a has an empty label"):
        scan_metadata_csv(meta, imgs)
    (imgs / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(imgs / "sub" / "a.png")
    _write_metadata(meta, [("L1", "a", "nv")])
    with pytest.raises(ValueError, match="occur more than once"):
        scan_metadata_csv(meta, imgs)


def _write_medmnist(path: Path, size=28, channels=3, n=(30, 6, 8), n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        shape = (count, size, size, 3) if channels == 3 else (count, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % n_classes).reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return path


def test_medmnist_npz_source_and_dataset(tmp_path):
    npz = _write_medmnist(tmp_path / "dermamnist_28.npz", n_classes=7, n=(21, 7, 7))
    scan = scan_medmnist_npz(npz)
    assert scan.class_names == sorted(["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"])
    manifest = split_scan(scan)
    assert manifest.counts()["test"]["akiec"] == 1
    out = manifest.write(tmp_path / "m.csv")
    ds = ManifestDataset(out, "train", output="numpy")
    arr, y = ds[3]
    with np.load(npz) as z:
        np.testing.assert_array_equal(arr, z["train_images"][3])
        assert ds.classes[y] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"][int(z["train_labels"][3, 0])]
    gray = _write_medmnist(tmp_path / "pneumonia.npz", channels=1, n_classes=2)
    gscan = scan_medmnist_npz(gray)
    assert gscan.class_names == ["0", "1"]
    gds = ManifestDataset(split_scan(gscan), "val", channels=1, output="tensor")
    assert gds[0][0].shape == (1, 28, 28) and gds[0][0].dtype == torch.uint8
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="not in the MedMNIST layout"):
        scan_medmnist_npz(bad)
    multi = tmp_path / "chest.npz"
    np.savez(multi, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros((2, 14), np.uint8))
    with pytest.raises(ValueError, match="multi-label"):
        scan_medmnist_npz(multi)


def test_duplicates_policy(tmp_path):
    make_image_folder(tmp_path / "d", {"x": 4, "y": 4})
    shutil.copy(tmp_path / "d" / "x" / "x_000.jpg", tmp_path / "d" / "x" / "copy_same_class.jpg")
    shutil.copy(tmp_path / "d" / "x" / "x_001.png", tmp_path / "d" / "y" / "copy_other_class.png")
    scan = scan_image_folder(tmp_path / "d")
    with pytest.warns(UserWarning, match="2 sets of byte-identical images; 2 images"):
        dropped = resolve_duplicates(scan, "drop-conflicts")
    assert len(dropped.samples) == len(scan.samples) - 2
    assert {Path(p).name for p in dropped.dropped} == {"x_001.png", "copy_other_class.png"}
    same = [s for s in dropped.samples if Path(s.path).name in ("x_000.jpg", "copy_same_class.jpg")]
    assert len({s.group for s in same}) == 1
    assert resolve_duplicates(scan, "keep") is scan
    with pytest.raises(ValueError, match="unknown duplicates policy"):
        resolve_duplicates(scan, "merge")


# ------------------------------------------------------------------------------------------------ decoding
def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_decode_modes(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 200
    p_rgb = _save(Image.fromarray(rgb), tmp_path / "rgb.png")
    assert load_image(p_rgb, 3).shape == (6, 8, 3)
    gray = load_image(p_rgb, 1)
    assert gray.shape == (6, 8, 1) and gray[0, 0, 0] == round(200 * 0.299)
    p_l = _save(Image.new("L", (5, 4), 77), tmp_path / "l.png")
    np.testing.assert_array_equal(load_image(p_l, 3)[0, 0], [77, 77, 77])
    # alpha is composited on black: a half-transparent white pixel becomes mid grey
    p_la = _save(Image.new("LA", (3, 3), (255, 128)), tmp_path / "la.png")
    assert load_image(p_la, 1)[0, 0, 0] == 128
    p_rgba = _save(Image.new("RGBA", (3, 3), (255, 0, 0, 0)), tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(p_rgba, 3)[0, 0], [0, 0, 0])
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    p_p = _save(pal, tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(p_p, 3)[0, 0], [10, 20, 30])
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        load_image(p_rgb, 2)


def test_decode_16bit_png(tmp_path):
    arr = np.array([[0, 257 * 100], [65535, 257 * 3]], dtype=np.uint16)
    path = tmp_path / "ct16.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    out = load_image(path, 1)
    np.testing.assert_array_equal(out[..., 0], [[0, 100], [255, 3]])
    assert load_image(path, 3).shape == (2, 2, 3)


def test_decode_exif_rotation(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)  # 20 wide, 10 high; bright left column
    arr[:, 0] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=100)
    out = load_image(path, 3)
    assert out.shape == (20, 10, 3)
    assert out[0, :, 0].mean() > 200  # the bright column is now the top row


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, quality=95)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated.jpg") as ei:
        load_image(truncated)
    assert ei.value.path == str(truncated)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(ImageDecodeError, match="garbage.png"):
        load_image(garbage)
    with pytest.raises(ImageDecodeError, match="file not found"):
        load_image(tmp_path / "absent.jpg")


def _folder_with_bad_file(tmp_path):
    root = make_image_folder(tmp_path / "d", {"x": 4, "y": 3})
    bad = root / "y" / "y_broken.jpg"
    data = (root / "y" / "y_000.jpg").read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    return split_scan(scan_image_folder(root), (1.0,), names=("train",))


def test_dataset_error_policies(tmp_path):
    manifest = _folder_with_bad_file(tmp_path)
    ds = ManifestDataset(manifest, "train")
    bad_index = next(i for i, p in enumerate(ds.paths) if p.endswith("y_broken.jpg"))
    with pytest.raises(ImageDecodeError, match="y_broken.jpg"):
        ds[bad_index]
    with pytest.raises(ImageDecodeError, match="y_broken.jpg"):
        ManifestDataset(manifest, "train", cache=True, verbose=False)
    with pytest.warns(UserWarning, match=r"skipped 1 undecodable images \(e.g. .*y_broken.jpg\)"):
        skip = ManifestDataset(manifest, "train", on_error="skip", verbose=False)
    assert len(skip) == 7 and skip.class_counts() == {"x": 4, "y": 3}
    with pytest.warns(UserWarning, match="skipped 1"):
        skip_cached = ManifestDataset(manifest, "train", on_error="skip", cache=True, image_size=16, verbose=False)
    assert skip_cached.uint8_array().shape == (7, 16, 16, 3)


def test_dataset_class_with_no_images_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "d", {"x": 4})
    (root / "y").mkdir()
    data = (root / "x" / "x_000.jpg").read_bytes()
    (root / "y" / "only.jpg").write_bytes(data[:40])
    manifest = split_scan(scan_image_folder(root), (1.0,), names=("train",))
    with pytest.warns(UserWarning):
        with pytest.raises(ValueError, match=r"classes \['y'\] have no images in split 'train' after skipping 1"):
            ManifestDataset(manifest, "train", on_error="skip", verbose=False)
    ds = ManifestDataset(manifest, "train", classes=["x"])
    assert len(ds) == 4
    with pytest.raises(ValueError, match=r"classes \['z'\] are not in the manifest"):
        ManifestDataset(manifest, "train", classes=["z"])


def test_dataset_outputs_cache_and_transforms(tmp_path, tiny_folder, capsys):
    manifest = split_scan(scan_image_folder(tiny_folder), (1.0,), names=("train",))
    plain = ManifestDataset(manifest, "train", image_size=24, output="numpy")
    cached = ManifestDataset(manifest, "train", image_size=24, output="numpy", cache=True)
    err = capsys.readouterr().err
    assert "caching 22 images at 24x24x3 uint8: about 38.0 KB" in err
    for i in (0, 5, 21):
        np.testing.assert_array_equal(plain[i][0], cached[i][0])
        assert plain[i][1] == cached[i][1]
    assert cached.uint8_array().shape == (22, 24, 24, 3)
    assert plain.targets == [plain.class_to_idx[Path(p).parent.name] for p in plain.paths]
    pil = ManifestDataset(manifest, "train")[0][0]
    assert isinstance(pil, Image.Image) and pil.size == (40, 30)
    t = ManifestDataset(manifest, "train", image_size=24, output="float")[0][0]
    assert t.dtype == torch.float32 and t.shape == (3, 24, 24) and -1 <= t.min() and t.max() <= 1
    # the seeds' transform gives the same tensor as our uint8 route, up to resampling rounding
    via_tf = ManifestDataset(manifest, "train", transform=gan_preprocess(24))[0][0]
    assert via_tf.shape == (3, 24, 24) and (via_tf - t).abs().mean() < 0.02
    import albumentations as A

    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    flipped = ManifestDataset(manifest, "train", image_size=24, output="numpy", transform=flip)[0][0]
    np.testing.assert_array_equal(flipped, plain[0][0][:, ::-1])


# ------------------------------------------------------------------------------------------------ CLI + real data
def test_cli_split_image_folder(tmp_path, tiny_folder, capsys):
    out = tmp_path / "m.csv"
    rc = cli_main(["split", "--image-folder", str(tiny_folder), "--fractions", "0.5,0.25,0.25", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| alpha |" in printed and "| **total** |" in printed and "hash" in printed
    assert Manifest.read(out).counts()["train"]["alpha"] > 0
    rc = cli_main(["split", "--metadata", str(tmp_path / "nope.csv"), "--image-dir", str(tmp_path), "--out",
                   str(tmp_path / "x.csv")])
    assert rc == 2
    assert "metadata CSV" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@needs_ham
def test_ham10000_lesion_split(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest, scan = build_manifest(metadata=str(HAM_DIR / "HAM10000_metadata.csv"), image_dir=str(HAM_DIR),
                                        fractions=(0.7, 0.15, 0.15), seed=0)
    assert len(manifest) == 10015 and not scan.missing_files
    assert manifest.groups_across_splits() == {}
    counts = manifest.counts()
    for split, target in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert set(counts[split]) == set(manifest.class_names), split  # all 7 classes everywhere
        assert abs(sum(counts[split].values()) / 10015 - target) < 0.02
        for c in manifest.class_names:  # class ratios kept within 3 points of the split
            total_c = sum(counts[s][c] for s in counts)
            assert abs(counts[split][c] / total_c - target) < 0.05, (split, c)
    assert len(manifest.class_names) == 7


def test_stratified_subset_and_per_class_cap():
    from gan_augment.data.subset import per_class_cap, stratified_subset

    labels = ["a"] * 80 + ["b"] * 16 + ["c"] * 4
    quarter = stratified_subset(labels, fraction=0.25, seed=0)
    assert Counter(labels[i] for i in quarter) == {"a": 20, "b": 4, "c": 1}
    total = stratified_subset(labels, max_images=10, seed=0)
    assert len(total) == 10 and Counter(labels[i] for i in total)["c"] >= 1
    assert stratified_subset(labels, max_images=10, seed=0) == total != stratified_subset(labels, max_images=10, seed=1)
    capped = per_class_cap(labels, 5, seed=0)
    assert Counter(labels[i] for i in capped) == {"a": 5, "b": 5, "c": 4} and capped == sorted(capped)
    assert per_class_cap(labels, None) == list(range(100))
    with pytest.raises(ValueError, match="fewer than the 3 classes"):
        stratified_subset(labels, max_images=2)


def test_upsampling_factor_per_resize_policy():
    from gan_augment.data.transforms import upsampling_factor

    # HAM10000 at 200x150: 128 px squares shrink it, 256 px enlarge its shorter side 1.71x
    assert upsampling_factor(200, 150, 128) == pytest.approx(128 / 150)
    assert upsampling_factor(200, 150, 256) == pytest.approx(256 / 150)
    assert upsampling_factor(200, 150, 256, "squash") == pytest.approx(256 / 150)
    assert upsampling_factor(200, 150, 256, "pad") == pytest.approx(256 / 200)
    # a 180x180 square squashed from 4:3: the stretched frame is 240x180, its centred crop 135 source px wide
    assert upsampling_factor(180, 180, 180, "unsquash_4x3") == pytest.approx(180 / 135)
    with pytest.raises(ValueError, match="unknown resize policy 'fit'"):
        upsampling_factor(10, 10, 10, "fit")


def test_gan_data_from_images_smaller_than_the_resolution_warns_and_says_by_how_much(tmp_path):
    from gan_augment.data.decode import image_size
    from gan_augment.data.transforms import source_upsampling
    from gan_augment.training import DataConfig, prepare_gan_data

    from .conftest import make_image_folder

    root = make_image_folder(tmp_path / "imgs", {"a": 6, "b": 6}, size=(40, 30))
    paths = sorted(str(p) for p in root.rglob("*.*"))
    turned = tmp_path / "turned.jpg"  # EXIF orientation 6: stored 40x30, shown 30x40
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30)).save(turned, exif=exif)
    assert image_size(paths[0]) == (40, 30) and image_size(turned) == (30, 40)
    with pytest.raises(ImageDecodeError, match="file not found"):
        image_size(tmp_path / "gone.png")
    up = source_upsampling(paths, 60, sample=5)
    assert up == {"sampled": 5, "upsampled": 5, "median_factor": 2.0, "median_short_side": 30}
    assert source_upsampling(paths, 30)["upsampled"] == 0 and source_upsampling([], 30)["sampled"] == 0
    assert source_upsampling(paths, 60)["sampled"] == len(paths) == 12  # fewer files than the sample: all of them
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")  # left out of the sample, as the dataset leaves it out of training
    assert source_upsampling([str(broken), paths[0]], 60) == {"sampled": 1, "upsampled": 1, "median_factor": 2.0,
                                                               "median_short_side": 30}

    cfg = DataConfig(image_folder=str(root), group_col=None, fractions=[0.5, 0.25, 0.25])
    with pytest.warns(UserWarning, match=r"smaller than 64 px \(median shorter side 30 px, enlarged 2.13x"):
        prepare_gan_data(cfg, 64, tmp_path / "run64", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 32 px from 30 px: 7 % larger, nothing to say
        data = prepare_gan_data(cfg, 32, tmp_path / "run32", verbose=False)
    assert data.dataset[0][0].shape[-1] == 32
