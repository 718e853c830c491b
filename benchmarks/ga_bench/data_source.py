"""Where the benchmark's images come from: a folder, a metadata CSV, a MedMNIST .npz, a manifest (with the full
split it was cut from), or the embedded demo set; and the split every arm shares (``prepare_manifest``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from gan_augment.data import Manifest, build_manifest
from gan_augment.data.subset import per_class_cap, stratified_subset

if TYPE_CHECKING:
    from .protocol import BenchmarkConfig

__all__ = ["REPO", "DEMO_DATA", "DEMO_DATA_DIR", "MIN_IMAGES_PER_CLASS", "check_usable", "default_data_dir",
           "prepare_manifest"]

REPO = Path(__file__).resolve().parents[2]  # the repository root (configs/ and ../shared are found from here)

# the embedded demo data (data/ham10000_demo64/README.md): 1,678 HAM10000 images at 64 px cut from the lesion-grouped
# split the default shipped generator was trained on, with that split beside them; --data-dir demo:ham10000-64
DEMO_DATA = "demo:ham10000-64"
DEMO_DATA_DIR = REPO / "data" / "ham10000_demo64"


def default_data_dir() -> str | None:
    env = os.environ.get("GAN_AUGMENT_DATA")
    if env:
        return env
    shared = REPO.parent / "shared" / "data" / "ham10000_200x150"
    return str(shared) if (shared / "HAM10000_metadata.csv").is_file() else None


def _no_data_message() -> str:
    return ("no data given: pass --data-dir (a HAM10000 folder with HAM10000_metadata.csv, an ImageFolder, or a "
            f"MedMNIST .npz) or set $GAN_AUGMENT_DATA; --data-dir {DEMO_DATA} takes the embedded demo set (1,678 "
            "HAM10000 images at 64 px), --dataset dermamnist downloads DermaMNIST (online)")


def _demo_data() -> tuple[str, str]:
    """The embedded demo set's manifest and the full split it was cut from."""
    manifest, source = DEMO_DATA_DIR / "manifest.csv", DEMO_DATA_DIR / "ham10000_split.csv"
    if not (manifest.is_file() and source.is_file()):
        raise ValueError(f"--data-dir {DEMO_DATA}: the embedded demo set is not at {DEMO_DATA_DIR} (it ships with "
                         "the repository, not with the installed package); pass --data-dir with your own data")
    return str(manifest), str(source)


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


MIN_IMAGES_PER_CLASS = 5  # fewer in all three splits: nothing to learn a class from and nothing to test it on


def check_usable(manifest: Manifest) -> None:
    """Refuse, naming the class or split at fault, data the benchmark cannot give an answer on: a missing split,
    fewer than two classes, a class without training, validation or test images, or with fewer than
    :data:`MIN_IMAGES_PER_CLASS` images in all."""
    for split in ("train", "val", "test"):
        if split not in manifest.split_names:
            raise ValueError(f"the split has no {split!r} part; the benchmark needs train, val and test")
    counts = manifest.counts()
    names = list(manifest.class_names)
    total = {c: sum(counts[s][c] for s in counts) for c in names}
    present = [c for c in names if total[c]]
    if len(present) < 2:
        raise ValueError(f"the data has {len(present)} class ({present}); a classifier needs at least two")
    tiny = {c: total[c] for c in names if total[c] < MIN_IMAGES_PER_CLASS}
    if tiny:
        raise ValueError(f"classes with fewer than {MIN_IMAGES_PER_CLASS} images in all: {tiny}; too few to train "
                         "and test on - add images, merge the class with another, or leave its folder out")
    for split in ("train", "val", "test"):
        empty = [c for c in names if counts[split][c] == 0]
        if empty:
            raise ValueError(f"classes {empty} have no {split} image, so the benchmark can neither "
                             f"{'learn' if split == 'train' else 'measure'} them; "
                             + ("re-split with more images per class (--resplit), or leave them out"
                                if split != "train" else "add training images or leave them out"))


def prepare_manifest(cfg: "BenchmarkConfig", out: Path) -> Manifest:
    """Split (or read) the data, apply the regime / slice, and write ``out/manifest.csv``."""
    if cfg.resplit and cfg.drop_leaked:
        raise ValueError("--resplit and --drop-leaked are two different ways out of a leaking split: pick one")
    on_leak = "drop" if cfg.drop_leaked else "refuse"
    split_manifest, source_split = cfg.split_manifest, cfg.source_split
    if not split_manifest and cfg.data_dir == DEMO_DATA and cfg.dataset != "dermamnist":
        split_manifest, source_split = _demo_data()
    source_hash = None
    if split_manifest:
        from gan_augment.data.leaks import resolve_leaks

        manifest, leaks = resolve_leaks(Manifest.read(split_manifest), on_leak=on_leak, cli=True,
                                        where=f"--split-manifest {split_manifest}")
        manifest.dropped_leaked = leaks
        if source_split:
            full = Manifest.read(source_split)
            manifest.check_subset_of(full, where=f"--split-manifest {split_manifest}")
            source_hash = full.hash
    elif source_split:
        raise ValueError("--source-split names the split a --split-manifest was cut from: give --split-manifest too")
    else:
        data_dir = cfg.data_dir or (None if cfg.dataset == "dermamnist" else default_data_dir())
        if data_dir is None and cfg.dataset != "dermamnist":
            raise ValueError(_no_data_message())
        if cfg.dataset == "dermamnist":
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
            manifest, _ = build_manifest(fractions=cfg.fractions, seed=cfg.split_seed, respect_existing=not cfg.resplit,
                                         on_leak=on_leak, cli=True, **source)
    train_idx = manifest.indices("train")
    train_labels = [manifest.labels[i] for i in train_idx]
    chosen = set(train_idx)
    if cfg.train_fraction < 1.0 or cfg.max_train_images is not None:
        sub = stratified_subset(train_labels, fraction=cfg.train_fraction if cfg.train_fraction < 1 else None,
                                max_images=cfg.max_train_images, seed=cfg.split_seed)
        chosen = {train_idx[j] for j in sub}
    if cfg.max_train_per_class is not None:  # the few-shot slice (of the slice above, if any)
        if cfg.max_train_per_class < 1:
            raise ValueError(f"--max-train-per-class must be >= 1, got {cfg.max_train_per_class}")
        kept = sorted(chosen)
        chosen = {kept[j] for j in per_class_cap([manifest.labels[i] for i in kept], cfg.max_train_per_class,
                                                 cfg.split_seed)}
    rows = []
    for split in ("val", "test"):
        idx = manifest.indices(split)
        rows += [idx[j] for j in per_class_cap([manifest.labels[i] for i in idx], cfg.max_eval_per_class,
                                               cfg.split_seed)]
    rows = sorted(set(rows) | chosen)
    reduced = Manifest(paths=[manifest.paths[i] for i in rows], labels=[manifest.labels[i] for i in rows],
                       groups=[manifest.groups[i] for i in rows], splits=[manifest.splits[i] for i in rows],
                       class_names=list(manifest.class_names))
    check_usable(reduced)  # before anything is written
    path = out / "manifest.csv"
    if path.is_file():
        previous = Manifest.read(path)
        if previous.hash != reduced.hash:
            raise ValueError(f"{out} holds a benchmark on another split (manifest {previous.short_hash} vs "
                             f"{reduced.short_hash}); use a new --out")
    reduced.write(path)
    written = Manifest.read(path)
    written.dropped_leaked = list(manifest.dropped_leaked)
    # the unsliced split (equal to written.hash when nothing was cut; a --source-split's when one is named)
    written.source_hash = source_hash or manifest.hash
    return written
