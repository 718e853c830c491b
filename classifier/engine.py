"""fit / predict / evaluate for the classifier harness.

AdamW, cosine schedule with linear warm-up (timm's ``CosineLRScheduler``, stepped per update), optional class
weights in the cross-entropy, bf16 autocast + channels_last on CUDA, model selection on validation balanced
accuracy. Metrics come from scikit-learn.

Under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` (``SyncBatchNorm`` optional on CUDA); the
caller gives each process its share of the training data (a loader whose sampler is a
:class:`gan_augment.distributed.ShardedSampler`, with the per-process batch size). Rank 0 validates and keeps the
best weights, which are broadcast to every rank at the end.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gan_augment import distributed as gdist

__all__ = ["FitConfig", "FitResult", "fit", "predict", "classification_metrics"]


@dataclass
class FitConfig:
    epochs: int = 12
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    class_weights: Sequence[float] | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    sync_batchnorm: bool = False  # under torchrun on CUDA: BatchNorm statistics over the global batch
    seed: int = 0
    progress: bool = True
    desc: str = "fit"
    final_epochs: int = 0  # the last epochs train on ``fit``'s ``final_loader`` (e.g. real images only)
    # train the classifier head alone (timm's ``get_classifier()``): every other weight frozen, the network in eval
    # mode (BatchNorm statistics fixed, no dropout) - classifier re-training (cRT) on fixed features
    head_only: bool = False


@dataclass
class FitResult:
    best_epoch: int
    best_val_balanced_accuracy: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _autocast(device: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and amp else contextlib.nullcontext()


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, *, device: str | torch.device = "auto", amp: bool = True,
            channels_last: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, K) and labels (N,) over a loader of (image, label)."""
    device = _device(device) if isinstance(device, str) else device
    model.eval()
    probs, labels = [], []
    fmt = torch.channels_last if device.type == "cuda" and channels_last else torch.contiguous_format
    for batch in loader:
        x, y = batch[0], batch[1]
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        with _autocast(device, amp):
            logits = model(x)
        probs.append(F.softmax(logits.float(), dim=1).cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def classification_metrics(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Balanced accuracy, macro-F1, accuracy, macro one-vs-rest AUROC, per-class recall / precision, confusion."""
    k = len(class_names)
    pred = probs.argmax(axis=1)
    ks = list(range(k))
    out: dict[str, Any] = {
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, labels=ks, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, pred)),
        "per_class_recall": dict(zip(class_names, recall_score(labels, pred, labels=ks, average=None,
                                                               zero_division=0).tolist())),
        "per_class_precision": dict(zip(class_names, precision_score(labels, pred, labels=ks, average=None,
                                                                     zero_division=0).tolist())),
        "confusion_matrix": confusion_matrix(labels, pred, labels=ks).tolist(),
    }
    present = sorted(set(labels.tolist()))
    if len(present) == k:
        # binary: scikit-learn wants the positive class's score; multiclass: macro one-vs-rest
        out["auroc"] = float(roc_auc_score(labels, probs[:, 1]) if k == 2 else
                             roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=ks))
    else:  # a class absent from this evaluation set has no one-vs-rest AUROC
        out["auroc"] = float("nan")
    return out


def _evaluate(model, loader, device, amp, channels_last, class_names) -> dict[str, Any]:
    probs, labels = predict(model, loader, device=device, amp=amp, channels_last=channels_last)
    return classification_metrics(probs, labels, class_names)


def _broadcast_floats(*values: float, device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, src=0)
    return t.tolist()


def _head(model: nn.Module, desc: str) -> nn.Module:
    """The classification layer a head-only fit trains (timm models name it through ``get_classifier``)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        raise ValueError(f"{desc}: head_only needs a model whose get_classifier() returns a layer with weights (timm "
                         f"models do); {type(model).__name__} has none")
    return head


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader | None, class_names: Sequence[str],
        cfg: FitConfig, *, final_loader: DataLoader | None = None) -> tuple[nn.Module, FitResult]:
    """Train with AdamW + warm-up/cosine; return the weights of the epoch with the best validation balanced
    accuracy (the model is left holding them) and the history. Without ``val_loader`` the last epoch is kept.

    With ``final_loader`` and ``cfg.final_epochs`` = k > 0 the last k epochs draw from ``final_loader`` instead
    (one optimiser, one schedule over all epochs): e.g. real + synthetic images first, real images only at the
    end, at the low learning rates the cosine schedule has reached there."""
    from timm.scheduler import CosineLRScheduler

    if not 0 <= cfg.final_epochs <= cfg.epochs:
        raise ValueError(f"{cfg.desc}: final_epochs must be in [0, epochs={cfg.epochs}], got {cfg.final_epochs}")
    if (final_loader is None) != (cfg.final_epochs == 0):
        raise ValueError(f"{cfg.desc}: final_epochs={cfg.final_epochs} needs a final_loader, and a final_loader "
                         "needs final_epochs > 0")
    first_final = cfg.epochs - cfg.final_epochs
    head = _head(model, cfg.desc) if cfg.head_only else None
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}  # given back at the end
    if head is not None:  # before DDP wraps the model (it syncs the trainable weights only); the frozen layers
        model.requires_grad_(False)  # build no autograd graph: the backward pass is the head's alone
        head.requires_grad_(True)

    info, device = gdist.init_from_env(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels once
    fmt = torch.channels_last if device.type == "cuda" and cfg.channels_last else torch.contiguous_format
    if info.enabled and device.type == "cuda" and cfg.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device, memory_format=fmt)
    net = model  # what the training step calls: the model, or its DDP wrapper under torchrun
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    weight = torch.tensor(cfg.class_weights, dtype=torch.float32, device=device) if cfg.class_weights is not None \
        else None
    criterion = nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.AdamW(model.parameters() if head is None else head.parameters(), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay, **({"fused": True} if device.type == "cuda" else {}))
    steps_per_epoch = max(1, len(train_loader))
    total = first_final * steps_per_epoch + cfg.final_epochs * (len(final_loader) if final_loader is not None else 0)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    scheduler = CosineLRScheduler(optimizer, t_initial=max(total - warmup, 1), warmup_t=warmup,
                                  warmup_lr_init=cfg.lr * 1e-3, warmup_prefix=True, lr_min=cfg.lr * 1e-3,
                                  t_in_epochs=False)
    best_state, best_ba, best_epoch = None, -math.inf, -1
    history = []
    step, n_images, t0 = 0, 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train(head is None)  # head only: the frozen features keep their BatchNorm statistics
        if head is not None:
            head.train()
        loader = train_loader if epoch < first_final else final_loader
        for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
            if hasattr(sampler, "set_epoch"):  # a new order each epoch from seeded samplers
                sampler.set_epoch(epoch)
        # Summed on the device: no host sync per step (non-finite losses are caught at the end of the epoch).
        running, count = torch.zeros((), device=device), 0
        bar = tqdm(loader, disable=not (cfg.progress and info.is_main),
                   desc=f"{cfg.desc} epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        for batch in bar:
            x, y = batch[0], batch[1]
            x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
            y = torch.as_tensor(y).to(device, non_blocking=True)
            with _autocast(device, cfg.amp):
                loss = criterion(net(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            scheduler.step_update(step)
            running += loss.detach() * len(y)
            count += len(y)
            n_images += len(y) * info.world_size
        train_loss = float(gdist.all_reduce_mean({"loss": running / max(count, 1)})["loss"])
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"{cfg.desc}: non-finite training loss in epoch {epoch + 1}")
        record = {"epoch": epoch + 1, "train_loss": train_loss, "lr": optimizer.param_groups[0]["lr"]}
        if cfg.final_epochs:
            record["final_loader"] = epoch >= first_final
        if val_loader is None:  # no validation split: keep the last epoch
            history.append(record)
            best_epoch, best_ba = epoch + 1, float("nan")
            continue
        if not info.is_main:  # rank 0 validates and keeps the best weights
            history.append(record)
            continue
        val = _evaluate(model, val_loader, device, cfg.amp, cfg.channels_last, class_names)
        record.update(val_balanced_accuracy=val["balanced_accuracy"], val_macro_f1=val["macro_f1"])
        history.append(record)
        if val["balanced_accuracy"] > best_ba:
            best_ba, best_epoch = val["balanced_accuracy"], epoch + 1
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - t0
    for name, p in model.named_parameters():
        p.requires_grad_(requires_grad[name])
    if best_state is not None:
        model.load_state_dict(best_state)
    if info.enabled:  # every rank returns rank 0's choice
        for t in model.state_dict().values():
            torch.distributed.broadcast(t, src=0)
        best_epoch, best_ba = _broadcast_floats(best_epoch, best_ba, device=device)
        best_epoch = int(best_epoch)
    return model, FitResult(best_epoch=best_epoch, best_val_balanced_accuracy=best_ba, history=history,
                            seconds=seconds, images_per_second=n_images / max(seconds, 1e-9))
