"""Full-reference image metrics (piq, lpips) under two named protocols.

- ``paired-batch``: the seeds' protocol (MedGAN, MedImageGAN): generated image ``i`` against real image ``i``,
  both scaled to [0, 1]. Real and generated images are unrelated, so these numbers say nothing about realism on
  their own; we report them for comparison with the papers' tables.
- ``nearest-real``: each generated image against its nearest real training image in a feature space.

Directions: PSNR, SSIM, MS-SSIM, HaarPSI higher is better; MS-GMSD, MDSI, LPIPS lower is better.
LPIPS needs ImageNet backbone weights that no PyPI package ships: it runs only when torchvision's file is in
the torch hub cache (or given as a path) and is otherwise reported as unavailable - never guessed, never fetched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .._io import display_path
from ..weights import torchvision_cache_file

__all__ = ["reference_metrics", "load_lpips", "LPIPSUnavailable", "nearest_indices", "REFERENCE_METRICS"]

REFERENCE_METRICS = ("psnr", "ssim", "ms_ssim", "ms_gmsd", "mdsi", "haarpsi", "lpips")


class LPIPSUnavailable(RuntimeError):
    """LPIPS backbone weights are not on this machine."""


def _backbone_weights_enum(net: str):
    import torchvision.models as tvm

    return {"alex": tvm.AlexNet_Weights.IMAGENET1K_V1, "vgg": tvm.VGG16_Weights.IMAGENET1K_V1,
            "squeeze": tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1}[net]


def load_lpips(net: str = "alex", *, backbone_weights: str | os.PathLike | None = None,
               device: str | torch.device = "cpu"):
    """An ``lpips.LPIPS`` model whose backbone comes from a local file (never downloaded).

    Looks for ``backbone_weights`` or torchvision's file in the torch hub cache (``$TORCH_HOME``); raises
    :class:`LPIPSUnavailable` with the path it looked for otherwise.
    """
    if net not in ("alex", "vgg", "squeeze"):
        raise ValueError(f"LPIPS net must be 'alex', 'vgg' or 'squeeze', got {net!r}")
    path = Path(backbone_weights) if backbone_weights is not None else torchvision_cache_file(_backbone_weights_enum(net))
    if not path.is_file():
        raise LPIPSUnavailable(f"unavailable: backbone weights not found ({display_path(path)}); put torchvision's "
                               f"ImageNet {net} "
                               "weights there or pass backbone_weights=PATH")
    import warnings

    import lpips

    # pnet_rand=True builds the backbone without torchvision's download; lpips' own linear heads ship with it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")  # lpips' old API use
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    own = model.net.state_dict()
    mapped = {}
    for key in own:  # lpips keys look like "slice2.3.weight" for torchvision's "features.3.weight"
        _, idx, param = key.split(".", 2)
        if f"{idx}.{param}" not in features:
            raise LPIPSUnavailable(f"unavailable: {display_path(path)} does not hold a torchvision {net} backbone (no features.{idx})")
        mapped[key] = features[f"{idx}.{param}"]
    model.net.load_state_dict(mapped, strict=True)
    return model.to(device).eval()


def _ms_ssim_weights(size: int) -> torch.Tensor:
    """piq's default 5-scale weights, truncated (and renormalised) to the scales an image of ``size`` allows."""
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    scales = 5
    while scales > 1 and size < (11 - 1) * 2 ** (scales - 1) + 1:
        scales -= 1
    w = weights[:scales]
    return w / w.sum()


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.uint8:
        raise ValueError(f"reference metrics take uint8 images, got {x.dtype}")
    return x.float() / 255.0


def _per_image(fn, x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
    return fn(x, y, data_range=1.0, reduction="none", **kw).float()


def reference_metrics(generated: torch.Tensor, reference: torch.Tensor, *, lpips_model=None,
                      lpips_error: str | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Mean of each metric over image pairs ``(generated[i], reference[i])``; uint8 (N, C, H, W) inputs.

    PSNR of identical images is infinite; it is capped at 100 dB here (reported as such).
    """
    import piq

    if generated.shape != reference.shape:
        raise ValueError(f"pairs need equal shapes, got {tuple(generated.shape)} and {tuple(reference.shape)}")
    size = generated.shape[-1]
    ms_w = _ms_ssim_weights(size)
    sums: dict[str, float] = {k: 0.0 for k in REFERENCE_METRICS if k != "lpips"}
    lpips_sum, n = 0.0, len(generated)
    for i in range(0, n, batch_size):
        x, y = _to_unit(generated[i:i + batch_size]), _to_unit(reference[i:i + batch_size])
        x3, y3 = (x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)) if x.shape[1] == 1 else (x, y)
        mse = F.mse_loss(x, y, reduction="none").flatten(1).mean(1)
        sums["psnr"] += torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-10)), torch.full_like(mse, 100.0)
                                    ).clamp(max=100.0).sum().item()
        sums["ssim"] += _per_image(piq.ssim, x, y).sum().item()
        sums["ms_ssim"] += _per_image(piq.multi_scale_ssim, x, y, scale_weights=ms_w).sum().item()
        sums["ms_gmsd"] += _per_image(piq.multi_scale_gmsd, x3, y3, chromatic=x.shape[1] == 3).sum().item()
        sums["mdsi"] += _per_image(piq.mdsi, x3, y3).sum().item()
        sums["haarpsi"] += _per_image(piq.haarpsi, x, y).sum().item()
        if lpips_model is not None:
            dev = next(lpips_model.parameters()).device
            with torch.no_grad():
                lpips_sum += lpips_model(x3.to(dev) * 2 - 1, y3.to(dev) * 2 - 1).flatten().sum().item()
    out: dict[str, Any] = {k: v / n for k, v in sums.items()}
    out["ms_ssim_scales"] = len(ms_w)
    out["lpips"] = lpips_sum / n if lpips_model is not None else (lpips_error or "unavailable")
    out["n_pairs"] = n
    return out


def nearest_indices(queries: torch.Tensor, pool: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query feature vector, the index of (and L2 distance to) its nearest neighbour in ``pool``."""
    idx, dist = [], []
    pool = pool.float()
    for i in range(0, len(queries), batch_size):
        d = torch.cdist(queries[i:i + batch_size].float(), pool)
        m = d.min(dim=1)
        idx.append(m.indices)
        dist.append(m.values)
    return torch.cat(idx), torch.cat(dist)
