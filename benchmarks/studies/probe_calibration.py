"""What does a probe score of 95 % mean? The generator check applied to *real* images degraded in known ways.

The real-vs-synthetic probe (a linear classifier on InceptionV3 features, ``gan-augment evaluate``'s ``c2st``)
tells the shipped 64 px generators' images from real ones 95-96 % of the time, and the spectra say the images
carry too little fine detail. This measures how far a known, simple defect moves the same numbers: real training
images (the study's real floor: 50 per class) are blurred, downsampled and upsampled, JPEG-compressed or made
noisy, then compared with the validation images exactly as a generator's are (same selection, same features,
same probe, same spectrum comparison). A generator whose probe and spectral gap sit next to "blur sigma 1 px"
is told from real images about as easily as real images blurred that much are - and a recipe change that only
adds fine detail could be worth that much; one whose probe is far above every degradation is told apart by
its content (shapes, colours, variety), not its sharpness.

    python benchmarks/studies/probe_calibration.py --out benchmarks/results/probe_calibration_cpu64
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from ga_bench.fmt import num as _f

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "benchmarks" / "results" / "ham10000_cpu64_full" / "manifest.csv"  # the benchmark's split
GENERATORS = {  # committed evaluations under the same protocol (val, 50 generated / <= 200 real per class)
    "pretrained:ham10000-64": REPO / "benchmarks" / "results" / "pretrained_ham10000_64" / "metrics.json",
    "pretrained:ham10000-64-ac": REPO / "benchmarks" / "results" / "pretrained_ham10000_64_ac" / "metrics.json",
    "pretrained:ham10000-64-long": REPO / "benchmarks" / "results" / "pretrained_ham10000_64_long" / "metrics.json",
}
PER_CLASS, TRAIN_SEED = 50, 1  # the recipe study's real floor: 50 training images per class, seed 1
MAX_REAL_PER_CLASS, VAL_SEED = 200, 0  # the validation images every generator was compared with


def _blur(sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.transforms.v2.functional import gaussian_blur

    k = 2 * math.ceil(3 * sigma) + 1
    return lambda x: gaussian_blur(x.float(), kernel_size=[k, k], sigma=[sigma, sigma]).round().clamp(0, 255).to(
        torch.uint8)


def _down_up(factor: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = F.interpolate(x.float(), size=(h // factor, w // factor), mode="bilinear", antialias=True,
                              align_corners=False)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).round().clamp(0, 255).to(
            torch.uint8)
    return fn


def _jpeg(quality: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def one(im: torch.Tensor) -> torch.Tensor:  # Pillow's encoder (torchvision's is deprecated since 0.29)
        import io

        import numpy as np
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality)
        return torch.from_numpy(np.asarray(Image.open(buf).convert("RGB")).copy()).permute(2, 0, 1)
    return lambda x: torch.stack([one(im) for im in x])


def _noise(std: float, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return (x.float() + std * torch.randn(x.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)
    return fn


# key -> (what a reader sees, function on uint8 (N, C, H, W) images); "none" is the real floor itself
DEGRADATIONS: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "none": ("real training images as they are (the floor)", lambda x: x),
    "blur0.5": ("Gaussian blur, sigma 0.5 px", _blur(0.5)),
    "blur1": ("Gaussian blur, sigma 1 px", _blur(1.0)),
    "blur1.5": ("Gaussian blur, sigma 1.5 px", _blur(1.5)),
    "down2": ("down to 32 px and back up (bilinear)", _down_up(2)),
    "jpeg30": ("JPEG, quality 30", _jpeg(30)),
    "noise8": ("Gaussian noise, sigma 8 grey levels", _noise(8.0)),
}


def _summary(dist: dict, spectrum: dict) -> dict[str, Any]:
    o = dist["overall"]
    return {"fid": o.get("fid"), "kid": o.get("kid"), "precision": o.get("precision"), "recall": o.get("recall"),
            "probe": o.get("c2st"), "spectral_gap": spectrum.get("high_band_gap"),
            "spectrum_probe": spectrum.get("probe"),
            "probe_per_class": {c: v.get("c2st") for c, v in dist.get("per_class", {}).items()}}


def calibrate(manifest_path: Path, keys: list[str], *, extractor=None, cache_dir: Path | None = None,
              per_class: int = PER_CLASS, max_real_per_class: int = MAX_REAL_PER_CLASS,
              grid: Path | None = None) -> dict[str, Any]:
    """The generator check's numbers for real training images under each degradation in ``keys``."""
    from gan_augment.data import Manifest
    from gan_augment.metrics.evaluate import load_real_images
    from gan_augment.metrics.features import cached_features, create_feature_extractor
    from gan_augment.metrics.fidelity import distribution_metrics, spectrum_comparison

    unknown = [k for k in keys if k not in DEGRADATIONS]
    if unknown:
        raise ValueError(f"unknown degradations {unknown}; choose from {list(DEGRADATIONS)}")
    manifest = Manifest.read(manifest_path)
    names = list(manifest.class_names)
    ext = extractor if extractor is not None else create_feature_extractor("inception")
    held = load_real_images(manifest, "val", names, resolution=64, channels=3, max_per_class=max_real_per_class,
                            seed=VAL_SEED)
    train = load_real_images(manifest, "train", names, resolution=64, channels=3, max_per_class=per_class,
                             seed=TRAIN_SEED)
    f_held, _ = cached_features(ext, held.key, lambda: held.images, cache_dir=cache_dir)
    rows, shown = {}, []
    for key in keys:
        images = DEGRADATIONS[key][1](train.images)
        if key == "none":  # the study's floor images: their features are usually cached already
            feats, _ = cached_features(ext, train.key, lambda: train.images, cache_dir=cache_dir)
        else:
            feats, _ = ext(images)
        dist = distribution_metrics(f_held, feats, real_labels=held.labels, fake_labels=train.labels,
                                    class_names=names)
        rows[key] = {"description": DEGRADATIONS[key][0],
                     **_summary(dist, spectrum_comparison(held.images, images))}
        shown.append(torch.stack([images[train.labels == c][0] for c in range(len(names))]))
    if grid is not None:
        from torchvision.utils import save_image

        save_image(torch.cat(shown).float() / 255, grid, nrow=len(names), padding=2)
    return {"manifest_hash": manifest.hash, "classes": names, "n_train_images": int(len(train.labels)),
            "n_val_images": int(len(held.labels)), "feature_space": ext.label, "degradations": rows}


def generator_rows(paths: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The same numbers from committed ``gan-augment evaluate`` results (missing files are skipped)."""
    rows = {}
    for name, path in paths.items():
        if path.is_file():
            m = json.loads(path.read_text())
            rows[name] = _summary(m["distribution"]["inception"], m["spectrum"])
    return rows


def calibration_markdown(r: dict[str, Any]) -> str:
    meta = r.get("meta", {})
    lines = [
        "# How far from real is a probe score? Real images degraded in known ways, judged like a generator",
        "",
        f"Generated by `benchmarks/studies/probe_calibration.py` from `calibration.json`; commit "
        f"`{str(meta.get('commit', '?'))[:12]}`, {meta.get('device', '?')}. Manifest "
        f"`{r['manifest_hash'][:12]}` (the cpu64 benchmark's split). {r['n_train_images']} real *training* images "
        f"(up to {PER_CLASS} per class, the recipe study's floor selection), degraded as each row says, compared with "
        f"{r['n_val_images']} validation images (up to {MAX_REAL_PER_CLASS} per class) in {r['feature_space']} "
        "features exactly as `gan-augment evaluate --split val --per-class 50 --max-real-per-class 200` compares "
        "a generator's images. probe = balanced accuracy of the linear real-vs-synthetic classifier (50 % = "
        "indistinguishable); spectral gap = log10 power difference over the upper half of the frequencies "
        "(-0.3 = half the fine detail); spectrum probe = the probe on the spectra alone.",
        "",
        "| images | FID | KID x1e3 | precision | recall | probe % | spectral gap | spectrum probe % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, v: dict) -> str:
        kid = None if v.get("kid") is None else v["kid"] * 1e3
        probe = None if v.get("probe") is None else 100 * v["probe"]
        sprobe = None if v.get("spectrum_probe") is None else 100 * v["spectrum_probe"]
        return (f"| {label} | {_f(v.get('fid'), '.1f')} | {_f(kid, '.1f')} | {_f(v.get('precision'), '.2f')} | "
                f"{_f(v.get('recall'), '.2f')} | {_f(probe, '.0f')} | {_f(v.get('spectral_gap'), '+.2f')} | "
                f"{_f(sprobe, '.0f')} |")

    for v in r["degradations"].values():
        lines.append(row(v["description"], v))
    for name, v in r.get("generators", {}).items():
        lines.append(row(f"**{name}** (generated, committed evaluation)", v))
    lines += ["", *reading(r)]
    lines += ["", "Per-class probe % (the same probe within one class):", "",
              "| images | " + " | ".join(r["classes"]) + " |", "|---|" + "---:|" * len(r["classes"])]
    for label, v in [*((v["description"], v) for v in r["degradations"].values()),
                     *((f"**{n}**", v) for n, v in r.get("generators", {}).items())]:
        cells = [_f(None if v["probe_per_class"].get(c) is None else 100 * v["probe_per_class"][c], ".0f")
                 for c in r["classes"]]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "`degradations.png`: one training image per class (columns) under each degradation (rows, in "
              "the table's order).", ""]
    return "\n".join(lines)


def reading(r: dict[str, Any]) -> list[str]:
    """Per generator: the blur (a pure loss of fine detail) whose spectral gap is nearest its own, and how the
    two probes compare - the part of the probe's score that missing fine detail alone accounts for."""
    blurs = {k: v for k, v in r["degradations"].items() if (k == "none" or k.startswith("blur"))
             and v.get("spectral_gap") is not None and v.get("probe") is not None}
    out = []
    for name, g in r.get("generators", {}).items():
        if not blurs or g.get("spectral_gap") is None or g.get("probe") is None:
            continue
        key = min(blurs, key=lambda k: abs(blurs[k]["spectral_gap"] - g["spectral_gap"]))
        b = blurs[key]
        excess = 100 * (g["probe"] - b["probe"])
        verdict = ("most of what gives its images away is not fine detail but content (shapes, colours, variety)"
                   if excess > 10 else "missing fine detail accounts for most of its score")
        out.append(f"- `{name}`: spectral gap {g['spectral_gap']:+.2f}; the nearest blur in fine detail, "
                   f"{b['description'][0].lower()}{b['description'][1:]} (gap {b['spectral_gap']:+.2f}), is told "
                   f"from real images {100 * b['probe']:.0f} % of the time, the generator's images "
                   f"{100 * g['probe']:.0f} % ({excess:+.0f} points): {verdict}.")
    return out


def main(argv: list[str] | None = None) -> int:
    from gan_augment._io import write_json, write_text
    from gan_augment.provenance import run_metadata

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/probe_calibration_cpu64"))
    p.add_argument("--manifest", type=Path, default=MANIFEST)
    p.add_argument("--degradations", default=",".join(DEGRADATIONS), help=f"from {list(DEGRADATIONS)}")
    args = p.parse_args(argv)
    if not args.manifest.is_file():
        print(f"error: manifest {args.manifest} not found (the cpu64 benchmark's split; or pass --manifest)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result = calibrate(args.manifest, [k.strip() for k in args.degradations.split(",") if k.strip()],
                       grid=args.out / "degradations.png")
    result["generators"] = generator_rows(GENERATORS)
    result["meta"] = run_metadata(["python", "benchmarks/studies/probe_calibration.py",
                                   *(argv if argv is not None else sys.argv[1:])], device="cpu")
    write_json(args.out / "calibration.json", result)  # (results.json names a benchmark run there)
    write_text(args.out / "README.md", calibration_markdown(result))
    print(calibration_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
