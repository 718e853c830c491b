"""Distribution metrics on precomputed features: FID, KID, IS (torchmetrics), precision / recall (piq) and a
classifier two-sample test (scikit-learn).

Metrics take features, not images or URLs (MONAI's ``FIDMetric`` style): the caller picks the feature space
(:mod:`gan_augment.metrics.features`) and can cache features. torchmetrics' FID / KID / IS accept a custom
``feature=`` module; we pass an identity module so they run on the features we already have, and their
Frechet / polynomial-kernel / KL code is used as is. Random subsets (KID, IS splits) are drawn under a fixed
seed without touching the caller's RNG. Each call sees whole feature sets, so the metrics never gather across
torchrun processes (``sync_on_compute=False``): rank 0 alone may evaluate.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["fid", "kid", "inception_score", "precision_recall", "real_vs_synthetic", "feature_spread",
           "distribution_metrics", "spectrum_comparison", "colour_comparison", "colour_statistics", "class_fidelity",
           "METRIC_DIRECTIONS"]

# Which way is better, for every metric we report (stated in reports and tested).
METRIC_DIRECTIONS = {
    "fid": "lower", "kid": "lower", "is": "higher", "precision": "higher", "recall": "higher",
    "psnr": "higher", "ssim": "higher", "ms_ssim": "higher", "haarpsi": "higher",
    "ms_gmsd": "lower", "mdsi": "lower", "lpips": "lower",
    "c2st": "lower",  # real-vs-synthetic accuracy: 0.5 = indistinguishable, 1 = every image told apart
    "spread_ratio": "closer to 1",  # generated / real within-set feature spread; near 0 = mode collapse
    "high_band_gap": "closer to 0",  # generated - real log10 spectral power, upper half of the frequencies
    "class_fidelity": "higher",  # share of generated images a real-trained linear classifier gives their class
}


def _quiet(factory, *args, **kwargs):
    # torchmetrics warns that KID / IS keep all features in memory; ours are small precomputed tensors.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        return factory(*args, **kwargs)


class _Precomputed(nn.Module):
    """Identity "feature extractor": lets torchmetrics' metrics consume features computed elsewhere."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _as2d(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    if t.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(t.shape)}")
    return t


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _as2d(real), _as2d(fake)
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("FID needs at least 2 real and 2 generated samples")
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), sync_on_compute=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return max(float(metric.compute()), 0.0)  # tiny negative values are round-off of identical sets


def kid(real: torch.Tensor, fake: torch.Tensor, *, subset_size: int | None = None, subsets: int = 100,
        seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance (Binkowski et al. 2018), mean and std over random subsets.

    ``subset_size`` defaults to min(1000, n_real, n_fake) and is never larger than either sample count.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _as2d(real), _as2d(fake)
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError("KID needs at least 2 real and 2 generated samples")
    subset_size = min(subset_size or 1000, n)
    metric = _quiet(KernelInceptionDistance, feature=_Precomputed(real.shape[1]), subsets=subsets,
                    subset_size=subset_size, sync_on_compute=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, *, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Inception score (Salimans et al. 2016) from class logits of *some* classifier, mean and std over splits.

    The classic IS uses ImageNet InceptionV3 logits; here the logits' source is the caller's choice and must be
    named in any report (an ImageNet IS says little about dermoscopy).
    """
    from torchmetrics.image.inception import InceptionScore

    logits = _as2d(logits)
    splits = max(1, min(splits, len(logits) // 2))
    metric = _quiet(InceptionScore, feature=_Precomputed(logits.shape[1]), splits=splits, normalize=False,
                    sync_on_compute=False)
    metric.update(logits)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(0.0 if math.isnan(float(std)) else std)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 5) -> tuple[float, float]:
    """Improved precision and recall with k-NN manifolds (Kynkaanniemi et al. 2019), via piq."""
    import piq

    real, fake = _as2d(real).float(), _as2d(fake).float()
    k = min(k, len(real) - 1, len(fake) - 1)
    if k < 1:
        raise ValueError("precision/recall needs at least 2 real and 2 generated samples")
    precision, recall = piq.PR(nearest_k=k)(real, fake)  # piq's argument order is (real, fake)
    return float(precision), float(recall)


def real_vs_synthetic(real: torch.Tensor, fake: torch.Tensor, *, folds: int = 5, seed: int = 0) -> float:
    """Classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): held-out balanced accuracy of a linear probe
    (standardised features, L2 logistic regression) telling generated from real features, k-fold
    cross-validated. 0.5: the probe cannot tell them apart; near 1: synthetic images carry a signature a
    classifier trained on them can learn as a shortcut ("looks generated" instead of "looks like class c").
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real, fake = _as2d(real).double().cpu().numpy(), _as2d(fake).double().cpu().numpy()
    folds = min(folds, len(real), len(fake))
    if folds < 2:
        raise ValueError("the two-sample test needs at least 2 real and 2 generated samples")
    x = np.concatenate([real, fake])
    y = np.r_[np.zeros(len(real), dtype=np.int64), np.ones(len(fake), dtype=np.int64)]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, x, y, cv=cv, scoring="balanced_accuracy").mean())


def spectrum_comparison(real: torch.Tensor, fake: torch.Tensor, *, folds: int = 5, seed: int = 0,
                        batch_size: int = 256) -> dict:
    """Fine detail, measured without a network: ring-averaged power spectra (log10, grey) of generated vs real
    images of one size (uint8 or float, (N, C, H, W)), see :func:`gan_augment.losses.radial_power_spectrum`.

    Returns per radius (1 .. H/2 - 1 cycles per image) the mean real log10 power and the generated-minus-real
    gap (-0.3 = half the power), ``high_band_gap`` (mean gap over the upper half of the radii: negative = too
    smooth, positive = too noisy or grid artefacts) and ``probe``: the real-vs-synthetic test of
    :func:`real_vs_synthetic` on the spectra alone. A high probe with a large gap says the images are told from
    real ones by their texture, not their content.
    """
    from ..losses import radial_power_spectrum

    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and generated images must have one shape, got {tuple(real.shape[1:])} and "
                         f"{tuple(fake.shape[1:])}")

    def spectra(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([radial_power_spectrum(x[i:i + batch_size].float()) for i in range(0, len(x), batch_size)])

    s_real, s_fake = spectra(real).double(), spectra(fake).double()
    gap = s_fake.mean(0) - s_real.mean(0)
    half = len(gap) // 2
    return {"radius": list(range(1, len(gap) + 1)), "real_log10_power": [round(float(v), 4) for v in s_real.mean(0)],
            "generated_minus_real": [round(float(v), 4) for v in gap],
            "high_band_gap": float(gap[half:].mean()), "probe": real_vs_synthetic(s_real, s_fake, folds=folds, seed=seed),
            "n_real": len(real), "n_fake": len(fake)}


COLOUR_STATISTICS = ("mean", "std", "p10", "p50", "p90")


def colour_statistics(images: torch.Tensor) -> torch.Tensor:
    """Per image and channel: mean, standard deviation and the 10th / 50th / 90th percentiles of the pixel values,
    (N, C * 5) in the images' own scale (channel-major: c0 mean, c0 std, ..., c1 mean, ...)."""
    if images.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(images.shape)}")
    x = images.float().flatten(2)  # (N, C, H*W)
    q = torch.quantile(x, torch.tensor([0.1, 0.5, 0.9]), dim=2).permute(1, 2, 0)  # (N, C, 3)
    return torch.cat([x.mean(2, keepdim=True), x.std(2, keepdim=True), q], 2).flatten(1)


def colour_comparison(real: torch.Tensor, fake: torch.Tensor, *, folds: int = 5, seed: int = 0) -> dict:
    """Colour, measured without a network: each image summarised by :func:`colour_statistics` (per channel its
    mean, spread and 10 / 50 / 90th percentiles), generated against real images of one size and scale (uint8:
    grey levels 0-255). Returns the generated-minus-real gap of each statistic's mean over the images
    (``gap[channel][statistic]``; channels named R, G, B for 3-channel images) and ``probe``: the real-vs-synthetic
    test of :func:`real_vs_synthetic` on those 5 x C numbers alone. A high colour probe says the images are told
    from real ones by their colour distribution - which a discriminator trained under strong colour augmentation
    (DiffAugment's brightness / saturation / contrast at p = 1) is least able to see.

    Hand-written: the statistics are five torch reductions, and the probe is the one the other comparisons use.
    """
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and generated images must have one shape, got {tuple(real.shape[1:])} and "
                         f"{tuple(fake.shape[1:])}")
    if real.dtype != fake.dtype:
        raise ValueError(f"real and generated images must have one scale, got {real.dtype} and {fake.dtype}")
    c = real.shape[1]
    names = ["R", "G", "B"] if c == 3 else [f"channel {i}" for i in range(c)]
    s_real, s_fake = colour_statistics(real).double(), colour_statistics(fake).double()
    gap = (s_fake.mean(0) - s_real.mean(0)).view(c, len(COLOUR_STATISTICS))
    real_mean = s_real.mean(0).view(c, len(COLOUR_STATISTICS))
    return {"statistics": list(COLOUR_STATISTICS),
            "real": {names[i]: {k: round(float(real_mean[i, j]), 3) for j, k in enumerate(COLOUR_STATISTICS)}
                     for i in range(c)},
            "generated_minus_real": {names[i]: {k: round(float(gap[i, j]), 3) for j, k in enumerate(COLOUR_STATISTICS)}
                                     for i in range(c)},
            "probe": real_vs_synthetic(s_real, s_fake, folds=folds, seed=seed),
            "n_real": len(real), "n_fake": len(fake)}


def class_fidelity(train: torch.Tensor, train_labels: Sequence[int], fake: torch.Tensor, fake_labels: Sequence[int],
                   *, heldout: torch.Tensor | None = None, heldout_labels: Sequence[int] | None = None,
                   class_names: Sequence[str] | None = None) -> dict:
    """Does each generated image look like *its* class? GAN-test (Shmelkov et al., "How good is my GAN?", ECCV
    2018) in a fixed feature space: a linear classifier (standardised features, L2 logistic regression with
    class-balanced weights, so a rare class is not simply never predicted) is fitted on real training images'
    features and asked the class of every generated image. Per class: the share of generated images it assigns
    to their own class and, given held-out real images, the same share for them - the ceiling a perfect
    generator would reach under this protocol. ``ratio`` = mean generated / mean real held-out over the classes
    both have (1 = as recognisable as real images).

    A probe in the discriminator's own feature space would grade the generator with its teacher: use features
    the generator never trained against (InceptionV3 for a projected-Lite0 D).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _as2d(train).double().cpu().numpy(), np.asarray(train_labels)
    if len(set(y.tolist())) < 2:
        raise ValueError("class fidelity needs real training images of at least 2 classes")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    clf.fit(x, y)
    names = list(class_names) if class_names is not None else [str(c) for c in sorted(set(y.tolist()))]

    def shares(feats, labels) -> dict[str, float]:
        labels = np.asarray(labels)
        pred = clf.predict(_as2d(feats).double().cpu().numpy())
        return {names[c]: float(np.mean(pred[labels == c] == c)) for c in sorted(set(labels.tolist()))}

    out: dict = {"generated": shares(fake, fake_labels), "n_train": int(len(y))}
    out["mean_generated"] = float(np.mean(list(out["generated"].values())))
    if heldout is not None and heldout_labels is not None:
        out["real_heldout"] = shares(heldout, heldout_labels)
        both = [c for c in out["generated"] if c in out["real_heldout"]]
        out["mean_real_heldout"] = float(np.mean([out["real_heldout"][c] for c in both])) if both else None
        gen_both = float(np.mean([out["generated"][c] for c in both])) if both else None
        out["ratio"] = gen_both / out["mean_real_heldout"] if both and out["mean_real_heldout"] else None
    return out


def feature_spread(features: torch.Tensor) -> float:
    """Root-mean-square distance of features to their centroid: how spread out a set of images is (0 when
    every image is the same). Compare generated with real in the same feature space (``spread_ratio``)."""
    f = _as2d(features).double()
    return float((f - f.mean(0)).pow(2).sum(1).mean().sqrt()) if len(f) > 1 else float("nan")


def distribution_metrics(real: torch.Tensor, fake: torch.Tensor, *, real_labels: Sequence[int] | None = None,
                         fake_labels: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                         real_logits: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None,
                         k: int = 5, kid_subsets: int = 100) -> dict:
    """FID, KID, precision/recall, the real-vs-synthetic two-sample test (and IS when logits are given), overall
    and per class.

    Per-class values compare the generated images of a class with the real images of the same class; with a
    few dozen images per class FID is strongly biased upwards, so read KID there.
    """
    def block(r, f, fl):
        out = {"n_real": int(len(r)), "n_fake": int(len(f))}
        if len(r) < 2 or len(f) < 2:
            out["skipped"] = "fewer than 2 images"
            return out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["fid"] = fid(r, f)
            out["kid"], out["kid_std"] = kid(r, f, subsets=kid_subsets)
            out["kid_subset_size"] = min(1000, len(r), len(f))
            out["precision"], out["recall"] = precision_recall(r, f, k=k)
            out["c2st"] = real_vs_synthetic(r, f)
            # diversity next to fidelity: a per-class collapse shows as a spread far below the real one
            out["spread_real"], out["spread_fake"] = feature_spread(r), feature_spread(f)
            out["spread_ratio"] = out["spread_fake"] / out["spread_real"] if out["spread_real"] > 0 else None
            if fl is not None and len(fl) >= 2:
                out["is"], out["is_std"] = inception_score(fl)
        return out

    result = {"overall": block(real, fake, fake_logits)}
    if real_labels is not None and fake_labels is not None:
        real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
        names = list(class_names) if class_names is not None else [str(c) for c in sorted(set(fake_labels.tolist()))]
        per_class = {}
        for c in sorted(set(fake_labels.tolist())):
            rm, fm = real_labels == c, fake_labels == c
            # no per-class IS: within one class a confident classifier gives IS ~ 1 by construction
            per_class[names[c]] = block(real[torch.from_numpy(rm)], fake[torch.from_numpy(fm)], None)
        result["per_class"] = per_class
    return result
