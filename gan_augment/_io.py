"""Small file helpers shared by every layer: atomic writes, content hashes, safetensors metadata."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["atomic_path", "atomic_open", "folder_removed_on_failure", "write_json", "write_text", "sha256_file",
           "safetensors_metadata", "display_path", "portable_paths"]


def display_path(path: str | os.PathLike | None) -> str | None:
    """A path as a record or report should show it: relative to the working directory when inside it, ``~/...``
    under the home folder, else as given - so that result files committed from one machine name no folder of it."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    for base, prefix in ((cwd, ""), (home, "~/")):
        try:
            rel = p.resolve().relative_to(base)
        except ValueError:
            continue
        return prefix + rel.as_posix() if prefix or str(rel) != "." else "."
    return p.as_posix()


def portable_paths(obj: Any) -> Any:
    """``obj`` (nested dicts, lists, strings) with no absolute path string left: each is shown by
    :func:`display_path` when that makes it relative, else as ``.../<folder>/<name>``. For metadata that travels with a file
    (a generator shared with another site names no folder of the machine that trained it)."""
    if isinstance(obj, dict):
        return {k: portable_paths(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(portable_paths(v) for v in obj)
    if isinstance(obj, str) and os.path.isabs(obj):
        shown = display_path(obj)
        return shown if not os.path.isabs(shown) else ".../" + "/".join(Path(obj).parts[-2:])
    return obj


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves the previous file (if any) untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open()`` for writing that renames into place on success (see :func:`atomic_path`)."""
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open is for writing only, got mode {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def folder_removed_on_failure(path: str | os.PathLike) -> Iterator[None]:
    """If the block fails, remove ``path`` - but only when it did not exist before the block (a folder that was
    there, the user's own or a run to resume, stays as it was)."""
    created = not Path(path).exists()
    try:
        yield
    except BaseException:
        if created:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def safetensors_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON this library writes under ``"gan_augment"`` in a safetensors header (generator, discriminator and
    classifier files); ``{}`` for a safetensors file without it; ValueError naming the file for anything else."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("gan_augment")
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a safetensors file: {exc}") from None
    return json.loads(raw) if raw else {}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(obj: Any) -> Any:
    # numpy scalars / arrays and paths show up in results; make them plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")
