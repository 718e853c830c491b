"""Generators shipped with the package, each with a model card, loadable offline in one line.

    from gan_augment.pretrained import load_pretrained, list_pretrained
    G = load_pretrained("ham10000-64")          # a class-conditional generator, hash-checked against its card
    images = G.sample(16, class_="df", seed=0)

``index.json`` beside this file names each generator's file, its sha256, its card (Markdown: data and split,
training, metrics, licence) and the manifest hash of the split it was trained on, so ``balance_isic.py`` can
check that the generator never saw its validation or test images. A file whose sha256 differs from the index
(edited, truncated, replaced) is refused.

Licence: the code is MIT; the weights are not. Generators trained on HAM10000 carry the data's licence,
CC BY-NC-SA 4.0 (non-commercial use, attribution, share-alike; ``WEIGHTS_LICENSE.md`` beside this file), which
``list_pretrained(details=True)`` and ``gan-augment pretrained`` print beside each name.

The package ships one generator (``DEFAULT_PRETRAINED``, with its discriminator). Earlier ones, and generators of
other resolutions, are kept in the source repository (``archived_at``: a path there, in their results folders):
``pretrained:NAME`` loads them from a clone of the repository, and an installed package without the repository
says where they are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .._io import sha256_file
from ..generators import load_generator
from ..models import GeneratorBase

__all__ = ["DEFAULT_PRETRAINED", "PretrainedUnavailable", "list_pretrained", "pretrained_info", "pretrained_path", "load_pretrained",
           "model_card", "PRETRAINED_DIR", "file_sha256", "resolve_spec", "pretrained_discriminator_path", "REPO_ROOT"]

PRETRAINED_DIR = Path(__file__).resolve().parent

# The generator used wherever none is named (demo, cpu64 preset, docs, `serve` examples). Rule: among the shipped
# HAM10000 generators, the one with the lowest real-vs-generated probe accuracy on the validation split (mean of its
# card's evaluation seeds), FID breaking ties within 1 point; its card gives the numbers (probe 75.1 / 72.5 %,
# FID 54.4 / 54.8 against the real floor 49.0).
DEFAULT_PRETRAINED = "ham10000-64-lite128-16k"


class PretrainedUnavailable(ValueError):
    """No such shipped generator, or its file is missing or does not match its card."""


def file_sha256(path: str | os.PathLike) -> str:
    return sha256_file(path)


def _index(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "index.json"
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PretrainedUnavailable(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(index, dict):
        raise PretrainedUnavailable(f"{path}: expected a mapping of names to entries")
    return index


REPO_ROOT = PRETRAINED_DIR.parents[1]  # a source checkout's root (archived generators live under it)


def _located(root: Path, entry: dict[str, Any]) -> Path | None:
    """Where an index entry's file is: in the package, else (archived) in the source repository; None if absent."""
    shipped = root / entry.get("file", "")
    if entry.get("file") and shipped.is_file():
        return shipped
    archived = entry.get("archived_at")
    if archived and (REPO_ROOT / archived).is_file():
        return REPO_ROOT / archived
    return None


def list_pretrained(*, root: str | os.PathLike | None = None, archived: bool = False,
                    details: bool = False) -> list[str] | list[dict[str, Any]]:
    """Names of the generators shipped in the package (``archived=True``: also those a source checkout keeps);
    ``details=True``: dicts with name, licence, resolution, classes, where the file is and whether it is the default."""
    root = Path(root) if root is not None else PRETRAINED_DIR
    rows = []
    for name, e in sorted(_index(root).items()):
        where = _located(root, e)
        if where is None or ("archived_at" in e and not archived):
            continue
        rows.append({"name": name, "default": name == DEFAULT_PRETRAINED, "licence": e.get("licence", "unknown"),
                     "resolution": e.get("resolution"), "classes": e.get("classes"),
                     "archived": "archived_at" in e, "discriminator": "discriminator" in e, "path": str(where)})
    return rows if details else [r["name"] for r in rows]


def pretrained_info(name: str, *, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The index entry of ``name`` (file, sha256, card, manifest_hash, resolution, ...)."""
    root = Path(root) if root is not None else PRETRAINED_DIR
    index = _index(root)
    if name not in index:
        raise PretrainedUnavailable(f"no pretrained generator {name!r} in this version; available: "
                                    f"{list_pretrained(root=root, archived=True)}")
    missing = [k for k in ("file", "sha256", "card") if k not in index[name]]
    if missing:
        raise PretrainedUnavailable(f"{root / 'index.json'}: entry {name!r} lacks {missing}")
    return dict(index[name])


def pretrained_path(name: str, *, root: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """Path of the shipped file of ``name``, after checking its sha256 against the index."""
    root = Path(root) if root is not None else PRETRAINED_DIR
    entry = pretrained_info(name, root=root)
    return _shipped_file(_where(root, entry, name, "generator"), entry["sha256"] if verify else None,
                         f"pretrained generator {name!r}")


def _where(root: Path, entry: dict[str, Any], name: str, what: str) -> Path:
    """An entry's file in the package or, archived, in the source repository; a clear error when it is neither."""
    found = _located(root, entry)
    if found is not None:
        return found
    if entry.get("archived_at"):
        raise PretrainedUnavailable(
            f"the {what} of {name!r} does not ship in the package: a clone of the gan-augment repository keeps it "
            f"at {entry['archived_at']} (pass that path); the package ships {list_pretrained(root=root)}")
    return root / entry["file"]  # missing from the package: _shipped_file says so


def _shipped_file(path: Path, sha256: str | None, what: str) -> Path:
    """``path`` if it is there and (``sha256`` given) its bytes hash to the index's value."""
    if not path.is_file():
        raise PretrainedUnavailable(f"{what}: {path} is missing (a partial install?)")
    if sha256 is not None and (got := file_sha256(path)) != sha256:
        raise PretrainedUnavailable(f"refusing {path}: its sha256 {got[:16]}... does not match its card's "
                                    f"{sha256[:16]}... (the file was changed or damaged); reinstall the package")
    return path


def pretrained_discriminator_path(name: str, *, root: str | os.PathLike | None = None) -> Path:
    """The discriminator shipped beside generator ``name`` (index key ``discriminator``: file and sha256), for
    continuing its training (``train.init_discriminator=pretrained:NAME``), after checking its sha256."""
    root = Path(root) if root is not None else PRETRAINED_DIR
    entry = pretrained_info(name, root=root).get("discriminator")
    if not entry:
        raise PretrainedUnavailable(f"pretrained generator {name!r} ships no discriminator (its training run ended "
                                    "before the trainer exported one); warm-start its generator with a fresh D "
                                    "(leave train.init_discriminator unset)")
    return _shipped_file(_where(root, entry, name, "discriminator"), entry["sha256"],
                         f"pretrained discriminator of {name!r}")


def resolve_spec(spec: str) -> str:
    """A generator argument as the CLI, the trainer (``train.init_generator``) and the benchmark take it:
    ``pretrained:NAME`` -> the shipped file's path (hash-checked against its card); anything else is a path."""
    return str(pretrained_path(spec.split(":", 1)[1])) if spec.startswith("pretrained:") else spec


def load_pretrained(name: str, *, device: str | torch.device = "cpu",
                    root: str | os.PathLike | None = None) -> GeneratorBase:
    """Load a shipped generator (eval-ready, ``sample()`` takes class names) after the hash check."""
    return load_generator(pretrained_path(name, root=root), device=device)


def model_card(name: str, *, root: str | os.PathLike | None = None) -> str:
    """The Markdown model card of ``name``."""
    root = Path(root) if root is not None else PRETRAINED_DIR
    return (root / pretrained_info(name, root=root)["card"]).read_text(encoding="utf-8")
