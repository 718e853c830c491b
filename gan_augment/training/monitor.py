"""What a training run shows while it runs: loss statistics, the D-at-chance check, the JSONL log and
TensorBoard, sample grids, loss curves and the run summary (a mixin of :class:`~gan_augment.training.Trainer`)."""

from __future__ import annotations

import json
import math
import platform
import sys
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import __version__
from .. import distributed as gdist
from .._io import write_json
from ..data.transforms import gan_to_uint8
from ..plots import plot_training_curves, save_class_grid, save_image_grid

__all__ = ["MonitorMixin", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


class MonitorMixin:
    """Statistics, logs, grids and plots; expects the trainer's attributes (cfg, out, G, ema, ...)."""

    def _reset_stats(self) -> None:
        zero = lambda: torch.zeros((), device=self.device)  # noqa: E731 - accumulate on device, sync per log
        self._stats: dict[str, Any] = {k: zero() for k in ("d_loss", "g_loss", "penalty", "d_real_acc",
                                                           "d_fake_acc", "real_logit", "fake_logit",
                                                           "spectral_d", "spectral_acc", "class_real_ce",
                                                           "class_real_acc", "class_fake_ce", "class_fake_acc",
                                                           "mode_seeking")}
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
        if self.cfg.loss.spectral_lambda > 0:  # the spectral discriminator's loss and accuracy (0.5 = fooled)
            record["spectral_d"] = float(s["spectral_d"].item()) / n_d
            record["spectral_acc"] = float(s["spectral_acc"].item()) / n_d
        if self.cfg.loss.class_lambda > 0:  # the auxiliary classifier on real (D steps) and G's images (G steps)
            for side, n in (("real", n_d), ("fake", n_g)):
                for k in ("ce", "acc"):
                    record[f"class_{side}_{k}"] = float(s[f"class_{side}_{k}"].item()) / n
        if self.cfg.loss.mode_seeking_lambda > 0:  # latent over image distance of same-class pairs (lower = varied)
            record["mode_seeking"] = float(s["mode_seeking"].item()) / n_g
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
        # the weight the last step trained with (set before it, from the step count then)
        record["cond_scale"] = self.condition_scale(max(self.step - 1, 0)) if self.num_classes else None
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
        noise = getattr(model, "uses_noise", False)  # fixed noise maps too, and the training RNG left untouched
        outs = []
        try:
            for i in range(0, len(z), 64):
                if noise:
                    model.set_noise_seeds(list(range(i, min(i + 64, len(z)))))
                with self.autocast:
                    x = model(z[i:i + 64].to(self.device), y[i:i + 64].to(self.device) if y is not None else None)
                outs.append(gan_to_uint8(x.float()).cpu())
        finally:
            if noise:
                model.set_noise_seeds(None)
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
            save_class_grid(rows, self.class_names, self.out / "samples_per_class.jpg",
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

