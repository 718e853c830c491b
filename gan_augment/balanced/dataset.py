"""``GANBalancedDataset``: real images plus generated images of the classes a strategy asks to fill."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..data.transforms import apply_transform
from ..models import GeneratorBase
from .items import ItemFormat
from .strategy import Strategy, class_key, resolve_class_names, resolve_labels, sampling_targets, synthetic_counts

__all__ = ["GANBalancedDataset", "GIVE_UP_ROUNDS"]

# filter rounds after which a class that has kept no generated image at all stops drawing (it gets none)
GIVE_UP_ROUNDS = 5


def _load(generator: Any, device: torch.device) -> GeneratorBase:
    if isinstance(generator, (str, os.PathLike)):
        from ..generators import load_generator
        from ..pretrained import resolve_spec

        return load_generator(resolve_spec(str(generator)), device=device)
    if isinstance(generator, GeneratorBase):
        return generator.to(device).eval()
    raise ValueError("a generator must be a file path, 'pretrained:NAME' or a gan-augment generator module (a loaded "
                     f"generator), got {type(generator)}")


class GANBalancedDataset(Dataset):
    """Real images plus GAN images of the rare classes, one map-style dataset of ``(image, label)``.

    Items ``0 .. len(real_ds) - 1`` are the real items in order; the rest are synthetic, class by class.
    Synthetic items have the type, size and mode of the real ones (PIL / uint8 ndarray / tensor), so one
    ``transform`` (torchvision or albumentations) serves both; ``synthetic_transform`` overrides it for them.

    Args:
        real_ds: any map-style dataset of ``(image, label)`` returning raw images (no normalisation).
        generators: one class-conditional generator (a file, ``"pretrained:NAME"`` for a generator shipped with
            the package, or a loaded generator), a dict ``{class: generator}`` of per-class generators, or a list
            of generator files. Their class names must be dataset classes.
        strategy: target counts, imbalanced-learn style (see module docstring).
        max_synthetic_fraction: cap on synthetic / (real + synthetic) per class. The default, 0.5 (at most one
            synthetic image per real one), is the least harmful dose measured: the benchmark's ``gan_light`` arm,
            drawn class-balanced with :class:`MinorityOversampler`, on HAM10000 at 64 px (3 seeds,
            ``benchmarks/results/ham10000_cpu64_full``) scored -1.4 pp [-5.0, +2.0] balanced accuracy against
            oversampling real images, where filling every class to the majority with up to 90 % synthetic images
            (``max_synthetic_fraction=0.9``, the ``gan`` arm) scored -13.9 pp [-18.9, -9.5]. No dose measured so far
            beats oversampling; ``docs/benchmark.md`` has the table. ``None`` = no cap.
        labels: the real labels, if the dataset cannot tell them (see :func:`resolve_labels`).
        classes: class names, if the dataset has no ``classes`` attribute.
        transform / synthetic_transform: applied to every item / to synthetic items only.
        mode: ``"bank"`` generates ``bank_size`` images up front (uint8, memory ~ bank_size x H x W x C: 10,000
            RGB images at 256x256 take ~2 GB) and reuses them cyclically; ``"on_the_fly"`` samples lazily in
            batches with a seeded stream per worker (and per DDP rank).
        bank_size: images held in the bank across all classes (split in proportion to need).
        refresh_every_epoch: regenerate the bank in :meth:`set_epoch` (call it each epoch, like a
            DistributedSampler; use ``persistent_workers=False`` so workers see the new bank).
        device: where generators run (default CUDA if available). DataLoader workers sample on the CPU.
        seed: seeds every synthetic image: same seed, same images.
        return_synthetic_flag: items become ``(image, label, is_synthetic)``.
        batch_size: generator batch size.
        accept: optional filter ``accept(images, class_index) -> bool tensor`` on uint8 (N, C, H, W) generator
            output, e.g. "a real-trained classifier recognises the class"; rejected images are replaced by new
            draws (at most ``max_filter_rounds`` rounds per fill, and no more once ``GIVE_UP_ROUNDS`` rounds have
            kept nothing: a class whose acceptance is that low would not fill anyway; acceptance rates in
            ``filter_stats``).

    Give ``real_ds`` images with the generator's geometry (square crops, e.g. ``ManifestDataset(image_size=...)``):
    synthetic images are resized to the real items' size, so non-square real items distort them (a warning
    says so).

    Example:
        >>> import torch
        >>> from gan_augment.models import create_generator
        >>> real = torch.utils.data.TensorDataset(torch.zeros(10, 3, 32, 32, dtype=torch.uint8),
        ...                                       torch.tensor([0] * 8 + [1] * 2))
        >>> G = create_generator("dcgan", resolution=32, num_classes=2, base_channels=4)
        >>> ds = GANBalancedDataset(real, G, labels=[0] * 8 + [1] * 2, max_synthetic_fraction=None, device="cpu")
        >>> len(ds), ds.class_counts()["1"]
        (16, {'real': 2, 'synthetic': 6, 'target': 8, 'bank': 6})
    """

    def __init__(
        self,
        real_ds: Dataset,
        generators: Any,
        *,
        strategy: Strategy = "not majority",
        max_synthetic_fraction: float | None = 0.5,
        labels: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
        transform: Callable | None = None,
        synthetic_transform: Callable | None = None,
        mode: str = "bank",
        bank_size: int = 10_000,
        refresh_every_epoch: bool = False,
        device: str | torch.device | None = None,
        seed: int = 0,
        return_synthetic_flag: bool = False,
        batch_size: int = 64,
        accept: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
        max_filter_rounds: int = 20,
    ) -> None:
        if mode not in ("bank", "on_the_fly"):
            raise ValueError(f"mode must be 'bank' or 'on_the_fly', got {mode!r}")
        if bank_size < 1:
            raise ValueError(f"bank_size must be >= 1, got {bank_size}")
        self.real_ds = real_ds
        self.labels = resolve_labels(real_ds, labels)
        if len(self.labels) == 0:
            raise ValueError("real_ds is empty")
        if self.labels.min() < 0:
            raise ValueError("labels must be non-negative class indices")
        self.classes = resolve_class_names(real_ds, classes, int(self.labels.max()) + 1)
        self.transform, self.synthetic_transform = transform, synthetic_transform
        self.mode, self.bank_size, self.refresh_every_epoch = mode, bank_size, refresh_every_epoch
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.seed, self.return_synthetic_flag, self.batch_size = seed, return_synthetic_flag, batch_size
        self.accept, self.max_filter_rounds = accept, max_filter_rounds
        self.filter_stats: dict[str, dict[str, int]] = {}
        self.epoch = 0
        self._refreshes = 0

        self.format = ItemFormat(self._real_image(0))
        self.sources = self._resolve_generators(generators)
        w, h = self.format.size
        if w != h and any(g.resolution for g, _ in self.sources.values()):
            warnings.warn(f"real images are {w}x{h} but generators make squares: synthetic images are resized to "
                          f"{w}x{h} and their aspect ratio changes; give real_ds square crops to avoid it", stacklevel=2)
        # a generator of another resolution than the real items: its images are resized (bicubic) to theirs. Upsampled,
        # they lack the fine detail real images of that size have - a shortcut a classifier can learn - so say so.
        other = sorted({g.resolution for g, _ in self.sources.values() if g.resolution and g.resolution != max(w, h)})
        if other:
            warnings.warn(f"the generator makes {'/'.join(map(str, other))} px images and the real images are {w}x{h}: "
                          f"synthetic images are resized to {w}x{h}"
                          + (" (upsampled: blurrier than real images of that size, which a classifier can learn to "
                             "tell apart; prefer a generator at your training resolution, or train at its)"
                             if max(other) < max(w, h) else ""), stacklevel=2)
        real_counts = Counter(int(y) for y in self.labels)
        self.targets_per_class = sampling_targets(self.labels, strategy, self.classes)
        wanted = synthetic_counts(real_counts, self.targets_per_class, max_synthetic_fraction)
        missing = [self.classes[c] for c, n in wanted.items() if n > 0 and c not in self.sources]
        if missing:
            warnings.warn(f"classes {missing} have no generator and are not augmented", stacklevel=2)
        self.synthetic_per_class = {c: (n if c in self.sources else 0) for c, n in sorted(wanted.items())}
        self.real_per_class = dict(sorted(real_counts.items()))
        self._build_index()
        self.bank_per_class = self._allocate_bank()
        self._bank: dict[int, np.ndarray] = {}
        self._streams: dict[tuple, list] = {}
        self._cpu_copies: dict[int, GeneratorBase] = {}
        if mode == "bank":
            self.refresh()

    # ------------------------------------------------------------------------------------------ setup
    def _real_image(self, index: int) -> Any:
        item = self.real_ds[index]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(f"real_ds items must be (image, label) pairs, got {type(item).__name__}")
        return item[0]

    def _resolve_generators(self, generators: Any) -> dict[int, tuple[GeneratorBase, int | None]]:
        """Map dataset class index -> (generator, class index inside that generator or None)."""
        if isinstance(generators, Mapping):
            items = [(class_key(k, self.classes), _load(g, self.device)) for k, g in generators.items()]
            out: dict[int, tuple[GeneratorBase, int | None]] = {}
            for c, g in items:
                if g.num_classes:
                    names = g.class_names or []
                    if self.classes[c] not in names:
                        raise ValueError(f"generator for class {self.classes[c]!r} is conditional on {names}, "
                                         "which does not include it")
                    out[c] = (g, names.index(self.classes[c]))
                else:
                    out[c] = (g, None)
            return out
        gens = [_load(g, self.device) for g in (generators if isinstance(generators, (list, tuple)) else [generators])]
        out = {}
        for g in gens:
            names = g.class_names
            if g.num_classes:
                if names is None:
                    if g.num_classes != len(self.classes):
                        raise ValueError(f"generator has {g.num_classes} unnamed classes, dataset has "
                                         f"{len(self.classes)} classes {self.classes}")
                    names = list(self.classes)
                unknown = [n for n in names if n not in self.classes]
                if unknown:
                    raise ValueError(f"generator classes {names} do not match the dataset classes {self.classes} "
                                     f"(not in the dataset: {unknown})")
                pairs = [(self.classes.index(n), (g, i)) for i, n in enumerate(names)]
            else:
                if not names or len(names) != 1 or names[0] not in self.classes:
                    raise ValueError(f"an unconditional generator must name its one class (got {names}); pass a "
                                     f"dict {{class: generator}} instead. Dataset classes: {self.classes}")
                pairs = [(self.classes.index(names[0]), (g, None))]
            for c, src in pairs:
                if c in out:
                    raise ValueError(f"class {self.classes[c]!r} is covered by two generators")
                out[c] = src
        return out

    def _build_index(self) -> None:
        """Synthetic item j -> (class, k-th synthetic image of that class)."""
        self._syn_classes = np.concatenate(
            [np.full(n, c, dtype=np.int64) for c, n in self.synthetic_per_class.items()] or [np.zeros(0, np.int64)])
        self._syn_rank = np.concatenate(
            [np.arange(n, dtype=np.int64) for n in self.synthetic_per_class.values()] or [np.zeros(0, np.int64)])

    def _allocate_bank(self) -> dict[int, int]:
        need = {c: n for c, n in self.synthetic_per_class.items() if n > 0}
        total = sum(need.values())
        if total <= self.bank_size:
            return dict(need)
        if self.bank_size < len(need):
            raise ValueError(f"bank_size {self.bank_size} is smaller than the {len(need)} classes that need images")
        alloc = {c: max(1, int(self.bank_size * n / total)) for c, n in need.items()}
        spare = self.bank_size - sum(alloc.values())
        for c in sorted(need, key=lambda c: need[c] / alloc[c], reverse=True)[:max(spare, 0)]:
            alloc[c] += 1
        return alloc

    # ------------------------------------------------------------------------------------------ generation
    def _sample(self, c: int, n: int, seed: int, device: torch.device, gen: GeneratorBase | None = None) -> np.ndarray:
        g, gc = self.sources[c]
        g = gen or g
        if self.accept is None:
            return self.format.to_storage(g.sample(n, gc, seed=seed, batch_size=self.batch_size, device=device))
        kept, total, drawn, rounds = [], 0, 0, 0
        while total < n and rounds < self.max_filter_rounds and (total or rounds < GIVE_UP_ROUNDS):
            images = g.sample(max(n - total, self.batch_size), gc, seed=self._stream_seed(seed, rounds),
                              batch_size=self.batch_size, device=device)
            mask = torch.as_tensor(self.accept(images, c), dtype=torch.bool).cpu()
            kept.append(images[mask][: n - total])
            total += int(kept[-1].shape[0])
            drawn += len(images)
            rounds += 1
        stats = self.filter_stats.setdefault(self.classes[c], {"accepted": 0, "drawn": 0})
        stats["accepted"] += total
        stats["drawn"] += drawn
        if total == 0:
            if self.mode == "bank":  # the class simply gets no synthetic images (see refresh)
                return self.format.to_storage(torch.zeros(0, g.channels, g.resolution, g.resolution, dtype=torch.uint8))
            raise ValueError(f"class {self.classes[c]!r}: none of {drawn} generated images passed the filter")
        if total < n:
            warnings.warn(f"class {self.classes[c]!r}: only {total} of {n} wanted images passed the filter "
                          f"({drawn} drawn); they are reused cyclically", stacklevel=3)
        return self.format.to_storage(torch.cat(kept))

    def _stream_seed(self, *parts: int) -> int:
        # distinct, reproducible seeds per (seed, refresh / epoch, worker, rank, class, batch)
        h = self.seed
        for p in parts:
            h = (h * 1_000_003 + int(p) + 1) % (2**63 - 1)
        return h

    def refresh(self) -> None:
        """(Re)generate the bank: same seed and refresh count -> the same images."""
        if self.mode != "bank":
            return
        self._bank = {c: self._sample(c, n, self._stream_seed(self._refreshes, c), self.device)
                      for c, n in self.bank_per_class.items()}
        self._refreshes += 1
        empty = [c for c, b in self._bank.items() if len(b) == 0]
        if empty:  # only possible with a filter that rejected every draw
            warnings.warn(f"classes {[self.classes[c] for c in empty]}: no generated image passed the filter; they "
                          "get no synthetic images", stacklevel=2)
            for c in empty:
                self.synthetic_per_class[c] = 0
                del self._bank[c]
            self._build_index()

    def set_epoch(self, epoch: int) -> None:
        """Tell the dataset the epoch: refreshes the bank (``refresh_every_epoch``) and reseeds on-the-fly streams."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._streams.clear()
            if self.refresh_every_epoch:
                self.refresh()

    @property
    def bank_nbytes(self) -> int:
        return sum(b.nbytes for b in self._bank.values())

    def _on_the_fly(self, c: int) -> np.ndarray:
        info = get_worker_info()
        worker = info.id if info is not None else -1
        rank = torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
        key = (worker, c)
        buffer = self._streams.setdefault(key, [0, []])  # [batches drawn, queued images]
        if not buffer[1]:
            if info is not None:  # in a worker: sample on a CPU copy (CUDA does not survive fork)
                g_cpu = self._cpu_copies.get(c)
                if g_cpu is None:
                    import copy

                    g_cpu = copy.deepcopy(self.sources[c][0]).cpu()
                    self._cpu_copies[c] = g_cpu
                device, gen = torch.device("cpu"), g_cpu
            else:
                device, gen = self.device, None
            seed = self._stream_seed(self.epoch, rank, worker + 1, c, buffer[0])
            buffer[1] = list(self._sample(c, self.batch_size, seed, device, gen))
            buffer[0] += 1
        return buffer[1].pop(0)

    # ------------------------------------------------------------------------------------------ Dataset
    def __len__(self) -> int:
        return len(self.labels) + len(self._syn_classes)

    def is_synthetic(self, index: int) -> bool:
        return index >= len(self.labels)

    def raw(self, index: int) -> tuple[Any, int]:
        """Item ``index`` before any transform: (image in the real items' type, label) - e.g. for a teacher's soft
        label of a synthetic image (:class:`~gan_augment.balanced.soft.SoftTargets`)."""
        n_real = len(self.labels)
        if index < n_real:
            return self.real_ds[index][0], int(self.labels[index])
        j = index - n_real
        c, k = int(self._syn_classes[j]), int(self._syn_rank[j])
        if self.mode != "bank":
            raise ValueError("raw() of a synthetic item needs mode='bank' (on-the-fly items are drawn afresh)")
        return self.format.from_uint8(self._bank[c][k % len(self._bank[c])]), c

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        n_real = len(self.labels)
        if index < n_real:
            item = self.real_ds[index]
            image, label, synthetic = item[0], int(self.labels[index]), False
            image = apply_transform(self.transform, image)
        else:
            j = index - n_real
            c, k = int(self._syn_classes[j]), int(self._syn_rank[j])
            hwc = self._bank[c][k % len(self._bank[c])] if self.mode == "bank" else self._on_the_fly(c)
            image, label, synthetic = self.format.from_uint8(hwc), c, True
            t = self.synthetic_transform if self.synthetic_transform is not None else self.transform
            image = apply_transform(t, image)
        return (image, label, synthetic) if self.return_synthetic_flag else (image, label)

    # ------------------------------------------------------------------------------------------ reporting
    def get_labels(self) -> list[int]:
        """Label of every item (real then synthetic), e.g. for a sampler on top."""
        return self.labels.tolist() + self._syn_classes.tolist()

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Per class: real images, synthetic items, the strategy's target, and bank images held."""
        return {name: {"real": self.real_per_class.get(c, 0), "synthetic": self.synthetic_per_class.get(c, 0),
                       "target": self.targets_per_class.get(c, self.real_per_class.get(c, 0)),
                       "bank": len(self._bank.get(c, ())) if self.mode == "bank" else 0}
                for c, name in enumerate(self.classes) if c in self.real_per_class}

    def summary(self) -> str:
        """A Markdown table of :meth:`class_counts` with totals and the bank's memory."""
        rows = ["| class | real | synthetic | target | bank | synthetic share |", "|---|---:|---:|---:|---:|---:|"]
        totals = Counter()
        for name, c in self.class_counts().items():
            share = c["synthetic"] / max(c["real"] + c["synthetic"], 1)
            rows.append(f"| {name} | {c['real']} | {c['synthetic']} | {c['target']} | {c['bank']} | {share:.0%} |")
            totals.update(c)
        rows.append(f"| **total** | {totals['real']} | {totals['synthetic']} | {totals['target']} | "
                    f"{totals['bank']} | {totals['synthetic'] / max(totals['real'] + totals['synthetic'], 1):.0%} |")
        if self.mode == "bank":
            rows.append(f"\nbank: {totals['bank']} images, {self.bank_nbytes / 1e6:.1f} MB uint8")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return (f"GANBalancedDataset(real={len(self.labels)}, synthetic={len(self._syn_classes)}, mode={self.mode!r}, "
                f"classes={len(self.classes)})")


