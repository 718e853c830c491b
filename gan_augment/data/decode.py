"""Robust image decoding to a fixed channel count.

Every image that enters gan-augment goes through :func:`load_image`: it applies EXIF rotation, flattens alpha,
maps 16-bit and float images to 8 bits and returns a ``uint8`` array of shape ``(H, W, channels)``. A file that
cannot be decoded raises :class:`ImageDecodeError` naming the file, never a bare PIL error.
"""

from __future__ import annotations

import re
import threading
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = ["ImageDecodeError", "load_image", "load_pil", "parse_npz_ref", "make_npz_ref", "IMAGE_EXTENSIONS",
           "is_grey", "detect_channels", "resolve_channels", "image_size"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")

# Manifests can point into MedMNIST-style .npz files: "<file.npz>::<array>[<index>]".
_NPZ_REF = re.compile(r"^(?P<file>.+\.npz)::(?P<key>[A-Za-z0-9_]+)\[(?P<index>\d+)\]$")


class ImageDecodeError(ValueError):
    """An image file could not be read or decoded; ``path`` names it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot decode image {path!s}: {reason}")
        self.path = str(path)
        self.reason = reason


def make_npz_ref(npz_path: str | Path, key: str, index: int) -> str:
    """Reference to one image inside a MedMNIST-style ``.npz`` file, usable as a manifest path."""
    return f"{npz_path}::{key}[{int(index)}]"


def parse_npz_ref(ref: str) -> tuple[str, str, int] | None:
    """Split ``"file.npz::train_images[3]"`` into ``(file, key, index)``; ``None`` for ordinary paths."""
    m = _NPZ_REF.match(str(ref))
    if m is None:
        return None
    return m.group("file"), m.group("key"), int(m.group("index"))


class _NpzCache:
    """Per-process cache of arrays loaded from .npz files (np.load of an npz re-reads the zip on every key)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, file: str, key: str) -> np.ndarray:
        ck = (str(Path(file).resolve()), key)
        with self._lock:
            if ck not in self._arrays:
                try:
                    with np.load(file, allow_pickle=False) as npz:
                        if key not in npz.files:
                            raise ImageDecodeError(file, f"array {key!r} not in npz (has {sorted(npz.files)})")
                        self._arrays[ck] = npz[key]
                except (OSError, zipfile.BadZipFile, ValueError) as exc:
                    if isinstance(exc, ImageDecodeError):
                        raise
                    raise ImageDecodeError(file, f"unreadable npz: {exc}") from exc
            return self._arrays[ck]


_NPZ = _NpzCache()


def load_pil(path: str | Path) -> Image.Image:
    """Open and fully decode an image (or an npz reference) as PIL, EXIF rotation applied, mode untouched."""
    ref = parse_npz_ref(str(path))
    if ref is not None:
        file, key, index = ref
        arr = _NPZ.get(file, key)
        if index >= len(arr):
            raise ImageDecodeError(str(path), f"index {index} out of range for {key} with {len(arr)} images")
        return Image.fromarray(np.ascontiguousarray(arr[index]))
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone flipped PIL's global switch; we refuse to silently accept half images.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; gan-augment needs it False to detect "
                           "truncated files")
    try:
        img = Image.open(path)
        img.load()  # decode now: a truncated file fails here, not later in a worker
        img = ImageOps.exif_transpose(img)
    except FileNotFoundError as exc:
        raise ImageDecodeError(str(path), "file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(str(path), f"{type(exc).__name__}: {exc}") from exc
    return img


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file (its header only; EXIF rotation applied) or an npz reference."""
    ref = parse_npz_ref(str(path))
    if ref is not None:
        return load_pil(path).size
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except FileNotFoundError as exc:
        raise ImageDecodeError(str(path), "file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(str(path), f"{type(exc).__name__}: {exc}") from exc
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)  # 5-8: turned by 90 degrees


def _high_bit_depth_to_uint8(img: Image.Image) -> Image.Image:
    """Map 16-bit / 32-bit integer and float single-channel images to 8 bits.

    Integer images whose values fit in 16 bits are scaled by the full 16-bit range (x / 257), which keeps
    relative intensities across a data set; float images are min-max scaled per image.
    """
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = np.zeros_like(arr, dtype=np.float64) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        out = np.nan_to_num(scaled).round()
    else:
        arr = arr.astype(np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            lo, hi = int(arr.min()), int(arr.max())
            out = (arr - lo) * 255.0 / max(hi - lo, 1)
        else:
            out = arr / 257.0
        out = np.round(out)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), mode="L")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to ``"L"`` (channels=1) or ``"RGB"`` (channels=3); alpha is composited on black."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _high_bit_depth_to_uint8(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "RGBa", "La", "RGBA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def load_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Decode ``path`` to a ``uint8`` array of shape ``(H, W, channels)``."""
    img = to_mode(load_pil(path), channels)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


_GREY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def is_grey(img: Image.Image) -> bool:
    """Single-channel, or colour with R = G = B everywhere (a grey scan saved as RGB)."""
    if img.mode in _GREY_MODES:
        return True
    rgb = np.asarray(img.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def detect_channels(paths, *, progress: bool = False) -> int:
    """1 when every image in ``paths`` is grey (see :func:`is_grey`), else 3; stops at the first colour image."""
    from tqdm.auto import tqdm

    for p in tqdm(paths, desc="checking channels", disable=not progress, leave=False):
        if not is_grey(load_pil(p)):
            return 3
    return 1


def resolve_channels(channels: int | str, paths, *, progress: bool = False) -> int:
    """``1`` / ``3`` as given, ``"auto"`` -> :func:`detect_channels` of ``paths`` (the training images)."""
    if channels == "auto":
        return detect_channels(paths, progress=progress)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or 'auto', got {channels!r}")
    return int(channels)
