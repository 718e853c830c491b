"""How each arm builds its training set and loss from the same real images (and, for GAN arms, a generator)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from classifier import CLASSIFIERS, build_transform, normalisation, predict
from gan_augment import GANBalancedDataset, MinorityOversampler
from gan_augment import distributed as gdist
from gan_augment.classifier_file import classifier_input, load_classifier
from gan_augment.data import Manifest, ManifestDataset
from gan_augment.data.decode import resolve_channels
from gan_augment.data.transforms import apply_transform
from gan_augment.pretrained import file_sha256

from .protocol import BenchmarkConfig, arm_spec

__all__ = ["WithTransform", "ArmData", "relative_thresholds"]


def relative_thresholds(probs: np.ndarray, labels: Sequence[int], quantile: float,
                        num_classes: int) -> dict[int, float]:
    """Per-class acceptance thresholds relative to the judge: the ``quantile`` of its probability for class c on
    real (validation) images of class c. A weak judge that gives real df images 0.2 then accepts synthetic df
    images it scores like the lower part of real ones, where an absolute 0.5 would accept none. A class without
    real images keeps threshold 1.0 (nothing accepted: no evidence what "like real" means for it)."""
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"filter quantile must be in [0, 1], got {quantile}")
    labels = np.asarray(labels)
    return {c: float(np.quantile(probs[labels == c, c], quantile)) if (labels == c).any() else 1.0
            for c in range(num_classes)}


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


class ArmData:
    """The benchmark's images (train / val / test at the classifier size) and each arm's training loader."""

    def __init__(self, cfg: BenchmarkConfig, manifest: Manifest, filter_classifier):
        self.cfg, self.manifest = cfg, manifest
        self.filter_classifier = filter_classifier  # the real-trained classifier file gan_filtered uses
        size = cfg.image_size
        verbose = cfg.progress
        if cfg.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {cfg.classifier!r}; choose one of {sorted(CLASSIFIERS)}")
        # 1 or 3 channels ("auto": 1 when every training image is grey), and one resize policy for every split:
        # real and synthetic images share one geometry and one channel count
        self.channels = resolve_channels(cfg.channels, [manifest.paths[i] for i in manifest.indices("train")],
                                         progress=verbose)
        data = dict(image_size=size, channels=self.channels, resize=cfg.resize, output="numpy", cache=True,
                    verbose=verbose)
        self.train_real = ManifestDataset(manifest, "train", **data)
        self.class_names = list(self.train_real.classes)
        self.mean, self.std = normalisation(cfg.classifier, self.channels)
        eval_tf = build_transform(size, augment=False, mean=self.mean, std=self.std)
        self.val = ManifestDataset(manifest, "val", transform=eval_tf, **data)
        self.test = ManifestDataset(manifest, "test", transform=eval_tf, **data)
        self.test_labels = np.asarray(self.test.targets)
        self.generator: str | None = None
        self.dist, self.device = gdist.init_from_env(cfg.device)

    def loader(self, ds, *, sampler=None, shuffle=False, seed=0, drop_last=False) -> DataLoader:
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
        """accept(images, c): the aug seed-0 classifier gives class c probability >= the threshold - absolute
        (``filter_threshold``) or, with ``filter_quantile``, relative to its scores on real validation images
        of class c (:func:`relative_thresholds`)."""
        model, meta = load_classifier(self.filter_classifier, device=self.device)
        prepare = classifier_input(meta, self.device)
        thresholds = self.filter_thresholds(model)

        @torch.no_grad()
        def accept(images: torch.Tensor, c: int) -> torch.Tensor:
            probs = torch.softmax(model(prepare(images)).float(), dim=1)
            return (probs[:, c] >= thresholds[c]).cpu()

        return accept

    def filter_thresholds(self, model) -> dict[int, float]:
        """Each class's acceptance threshold for ``gan_filtered`` (kept in ``self.thresholds`` for the record)."""
        k = len(self.class_names)
        if self.cfg.filter_quantile is None:
            self.thresholds = {c: float(self.cfg.filter_threshold) for c in range(k)}
        else:
            from classifier import predict

            probs, labels = predict(model, self.loader(self.val), device=self.device)
            self.thresholds = relative_thresholds(probs, labels, self.cfg.filter_quantile, k)
        return self.thresholds

    def train_set(self, arm: str, seed: int):
        cfg = self.cfg
        tf = build_transform(cfg.image_size, augment=arm != "plain", mean=self.mean, std=self.std, seed=seed)
        n_real = len(self.train_real)
        info: dict[str, Any] = {"images_per_epoch": n_real}
        if arm in ("plain", "aug", "aug_weighted"):
            ds = WithTransform(self.train_real, tf)
            weights = self._class_weights(self.train_real.targets) if arm == "aug_weighted" else None
            return self.loader(ds, shuffle=True, seed=seed, drop_last=True), weights, info
        if arm == "aug_oversample":
            sampler = MinorityOversampler(self.train_real.targets, cfg.strategy, num_samples=n_real, seed=seed,
                                          classes=self.class_names)
            info["targets"] = {self.class_names[c]: t for c, t in sampler.targets.items()}
            return self.loader(WithTransform(self.train_real, tf), sampler=sampler, drop_last=True), None, info
        # GAN arms
        spec = arm_spec(arm)
        cap = cfg.light_synthetic_fraction if spec.light else cfg.max_synthetic_fraction
        strategy, bank_size = cfg.strategy, cfg.bank_size
        if spec.strategy is not None:  # a study arm's own target counts (benchmarks/studies/arms.py)
            strategy, bank_size, more = spec.strategy(self, cap, strategy, bank_size)
            info.update(more)
        balanced = GANBalancedDataset(self.train_real, self.generator, strategy=strategy,
                                      max_synthetic_fraction=cap, transform=tf,
                                      bank_size=bank_size, device=self.device, seed=seed,
                                      accept=self._filter() if spec.filtered else None)
        info["synthetic"], info["synthetic_cap"] = balanced.class_counts(), cap
        if balanced.filter_stats:
            info["filter_acceptance"] = {c: s["accepted"] / max(s["drawn"], 1) for c, s in balanced.filter_stats.items()}
            info["filter_thresholds"] = {self.class_names[c]: t for c, t in self.thresholds.items()}
        if spec.uniform:  # uniform draws (gan_weighted: the loss weights make up for
            # what the cap left unbalanced)
            sampler = RandomSampler(balanced, replacement=False, num_samples=n_real,
                                    generator=torch.Generator().manual_seed(seed))
        else:  # every class drawn as often as the majority, as in aug_oversample
            sampler = MinorityOversampler(balanced.get_labels(), cfg.strategy, num_samples=n_real, seed=seed,
                                          classes=self.class_names)
            info["targets"] = {self.class_names[c]: t for c, t in sampler.targets.items()}
        weights = self._class_weights(balanced.get_labels()) if arm == "gan_weighted" else None
        return self.loader(balanced, sampler=sampler, drop_last=True), weights, info

    def synthetic_test(self, model, seed: int) -> dict | None:
        """What a trained classifier calls fresh generated images of every class (``synthetic_test_per_class``
        each, from another seed than any training bank), beside what it calls the real test images.

        A GAN arm's classifier learns from synthetic images of some classes only (``gan_light``: all but the
        largest); a baseline's saw none (the control: how a classifier that never learned "looks generated"
        calls them). If "looks generated" is easy to see, it can stand for "one of those classes": then the synthetic
        images of the largest class are called something else far more often than its real ones are. Per class:
        the share of its synthetic images given that class (``recall``) and the share given each class (a row of
        a confusion matrix)."""
        n = self.cfg.synthetic_test_per_class
        if not n or self.generator is None:
            return None
        cfg, names = self.cfg, self.class_names
        counts = np.bincount(self.train_real.targets, minlength=len(names))
        eval_tf = build_transform(cfg.image_size, augment=False, mean=self.mean, std=self.std)
        fresh = GANBalancedDataset(self.train_real, self.generator, strategy={c: int(k) + n for c, k in
                                   enumerate(counts) if k}, max_synthetic_fraction=None, transform=eval_tf,
                                   bank_size=n * len(names), device=self.device, seed=1_000_000 + seed)
        synthetic = torch.utils.data.Subset(fresh, range(len(self.train_real), len(fresh)))
        probs, labels = predict(model, self.loader(synthetic), device=self.device)
        pred = probs.argmax(axis=1)
        rows = {names[c]: {names[k]: float(np.mean(pred[labels == c] == k)) for k in range(len(names))}
                for c in sorted(set(labels.tolist()))}
        return {"per_class": n, "seed": 1_000_000 + seed, "generator_sha256": file_sha256(self.generator),
                "recall": {c: row[c] for c, row in rows.items()}, "predicted": rows}
