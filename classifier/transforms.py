"""The benchmark's albumentations pipelines: one geometry for every arm, augmentation on or off.

Train (``augment=True``): shorter side to ``size``, centre crop, HorizontalFlip, VerticalFlip, RandomRotate90,
Affine (rotate +-30 deg, scale 0.8-1.2, translate +-10 %, reflected borders), ColorJitter 0.2/0.2/0.2, then
normalise and convert to a tensor. ``augment=False`` (the ``plain`` arm and evaluation) keeps only the resize,
crop and normalisation. Inputs are uint8 (H, W, C) arrays, as ``ManifestDataset(output="numpy")`` returns.
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["build_transform", "albumentations"]


def albumentations():
    """Import albumentations without its network version check (offline machines, CI)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return A


def build_transform(size: int, *, augment: bool, mean: Sequence[float] = (0.5, 0.5, 0.5),
                    std: Sequence[float] = (0.5, 0.5, 0.5), seed: int | None = None):
    """An ``A.Compose`` producing a normalised float (C, H, W) tensor of ``size`` x ``size``."""
    import cv2
    from albumentations.pytorch import ToTensorV2

    A = albumentations()
    ops = [A.SmallestMaxSize(max_size=size, interpolation=cv2.INTER_AREA), A.CenterCrop(size, size)]
    if augment:
        ops += [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(rotate=(-30, 30), scale=(0.8, 1.2), translate_percent=(-0.1, 0.1),
                     border_mode=cv2.BORDER_REFLECT_101, p=0.5),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=0.5),
        ]
    ops += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(ops, seed=seed)
