"""Differentiable augmentation for data-efficient GAN training.

DiffAugment (Zhao et al. 2020): the *same* random colour / translation / cutout transforms are applied to real
and generated images before D, and gradients flow through them to G, so D cannot overfit a few dozen images
and G never learns to produce the augmentations (they are applied only on the way into D, never to samples).
Each op is applied per image with probability ``p``; :class:`AdaptiveAugment` tunes ``p`` from D's overfitting
signal r_t = E[sign(D(real))] towards a target (Karras et al. 2020, "ADA" heuristic).

Randomness comes from the augmenter's own ``torch.Generator`` (per device), saved and restored with
checkpoints, so resumed runs replay the same augmentations.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .distributed import draw_for_shard, get_info

__all__ = ["DiffAugment", "AdaptiveAugment", "AUGMENT_OPS"]

AUGMENT_OPS = ("color", "translation", "cutout")
PADDINGS = ("zeros", "reflection", "border")


class DiffAugment:
    """Differentiable colour / translation / cutout augmentation of (N, C, H, W) images in [-1, 1].

    Args:
        policy: comma-separated subset of ``color,translation,cutout`` ("" or "none" = identity).
        p: probability that each op is applied to each image (1.0 = always, as in DiffAugment).
        translation: maximum shift as a fraction of the image size (DiffAugment: 1/8).
        cutout: side of the cut-out square as a fraction of the image size (DiffAugment: 1/2).
        padding: how translation fills the uncovered border: ``"reflection"`` (default; zero padding leaves
            a hard frame that D can key on), ``"zeros"`` (DiffAugment's original) or ``"border"``.
        seed: seed of the augmenter's private generator.
    """

    def __init__(self, policy: str = "color,translation,cutout", *, p: float = 1.0, translation: float = 0.125,
                 cutout: float = 0.5, padding: str = "reflection", seed: int = 0):
        ops = [o.strip() for o in policy.split(",") if o.strip() and o.strip() != "none"]
        unknown = [o for o in ops if o not in AUGMENT_OPS]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown}; choose from {list(AUGMENT_OPS)}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.ops = ops
        self.p = float(p)
        self.translation = translation
        self.cutout_ratio = cutout
        self.padding = padding
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        # (rank, world size) under torchrun: each rank augments its slice of the global batch with the random
        # draws a single process would make for that slice, so sharding does not change the augmentation.
        self.shard: tuple[int, int] = (0, 1)

    # ------------------------------------------------------------------------------------------- RNG
    @staticmethod
    def _key(device: torch.device) -> str:
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # "cuda" names the tensors' "cuda:<current>"
            device = torch.device("cuda", torch.cuda.current_device())
        return str(device)

    def _gen(self, device: torch.device) -> torch.Generator:
        key = self._key(device)
        if key not in self._generators:
            g = torch.Generator(device=key)
            g.manual_seed(self.seed)
            self._generators[key] = g
        return self._generators[key]

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "rng": {k: g.get_state() for k, g in self._generators.items()}}

    def load_state_dict(self, state: dict[str, Any], *, device: torch.device | str | None = None,
                        reseed: int | None = None) -> None:
        """Restore ``p`` and the random streams. With ``device``, streams saved on another kind of device (a run
        moving between a GPU node and a CPU machine) are dropped, and ``reseed`` seeds the one for ``device``."""
        self.p = float(state["p"])
        for key, s in state.get("rng", {}).items():
            if device is not None and torch.device(key).type != torch.device(device).type:
                continue
            self._gen(torch.device(key)).set_state(s)
        if device is not None and reseed is not None:
            self._gen(torch.device(device)).manual_seed(reseed)

    # ------------------------------------------------------------------------------------------- ops
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.ops or self.p <= 0.0:
            return x
        g = self._gen(x.device)
        for op in self.ops:
            fn = getattr(self, f"_{op}")
            out = fn(x, g)
            if self.p < 1.0:
                keep = self._draw(torch.rand, x, (1, 1, 1), g) < self.p
                out = torch.where(keep, out, x)
            x = out
        return x

    def _draw(self, fn, x: torch.Tensor, tail: tuple[int, ...], g: torch.Generator, *args) -> torch.Tensor:
        """One draw per image of ``x``, made for the global batch under torchrun (see ``draw_for_shard``)."""
        return draw_for_shard(fn, x.shape[0], tail, *args, shard=self.shard, generator=g, device=x.device)

    def _rand(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self._draw(torch.rand, x, (1, 1, 1), g).to(x.dtype)

    def _color(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = x + (self._rand(x, g) - 0.5)  # brightness
        mean_c = x.mean(dim=1, keepdim=True)
        x = (x - mean_c) * (self._rand(x, g) * 2) + mean_c  # saturation (identity for 1 channel)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._rand(x, g) + 0.5) + mean  # contrast

    def _translation(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        max_dy, max_dx = int(h * self.translation + 0.5), int(w * self.translation + 0.5)
        dy = self._draw(torch.randint, x, (), g, -max_dy, max_dy + 1)
        dx = self._draw(torch.randint, x, (), g, -max_dx, max_dx + 1)
        # Integer shift via grid_sample at exact pixel centres (nearest) so the padding mode is selectable.
        ys = (torch.arange(h, device=x.device).view(1, h, 1) - dy.view(n, 1, 1)).float()
        xs = (torch.arange(w, device=x.device).view(1, 1, w) - dx.view(n, 1, 1)).float()
        gx, gy = torch.broadcast_tensors((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1)  # (n, h, w) each
        grid = torch.stack([gx, gy], dim=-1)
        return F.grid_sample(x, grid.to(x.dtype), mode="nearest", padding_mode=self.padding, align_corners=False)

    def _cutout(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        ch, cw = int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5)
        cy = self._draw(torch.randint, x, (1, 1), g, 0, h + (1 - ch % 2))
        cx = self._draw(torch.randint, x, (1, 1), g, 0, w + (1 - cw % 2))
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        inside = ((ys - cy).abs() * 2 < ch) & ((xs - cx).abs() * 2 < cw)
        return x * (~inside).unsqueeze(1).to(x.dtype)


class AdaptiveAugment:
    """Adjust ``augment.p`` every ``interval`` D steps from r_t = E[sign(D(real) - threshold)].

    If r_t > target, D is getting too sure about the training images (overfitting): raise p; else lower it.
    The step size lets p move from 0 to 1 in ``speed_kimg`` thousand real images (Karras et al. 2020 use 500;
    our small data sets and short runs use 100 by default). A discriminator with many logits per image (the
    projected D scores every position of every scale) gives each logit a vote in r_t, but the step is sized by
    the number of *images*: before, it counted logits, so with the 64 px projected D (hundreds of positions per
    image) p could swing from 0 to 1 within a few D steps.
    """

    def __init__(self, augment: DiffAugment, *, target: float = 0.6, interval: int = 4, speed_kimg: float = 100.0,
                 threshold: float = 0.0):
        self.augment = augment
        self.target, self.interval, self.speed_kimg, self.threshold = target, interval, speed_kimg, threshold
        self._sum: torch.Tensor | None = None
        self._count = 0  # logits (votes)
        self._images = 0
        self._calls = 0
        self.last_rt: float | None = None

    def accumulate(self, real_logits: torch.Tensor) -> None:
        s = torch.sign(real_logits.detach().float() - self.threshold).sum()
        self._sum = s if self._sum is None else self._sum + s
        self._count += real_logits.numel()  # (N,) or (N, K) logits: every logit casts a vote
        self._images += real_logits.shape[0] if real_logits.dim() else 1
        self._calls += 1
        if self._calls % self.interval == 0:
            self._adjust()

    def _adjust(self) -> None:
        # One sync per interval, not per step; under torchrun the sign sum and count cover every rank's images.
        total = torch.stack([self._sum.float(), torch.tensor(float(self._count), device=self._sum.device),
                             torch.tensor(float(self._images), device=self._sum.device)])
        if get_info().enabled:
            torch.distributed.all_reduce(total)
        s, count, images = total.tolist()
        rt = s / max(count, 1.0)
        step = images / (self.speed_kimg * 1000.0)
        self.augment.p = float(min(max(self.augment.p + (step if rt > self.target else -step), 0.0), 1.0))
        self.last_rt = rt
        self._sum, self._count, self._images = None, 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"sum": 0.0 if self._sum is None else float(self._sum.item()), "count": self._count,
                "images": self._images, "calls": self._calls, "last_rt": self.last_rt}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._count, self._calls, self.last_rt = int(state["count"]), int(state["calls"]), state["last_rt"]
        # a checkpoint written before images were counted separately counted one logit per image
        self._images = int(state.get("images", state["count"]))
        self._sum = torch.tensor(float(state["sum"])) if self._count else None
