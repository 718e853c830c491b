"""Synthetic items in the real dataset's own format: the same type (PIL, uint8 array, tensor), size and mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["ItemFormat"]


class ItemFormat:
    """Type, size and mode of the real dataset's images, so synthetic items look the same."""

    def __init__(self, sample: Any):
        self.kind: str
        if isinstance(sample, Image.Image):
            self.kind, self.mode, self.size = "pil", sample.mode, sample.size  # size = (W, H)
            self.channels = len(sample.getbands())
        elif isinstance(sample, np.ndarray):
            if sample.dtype != np.uint8:
                raise ValueError(f"real images are {sample.dtype} arrays; GANBalancedDataset needs uint8 images "
                                 "(move scaling / normalisation into transform=)")
            self.kind, self.squeeze = "numpy", sample.ndim == 2
            self.channels = 1 if sample.ndim == 2 else sample.shape[2]
            self.size = (sample.shape[1], sample.shape[0])
        elif isinstance(sample, torch.Tensor):
            if sample.ndim != 3:
                raise ValueError(f"real tensor images must be (C, H, W), got shape {tuple(sample.shape)}")
            self.kind, self.dtype = "tensor", sample.dtype
            if sample.is_floating_point() and (sample.min() < 0 or sample.max() > 1):
                raise ValueError("real images are normalised float tensors; let real_ds return raw images (PIL, "
                                 "uint8 array/tensor or [0, 1] floats) and pass the normalisation as transform=")
            self.channels = sample.shape[0]
            self.size = (sample.shape[2], sample.shape[1])
        else:
            raise ValueError(f"real images of type {type(sample).__name__} are not supported; return PIL images, "
                             "uint8 numpy arrays (H, W, C) or tensors (C, H, W)")

    def from_uint8(self, hwc: np.ndarray) -> Any:
        """A synthetic (H, W, C) uint8 image, already at the real size, in the real items' type."""
        if self.kind == "pil":
            img = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
            return img if img.mode == self.mode else img.convert(self.mode)
        if self.kind == "numpy":
            return hwc[:, :, 0].copy() if self.squeeze else hwc.copy()
        t = torch.from_numpy(np.array(hwc, copy=True)).permute(2, 0, 1).contiguous()
        return t.to(self.dtype).div_(255.0) if self.dtype.is_floating_point else t.to(self.dtype)

    def to_storage(self, images: torch.Tensor) -> np.ndarray:
        """(N, C, H, W) uint8 generator output -> (N, H, W, C) uint8 at the real size and channel count."""
        out = []
        for img in images:
            arr = img.permute(1, 2, 0).numpy()
            pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
            pil = pil.convert("L" if self.channels == 1 else "RGB")
            if pil.size != self.size:
                pil = pil.resize(self.size, Image.Resampling.BICUBIC)
            a = np.asarray(pil, dtype=np.uint8)
            out.append(a[:, :, None] if a.ndim == 2 else a)
        return np.stack(out) if out else np.zeros((0, self.size[1], self.size[0], self.channels), np.uint8)
