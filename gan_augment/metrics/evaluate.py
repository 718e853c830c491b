"""``gan-augment evaluate``: every metric of a generator against one manifest, written as JSON, Markdown and PNGs."""

from __future__ import annotations

import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._io import display_path, write_json, write_text
from ..data import Manifest, ManifestDataset
from ..data.subset import per_class_cap
from ..generators import load_generator
from ..models import GeneratorBase
from ..plots import save_class_grid
from ..provenance import run_metadata
from .features import cached_features, create_feature_extractor
from .fidelity import METRIC_DIRECTIONS, class_fidelity, colour_comparison, distribution_metrics, spectrum_comparison
from .memorisation import memorisation_test
from .reference import LPIPSUnavailable, load_lpips, nearest_indices, reference_metrics

__all__ = ["evaluate_generator", "RealImages", "load_real_images", "class_accuracy_on_synthetic"]


@dataclass
class RealImages:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: np.ndarray  # indices into class_names
    key: str  # identifies the selection (for the feature cache)


def load_real_images(manifest: Manifest, split: str, class_names: Sequence[str], *, resolution: int, channels: int,
                     max_per_class: int | None = None, seed: int = 0, progress: bool = False,
                     resize: str = "center_crop") -> RealImages:
    """The real images of ``split`` at the generator's resolution (by the ``resize`` policy it trained with), uint8.

    Labels index ``class_names``; classes with no image in ``split`` are simply absent.
    """
    present = set(manifest.labels[i] for i in manifest.indices(split))
    classes = [c for c in class_names if c in present]
    if not classes:
        raise ValueError(f"split {split!r} has no images of the classes {list(class_names)}")
    ds = ManifestDataset(manifest, split, channels=channels, image_size=resolution, resize=resize, output="tensor",
                         classes=classes, verbose=False)
    keep = per_class_cap(ds.targets, max_per_class, seed)
    from tqdm.auto import tqdm

    images = torch.stack([ds[i][0] for i in tqdm(keep, disable=not progress, desc=f"loading {split} images",
                                                 leave=False)])
    labels = np.asarray([list(class_names).index(classes[ds.targets[i]]) for i in keep])
    key = f"{manifest.hash}|{split}|{','.join(class_names)}|{resolution}|{channels}|{max_per_class}|{seed}"
    if resize != "center_crop":  # (the default keeps its old key: caches made before the option stay valid)
        key += f"|{resize}"
    return RealImages(images=images, labels=labels, key=key)


def class_accuracy_on_synthetic(logits: torch.Tensor, labels: np.ndarray, gen_class_names: Sequence[str],
                                classifier_class_names: Sequence[str]) -> dict:
    """Classification accuracy score on synthetic images (CAS / StudioGAN's GAN-test): does a classifier
    trained on real images recognise each generated image's class?"""
    pred = logits.argmax(dim=1).numpy()
    mapped = np.asarray([classifier_class_names.index(gen_class_names[y]) if gen_class_names[y] in
                         classifier_class_names else -1 for y in labels])
    per_class = {}
    for c in sorted(set(labels.tolist())):
        m = labels == c
        per_class[gen_class_names[c]] = float(np.mean(pred[m] == mapped[m]))
    return {"accuracy": float(np.mean(pred == mapped)), "per_class": per_class,
            "mean_per_class": float(np.mean(list(per_class.values())))}


def _sample(G, class_names: list[str], per_class: int, seed: int, device: str) -> tuple[torch.Tensor, np.ndarray]:
    images, labels = [], []
    for c, _ in enumerate(class_names):
        images.append(G.sample(per_class, c if G.num_classes else None, seed=seed * 1000 + c, device=device))
        labels.append(np.full(per_class, c))
    return torch.cat(images), np.concatenate(labels)


def _paired_batch(fake: torch.Tensor, fake_labels: np.ndarray, real: RealImages) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair generated image i of a class with real image i (cycling) of the same class - the seeds' protocol."""
    xs, ys = [], []
    for c in sorted(set(fake_labels.tolist())):
        f = fake[torch.from_numpy(fake_labels == c)]
        r = real.images[torch.from_numpy(real.labels == c)]
        if len(r) == 0:
            continue
        xs.append(f)
        ys.append(r[torch.arange(len(f)) % len(r)])
    return torch.cat(xs), torch.cat(ys)


def evaluate_generator(
    generator: str | os.PathLike | GeneratorBase,
    manifest: str | os.PathLike | Manifest,
    *,
    out: str | os.PathLike,
    split: str = "test",
    per_class: int = 100,
    features: Sequence[str] = ("inception",),
    classifier: str | os.PathLike | None = None,
    max_real_per_class: int | None = None,
    max_train_per_class: int | None | str = "same",
    seed: int = 0,
    device: str = "cpu",
    allow_download: bool = False,
    lpips_net: str = "alex",
    lpips_weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    panel_pairs: int = 8,
    inception_weights: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Sample ``per_class`` images per class and compare them with the manifest's ``split`` (held out) and its
    ``train`` split (memorisation, nearest-real pairs). ``generator`` is a generator file or a loaded generator
    (e.g. one of ``gan_augment.sampling``'s, which draw from a file's generator another way). Writes
    ``metrics.json``, ``metrics.md``, ``samples_vs_real.jpg`` and ``nearest_training.jpg`` under ``out``; returns
    the metrics dict.

    ``max_real_per_class`` caps the real images per class of both splits; ``max_train_per_class`` the training
    images alone (``None``: all of them), which is what the memorisation test and the nearest-neighbour panel
    search - give them all when the question is privacy (could a shared generator give a training image away?)."""
    if max_train_per_class == "same":
        max_train_per_class = max_real_per_class
    elif isinstance(max_train_per_class, str) or (max_train_per_class is not None and max_train_per_class < 1):
        raise ValueError(f"max_train_per_class must be a positive number, None (all) or 'same', "
                         f"got {max_train_per_class!r}")
    if panel_pairs < 1:
        raise ValueError(f"panel_pairs must be >= 1, got {panel_pairs}")
    out = Path(out)  # created only once every metric is computed: a refused or failed run leaves nothing there
    cache = Path(cache_dir) if cache_dir is not None else None
    loaded = isinstance(generator, GeneratorBase)
    G = generator.to(device).eval() if loaded else load_generator(generator, device=device)
    name = f"<{type(G).__name__}>" if loaded else str(generator)
    manifest = manifest if isinstance(manifest, Manifest) else Manifest.read(manifest)
    meta = getattr(G, "meta", None) or {}
    pooled = not G.num_classes and not G.class_names  # one unconditional G for a mix of classes (MedGAN)
    if G.num_classes:
        class_names = list(G.class_names or manifest.class_names[:G.num_classes])
    else:
        class_names = list(G.class_names) if G.class_names else list(manifest.class_names)
    unknown = [c for c in class_names if c not in manifest.class_names]
    if unknown:
        raise ValueError(f"generator classes {unknown} are not in manifest {manifest.location}; "
                         f"its classes are {manifest.class_names}")
    if split == "train":
        raise ValueError("evaluate against a held-out split (val or test); the train split is used for "
                         "memorisation automatically")
    manifest_match = meta.get("manifest_hash") == manifest.hash
    if not manifest_match:
        warnings.warn(f"{name} was trained on manifest {str(meta.get('manifest_hash'))[:12]}, this is "
                      f"{manifest.short_hash}: memorisation is measured against this manifest's train split",
                      stacklevel=2)
    if "classifier" in features and classifier is None:
        raise ValueError("features 'classifier' needs --classifier FILE (a trained classifier)")

    # real images made square the way the generator's training images were
    resize = ((meta.get("training") or {}).get("config") or {}).get("data", {}).get("resize", "center_crop")
    held = load_real_images(manifest, split, class_names, resolution=G.resolution, channels=G.channels,
                            max_per_class=max_real_per_class, seed=seed, progress=progress, resize=resize)
    train = load_real_images(manifest, "train", class_names, resolution=G.resolution, channels=G.channels,
                             max_per_class=max_train_per_class, seed=seed, progress=progress, resize=resize)
    if pooled:  # compare the generator's images with all real classes pooled
        class_names = ["all classes"]
        held.labels[:] = 0
        train.labels[:] = 0
    fake, fake_labels = _sample(G, class_names, per_class, seed, device)

    result: dict[str, Any] = {
        "meta": run_metadata(device=device),
        "generator": {"path": display_path(name) if os.path.isabs(str(name)) else name, "arch": meta.get("arch"),
                      "step": meta.get("step"), "resolution": G.resolution, "manifest_hash": meta.get("manifest_hash"),
                      "trained_on_this_manifest": manifest_match,
                      **({"sampling": meta["sampling"]} if meta.get("sampling") else {})},
        "data": {"manifest": display_path(manifest.location), "manifest_hash": manifest.hash, "heldout_split": split,
                 "classes": class_names, "per_class_generated": per_class,
                 "heldout_per_class": {class_names[c]: int((held.labels == c).sum()) for c in range(len(class_names))},
                 "train_per_class": {class_names[c]: int((train.labels == c).sum()) for c in range(len(class_names))}},
        "directions": METRIC_DIRECTIONS,
        "distribution": {}, "feature_spaces": {},
    }
    first_feats = None
    for name in features:
        try:
            ext = create_feature_extractor(name, checkpoint=classifier, allow_download=allow_download, device=device,
                                           weights=inception_weights if name == "inception" else None)
        except Exception as exc:  # one missing feature space must not sink the whole evaluation
            result["distribution"][name] = {"unavailable": str(exc)}
            print(f"evaluate: feature space {name!r} unavailable: {exc}", file=sys.stderr)
            continue
        f_held, l_held = cached_features(ext, held.key, lambda: held.images, cache_dir=cache, progress=progress,
                                         desc=f"{split} images")
        f_train, _ = cached_features(ext, train.key, lambda: train.images, cache_dir=cache, progress=progress,
                                     desc="train images")
        f_fake, l_fake = ext(fake, progress=progress, desc="generated images")
        result["feature_spaces"][name] = ext.label
        dist = distribution_metrics(f_held, f_fake, real_labels=held.labels, fake_labels=fake_labels,
                                    class_names=class_names, fake_logits=l_fake if name != "inception" else None)
        if name == "classifier" and l_fake is not None:
            from ..classifier_file import load_classifier

            _, cmeta = load_classifier(classifier)
            result["classification_accuracy_on_synthetic"] = class_accuracy_on_synthetic(
                l_fake, fake_labels, class_names, cmeta["class_names"])
            result["classification_accuracy_on_real_heldout"] = class_accuracy_on_synthetic(
                l_held, held.labels, class_names, cmeta["class_names"])
        result["distribution"][name] = dist
        if first_feats is None:
            first_feats = (name, f_fake, f_train, f_held)
            if not pooled and len(set(train.labels.tolist())) >= 2:
                result["class_fidelity"] = {"feature_space": name, **class_fidelity(
                    f_train, train.labels, f_fake, fake_labels, heldout=f_held, heldout_labels=held.labels,
                    class_names=class_names)}

    # reference metrics, two protocols
    try:
        lp = load_lpips(lpips_net, backbone_weights=lpips_weights, device=device)
        lp_err = None
    except LPIPSUnavailable as exc:
        lp, lp_err = None, f"LPIPS {exc}"
    x, y = _paired_batch(fake, fake_labels, held)
    result["reference"] = {"paired-batch": {**reference_metrics(x, y, lpips_model=lp, lpips_error=lp_err),
                                            "against": f"{split} images of the same class, paired by index"}}
    if first_feats is not None:
        name, f_fake, f_train, f_held = first_feats
        nn_idx, _ = nearest_indices(f_fake, f_train)
        result["reference"]["nearest-real"] = {
            **reference_metrics(fake, train.images[nn_idx], lpips_model=lp, lpips_error=lp_err),
            "against": f"nearest training image in {name} feature space"}
        mem = memorisation_test(f_fake, f_train, f_held, generated_labels=fake_labels, train_labels=train.labels,
                                heldout_labels=held.labels, class_names=class_names)
        pairs = mem.pop("pairs")
        mem["feature_space"] = name
        result["memorisation"] = mem
        order = np.argsort(pairs["distance"])[:panel_pairs]
    else:
        result["memorisation"] = {"unavailable": "no feature space available"}
    result["spectrum"] = spectrum_comparison(held.images, fake)
    result["colour"] = colour_comparison(held.images, fake)
    out.mkdir(parents=True, exist_ok=True)
    if first_feats is not None:
        _nn_panel(fake, train.images, [pairs["train"][i] for i in order], order, [pairs["distance"][i] for i in order],
                  out / "nearest_training.jpg")
    _grids(fake, fake_labels, held, class_names, out / "samples_vs_real.jpg")
    write_json(out / "metrics.json", result)
    write_text(out / "metrics.md", metrics_markdown(result))
    return result


def _grids(fake, fake_labels, held: RealImages, class_names, path: Path, n: int = 8) -> None:
    rows, labels = [], []
    for c, name in enumerate(class_names):
        f = fake[torch.from_numpy(fake_labels == c)][:n]
        r = held.images[torch.from_numpy(held.labels == c)][:n]
        rows.append(f)
        labels.append(f"{name}\nGAN")
        if len(r):
            rows.append(r)
            labels.append(f"{name}\nreal")
    save_class_grid(rows, labels, path, title="generated (GAN) vs held-out real images per class")


def _nn_panel(fake, train_images, train_idx, fake_idx, distances, path: Path) -> None:
    rows = [fake[torch.as_tensor(list(fake_idx))], train_images[torch.as_tensor(train_idx)]]
    save_class_grid(rows, ["generated", "nearest\ntraining"], path,
                    title="closest generated / training pairs, distances " + ", ".join(f"{d:.1f}" for d in distances))


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def metrics_markdown(r: dict[str, Any]) -> str:
    """The evaluation report: distribution metrics first, reference metrics (named protocols) after."""
    arrow = {"higher": "higher is better", "lower": "lower is better"}
    lines = ["# Generator evaluation", "",
             f"Generator `{r['generator']['path']}` ({r['generator']['arch']}, step {r['generator']['step']}, "
             f"{r['generator']['resolution']} px); manifest `{r['data']['manifest']}` "
             f"(hash {r['data']['manifest_hash'][:12]}, trained on it: {r['generator']['trained_on_this_manifest']}).",
             f"Held-out split: `{r['data']['heldout_split']}` ({sum(r['data']['heldout_per_class'].values())} "
             f"images); {r['data']['per_class_generated']} generated images per class; "
             f"{sum(r['data'].get('train_per_class', {}).values())} training images searched for memorisation.", f"Commit `{r['meta']['commit']}`, {r['meta']['device']}, {r['meta']['date']}.", "",
             "## Distribution metrics (do generated images look like the real distribution?)", ""]
    for name, dist in r["distribution"].items():
        lines.append(f"### Feature space: {r['feature_spaces'].get(name, name)}")
        if "unavailable" in dist:
            lines += ["", f"unavailable: {dist['unavailable']}", ""]
            continue
        lines += ["", "| class | n real / gen | FID | KID (x1e3) | precision | recall | real-vs-synthetic probe |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for cname, m in [("**all**", dist["overall"])] + list(dist.get("per_class", {}).items()):
            kid = m.get("kid")
            lines.append(f"| {cname} | {m['n_real']} / {m['n_fake']} | {_fmt(m.get('fid'))} | "
                         f"{_fmt(kid * 1e3 if kid is not None else None)} | {_fmt(m.get('precision'))} | "
                         f"{_fmt(m.get('recall'))} | {_fmt(m.get('c2st'))} |")
        if "is" in dist["overall"]:
            lines.append(f"\nIS with this network's logits: {dist['overall']['is']:.3f} +- {dist['overall']['is_std']:.3f}")
        lines.append("\nFID, KID: lower is better; precision, recall: higher is better. Per-class FID on a few dozen "
                     "images is biased upwards: compare KID. Real-vs-synthetic probe: cross-validated balanced "
                     "accuracy of a linear classifier telling generated from real features (0.5 = "
                     "indistinguishable, 1 = always told apart).\n")
    if "spectrum" in r:
        sp = r["spectrum"]
        gap = sp["generated_minus_real"]
        picks = sorted({1, 2, 4, 8, 16, len(gap) // 2, len(gap)} & set(sp["radius"]))
        lines += ["## Fine detail: power spectrum (no network involved)", "",
                  "| radius (cycles per image) | " + " | ".join(str(k) for k in picks) + " |",
                  "|---|" + "---:|" * len(picks),
                  "| generated - real, log10 power | " + " | ".join(f"{gap[k - 1]:+.2f}" for k in picks) + " |", "",
                  f"Mean gap over the upper half of the frequencies: {sp['high_band_gap']:+.2f} (0 = real images' "
                  "detail; -0.3 = half the power: too smooth; positive: noise or grid artefacts). A linear probe on "
                  f"the spectra alone tells generated from real images with balanced accuracy {sp['probe']:.3f} "
                  f"({sp['n_real']} real / {sp['n_fake']} generated).", ""]
    if "colour" in r:
        co = r["colour"]
        stats = co["statistics"]
        lines += ["## Colour: per-image channel statistics (no network involved)", "",
                  "| channel | " + " | ".join(f"real {k}" for k in stats) + " | "
                  + " | ".join(f"generated - real {k}" for k in stats) + " |",
                  "|---|" + "---:|" * (2 * len(stats))]
        lines += [f"| {ch} | " + " | ".join(f"{co['real'][ch][k]:.1f}" for k in stats) + " | "
                  + " | ".join(f"{v[k]:+.1f}" for k in stats) + " |" for ch, v in co["generated_minus_real"].items()]
        lines += ["", f"A linear probe on these {len(stats) * len(co['real'])} numbers per image alone tells generated "
                  f"from real images with balanced accuracy {co['probe']:.3f} ({co['n_real']} real / {co['n_fake']} "
                  "generated; 0.5 = indistinguishable).", ""]
    if "classification_accuracy_on_synthetic" in r:
        cas = r["classification_accuracy_on_synthetic"]
        real = r["classification_accuracy_on_real_heldout"]
        lines += ["## Classification accuracy on synthetic images (real-trained classifier)", "",
                  "| class | synthetic | real held-out |", "|---|---:|---:|"]
        lines += [f"| {c} | {v:.3f} | {real['per_class'].get(c, float('nan')):.3f} |" for c, v in cas["per_class"].items()]
        lines += [f"| **mean per class** | {cas['mean_per_class']:.3f} | {real['mean_per_class']:.3f} |", ""]
    if "class_fidelity" in r:
        cf = r["class_fidelity"]
        real = cf.get("real_heldout", {})
        lines += [f"## Class fidelity (GAN-test in {cf['feature_space']} features)", "",
                  f"A linear classifier fitted on {cf['n_train']} real training images (class-balanced) names the "
                  "class of each image: the share given its own class, generated vs held-out real (the ceiling).", "",
                  "| class | generated | real held-out |", "|---|---:|---:|"]
        lines += [f"| {c} | {v:.3f} | {_fmt(real.get(c))} |" for c, v in cf["generated"].items()]
        lines += [f"| **mean per class** | {cf['mean_generated']:.3f} | {_fmt(cf.get('mean_real_heldout'))} |", ""]
    if "gan_train" in r:
        gt = r["gan_train"]
        lines += ["## GAN-train: classifier trained on synthetic images only, tested on real images", "",
                  f"{gt['classifier']}, {gt['trained_on']}, {gt['epochs']} epochs, tested on the {gt['tested_on']}: "
                  f"balanced accuracy {gt['balanced_accuracy']:.3f}, macro-F1 {gt['macro_f1']:.3f}, "
                  f"macro-AUROC {gt['auroc']:.3f}.", "",
                  "| class | recall on real |", "|---|---:|"]
        lines += [f"| {c} | {v:.3f} |" for c, v in gt["per_class_recall"].items()]
        lines.append("")
    lines += ["## Reference metrics (comparability with the seeds' tables, NOT a realism measure on their own)", "",
              "| protocol | PSNR | SSIM | MS-SSIM | MS-GMSD | MDSI | HaarPSI | LPIPS |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lpips_note = None
    for proto, m in r["reference"].items():
        lp = m["lpips"]
        if isinstance(lp, str):
            lpips_note, lp = lp, "n/a (1)"
        lines.append(f"| {proto} ({m['against']}) | {_fmt(m['psnr'])} | {_fmt(m['ssim'])} | {_fmt(m['ms_ssim'])} | "
                     f"{_fmt(m['ms_gmsd'])} | {_fmt(m['mdsi'])} | {_fmt(m['haarpsi'])} | {_fmt(lp)} |")
    if lpips_note:
        lines += ["", f"(1) {lpips_note}"]
    lines += ["", "Directions: " + "; ".join(f"{k.upper()} {arrow[v]}" for k, v in r["directions"].items()
                                             if k in ("psnr", "ssim", "ms_ssim", "ms_gmsd", "mdsi", "haarpsi", "lpips")),
              "", "## Memorisation (nearest training image, generated vs held-out real)", ""]
    mem = r["memorisation"]
    if "unavailable" in mem:
        lines.append(mem["unavailable"])
    else:
        lines += [f"Feature space: {mem['feature_space']}. Flag: Mann-Whitney p < {mem['alpha']} and more than "
                  f"{mem['copy_fraction']:.0%} of generated images closer than the 1st percentile of held-out "
                  "distances.", "", "| class | median NN dist gen | median NN dist held-out | p (gen < held) | "
                  "frac < held p1 | flagged |", "|---|---:|---:|---:|---:|---|"]
        for cname, m in [("**all**", mem["overall"])] + list(mem.get("per_class", {}).items()):
            if "skipped" in m:
                lines.append(f"| {cname} | - | - | - | - | {m['skipped']} |")
                continue
            lines.append(f"| {cname} | {m['median_nn_distance_generated']:.3g} | {m['median_nn_distance_heldout']:.3g} "
                         f"| {m['p_value']:.3g} | {m['fraction_below_heldout_p1']:.3f} | "
                         f"{'**yes**' if m['flagged'] else 'no'} |")
    lines += ["", "Images: `samples_vs_real.jpg` (generated next to held-out real, per class), "
                  "`nearest_training.jpg` (closest generated / training pairs).", ""]
    return "\n".join(lines)
