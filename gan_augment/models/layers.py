"""Blocks shared by every architecture: conditional BatchNorm, spectral norm switch, projection head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ConditionalBatchNorm2d", "maybe_sn", "ProjectionHead", "factor_resolution"]


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module`` in spectral normalisation (Miyato et al. 2018) when ``enabled``."""
    return spectral_norm(module) if enabled else module


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
        gain = self.gain(y).view(-1, out.shape[1], 1, 1)
        bias = self.bias(y).view(-1, out.shape[1], 1, 1)
        return out * gain + bias


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
