"""Training a 2x upsampler on real image pairs, resumable and stopped by CPU or wall time (the cascade's second stage).

The pairs are the same training images prepared at the generator's resolution (``small``) and at twice it
(``large``), both by the data pipeline's own resize, so the upsampler's input looks like what the generator learnt
to make. Each step draws a batch, a random crop at the same place in both (the networks are fully convolutional:
crops make a CPU step cheap without changing what is learnt) and one of the eight flips / quarter turns, all from
``(seed, step)`` alone: a resumed run sees exactly the batches an uninterrupted one would.

Objective: ``rec_weight * L1(up(small), large)`` plus the hinge loss of a conditional patch discriminator
(:class:`~gan_augment.models.cascade.PatchDiscriminator`), as in pix2pix (Isola et al. 2017). Checkpoints are
tensors and plain containers, written atomically and read back with ``weights_only=True``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .._io import atomic_path
from ..losses import HingeLoss
from ..models.cascade import PatchDiscriminator, Upsampler2x

__all__ = ["UpsamplerConfig", "UpsamplerTrainer", "UPSAMPLER_CHECKPOINT_FORMAT"]

UPSAMPLER_CHECKPOINT_FORMAT = "gan-augment-upsampler-checkpoint"


@dataclass
class UpsamplerConfig:
    """What an upsampler run is; a resume must match it (``steps`` aside)."""

    width: int = 32  # Upsampler2x width / residual blocks
    blocks: int = 4
    d_width: int = 32  # PatchDiscriminator width / stride-2 layers
    d_layers: int = 3
    batch_size: int = 16
    crop: int | None = 64  # side of the large crop (None: whole images); even, at most the large size
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # pix2pix's Adam
    rec_weight: float = 100.0  # L1 in [-1, 1] units against the adversarial term: pix2pix's lambda_L1 (Isola et al.)
    adv_weight: float = 1.0  # 0 trains by reconstruction alone (sharp on average, blurry in detail)
    seed: int = 0


class UpsamplerTrainer:
    """Train :class:`Upsampler2x` on ``small`` -> ``large`` pairs (uint8 tensors (N, C, r, r) and (N, C, 2r, 2r))."""

    def __init__(self, small: torch.Tensor, large: torch.Tensor, cfg: UpsamplerConfig | None = None, *,
                 device: str | torch.device = "cpu"):
        cfg = cfg or UpsamplerConfig()
        if small.dtype != torch.uint8 or large.dtype != torch.uint8:
            raise ValueError("small and large must be uint8 image tensors (N, C, H, W)")
        if small.ndim != 4 or large.ndim != 4 or len(small) != len(large) or len(small) == 0:
            raise ValueError(f"small {tuple(small.shape)} and large {tuple(large.shape)} must be (N, C, H, W) "
                             "with the same N > 0")
        if large.shape[1] != small.shape[1] or large.shape[-2:] != torch.Size([2 * s for s in small.shape[-2:]]):
            raise ValueError(f"large {tuple(large.shape)} must be small {tuple(small.shape)} at twice the size")
        side = large.shape[-1]
        if cfg.crop is not None and (cfg.crop % 2 or not 8 <= cfg.crop <= min(large.shape[-2:])):
            raise ValueError(f"crop must be even, >= 8 and at most the large images' {side} px, got {cfg.crop}")
        self.cfg, self.small, self.large, self.device = cfg, small, large, torch.device(device)
        with torch.random.fork_rng(devices=[]):  # initial weights from the seed, the caller's global RNG untouched
            torch.manual_seed(cfg.seed)
            self.up = Upsampler2x(channels=small.shape[1], width=cfg.width, blocks=cfg.blocks)
            self.D = PatchDiscriminator(channels=small.shape[1], width=cfg.d_width, layers=cfg.d_layers)
        self.up.to(self.device)
        self.D.to(self.device)
        self.opt_g = torch.optim.Adam(self.up.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.loss = HingeLoss()
        self.step, self.cpu_s = 0, 0.0
        self.log: list[dict[str, float]] = []

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (small, large) batch of ``step`` in [-1, 1]: a pure function of ``(seed, step)``."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, len(self.small), (self.cfg.batch_size,), generator=g)
        s, l = self.small[idx].float() / 127.5 - 1, self.large[idx].float() / 127.5 - 1
        if self.cfg.crop is not None:
            c = self.cfg.crop // 2
            top = int(torch.randint(0, s.shape[-2] - c + 1, (1,), generator=g))
            left = int(torch.randint(0, s.shape[-1] - c + 1, (1,), generator=g))
            s = s[..., top:top + c, left:left + c]
            l = l[..., 2 * top:2 * (top + c), 2 * left:2 * (left + c)]
        k, flip = int(torch.randint(0, 4, (1,), generator=g)), bool(torch.randint(0, 2, (1,), generator=g))
        s, l = torch.rot90(s, k, (-2, -1)), torch.rot90(l, k, (-2, -1))
        if flip:
            s, l = s.flip(-1), l.flip(-1)
        return s.contiguous().to(self.device), l.contiguous().to(self.device)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One D and one upsampler update; the losses, detached (read them only when logging: no device sync)."""
        small, large = self.batch(self.step)
        fake = self.up(small)
        record: dict[str, torch.Tensor] = {}
        if self.cfg.adv_weight > 0:
            self.opt_d.zero_grad(set_to_none=True)
            d_loss = self.loss.d_loss(self.D(large, small), self.D(fake.detach(), small))
            d_loss.backward()
            self.opt_d.step()
            record["d_loss"] = d_loss.detach()
        self.opt_g.zero_grad(set_to_none=True)
        rec = F.l1_loss(fake, large)
        g_loss = self.cfg.rec_weight * rec
        if self.cfg.adv_weight > 0:
            self.D.requires_grad_(False)  # the upsampler's step needs gradients through D, not for it
            adv = self.loss.g_loss(self.D(fake, small))
            self.D.requires_grad_(True)
            g_loss = g_loss + self.cfg.adv_weight * adv
            record["adv"] = adv.detach()
        g_loss.backward()
        self.opt_g.step()
        record["l1"] = rec.detach()
        self.step += 1
        return record

    def train(self, steps: int, *, cpu_limit_s: float | None = None, deadline: float | None = None,
              log_every: int = 50, on_log: Callable[[dict[str, float]], None] | None = None) -> str:
        """Train until ``steps`` in all, ``cpu_limit_s`` of this process's CPU time in all (resumes count theirs) or
        the ``time.monotonic()`` ``deadline``; returns which of ``"steps"``, ``"cpu"``, ``"deadline"`` stopped it."""
        self.up.train()
        self.D.train()
        while True:
            if self.step >= steps:
                return "steps"
            if cpu_limit_s is not None and self.cpu_s >= cpu_limit_s:
                return "cpu"
            if deadline is not None and time.monotonic() >= deadline:
                return "deadline"
            t0, step = time.process_time(), self.step
            losses = self.train_step()
            self.cpu_s += time.process_time() - t0
            if step % log_every == 0:
                record = {"step": step, **{k: round(float(v), 5) for k, v in losses.items()},
                          "cpu_s": round(self.cpu_s, 2)}
                self.log.append(record)
                if on_log is not None:
                    on_log(record)

    @torch.no_grad()
    def evaluate_l1(self, small: torch.Tensor, large: torch.Tensor, batch_size: int = 32) -> dict[str, float]:
        """Mean absolute error (grey levels, 0-255) of the upsampler and of bicubic upsampling on held-out pairs."""
        self.up.eval()
        try:
            err, bic = 0.0, 0.0
            for i in range(0, len(small), batch_size):
                s, l = (t[i:i + batch_size].to(self.device).float() / 127.5 - 1 for t in (small, large))
                err += float((self.up(s) - l).abs().sum())
                bic += float((F.interpolate(s, scale_factor=2, mode="bicubic", align_corners=False).clamp(-1, 1)
                              - l).abs().sum())
        finally:
            self.up.train()
        n = large.numel()
        return {"l1_grey_levels": 127.5 * err / n, "bicubic_l1_grey_levels": 127.5 * bic / n}

    def state(self) -> dict[str, Any]:
        return {"format": UPSAMPLER_CHECKPOINT_FORMAT, "config": asdict(self.cfg), "step": self.step,
                "cpu_s": self.cpu_s, "up": self.up.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "log": self.log}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(self.state(), tmp)
        return path

    def load(self, path: str | Path) -> None:
        """Resume from a checkpoint of the same configuration (``weights_only=True``: no pickled code runs)."""
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise ValueError(f"cannot load upsampler checkpoint {path} safely (weights_only=True): {exc}") from None
        if not isinstance(state, dict) or state.get("format") != UPSAMPLER_CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a gan-augment upsampler checkpoint")
        mine = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.cfg).items()}
        theirs = {k: list(v) if isinstance(v, tuple) else v for k, v in state["config"].items()}
        if mine != theirs:
            diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise ValueError(f"{path} was trained with another configuration; differing keys: {diff}")
        self.up.load_state_dict(state["up"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step, self.cpu_s, self.log = int(state["step"]), float(state["cpu_s"]), list(state["log"])
