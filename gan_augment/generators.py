"""Generator files: safetensors weights + JSON metadata; ``load_generator`` rebuilds the network without the trainer.

The metadata (stored inside the safetensors header under ``"gan_augment"``) holds the architecture and its
arguments, class names in order, resolution, channels, normalisation, the training manifest's hash and split,
the step and the library version. Trainer checkpoints (``.pt``) load too, always with ``weights_only=True``:
no pickled code is ever executed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from . import __version__
from ._io import atomic_path, safetensors_metadata
from .models import GeneratorBase, create_generator

__all__ = ["save_generator", "load_generator", "read_generator_metadata", "GENERATOR_FORMAT",
           "load_checkpoint_file"]

GENERATOR_FORMAT = "gan-augment-generator"
CHECKPOINT_FORMAT = "gan-augment-checkpoint"
NORMALIZATION = "tanh output in [-1, 1]; uint8 = round((x + 1) * 127.5)"


def save_generator(generator: GeneratorBase, path: str | os.PathLike, *, class_names: list[str] | None = None,
                   manifest_hash: str | None = None, split: str | None = None, step: int | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write ``generator`` (weights + metadata) to a ``.safetensors`` file, atomically."""
    if not getattr(generator, "arch", ""):
        raise ValueError("generator has no 'arch': build it with create_generator() so it can be rebuilt")
    class_names = class_names if class_names is not None else generator.class_names
    if generator.num_classes and class_names is not None and len(class_names) != generator.num_classes:
        raise ValueError(f"{len(class_names)} class names for a generator with {generator.num_classes} classes")
    meta = {
        "format": GENERATOR_FORMAT,
        "format_version": 1,
        "arch": generator.arch,
        "arch_args": generator.arch_args,
        "class_names": list(class_names) if class_names is not None else None,
        "num_classes": generator.num_classes,
        "resolution": generator.resolution,
        "channels": generator.channels,
        "z_dim": generator.z_dim,
        "normalization": NORMALIZATION,
        "manifest_hash": manifest_hash,
        "split": split,
        "step": step,
        "library_version": __version__,
        **(extra or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"gan_augment": json.dumps(meta)})
    return path


def read_generator_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata dict of a generator file (``.safetensors``) or trainer checkpoint (``.pt``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"generator file {path} does not exist")
    if path.suffix == ".pt":
        return _checkpoint_generator_meta(load_checkpoint_file(path), path)
    meta = safetensors_metadata(path)
    if not meta:
        raise ValueError(f"{path} is a safetensors file without gan-augment metadata (not a generator file)")
    if meta.get("format") != GENERATOR_FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r} is not {GENERATOR_FORMAT!r}")
    return meta


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a trainer checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything that would run code; say so clearly
        raise ValueError(f"cannot load checkpoint {path} safely (weights_only=True): {exc}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a gan-augment checkpoint")
    return state


def _checkpoint_generator_meta(state: dict[str, Any], path: Path) -> dict[str, Any]:
    gen = state.get("generator_meta")
    if gen is None:
        raise ValueError(f"checkpoint {path} has no generator metadata")
    return {**gen, "step": state.get("step"), "format": GENERATOR_FORMAT}


def load_generator(path: str | os.PathLike, *, device: str | torch.device = "cpu", ema: bool = True) -> GeneratorBase:
    """Rebuild a generator from a ``.safetensors`` generator file or a trainer checkpoint ``.pt``.

    The returned module is in eval mode, carries ``class_names`` and ``meta`` (the file's metadata), and has
    ``sample(n, class_=..., seed=...)``. A file of another architecture, or with missing / unexpected keys,
    raises ``ValueError`` naming the file and the keys.
    """
    path = Path(path)
    meta = read_generator_metadata(path)
    if path.suffix == ".pt":
        state = load_checkpoint_file(path)
        weights = state["G_ema"] if ema and state.get("G_ema") is not None else state["G"]
    else:
        weights = load_file(str(path))
    try:
        generator = create_generator(meta["arch"], **meta["arch_args"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: cannot rebuild architecture {meta.get('arch')!r} with "
                         f"{meta.get('arch_args')}: {exc}") from None
    expected = set(generator.state_dict())
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match architecture {meta['arch']!r}: "
                         f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    try:
        generator.load_state_dict(weights, strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{path}: weights do not fit architecture {meta['arch']!r}: {exc}") from None
    generator.class_names = meta.get("class_names")
    generator.meta = meta
    return generator.to(device).eval()
