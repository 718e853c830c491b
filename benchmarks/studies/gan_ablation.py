"""What makes the discriminator learn? Train GAN variants from one base config and compare them.

Each variant is a list of ``--set``-style overrides on the base YAML. For every variant we record D's accuracy
on real / fake images and its loss against the chance level (from the JSONL log), the throughput, and - from
the EMA generator at the end - KID / FID against the validation split in one feature space plus the real-image
classifier-free precision / recall. Results go to ``ablation.json`` / ``ablation.md`` with one sample grid per
variant. Runs resume per variant (finished variants are skipped; a variant paused by
``--set train.time_limit_minutes=M`` continues from its last checkpoint).

    python benchmarks/studies/gan_ablation.py --base configs/quick_cpu.yaml --out benchmarks/results/gan_ablation_cpu32
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from gan_augment._io import write_json, write_text
from gan_augment.provenance import run_metadata

__all__ = ["VARIANTS", "run_ablation", "main"]

# name -> overrides. "base" is the config as written.
VARIANTS: dict[str, list[str]] = {
    "base (DiffAugment colour+translation+cutout, p=1)": [],
    "no augmentation": ["augment.policy="],
    "colour+translation, no cutout": ["augment.policy=color,translation"],
    "ADA-style adaptive p (start 0, target 0.6)": ["augment.adaptive=true", "augment.p=0.0"],
    "TTUR lr G 1e-4 / D 4e-4 (first attempt's recipe)": ["train.lr_g=1.0e-4", "train.lr_d=4.0e-4"],
    "R1 gamma 1 instead of relying on SN alone": ["loss.r1_gamma=1.0"],
}


def _summarise_log(log: Path, chance: float | None) -> dict:
    recs = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    tail = recs[-max(1, len(recs) // 4):]  # last quarter of training
    mean = lambda k: float(np.mean([r[k] for r in tail]))  # noqa: E731
    return {"steps": recs[-1]["step"], "d_loss_last_quarter": mean("d_loss"), "d_loss_chance": chance,
            "d_real_acc_last_quarter": mean("d_real_acc"), "d_fake_acc_last_quarter": mean("d_fake_acc"),
            "aug_p_end": recs[-1].get("aug_p"), "d_at_chance_fraction": float(np.mean([r["d_at_chance"] for r in recs])),
            "img_per_s": float(np.median([r["img_per_s"] for r in recs]))}


def run_ablation(base: str, out: Path, *, variants: dict[str, list[str]], steps: int, extra: list[str],
                 per_class: int, features: str, max_real_per_class: int | None, device: str) -> dict:
    from gan_augment.metrics.evaluate import evaluate_generator
    from gan_augment.training import Trainer, load_config

    out.mkdir(parents=True, exist_ok=True)
    results = {"meta": run_metadata(device=device), "base_config": base, "steps": steps, "extra_overrides": extra,
               "features": features, "variants": {}}
    for i, (name, overrides) in enumerate(variants.items()):
        vdir = out / f"v{i}"
        done = vdir / "variant.json"
        if done.is_file():
            results["variants"][name] = json.loads(done.read_text())
            continue
        run_dir = vdir / "run"
        resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("ckpt_*.pt"))
        if run_dir.exists() and not resume:
            shutil.rmtree(run_dir)  # an unfinished variant with no checkpoint restarts from scratch
        cfg = load_config(base, [*extra, *overrides, f"train.steps={steps}", f"out={run_dir}", "train.progress=false",
                                 "train.tensorboard=false", f"train.device={device}"])
        trainer = Trainer(cfg, resume=resume)
        result = trainer.fit()
        if not result.finished:  # train.time_limit_minutes: never evaluate a half-trained variant as done
            raise TimeoutError(f"variant v{i} ({name}) paused at step {result.step} of {steps} (time limit); "
                               "rerun the same command to continue it")
        summary = _summarise_log(run_dir / "log.jsonl", trainer.loss.chance_d_loss)
        metrics = evaluate_generator(run_dir / "generator.safetensors", trainer.data.manifest_path, out=vdir / "eval",
                                     split="val", per_class=per_class, features=[features],
                                     max_real_per_class=max_real_per_class, device=device, progress=False)
        overall = metrics["distribution"][features]["overall"]
        record = {"overrides": overrides, **summary,
                  **{k: overall.get(k) for k in ("fid", "kid", "kid_std", "precision", "recall")},
                  "grid": str((run_dir / "samples_per_class.jpg").relative_to(out))}
        write_json(done, record)
        results["variants"][name] = record
    write_json(out / "ablation.json", results)
    write_text(out / "ablation.md", ablation_markdown(results))
    return results


def ablation_markdown(r: dict) -> str:
    m = r["meta"]
    lines = ["# GAN ablation: what makes D learn?", "",
             f"Base config `{r['base_config']}` + `{' '.join(r['extra_overrides'])}`, {r['steps']} G steps per variant; "
             f"commit `{m['commit']}`; {m['device']}; torch {m['versions']['torch']}; {m['date']}.", "",
             f"Quality: KID / FID of the EMA generator against the validation split in `{r['features']}` features "
             "(lower is better), precision / recall (higher is better). D accuracy and loss: mean over the last quarter "
             "of training; hinge loss at chance = 2.0.", "",
             "| variant | D acc real / fake | D loss (chance) | time at chance | KID x1e3 | FID | precision | recall | img/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in r["variants"].items():
        chance = f" ({v['d_loss_chance']:.2f})" if v.get("d_loss_chance") is not None else ""
        lines.append(f"| {name} | {v['d_real_acc_last_quarter']:.2f} / {v['d_fake_acc_last_quarter']:.2f} | "
                     f"{v['d_loss_last_quarter']:.3f}{chance} | {v['d_at_chance_fraction']:.0%} | "
                     f"{(v['kid'] or float('nan')) * 1e3:.1f} | {v['fid']:.1f} | {v['precision']:.3f} | "
                     f"{v['recall']:.3f} | {v['img_per_s']:.0f} |")
    lines += ["", "Sample grids (fixed latents, one row per class): " +
              ", ".join(f"[{n}]({v['grid']})" for n, v in r["variants"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="configs/quick_cpu.yaml")
    p.add_argument("--out", type=Path, default=Path("runs/gan_ablation"))
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--set", dest="extra", action="append", default=[], help="override for every variant")
    p.add_argument("--variants", help="comma-separated indices of VARIANTS to run (default: all)")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--features", default="lite0", choices=["lite0", "inception"])
    p.add_argument("--max-real-per-class", type=int, default=200)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    names = list(VARIANTS)
    chosen = [names[int(i)] for i in args.variants.split(",")] if args.variants else names
    device = args.device if args.device != "auto" else ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    try:
        r = run_ablation(args.base, args.out, variants={n: VARIANTS[n] for n in chosen}, steps=args.steps,
                         extra=args.extra, per_class=args.per_class, features=args.features,
                         max_real_per_class=args.max_real_per_class, device=device)
    except TimeoutError as exc:
        print(f"gan_ablation: {exc}", file=sys.stderr)
        return 2
    print(ablation_markdown(r))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
