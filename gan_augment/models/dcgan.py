"""DCGAN (Radford et al. 2016) for any resolution ``base * 2**k`` (28, 32, 64, 128, 256, ...) from ONE definition.

Generator (MedImageGAN / MedGAN recipe): transposed conv -> BatchNorm -> ReLU, doubling the size each block,
Tanh output. Discriminator: strided conv -> (BatchNorm) -> LeakyReLU(0.2), halving each block; with spectral
norm it is the SNGAN discriminator of MedGAN / MedImageGAN. The seeds end D with a sigmoid; we return the
logit and the loss applies the sigmoid (BCE-with-logits), which is the same function, computed stably.
Conditioning: class-conditional BatchNorm in G, a projection head in D (``num_classes=0`` = unconditional).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from .base import DiscriminatorBase, GeneratorBase
from .layers import ConditionalBatchNorm2d, factor_resolution, maybe_sn
from .registry import register_discriminator, register_generator

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]


def _dcgan_init(module: nn.Module) -> None:
    # DCGAN initialisation: N(0, 0.02) weights, BatchNorm gains N(1, 0.02) (Radford et al. 2016, Sec. 4).
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            # with spectral norm, initialise the raw weight behind the parametrisation
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(GeneratorBase):
    """DCGAN generator; depth follows the resolution, widths halve per block from ``base_channels * max_mult``."""

    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 100,
                 base_channels: int = 64, max_mult: int = 8):
        super().__init__()
        self.resolution, self.num_classes, self.channels, self.z_dim = resolution, num_classes, channels, z_dim
        base, k = factor_resolution(resolution)
        widths = [base_channels * min(2 ** (k - 1 - i), max_mult) for i in range(k)]
        self.project = nn.ConvTranspose2d(z_dim, widths[0], base, 1, 0, bias=False)  # 1x1 -> base x base
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(w, num_classes) for w in widths])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1, bias=False)
                                  for i in range(k - 1)])
        self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1)
        self.act = nn.ReLU(inplace=True)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(z, y)
        h = self.act(self.norms[0](self.project(z[:, :, None, None]), y))
        for up, norm in zip(self.ups, self.norms[1:]):
            h = self.act(norm(up(h), y))
        return torch.tanh(self.to_image(h))


class DCGANDiscriminator(DiscriminatorBase):
    """DCGAN discriminator; ``spectral_norm=True`` makes it the SNGAN discriminator."""

    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, base_channels: int = 64,
                 max_mult: int = 8, spectral_norm: bool = False, batch_norm: bool = True):
        super().__init__()
        self.resolution, self.num_classes, self.channels = resolution, num_classes, channels
        base, k = factor_resolution(resolution)
        widths = [base_channels * min(2**i, max_mult) for i in range(k)]
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(channels, widths[0], 4, 2, 1), spectral_norm),
                                   nn.LeakyReLU(0.2, inplace=True)]  # no norm on the first layer (DCGAN)
        for i in range(1, k):
            layers.append(maybe_sn(nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=not batch_norm), spectral_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(widths[i]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.features = nn.Sequential(*layers)
        # Final "conv over the whole base x base map" of DCGAN, as a linear layer on the flattened map,
        # plus the projection term on sum-pooled features when conditional.
        self.out = maybe_sn(nn.Linear(widths[-1] * base * base, 1), spectral_norm)
        self.embed = maybe_sn(nn.Embedding(num_classes, widths[-1]), spectral_norm) if num_classes > 0 else None
        _dcgan_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(x, y)
        h = self.features(x)
        out = self.out(h.flatten(1)).squeeze(1)
        if self.embed is not None:  # projection term <embed(y), sum-pooled features> (Miyato & Koyama 2018)
            out = out + (self.embed(y) * h.sum(dim=(2, 3))).sum(dim=1)
        return out


@register_generator("dcgan")
def dcgan_generator(*, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 100,
                    base_channels: int = 64, max_mult: int = 8) -> DCGANGenerator:
    """DCGAN generator (MedImageGAN / MedGAN)."""
    return DCGANGenerator(resolution=resolution, num_classes=num_classes, channels=channels, z_dim=z_dim,
                          base_channels=base_channels, max_mult=max_mult)


@register_discriminator("dcgan")
def dcgan_discriminator(*, resolution: int, num_classes: int = 0, channels: int = 3, base_channels: int = 64,
                        max_mult: int = 8, batch_norm: bool = True) -> DCGANDiscriminator:
    """Plain DCGAN discriminator."""
    return DCGANDiscriminator(resolution=resolution, num_classes=num_classes, channels=channels,
                              base_channels=base_channels, max_mult=max_mult, spectral_norm=False,
                              batch_norm=batch_norm)


@register_discriminator("sngan")
def sngan_discriminator(*, resolution: int, num_classes: int = 0, channels: int = 3, base_channels: int = 64,
                        max_mult: int = 8, batch_norm: bool = True) -> DCGANDiscriminator:
    """DCGAN discriminator with spectral norm on every layer (MedGAN: SN conv + BatchNorm + LeakyReLU(0.2))."""
    return DCGANDiscriminator(resolution=resolution, num_classes=num_classes, channels=channels,
                              base_channels=base_channels, max_mult=max_mult, spectral_norm=True,
                              batch_norm=batch_norm)
