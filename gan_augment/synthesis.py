"""Write samples of a generator file to disk: ``<out>/<class>/<class>_00000.png`` plus a labelled grid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from PIL import Image

from ._io import atomic_path
from .generators import load_generator
from .plots import save_class_grid

__all__ = ["generate_folder"]


def _safe_dirname(name: str) -> str:
    bad = '/\\\0'
    return "".join("_" if ch in bad else ch for ch in name) or "_"


def generate_folder(generator_path: str | os.PathLike, out: str | os.PathLike, *, per_class: int, seed: int = 0,
                    classes: Sequence[str] | None = None, batch_size: int = 64, device: str = "cpu",
                    grid_per_class: int = 8) -> dict[str, int]:
    """Sample ``per_class`` images of each class to PNG files; returns images written per class."""
    if per_class < 1:
        raise ValueError(f"--per-class must be >= 1, got {per_class}")
    G = load_generator(generator_path, device=device)
    out = Path(out)
    if G.num_classes:
        names = G.class_names or [str(i) for i in range(G.num_classes)]
        chosen = list(classes) if classes else names
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise ValueError(f"classes {unknown} not in generator {generator_path}; it has {names}")
    else:
        names = G.class_names or ["samples"]
        if classes:
            raise ValueError(f"{generator_path} is unconditional (class {names}); drop --classes")
        chosen = names[:1]
    rows = []
    written = {}
    for i, name in enumerate(chosen):
        cls = names.index(name) if G.num_classes else None
        # a different, reproducible stream per class
        images = G.sample(per_class, cls, seed=seed * 1000 + i, batch_size=batch_size, device=device)
        folder = out / _safe_dirname(name)
        folder.mkdir(parents=True, exist_ok=True)
        for j, img in enumerate(images):
            arr = img.permute(1, 2, 0).numpy()
            pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
            with atomic_path(folder / f"{_safe_dirname(name)}_{j:05d}.png", suffix=".png") as tmp:
                pil.save(tmp, format="PNG")
        written[name] = len(images)
        rows.append(images[:grid_per_class])
    save_class_grid(rows, chosen, out / "grid.png", title=f"{Path(generator_path).name}: seed {seed}")
    return written
