"""What every generator and discriminator shares: attributes, the calling convention, and ``sample()``."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Sequence

import torch
from torch import nn

from ..data.transforms import gan_to_uint8

__all__ = ["GeneratorBase", "DiscriminatorBase", "resolve_classes"]

_SAMPLE_LOCK = threading.RLock()  # see GeneratorBase.sample


def _new_sample_lock() -> None:  # a forked DataLoader worker must not inherit a lock another thread held
    global _SAMPLE_LOCK
    _SAMPLE_LOCK = threading.RLock()


os.register_at_fork(after_in_child=_new_sample_lock)


class GeneratorBase(nn.Module):
    """``G(z, y)`` -> images in [-1, 1] of shape (N, channels, resolution, resolution).

    Subclasses set ``z_dim``, ``num_classes``, ``resolution`` and ``channels``. ``class_names`` is filled in
    when a generator is loaded from a file (or by the trainer), so ``sample`` accepts names as well as indices.
    """

    z_dim: int
    num_classes: int
    resolution: int
    channels: int
    class_names: list[str] | None = None
    arch: str = ""
    arch_args: dict = {}
    # a generator with noise inputs (per-pixel noise maps besides z) sets this and implements the two set_noise_*
    uses_noise: bool = False
    # arch_args a generator file may lack and still start this generator (``train.init_generator``):
    # {name: (value a file without it has, regex of the parameters the option adds, or None)}
    start_compatible_args: dict = {}

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def set_noise_seeds(self, seeds: list[int] | None) -> None:
        """Per-image seeds for the noise inputs during ``sample`` (``None``: back to the noise generator)."""

    def set_noise_generator(self, rng: torch.Generator | None) -> None:
        """The ``torch.Generator`` noise inputs are drawn from in training (``None``: the global RNG)."""

    def _check_inputs(self, z: torch.Tensor, y: torch.Tensor | None) -> None:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {tuple(z.shape)}")
        if self.conditional and y is None:
            raise ValueError("this generator is class-conditional: pass class indices y")
        if y is not None and y.is_floating_point() and (y.ndim != 2 or y.shape[1] != self.num_classes):
            raise ValueError(f"class weights y must have shape (N, {self.num_classes}), got {tuple(y.shape)}")
        if not self.conditional and y is not None:
            raise ValueError("this generator is unconditional: pass y=None")

    @torch.no_grad()
    def sample(
        self,
        n: int,
        class_: int | str | Sequence[int | str] | torch.Tensor | None = None,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        output: str = "uint8",
        amp: bool = False,
    ) -> torch.Tensor:
        """Draw ``n`` images of class ``class_`` (index, name, or one per image), in batches.

        Latents (and, for a generator with noise inputs, one noise seed per image) are drawn on the CPU from
        ``seed`` (or ``generator``), so the same seed gives the same images on any device and at any batch size.
        ``output="uint8"`` gives (N, C, H, W) uint8, ``"float"`` gives [-1, 1] floats. The
        network runs in eval mode (running BatchNorm statistics) and is put back in its previous mode.
        ``amp=True`` runs it under bf16 autocast on CUDA (faster; pixels may differ by a grey level or so).
        """
        if output not in ("uint8", "float"):
            raise ValueError(f"output must be 'uint8' or 'float', got {output!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(int(seed) if seed is not None else int(torch.seed() % (2**63)))
        labels = resolve_classes(self, class_, n)
        device = torch.device(device) if device is not None else next(self.parameters()).device
        z_all = torch.randn(n, self.z_dim, generator=generator)
        noise_seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist() if self.uses_noise else None
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda"
                    else contextlib.nullcontext())
        # The eval/train mode and the noise seeds are state on the modules for the duration of a call: one call at a
        # time (a threaded server such as `gan-augment serve` answers requests concurrently; the network itself
        # already uses every core, so little is lost).
        with _SAMPLE_LOCK:
            return self._sample_batches(z_all, labels, noise_seeds, batch_size, device, output, autocast)

    @torch.no_grad()
    def sample_between(self, n: int, class_a: int | str, class_b: int | str, weight_b: float | Sequence[float] |
                       torch.Tensor, *, seed: int | None = None, batch_size: int = 64,
                       device: str | torch.device | None = None, output: str = "uint8") -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
        """``n`` images conditioned *between* two classes: the class embeddings of every conditional layer mixed
        ``(1 - w) * class_a + w * class_b`` (one latent per image, like :meth:`sample`), and their class weights
        (N, K) - the mixed label a classifier trains them with (boundary samples). ``weight_b``: one weight or one
        per image, each in [0, 1]; 0 gives :meth:`sample`'s images of ``class_a`` for the same seed."""
        a, b = (int(resolve_classes(self, c, 1)[0]) for c in (class_a, class_b))
        w = torch.as_tensor(weight_b, dtype=torch.float32).flatten()
        w = w.expand(n) if w.numel() == 1 else w
        if len(w) != n or (w < 0).any() or (w > 1).any():
            raise ValueError(f"weight_b: one weight in [0, 1] or {n} of them")
        mix = torch.zeros(n, self.num_classes)
        mix[:, a] += 1 - w
        mix[:, b] += w
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % (2**63)))
        device = torch.device(device) if device is not None else next(self.parameters()).device
        z_all = torch.randn(n, self.z_dim, generator=generator)
        noise_seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist() if self.uses_noise else None
        with _SAMPLE_LOCK:
            images = self._sample_batches(z_all, mix, noise_seeds, batch_size, device, output,
                                          contextlib.nullcontext())
        return images, mix

    def _sample_batches(self, z_all, labels, noise_seeds, batch_size, device, output, autocast) -> torch.Tensor:
        n, outs = len(z_all), []
        was_training = self.training
        self.eval()
        try:
            for start in range(0, n, batch_size):
                z = z_all[start:start + batch_size].to(device, non_blocking=True)
                y = labels[start:start + batch_size].to(device, non_blocking=True) if labels is not None else None
                if noise_seeds is not None:
                    self.set_noise_seeds(noise_seeds[start:start + batch_size])
                with autocast:
                    x = self(z, y).float()
                outs.append(gan_to_uint8(x).cpu() if output == "uint8" else x.cpu())
        finally:
            self.train(was_training)
            if noise_seeds is not None:
                self.set_noise_seeds(None)
        if not outs:
            dtype = torch.uint8 if output == "uint8" else torch.float32
            return torch.empty(0, self.channels, self.resolution, self.resolution, dtype=dtype)
        return torch.cat(outs)


def resolve_classes(g: GeneratorBase, class_, n: int) -> torch.Tensor | None:
    """Class argument of ``sample`` -> a (n,) long tensor of indices (``None`` for unconditional)."""
    if not g.conditional:
        if class_ is not None:
            raise ValueError("this generator is unconditional; call sample() without class_")
        return None
    if class_ is None:
        raise ValueError(f"class-conditional generator: pass class_ (an index 0..{g.num_classes - 1}"
                         + (f" or a name in {g.class_names}" if g.class_names else "") + ")")

    def one(c) -> int:
        if isinstance(c, str):
            if not g.class_names or c not in g.class_names:
                raise ValueError(f"unknown class {c!r}; classes are {g.class_names}")
            return g.class_names.index(c)
        c = int(c)
        if not 0 <= c < g.num_classes:
            raise ValueError(f"class index {c} out of range 0..{g.num_classes - 1}")
        return c

    if isinstance(class_, torch.Tensor):
        class_ = class_.tolist()
    if isinstance(class_, (list, tuple)):
        if len(class_) != n:
            raise ValueError(f"got {len(class_)} classes for {n} images")
        return torch.tensor([one(c) for c in class_], dtype=torch.long)
    return torch.full((n,), one(class_), dtype=torch.long)


class DiscriminatorBase(nn.Module):
    """``D(x, y)`` -> logits of shape (N,); ``y`` are class indices, ``None`` when unconditional."""

    num_classes: int
    resolution: int
    channels: int
    arch: str = ""
    arch_args: dict = {}

    def _check_inputs(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if x.ndim != 4 or x.shape[1] != self.channels or x.shape[-1] != self.resolution:
            raise ValueError(f"D expects (N, {self.channels}, {self.resolution}, {self.resolution}), "
                             f"got {tuple(x.shape)}")
        if self.num_classes > 0 and y is None:
            raise ValueError("this discriminator is class-conditional: pass class indices y")
