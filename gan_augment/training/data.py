"""Training images for the GAN: the manifest's training split only, optionally subset, cached as uint8.

:class:`IndexStream` is the data order: batch ``b`` is a pure function of ``(seed, b)``, so resuming needs only
the number of batches consumed, whatever the DataLoader prefetched.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import distributed as gdist
from ..data import Manifest, ManifestDataset, build_manifest
from ..data.decode import resolve_channels
from ..data.leaks import resolve_leaks
from ..data.subset import stratified_subset
from ..data.transforms import source_upsampling, uint8_to_gan
from .config import DataConfig

__all__ = ["GANData", "prepare_gan_data", "IndexStream", "BatchMixin"]


@dataclass
class GANData:
    dataset: ManifestDataset
    manifest: Manifest  # the full manifest (its hash goes into the generator file)
    manifest_path: Path
    class_names: list[str]
    subset: dict  # how the training images were chosen, recorded in the generator file

    @property
    def labels(self) -> list[int]:
        return self.dataset.targets


def _load_manifest(cfg: DataConfig, out_dir: Path, verbose: bool) -> tuple[Manifest, Path]:
    if cfg.resplit and cfg.drop_leaked:
        raise ValueError("data.resplit and data.drop_leaked are two different ways out of a leaking split: pick one")
    on_leak = "drop" if cfg.drop_leaked else "refuse"
    if cfg.manifest:
        manifest = Manifest.read(cfg.manifest)
        # a manifest written elsewhere: check its groups and its files' bytes
        checked, leaks = resolve_leaks(manifest, on_leak=on_leak, where=f"manifest {cfg.manifest}", cli=True)
        if not leaks:
            return manifest, Path(cfg.manifest)
        manifest, path = checked, out_dir / "manifest.csv"
        manifest.write(path)
        if verbose:
            print(f"dropped {len(leaks)} leaked held-out image(s) from {cfg.manifest}; wrote {path}", file=sys.stderr)
        return Manifest.read(path), path
    manifest, scan = build_manifest(
        metadata=cfg.metadata, image_dir=cfg.image_dir, image_folder=cfg.image_folder, medmnist=cfg.medmnist,
        id_col=cfg.id_col, label_col=cfg.label_col, group_col=cfg.group_col, fractions=cfg.fractions,
        seed=cfg.split_seed, respect_existing=not cfg.resplit, on_leak=on_leak, cli=True)
    path = out_dir / "manifest.csv"
    manifest.write(path)
    if verbose:
        print(scan.report(), file=sys.stderr)
        print(f"wrote split manifest {path} (hash {manifest.short_hash})", file=sys.stderr)
    return manifest, path


def prepare_gan_data(cfg: DataConfig, resolution: int, out_dir: Path, *, verbose: bool = True) -> GANData:
    """Load / build the manifest, keep the training split (and subset), and build a dataset at ``resolution``."""
    manifest, path = _load_manifest(cfg, out_dir, verbose)
    if cfg.split not in manifest.split_names:
        raise ValueError(f"data.split {cfg.split!r} not in manifest {path}; its splits are {manifest.split_names}")
    part = manifest.select(cfg.split)
    if cfg.classes is not None:
        unknown = [c for c in cfg.classes if c not in manifest.class_names]
        if unknown:
            raise ValueError(f"data.classes {unknown} not in manifest {path}; classes are {manifest.class_names}")
        keep = [i for i, lab in enumerate(part.labels) if lab in cfg.classes]
        part = _rows(part, keep)
    subset = {"split": cfg.split, "classes": cfg.classes, "train_fraction": cfg.train_fraction,
              "max_images": cfg.max_images, "subset_seed": cfg.subset_seed}
    if cfg.train_fraction < 1.0 or cfg.max_images is not None:
        keep = stratified_subset(part.labels, fraction=cfg.train_fraction if cfg.train_fraction < 1 else None,
                                 max_images=cfg.max_images, seed=cfg.subset_seed)
        part = _rows(part, keep)
    channels = resolve_channels(cfg.channels, part.paths, progress=verbose)
    if verbose and cfg.channels == "auto":
        print(f"data.channels auto: {channels} ({'every training image is grey' if channels == 1 else 'colour'})",
              file=sys.stderr)
    up = source_upsampling(part.paths, resolution, cfg.resize)
    if up["sampled"] and up["upsampled"] > up["sampled"] / 2:
        warnings.warn(f"{up['upsampled']} of {up['sampled']} sampled training images of {path} are smaller than "
                      f"{resolution} px (median shorter side {up['median_short_side']} px, enlarged "
                      f"{up['median_factor']:.2f}x by data.resize={cfg.resize}): the generator learns interpolated "
                      "images, and a real floor measured at this size measures them too; for detail at "
                      f"{resolution} px train on larger source images", stacklevel=2)
    dataset = ManifestDataset(part, cfg.split, channels=channels, image_size=resolution, resize=cfg.resize,
                              output="tensor",
                              classes=cfg.classes, cache=cfg.cache, verbose=verbose)
    subset["n_images"] = len(dataset)
    subset["per_class"] = dataset.class_counts()
    return GANData(dataset=dataset, manifest=manifest, manifest_path=path, class_names=list(dataset.classes),
                   subset=subset)


def _rows(m: Manifest, keep: list[int]) -> Manifest:
    return Manifest(paths=[m.paths[i] for i in keep], labels=[m.labels[i] for i in keep],
                    groups=[m.groups[i] for i in keep], splits=[m.splits[i] for i in keep],
                    class_names=list(m.class_names), location=m.location)


class IndexStream:
    """Infinite, deterministic stream of full index batches.

    Epoch ``e`` is an order of all ``N`` images drawn from ``(seed, e)``: a permutation when
    ``class_balance == 1`` (natural frequencies), otherwise ``N`` draws with replacement where class ``c`` is
    picked with probability proportional to ``count_c ** class_balance`` (0 = every class equally often).
    Batches run across epoch boundaries, so every batch is full (BatchNorm needs it).
    """

    def __init__(self, labels: list[int], batch_size: int, *, class_balance: float = 1.0, seed: int = 0):
        if not labels:
            raise ValueError("no training images")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n = len(labels)
        self.batch_size = batch_size
        self.class_balance = class_balance
        self.seed = seed
        counts = Counter(labels)
        w = np.array([counts[y] ** (class_balance - 1.0) for y in labels], dtype=np.float64)
        self._weights = torch.from_numpy(w / w.sum())
        self._epoch_cache: tuple[int, torch.Tensor] | None = None

    def class_probabilities(self, labels: list[int]) -> dict[int, float]:
        probs: dict[int, float] = {}
        for y, w in zip(labels, self._weights.tolist()):
            probs[y] = probs.get(y, 0.0) + w
        return probs

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if self._epoch_cache is not None and self._epoch_cache[0] == epoch:
            return self._epoch_cache[1]
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch)
        if self.class_balance == 1.0:
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.multinomial(self._weights, self.n, replacement=True, generator=g)
        self._epoch_cache = (epoch, order)
        return order

    def batch(self, b: int) -> torch.Tensor:
        """Indices of batch number ``b`` (0-based)."""
        start = b * self.batch_size
        parts, need = [], self.batch_size
        while need:
            epoch, pos = divmod(start, self.n)
            take = min(need, self.n - pos)
            parts.append(self._epoch_order(epoch)[pos:pos + take])
            start += take
            need -= take
        return torch.cat(parts)

    def batches(self, start: int = 0) -> Iterator[torch.Tensor]:
        b = start
        while True:
            yield self.batch(b)
            b += 1


def cache_on_device(images: torch.Tensor, device: torch.device, *, enabled: bool = True,
                    verbose: bool = False) -> torch.Tensor:
    """Move the uint8 image cache to the GPU when it fits in a quarter of the free memory (no per-step copies);
    anything else (CPU, disabled, too big) keeps it in host memory."""
    if not (enabled and device.type == "cuda"):
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() > free // 4:
        if verbose:
            print(f"image cache ({images.numel() / 2**30:.1f} GiB) kept in host memory: it would take more "
                  f"than a quarter of the {free / 2**30:.1f} GiB free on {device}", file=sys.stderr)
        return images
    return images.to(device)


class BatchMixin:
    """The trainer's batches and latents; expects its attributes (cfg, data, stream, device, _shard, ...)."""

    def _batch_iter(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images in [-1, 1], labels) on the device, starting after the consumed batches."""
        nb = self.cfg.data.num_workers
        lo, hi = self._shard  # this process's rows of each global batch
        shards = (idx[lo:hi] for idx in self.stream.batches(self.batches_consumed))
        if self._images is not None:
            for idx in shards:
                if self._images.is_cuda:  # GPU-resident cache: index on the device
                    idx = idx.to(self.device, non_blocking=True)
                    yield self._to_model_input(self._images[idx]), self._label_tensor[idx]
                    continue
                x = self._images[idx]
                if self.is_cuda:
                    x = x.pin_memory().to(self.device, non_blocking=True)
                yield self._to_model_input(x), self._label_tensor[idx].to(self.device, non_blocking=True)
        else:
            loader = DataLoader(self.data.dataset, batch_sampler=shards,
                                num_workers=nb, pin_memory=self.is_cuda, persistent_workers=nb > 0)
            for x, y in loader:
                yield self._to_model_input(x.to(self.device, non_blocking=True)), y.to(self.device)

    def _to_model_input(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return uint8_to_gan(x_uint8).contiguous(memory_format=self.memory_format)

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.num_classes else None

    def _latents(self) -> torch.Tensor:
        """This process's rows of a global batch of latents (every rank draws the same global batch)."""
        lo, hi = self._shard
        return gdist.draw_for_shard(torch.randn, hi - lo, (self.G.z_dim,), generator=self.z_gen, device=self.device,
                                    shard=(self.dist.rank, self.dist.world_size))
