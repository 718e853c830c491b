"""GAN-train score (StudioGAN / Shmelkov et al. 2018): train a classifier on synthetic images only, test it on
real held-out images. High when the generated images carry each class's features; it speaks to the downstream
use more directly than FID (Ravuri & Vinyals 2019 found IS/FID did not predict classification gains)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gan_augment.data import Manifest, ManifestDataset
from gan_augment.generators import load_generator

from .engine import FitConfig, classification_metrics, fit, predict
from .models import CLASSIFIERS, create_classifier
from .transforms import build_transform

__all__ = ["SyntheticDataset", "gan_train_score"]


class SyntheticDataset(Dataset):
    """``per_class`` generated images of each class as (H, W, C) uint8 arrays, seeded."""

    def __init__(self, generator, class_names: list[str], per_class: int, *, seed: int = 0, device: str = "cpu",
                 transform=None):
        from gan_augment.data.transforms import apply_transform

        self._apply = apply_transform
        images, labels = [], []
        for c, name in enumerate(class_names):
            gc = generator.class_names.index(name) if generator.num_classes and generator.class_names else (
                c if generator.num_classes else None)
            x = generator.sample(per_class, gc, seed=seed * 1000 + c, device=device)
            images.append(x.permute(0, 2, 3, 1).numpy())
            labels += [c] * per_class
        self.images = np.concatenate(images)
        if self.images.shape[-1] == 1:
            self.images = np.repeat(self.images, 3, axis=-1)
        self.targets, self.classes, self.transform = labels, list(class_names), transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self._apply(self.transform, self.images[i]), self.targets[i]


def gan_train_score(generator_path: str | os.PathLike, manifest: str | os.PathLike | Manifest, *,
                    per_class: int = 500, split: str = "test", image_size: int = 128, epochs: int = 10,
                    batch_size: int = 64, classifier: str = "tf_efficientnet_lite0", device: str = "cpu",
                    seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Fit a classifier on ``per_class`` synthetic images per class (model selection on the real validation
    split) and report its metrics on the real ``split``."""
    manifest = manifest if isinstance(manifest, Manifest) else Manifest.read(manifest)
    G = load_generator(generator_path, device=device)
    if not G.num_classes:
        raise ValueError("GAN-train needs a class-conditional generator (one model for every class)")
    class_names = list(G.class_names or manifest.class_names[:G.num_classes])
    _, mean, std = CLASSIFIERS[classifier]
    train_tf = build_transform(image_size, augment=True, mean=mean, std=std, seed=seed)
    eval_tf = build_transform(image_size, augment=False, mean=mean, std=std)
    synthetic = SyntheticDataset(G, class_names, per_class, seed=seed, device=device, transform=train_tf)
    # model selection on the real validation split when there is one (never on the split we report)
    val = (ManifestDataset(manifest, "val", classes=class_names, image_size=image_size, output="numpy",
                           transform=eval_tf, verbose=False) if "val" in manifest.split_names and split != "val"
           else None)
    test = ManifestDataset(manifest, split, classes=class_names, image_size=image_size, output="numpy",
                           transform=eval_tf, verbose=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, spec = create_classifier(classifier, num_classes=len(class_names))
        g = torch.Generator().manual_seed(seed)
        model, fr = fit(model, DataLoader(synthetic, batch_size=batch_size, shuffle=True, generator=g, drop_last=True),
                        DataLoader(val, batch_size=batch_size) if val is not None else None, class_names,
                        FitConfig(epochs=epochs, device=device, seed=seed, progress=progress, desc="GAN-train"))
    probs, labels = predict(model, DataLoader(test, batch_size=batch_size), device=device)
    metrics = classification_metrics(probs, labels, class_names)
    return {"trained_on": f"{per_class} synthetic images per class", "tested_on": f"real {split} split",
            "model_selection": "real val split" if val is not None else "last epoch (no val split)",
            "classifier": f"{classifier} ({spec.pretrained})", "epochs": epochs, "best_epoch": fr.best_epoch,
            **{k: metrics[k] for k in ("balanced_accuracy", "macro_f1", "accuracy", "auroc", "per_class_recall")}}
