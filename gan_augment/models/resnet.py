"""Residual SNGAN / BigGAN-style generator and discriminator for resolutions 4 * 2**k (32, 64, 128, 256, ...).

Generator: linear -> 4x4 map -> residual up-blocks (conditional BatchNorm, ReLU, nearest upsampling, 3x3
convs; Miyato et al. 2018, Brock et al. 2019) -> BN, ReLU, 3x3 conv, Tanh. Discriminator: residual down-blocks
with spectral norm on every layer, ReLU, global sum pooling and a projection head (Miyato & Koyama 2018).
Widths double per block from ``base_channels`` up to ``base_channels * max_mult``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .base import DiscriminatorBase, GeneratorBase
from .layers import ConditionalBatchNorm2d, ProjectionHead, factor_resolution, maybe_sn
from .registry import register_discriminator, register_generator

__all__ = ["ResNetGenerator", "ResNetDiscriminator"]


def _xavier_init(module: nn.Module) -> None:
    # SNGAN initialisation: Xavier-uniform weights, zero biases (Miyato et al. 2018, appendix B).
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.xavier_uniform_(weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class GBlock(nn.Module):
    """Pre-activation residual block that doubles the spatial size."""

    def __init__(self, cin: int, cout: int, num_classes: int, sn: bool = False):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(cin, num_classes)
        self.conv1 = maybe_sn(nn.Conv2d(cin, cout, 3, 1, 1), sn)
        self.bn2 = ConditionalBatchNorm2d(cout, num_classes)
        self.conv2 = maybe_sn(nn.Conv2d(cout, cout, 3, 1, 1), sn)
        self.skip = maybe_sn(nn.Conv2d(cin, cout, 1), sn)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """Residual block that halves the size (or keeps it); the first block skips the leading ReLU (SNGAN)."""

    def __init__(self, cin: int, cout: int, *, down: bool, first: bool, sn: bool = True):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = maybe_sn(nn.Conv2d(cin, cout, 3, 1, 1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(cout, cout, 3, 1, 1), sn)
        self.skip = maybe_sn(nn.Conv2d(cin, cout, 1), sn) if (cin != cout or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:  # "optimized" first block: pool, then 1x1 conv
            s = F.avg_pool2d(s, 2) if self.down else s
            s = self.skip(s) if self.skip is not None else s
        else:
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetGenerator(GeneratorBase):
    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 128,
                 base_channels: int = 64, max_mult: int = 8, spectral_norm: bool = False):
        super().__init__()
        self.resolution, self.num_classes, self.channels, self.z_dim = resolution, num_classes, channels, z_dim
        _, k = factor_resolution(resolution, min_base=4, max_base=4, min_ups=3)
        widths = [base_channels * min(2 ** (k - i), max_mult) for i in range(k + 1)]
        self.linear = maybe_sn(nn.Linear(z_dim, 4 * 4 * widths[0]), spectral_norm)
        self.blocks = nn.ModuleList([GBlock(widths[i], widths[i + 1], num_classes, spectral_norm) for i in range(k)])
        self.out_bn = nn.BatchNorm2d(widths[-1])
        self.to_image = maybe_sn(nn.Conv2d(widths[-1], channels, 3, 1, 1), spectral_norm)
        _xavier_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(z, y)
        h = self.linear(z).view(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.to_image(F.relu(self.out_bn(h))))


class ResNetDiscriminator(DiscriminatorBase):
    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, base_channels: int = 64,
                 max_mult: int = 8, spectral_norm: bool = True):
        super().__init__()
        self.resolution, self.num_classes, self.channels = resolution, num_classes, channels
        _, k = factor_resolution(resolution, min_base=4, max_base=4, min_ups=3)
        widths = [base_channels * min(2**i, max_mult) for i in range(k)]
        blocks = [DBlock(channels, widths[0], down=True, first=True, sn=spectral_norm)]
        blocks += [DBlock(widths[i - 1], widths[i], down=True, first=False, sn=spectral_norm) for i in range(1, k)]
        blocks.append(DBlock(widths[-1], widths[-1], down=False, first=False, sn=spectral_norm))  # at 4x4
        self.blocks = nn.Sequential(*blocks)
        self.head = ProjectionHead(widths[-1], num_classes, sn=spectral_norm)
        _xavier_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(x, y)
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return self.head(h, y)


@register_generator("resnet")
def resnet_generator(*, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 128,
                     base_channels: int = 64, max_mult: int = 8, spectral_norm: bool = False) -> ResNetGenerator:
    """Residual SNGAN/BigGAN generator with class-conditional BatchNorm (the default at 256 px)."""
    return ResNetGenerator(resolution=resolution, num_classes=num_classes, channels=channels, z_dim=z_dim,
                           base_channels=base_channels, max_mult=max_mult, spectral_norm=spectral_norm)


@register_discriminator("resnet")
def resnet_discriminator(*, resolution: int, num_classes: int = 0, channels: int = 3, base_channels: int = 64,
                         max_mult: int = 8, spectral_norm: bool = True) -> ResNetDiscriminator:
    """Residual projection discriminator with spectral norm."""
    return ResNetDiscriminator(resolution=resolution, num_classes=num_classes, channels=channels,
                               base_channels=base_channels, max_mult=max_mult, spectral_norm=spectral_norm)
