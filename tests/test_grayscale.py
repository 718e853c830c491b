"""A user's grey scans end to end: messy files (RGBA / L / RGB-grey, JPEG data in a .png, mixed sizes), the
resize policies, channel detection, a 1-channel classifier without fake RGB, and split -> train -> generate ->
evaluate -> balance_isic on a grey ImageFolder with its own train/val/test."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classifier import create_classifier
from ga_bench.balance_isic import main as bench_main
from gan_augment.cli import main as cli_main
from gan_augment.data import ManifestDataset, build_manifest
from gan_augment.data.decode import detect_channels, is_grey, load_image
from gan_augment.data.transforms import resize_to_square

from .test_classifier import needs_lite0


def _grey(rng, w, h, level):
    y, x = np.mgrid[0:h, 0:w]
    blob = np.exp(-(((x - w / 2) / (w / 4)) ** 2 + ((y - h / 2) / (h / 4)) ** 2))
    return np.clip(level * blob + rng.normal(0, 12, (h, w)) + 40, 0, 255).astype(np.uint8)


def messy_scans(root: Path, counts: dict[str, dict[str, int]], seed: int = 0) -> Path:
    """<split>/<class>/ grey scans saved five ways and at several sizes, like a public folder of scans."""
    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (40, 64), (96, 72), (36, 36), (120, 50)]
    k = 0
    for split, per_class in counts.items():
        for ci, (cls, n) in enumerate(per_class.items()):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = sizes[k % len(sizes)]
                arr = _grey(rng, w, h, 120 + 60 * ci)
                kind = k % 5
                if kind == 0:  # plain 8-bit grey PNG
                    Image.fromarray(arr, "L").save(d / f"{k}.png")
                elif kind == 1:  # grey stored as RGB (R = G = B)
                    Image.fromarray(np.repeat(arr[..., None], 3, -1)).save(d / f"{k}.png")
                elif kind == 2:  # RGBA with an alpha channel (fully opaque centre, transparent corners)
                    alpha = np.full_like(arr, 255)
                    alpha[:4, :4] = 0
                    Image.fromarray(np.dstack([arr, arr, arr, alpha]), "RGBA").save(d / f"{k}.png")
                elif kind == 3:  # JPEG data inside a file named .png
                    buf = io.BytesIO()
                    Image.fromarray(arr, "L").save(buf, format="JPEG", quality=95)
                    (d / f"{k}.png").write_bytes(buf.getvalue())
                else:  # an ordinary JPEG
                    Image.fromarray(arr, "L").save(d / f"{k}.jpg", quality=95)
                k += 1
    return root


def test_messy_files_decode_to_grey_and_alpha_goes_on_black(tmp_path):
    root = messy_scans(tmp_path / "s", {"train": {"a": 5}})
    files = sorted((root / "train" / "a").iterdir(), key=lambda p: int(p.stem))
    assert Image.open(files[3]).format == "JPEG" and files[3].suffix == ".png"  # decoded by content
    for f in files:
        assert is_grey(Image.open(f)), f.name
        arr = load_image(f, channels=1)
        assert arr.dtype == np.uint8 and arr.shape[2] == 1
    rgba = load_image(files[2], channels=3)
    assert (rgba[:4, :4] == 0).all()  # transparent pixels composited on black
    assert detect_channels(files) == 1
    colour = tmp_path / "c.png"
    Image.fromarray(np.dstack([np.zeros((8, 8), np.uint8)] * 2 + [np.full((8, 8), 200, np.uint8)])).save(colour)
    assert detect_channels([*files, colour]) == 3


@pytest.mark.parametrize("policy", ["center_crop", "squash", "pad"])
def test_resize_policies(policy):
    img = Image.fromarray(np.full((40, 120), 200, np.uint8), "L")  # wide: 120 x 40
    out = resize_to_square(img, 60, policy)
    arr = np.asarray(out)
    assert out.size == (60, 60) and out.mode == "L"
    if policy == "pad":  # the whole image, 60 x 20, centred on black
        assert (arr[:19] == 0).all() and (arr[-19:] == 0).all() and (arr[25:35] > 150).all()
    else:  # the frame is filled
        assert (arr > 150).all()
    with pytest.raises(ValueError, match="unknown resize policy 'stretch'"):
        resize_to_square(img, 60, "stretch")


def test_dataset_applies_the_policy(tmp_path):
    root = messy_scans(tmp_path / "s", {"train": {"a": 6, "b": 6}})
    manifest, _ = build_manifest(image_folder=str(root))
    crop = ManifestDataset(manifest, "train", channels=1, image_size=32, resize="center_crop", output="tensor")
    pad = ManifestDataset(manifest, "train", channels=1, image_size=32, resize="pad", output="tensor")
    wide = [i for i, p in enumerate(crop.paths) if Image.open(p).size == (120, 50)][0]
    assert crop[wide][0].shape == pad[wide][0].shape == (1, 32, 32)
    assert (pad[wide][0][0, 0] == 0).all() and (crop[wide][0][0, 0] > 0).any()  # padded rows are black


@needs_lite0
def test_one_channel_classifier_sums_the_pretrained_rgb_filters():
    rgb, spec3 = create_classifier("tf_efficientnet_lite0", num_classes=3, pretrained=True)
    grey, spec1 = create_classifier("tf_efficientnet_lite0", num_classes=3, pretrained=True, in_chans=1)
    assert grey.conv_stem.weight.shape[1] == 1 and spec1.in_chans == 1 and spec1.mean == (0.5,)
    torch.testing.assert_close(grey.conv_stem.weight, rgb.conv_stem.weight.sum(dim=1, keepdim=True))
    rgb.eval(), grey.eval()
    grey.load_state_dict({k: v for k, v in rgb.state_dict().items() if k != "conv_stem.weight"}, strict=False)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():  # a grey image through the 1-channel stem = the same image as grey RGB
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


@needs_lite0
def test_grey_folder_end_to_end(tmp_path, capsys):
    data = messy_scans(tmp_path / "scans", {"train": {"glioma": 24, "meningioma": 8, "pituitary": 16},
                                            "val": {"glioma": 5, "meningioma": 3, "pituitary": 4},
                                            "test": {"glioma": 5, "meningioma": 3, "pituitary": 4}})
    # split: the folder's own split kept, channels reported
    manifest = tmp_path / "manifest.csv"
    assert cli_main(["split", "--image-folder", str(data), "--out", str(manifest)]) == 0
    assert "channels: 1 (every training image is grey)" in capsys.readouterr().out
    # train (quick): channels auto picks 1
    run = tmp_path / "gan"
    assert cli_main(["train", "configs/quick_cpu.yaml", "--set", f"data.manifest={manifest}", "--set", f"out={run}",
                     "--set", "data.metadata=null", "--set", "data.image_dir=null", "--set", "data.max_images=null",
                     "--set", "data.channels=auto", "--set", "data.resize=pad", "--set", "train.steps=4",
                     "--set", "train.progress=false", "--set", "train.tensorboard=false"]) == 0
    gen = run / "generator.safetensors"
    from gan_augment.generators import read_generator_metadata

    meta = read_generator_metadata(gen)
    assert meta["channels"] == 1 and meta["training"]["config"]["data"]["resize"] == "pad"
    # generate
    assert cli_main(["generate", str(gen), "--per-class", "2", "--out", str(tmp_path / "samples")]) == 0
    pngs = sorted((tmp_path / "samples").glob("*/*.png"))  # one folder per class (grid.png beside them)
    assert len(pngs) == 6 and all(Image.open(p).mode == "L" for p in pngs)
    # evaluate
    assert cli_main(["evaluate", str(gen), "--manifest", str(manifest), "--split", "val", "--per-class", "4",
                     "--features", "lite0", "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "c2st" in metrics["distribution"]["lite0"]["overall"]
    # the benchmark, with its own tiny GAN, on 1-channel images
    out = tmp_path / "bench"
    rc = bench_main(["--preset", "quick", "--data-dir", str(data), "--out", str(out), "--channels", "auto",
                     "--resize", "pad", "--arms", "aug,gan", "--seeds", "0", "--epochs", "1", "--image-size", "32",
                     "--no-progress", "--num-workers", "0", "--check-features", "lite0", "--check-per-class", "4",
                     "--bank-size", "30", "--gan-overrides", "train.steps=4;train.progress=false;"
                     "train.tensorboard=false"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["channels"] == 1 and results["data"]["resize"] == "pad"
    assert results["rare_classes"] == ["meningioma"]
    assert results["generator"]["check"]["generator"]["resolution"] == 32
    from gan_augment.classifier_file import load_classifier

    model, cmeta = load_classifier(out / "runs" / "aug_seed0.safetensors")
    assert cmeta["in_chans"] == 1 and model.conv_stem.weight.shape[1] == 1  # no fake RGB
    assert results["arms"]["gan"]["synthetic"]["meningioma"]["synthetic"] > 0
