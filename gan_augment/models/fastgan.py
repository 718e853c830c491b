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

Two options aimed at fine detail, both off by default (the shipped generators were trained without them). A generator
file written without them still starts a generator with them (``train.init_generator``): the noise strengths start
at 0, so it draws the file's images until training moves them; the upsampling mode adds no weights and changes the
images a little from the first step.

Growing (``grown_from=r``, the resolution half of this one): a generator started from a trained one at ``r`` px
(``train.init_generator``), its blocks kept and one up-block, one SLE and a new output layer added - progressive
growing's fade-in (Karras et al., ICLR 2018). The file's output layer stays as ``to_image_low`` on the ``r`` px map;
the image is ``tanh((1 - fade) * up2(to_image_low(h_r)) + fade * to_image(h))`` with ``fade`` a buffer that training
ramps from 0 (the file's images, each pixel repeated 2x2) to 1 (``train.fade_steps``); at 1 the low path is skipped.

- ``noise=True``: per-pixel noise injection after every upsampling conv (FastGAN's ``NoiseInjection``, StyleGAN's
  noise inputs, Karras et al. 2019): one single-channel Gaussian map per image and block, scaled per channel by a
  learned strength that starts at 0. Stochastic detail - skin texture, hair, pores - then need not be coded in the
  latent. ``sample(seed=...)`` stays reproducible: it draws one noise seed per image from the same seed.
- ``upsample="bilinear"``: bilinear instead of nearest 2x upsampling in the blocks. Nearest upsampling repeats each
  pixel, which can leave the output's power spectrum uneven at the periods of the pyramid's maps: the shipped 64 px
  generator's spectrum falls furthest short of real images' at 8 and 16 cycles per image (periods of 8 and 4 px,
  benchmarks/results/pretrained_ham10000_64_long/metrics.json), and a linear probe on the spectra alone tells its
  images from real ones 96 % of the time. Whether the upsampling is the cause is what the option is there to test.
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


UPSAMPLE_MODES = ("nearest", "bilinear")


class NoiseInjection(nn.Module):
    """``h + strength * noise``: a (N, 1, H, W) standard normal map, one strength per channel, initialised to 0.

    The map comes from ``rng`` (a ``torch.Generator`` on the maps' device the trainer sets and reseeds every step,
    so a resumed run draws the same maps; ``None``: the global RNG); ``fixed_seeds`` (one int per image, set by the
    generator's ``sample``) makes it a function of the image's seed and this block's ``index`` instead."""

    def __init__(self, channels: int, index: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels))
        self.index = index
        self.fixed_seeds: list[int] | None = None
        self.rng: torch.Generator | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, _, height, width = h.shape
        if self.fixed_seeds is None:
            noise = torch.randn(n, 1, height, width, generator=self.rng, device=h.device, dtype=h.dtype)
        else:
            if len(self.fixed_seeds) != n:
                raise ValueError(f"{len(self.fixed_seeds)} noise seeds for a batch of {n} images")
            noise = torch.stack([torch.randn(1, height, width, generator=torch.Generator().manual_seed(
                (s * 1_000_003 + self.index) % 2**63)) for s in self.fixed_seeds]).to(h.device, h.dtype)
        return h + self.strength.view(1, -1, 1, 1) * noise


class UpBlock(nn.Module):
    """2x upsampling -> 3x3 conv to 2*cout -> [noise] -> (conditional) BatchNorm -> GLU (FastGAN's UpBlock)."""

    def __init__(self, cin: int, cout: int, num_classes: int, *, noise: NoiseInjection | None = None,
                 upsample: str = "nearest"):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, 3, 1, 1, bias=False)
        self.noise = noise
        self.norm = TransitionalBatchNorm2d(2 * cout, num_classes)
        self.upsample = upsample

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
        if self.upsample == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        h = self.conv(x)
        if self.noise is not None:
            h = self.noise(h)
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
    # arch_args a generator file may lack and still start this generator (train.init_generator): the weights they
    # add start as the identity (noise strengths at 0) or they add none (the upsampling mode)
    start_compatible_args = {"noise": (False, r"ups\.\d+\.noise\.strength"), "upsample": ("nearest", None)}

    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 128,
                 base_channels: int = 16, noise: bool = False, upsample: str = "nearest",
                 grown_from: int | None = None):
        super().__init__()
        if grown_from is not None and grown_from * 2 != resolution:
            raise ValueError(f"grown_from must be half the resolution ({resolution // 2}), got {grown_from}")
        self.grown_from = grown_from
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
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
        self.ups = nn.ModuleList([
            UpBlock(ch[r], ch[2 * r], num_classes, noise=NoiseInjection(2 * ch[2 * r], i) if noise else None,
                    upsample=upsample)
            for i, r in enumerate(self.sizes[:-1])])
        self.uses_noise = bool(noise)
        # SLE into every map of 32 px and above, from the map 16x smaller (or 4x4 when there is none)
        self.sle_pairs = [(max(4, r // 16), r) for r in self.sizes if r >= 32]
        self.sles = nn.ModuleList([SkipLayerExcitation(ch[lo], ch[hi]) for lo, hi in self.sle_pairs])
        self.to_image = nn.Conv2d(ch[resolution], channels, 3, 1, 1)
        if grown_from is not None:  # the grown-from generator's output layer, faded out (module docstring)
            self.to_image_low = nn.Conv2d(ch[grown_from], channels, 3, 1, 1)
            self.register_buffer("fade", torch.ones(()))
        for m in self.modules():  # DCGAN-style N(0, 0.02) init, as in FastGAN
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def set_noise_seeds(self, seeds: list[int] | None) -> None:
        """Per-image seeds for the noise maps (``None``: draw them from the noise generator, as in training)."""
        for up in self.ups:
            if up.noise is not None:
                up.noise.fixed_seeds = seeds

    def set_noise_generator(self, rng: torch.Generator | None) -> None:
        """The ``torch.Generator`` the noise maps are drawn from outside ``sample`` (``None``: the global RNG)."""
        for up in self.ups:
            if up.noise is not None:
                up.noise.rng = rng

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
        out = self.to_image(h)
        if self.grown_from is not None and float(self.fade) < 1:
            low = F.interpolate(self.to_image_low(feats[self.grown_from]), scale_factor=2, mode="nearest")
            out = torch.lerp(low, out, self.fade.to(out.dtype))
        return torch.tanh(out)  # the output tanh (a missing one is a known FastGAN-port bug)


@register_generator("fastgan")
def fastgan_generator(*, resolution: int, num_classes: int = 0, channels: int = 3, z_dim: int = 128,
                      base_channels: int = 16, noise: bool = False, upsample: str = "nearest",
                      grown_from: int | None = None) -> FastGANGenerator:
    """FastGAN-lite generator with skip-layer excitation; ``base_channels`` (FastGAN's ngf, the width) 16 / 32 /
    64 trades speed for capacity (~0.23 / 0.92 / 3.6 GMAC per 64 px image); ``noise`` adds per-pixel noise
    injection, ``upsample`` is ``"nearest"`` (FastGAN's) or ``"bilinear"``; ``grown_from`` (half the resolution)
    grows a trained generator of that resolution by one block, faded in."""
    kwargs = {"grown_from": grown_from} if grown_from is not None else {}
    return FastGANGenerator(resolution=resolution, num_classes=num_classes, channels=channels, z_dim=z_dim,
                            base_channels=base_channels, noise=noise, upsample=upsample, **kwargs)
