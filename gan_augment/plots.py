"""PNG figures: labelled per-class image grids and loss curves (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ._io import atomic_path

__all__ = ["save_class_grid", "save_image_grid", "plot_training_curves", "plot_loss_log", "grid_array", "save_figure",
           "pyplot", "compact_pngs"]


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    return _plt()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out, write a matplotlib figure atomically - JPEG (quality 85) for a ``.jpg`` path, else PNG - and close
    it. Sample grids go to JPEG: a grid of photographs is ~5x smaller so, and results folders keep many."""
    plt = _plt()
    fig.tight_layout()
    path = Path(path)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    with atomic_path(path, suffix=path.suffix or ".png") as tmp:
        if jpeg:
            fig.savefig(tmp, format="jpeg", dpi=100, pil_kwargs={"quality": 85})
        else:
            fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def grid_array(images: torch.Tensor, nrow: int, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) uint8 -> one (H', W', 3) uint8 grid via torchvision's ``make_grid``."""
    from torchvision.utils import make_grid

    if images.dtype != torch.uint8:
        raise ValueError("grid_array expects uint8 images")
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int) -> Path:
    """Save (N, C, H, W) uint8 images as one PNG grid (no labels), atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(grid_array(images, nrow)).save(tmp, format="PNG")
    return path


def save_class_grid(rows: Sequence[torch.Tensor], row_labels: Sequence[str], path: str | os.PathLike,
                    title: str | None = None) -> Path:
    """One labelled row per class: ``rows[i]`` is a (n, C, H, W) uint8 tensor shown next to ``row_labels[i]``."""
    plt = _plt()
    n = max(len(r) for r in rows)
    res = rows[0].shape[-1]
    scale = max(0.6, min(1.6, res / 64))
    fig, axes = plt.subplots(len(rows), 1, figsize=(n * scale + 1.5, len(rows) * scale + (0.5 if title else 0.1)),
                             squeeze=False)
    for ax, imgs, label in zip(axes[:, 0], rows, row_labels):
        ax.imshow(grid_array(imgs, nrow=n), cmap="gray" if imgs.shape[1] == 1 else None)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        for spine in ax.spines.values():
            spine.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_training_curves(records: Sequence[dict], path: str | os.PathLike, title: str = "GAN training") -> Path:
    """Loss, D accuracy and augmentation probability against the G step, from JSONL log records."""
    plt = _plt()
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(steps, [r["d_loss"] for r in records], label="D loss")
    axes[0].plot(steps, [r["g_loss"] for r in records], label="G loss")
    chance = records[0].get("d_loss_chance") if records else None
    if chance is not None:
        axes[0].axhline(chance, ls="--", c="grey", lw=1, label=f"D at chance ({chance:.2f})")
    axes[0].set_title("losses")
    axes[1].plot(steps, [r["d_real_acc"] for r in records], label="real called real")
    axes[1].plot(steps, [r["d_fake_acc"] for r in records], label="fake called fake")
    axes[1].axhline(0.5, ls="--", c="grey", lw=1)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("D accuracy")
    axes[2].plot(steps, [r.get("aug_p", 0.0) for r in records], label="augment p")
    if any(r.get("ada_rt") is not None for r in records):
        axes[2].plot(steps, [r.get("ada_rt") for r in records], label="r_t = E[sign D(real)]")
    axes[2].set_title("augmentation")
    for ax in axes:
        ax.set_xlabel("G step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_loss_log(records: Sequence[dict], path: str | os.PathLike, title: str = "training",
                  x: str = "step") -> Path:
    """Every numeric series of the log records (one panel each, e.g. an upsampler's ``l1`` / ``adv`` / ``d_loss``)
    against ``x``; the bookkeeping keys (``step``, ``cpu_s``) are not plotted."""
    plt = _plt()
    keys = [k for k in dict.fromkeys(k for r in records for k in r)
            if k not in ("step", "cpu_s", x) and all(isinstance(r.get(k, 0.0), (int, float)) for r in records)]
    if not keys:
        seen = sorted(records[0]) if records else []
        raise ValueError(f"{path}: the log records have no numeric series to plot (keys: {seen})")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r[x], r[key]) for r in records if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(key)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def compact_pngs(folder: str | os.PathLike, max_bytes: int = 1_500_000) -> list[tuple[Path, int, int]]:
    """Rewrite every PNG under ``folder`` larger than ``max_bytes`` as a 256-colour palette PNG (Pillow's
    median-cut quantiser, Floyd-Steinberg dithering), atomically, where that is smaller. Returns (path, bytes before,
    bytes after) for each file rewritten.

    For result folders that travel and get committed: a 256 px sample grid of 7 classes x 8 images is several
    MB as RGB PNG, and what a cluster job returns, and a repository copied whole to a node, are better small.
    The palette version looks the same at viewing size; the numbers never come from it.
    """
    from PIL import Image

    done = []
    for path in sorted(Path(folder).rglob("*.png")):
        before = path.stat().st_size
        if before <= max_bytes:
            continue
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        small = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        if buf.tell() < before:
            with atomic_path(path, suffix=".png") as tmp:
                tmp.write_bytes(buf.getvalue())
            done.append((path, before, buf.tell()))
    return done
