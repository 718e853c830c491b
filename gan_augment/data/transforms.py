"""Image transforms shared by the GAN, the balanced dataset and the classifier.

``gan_preprocess`` is the seeds' preprocessing (MedImageGAN / MedGAN: resize, centre crop, to tensor,
normalise to [-1, 1]) as a torchvision ``Compose``. ``apply_transform`` lets one user pipeline serve every
dataset here, whether it is a torchvision transform (called with the image) or an albumentations pipeline
(called with ``image=`` and returning a dict).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms import functional as TF

__all__ = [
    "gan_preprocess",
    "resize_center_crop",
    "resize_to_square",
    "RESIZE_POLICIES",
    "upsampling_factor",
    "source_upsampling",
    "uint8_to_gan",
    "gan_to_uint8",
    "apply_transform",
    "is_albumentations",
    "convert_image",
]


def gan_preprocess(size: int, channels: int = 3) -> v2.Compose:
    """Resize (shorter side), centre crop, to float tensor, normalise to [-1, 1]."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(size, interpolation=InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=[0.5] * channels, std=[0.5] * channels),
    ])


RESIZE_POLICIES = ("center_crop", "squash", "pad", "unsquash_4x3")


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased) and take the centred square crop."""
    return resize_to_square(img, size, "center_crop")


def upsampling_factor(width: int, height: int, size: int, policy: str = "center_crop") -> float:
    """How much :func:`resize_to_square` enlarges a ``width`` x ``height`` image to make a ``size`` square (its
    most-enlarged axis): > 1 means the square holds interpolated pixels, detail the source never had."""
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {policy!r}; choose one of {RESIZE_POLICIES}")
    if policy == "pad":
        return size / max(width, height)
    if policy == "unsquash_4x3":  # the region cropped from the 4:3-stretched frame, in source pixels
        return size / min(_unsquash_crop(width, height))
    return size / min(width, height)


def _unsquash_crop(w: int, h: int) -> tuple[int, int]:
    """(width, height) in source pixels of the crop ``center_crop`` takes of a ``w`` x ``h`` image stretched to 4:3."""
    return (min(w, round(h * 3 / 4)), h) if w * 4 / 3 >= h else (w, round(w * 4 / 3))


def source_upsampling(paths, size: int, policy: str = "center_crop", *, sample: int = 200) -> dict[str, Any]:
    """How much making ``size`` squares of ``paths`` enlarges them, from the headers of an evenly spaced sample
    of at most ``sample`` files: ``{"sampled", "upsampled" (count enlarged by more than 10 %), "median_factor",
    "median_short_side"}``; files that cannot be read are left out (the dataset skips them itself, with a
    warning). A generator trained on enlarged images learns their interpolation, not detail."""
    from .decode import ImageDecodeError, image_size

    paths = list(paths)
    k = min(sample, len(paths))
    picks = sorted({round(i * (len(paths) - 1) / max(1, k - 1)) for i in range(k)})  # every file when k = len
    sizes = []
    for i in picks:
        try:
            sizes.append(image_size(paths[i]))
        except ImageDecodeError:
            continue
    if not sizes:
        return {"sampled": 0, "upsampled": 0, "median_factor": None, "median_short_side": None}
    factors = [upsampling_factor(w, h, size, policy) for w, h in sizes]
    return {"sampled": len(sizes), "upsampled": sum(f > 1.1 for f in factors),
            "median_factor": float(np.median(factors)), "median_short_side": int(np.median([min(s) for s in sizes]))}


def resize_to_square(img: Image.Image, size: int, policy: str = "center_crop") -> Image.Image:
    """A ``size`` x ``size`` image by one named policy (bicubic, antialiased):

    - ``"center_crop"`` (default): shorter side to ``size``, centred square crop - keeps the aspect ratio and
      loses the borders of the longer side (dermoscopy: the lesion sits in the centre of a 4:3 frame);
    - ``"squash"``: both sides to ``size`` - keeps the whole field of view, distorts the aspect ratio;
    - ``"pad"``: longer side to ``size``, the rest filled with black - keeps everything undistorted (scans whose
      edges hold anatomy: chest X-ray, CT, MRI slices of mixed shapes);
    - ``"unsquash_4x3"``: for images that someone squashed from 4:3 frames to squares (public re-packagings of the
      ISIC Archive): the width is stretched back by 4/3, then ``center_crop`` - a lesion then appears at the scale
      and aspect ``center_crop`` gives the 4:3 originals.
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {policy!r}; choose one of {RESIZE_POLICIES}")
    w, h = img.size
    if policy == "unsquash_4x3":  # the crop center_crop takes of the 4:3-stretched image, resampled once
        cw, ch = _unsquash_crop(w, h)
        return TF.resized_crop(img, (h - ch) // 2, (w - cw) // 2, ch, cw, [size, size],
                               interpolation=InterpolationMode.BICUBIC, antialias=True)
    if img.size == (size, size):
        return img
    if policy == "squash":
        return TF.resize(img, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    if policy == "pad":
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        img = TF.resize(img, [nh, nw], interpolation=InterpolationMode.BICUBIC, antialias=True)
        canvas = Image.new(img.mode, (size, size))  # black, in the image's own mode
        canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
        return canvas
    img = TF.resize(img, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.center_crop(img, [size, size])


def uint8_to_gan(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (same mapping as ``gan_preprocess``)."""
    return x.float().div_(127.5).sub_(1.0)


def gan_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clamped."""
    return x.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def is_albumentations(transform: Any) -> bool:
    """True for albumentations transforms and pipelines (they take ``image=`` and return a dict)."""
    return any(c.__module__.startswith("albumentations") for c in type(transform).__mro__)


def apply_transform(transform: Callable | None, image: Any) -> Any:
    """Apply a torchvision-style or albumentations-style transform to one image."""
    if transform is None:
        return image
    if is_albumentations(transform):
        if isinstance(image, Image.Image):
            image = np.asarray(image)
        elif isinstance(image, torch.Tensor):
            raise TypeError("albumentations transforms need numpy (H, W, C) images; use output='numpy'")
        return transform(image=image)["image"]
    return transform(image)


def convert_image(arr: np.ndarray, output: str) -> Any:
    """Turn a ``uint8`` (H, W, C) array into the dataset's output type.

    ``"numpy"``: the array itself (H, W, C); ``"pil"``: a PIL image (mode L or RGB); ``"tensor"``: a
    ``uint8`` (C, H, W) tensor; ``"float"``: a float (C, H, W) tensor in [-1, 1].
    """
    if output == "numpy":
        return arr
    if output == "pil":
        return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    t = torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).contiguous()  # never a view of a cache
    if output == "tensor":
        return t
    if output == "float":
        return uint8_to_gan(t)
    raise ValueError(f"unknown output type {output!r}; choose 'pil', 'numpy', 'tensor' or 'float'")
