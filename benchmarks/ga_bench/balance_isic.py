"""``benchmarks/balance_isic.py``: does GAN augmentation beat the strongest baselines?

The command line over :mod:`ga_bench.protocol` (arms, presets, split), :mod:`ga_bench.arms` (each arm's training
set), :mod:`ga_bench.runner` (resumable, pausable runs) and :mod:`ga_bench.report` (Markdown and plots).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from gan_augment import distributed as gdist

from .presets import PRESETS
from .protocol import BenchmarkConfig, GeneratorMismatch, known_arms
from .report import report_markdown
from .runner import run_benchmark

__all__ = ["build_config", "parser", "main"]


def build_config(args: argparse.Namespace) -> BenchmarkConfig:
    """Preset values, then every command-line option that was given."""
    values: dict[str, Any] = {"preset": args.preset, **PRESETS[args.preset]}
    for f in dataclasses.fields(BenchmarkConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    if args.out is None:
        cfg = BenchmarkConfig(**values)
        cfg.out = f"runs/balance_isic_{args.preset}" + ("" if cfg.regime() == "full" else f"_{cfg.regime()}")
        return cfg
    return BenchmarkConfig(**values)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="balance_isic.py", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="full")
    p.add_argument("--out", help="output folder (default runs/balance_isic_<preset>[_fracNNN])")
    p.add_argument("--data-dir", help="HAM10000 folder with HAM10000_metadata.csv, an ImageFolder, a MedMNIST .npz, or "
                                      "demo:ham10000-64 (the embedded demo set; the demo preset's default); default: "
                                      "$GAN_AUGMENT_DATA, else ../shared/data/ham10000_200x150")
    p.add_argument("--dataset", choices=["auto", "dermamnist"], help="dermamnist: download via the medmnist package")
    p.add_argument("--dermamnist-size", type=int, choices=[28, 64, 128, 224])
    p.add_argument("--split-manifest", help="use this manifest CSV instead of splitting")
    p.add_argument("--source-split", help="the full split the --split-manifest was cut from (each row checked): a "
                                          "generator trained on its training split is then accepted with "
                                          "--generator-from-full-split")
    p.add_argument("--train-fraction", type=float, help="keep this fraction of each class's train images (0.25)")
    p.add_argument("--max-train-per-class", type=int, metavar="N",
                   help="the few-shot slice: at most N training images of each class (seeded draw); its runs train "
                        "--fewshot-epochs (60) unless --epochs is given")
    p.add_argument("--fewshot-epochs", type=int, help="epochs of a --max-train-per-class run (60)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--arms", type=lambda s: [x.strip() for x in s.split(",")], help=f"subset of {','.join(known_arms())}")
    p.add_argument("--image-size", type=int)
    p.add_argument("--channels", type=lambda v: v if v == "auto" else int(v), choices=[1, 3, "auto"],
                   help="1 (grey scans: the classifier's stem is adapted, no fake RGB), 3, or auto (1 when every "
                        "training image is grey)")
    p.add_argument("--resize", choices=["center_crop", "squash", "pad"],
                   help="how images become squares: center_crop (default; dermoscopy), squash, or pad (scans "
                        "whose edges matter)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--classifier", help="tf_efficientnet_lite0 (default, offline) | efficientnet_b0 | efficientnet-b0")
    p.add_argument("--allow-download", action="store_true", default=None)
    p.add_argument("--generator", help="generator file trained on this benchmark's manifest, or pretrained:NAME "
                                       "(a generator shipped with the package, e.g. pretrained:ham10000-64)")
    p.add_argument("--generator-from-full-split", action="store_true", default=None,
                   help="accept a generator trained on the whole training split that --max-train-images / "
                        "--train-fraction slice (no test leak, but the GAN arm sees more real images than the "
                        "baselines: the report says so; the demo preset's setting)")
    p.add_argument("--upper-bound-from", metavar="DIR",
                   help="the shared-generator regime (a slice, --generator-from-full-split): the full split's "
                        "benchmark folder (same test rows and protocol), whose best baseline is the upper bound; the "
                        "report gives each GAN arm's share of the gap closed, with CI, and the generator's "
                        "memorisation test")
    p.add_argument("--reference", help="a committed result folder to summarise at the top of the report")
    p.add_argument("--baselines-from", metavar="DIR",
                   help="another benchmark folder with the same split and protocol: its baseline runs (and the aug "
                        "classifier the check and the filter use) are read, never trained here - to compare a second "
                        "generator with baselines already run")
    p.add_argument("--restore-judge", action="store_true", default=None,
                   help="the aug seed-0 run's record is saved but not its weights (results folders keep none; the "
                        "generator check, gan_filtered and the studies' distillation and feedback arms need them): "
                        "retrain that run, keep its weights in OUT/judge/ if it matches its record's test balanced "
                        "accuracy within --restore-tolerance-pp (the record is kept as it is)")
    p.add_argument("--restore-tolerance-pp", type=float,
                   help="--restore-judge: largest test balanced accuracy difference from the record, percentage "
                        "points (2: another CPU's retraining came 1.3 pp from the record)")
    p.add_argument("--filter-threshold", type=float, help="gan_filtered: probability the judge must give the class")
    p.add_argument("--filter-quantile", type=float,
                   help="gan_filtered: accept synthetic images the judge scores at least like this quantile of "
                        "real validation images of their class (relative threshold; overrides --filter-threshold)")
    leak = p.add_mutually_exclusive_group()
    leak.add_argument("--resplit", action="store_true", default=None,
                      help="the data's own split puts copies / groups on both sides: split afresh (grouped)")
    leak.add_argument("--drop-leaked", action="store_true", default=None,
                      help="the data's own split leaks: keep it, drop the val/test copies (listed in the report)")
    p.add_argument("--rare-classes", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                   help="classes whose mean recall the goal needs (default: those below --rare-share of the largest)")
    p.add_argument("--rare-share", type=float, help="derived rare classes: training count below this share of the "
                                                   "largest class's (0.05)")
    p.add_argument("--check-max-real-per-class", type=int, help="real images per class in the generator check")
    p.add_argument("--gan-config", help="YAML config to train the generator (default by preset)")
    p.add_argument("--gan-overrides", type=lambda s: [x for x in s.split(";") if x], help="';'-separated key=value")
    p.add_argument("--max-synthetic-fraction", type=float)
    p.add_argument("--light-synthetic-fraction", type=float, help="gan_light's cap on the synthetic share (0.5)")
    p.add_argument("--real-last-epochs", type=int, help="gan_real_last: its last epochs on real images only (2)")
    p.add_argument("--retrain-epochs", type=int, help="gan_crt / gan_real_ft: epochs of the second stage on real "
                                                      "images only (2)")
    p.add_argument("--crt-lr", type=float, help="gan_crt: peak learning rate of the re-trained head (1e-3)")
    p.add_argument("--real-ft-lr", type=float, help="gan_real_ft: peak learning rate of its real-only fine-tune (3e-5)")
    p.add_argument("--distill-temperature", type=float, help="gan_distill / real_distill: the teacher's temperature (2)")
    p.add_argument("--distill-hard-weight", type=float,
                   help="gan_distill / real_distill: the one-hot label's weight in a soft item's target (0.5)")
    p.add_argument("--distill-set", choices=["light", "matched"],
                   help="gan_distill / real_distill / gan_feedback: gan_light's set (light) or gan_matched's "
                        "(matched: the same synthetic share in every class; a balanced slice such as the few-shot "
                        "one)")
    p.add_argument("--boundary-rate", type=float,
                   help="gan_boundary / real_mixup: extra items per real training image (0.1)")
    p.add_argument("--feedback-keep", type=float,
                   help="gan_feedback: the share of the generator's draws its teacher keeps (0.25)")
    p.add_argument("--bank-size", type=int)
    p.add_argument("--max-train-images", type=int)
    p.add_argument("--max-eval-per-class", type=int)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--device")
    p.add_argument("--n-boot", type=int)
    p.add_argument("--check-features", choices=["inception", "lite0"])
    p.add_argument("--check-per-class", type=int, help="generated (and at most real) images per class in the "
                                                       "generator check (100)")
    p.add_argument("--synthetic-test-per-class", type=int, help="fresh generated images per class every classifier "
                   "trained beside GAN arms is also tested on, beside the real test images (100; 0 skips)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--time-limit-minutes", type=float,
                   help="pause between (arm, seed) runs (and the GAN at a checkpoint) once a next run would "
                        "probably not finish in time; rerun the same command to continue")
    p.add_argument("--external-test", help="also score every classifier on another source's images: an ImageFolder "
                                           "(with --class-map) or isic9 (ISIC Archive images of other clinics, "
                                           "for HAM10000)")
    p.add_argument("--class-map", dest="external_class_map",
                   help="--external-test: external_class=training_class,... (unmapped classes are left out)")
    p.add_argument("--external-resize", choices=["center_crop", "squash", "pad", "unsquash_4x3"],
                   help="how external images become squares (isic9: unsquash_4x3, its 4:3 frames were squashed)")
    p.add_argument("--external-min-per-class", type=int, help="external classes with fewer images are not scored (10)")
    p.add_argument("--external-drop-copies", action="store_true", default=None,
                   help="leave out external images that copy a training image (default: refuse them, named)")
    p.add_argument("--keep-classifiers", action="store_true", default=None,
                   help="save every run's classifier as OUT/runs/ARM_seedK_classifier.safetensors (to score it on "
                        "another test set later; results folders commit none)")
    p.add_argument("--prepare-only", action="store_true", default=None,
                   help="write the split to OUT/manifest.csv, print its hash and stop (to train a generator on it)")
    p.add_argument("--report-only", action="store_true", default=None,
                   help="train nothing: write the report over every finished (arm, seed) run among --arms and "
                        "--seeds, each arm with the seeds it has (a table that grows run by run)")
    return p


def main(argv: list[str] | None = None, *, script: str = "benchmarks/balance_isic.py") -> int:
    """The command line; ``script`` is the name the records give the command (the studies' entry point differs)."""
    args = parser().parse_args(argv)
    cfg = build_config(args)
    try:
        results = run_benchmark(cfg, command=["python", script, *(argv or [])])
    except (GeneratorMismatch, ValueError, TimeoutError) as exc:
        print(f"balance_isic: {exc}", file=sys.stderr)
        return 2
    finally:
        gdist.shutdown()
    if not gdist.is_main():
        return 0
    if cfg.prepare_only:
        counts = results["counts"].get("train", {})
        print(f"wrote {results['manifest']} (manifest {results['manifest_hash']}; train: "
              f"{sum(counts.values())} images, {counts}).\nTrain a generator on its training split with\n"
              f"  gan-augment train {cfg.gan_config} --set data.manifest={results['manifest']} "
              f"--set out=runs/gan_{Path(cfg.out).name}\nand pass it with --generator.")
        return 0
    print(report_markdown(results))
    print(f"\nwrote {cfg.out}/results.json, report.md and plots")
    return 0
