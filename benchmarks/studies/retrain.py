"""Two-stage GAN arms: ``gan_light``'s classifier, then a second stage on real images only at a fresh learning rate.

- ``gan_crt``: classifier re-training (cRT; Kang et al., ICLR 2020, "Decoupling representation and classifier for
  long-tailed recognition"): the head re-initialised and trained alone on real images drawn class-balanced
  (``aug_oversample``'s loader), every other weight and the BatchNorm statistics frozen. Are ``gan_light``'s
  features sound and only its decision boundaries pulled towards the generated images?
- ``gan_real_ft``: every layer fine-tuned on the same real loader from a fresh, lower learning rate - not the tail
  of the first schedule, which ``gan_real_last`` tried.

The second stage runs ``retrain_epochs`` epochs (cosine from its learning rate, no warm-up) and keeps its epoch
with the best validation balanced accuracy, as every arm does. The first stage is ``gan_light``'s run exactly (same
seed, loader, initial head and schedule); its weights are kept under ``runs/stage1/`` (git ignores weights) so that
the other two-stage arm of the folder starts from them instead of training them again. A stage-1 file made with
another generator, dose, split or protocol is not used.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from classifier import FitConfig, FitResult, fit
from gan_augment._io import atomic_path

from ga_bench.protocol import PROTOCOL_KEYS

__all__ = ["SECOND_STAGE", "stage1_path", "load_stage1", "save_stage1", "second_stage", "two_stage"]

# arm -> the weights its second stage trains
SECOND_STAGE = {"gan_crt": "head", "gan_real_ft": "all"}


def stage1_path(runs: Path, seed: int) -> Path:
    return Path(runs) / "stage1" / f"gan_light_seed{seed}.safetensors"


def load_stage1(path: Path, model: torch.nn.Module, key: dict) -> FitResult | None:
    """Load ``gan_light``'s weights into ``model`` and return its fit result, if ``path`` was made under ``key``."""
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if json.loads(meta.get("key", "null")) != json.loads(json.dumps(key)):
        return None
    model.load_state_dict(load_file(str(path)))
    return FitResult(**json.loads(meta["fit"]))


def save_stage1(path: Path, model: torch.nn.Module, key: dict, result: FitResult) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"key": json.dumps(key), "fit": json.dumps(dataclasses.asdict(result))})


def second_stage(model: torch.nn.Module, arm: str, loader, val_loader, class_names, cfg, seed: int, device: str,
                 first: FitResult) -> tuple[torch.nn.Module, FitResult, dict]:
    """Train ``arm``'s second stage on ``loader`` (real images); (model, the run's fit result, its record fields).

    The fit result keeps the first stage's history (the epochs every run of the folder trains) and best epoch; its
    validation score is the second stage's (the weights tested), its seconds both stages'."""
    what = SECOND_STAGE[arm]
    lr = cfg.crt_lr if what == "head" else cfg.real_ft_lr
    torch.manual_seed(seed + 1)  # the same second stage whether the first was trained now or loaded
    if what == "head":
        model.reset_classifier(len(class_names))  # cRT re-initialises the head (timm)
    fcfg = FitConfig(epochs=cfg.retrain_epochs, lr=lr, weight_decay=cfg.weight_decay, warmup_epochs=0.0,
                     device=device, seed=seed, progress=cfg.progress, desc=f"{arm} seed {seed} stage 2",
                     head_only=what == "head")
    model, second = fit(model, loader, val_loader, class_names, fcfg)
    record = {"retrain_epochs": cfg.retrain_epochs, "retrain_lr": lr,  # checked on resume (protocol.arm_dose)
              "stage2": {"trains": what, "history": second.history,
                         "best_epoch": second.best_epoch, "seconds": second.seconds,
                         "stage1_best_val_balanced_accuracy": first.best_val_balanced_accuracy}}
    result = FitResult(best_epoch=first.best_epoch, best_val_balanced_accuracy=second.best_val_balanced_accuracy,
                       history=first.history, seconds=first.seconds + second.seconds,
                       images_per_second=first.images_per_second)
    return model, result, record


def stage1_key(runner, info: dict) -> dict:
    """What a saved first stage must share with this run to be reused: generator, split, epochs, dose, protocol."""
    return {"generator": (runner.generator_id or {}).get("sha256"), "manifest": runner.manifest.hash,
            "epochs": runner.epochs, "synthetic": info.get("synthetic"), "cap": info.get("synthetic_cap"),
            "bank_size": runner.cfg.bank_size,  # the same counts can come from another bank of images
            **{k: getattr(runner.cfg, k) for k in PROTOCOL_KEYS}}


def two_stage(runner, arm: str, seed: int, model: torch.nn.Module, loader, fcfg: FitConfig,
              info: dict) -> tuple[torch.nn.Module, FitResult]:
    """``arm``'s run for a benchmark :class:`Runner`: ``gan_light``'s fit (``loader``, ``fcfg``; read from
    ``runs/stage1/`` when saved there under the same key), then :func:`second_stage` on ``aug_oversample``'s
    loader. Adds the second stage's record fields to ``info``."""
    path, key = stage1_path(runner.runs, seed), stage1_key(runner, info)
    val = runner.loader(runner.val)
    first = load_stage1(path, model, key)
    info["stage1_reused"] = first is not None
    if first is None:
        model, first = fit(model, loader, val, runner.class_names, fcfg)
        if runner.dist.is_main:
            save_stage1(path, model, key, first)
    model, result, more = second_stage(model, arm, runner.train_set("aug_oversample", seed)[0], val,
                                       runner.class_names, runner.cfg, seed, str(runner.device), first)
    info.update(more)
    return model, result
