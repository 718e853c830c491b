"""The probe calibration: known degradations of real images, judged by the generator check's own numbers."""

from __future__ import annotations

import json

import pytest
import torch

from studies.probe_calibration import DEGRADATIONS, calibrate, calibration_markdown, generator_rows
from gan_augment.data import Manifest, scan_image_folder
from gan_augment.metrics.features import FeatureExtractor
from .conftest import make_image_folder


def _images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (128 + 40 * torch.randn(n, 3, 64, 64, generator=g)).round().clamp(0, 255).to(torch.uint8)


def _roughness(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal neighbours, per image: high for noise, low once blurred."""
    return (x[..., 1:].float() - x[..., :-1].float()).abs().mean(dim=(1, 2, 3))


@pytest.mark.parametrize("key", list(DEGRADATIONS))
def test_each_degradation_keeps_shape_and_type_and_is_deterministic(key):
    x = _images()
    y = DEGRADATIONS[key][1](x)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(y, DEGRADATIONS[key][1](x))
    if key == "none":
        assert torch.equal(y, x)
    else:
        assert not torch.equal(y, x)
        # a degradation changes detail, not the picture: mean colour stays within a few grey levels
        assert (y.float().mean(dim=(0, 2, 3)) - x.float().mean(dim=(0, 2, 3))).abs().max() < 4


def test_blur_removes_detail_in_order_of_strength_and_noise_adds_it():
    x = _images()
    r = {k: float(_roughness(DEGRADATIONS[k][1](x)).mean()) for k in ("none", "blur0.5", "blur1", "blur1.5",
                                                                     "down2")}
    assert r["none"] > r["blur0.5"] > r["blur1"] > r["blur1.5"]
    assert r["down2"] < 0.6 * r["none"]
    smooth = DEGRADATIONS["blur1.5"][1](x)
    assert float(_roughness(DEGRADATIONS["noise8"][1](smooth)).mean()) > float(_roughness(smooth).mean())


def _toy_extractor() -> FeatureExtractor:
    """Channel means and roughness: it sees blur the way InceptionV3 sees missing texture, at no cost."""
    def fn(x):  # x: (x / 255 - 0.5) / 0.5
        return torch.cat([x.mean(dim=(2, 3)), _roughness(x)[:, None] * 10], dim=1), None
    return FeatureExtractor(name="toy", label="toy features", fn=fn, size=64, scale="meanstd", cache_key="toy")


def test_the_probe_tells_blurred_real_images_from_real_ones_and_not_real_from_real(tmp_path):
    root = make_image_folder(tmp_path / "imgs", {"a": 30, "b": 30}, size=(64, 64))
    scan = scan_image_folder(root)
    # the folder alternates PNG and JPEG files: each split gets both, or the probe would see the format
    splits = ["train" if (i // 2) % 2 else "val" for i in range(len(scan.samples))]
    Manifest.from_samples(scan.samples, splits).write(tmp_path / "manifest.csv")
    r = calibrate(tmp_path / "manifest.csv", ["none", "blur1.5", "noise8"], extractor=_toy_extractor(),
                  cache_dir=tmp_path / "cache", grid=tmp_path / "grid.png")
    assert r["classes"] == ["a", "b"] and r["n_train_images"] == 30 and r["n_val_images"] == 30
    d = r["degradations"]
    assert d["none"]["probe"] < 0.75 and abs(d["none"]["spectral_gap"]) < 0.1
    assert d["blur1.5"]["probe"] > 0.95 and d["blur1.5"]["spectral_gap"] < -0.5
    assert d["noise8"]["spectral_gap"] > 0 and set(d["none"]["probe_per_class"]) == {"a", "b"}
    assert d["blur1.5"]["fid"] > d["none"]["fid"]
    assert (tmp_path / "grid.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown degradations \\['sharpen'\\]"):
        calibrate(tmp_path / "manifest.csv", ["sharpen"], extractor=_toy_extractor())

    # committed generator evaluations become rows of the same table; a missing file is skipped
    metrics = {"distribution": {"inception": {"overall": {"fid": 80.0, "kid": 0.02, "precision": 0.7, "recall": 0.4,
                                                          "c2st": 0.95},
                                              "per_class": {"a": {"c2st": 0.9}, "b": {"c2st": 1.0}}}},
               "spectrum": {"high_band_gap": -0.2, "probe": 0.98}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    r["generators"] = generator_rows({"toy-gen": tmp_path / "metrics.json", "gone": tmp_path / "nothing.json"})
    assert list(r["generators"]) == ["toy-gen"] and r["generators"]["toy-gen"]["probe"] == 0.95
    r["meta"] = {"commit": "abcdef1234567890", "device": "cpu"}
    text = calibration_markdown(r)
    assert "| **toy-gen** (generated, committed evaluation) | 80.0 | 20.0 | 0.70 | 0.40 | 95 | -0.20 | 98 |" in text
    assert "| Gaussian blur, sigma 1.5 px |" in text and "`abcdef123456`" in text
    assert "| **toy-gen** | 90 | 100 |" in text
    # the reading pairs the generator with the blur nearest in spectral gap and says what the rest of its score is
    gap = {k: v["spectral_gap"] for k, v in d.items() if k != "noise8"}
    nearest = min(gap, key=lambda k: abs(gap[k] + 0.2))
    line = next(x for x in text.splitlines() if x.startswith("- `toy-gen`: spectral gap -0.20;"))
    assert d[nearest]["description"][1:] in line and f"{100 * d[nearest]['probe']:.0f} % of the time" in line
    assert ("not fine detail" in line) == (95 - 100 * d[nearest]["probe"] > 10)


def test_main_writes_calibration_json_not_a_benchmark_results_file(tmp_path, monkeypatch):
    """`benchmarks/results/*/results.json` is what the README's results table reads as a benchmark run."""
    import studies.probe_calibration as pc

    fake = {"manifest_hash": "0" * 64, "classes": ["a"], "n_train_images": 1, "n_val_images": 1,
            "feature_space": "toy", "degradations": {"none": {"description": "as they are", "probe": 0.5,
                                                              "spectral_gap": 0.0, "probe_per_class": {"a": 0.5}}}}
    monkeypatch.setattr(pc, "calibrate", lambda *a, **k: dict(fake))
    (tmp_path / "m.csv").write_text("x")
    assert pc.main(["--out", str(tmp_path / "out"), "--manifest", str(tmp_path / "m.csv")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md", "calibration.json"]
    assert json.loads((tmp_path / "out" / "calibration.json").read_text())["meta"]["command"].endswith(
        f"--manifest {tmp_path / 'm.csv'}")
    assert pc.main(["--out", str(tmp_path / "o2"), "--manifest", str(tmp_path / "none.csv")]) == 2
