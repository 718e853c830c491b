"""A map-style torch Dataset over one split of a manifest, with robust decoding and an optional uint8 cache."""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .decode import ImageDecodeError, load_image, load_pil, parse_npz_ref, to_mode
from .manifest import Manifest
from .transforms import RESIZE_POLICIES, apply_transform, convert_image, resize_to_square

__all__ = ["ManifestDataset", "estimate_cache_bytes", "format_bytes"]

OUTPUTS = ("pil", "numpy", "tensor", "float")


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return f"{n:.1f} TB"


def estimate_cache_bytes(paths: Sequence[str], channels: int, image_size: int | None) -> int:
    """Bytes a uint8 cache of ``paths`` will take; reads only image headers when sizes vary."""
    if image_size is not None:
        return len(paths) * image_size * image_size * channels
    total = 0
    for p in paths:
        try:
            if parse_npz_ref(p) is not None:
                w, h = load_pil(p).size
            else:
                with Image.open(p) as im:  # header only
                    w, h = im.size
        except (OSError, ValueError):  # unreadable: decoding will report it, naming the file
            continue
        total += w * h * channels
    return total


class ManifestDataset(Dataset):
    """Images of one manifest split as ``(image, class_index)`` pairs.

    Args:
        manifest: a :class:`Manifest` or the path of a manifest CSV.
        split: which split (``None`` = all rows).
        channels: 1 (grayscale) or 3 (RGB); every image is converted to it.
        image_size: if set, make every image a square of this size (as uint8, before ``transform``) by the
            ``resize`` policy; required for a compact cache.
        resize: ``"center_crop"`` (default: shorter side, centred crop), ``"squash"`` or ``"pad"`` - see
            :func:`~gan_augment.data.transforms.resize_to_square`.
        output: ``"pil"`` (default, like torchvision's ImageFolder), ``"numpy"`` (H, W, C uint8, for
            albumentations), ``"tensor"`` (C, H, W uint8) or ``"float"`` (C, H, W in [-1, 1]).
        transform: applied to the image last; torchvision-style or albumentations-style.
        classes: restrict to these class names (default: all classes of the manifest).
        cache: decode everything once and keep it in memory as uint8 (the estimate is printed first).
        on_error: ``"raise"`` (default) stops at the first undecodable file, naming it; ``"skip"`` checks
            every file up front, drops the bad ones and warns with their count.

    Example:
        >>> ds = ManifestDataset("manifest.csv", "train", image_size=128, output="numpy")  # doctest: +SKIP
        >>> image, label = ds[0]  # doctest: +SKIP
    """

    def __init__(
        self,
        manifest: Manifest | str | os.PathLike,
        split: str | None = "train",
        *,
        channels: int = 3,
        image_size: int | None = None,
        resize: str = "center_crop",
        output: str = "pil",
        transform: Callable | None = None,
        classes: Sequence[str] | None = None,
        cache: bool = False,
        on_error: str = "raise",
        verbose: bool = True,
        allow_empty_classes: bool = False,
    ) -> None:
        if not isinstance(manifest, Manifest):
            manifest = Manifest.read(manifest)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose one of {OUTPUTS}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"unknown resize policy {resize!r}; choose one of {RESIZE_POLICIES}")
        self.resize = resize
        self.manifest = manifest
        self.split = split
        self.channels = channels
        self.image_size = image_size
        self.output = output
        self.transform = transform
        self.on_error = on_error
        self.verbose = verbose

        self.classes = list(classes) if classes is not None else list(manifest.class_names)
        unknown = [c for c in self.classes if c not in manifest.class_names]
        if unknown:
            raise ValueError(f"classes {unknown} are not in the manifest; its classes are {manifest.class_names}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        rows = [i for i in manifest.indices(split) if manifest.labels[i] in self.class_to_idx]
        self.paths = [manifest.paths[i] for i in rows]
        self.targets = [self.class_to_idx[manifest.labels[i]] for i in rows]
        self.groups = [manifest.groups[i] for i in rows]
        self._cache: list[np.ndarray] | np.ndarray | None = None
        self.skipped: list[str] = []

        if cache:
            self._build_cache()
        elif on_error == "skip":
            self._drop_undecodable(self._validate_all())
        if not allow_empty_classes:  # an external test set holds only some of the training classes
            self._check_classes_nonempty()

    # ------------------------------------------------------------------------------------------ plumbing
    @property
    def samples(self) -> list[tuple[str, int]]:
        """``(path, class_index)`` pairs, like torchvision's ImageFolder."""
        return list(zip(self.paths, self.targets))

    def get_labels(self) -> list[int]:
        return list(self.targets)

    def class_counts(self) -> dict[str, int]:
        c = Counter(self.targets)
        return {name: c[i] for i, name in enumerate(self.classes)}

    def _check_classes_nonempty(self) -> None:
        counts = self.class_counts()
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            where = f"split {self.split!r}" if self.split else "the manifest"
            raise ValueError(f"classes {empty} have no images in {where}"
                             + (f" after skipping {len(self.skipped)} undecodable files" if self.skipped else "")
                             + "; pass classes=[...] to leave them out")

    def _decode(self, path: str) -> np.ndarray:
        if self.image_size is None:
            return load_image(path, self.channels)
        img = resize_to_square(to_mode(load_pil(path), self.channels), self.image_size, self.resize)
        arr = np.asarray(img, dtype=np.uint8)
        return arr[:, :, None] if arr.ndim == 2 else arr

    def _validate_all(self) -> list[int]:
        bad = []
        for i, p in enumerate(tqdm(self.paths, desc="checking images", disable=not self.verbose, leave=False)):
            try:
                load_pil(p)
            except ImageDecodeError:
                bad.append(i)
        return bad

    def _drop_undecodable(self, bad: list[int]) -> None:
        if not bad:
            return
        self.skipped = [self.paths[i] for i in bad]
        keep = sorted(set(range(len(self.paths))) - set(bad))
        self.paths = [self.paths[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]
        self.groups = [self.groups[i] for i in keep]
        warnings.warn(f"skipped {len(bad)} undecodable images (e.g. {self.skipped[0]})", stacklevel=3)

    def _build_cache(self) -> None:
        need = estimate_cache_bytes(self.paths, self.channels, self.image_size)
        if self.verbose:
            size = f"{self.image_size}x{self.image_size}" if self.image_size else "native size"
            print(f"caching {len(self.paths)} images at {size}x{self.channels} uint8: about {format_bytes(need)}",
                  file=sys.stderr)
        arrays, bad = [], []
        for i, p in enumerate(tqdm(self.paths, desc="caching images", disable=not self.verbose, leave=False)):
            try:
                arrays.append(self._decode(p))
            except ImageDecodeError:
                if self.on_error == "raise":
                    raise
                bad.append(i)
        self._drop_undecodable(bad)
        self._cache = np.stack(arrays) if (self.image_size is not None and arrays) else arrays

    @property
    def cached(self) -> bool:
        return self._cache is not None

    def uint8_array(self) -> np.ndarray:
        """The whole cached split as one ``(N, H, W, C)`` uint8 array (needs ``cache=True`` and ``image_size``)."""
        if not isinstance(self._cache, np.ndarray):
            raise RuntimeError("uint8_array() needs a dataset built with cache=True and image_size set")
        return self._cache

    # ------------------------------------------------------------------------------------------ Dataset
    def __len__(self) -> int:
        return len(self.paths)

    def load_array(self, index: int) -> np.ndarray:
        """The decoded ``uint8`` (H, W, C) image at ``index``, before output conversion and transform."""
        if self._cache is not None:
            return self._cache[index]
        return self._decode(self.paths[index])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = convert_image(self.load_array(index), self.output)
        return apply_transform(self.transform, image), self.targets[index]

    def __repr__(self) -> str:
        src = Path(self.manifest.location).name if self.manifest.location else "manifest"
        return (f"ManifestDataset({src}, split={self.split!r}, n={len(self)}, classes={len(self.classes)}, "
                f"channels={self.channels}, image_size={self.image_size}, output={self.output!r}, "
                f"cached={self.cached})")
