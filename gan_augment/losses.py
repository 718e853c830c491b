"""GAN objectives, one object each, with a discriminator phase and a generator phase.

Networks know nothing of these; the trainer calls ``d_loss`` / ``g_loss`` on logits, adds ``d_penalty`` (the
WGAN-GP gradient penalty) and calls ``after_d_step`` (WGAN weight clipping). ``r1_penalty`` is available to
any objective (Mescheder et al. 2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import draw_for_shard

__all__ = [
    "GANLoss",
    "NonSaturatingLoss",
    "HingeLoss",
    "LSGANLoss",
    "WGANLoss",
    "WGANGPLoss",
    "create_loss",
    "list_losses",
    "r1_penalty",
    "mode_seeking_loss",
    "LeCam",
    "radial_power_spectrum",
    "SpectralDiscriminator",
]


class GANLoss:
    """Base class. ``chance_d_loss`` is D's loss when it cannot tell real from fake (``None`` if undefined)."""

    name: str = ""
    chance_d_loss: float | None = None
    threshold: float = 0.0  # a logit above this counts as "real" when measuring D's accuracy

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None,
                  generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)) -> torch.Tensor | None:
        """Extra D loss term; ``shard=(rank, world)``: this batch is that rank's slice of a global batch, and any
        random draw is made for the global batch and sliced (so sharding leaves the random stream unchanged)."""
        return None

    def after_d_step(self, D: nn.Module) -> None:
        return None

    def d_accuracy(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fraction of real logits called real and of fake logits called fake."""
        return (real > self.threshold).float().mean(), (fake <= self.threshold).float().mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NonSaturatingLoss(GANLoss):
    """Binary cross-entropy with the non-saturating G loss (Goodfellow et al. 2014)."""

    name = "bce"
    chance_d_loss = 2 * math.log(2)

    def d_loss(self, real, fake):
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake):
        return F.softplus(-fake).mean()


class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018)."""

    name = "hinge"
    chance_d_loss = 2.0

    def d_loss(self, real, fake):
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_loss(self, fake):
        return -fake.mean()


class LSGANLoss(GANLoss):
    """Least squares GAN with targets 0 (fake) / 1 (real) (Mao et al. 2017)."""

    name = "lsgan"
    chance_d_loss = 0.25  # D outputs 0.5 everywhere
    threshold = 0.5

    def d_loss(self, real, fake):
        return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()

    def g_loss(self, fake):
        return 0.5 * ((fake - 1.0) ** 2).mean()


class WGANLoss(GANLoss):
    """Wasserstein GAN with weight clipping (Arjovsky et al. 2017)."""

    name = "wgan"

    def __init__(self, clip: float = 0.01):
        if clip <= 0:
            raise ValueError(f"clip must be positive, got {clip}")
        self.clip = clip

    def d_loss(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss(self, fake):
        return -fake.mean()

    def after_d_step(self, D):
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-self.clip, self.clip)

    def d_accuracy(self, real, fake):
        # A critic has no fixed threshold: split at the midpoint between the two means.
        mid = 0.5 * (real.mean() + fake.mean())
        return (real > mid).float().mean(), (fake <= mid).float().mean()

    def __repr__(self):
        return f"WGANLoss(clip={self.clip})"


class WGANGPLoss(WGANLoss):
    """WGAN with a gradient penalty on interpolates instead of clipping (Gulrajani et al. 2017)."""

    name = "wgan-gp"

    def __init__(self, gp_lambda: float = 10.0):
        self.gp_lambda = gp_lambda

    def after_d_step(self, D):
        return None

    def d_penalty(self, D, real, fake, y, generator=None, shard=(0, 1)):
        alpha = draw_for_shard(torch.rand, real.shape[0], (1, 1, 1), shard=shard, generator=generator,
                               device=real.device).to(real.dtype)
        x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x, y).sum(), x, create_graph=True)
        return self.gp_lambda * ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()

    def __repr__(self):
        return f"WGANGPLoss(gp_lambda={self.gp_lambda})"


def mode_seeking_loss(images: torch.Tensor, latents: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking term for G (Mao et al., CVPR 2019, "MSGAN"): rows ``i`` and ``i + N // 2`` of a batch are a
    pair (same class, different latents); the term is ``1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps)``, so G
    lowers it by making two latents of one class give images that differ as much as the latents do - against the
    within-class collapse a small conditional GAN drifts into (recall 0.41 for the shipped 64 px generator, 0.85
    for real images). Hand-written: a few lines, and no maintained library packages it."""
    n = images.shape[0] // 2
    if n < 1 or latents.shape[0] != images.shape[0]:
        raise ValueError(f"the mode-seeking term needs a batch of >= 2 images with one latent each, got "
                         f"{images.shape[0]} images and {latents.shape[0]} latents")
    with torch.autocast(images.device.type, enabled=False):
        d_img = (images[:n].float() - images[n:2 * n].float()).abs().mean()
        d_z = (latents[:n].float() - latents[n:2 * n].float()).abs().mean()
        return 1.0 / (d_img / d_z + eps)


def r1_penalty(D: nn.Module, real: torch.Tensor, y: torch.Tensor | None, gamma: float) -> torch.Tensor:
    """R1 = gamma / 2 * E ||grad_x D(x)||^2 on real images (Mescheder et al. 2018)."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, y).sum(), x, create_graph=True)
    return 0.5 * gamma * grad.float().pow(2).flatten(1).sum(1).mean()


class LeCam:
    """LeCam regulariser (Tseng et al., CVPR 2021) for D on limited data.

    Keeps exponential moving averages of D's mean real and fake logits and penalises real logits above the
    fake average and fake logits below the real average: ``lambda * (E[relu(D(x) - a_F)^2] + E[relu(a_R -
    D(G(z)))^2])``. It bounds how far D can pull the two apart, which is what overfitting a few hundred images
    looks like, at the cost of two means per step. The averages are state, saved with checkpoints.
    """

    def __init__(self, weight: float, *, decay: float = 0.99):
        if weight < 0 or not 0.0 <= decay < 1.0:
            raise ValueError(f"LeCam needs weight >= 0 and 0 <= decay < 1, got {weight}, {decay}")
        self.weight, self.decay = float(weight), float(decay)
        self.ema_real: torch.Tensor | None = None
        self.ema_fake: torch.Tensor | None = None

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # the averages stay tensors on the logits' device: no host sync in the training step
        r, f = real.detach().float().mean(), fake.detach().float().mean()
        if self.ema_real is None:
            self.ema_real, self.ema_fake = r, f
        else:
            self.ema_real = self.decay * self.ema_real + (1 - self.decay) * r
            self.ema_fake = self.decay * self.ema_fake + (1 - self.decay) * f
        reg = F.relu(real - self.ema_fake).pow(2).mean() + F.relu(self.ema_real - fake).pow(2).mean()
        return self.weight * reg

    def state_dict(self) -> dict:
        as_float = lambda v: None if v is None else float(v)  # noqa: E731
        return {"ema_real": as_float(self.ema_real), "ema_fake": as_float(self.ema_fake)}

    def load_state_dict(self, state: dict) -> None:
        as_tensor = lambda v: None if v is None else torch.tensor(float(v))  # noqa: E731
        self.ema_real, self.ema_fake = as_tensor(state["ema_real"]), as_tensor(state["ema_fake"])


_LOSSES = {
    "bce": NonSaturatingLoss,
    "hinge": HingeLoss,
    "lsgan": LSGANLoss,
    "wgan": WGANLoss,
    "wgan-gp": WGANGPLoss,
}


def list_losses() -> list[str]:
    return sorted(_LOSSES)


def create_loss(name: str, **kwargs) -> GANLoss:
    """Build an objective by name: bce, hinge, lsgan, wgan (``clip=``), wgan-gp (``gp_lambda=``)."""
    key = name.lower().replace("_", "-")
    if key not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; available: {list_losses()}")
    return _LOSSES[key](**kwargs)


# ------------------------------------------------------------------------------------------------ spectrum
# Hand-written on torch.fft: no maintained library exposes a differentiable ring-averaged power spectrum, and the
# GAN step needs one (the spectral discriminator below backpropagates through it into G).
_RING_CACHE: dict[tuple[int, int, str], torch.Tensor] = {}


def _ring_matrix(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(H*W, R) matrix averaging the centred spectrum over rings of radius 1 .. R (R = min(H, W) // 2 - 1)."""
    key = (h, w, str(device))
    if key not in _RING_CACHE:
        yy = torch.arange(h, dtype=torch.float32) - h // 2
        xx = torch.arange(w, dtype=torch.float32) - w // 2
        r = torch.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2).round().long().flatten()
        n = min(h, w) // 2 - 1
        m = torch.zeros(h * w, n)
        keep = (r >= 1) & (r <= n)
        m[keep.nonzero().squeeze(1), r[keep] - 1] = 1.0
        _RING_CACHE[key] = (m / m.sum(0, keepdim=True)).to(device)
    return _RING_CACHE[key]


def radial_power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """log10 of the mean power of each ring of the 2-D Fourier spectrum of the grey image.

    ``images``: (N, C, H, W) floats (any scale: the result shifts by a constant with it). Returns (N, R) for the
    radii 1 .. R = min(H, W) // 2 - 1 cycles per image, low to high frequency (radius 0, the mean brightness, and
    the corners beyond the inscribed circle are left out). Differentiable; computed in float32.
    GAN images too smooth for their data show as a deficit at high radii (Durall et al., CVPR 2020).
    """
    if images.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(images.shape)}")
    with torch.autocast(images.device.type, enabled=False):
        grey = images.float().mean(1)
        grey = grey - grey.mean((1, 2), keepdim=True)
        power = torch.fft.fftshift(torch.fft.fft2(grey), dim=(-2, -1)).abs().pow(2)
        rings = power.flatten(1) @ _ring_matrix(grey.shape[1], grey.shape[2], images.device)
        return torch.log10(rings + 1e-8)


class SpectralDiscriminator(nn.Module):
    """A linear real-vs-fake classifier on :func:`radial_power_spectrum`, trained beside D (``loss.spectral_lambda``).

    Durall et al. (CVPR 2020) showed up-convolution generators miss the high-frequency spectrum of real images,
    and that a discriminator on the 1-D spectrum, added to the usual one, corrects it. Here a linear probe on the
    31 ring powers of a 64 px image told the shipped HAM10000 generator's images from real ones 97 % of the time
    (real training vs validation images: 50 %), with half the real power over the upper half of the frequencies
    (``benchmarks/results/pretrained_ham10000_64/metrics.json``).
    """

    def __init__(self, resolution: int, *, weight: float = 1.0):
        super().__init__()
        if weight < 0:
            raise ValueError(f"loss.spectral_lambda must be >= 0, got {weight}")
        self.bands = resolution // 2 - 1
        if self.bands < 2:
            raise ValueError(f"a spectral discriminator needs images of at least 6 px, got {resolution}")
        self.fc = nn.Linear(self.bands, 1)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        # Ring powers span 5 decades (log10 ~ 4..9 at 64 px) and differ between real and generated images by a few
        # tenths: standardised by running statistics of the *real* spectra, the linear head learns at D's
        # learning rate within tens of steps instead of thousands. Buffers: saved with D, never optimised.
        self.register_buffer("real_mean", torch.zeros(self.bands))
        self.register_buffer("real_std", torch.ones(self.bands))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.momentum = 0.01

    @torch.no_grad()
    def _observe(self, spec: torch.Tensor) -> None:
        mean, std = spec.mean(0), spec.std(0).clamp_min(1e-3) if len(spec) > 1 else torch.ones_like(spec[0])
        if int(self.seen) == 0:
            self.real_mean.copy_(mean)
            self.real_std.copy_(std)
        else:
            self.real_mean.lerp_(mean, self.momentum)
            self.real_std.lerp_(std, self.momentum)
        self.seen += 1

    def forward(self, images: torch.Tensor, *, observe: bool = False) -> torch.Tensor:
        """Logits (N,); ``observe=True`` (real images, D's step only) updates the running statistics first."""
        spec = radial_power_spectrum(images)
        if observe and self.training:
            self._observe(spec.detach())
        return self.fc((spec - self.real_mean) / self.real_std).squeeze(1)

    def d_terms(self, loss: GANLoss, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Its ``loss`` on a real and a fake batch, and its accuracy (0.5 = it cannot tell them apart)."""
        r, f = self(real, observe=True), self(fake)
        real_acc, fake_acc = loss.d_accuracy(r.detach(), f.detach())
        return loss.d_loss(r, f), 0.5 * (real_acc + fake_acc)
