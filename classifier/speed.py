"""The speed benchmark behind ``benchmarks/speed.py`` (see its docstring)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from gan_augment import GANBalancedDataset
from gan_augment._io import write_json, write_text
from gan_augment.data import ManifestDataset, build_manifest
from gan_augment.models import create_generator
from gan_augment.perf import loader_throughput, sampling_throughput
from gan_augment.provenance import run_metadata

from .transforms import build_transform

__all__ = ["run_speed_benchmark", "main"]


def _default_data_dir() -> Path:
    return Path(os.environ.get("GAN_AUGMENT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
                               / "ham10000_200x150"))


def run_speed_benchmark(*, data_dir: Path, out: Path, device: str, image_size: int = 256, batch_size: int = 64,
                        num_workers: int = 2, bank_size: int = 2000, sample_n: int = 128,
                        max_items: int | None = None) -> dict:
    """Measure loader throughput (real alone vs GAN-balanced) and sampling throughput; write JSON + Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    manifest, _ = build_manifest(metadata=str(data_dir / "HAM10000_metadata.csv"), image_dir=str(data_dir))
    real = ManifestDataset(manifest, "train", output="numpy", verbose=False)
    transform = build_transform(image_size, augment=True, seed=0)
    # A randomly initialised generator of the default 256 px architecture costs the same to run as a trained one.
    torch.manual_seed(0)
    G = create_generator("resnet", resolution=256, num_classes=len(real.classes), base_channels=48, z_dim=128)
    G.class_names = list(real.classes)
    t0 = time.perf_counter()
    balanced = GANBalancedDataset(real, G, transform=transform, bank_size=bank_size, device=device, seed=0)
    bank_seconds = time.perf_counter() - t0
    real_t = ManifestDataset(manifest, "train", output="numpy", transform=transform, verbose=False)
    r_real = loader_throughput(real_t, batch_size=batch_size, num_workers=num_workers, max_items=max_items)
    r_bal = loader_throughput(balanced, batch_size=batch_size, num_workers=num_workers, max_items=max_items)
    r_sample = sampling_throughput(G, n=sample_n, batch_size=32 if device == "cpu" else 128, device=device)
    result = {
        "meta": run_metadata(device=device),
        "setup": {"data": str(data_dir), "manifest_hash": manifest.hash, "image_size": image_size,
                  "batch_size": batch_size, "num_workers": num_workers, "bank_size": bank_size,
                  "generator": "resnet 256px base_channels=48 (random init: same cost as trained)",
                  "transform": "classifier.transforms.build_transform(augment=True)"},
        "loader_real": r_real, "loader_balanced": r_bal,
        "loader_ratio_balanced_over_real": r_bal["images_per_second"] / r_real["images_per_second"],
        "bank_generation": {"images": sum(balanced.bank_per_class.values()), "seconds": bank_seconds,
                            "images_per_second": sum(balanced.bank_per_class.values()) / bank_seconds,
                            "memory_mb": balanced.bank_nbytes / 1e6},
        "sampling_256": r_sample,
        "balanced_summary": balanced.summary(),
    }
    write_json(out / "speed.json", result)
    write_text(out / "speed.md", _markdown(result))
    return result


def _markdown(r: dict) -> str:
    m = r["meta"]
    lines = [
        "# Plug-in API throughput",
        "",
        f"Command: `{m['command']}`  ",
        f"Commit: `{m['commit']}`{' (dirty tree)' if m['dirty'] else ''}; device: {m['device']}; "
        f"torch {m['versions']['torch']}, albumentations {m['versions']['albumentations']}; {m['date']}",
        "",
        "| what | images | seconds | images/s |",
        "|---|---:|---:|---:|",
        f"| DataLoader, real HAM10000 train split only | {r['loader_real']['images']} | "
        f"{r['loader_real']['seconds']:.1f} | {r['loader_real']['images_per_second']:.0f} |",
        f"| DataLoader, GANBalancedDataset (bank) | {r['loader_balanced']['images']} | "
        f"{r['loader_balanced']['seconds']:.1f} | {r['loader_balanced']['images_per_second']:.0f} |",
        f"| bank generation (256 px, {r['bank_generation']['memory_mb']:.0f} MB uint8) | "
        f"{r['bank_generation']['images']} | {r['bank_generation']['seconds']:.1f} | "
        f"{r['bank_generation']['images_per_second']:.1f} |",
        f"| generator sampling at 256 px ({r['sampling_256']['device']}, batch {r['sampling_256']['batch_size']}) | "
        f"{r['sampling_256']['images']} | {r['sampling_256']['seconds']:.1f} | "
        f"{r['sampling_256']['images_per_second']:.1f} |",
        "",
        f"**Loader ratio, balanced / real: {r['loader_ratio_balanced_over_real']:.2f}** (same "
        f"albumentations pipeline at {r['setup']['image_size']} px, batch {r['setup']['batch_size']}, "
        f"{r['setup']['num_workers']} workers, one shuffled epoch each, measured in one run).",
        "",
        "Bank images are stored at the real images' size (200x150), so a synthetic item costs an array copy",
        "where a real item costs a JPEG decode.",
        "",
        "## Balanced training set",
        "",
        r["balanced_summary"],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", type=Path, default=_default_data_dir(),
                   help="HAM10000 folder with HAM10000_metadata.csv (default: $GAN_AUGMENT_DATA or ../shared/data)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/speed_cpu"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bank-size", type=int, default=2000)
    p.add_argument("--max-items", type=int, default=None, help="stop each loader pass after this many images")
    args = p.parse_args(argv)
    if not (args.data_dir / "HAM10000_metadata.csv").is_file():
        print(f"speed: no HAM10000_metadata.csv in {args.data_dir}; pass --data-dir", file=sys.stderr)
        return 2
    r = run_speed_benchmark(data_dir=args.data_dir, out=args.out, device=args.device, batch_size=args.batch_size,
                            num_workers=args.num_workers, bank_size=args.bank_size, max_items=args.max_items)
    print(_markdown(r))
    return 0
