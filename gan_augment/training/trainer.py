"""The GAN training loop: D phase, G phase, EMA, logging, checkpoints, resume.

The loop knows no file formats beyond its own checkpoints (``torch.save`` of tensors and plain containers,
loaded back with ``weights_only=True``) and no architecture or objective: those come from the registry and
``losses``. On CPU, training 2N steps straight or N steps + kill + resume gives bit-identical weights: every
random draw comes from a generator whose state is checkpointed, and the data order is a pure function of the
number of batches consumed.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import distributed as gdist
from .._io import folder_removed_on_failure
from ..augment import AdaptiveAugment, DiffAugment
from ..losses import GANLoss, LeCam, SpectralDiscriminator, create_loss, mode_seeking_loss, r1_penalty
from ..models import create_discriminator, create_generator
from ..models.layers import set_condition_scale
from .checkpoint import RESUMABLE_CHANGES, CheckpointMixin
from .config import GANConfig
from .ema import EmaMixin
from .data import BatchMixin, GANData, IndexStream, cache_on_device, prepare_gan_data
from .monitor import MonitorMixin, TrainingDiverged
from .networks import attach_class_head, check_transition, condition_scale, network_kwargs, resolve_device

__all__ = ["Trainer", "TrainResult", "TrainingDiverged", "resolve_device", "train", "RESUMABLE_CHANGES"]


@dataclass
class TrainResult:
    step: int
    finished: bool  # False when stopped by the time limit (resume to continue)
    generator_path: Path
    checkpoint_path: Path | None
    images_per_second: float
    log_path: Path


class Trainer(BatchMixin, CheckpointMixin, EmaMixin, MonitorMixin):
    """Train a (class-conditional) GAN from a :class:`GANConfig`; ``fit()`` runs until ``train.steps``.

    Under ``torchrun --nproc_per_node N`` each process takes a contiguous 1/N of every global batch
    (``train.batch_size`` stays the global batch), with the latents and augmentation draws a single process would
    use for those rows; gradients are averaged across processes after each backward (see
    :mod:`gan_augment.distributed`), so the ranks hold identical weights and, BatchNorm statistics aside
    (``train.sync_batchnorm`` on CUDA), the run follows the single-process one. Rank 0 alone logs, samples and
    checkpoints; checkpoints hold no per-rank state, so a run resumes under any number of processes.
    """
    pause_hint = "rerun with --resume to continue"  # the pause message's advice (train(pause_hint=...))

    def __init__(self, config: GANConfig, *, resume: bool = False):
        with folder_removed_on_failure(config.out):  # a refused config or data leaves no folder this call made
            self._setup(config, resume)

    def _setup(self, config: GANConfig, resume: bool) -> None:
        self.cfg = config
        tc = config.train
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir, self.sample_dir, self.log_path = (self.out / n for n in ("checkpoints", "samples", "log.jsonl"))
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
        # train.init_generator / init_discriminator: G (+ EMA) and maybe D start from trained files (a resume does not)
        self.init_from = None
        d_state = self._warm_start() if resume_state is None else {}
        self.loss: GANLoss = self._build_loss()
        lc = config.loss
        self.lecam = LeCam(lc.lecam_lambda, decay=lc.lecam_decay) if lc.lecam_lambda > 0 else None
        if lc.mode_seeking_lambda < 0:
            raise ValueError(f"loss.mode_seeking_lambda must be >= 0 (0 = off), got {lc.mode_seeking_lambda}")
        ac = config.augment
        self.augment = DiffAugment(ac.policy, p=ac.p, translation=ac.translation, cutout=ac.cutout,
                                   padding=ac.padding, seed=tc.seed + 2)
        self.augment.shard = (self.dist.rank, self.dist.world_size)
        self.ada = (AdaptiveAugment(self.augment, target=ac.target, interval=ac.interval, speed_kimg=ac.speed_kimg,
                                    threshold=self.loss.threshold) if ac.adaptive else None)
        self._apply_d_state(d_state)
        self.z_gen = torch.Generator(device=self.device)
        self.z_gen.manual_seed(tc.seed + 1)
        # a generator with noise inputs draws its maps from a stream of their own, reseeded every step (_step_noise)
        self.noise_gen = torch.Generator(device=self.device) if self.G.uses_noise else None
        self.G.set_noise_generator(self.noise_gen)
        self.stream = IndexStream(self.data.labels, tc.batch_size, class_balance=config.data.class_balance,
                                  seed=tc.seed)
        self.total_steps = self._total_steps()
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.is_cuda and tc.amp
                         else contextlib.nullcontext())
        self.step = self.init_from["step"] if self.init_from else 0  # a warm start continues the file's count
        if self.init_from and self.step >= self.total_steps:
            raise ValueError(f"train.init_generator {tc.init_generator} is at step {self.step}, train.steps is "
                             f"{self.total_steps}: nothing to train (raise train.steps)")
        self.batches_consumed = 0
        self.d_steps = 0
        self.elapsed_s = 0.0
        self.cpu_s = 0.0  # process CPU time of the training loop, over all runs of this training
        self._fixed = self._fixed_latents()
        self._label_tensor = torch.tensor(self.data.labels, dtype=torch.long)
        self._images = None
        if self.data.dataset.cached:
            self._images = torch.from_numpy(self.data.dataset.uint8_array()).permute(0, 3, 1, 2).contiguous()
            self._images = cache_on_device(self._images, self.device, enabled=config.data.cache_on_device,
                                           verbose=self.verbose)
            if self._images.device != self._label_tensor.device:
                self._label_tensor = self._label_tensor.to(self.device)
        self._chance_history: deque = deque(maxlen=max(1, math.ceil(tc.chance_window / max(tc.log_every * tc.n_dis, 1))))
        self._chance_warned = False
        self._reset_stats()
        if resume_state is not None:
            self._restore(resume_state)
        elif self.ckpt_dir.exists() and any(self.ckpt_dir.glob("ckpt_*.pt")):
            raise ValueError(f"{self.out} already holds a run; pass --resume to continue it or choose another out")
        elif self.log_path.exists() and self.main:
            self.log_path.unlink()  # a run that died before its first checkpoint: start the log afresh

    # ------------------------------------------------------------------------------------------ setup
    def _build_models(self) -> None:
        mc, tc = self.cfg.model, self.cfg.train
        g_kwargs, d_kwargs = network_kwargs(mc)
        common = dict(resolution=mc.resolution, num_classes=self.num_classes, channels=self.data.dataset.channels)
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
        check_transition(mc, self.G, self.D, self.num_classes)
        if lam := self.cfg.loss.spectral_lambda:  # a part of D: D's optimizer, torchrun's averaging, D's state
            self.D.add_module("spectral_head", SpectralDiscriminator(mc.resolution, weight=lam))
        self.with_class = attach_class_head(self.cfg.loss, mc, self.D, self.num_classes)  # before D's optimizer
        self.G.to(self.device, memory_format=fmt)
        self.D.to(self.device, memory_format=fmt)
        # What the training steps call: the modules themselves or G's compiled form (same parameters). D stays
        # eager: spectral norm updates its power-iteration vectors in place between D's two forwards of a step,
        # which the compiled backward rejects (measured on torch 2.14: "modified by an inplace operation").
        self.G_step = torch.compile(self.G) if tc.compile else self.G
        self.D_step = self.D
        self._build_emas()  # train.ema_decay and train.ema_extra_decays (ema.py)
        if len(betas := tuple(tc.betas)) != 2:
            raise ValueError(f"train.betas needs two numbers, got {tc.betas}")
        fused = {"fused": True} if self.is_cuda else {}  # one kernel per step on CUDA; CPU keeps the default
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=tc.lr_g, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=tc.lr_d, betas=betas, **fused)

    def condition_scale(self, step: int) -> float:
        """Weight of the class in G and D at G step ``step`` (1 unless ``model.cond_transition`` ramps it)."""
        return condition_scale(self.cfg.model.cond_transition, step)

    def _step_noise(self) -> None:
        """Reseed the noise maps' stream from (seed, step, rank): a resume draws the maps an unbroken run did."""
        if self.noise_gen is not None:
            seed = (int(self.cfg.train.seed) * 1_000_003 + self.step) * 4_099 + self.dist.rank
            self.noise_gen.manual_seed(seed % 2**63)

    def _apply_condition_scale(self) -> None:
        if self.cfg.model.cond_transition is not None:
            for net in (self.G, self.D, *self._ema_modules()):
                set_condition_scale(net, self.condition_scale(self.step))

    def _build_loss(self) -> GANLoss:
        lc, name = self.cfg.loss, self.cfg.loss.name.lower().replace("_", "-")
        return create_loss(lc.name, **{"wgan": {"clip": lc.clip}, "wgan-gp": {"gp_lambda": lc.gp_lambda}}.get(name, {}))

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

    # ------------------------------------------------------------------------------------------ phases
    def _d_forward(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits, and its auxiliary class logits when ``loss.class_lambda > 0`` (else None)."""
        if not self.with_class:
            return self.D_step(x, y).float(), None
        logits, cls = self.D_step(x, y, with_class=True)
        return logits.float(), cls.float()

    def _class_term(self, logits: torch.Tensor, y: torch.Tensor, key: str) -> torch.Tensor:
        ce = F.cross_entropy(logits, y)
        self._stats[f"{key}_ce"] += ce.detach()
        self._stats[f"{key}_acc"] += (logits.detach().argmax(1) == y).float().mean()
        return self.cfg.loss.class_lambda * ce

    def _d_step(self, real: torch.Tensor, y_real: torch.Tensor) -> None:
        """One discriminator update on a real batch and a fake batch of the same classes."""
        y = self._labels(y_real)
        z = self._latents()
        with torch.no_grad(), self.autocast:
            fake = self.G_step(z, y)
        lc = self.cfg.loss
        with self.autocast:
            real_aug, fake_aug = self.augment(real), self.augment(fake)
            real_logits, real_cls = self._d_forward(real_aug, y)
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
            if lc.spectral_lambda > 0:  # on the images as G made them: augmentation edges would swamp the spectrum
                spectral, acc = self.D.spectral_head.d_terms(self.loss, real, fake)
                self._stats["spectral_d"] += spectral.detach()
                self._stats["spectral_acc"] += acc
                penalty = lc.spectral_lambda * spectral + (0.0 if penalty is None else penalty)
        total = loss if penalty is None else loss + penalty
        if real_cls is not None:  # the auxiliary classifier learns the classes of real images only
            total = total + self._class_term(real_cls, y, "class_real")
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
        ms = self.cfg.loss.mode_seeking_lambda
        if ms and y is not None and len(y) >= 2:  # pairs (i, i + half) share a class: the first half's
            half = len(y) // 2
            y = torch.cat([y[:half], y[:half], y[2 * half:]])
        for p in self.D.parameters():
            p.requires_grad_(False)
        with self.autocast:
            fake_logits, fake_cls = self._d_forward(self.augment(fake := self.G_step(z, y)), y)
            loss = self.loss.g_loss(fake_logits)
            if ms and len(z) >= 2:  # on the images as G made them (augmentation would add its own differences)
                term = mode_seeking_loss(fake, z)
                loss = loss + ms * term
                self._stats["mode_seeking"] += term.detach()
            if fake_cls is not None:  # G: make images the real-trained classifier gives their own class
                loss = loss + self._class_term(fake_cls, y, "class_fake")
            if lam := self.cfg.loss.spectral_lambda:  # the spectral head sees G's images unaugmented, as in D's step
                loss = loss + lam * self.loss.g_loss(self.D.spectral_head(fake))
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
                self._apply_fade()
                self._step_noise()
                y_last = None
                for _ in range(tc.n_dis):
                    real, y_last = next(batches)
                    self.batches_consumed += 1
                    self._d_step(real, y_last)
                self._g_step(y_last)
                self.step += 1
                self._update_emas()
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
                        tqdm.write(f"{what} reached at step {self.step}; checkpointing - {self.pause_hint}", file=sys.stderr)
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


def train(config: GANConfig, *, resume: bool = False, pause_hint: str | None = None) -> TrainResult:
    """Build a :class:`Trainer` and run it (``pause_hint``: what the pause message tells the user to do)."""
    trainer = Trainer(config, resume=resume)
    trainer.pause_hint = pause_hint or trainer.pause_hint
    return trainer.fit()

