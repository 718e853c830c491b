"""Other ways to draw from a trained generator: a scaled latent, and a discriminator's pick of more draws.

Both wrap a loaded generator and are generators themselves (``sample(n, class_, seed=...)``, ``num_classes``,
``class_names``, ``meta``), so ``gan-augment evaluate``'s library call, ``GANBalancedDataset`` and the server take
them unchanged.

- :class:`LatentScaled` multiplies every latent by ``scale``: below 1 it is the truncation trick in its simplest
  form (Brock et al., ICLR 2019, "BigGAN", truncate by resampling; a scale is the same pull towards the mode):
  images nearer the generator's typical one, fewer odd ones, less variety. Above 1 it asks for more variety
  than the generator was trained to give.
- :class:`DiscriminatorTopK` draws ``n / keep`` images of the class and keeps the ``n`` that the trained
  discriminator scores as most real - the deterministic end of discriminator rejection sampling (Azadi et al.,
  ICLR 2019, "Discriminator Rejection Sampling", accept with a probability that rises with D's logit). A D that
  still tells real from generated images knows where the generator misses; one at equilibrium may not, and
  what its features favour need not be what another network's do (judge in InceptionV3 features, not D's).

The candidates of ``sample(n, c, seed=s)`` are ``G.sample(ceil(n / keep), c, seed=s)``, so a result is as
reproducible as the generator's own draws; the discriminator sees the uint8 images users get, and the class.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .data.transforms import uint8_to_gan
from .models.base import GeneratorBase, resolve_classes

__all__ = ["LatentScaled", "DiscriminatorTopK"]


class _Wrapped(GeneratorBase):
    """A generator that draws from ``generator`` its own way; it keeps that generator's attributes."""

    def __init__(self, generator: GeneratorBase, sampling: dict[str, Any]):
        super().__init__()
        if not isinstance(generator, GeneratorBase):
            raise TypeError(f"expected a loaded generator (GeneratorBase), got {type(generator).__name__}")
        self.generator = generator
        for key in ("z_dim", "num_classes", "resolution", "channels", "class_names", "arch", "arch_args",
                    "uses_noise"):
            setattr(self, key, getattr(generator, key))
        meta = dict(getattr(generator, "meta", None) or {})
        meta["sampling"] = [*meta.get("sampling", []), sampling]  # wrappers of wrappers list every step
        self.meta = meta

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, y)

    def set_noise_seeds(self, seeds: list[int] | None) -> None:
        self.generator.set_noise_seeds(seeds)


class LatentScaled(_Wrapped):
    """``G(scale * z, y)``: ``scale < 1`` truncates towards the typical image, ``> 1`` widens the draws."""

    def __init__(self, generator: GeneratorBase, scale: float):
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0 (1 = the generator's own draws), got {scale}")
        if isinstance(generator, DiscriminatorTopK):  # its pick lives in sample(), which this one would bypass
            raise ValueError("scale the latent under the pick, not over it: DiscriminatorTopK(LatentScaled(G, scale), "
                             "D, keep)")
        super().__init__(generator, {"method": "latent_scale", "scale": float(scale)})
        self.scale = float(scale)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z * self.scale, y)


class DiscriminatorTopK(_Wrapped):
    """Of ``ceil(n / keep)`` draws of a class, the ``n`` that ``discriminator(x, y)`` scores highest.

    ``discriminator`` maps images in [-1, 1] (and class indices, for a conditional one) to logits of shape (N,) or
    (N, K) (a patch or multi-scale D: the mean over K is the score); ``keep`` in (0, 1]; 1 is the generator itself.
    """

    def __init__(self, generator: GeneratorBase, discriminator: nn.Module, keep: float, *, batch_size: int = 100):
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1] (the fraction of draws kept), got {keep}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(generator, {"method": "discriminator_top_k", "keep": float(keep)})
        object.__setattr__(self, "discriminator", discriminator)  # not a submodule: not moved, saved or trained
        self.keep, self.score_batch = float(keep), int(batch_size)
        self.last_scores = torch.empty(0)

    @torch.no_grad()
    def scores(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's score of each uint8 image (higher = more real), in eval mode."""
        D, was_training = self.discriminator, self.discriminator.training
        device = next(iter(D.parameters()), torch.empty(0)).device
        D.eval()
        try:
            out = []
            for i in range(0, len(images), self.score_batch):
                x = uint8_to_gan(images[i:i + self.score_batch].to(device))
                y = labels[i:i + self.score_batch].to(device) if labels is not None else None
                logits = D(x, y).float()
                out.append((logits.mean(1) if logits.ndim == 2 else logits.reshape(len(x))).cpu())
        finally:
            D.train(was_training)
        return torch.cat(out) if out else torch.empty(0)

    @torch.no_grad()
    def sample(self, n: int, class_: int | str | None = None, *, seed: int | None = None,
               generator: torch.Generator | None = None, batch_size: int = 64,
               device: str | torch.device | None = None, output: str = "uint8", amp: bool = False) -> torch.Tensor:
        """Like :meth:`GeneratorBase.sample` for one class (the pick is within a class); ``output="float"`` gives
        the kept uint8 images as [-1, 1] floats."""
        if output not in ("uint8", "float"):
            raise ValueError(f"output must be 'uint8' or 'float', got {output!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if isinstance(class_, (list, tuple, torch.Tensor)):
            raise ValueError("DiscriminatorTopK picks within one class: pass one class index or name")
        label = resolve_classes(self, class_, 1)  # validates the class; None for an unconditional generator
        m = math.ceil(n / self.keep - 1e-9)
        cand = self.generator.sample(m, class_, seed=seed, generator=generator, batch_size=batch_size,
                                     device=device, amp=amp)
        s = self.scores(cand, None if label is None else label.expand(m))
        order = torch.argsort(s, descending=True, stable=True)
        self.last_scores = s[order]  # every candidate's score of the last call, the kept n first
        picked = cand[order[:n]]
        return picked if output == "uint8" else uint8_to_gan(picked)
