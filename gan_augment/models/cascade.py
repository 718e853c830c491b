"""A cascade: a trained generator followed by a learned 2x upsampler, sampled as one generator of twice its size.

The cheap way up in resolution on a CPU (issue #44's route b): instead of growing the generator and training it
adversarially at the larger size, a small super-resolution network is trained on pairs of *real* training images
(the same file prepared at the generator's resolution and at twice it) and put behind the generator.

:class:`Upsampler2x` adds a learned residual to a bicubic 2x upsampling (the skip of VDSR, Kim et al. 2016; sub-pixel
convolution of ESPCN, Shi et al. 2016); its last layer starts at zero, so an untrained upsampler *is* bicubic
upsampling - the blurry baseline a 64 px generator's images give at 128 px - and training can only add detail.
:class:`PatchDiscriminator` judges overlapping patches of the large image next to the bicubic upsampling of the
small one (pix2pix's conditional PatchGAN, Isola et al. 2017), so the adversarial term asks for real texture
consistent with the input, and the reconstruction term keeps the content.

:class:`CascadeGenerator` is registered as ``"cascade"``: its ``arch_args`` hold the base generator's architecture
and arguments, so a cascade generator file loads with :func:`gan_augment.load_generator` like any other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import GeneratorBase
from .layers import maybe_sn
from .registry import create_generator, register_generator

__all__ = ["Upsampler2x", "PatchDiscriminator", "CascadeGenerator", "cascade_generator"]


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(width, width, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsampler2x(nn.Module):
    """``x`` (N, C, H, W) in [-1, 1] -> (N, C, 2H, 2W) in [-1, 1]: bicubic upsampling plus a learned residual.

    ``blocks`` residual blocks of ``width`` channels at the small size, a sub-pixel 2x step, one block at the large
    size and a zero-initialised output convolution (so it starts as plain bicubic upsampling).
    """

    def __init__(self, *, channels: int = 3, width: int = 32, blocks: int = 4):
        super().__init__()
        if width < 1 or blocks < 0:
            raise ValueError(f"width must be >= 1 and blocks >= 0, got width={width}, blocks={blocks}")
        self.channels = channels
        self.head = nn.Conv2d(channels, width, 3, 1, 1)
        self.low = nn.Sequential(*[_Residual(width) for _ in range(blocks)])
        self.up = nn.Sequential(nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2),
                                nn.LeakyReLU(0.2, inplace=True))
        self.high = _Residual(width)
        self.out = nn.Conv2d(width, channels, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"Upsampler2x expects (N, {self.channels}, H, W), got {tuple(x.shape)}")
        base = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        h = self.head(x)
        h = self.high(self.up(h + self.low(h)))
        # clamp, not tanh: the bicubic skip must pass through unchanged where the residual is zero
        return (base + self.out(h)).clamp(-1.0, 1.0)


class PatchDiscriminator(nn.Module):
    """Logits for overlapping patches of ``large`` given ``small``: (N, 1, h, w) (pix2pix's PatchGAN).

    The input is the large image next to the bicubic upsampling of the small one (2C channels); ``layers``
    stride-2 convolutions with spectral norm, each patch logit sees about ``2 ** (layers + 2)`` pixels.
    """

    def __init__(self, *, channels: int = 3, width: int = 32, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = []
        c_in = 2 * channels
        for i in range(layers):
            c_out = width * min(2 ** i, 4)
            mods += [maybe_sn(nn.Conv2d(c_in, c_out, 4, 2, 1), True), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        mods.append(maybe_sn(nn.Conv2d(c_in, 1, 3, 1, 1), True))
        self.net = nn.Sequential(*mods)

    def forward(self, large: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        if large.shape[-1] != 2 * small.shape[-1] or large.shape[-2] != 2 * small.shape[-2]:
            raise ValueError(f"large {tuple(large.shape)} must be twice small {tuple(small.shape)}")
        cond = F.interpolate(small, scale_factor=2, mode="bicubic", align_corners=False)
        return self.net(torch.cat([large, cond], dim=1))


class CascadeGenerator(GeneratorBase):
    """``up(base(z, y))``: a generator of ``base.resolution`` followed by :class:`Upsampler2x`.

    Latents, classes, conditioning between classes and noise inputs are the base generator's, so the same seed
    gives the same image as the base generator's, at twice its size.
    """

    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, base_arch: str,
                 base_args: dict, up_width: int = 32, up_blocks: int = 4):
        super().__init__()
        if base_arch == "cascade":
            raise ValueError("a cascade's base cannot itself be a cascade: upsample once, from a trained generator")
        self.base = create_generator(base_arch, **base_args)
        if resolution != 2 * self.base.resolution:
            raise ValueError(f"a cascade doubles its base's resolution: base {self.base.resolution} px -> "
                             f"{2 * self.base.resolution} px, got resolution={resolution}")
        if num_classes != self.base.num_classes or channels != self.base.channels:
            raise ValueError(f"num_classes / channels ({num_classes}, {channels}) must be the base's "
                             f"({self.base.num_classes}, {self.base.channels})")
        self.resolution, self.num_classes, self.channels = resolution, num_classes, channels
        self.z_dim, self.uses_noise = self.base.z_dim, self.base.uses_noise
        self.up = Upsampler2x(channels=channels, width=up_width, blocks=up_blocks)

    def set_noise_seeds(self, seeds: list[int] | None) -> None:
        self.base.set_noise_seeds(seeds)

    def set_noise_generator(self, rng: torch.Generator | None) -> None:
        self.base.set_noise_generator(rng)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(z, y)
        return self.up(self.base(z, y))


@register_generator("cascade")
def _cascade(**kwargs) -> CascadeGenerator:
    return CascadeGenerator(**kwargs)


def cascade_generator(base: GeneratorBase, upsampler: Upsampler2x) -> CascadeGenerator:
    """One generator of twice ``base``'s size from a trained ``base`` and a trained ``upsampler`` (weights copied;
    the result carries ``base``'s class names and is in eval mode)."""
    if not getattr(base, "arch", ""):
        raise ValueError("base generator has no 'arch': load it with load_generator() or build it with "
                         "create_generator()")
    if upsampler.channels != base.channels:
        raise ValueError(f"upsampler has {upsampler.channels} channels, the base generator {base.channels}")
    width, blocks = upsampler.head.out_channels, len(upsampler.low)
    cascade = create_generator("cascade", resolution=2 * base.resolution, num_classes=base.num_classes,
                               channels=base.channels, base_arch=base.arch, base_args=dict(base.arch_args),
                               up_width=width, up_blocks=blocks)
    cascade.base.load_state_dict(base.state_dict())
    cascade.up.load_state_dict(upsampler.state_dict())
    cascade.class_names = list(base.class_names) if base.class_names is not None else None
    return cascade.eval()
