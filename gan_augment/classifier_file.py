"""Classifier files (safetensors + metadata), shared by the classifier harness and the metrics.

A classifier file records the model family and name, the class names, input size and normalisation, so the
metrics can use a trained classifier as a domain feature space (``features="classifier"``) without importing
the training harness. Supported families: ``timm`` (any timm model) and ``efficientnet_pytorch``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ._io import atomic_path, safetensors_metadata

__all__ = ["save_classifier", "load_classifier", "build_classifier_module", "penultimate_and_logits",
           "classifier_input", "CLASSIFIER_FORMAT"]

CLASSIFIER_FORMAT = "gan-augment-classifier"


def build_classifier_module(family: str, name: str, num_classes: int, in_chans: int = 3) -> nn.Module:
    """An untrained network of the recorded family / name with a ``num_classes`` head (no download)."""
    if family == "timm":
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    if family == "efficientnet_pytorch":
        from efficientnet_pytorch import EfficientNet

        return EfficientNet.from_name(name, num_classes=num_classes, in_channels=in_chans)
    raise ValueError(f"unknown classifier family {family!r}; expected 'timm' or 'efficientnet_pytorch'")


def penultimate_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled penultimate features and logits of a timm or efficientnet_pytorch classifier."""
    if hasattr(model, "forward_head"):  # timm
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        return feats, model.get_classifier()(feats)
    if hasattr(model, "extract_features"):  # efficientnet_pytorch
        feats = model._avg_pooling(model.extract_features(x)).flatten(1)
        return feats, model._fc(model._dropout(feats))
    raise ValueError(f"{type(model).__name__} exposes neither timm's forward_head nor extract_features")


def save_classifier(model: nn.Module, path: str | os.PathLike, *, family: str, name: str, class_names: list[str],
                    image_size: int, mean: list[float], std: list[float], extra: dict[str, Any] | None = None) -> Path:
    """Write weights + metadata atomically."""
    meta = {"format": CLASSIFIER_FORMAT, "family": family, "name": name, "class_names": list(class_names),
            "num_classes": len(class_names), "image_size": image_size, "mean": list(mean), "std": list(std),
            "in_chans": len(mean), **(extra or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"gan_augment": json.dumps(meta)})
    return path


def load_classifier(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a classifier from its file; returns ``(model in eval mode, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"classifier file {path} does not exist")
    meta = safetensors_metadata(path)
    if meta.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(f"{path} is not a gan-augment classifier file")
    model = build_classifier_module(meta["family"], meta["name"], meta["num_classes"], int(meta.get("in_chans", 3)))
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit {meta['family']} {meta['name']!r}: {exc}") from None
    return model.to(device).eval(), meta


def classifier_input(meta: dict, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 images (N, C, H, W) -> the input batch of the classifier whose file metadata is ``meta``: resized
    (bilinear, antialiased) to its ``image_size``, grey expanded to 3 channels where it takes 3, scaled to [0, 1]
    and normalised by its ``mean`` / ``std`` - its evaluation transform, for images already in memory."""
    mean = torch.tensor(meta["mean"], device=device, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], device=device, dtype=torch.float32).view(1, -1, 1, 1)
    size, in_chans = int(meta["image_size"]), len(meta["mean"])

    def prepare(images: torch.Tensor) -> torch.Tensor:
        x = images.to(device).float()
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 and in_chans == 3 else x
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x / 255.0 - mean) / std

    return prepare
