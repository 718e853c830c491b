"""Which GAN recipe learns on a CPU? Variants trained for the same CPU time, judged in InceptionV3 features.

Every variant trains on the HAM10000 training split of the benchmark's split (lesion-grouped 70/15/15, seed 0,
the split of ``configs/ham10000_256.yaml``) at 64 px, with the same batch, optimiser, DiffAugment and EMA; only
the networks and the regularisers differ. Each gets the same budget of the training loop's own CPU time
(``train.cpu_time_limit_minutes``: process time summed over threads, so other work on the machine does not
change the budget) and is evaluated at fixed points of it: FID / KID / precision / recall / the real-vs-synthetic
probe against the validation split in InceptionV3 features (the discriminator's own Lite0 features are not used
to grade it), per class, within-class diversity, the memorisation test, and the same numbers for real training
images (the floor a perfect generator would reach). A variant resumes after an interruption; finished points are
never redone.

    python benchmarks/studies/gan_recipes.py --out benchmarks/results/gan_recipes_cpu64 --time-limit-minutes 170
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ga_bench.cpu_budget import Paused, collect_run, cpu_done, pausable, train_for_cpu
from studies.gan_recipes_report import _plot, study_markdown

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "configs" / "ham10000_256.yaml"  # its data section is the benchmark's split

# Shared by every variant: 64 px, batch 32, one D step per G step, Adam(2e-4, (0, 0.999)), hinge, DiffAugment
# colour + translation + cutout at p = 1, an EMA generator, class-balanced draws (count ** 0.5).
COMMON = [
    "model.resolution=64", "model.z_dim=128", "train.batch_size=32", "train.n_dis=1", "train.steps=1000000",
    "train.lr_g=2.0e-4", "train.lr_d=2.0e-4", "train.ema_decay=0.99", "train.ema_start=100",
    "train.checkpoint_every=100", "train.keep_last=1", "train.sample_every=250", "train.log_every=25",
    "train.samples_per_class=10", "train.tensorboard=false", "train.progress=false", "train.device=cpu",
    "loss.name=hinge", "augment.policy=color,translation,cutout", "augment.p=1.0", "data.class_balance=0.5",
]
RESNET_G = ["model.generator=resnet", "model.g_channels=32", "model.max_mult=4"]
RESNET_D = ["model.discriminator=resnet", "model.d_channels=32", "model.max_mult=4"]
FASTGAN_G = ["model.generator=fastgan", "model.g_channels=16"]
PROJECTED_D = ["model.discriminator=projected", "model.d_channels=64"]
LECAM = ["loss.lecam_lambda=0.3"]  # the paper's weight for hinge-loss BigGAN (Tseng et al. 2021)
TRANSITION = ["model.cond_transition=[150,450]"]
# a spectral discriminator beside D (Durall et al. 2020): the shipped generator's images carry 2-3x too little
# power above 4 cycles per image, and a linear probe on their spectra alone tells them from real ones 99 % of the
# time. Weight 1: as much as the main adversarial term (a first choice, not tuned).
SPECTRAL = ["loss.spectral_lambda=1.0"]
# a trained head on the full-resolution image beside the projected heads, whose frozen features start at stride 4
# (the spectral D only saw ring averages; this sees local texture). Width 16 for its stem: ~40 MMAC per image.
PIXEL = ["model.d_pixel_channels=16"]
# every class drawn equally often (the others: count ** 0.5): the shipped generator's df / vasc images are the
# least recognisable as their class, and df (81 training images) is 1 in 20 draws under the square-root rule
BALANCED = ["data.class_balance=0.0"]
# the class projection term of each D head weighted 8x (= sqrt of the head width): at 40 CPU-minutes every
# variant's images are given their own class by a real-trained linear probe (InceptionV3) 15-23 % of the time,
# barely above chance (14 %; real validation images 53 %) - the class hardly shapes the images
CLASS_GAIN = ["model.d_class_gain=8.0"]
# an auxiliary classifier on D's frozen features, trained on real images; G's loss gets the cross-entropy of its
# images under it (AC-GAN-style, Odena et al. 2017). Weight 1 = AC-GAN's (a first choice, not tuned). It pushes
# the class through Lite0 features; the study grades class fidelity in InceptionV3 features, which G never sees.
CLASS_HEAD = ["loss.class_lambda=1.0"]
# the mode-seeking term (Mao et al. 2019, MSGAN; their weight 1): the probe calibration
# (benchmarks/results/probe_calibration_cpu64/) found the shipped generators' images told apart mostly by their
# content and too little variety (recall 0.41 against 0.82 for real images blurred to the same fine detail)
MODE_SEEKING = ["loss.mode_seeking_lambda=1.0"]
# Lite0 in D fed the image upsampled to 128 px (its features then have 2x the resolution: 32/16/8/4 maps at 64 px):
# from trained starts it beat its control at two training seeds on KID, recall and the probe at half the G steps
# per CPU-hour (benchmarks/results/mbstd_cpu64/); the shipped ham10000-64-lite128 was trained on with it. Here: from
# scratch, where half the steps may cost more than better features give
LITE128 = ["model.d_backbone_scale=2"]

# key -> (description, overrides). Order = the issue's: old recipe, each new part alone, both, + LeCam,
# + transitional conditioning; then the fine-detail attempts (after the shipped generator's diagnosis).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "resnet": ("ResNet G + ResNet D (the old recipe)", RESNET_G + RESNET_D),
    "fastgan_resnetD": ("FastGAN G + ResNet D", FASTGAN_G + RESNET_D),
    "resnet_projected": ("ResNet G + projected D", RESNET_G + PROJECTED_D),
    "fastgan_projected": ("FastGAN G + projected D", FASTGAN_G + PROJECTED_D),
    "fastgan_projected_lecam": ("FastGAN + projected + LeCam", FASTGAN_G + PROJECTED_D + LECAM),
    "fastgan_projected_lecam_trans": ("FastGAN + projected + LeCam + transitional conditioning",
                                      FASTGAN_G + PROJECTED_D + LECAM + TRANSITION),
    "fastgan_projected_spectral": ("FastGAN + projected + spectral D", FASTGAN_G + PROJECTED_D + SPECTRAL),
    "fastgan_projected_pixel": ("FastGAN + projected + full-resolution head", FASTGAN_G + PROJECTED_D + PIXEL),
    "fastgan_projected_balanced": ("FastGAN + projected, every class equally often",
                                   FASTGAN_G + PROJECTED_D + BALANCED),
    "fastgan_projected_classgain": ("FastGAN + projected, class term x8", FASTGAN_G + PROJECTED_D + CLASS_GAIN),
    "fastgan_projected_classhead": ("FastGAN + projected + auxiliary classifier",
                                    FASTGAN_G + PROJECTED_D + CLASS_HEAD),
    "fastgan_projected_ms": ("FastGAN + projected + mode-seeking term", FASTGAN_G + PROJECTED_D + MODE_SEEKING),
    "fastgan_projected_lite128": ("FastGAN + projected, Lite0 fed 128 px", FASTGAN_G + PROJECTED_D + LITE128),
}
POINTS_CPU_MINUTES = (10.0, 20.0, 40.0)
PER_CLASS = 50  # generated images per class at each point (InceptionV3 runs at ~4 img/s on 2 CPU cores)
MAX_REAL_PER_CLASS = 200  # validation / training images per class the metrics compare with


def _manifest_for(run_dir: Path) -> Path:
    return run_dir / "manifest.csv"


def train_to(key: str, run_dir: Path, budget_min: float, deadline: float | None) -> float:
    """Train (or resume) ``key`` until the loop has used ``budget_min`` CPU-minutes; returns its CPU seconds."""
    train_for_cpu(BASE_CONFIG, [*COMMON, *VARIANTS[key][1]], run_dir, budget_min, deadline, name=key)
    return cpu_done(run_dir)


def real_floor(manifest_path: Path, class_names: list[str], cache_dir: Path | None,
               resolution: int = 64) -> dict[str, Any]:
    """The generator check applied to real *training* images (PER_CLASS per class) instead of generated ones:
    the values a generator indistinguishable from the training data would get under this protocol, at
    ``resolution``."""
    from gan_augment.data import Manifest
    from gan_augment.metrics.evaluate import load_real_images
    from gan_augment.metrics.features import cached_features, create_feature_extractor
    from gan_augment.metrics.fidelity import distribution_metrics, feature_spread

    manifest = Manifest.read(manifest_path)
    ext = create_feature_extractor("inception")
    held = load_real_images(manifest, "val", class_names, resolution=resolution, channels=3,
                            max_per_class=MAX_REAL_PER_CLASS, seed=0)
    train = load_real_images(manifest, "train", class_names, resolution=resolution, channels=3,
                             max_per_class=PER_CLASS, seed=1)
    f_held, _ = cached_features(ext, held.key, lambda: held.images, cache_dir=cache_dir)
    f_train, _ = cached_features(ext, train.key, lambda: train.images, cache_dir=cache_dir)
    dist = distribution_metrics(f_held, f_train, real_labels=held.labels, fake_labels=train.labels,
                                class_names=class_names)
    spread = {class_names[c]: feature_spread(f_train[train.labels == c]) for c in sorted(set(train.labels.tolist()))}
    pix = {class_names[c]: pixel_diversity(train.images[train.labels == c]) for c in sorted(set(train.labels.tolist()))}
    return {"distribution": dist, "spread_per_class": spread, "pixel_std_per_class": pix,
            "n_train_images": int(len(train.labels)), "n_val_images": int(len(held.labels)),
            "spectrum": floor_spectrum(manifest_path, class_names, resolution)}


def floor_spectrum(manifest_path: Path, class_names: list[str], resolution: int = 64) -> dict[str, Any]:
    """The spectrum comparison (``gan-augment evaluate``'s) with real training images in place of generated ones."""
    from gan_augment.data import Manifest
    from gan_augment.metrics.evaluate import load_real_images
    from gan_augment.metrics.fidelity import spectrum_comparison

    manifest = Manifest.read(manifest_path)
    held = load_real_images(manifest, "val", class_names, resolution=resolution, channels=3,
                            max_per_class=MAX_REAL_PER_CLASS, seed=0)
    train = load_real_images(manifest, "train", class_names, resolution=resolution, channels=3,
                             max_per_class=PER_CLASS, seed=1)
    return spectrum_comparison(held.images, train.images)


def pixel_diversity(images) -> float:
    """Mean over pixels of the standard deviation across images, in grey levels (0 when all are one image)."""
    import torch

    x = torch.as_tensor(images).double()
    return float(x.std(0).mean()) if len(x) > 1 else float("nan")


def evaluate_point(key: str, run_dir: Path, out_dir: Path, cache_dir: Path | None) -> dict[str, Any]:
    """Inception metrics of the variant's EMA generator now, plus diversity and the training log's figures."""
    recs = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines() if x.strip()]
    last = recs[-1]
    tail = recs[-max(1, len(recs) // 4):]
    return {
        "step": last["step"], "cpu_minutes": last["cpu_s"] / 60, "wall_minutes": last["elapsed_s"] / 60,
        "img_per_s": float(np.median([r["img_per_s"] for r in recs])),
        "d_loss_recent": float(np.mean([r["d_loss"] for r in tail])),
        "d_acc_recent": float(np.mean([r["d_acc"] for r in tail])),
        **generator_point(run_dir / "generator.safetensors", _manifest_for(run_dir), out_dir, cache_dir),
    }


def generator_point(generator: Path, manifest: Path, out_dir: Path, cache_dir: Path | None) -> dict[str, Any]:
    """The study protocol's numbers of one generator file at its own resolution: InceptionV3 FID / KID / precision /
    recall / probe overall and per class, diversity, memorisation, spectrum and class fidelity."""
    import torch

    from gan_augment.generators import load_generator
    from gan_augment.metrics.evaluate import evaluate_generator

    metrics = evaluate_generator(generator, manifest, out=out_dir, split="val", per_class=PER_CLASS,
                                 features=["inception"], max_real_per_class=MAX_REAL_PER_CLASS, device="cpu",
                                 progress=False, cache_dir=cache_dir, seed=0)
    G = load_generator(generator)
    dist = metrics["distribution"]["inception"]
    spread = {c: v.get("spread_fake") for c, v in dist["per_class"].items()}
    # the images evaluate_generator drew (same seeds), for the pixel-level diversity
    pix = {name: pixel_diversity(G.sample(PER_CLASS, c, seed=0 * 1000 + c)) for c, name in enumerate(G.class_names)}
    return {
        "overall": {k: dist["overall"].get(k) for k in ("fid", "kid", "kid_std", "precision", "recall", "c2st")},
        "per_class": {c: {k: v.get(k) for k in ("kid", "recall", "c2st", "spread_ratio")}
                      for c, v in dist["per_class"].items()},
        "spread_per_class": spread, "pixel_std_per_class": pix,
        "memorisation": {k: metrics["memorisation"]["overall"].get(k)
                         for k in ("p_value", "flagged", "median_nn_distance_generated",
                                   "median_nn_distance_heldout")},
        "memorisation_flagged_classes": [c for c, v in metrics["memorisation"].get("per_class", {}).items()
                                         if v.get("flagged")],
        "spectrum": {k: metrics["spectrum"][k] for k in ("high_band_gap", "probe")},
        "class_fidelity": _fidelity_record(metrics["class_fidelity"]),
        "torch_threads": torch.get_num_threads(),
    }


def _fidelity_record(cf: dict[str, Any]) -> dict[str, Any]:
    return {k: cf.get(k) for k in ("mean_generated", "mean_real_heldout", "ratio", "generated", "real_heldout")}


def generator_step(path: Path) -> int:
    from gan_augment.generators import load_generator

    return int(load_generator(path).meta.get("step") or -1)


def class_fidelity_now(run_dir: Path, cache_dir: Path | None) -> dict[str, Any]:
    """Class fidelity of the variant's current generator with evaluate_point's images and seeds, for points
    evaluated before the metric existed: only the generated images' features are new (real ones are cached)."""
    from gan_augment.data import Manifest
    from gan_augment.generators import load_generator
    from gan_augment.metrics import class_fidelity
    from gan_augment.metrics.evaluate import load_real_images
    from gan_augment.metrics.features import cached_features, create_feature_extractor

    G = load_generator(run_dir / "generator.safetensors")
    manifest, names = Manifest.read(_manifest_for(run_dir)), list(G.class_names)
    ext = create_feature_extractor("inception")
    real = {split: load_real_images(manifest, split, names, resolution=64, channels=3,
                                    max_per_class=MAX_REAL_PER_CLASS, seed=0) for split in ("val", "train")}
    feats = {split: cached_features(ext, r.key, lambda r=r: r.images, cache_dir=cache_dir)[0]
             for split, r in real.items()}
    fake = np.concatenate([np.full(PER_CLASS, c) for c in range(len(names))])
    import torch

    f_fake, _ = ext(torch.cat([G.sample(PER_CLASS, c, seed=c) for c in range(len(names))]))
    cf = class_fidelity(feats["train"], real["train"].labels, f_fake, fake, heldout=feats["val"],
                        heldout_labels=real["val"].labels, class_names=names)
    return _fidelity_record(cf)


def backfill_class_fidelity(study: dict[str, Any], runs_dir: Path, cache_dir: Path | None) -> list[str]:
    """Add class fidelity to points measured before it, where the variant's generator on disk is that point's
    (same step: in practice each variant's last point). Returns the "variant @ point" labels filled."""
    filled = []
    for key, rec in study["variants"].items():
        if not (runs_dir / key / "generator.safetensors").is_file():
            continue
        missing = {p["step"]: label for label, p in rec["points"].items() if "class_fidelity" not in p}
        if not missing:
            continue
        step = generator_step(runs_dir / key / "generator.safetensors")
        if step in missing:
            rec["points"][missing[step]]["class_fidelity"] = class_fidelity_now(runs_dir / key, cache_dir)
            filled.append(f"{key} @ {missing[step]}")
    return filled


def run_study(out: Path, *, variants: list[str], points: tuple[float, ...] = POINTS_CPU_MINUTES,
              runs_dir: Path = Path("runs/gan_recipes_cpu64"), time_limit_minutes: float | None = None,
              cache_dir: Path | None = None) -> dict[str, Any]:
    from gan_augment._io import write_json, write_text
    from gan_augment.provenance import run_metadata

    deadline = time.monotonic() + time_limit_minutes * 60 if time_limit_minutes else None
    out.mkdir(parents=True, exist_ok=True)
    study_path = out / "study.json"
    study = json.loads(study_path.read_text()) if study_path.is_file() else {
        "meta": run_metadata(device="cpu"), "base_config": str(BASE_CONFIG.relative_to(REPO)), "common": COMMON,
        "points_cpu_minutes": list(points), "per_class": PER_CLASS, "max_real_per_class": MAX_REAL_PER_CLASS,
        "features": "inception", "variants": {}}
    # the folder's remit, named in its README's "not yet run" (a study from before it was kept: what it has run)
    asked = study.get("variants_requested", list(study["variants"]))
    study["variants_requested"] = list(dict.fromkeys([*asked, *variants]))
    study["runs_dir"] = Path(runs_dir).as_posix()
    floor = study.get("floor")
    manifests = [_manifest_for(runs_dir / k) for k in study["variants"] if _manifest_for(runs_dir / k).is_file()]
    if floor and "spectrum" not in floor and manifests:  # a floor measured before the spectrum was
        floor["spectrum"] = floor_spectrum(manifests[0], list(floor["distribution"]["per_class"]))
        write_json(study_path, study)
    filled = backfill_class_fidelity(study, runs_dir, cache_dir)
    if filled:
        study["meta"]["class_fidelity_backfill"] = {**run_metadata(device="cpu"), "points": filled}
        write_json(study_path, study)
    with pausable(study, "gan_recipes"):
        for key in variants:
            desc, overrides = VARIANTS[key]
            rec = study["variants"].setdefault(key, {"description": desc, "overrides": overrides, "points": {}})
            run_dir = runs_dir / key
            has_ckpt = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("ckpt_*.pt"))
            unfinished = [p for p in points if f"{p:g}" not in rec["points"]]
            if rec["points"] and unfinished and not has_ckpt:
                # its checkpoint is gone (another machine): later points would restart at 0 CPU-minutes and
                # not continue the curve, so the variant starts over as a whole
                print(f"gan_recipes: {key} has points {sorted(rec['points'])} but no checkpoint in {run_dir}; "
                      "restarting it from scratch", file=sys.stderr)
                rec["points"] = {}
            for budget in points:
                label = f"{budget:g}"
                if label in rec["points"]:
                    continue
                train_to(key, run_dir, budget, deadline)
                if deadline is not None and deadline - time.monotonic() < 3 * 60:
                    raise Paused("not enough time left to evaluate")
                rec["points"][label] = evaluate_point(key, run_dir, run_dir / f"eval_{label}", cache_dir)
                if "floor" not in study:
                    from gan_augment.generators import load_generator

                    names = list(load_generator(run_dir / "generator.safetensors").class_names)
                    study["floor"] = real_floor(_manifest_for(run_dir), names, cache_dir)
                _collect(key, run_dir, out / key, final=label if budget == points[-1] else None)
                study["meta"]["last_update"] = run_metadata(device="cpu")
                write_json(study_path, study)
                write_text(out / "README.md", study_markdown(study, out))
                print(f"{key} @ {label} CPU-min: {rec['points'][label]['overall']}", flush=True)
    write_json(study_path, study)
    write_text(out / "README.md", study_markdown(study, out))
    _plot(study, out / "fid_vs_cpu.png")
    return study


def _collect(key: str, run_dir: Path, dest: Path, *, final: str | None) -> None:
    """Copy what is committed: the log, the loss curves, the per-class grid, each point's metrics and, for the
    ``final`` point only, its image panels - big grids as palette PNGs (``compact_pngs``)."""
    panels = ("samples_vs_real.jpg", "nearest_training.jpg")
    collect_run(run_dir, dest, {ev.name: ("metrics.json", "metrics.md") + (panels if ev.name == f"eval_{final}" else ())
                                for ev in sorted(run_dir.glob("eval_*"))})


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/gan_recipes_cpu64"))
    p.add_argument("--runs-dir", type=Path, default=Path("runs/gan_recipes_cpu64"),
                   help="where checkpoints live (not committed)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}")
    p.add_argument("--points", default=",".join(f"{x:g}" for x in POINTS_CPU_MINUTES),
                   help="CPU-minutes at which each variant is evaluated; the last is its budget")
    p.add_argument("--time-limit-minutes", type=float, default=None,
                   help="pause cleanly (checkpointed) after this much wall-clock time; rerun to continue")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    points = tuple(sorted(float(x) for x in args.points.split(",")))
    study = run_study(args.out, variants=keys, points=points, runs_dir=args.runs_dir,
                      time_limit_minutes=args.time_limit_minutes)
    print(study_markdown(study, args.out))
    return 3 if study.get("paused") else 0


if __name__ == "__main__":
    raise SystemExit(main())
