"""The networks a config asks for: registry arguments per architecture, and the class-conditioning schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.fastgan import UPSAMPLE_MODES
from ..models.layers import ConditionScaleMixin
from .config import LossConfig, ModelConfig

__all__ = ["network_kwargs", "check_transition", "condition_scale", "attach_class_head", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return device


def network_kwargs(mc: ModelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of ``create_generator`` and ``create_discriminator`` beyond resolution/classes/channels."""
    g_kwargs: dict[str, Any] = dict(z_dim=mc.z_dim, base_channels=mc.g_channels)
    d_kwargs: dict[str, Any] = dict(base_channels=mc.d_channels)
    if mc.generator != "fastgan":  # fastgan's widths per resolution are fixed multiples of base_channels
        g_kwargs["max_mult"] = mc.max_mult
    if mc.generator == "resnet":
        g_kwargs["spectral_norm"] = mc.g_spectral_norm
    if mc.generator == "fastgan":  # only when on: generator files written before the options keep their arch_args
        if mc.g_upsample not in UPSAMPLE_MODES:
            raise ValueError(f"model.g_upsample must be one of {list(UPSAMPLE_MODES)}, got {mc.g_upsample!r}")
        if mc.g_noise:
            g_kwargs["noise"] = True
        if mc.g_upsample != "nearest":
            g_kwargs["upsample"] = mc.g_upsample
        if mc.g_grown_from is not None:
            g_kwargs["grown_from"] = mc.g_grown_from
    else:
        for key, default in (("g_noise", False), ("g_upsample", "nearest"), ("g_grown_from", None)):
            if getattr(mc, key) != default:
                raise ValueError(f"model.{key} is an option of generator 'fastgan', not {mc.generator!r}; set it "
                                 f"to {default!r} or use the fastgan generator")
    if mc.discriminator in ("dcgan", "sngan", "resnet"):
        d_kwargs["max_mult"] = mc.max_mult
    if mc.discriminator in ("dcgan", "sngan"):
        d_kwargs["batch_norm"] = mc.d_batch_norm
    if mc.discriminator == "projected":
        d_kwargs["pretrained"] = mc.d_pretrained
        d_kwargs["pixel_channels"] = mc.d_pixel_channels
        d_kwargs["class_gain"] = mc.d_class_gain
        d_kwargs["backbone_scale"] = mc.d_backbone_scale
        if mc.d_mbstd_group:  # only when on: discriminator files written before the option stay the same identity
            d_kwargs["mbstd_group"] = mc.d_mbstd_group
    else:
        for key, default in (("d_pixel_channels", 0), ("d_class_gain", 1.0), ("d_backbone_scale", 1),
                             ("d_mbstd_group", 0)):
            if getattr(mc, key) != default:
                raise ValueError(f"model.{key} is an option of discriminator 'projected', not "
                                 f"{mc.discriminator!r}; set it to {default} or use the projected discriminator")
    return g_kwargs, d_kwargs


def check_transition(mc: ModelConfig, G: nn.Module, D: nn.Module, num_classes: int) -> None:
    """``model.cond_transition`` is ``[start, end]`` and both networks can weight their conditioning."""
    transition = mc.cond_transition
    if transition is None:
        return
    if len(transition) != 2 or not 0 <= transition[0] <= transition[1]:
        raise ValueError(f"model.cond_transition must be [start, end] G steps with 0 <= start <= end, got "
                         f"{transition}")
    if not num_classes:
        raise ValueError("model.cond_transition needs a class-conditional GAN (model.conditional: true)")
    unsupported = [name for name, net in (("generator", G), ("discriminator", D))
                   if not isinstance(net, ConditionScaleMixin)]
    if unsupported:
        raise ValueError(f"model.cond_transition: {', '.join(f'{k} {getattr(mc, k)!r}' for k in unsupported)} "
                         "cannot blend the class in; use generator 'fastgan' and discriminator 'projected'")


def condition_scale(transition: list[int] | None, step: int) -> float:
    """Weight of the class in G and D at G step ``step``: 0 before ``start``, linear to 1 at ``end``
    (transitional conditioning, Shahbazi et al. 2022); always 1 without a transition."""
    if transition is None:
        return 1.0
    start, end = transition
    if step < start:
        return 0.0
    return 1.0 if step >= end else (step - start) / (end - start)


def attach_class_head(lc: LossConfig, mc: ModelConfig, D: nn.Module, num_classes: int) -> bool:
    """Give D its auxiliary classifier when ``loss.class_lambda > 0``; True if it has one."""
    if lc.class_lambda < 0:
        raise ValueError(f"loss.class_lambda must be >= 0 (0 = off), got {lc.class_lambda}")
    if lc.class_lambda == 0:
        return False
    if mc.discriminator != "projected":
        raise ValueError(f"loss.class_lambda needs discriminator 'projected' (its frozen features feed the "
                         f"classifier), not {mc.discriminator!r}")
    if num_classes < 2:
        raise ValueError("loss.class_lambda needs a class-conditional GAN (model.conditional: true) on >= 2 classes")
    D.add_class_head()
    return True
