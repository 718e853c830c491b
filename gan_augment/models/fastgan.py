"""FastGAN-lite generator (Liu et al., ICLR 2021) for resolutions 32-256, class-conditional or not.

A 4x4 map from the latent, then upsampling blocks (nearest 2x -> 3x3 conv -> BatchNorm -> GLU, which halves the
doubled channels), and skip-layer excitation (SLE): a low-resolution feature map, pooled to 4x4, gates a
high-resolution one channel-wise through conv 4x4 -> swish -> conv 1x1 -> sigmoid. SLE gives the high layers a
cheap, global shortcut to the layout decided at low resolution, which is what lets FastGAN train on a few hundred
images in hours. ``base_channels`` (FastGAN's ``ngf``, the width) is the cost knob: channels per resolution
are ``base_channels * {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}``.

Conditioning: every BatchNorm is a :class:`~gan_augment.models.layers.TransitionalBatchNorm2d` (shared affine
plus a per-class correction scaled by ``condition_scale``). With the scale held at 1 this is class-conditional
BatchNorm; ramped from 0 to 1 during training it is transitional conditioning (Shahbazi et al., ICLR 2022,
"Collapse by conditioning"): the generator first learns the images of all classes, then the class is blended
in, which avoids the per-class collapse of conditional GANs on a few dozen images of a class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import GeneratorBase
from .layers import ConditionScaleMixin, TransitionalBatchNorm2d, factor_resolution
from .registry import register_generator

__all__ = ["FastGANGenerator"]

_WIDTH_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}


def _channels(res: int, width: int) -> int:
    return max(8, int(width * _WIDTH_MULT[res]))


class UpBlock(nn.Module):
    """Nearest 2x upsampling -> 3x3 conv to 2*cout -> (conditional) BatchNorm -> GLU (FastGAN's UpBlock)."""

    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, 3, 1, 1, bias=False)
        self.norm = TransitionalBatchNorm2d(2 * cout, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
        h = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        return F.glu(self.norm(h, y, scale), dim=1)


class SkipLayerExcitation(nn.Module):
    """Gate a high-resolution map channel-wise with a low-resolution one (FastGAN's SLE)."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False),
            nn.SiLU(),  # swish
            nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.net(low)


class FastGANGenerator(ConditionScaleMixin, GeneratorBase):
    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 128,
                 base_channels: int = 16):
        super().__init__()
        self.resolution, self.num_classes, self.channels, self.z_dim = resolution, num_classes, channels, z_dim
        _, k = factor_resolution(resolution, min_base=4, max_base=4, min_ups=3)
        if resolution > 256:
            raise ValueError(f"unsupported resolution {resolution}; supported: [32, 64, 128, 256]")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        self.register_buffer("condition_scale", torch.ones(()))
        self.sizes = [4 * 2**i for i in range(k + 1)]
        ch = {r: _channels(r, base_channels) for r in self.sizes}
        # latent -> 4x4 (FastGAN's InitLayer: transposed conv 4x4, BN, GLU)
        self.init_conv = nn.ConvTranspose2d(z_dim, 2 * ch[4], 4, 1, 0, bias=False)
        self.init_norm = TransitionalBatchNorm2d(2 * ch[4], num_classes)
        self.ups = nn.ModuleList([UpBlock(ch[r], ch[2 * r], num_classes) for r in self.sizes[:-1]])
        # SLE into every map of 32 px and above, from the map 16x smaller (or 4x4 when there is none)
        self.sle_pairs = [(max(4, r // 16), r) for r in self.sizes if r >= 32]
        self.sles = nn.ModuleList([SkipLayerExcitation(ch[lo], ch[hi]) for lo, hi in self.sle_pairs])
        self.to_image = nn.Conv2d(ch[resolution], channels, 3, 1, 1)
        for m in self.modules():  # DCGAN-style N(0, 0.02) init, as in FastGAN
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(z, y)
        scale = self.condition_scale
        h = F.glu(self.init_norm(self.init_conv(z[:, :, None, None]), y, scale), dim=1)
        feats = {4: h}
        sle = dict(zip((hi for _, hi in self.sle_pairs), zip((lo for lo, _ in self.sle_pairs), self.sles)))
        for r, up in zip(self.sizes[1:], self.ups):
            h = up(h, y, scale)
            if r in sle:
                lo, block = sle[r]
                h = block(feats[lo], h)
            feats[r] = h
        return torch.tanh(self.to_image(h))  # the output tanh (a missing one is a known FastGAN-port bug)


@register_generator("fastgan")
def fastgan_generator(*, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 128,
                      base_channels: int = 16) -> FastGANGenerator:
    """FastGAN-lite generator with skip-layer excitation; ``base_channels`` (FastGAN's ngf, the width) 16 / 32 /
    64 trades speed for capacity (~0.23 / 0.92 / 3.6 GMAC per 64 px image)."""
    return FastGANGenerator(resolution=resolution, num_classes=num_classes, channels=channels, z_dim=z_dim,
                            base_channels=base_channels)
