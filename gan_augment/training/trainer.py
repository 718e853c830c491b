"""The GAN training loop: D phase, G phase, EMA, logging, checkpoints, resume.

The loop knows no file formats beyond its own checkpoints (``torch.save`` of tensors and plain containers,
loaded back with ``weights_only=True``) and no architecture or objective: those come from the registry and
``losses``. On CPU, training 2N steps straight or N steps + kill + resume gives bit-identical weights: every
random draw comes from a generator whose state is checkpointed, and the data order is a pure function of the
number of batches consumed.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import __version__
from .. import distributed as gdist
from .._io import atomic_path, write_json, write_text
from ..augment import AdaptiveAugment, DiffAugment
from ..data.transforms import gan_to_uint8, uint8_to_gan
from ..generators import CHECKPOINT_FORMAT, load_checkpoint_file, save_generator
from ..losses import GANLoss, LeCam, create_loss, r1_penalty
from ..models import create_discriminator, create_generator
from ..models.layers import ConditionScaleMixin, set_condition_scale
from ..plots import plot_training_curves, save_class_grid, save_image_grid
from .config import GANConfig
from .data import GANData, IndexStream, prepare_gan_data

__all__ = ["Trainer", "TrainResult", "TrainingDiverged", "resolve_device", "train"]

# Config keys that may change between a run and its resume; anything else must match the checkpoint.
RESUMABLE_CHANGES = {
    "out", "train.steps", "train.epochs", "train.time_limit_minutes", "train.progress", "train.tensorboard",
    "train.device", "train.log_every", "train.cpu_time_limit_minutes", "train.sample_every", "train.checkpoint_every", "train.keep_last",
    "train.samples_per_class", "train.compile", "data.num_workers", "data.cache", "data.cache_on_device",
    "data.manifest", "data.metadata", "data.image_dir", "data.image_folder", "data.medmnist",
}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


@dataclass
class TrainResult:
    step: int
    finished: bool  # False when stopped by the time limit (resume to continue)
    generator_path: Path
    checkpoint_path: Path | None
    images_per_second: float
    log_path: Path


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return device


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class Trainer:
    """Train a (class-conditional) GAN from a :class:`GANConfig`; ``fit()`` runs until ``train.steps``.

    Under ``torchrun --nproc_per_node N`` each process takes a contiguous 1/N of every global batch
    (``train.batch_size`` stays the global batch), with the latents and augmentation draws a single process would
    use for those rows; gradients are averaged across processes after each backward (see
    :mod:`gan_augment.distributed`), so the ranks hold identical weights and, BatchNorm statistics aside
    (``train.sync_batchnorm`` on CUDA), the run follows the single-process one. Rank 0 alone logs, samples and
    checkpoints; checkpoints hold no per-rank state, so a run resumes under any number of processes.
    """

    def __init__(self, config: GANConfig, *, resume: bool = False):
        self.cfg = config
        tc = config.train
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir = self.out / "checkpoints"
        self.sample_dir = self.out / "samples"
        self.log_path = self.out / "log.jsonl"
        resolve_device(tc.device)  # validates the name with a clear message
        self.dist, self.device = gdist.init_from_env(tc.device)
        self.main = self.dist.is_main
        self.is_cuda = self.device.type == "cuda"
        self.verbose = tc.progress and self.main
        self._shard = gdist.shard_bounds(tc.batch_size, self.dist)
        if self.is_cuda:
            torch.backends.cudnn.benchmark = True

        resume_state = self._find_resume_state() if resume else None
        with gdist.main_first():  # rank 0 writes the split manifest, the others then read the same data
            self.data: GANData = prepare_gan_data(config.data, config.model.resolution, self.out,
                                                  verbose=self.verbose)
        if resume_state is not None and resume_state["manifest_hash"] != self.data.manifest.hash:
            raise ValueError(f"cannot resume: the checkpoint was trained on manifest {resume_state['manifest_hash'][:12]}"
                             f" but the config now gives {self.data.manifest.short_hash}")
        self.class_names = self.data.class_names
        self.num_classes = len(self.class_names) if config.model.conditional else 0
        self._build_models()
        self.loss: GANLoss = self._build_loss()
        lc = config.loss
        self.lecam = LeCam(lc.lecam_lambda, decay=lc.lecam_decay) if lc.lecam_lambda > 0 else None
        ac = config.augment
        self.augment = DiffAugment(ac.policy, p=ac.p, translation=ac.translation, cutout=ac.cutout,
                                   padding=ac.padding, seed=tc.seed + 2)
        self.augment.shard = (self.dist.rank, self.dist.world_size)
        self.ada = (AdaptiveAugment(self.augment, target=ac.target, interval=ac.interval, speed_kimg=ac.speed_kimg,
                                    threshold=self.loss.threshold) if ac.adaptive else None)
        self.z_gen = torch.Generator(device=self.device)
        self.z_gen.manual_seed(tc.seed + 1)
        self.stream = IndexStream(self.data.labels, tc.batch_size, class_balance=config.data.class_balance,
                                  seed=tc.seed)
        self.total_steps = self._total_steps()
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.is_cuda and tc.amp
                         else contextlib.nullcontext())
        self.step = 0
        self.batches_consumed = 0
        self.d_steps = 0
        self.elapsed_s = 0.0
        self.cpu_s = 0.0  # process CPU time of the training loop, over all runs of this training
        self._fixed = self._fixed_latents()
        self._label_tensor = torch.tensor(self.data.labels, dtype=torch.long)
        self._images = None
        if self.data.dataset.cached:
            self._images = torch.from_numpy(self.data.dataset.uint8_array()).permute(0, 3, 1, 2).contiguous()
            self._images = self._maybe_to_device(self._images)
        self._chance_history: deque = deque(maxlen=max(1, math.ceil(tc.chance_window / max(tc.log_every * tc.n_dis, 1))))
        self._chance_warned = False
        self._reset_stats()
        if resume_state is not None:
            self._restore(resume_state)
        elif self.ckpt_dir.exists() and any(self.ckpt_dir.glob("ckpt_*.pt")):
            raise ValueError(f"{self.out} already holds a run; pass --resume to continue it or choose another out")
        elif self.log_path.exists() and self.main:
            self.log_path.unlink()  # a run that died before its first checkpoint: start the log afresh

    def _maybe_to_device(self, images: torch.Tensor) -> torch.Tensor:
        """Move the uint8 cache to the GPU when it fits in a quarter of the free memory (no per-step copies)."""
        if not (self.is_cuda and self.cfg.data.cache_on_device):
            return images
        free, _ = torch.cuda.mem_get_info(self.device)
        if images.numel() > free // 4:
            if self.verbose:
                print(f"image cache ({images.numel() / 2**30:.1f} GiB) kept in host memory: it would take more "
                      f"than a quarter of the {free / 2**30:.1f} GiB free on {self.device}", file=sys.stderr)
            return images
        self._label_tensor = self._label_tensor.to(self.device)
        return images.to(self.device)

    # ------------------------------------------------------------------------------------------ setup
    def _build_models(self) -> None:
        mc, tc = self.cfg.model, self.cfg.train
        g_kwargs: dict[str, Any] = dict(z_dim=mc.z_dim, base_channels=mc.g_channels)
        d_kwargs: dict[str, Any] = dict(base_channels=mc.d_channels)
        if mc.generator != "fastgan":  # fastgan's widths per resolution are fixed multiples of base_channels
            g_kwargs["max_mult"] = mc.max_mult
        if mc.generator == "resnet":
            g_kwargs["spectral_norm"] = mc.g_spectral_norm
        if mc.discriminator in ("dcgan", "sngan", "resnet"):
            d_kwargs["max_mult"] = mc.max_mult
        if mc.discriminator in ("dcgan", "sngan"):
            d_kwargs["batch_norm"] = mc.d_batch_norm
        if mc.discriminator == "projected":
            d_kwargs["pretrained"] = mc.d_pretrained
        common = dict(resolution=mc.resolution, num_classes=self.num_classes, channels=self.cfg.data.channels)
        # Initialise from the config seed without disturbing the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tc.seed)
            self.G = create_generator(mc.generator, **common, **g_kwargs)
            self.D = create_discriminator(mc.discriminator, **common, **d_kwargs)
        # an unconditional G trained on one class is that class's generator; on several, it names none
        self.G.class_names = self.class_names if (self.num_classes or len(self.class_names) == 1) else None
        fmt = torch.channels_last if (self.is_cuda and tc.channels_last) else torch.contiguous_format
        self.memory_format = fmt
        if self.dist.enabled and tc.sync_batchnorm:
            if self.is_cuda:
                self.G = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
                self.D = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
            elif self.main:  # torch's SyncBatchNorm has no CPU kernel
                print("train.sync_batchnorm needs CUDA; BatchNorm uses each process's share of the batch",
                      file=sys.stderr)
        if mc.cond_transition is not None:
            self._check_transition(mc.cond_transition)
        self.G.to(self.device, memory_format=fmt)
        self.D.to(self.device, memory_format=fmt)
        # What the training steps call: the modules themselves or G's compiled form (same parameters). D stays
        # eager: spectral norm updates its power-iteration vectors in place between D's two forwards of a step,
        # which the compiled backward rejects (measured on torch 2.14: "modified by an inplace operation").
        self.G_step = torch.compile(self.G) if tc.compile else self.G
        self.D_step = self.D
        self.ema = (ModelEmaV3(self.G, decay=tc.ema_decay, update_after_step=tc.ema_start, exclude_buffers=True)
                    if tc.ema_decay > 0 else None)
        betas = tuple(tc.betas)
        if len(betas) != 2:
            raise ValueError(f"train.betas needs two numbers, got {tc.betas}")
        fused = {"fused": True} if self.is_cuda else {}  # one kernel per step on CUDA; CPU keeps the default
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=tc.lr_g, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=tc.lr_d, betas=betas, **fused)

    def _check_transition(self, transition: list[int]) -> None:
        mc = self.cfg.model
        if len(transition) != 2 or not 0 <= transition[0] <= transition[1]:
            raise ValueError(f"model.cond_transition must be [start, end] G steps with 0 <= start <= end, got "
                             f"{transition}")
        if not self.num_classes:
            raise ValueError("model.cond_transition needs a class-conditional GAN (model.conditional: true)")
        unsupported = [name for name, net in (("generator", self.G), ("discriminator", self.D))
                       if not isinstance(net, ConditionScaleMixin)]
        if unsupported:
            raise ValueError(f"model.cond_transition: {', '.join(f'{k} {getattr(mc, k)!r}' for k in unsupported)} "
                             "cannot blend the class in; use generator 'fastgan' and discriminator 'projected'")

    def condition_scale(self, step: int) -> float:
        """Weight of the class in G and D at G step ``step`` (1 unless ``model.cond_transition`` ramps it)."""
        tr = self.cfg.model.cond_transition
        if tr is None:
            return 1.0
        start, end = tr
        if step < start:
            return 0.0
        return 1.0 if step >= end else (step - start) / (end - start)

    def _apply_condition_scale(self) -> None:
        if self.cfg.model.cond_transition is None:
            return
        value = self.condition_scale(self.step)
        for net in (self.G, self.D, self.ema.module if self.ema is not None else None):
            if net is not None:
                set_condition_scale(net, value)

    def _build_loss(self) -> GANLoss:
        lc = self.cfg.loss
        kwargs = {"wgan": {"clip": lc.clip}, "wgan-gp": {"gp_lambda": lc.gp_lambda}}.get(
            lc.name.lower().replace("_", "-"), {})
        return create_loss(lc.name, **kwargs)

    def _total_steps(self) -> int:
        tc = self.cfg.train
        if tc.epochs is not None:
            per_epoch = math.ceil(len(self.data.labels) / (tc.batch_size * tc.n_dis))
            return max(1, int(round(tc.epochs * per_epoch)))
        return tc.steps

    def _fixed_latents(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        g = torch.Generator()
        g.manual_seed(self.cfg.train.seed + 3)
        k = self.cfg.train.samples_per_class
        rows = self.num_classes or k  # one row per class; a k x k grid when unconditional
        z = torch.randn(rows * k, self.G.z_dim, generator=g)
        y = torch.arange(self.num_classes).repeat_interleave(k) if self.num_classes else None
        return z, y

    # ------------------------------------------------------------------------------------------ data
    def _batch_iter(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images in [-1, 1], labels) on the device, starting after the consumed batches."""
        nb = self.cfg.data.num_workers
        lo, hi = self._shard  # this process's rows of each global batch
        shards = (idx[lo:hi] for idx in self.stream.batches(self.batches_consumed))
        if self._images is not None:
            for idx in shards:
                if self._images.is_cuda:  # GPU-resident cache: index on the device
                    idx = idx.to(self.device, non_blocking=True)
                    yield self._to_model_input(self._images[idx]), self._label_tensor[idx]
                    continue
                x = self._images[idx]
                if self.is_cuda:
                    x = x.pin_memory().to(self.device, non_blocking=True)
                yield self._to_model_input(x), self._label_tensor[idx].to(self.device, non_blocking=True)
        else:
            loader = DataLoader(self.data.dataset, batch_sampler=shards,
                                num_workers=nb, pin_memory=self.is_cuda, persistent_workers=nb > 0)
            for x, y in loader:
                yield self._to_model_input(x.to(self.device, non_blocking=True)), y.to(self.device)

    def _to_model_input(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return uint8_to_gan(x_uint8).contiguous(memory_format=self.memory_format)

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.num_classes else None

    def _latents(self) -> torch.Tensor:
        """This process's rows of a global batch of latents (every rank draws the same global batch)."""
        lo, hi = self._shard
        return gdist.draw_for_shard(torch.randn, hi - lo, (self.G.z_dim,), generator=self.z_gen, device=self.device,
                                    shard=(self.dist.rank, self.dist.world_size))

    # ------------------------------------------------------------------------------------------ phases
    def _d_step(self, real: torch.Tensor, y_real: torch.Tensor) -> None:
        """One discriminator update on a real batch and a fake batch of the same classes."""
        y = self._labels(y_real)
        z = self._latents()
        with torch.no_grad(), self.autocast:
            fake = self.G_step(z, y)
        lc = self.cfg.loss
        with self.autocast:
            real_aug, fake_aug = self.augment(real), self.augment(fake)
            real_logits = self.D_step(real_aug, y).float()
            fake_logits = self.D_step(fake_aug, y).float()
            loss = self.loss.d_loss(real_logits, fake_logits)
            penalty = self.loss.d_penalty(self.D, real_aug, fake_aug, y, generator=self.z_gen,
                                          shard=(self.dist.rank, self.dist.world_size))
            if lc.r1_gamma > 0 and self.d_steps % lc.r1_every == 0:
                r1 = r1_penalty(self.D, real_aug, y, lc.r1_gamma * lc.r1_every)
                penalty = r1 if penalty is None else penalty + r1
            if self.lecam is not None:
                reg = self.lecam(real_logits, fake_logits)
                penalty = reg if penalty is None else penalty + reg
        total = loss if penalty is None else loss + penalty
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        gdist.all_reduce_gradients(self.D.parameters())
        self.opt_d.step()
        self.loss.after_d_step(self.D)
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        real_acc, fake_acc = self.loss.d_accuracy(real_logits.detach(), fake_logits.detach())
        s = self._stats
        s["d_loss"] += loss.detach()
        s["penalty"] += penalty.detach().float() if penalty is not None else 0.0
        s["d_real_acc"] += real_acc
        s["d_fake_acc"] += fake_acc
        s["real_logit"] += real_logits.detach().mean()
        s["fake_logit"] += fake_logits.detach().mean()
        s["n_d"] += 1
        self.d_steps += 1

    def _g_step(self, y_real: torch.Tensor) -> None:
        """One generator update against the current D (fake classes follow the real batch's classes)."""
        y = self._labels(y_real)
        z = self._latents()
        for p in self.D.parameters():
            p.requires_grad_(False)
        with self.autocast:
            fake_logits = self.D_step(self.augment(self.G_step(z, y)), y).float()
            loss = self.loss.g_loss(fake_logits)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        gdist.all_reduce_gradients(self.G.parameters())
        self.opt_g.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        self._stats["g_loss"] += loss.detach()
        self._stats["n_g"] += 1

    # ------------------------------------------------------------------------------------------ loop
    def fit(self) -> TrainResult:
        tc = self.cfg.train
        if self.main:
            self.cfg.save(self.out / "config.yaml")
        writer = self._tensorboard() if self.main else None
        limit_s = tc.time_limit_minutes * 60 if tc.time_limit_minutes else None
        t_start = time.monotonic()
        t_window, imgs_window = time.monotonic(), 0
        cpu_window = time.process_time()
        cpu_limit_s = tc.cpu_time_limit_minutes * 60 if tc.cpu_time_limit_minutes else None
        self._run_images = 0
        batches = self._batch_iter()
        pbar = tqdm(total=self.total_steps, initial=self.step, disable=not self.verbose, desc="train GAN",
                    unit="step", dynamic_ncols=True)
        finished = True
        last_ckpt: Path | None = None
        try:
            while self.step < self.total_steps:
                self._apply_condition_scale()
                y_last = None
                for _ in range(tc.n_dis):
                    real, y_last = next(batches)
                    self.batches_consumed += 1
                    self._d_step(real, y_last)
                self._g_step(y_last)
                self.step += 1
                if self.ema is not None:
                    self.ema.update(self.G, step=self.step)
                imgs_window += tc.batch_size * tc.n_dis
                logged = self.step % tc.log_every == 0 or self.step == self.total_steps
                if logged:
                    now = time.monotonic()
                    ips = imgs_window / max(now - t_window, 1e-9)
                    self._run_images += imgs_window
                    self.elapsed_s += now - t_window
                    cpu_now = time.process_time()
                    self.cpu_s += cpu_now - cpu_window
                    t_window, imgs_window, cpu_window = now, 0, cpu_now
                    record = self._flush_stats(ips)
                    self._write_log(record, writer)
                    pbar.set_postfix({"img/s": f"{ips:.0f}", "D": f"{record['d_loss']:.3f}",
                                      "G": f"{record['g_loss']:.3f}", "acc": f"{record['d_acc']:.2f}",
                                      "p": f"{record['aug_p']:.2f}"})
                pbar.update(1)
                if self.step % tc.sample_every == 0:
                    self._save_samples(writer)
                if self.step % tc.checkpoint_every == 0:
                    last_ckpt = self._checkpoint()
                over = limit_s is not None and time.monotonic() - t_start > limit_s and self.step < self.total_steps
                # the CPU budget is checked at log steps, where cpu_s is brought up to date
                over = over or (logged and cpu_limit_s is not None and self.cpu_s >= cpu_limit_s
                                and self.step < self.total_steps)
                if self.dist.enabled:  # all ranks must stop together: agree at log steps (one sync, no per-step)
                    over = gdist.broadcast_flag(over, self.device) if logged else False
                if over:
                    finished = False
                    if self.main:
                        what = (f"time limit of {tc.time_limit_minutes} min" if limit_s is not None and
                                time.monotonic() - t_start > limit_s else
                                f"CPU-time limit of {tc.cpu_time_limit_minutes} min")
                        tqdm.write(f"{what} reached at step {self.step}; "
                                   "checkpointing - rerun with --resume to continue", file=sys.stderr)
                    break
        finally:
            pbar.close()
        if imgs_window:
            now = time.monotonic()
            self._run_images += imgs_window
            self.elapsed_s += now - t_window
            self.cpu_s += time.process_time() - cpu_window
            self._write_log(self._flush_stats(imgs_window / max(now - t_window, 1e-9)), writer)
        if last_ckpt is None or not last_ckpt.name.endswith(f"{self.step:08d}.pt"):
            last_ckpt = self._checkpoint()
        self._save_samples(writer)
        gen_path = self.out / "generator.safetensors"
        run_ips = self._run_images / max(time.monotonic() - t_start, 1e-9)
        if self.main:
            gen_path = self._export_generator()
            self._write_summary(finished, run_ips)
            self._plot_curves()
        if writer is not None:
            writer.close()
        gdist.barrier()  # the files exist for every rank once fit() returns
        return TrainResult(step=self.step, finished=finished, generator_path=gen_path, checkpoint_path=last_ckpt,
                           images_per_second=run_ips, log_path=self.log_path)

    # ------------------------------------------------------------------------------------------ logging
    def _reset_stats(self) -> None:
        zero = lambda: torch.zeros((), device=self.device)  # noqa: E731 - accumulate on device, sync per log
        self._stats: dict[str, Any] = {k: zero() for k in ("d_loss", "g_loss", "penalty", "d_real_acc",
                                                           "d_fake_acc", "real_logit", "fake_logit")}
        self._stats["n_d"] = 0
        self._stats["n_g"] = 0

    def _flush_stats(self, images_per_second: float) -> dict[str, Any]:
        s = self._stats
        s.update(gdist.all_reduce_mean({k: v for k, v in s.items() if isinstance(v, torch.Tensor)}))
        n_d, n_g = max(s["n_d"], 1), max(s["n_g"], 1)
        record: dict[str, Any] = {"step": self.step, "d_steps": self.d_steps}
        for k in ("d_loss", "penalty", "d_real_acc", "d_fake_acc", "real_logit", "fake_logit"):
            record[k] = float(s[k].item()) / n_d
        record["g_loss"] = float(s["g_loss"].item()) / n_g
        self._reset_stats()
        bad = [k for k in ("d_loss", "g_loss", "penalty") if not math.isfinite(record[k])]
        if bad:
            ckpts = sorted(self.ckpt_dir.glob("ckpt_*.pt"))
            keep = f"the last good checkpoint is {ckpts[-1]}" if ckpts else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"training diverged: {', '.join(f'{k}={record[k]}' for k in bad)} in the {n_d} D steps before G step "
                f"{self.step}; stopped without saving these weights ({keep}). Try lower learning rates, "
                "a different loss (hinge), R1 or fewer D steps.")
        record["d_acc"] = 0.5 * (record["d_real_acc"] + record["d_fake_acc"])
        record["d_loss_chance"] = self.loss.chance_d_loss
        record["aug_p"] = self.augment.p if self.augment.ops else 0.0
        record["ada_rt"] = self.ada.last_rt if self.ada is not None else None
        record["img_per_s"] = images_per_second
        record["elapsed_s"] = self.elapsed_s
        record["cpu_s"] = self.cpu_s
        record["cond_scale"] = self.condition_scale(self.step) if self.num_classes else None
        record["d_at_chance"] = self._check_chance(record)
        return record

    def _check_chance(self, record: dict[str, Any]) -> bool:
        """Is D no better than a coin? (accuracy near 0.5 and, where defined, loss near its chance value)."""
        self._chance_history.append((record["d_acc"], record["d_loss"]))
        tc = self.cfg.train
        if self.d_steps < tc.chance_warmup or len(self._chance_history) < self._chance_history.maxlen:
            return False
        acc = sum(a for a, _ in self._chance_history) / len(self._chance_history)
        loss = sum(lo for _, lo in self._chance_history) / len(self._chance_history)
        chance = self.loss.chance_d_loss
        at_chance = acc < 0.55 and (chance is None or abs(loss - chance) < 0.05 * chance)
        if at_chance and not self._chance_warned and self.main:
            tqdm.write(f"WARNING: D is at chance at step {self.step}: accuracy {acc:.2f}"
                       + (f", loss {loss:.3f} vs chance {chance:.3f}" if chance is not None else "")
                       + f" over the last {tc.chance_window} D steps: it cannot tell real from generated images. "
                       "If the sample grids (or FID) stop improving too, raise lr_d or n_dis, lower augmentation "
                       "strength, or check the data; alone it is no proof of failure (a 32 px run improved FID "
                       "4x while flagged: benchmarks/results/cpu_gan_study).", file=sys.stderr)
        self._chance_warned = at_chance
        return at_chance

    def _write_log(self, record: dict[str, Any], writer) -> None:
        if not self.main:
            return
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if writer is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    writer.add_scalar(f"train/{k}", v, self.step)

    def _tensorboard(self):
        if not self.cfg.train.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tensorboard"), purge_step=self.step or None)

    def _sample_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.G

    @torch.no_grad()
    def sample_grid_images(self) -> torch.Tensor:
        """uint8 samples from the fixed latents (EMA generator, eval mode): the exact pixels of the grids."""
        model = self._sample_model()
        was = model.training
        model.eval()
        z, y = self._fixed
        outs = []
        for i in range(0, len(z), 64):
            with self.autocast:
                x = model(z[i:i + 64].to(self.device), y[i:i + 64].to(self.device) if y is not None else None)
            outs.append(gan_to_uint8(x.float()).cpu())
        model.train(was)
        return torch.cat(outs)

    def _save_samples(self, writer) -> None:
        self._sync_buffers()
        if not self.main:
            return
        images = self.sample_grid_images()
        k = self.cfg.train.samples_per_class
        save_image_grid(images, self.sample_dir / f"step_{self.step:08d}.png", nrow=k)
        save_image_grid(images, self.sample_dir / "latest.png", nrow=k)
        if writer is not None:
            from torchvision.utils import make_grid

            writer.add_image("samples", make_grid(images, nrow=k), self.step)

    def _plot_curves(self) -> None:
        records = self.read_log()
        if records:
            plot_training_curves(records, self.out / "loss_curves.png",
                                 title=f"{self.cfg.model.generator}/{self.cfg.model.discriminator} "
                                       f"{self.cfg.model.resolution}px, {self.cfg.loss.name}")
        if self.num_classes:
            images = self.sample_grid_images()
            k = self.cfg.train.samples_per_class
            rows = [images[i * k:(i + 1) * k] for i in range(self.num_classes)]
            save_class_grid(rows, self.class_names, self.out / "samples_per_class.png",
                            title=f"EMA generator samples at step {self.step} (fixed latents)")

    def read_log(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        with open(self.log_path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def _write_summary(self, finished: bool, run_ips: float) -> None:
        records = self.read_log()
        last = records[-1] if records else {}
        write_json(self.out / "train_summary.json", {
            "step": self.step, "total_steps": self.total_steps, "finished": finished,
            "images_per_second_this_run": run_ips, "elapsed_s_total": self.elapsed_s, "cpu_s_total": self.cpu_s,
            "device": torch.cuda.get_device_name(self.device) if self.is_cuda else f"cpu ({platform.processor() or platform.machine()})",
            "torch": torch.__version__, "gan_augment": __version__, "python": platform.python_version(),
            "world_size": self.dist.world_size,
            "train_images": len(self.data.labels), "per_class": self.data.subset.get("per_class"),
            "manifest_hash": self.data.manifest.hash, "last_log": last,
        })

    # ------------------------------------------------------------------------------------------ checkpoints
    def _generator_meta(self) -> dict[str, Any]:
        return {"arch": self.G.arch, "arch_args": self.G.arch_args, "class_names": self.G.class_names,
                "num_classes": self.G.num_classes, "resolution": self.G.resolution, "channels": self.G.channels,
                "z_dim": self.G.z_dim, "manifest_hash": self.data.manifest.hash, "split": self.cfg.data.split,
                "library_version": __version__}

    def _sync_buffers(self) -> None:
        """Under torchrun: average BatchNorm running statistics across ranks before they are used or saved."""
        gdist.average_buffers(self.G, self.D, self.ema.module if self.ema is not None else None)

    def _checkpoint(self) -> Path:
        tc = self.cfg.train
        path = self.ckpt_dir / f"ckpt_{self.step:08d}.pt"
        self._sync_buffers()
        gdist.check_consistent(self.G, "the generator")
        gdist.check_consistent(self.D, "the discriminator")
        if not self.main:
            return path
        state = {
            "format": CHECKPOINT_FORMAT, "format_version": 1, "library_version": __version__,
            "step": self.step, "batches_consumed": self.batches_consumed, "d_steps": self.d_steps,
            "elapsed_s": self.elapsed_s, "cpu_s": self.cpu_s, "config": self.cfg.to_dict(), "manifest_hash": self.data.manifest.hash,
            "class_names": self.class_names, "generator_meta": self._generator_meta(),
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.ema.module.state_dict() if self.ema is not None else None,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "augment": self.augment.state_dict(), "ada": self.ada.state_dict() if self.ada is not None else None,
            "lecam": self.lecam.state_dict() if self.lecam is not None else None,
            "rng": {"z": self.z_gen.get_state(), "torch": torch.get_rng_state()},
            "world_size": self.dist.world_size,
        }
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)
        for old in sorted(self.ckpt_dir.glob("ckpt_*.pt"))[:-tc.keep_last]:
            old.unlink()
        self._export_generator()
        return path

    def _export_generator(self) -> Path:
        extra = {"training": {"loss": self.cfg.loss.name, "augment": self.cfg.augment.policy,
                              "ema_decay": self.cfg.train.ema_decay, "subset": self.data.subset,
                              "config": self.cfg.to_dict()}}
        return save_generator(self._sample_model(), self.out / "generator.safetensors", class_names=self.G.class_names,
                              manifest_hash=self.data.manifest.hash, split=self.cfg.data.split, step=self.step,
                              extra=extra)

    def _find_resume_state(self) -> dict[str, Any] | None:
        ckpts = sorted(self.ckpt_dir.glob("ckpt_*.pt"))
        if not ckpts:
            raise ValueError(f"--resume: no checkpoint in {self.ckpt_dir}")
        state = load_checkpoint_file(ckpts[-1])
        state["_path"] = str(ckpts[-1])
        old, new = _flatten(state["config"]), _flatten(self.cfg.to_dict())
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if differ:
            raise ValueError(f"cannot resume {ckpts[-1]}: config differs in {differ} "
                             f"(checkpoint: {[old.get(k) for k in differ]}, now: {[new.get(k) for k in differ]})")
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.augment.load_state_dict(state["augment"])
        if self.ada is not None and state.get("ada") is not None:
            self.ada.load_state_dict(state["ada"])
        if self.lecam is not None and state.get("lecam") is not None:
            self.lecam.load_state_dict(state["lecam"])
        self.z_gen.set_state(state["rng"]["z"])
        torch.set_rng_state(state["rng"]["torch"])
        self.step, self.batches_consumed = int(state["step"]), int(state["batches_consumed"])
        self.d_steps, self.elapsed_s = int(state["d_steps"]), float(state["elapsed_s"])
        self.cpu_s = float(state.get("cpu_s", 0.0))
        # Drop log lines written after the checkpoint (a killed run may have logged further).
        if self.main:
            records = [r for r in self.read_log() if r["step"] <= self.step]
            write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in records))
        if self.verbose:
            print(f"resumed from {state['_path']} at step {self.step}", file=sys.stderr)


def train(config: GANConfig, *, resume: bool = False) -> TrainResult:
    """Build a :class:`Trainer` and run it."""
    return Trainer(config, resume=resume).fit()
