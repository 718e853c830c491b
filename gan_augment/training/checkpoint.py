"""Checkpoints and generator files of a training run, and resuming from them (a mixin of
:class:`~gan_augment.training.Trainer`). Checkpoints are ``torch.save`` of tensors and plain containers, written
atomically and loaded back with ``weights_only=True``; they hold no per-process state."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .. import distributed as gdist
from .._io import atomic_path, portable_paths, write_text
from ..generators import CHECKPOINT_FORMAT, load_checkpoint_file, save_generator
from ..pretrained import file_sha256
from .ema import ema_file_name
from .warm_start import save_discriminator, warm_start, warm_start_discriminator

__all__ = ["CheckpointMixin", "RESUMABLE_CHANGES"]

# Config keys that may change between a run and its resume; anything else must match the checkpoint.
RESUMABLE_CHANGES = {
    "out", "train.steps", "train.epochs", "train.time_limit_minutes", "train.cpu_time_limit_minutes",
    "train.progress", "train.tensorboard", "train.ema_extra_decays",
    "train.device", "train.log_every", "train.sample_every",
    "train.checkpoint_every", "train.keep_last", "train.samples_per_class", "train.compile", "data.num_workers",
    "data.cache", "data.cache_on_device", "data.manifest", "data.metadata", "data.image_dir", "data.image_folder",
    "data.medmnist",
}


def _generator_device_type(state: torch.Tensor) -> str:
    """Checkpoints before ``z_device`` was recorded: a CPU generator's state has a fixed size (5,056 bytes)."""
    return "cpu" if state.numel() == torch.Generator().get_state().numel() else "cuda"


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class CheckpointMixin:
    """Save, export and restore; expects the trainer's attributes (cfg, G, D, the averages, optimisers, ...)."""

    def _generator_meta(self) -> dict[str, Any]:
        return {"arch": self.G.arch, "arch_args": self.G.arch_args, "class_names": self.G.class_names,
                "num_classes": self.G.num_classes, "resolution": self.G.resolution, "channels": self.G.channels,
                "z_dim": self.G.z_dim, "manifest_hash": self.data.manifest.hash, "split": self.cfg.data.split,
                "library_version": __version__}

    def _sync_buffers(self) -> None:
        """Under torchrun: average BatchNorm running statistics across ranks before they are used or saved."""
        gdist.average_buffers(self.G, self.D, *self._ema_modules())

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
            **self._ema_state(),  # G_ema, G_ema_extra
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "augment": self.augment.state_dict(), "ada": self.ada.state_dict() if self.ada is not None else None,
            "lecam": self.lecam.state_dict() if self.lecam is not None else None,
            "rng": {"z": self.z_gen.get_state(), "z_device": self.device.type, "torch": torch.get_rng_state()},
            "world_size": self.dist.world_size, "init_from": self.init_from,
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
        if self.init_from:  # where G started (and that file's own lineage): a benchmark checks every ancestor
            extra["init_from"] = self.init_from
        path = save_generator(self._sample_model(), self.out / "generator.safetensors", class_names=self.G.class_names,
                              manifest_hash=self.data.manifest.hash, split=self.cfg.data.split, step=self.step,
                              extra=portable_paths(extra))
        self._export_discriminator(path)
        for decay, ema in self.ema_extra.items():  # train.ema_extra_decays: the same run's longer/shorter averages
            training = {**extra["training"], "ema_decay": decay}
            save_generator(ema.module, self.out / ema_file_name(decay), class_names=self.G.class_names,
                           manifest_hash=self.data.manifest.hash, split=self.cfg.data.split, step=self.step,
                           extra={**extra, "training": training})
        return path

    def _export_discriminator(self, generator: Path) -> Path:
        """D's trainable state beside the generator exported at the same step (``train.init_discriminator``)."""
        state = {"augment_p": float(self.augment.p), "lecam": self.lecam.state_dict() if self.lecam else None}
        return save_discriminator(self.D.state_dict(), self.out / "discriminator.safetensors",
                                  model=self.cfg.to_dict()["model"], class_names=self.class_names,
                                  manifest_hash=self.data.manifest.hash, split=self.cfg.data.split, step=self.step,
                                  generator_sha256=file_sha256(generator), state=state)

    def _warm_start(self) -> dict[str, Any]:
        """``train.init_generator``: G and its EMA from a generator file; with ``train.init_discriminator`` D too,
        from the file exported with it. Sets ``init_from`` (the lineage); returns D's training state (augmentation
        probability, LeCam averages) for :meth:`_apply_d_state`."""
        tc = self.cfg.train
        if tc.init_discriminator and not tc.init_generator:
            raise ValueError("train.init_discriminator needs train.init_generator: a discriminator continues the "
                             "generator it was trained with (pass the generator file exported with it)")
        if self.cfg.model.g_grown_from is not None and not tc.init_generator:
            raise ValueError(f"model.g_grown_from {self.cfg.model.g_grown_from} grows a trained generator: set "
                             "train.init_generator to a generator file of that resolution")
        if not tc.init_generator:
            return {}
        self.init_from = warm_start(self.G, tc.init_generator, self.class_names)
        self._emas_from_start()
        if not tc.init_discriminator:
            return {}
        self.init_from["discriminator"], d_state = warm_start_discriminator(
            self.D, tc.init_discriminator, self.cfg.to_dict()["model"], self.class_names, self.init_from)
        return d_state

    def fade(self, step: int) -> float:
        """A grown generator's fade-in at G step ``step``: 0 at the step of the file it grew from, 1 after
        ``train.fade_steps`` more (always 1 for a generator that did not grow here, e.g. one continued from a
        grown file)."""
        if self.cfg.model.g_grown_from is None or not self.init_from or "grown_from" not in self.init_from:
            return 1.0
        n = self.cfg.train.fade_steps
        return 1.0 if n <= 0 else min(1.0, max(0.0, (step - int(self.init_from["step"])) / n))

    def _apply_fade(self) -> None:
        if self.cfg.model.g_grown_from is not None:
            for net in (self.G, *self._ema_modules()):
                getattr(net, "module", net).fade.fill_(self.fade(self.step))  # DDP wraps G under torchrun

    def _apply_d_state(self, d_state: dict[str, Any]) -> None:
        if self.ada is not None and "augment_p" in d_state:  # the augmentation strength D was trained at
            self.augment.p = float(d_state["augment_p"])
        if self.lecam is not None and d_state.get("lecam"):
            self.lecam.load_state_dict(d_state["lecam"])

    def _find_resume_state(self) -> dict[str, Any] | None:
        ckpts = sorted(self.ckpt_dir.glob("ckpt_*.pt"))
        if not ckpts:
            raise ValueError(f"--resume: no checkpoint in {self.ckpt_dir}")
        state = load_checkpoint_file(ckpts[-1])
        state["_path"] = str(ckpts[-1])
        old, new = _flatten(state["config"]), _flatten(self.cfg.to_dict())
        # keys added to the config after the checkpoint was written count as their default values
        defaults = _flatten(type(self.cfg)().to_dict())
        old = {**{k: v for k, v in defaults.items() if k not in old}, **old}
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if differ:
            raise ValueError(f"cannot resume {ckpts[-1]}: config differs in {differ} "
                             f"(checkpoint: {[old.get(k) for k in differ]}, now: {[new.get(k) for k in differ]})")
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self._restore_emas(state)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for opt in (self.opt_g, self.opt_d):  # the saved groups carry the old device's choice of Adam kernel
            for group in opt.param_groups:
                group["fused"] = True if self.is_cuda else None
        saved_on = state["rng"].get("z_device") or _generator_device_type(state["rng"]["z"])
        if saved_on == self.device.type:
            self.augment.load_state_dict(state["augment"])
            self.z_gen.set_state(state["rng"]["z"])
        else:
            # A CUDA generator's state cannot seed a CPU one, nor the reverse: the run moved between a GPU node
            # and a CPU machine. Its latent and augmentation streams restart from seeds tied to the step, so the
            # continuation is reproducible, though not bit-identical to a run that stayed on one device (whose
            # kernels round differently anyway).
            reseed = int(self.cfg.train.seed) * 1_000_003 + int(state["step"])
            self.augment.load_state_dict(state["augment"], device=self.device, reseed=reseed + 2)
            self.z_gen.manual_seed(reseed + 1)
            if self.main:
                print(f"resuming on {self.device.type} a run checkpointed on {saved_on}: latent and augmentation "
                      f"random streams restart from a seed tied to step {state['step']} (reproducible, not "
                      "bit-identical to a run that stayed on one device)", file=sys.stderr)
        if self.ada is not None and state.get("ada") is not None:
            self.ada.load_state_dict(state["ada"])
        if self.lecam is not None and state.get("lecam") is not None:
            self.lecam.load_state_dict(state["lecam"])
        torch.set_rng_state(state["rng"]["torch"])
        self.step, self.batches_consumed = int(state["step"]), int(state["batches_consumed"])
        self.d_steps, self.elapsed_s = int(state["d_steps"]), float(state["elapsed_s"])
        self.cpu_s = float(state.get("cpu_s", 0.0))
        self.init_from = state.get("init_from")
        # Drop log lines written after the checkpoint (a killed run may have logged further).
        if self.main:
            records = [r for r in self.read_log() if r["step"] <= self.step]
            write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in records))
        if self.verbose:
            print(f"resumed from {state['_path']} at step {self.step}", file=sys.stderr)

