"""Blocks shared by every architecture: conditional BatchNorm, spectral norm switch, projection head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["class_embedding", "ConditionalBatchNorm2d", "TransitionalBatchNorm2d", "ConditionScaleMixin", "set_condition_scale",
           "maybe_sn", "ProjectionHead", "factor_resolution"]


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module`` in spectral normalisation (Miyato et al. 2018) when ``enabled``."""
    return spectral_norm(module) if enabled else module


def class_embedding(table: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` for class indices ``y`` (N,), or - for a float ``y`` of class weights (N, K), e.g. 0.7 of
    one class and 0.3 of another - the same mix of rows: conditioning *between* classes (boundary samples)."""
    if y.is_floating_point():
        if y.ndim != 2 or y.shape[1] != table.num_embeddings:
            raise ValueError(f"class weights must have shape (N, {table.num_embeddings}), got {tuple(y.shape)}")
        return y.to(table.weight.dtype) @ table.weight
    return table(y)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias are looked up per class (de Vries 2017; Miyato & Koyama 2018).

    With ``num_classes=0`` it is an ordinary affine BatchNorm, so one generator definition serves the
    conditional and the unconditional case.
    """

    def __init__(self, num_features: int, num_classes: int = 0, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, affine=num_classes == 0, eps=eps, momentum=momentum)
        if num_classes > 0:
            self.gain = nn.Embedding(num_classes, num_features)
            self.bias = nn.Embedding(num_classes, num_features)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bn(x)
        if self.num_classes == 0:
            return out
        gain = class_embedding(self.gain, y).view(-1, out.shape[1], 1, 1)
        bias = class_embedding(self.bias, y).view(-1, out.shape[1], 1, 1)
        return out * gain + bias


class TransitionalBatchNorm2d(nn.Module):
    """BatchNorm with a shared affine and a per-class correction weighted by ``scale`` in [0, 1].

    ``out = bn(x) * (1 + scale * dgain[y]) + scale * dbias[y]``. At ``scale=1`` it is class-conditional
    BatchNorm; at 0 it is an ordinary BatchNorm that ignores the class, so a generator can be trained
    unconditionally first and have the class blended in (transitional conditioning, Shahbazi et al. 2022).
    The corrections start at zero, so blending the class in does not jolt the network.
    """

    def __init__(self, num_features: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features)
        if num_classes > 0:
            self.dgain = nn.Embedding(num_classes, num_features)
            self.dbias = nn.Embedding(num_classes, num_features)
            nn.init.zeros_(self.dgain.weight)
            nn.init.zeros_(self.dbias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                scale: torch.Tensor | float = 1.0) -> torch.Tensor:
        out = self.bn(x)
        if self.num_classes == 0:
            return out
        gain = class_embedding(self.dgain, y).view(-1, out.shape[1], 1, 1)
        bias = class_embedding(self.dbias, y).view(-1, out.shape[1], 1, 1)
        return out * (1 + scale * gain) + scale * bias


class ConditionScaleMixin:
    """A network whose class conditioning is weighted by its ``condition_scale`` buffer (1 = fully conditional).

    The buffer is saved with the weights, so a generator file stopped half-way through a transition samples
    exactly as it was trained.
    """

    condition_scale: torch.Tensor

    def set_condition_scale(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"condition scale must be in [0, 1], got {value}")
        self.condition_scale.fill_(float(value))


def set_condition_scale(module: nn.Module, value: float) -> bool:
    """Set the class-conditioning weight of ``module`` if it has one; returns whether it did."""
    if isinstance(module, ConditionScaleMixin):
        module.set_condition_scale(value)
        return True
    return False


class ProjectionHead(nn.Module):
    """Logit from pooled features ``h``: ``linear(h) + <embed(y), h>`` (projection D, Miyato & Koyama 2018)."""

    def __init__(self, in_features: int, num_classes: int = 0, sn: bool = True):
        super().__init__()
        self.linear = maybe_sn(nn.Linear(in_features, 1), sn)
        self.embed = maybe_sn(nn.Embedding(num_classes, in_features), sn) if num_classes > 0 else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


def factor_resolution(resolution: int, min_base: int = 4, max_base: int = 7, min_ups: int = 2) -> tuple[int, int]:
    """Write ``resolution = base * 2**k`` with ``min_base <= base <= max_base``; return ``(base, k)``.

    28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4), 256 -> (4, 6). Raises ``ValueError`` listing examples otherwise.
    """
    k = 0
    while resolution % (2 ** (k + 1)) == 0 and resolution // 2 ** (k + 1) >= min_base:
        k += 1
    base = resolution // 2**k
    if resolution <= 0 or not (min_base <= base <= max_base) or k < min_ups:
        valid = sorted({b * 2**j for b in range(min_base, max_base + 1) for j in range(min_ups, 7)
                        if 16 <= b * 2**j <= 512})
        raise ValueError(f"unsupported resolution {resolution}; supported: {valid}")
    return base, k
