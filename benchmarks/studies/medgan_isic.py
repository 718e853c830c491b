"""Reproduce MedGAN's ISIC table with ``configs/medgan_isic_128.yaml`` and put our numbers next to theirs.

MedGAN (SNGAN, 128 px, 160 ISIC images) reports PSNR 12.89, MS-GMSD 0.25 and LPIPS 0.53 under the seeds'
paired-batch protocol (generated image i against real image i, [0, 1] range); the figures are quoted from this
project's issue on metrics. We add FID / KID (not reported by the seed), which say far more about realism.

    python benchmarks/studies/medgan_isic.py --out benchmarks/results/medgan_isic_128 [--time-limit-minutes 20]

Training resumes across calls; the evaluation is of whatever step the generator has reached, and says so.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
from pathlib import Path

from gan_augment._io import write_json, write_text

__all__ = ["MEDGAN_ISIC", "run", "main"]

MEDGAN_ISIC = {"psnr": 12.89, "ms_gmsd": 0.25, "lpips": 0.53}


def run(out: Path, *, config: str, overrides: list[str], per_class: int, features: list[str], device: str,
        max_real_per_class: int | None, train_first: bool = True) -> dict:
    from gan_augment.metrics.evaluate import evaluate_generator
    from gan_augment.training import load_config, train

    gan_dir = out / "gan"
    cfg = load_config(config, [f"out={gan_dir}", f"train.device={device}", *overrides])
    resume = (gan_dir / "checkpoints").is_dir() and any((gan_dir / "checkpoints").glob("ckpt_*.pt"))
    if train_first:
        result = train(cfg, resume=resume)
        step, finished, gen_path = result.step, result.finished, result.generator_path
    else:  # evaluate the generator as it stands
        summary = json.loads((gan_dir / "train_summary.json").read_text())
        step, finished, gen_path = summary["step"], summary["finished"], gan_dir / "generator.safetensors"
    metrics = evaluate_generator(gen_path, gan_dir / "manifest.csv", out=out / "eval", split="test",
                                 per_class=per_class, features=features, device=device,
                                 max_real_per_class=max_real_per_class, progress=cfg.train.progress)
    paired = metrics["reference"]["paired-batch"]
    ours = {k: paired[k] for k in ("psnr", "ms_gmsd", "lpips", "ssim", "ms_ssim", "mdsi", "haarpsi")}
    dist = {name: d["overall"] for name, d in metrics["distribution"].items() if "overall" in d}
    total = json.loads((gan_dir / "train_summary.json").read_text())["total_steps"]
    summary = {"meta": metrics["meta"], "config": config, "overrides": overrides, "step": step,
               "total_steps": total, "finished": finished,
               "medgan_reported": MEDGAN_ISIC, "ours_paired_batch": ours, "ours_distribution": dist,
               "train_images": metrics["data"]["train_per_class"], "heldout": metrics["data"]["heldout_per_class"]}
    write_json(out / "comparison.json", summary)
    write_text(out / "comparison.md", comparison_markdown(summary))
    return summary


def _f(v) -> str:
    return v if isinstance(v, str) else f"{v:.3g}"


def comparison_markdown(s: dict) -> str:
    m, ours = s["meta"], s["ours_paired_batch"]
    status = ("finished" if s["finished"] else
              f"**partial: stopped at step {s['step']} of {s['total_steps']}** (rerun to resume)")
    lines = ["# MedGAN ISIC reproduction (SNGAN, 128 px, 160 training images)", "",
             f"Config `{s['config']}` {' '.join(s['overrides'])}; training {status}. Commit `{m['commit']}`, "
             f"{m['device']}, {m['date']}.", "",
             "## Paired-batch protocol (the seed's): generated image i vs real test image i, [0, 1]", "",
             "| metric | direction | MedGAN (reported) | ours |", "|---|---|---:|---:|"]
    for k, d in (("psnr", "higher is better"), ("ms_gmsd", "lower is better"), ("lpips", "lower is better")):
        v = ours[k]
        lines.append(f"| {k.upper().replace('_', '-')} | {d} | {MEDGAN_ISIC[k]} | "
                     f"{'unavailable (no LPIPS backbone weights offline)' if isinstance(v, str) else _f(v)} |")
    lines += ["", "Also: " + ", ".join(f"{k.upper().replace('_', '-')} {_f(ours[k])}" for k in
                                        ("ssim", "ms_ssim", "mdsi", "haarpsi")) + ".",
              "", "These compare unrelated real and generated images; they do not measure realism. The seed does "
              "not report FID / KID; ours, against the held-out test split:", "",
              "| feature space | FID | KID x1e3 | precision | recall | n real / generated |", "|---|---:|---:|---:|---:|---|"]
    for name, o in s["ours_distribution"].items():
        lines.append(f"| {name} | {o['fid']:.1f} | {o['kid'] * 1e3:.1f} | {o['precision']:.3f} | {o['recall']:.3f} | "
                     f"{o['n_real']} / {o['n_fake']} |")
    lines += ["", "Full metrics, grids and the memorisation test: `eval/metrics.md`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/medgan_isic_128"))
    p.add_argument("--config", default="configs/medgan_isic_128.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--time-limit-minutes", type=float, help="stop training (with a checkpoint) after this long")
    p.add_argument("--per-class", type=int, default=160, help="generated images (one pooled class)")
    p.add_argument("--features", default="inception,lite0")
    p.add_argument("--max-real-per-class", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--eval-only", action="store_true", help="evaluate the generator as it stands, no training")
    args = p.parse_args(argv)
    overrides = list(args.overrides)
    if args.time_limit_minutes is not None:
        overrides.append(f"train.time_limit_minutes={args.time_limit_minutes}")
    device = args.device if args.device != "auto" else ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    s = run(args.out, config=args.config, overrides=overrides, per_class=args.per_class,
            features=[f.strip() for f in args.features.split(",")], device=device,
            max_real_per_class=args.max_real_per_class, train_first=not args.eval_only)
    print(comparison_markdown(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
