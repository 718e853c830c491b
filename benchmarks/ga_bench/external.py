"""The benchmark's external test set (``--external-test``): every classifier it trains is also scored on images from
another source, over the classes that source has enough of.

``--external-test DIR --class-map ext=ours,...`` takes any ImageFolder; ``--external-test isic9`` names the ISIC
Archive images of ``../shared/data/isic9_180`` that are not HAM10000 images (HAM10000's own files are recognised by
name and left out), mapped onto HAM10000's classes and un-squashed from their 180x180 squares
(``unsquash_4x3``). Before any run the set is checked against the training images: byte-identical copies, and
near-copies - an external image closer (cosine, ImageNet Lite0 features) to a training image than any validation
image is - are refused, named (``--external-drop-copies`` leaves them out instead, listed in the report).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gan_augment._io import display_path, write_json
from gan_augment.data import Manifest, ManifestDataset
from gan_augment.data.decode import IMAGE_EXTENSIONS
from gan_augment.data.external import EXTERNAL_SPLIT, ExternalTestSet, scan_external, training_copies

from .data_source import REPO
from .shared_regime import generator_manifest

__all__ = ["ExternalSpec", "EXTERNAL_SETS", "resolve_external", "load_external", "external_metrics",
           "near_copies", "external_rescore"]


@dataclass(frozen=True)
class ExternalSpec:
    folder: str
    class_map: str
    resize: str = "center_crop"
    drop_data_names: bool = False  # leave out files named like an image of the benchmark's data folder
    note: str = ""


EXTERNAL_SETS = {
    # ISIC Archive images from clinics other than HAM10000's (ids below ISIC_0024306 are not HAM10000 images; those
    # above are, and are recognised by name): melanoma, nevus and seborrheic keratosis are the classes with enough
    # images; the 180x180 squares were squashed from 4:3 frames (../shared/data/isic9_180/SOURCE.md)
    "isic9": ExternalSpec(
        folder=str(REPO.parent / "shared" / "data" / "isic9_180"),
        class_map=("melanoma=mel,nevus=nv,seborrheic keratosis=bkl,pigmented benign keratosis=bkl,"
                   "actinic keratosis=akiec,dermatofibroma=df,vascular lesion=vasc,basal cell carcinoma=bcc"),
        resize="unsquash_4x3", drop_data_names=True,
        note="ISIC Archive images not in HAM10000, other clinics' dermoscopy; squashed 4:3 frames restored"),
}
MIN_PER_CLASS = 10  # fewer external images of a class: left out of the external metrics (too few to score)


def resolve_external(cfg) -> ExternalSpec | None:
    """``cfg.external_test`` (a named set or a folder) and its options -> what to load; None when not asked."""
    name = cfg.external_test
    if not name:
        return None
    if name in EXTERNAL_SETS:
        spec = EXTERNAL_SETS[name]
        if not Path(spec.folder).is_dir():
            raise ValueError(f"--external-test {name}: its folder {display_path(spec.folder)} is not here")
        return ExternalSpec(spec.folder, cfg.external_class_map or spec.class_map, cfg.external_resize or spec.resize,
                            spec.drop_data_names, spec.note)
    if not Path(name).is_dir():
        raise ValueError(f"--external-test {name}: not a folder, nor one of the named sets {sorted(EXTERNAL_SETS)}")
    if not cfg.external_class_map:
        raise ValueError(f"--external-test {name}: give --class-map external_class=training_class,... (classes left "
                         "out of it are left out of the external test)")
    return ExternalSpec(name, cfg.external_class_map, cfg.external_resize or "center_crop", False)


def _data_names(data_dir: str | None, manifest: Manifest, external: str | None = None) -> list[str]:
    """The file names of the benchmark's data: its manifest's, and every image under the folder they come from -
    a slice's manifest lists only the slice, and the images left out of it (seen by a shared generator, of the same
    clinic) are no external test images either. Files under the ``external`` folder itself are not the data's."""
    names = [Path(p).name for p in manifest.paths]
    roots = {Path(data_dir)} if data_dir and Path(data_dir).is_dir() else set()
    if manifest.paths:
        common = Path(os.path.commonpath([str(Path(p).resolve().parent) for p in manifest.paths]))
        if common.is_dir() and common != Path(common.anchor):
            roots.add(common)
    skip = Path(external).resolve() if external else None
    for root in roots:
        names += [p.name for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                  and not (skip and p.resolve().is_relative_to(skip))]
    return names


def near_copies(external: np.ndarray, train: np.ndarray, val: np.ndarray, *, device="cpu",
                features=None) -> tuple[np.ndarray, np.ndarray, float]:
    """For each external image: (index of its nearest training image, cosine similarity) in ImageNet Lite0
    features, and the threshold - the highest similarity any validation image has to a training image (validation
    images are other lesions / patients than the training ones). ``features`` (uint8 images -> (N, D)) replaces
    Lite0 (tests)."""
    import torch

    if features is None:
        from gan_augment.metrics.features import create_feature_extractor

        extractor = create_feature_extractor("lite0", device=device)

        def features(x: np.ndarray) -> np.ndarray:
            return extractor(torch.from_numpy(x), batch_size=64)[0].numpy()

    def unit(x: np.ndarray) -> np.ndarray:
        f = features(x).astype(np.float64)
        return f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12)

    ft, fe, fv = unit(train), unit(external), unit(val)
    sim_e, sim_v = fe @ ft.T, fv @ ft.T
    return sim_e.argmax(1), sim_e.max(1), float(sim_v.max())


def load_external(cfg, manifest: Manifest, out: Path, *, channels: int, device="cpu") -> tuple[ExternalTestSet, dict]:
    """The external set (copies of training images refused, or left out with ``--external-drop-copies``) and what
    the report says of it; the near-copy check is computed once per folder (``OUT/external/check.json``)."""
    spec = resolve_external(cfg)
    ext = scan_external(spec.folder, spec.class_map, manifest.class_names,
                        drop_same_names=_data_names(cfg.data_dir, manifest, spec.folder) if spec.drop_data_names else ())
    ref = generator_manifest(cfg, manifest)  # in the shared regime, every image the generator saw
    train_paths = [ref.paths[i] for i in ref.indices("train")]
    check_path = out / "external" / "check.json"
    key = {"manifest": manifest.hash, "external": sorted(Path(p).name for p in ext.manifest.paths),
           "resize": spec.resize, "image_size": cfg.image_size, "training_images_of": ref.hash}
    check = json.loads(check_path.read_text()) if check_path.is_file() else None
    if check is None or check.get("key") != key:
        # an identical file of any split is no external image; near copies are looked for among training images
        copies = [{"path": e, "copy_of": t, "why": "identical file"}
                  for e, t in training_copies(ext, [*manifest.paths, *train_paths])]
        data = dict(image_size=cfg.image_size, channels=channels, output="numpy", cache=True, verbose=False)
        ext_imgs = _uint8(ManifestDataset(ext.manifest, EXTERNAL_SPLIT, resize=spec.resize, allow_empty_classes=True,
                                          **data))
        train_imgs = _uint8(ManifestDataset(ref, "train", resize=cfg.resize, **data))
        val_imgs = _uint8(ManifestDataset(manifest, "val", resize=cfg.resize, **data))
        nearest, sim, threshold = near_copies(ext_imgs, train_imgs, val_imgs, device=device)
        near = [{"path": ext.manifest.paths[i], "copy_of": train_paths[int(nearest[i])],
                 "why": f"near copy (cosine {sim[i]:.4f} > {threshold:.4f}, the closest any validation image is)"}
                for i in np.flatnonzero(sim > threshold)]
        check = {"key": key, "copies": copies, "near_copies": near, "threshold": threshold,
                 "similarity_quantiles": {str(q): float(np.quantile(sim, q)) for q in (0.5, 0.9, 0.99, 1.0)}}
        write_json(check_path, check)
    bad = check["copies"] + check["near_copies"]
    if bad and not cfg.external_drop_copies:
        shown = "; ".join(f"{display_path(b['path'])} = {display_path(b['copy_of'])} ({b['why']})" for b in bad[:5])
        raise ValueError(f"--external-test {cfg.external_test}: {len(bad)} external image(s) copy images of the "
                         f"benchmark's data, so they would not test another source: {shown}. Remove them, or pass "
                         "--external-drop-copies to leave them out (listed in the report)")
    if bad:
        drop = {b["path"] for b in bad}
        keep = [i for i, p in enumerate(ext.manifest.paths) if p not in drop]
        m = ext.manifest
        ext.manifest = Manifest(paths=[m.paths[i] for i in keep], labels=[m.labels[i] for i in keep],
                                groups=[m.groups[i] for i in keep], splits=[m.splits[i] for i in keep],
                                class_names=list(m.class_names))
        ext.dropped += [{"path": b["path"], "why": "a copy of an image of the benchmark's data"} for b in bad]
    # what identifies the set: a record scored on another one is never mixed with this one's (external_rescore)
    ident = json.dumps([sorted(zip((Path(p).name for p in ext.manifest.paths), ext.manifest.labels)), spec.resize,
                        cfg.image_size])
    info = {**ext.summary(cfg.external_min_per_class), "name": cfg.external_test, "resize": spec.resize,
            "set_id": hashlib.sha256(ident.encode()).hexdigest()[:16],
            "note": spec.note, "source": _shown(spec.folder),
            "near_copy_threshold": check["threshold"], "similarity_quantiles": check["similarity_quantiles"],
            "copies_looked_for_among": {"training_images": len(train_paths), "generator_split": ref is not manifest},
            "copies_left_out": [{"path": _shown(b["path"]), "copy_of": _shown(b["copy_of"]),
                                 "why": b["why"]} for b in bad]}
    return ext, info


def _shown(path: str) -> str:
    """A data path as a committed report shows it: ``display_path``, or relative to the repository for a folder
    beside it (``../shared/data/isic9_180/...``) - never an absolute path of the machine that ran it."""
    p, repo = Path(os.path.abspath(path)), Path(os.path.abspath(REPO))  # symlinks kept: ../shared may be one
    if not p.is_relative_to(Path(os.path.abspath(Path.cwd()))) and p.is_relative_to(repo.parent):
        return Path(os.path.relpath(p, repo)).as_posix()
    return display_path(path)


def external_dataset(cfg, manifest: Manifest, out: Path, runner) -> tuple[ManifestDataset, dict]:
    """The external test images as the benchmark's classifiers read them (``runner``: channels, device, mean/std),
    and what the report says about them."""
    from classifier import build_transform

    ext, info = load_external(cfg, manifest, out, channels=runner.channels, device=runner.device)
    ds = ManifestDataset(ext.manifest, "external", image_size=cfg.image_size, channels=runner.channels,
                         resize=info["resize"], output="numpy", cache=True, verbose=cfg.progress,
                         allow_empty_classes=True,
                         transform=build_transform(cfg.image_size, augment=False, mean=runner.mean, std=runner.std))
    scored = [manifest.class_names.index(c) for c in info["scored_classes"]]
    info["n_scored"] = int(np.isin(np.asarray(ds.targets), scored).sum())  # the images its metrics are over
    return ds, info


def external_rescore(record: dict, info: dict, path: Path, kept: Path | None) -> bool:
    """Whether a finished run's record needs scoring on this external set from its kept classifier ``kept``: it has
    no score yet, or one on another set (other images, frames or size). A score on another set without a classifier
    to score again is an error naming the record: one folder's external results are over one set."""
    have = kept is not None and kept.is_file()
    theirs = record.get("external_test")
    if theirs is None:
        return have
    if "set" in theirs:
        same = theirs["set"] == info["set_id"]
    else:  # a record from before sets were identified: as many images, the same scored ones, probabilities of each
        probs = path.with_name(f"{path.stem}_external_probs.npy")
        rows = np.load(probs, mmap_mode="r").shape[0] if probs.is_file() else None
        same = ((theirs.get("n_images"), theirs.get("classes"), rows)
                == (info["n_scored"], info["scored_classes"], info["n_images"]))
    if same or have:
        return not same
    raise ValueError(f"{display_path(path)}: scored on another external test set ({theirs.get('n_images')} images "
                     f"of {theirs.get('classes')}) than this one ({info['n_scored']} of {info['scored_classes']}), and "
                     "its classifier was not kept to score it again: delete the runs made with the other set (or "
                     "pass another --out)")


def _uint8(ds: ManifestDataset) -> np.ndarray:
    """(N, C, H, W) uint8 images of a cached dataset."""
    return np.ascontiguousarray(ds.uint8_array().transpose(0, 3, 1, 2))


def external_metrics(probs: np.ndarray, labels: Sequence[int], class_names: Sequence[str], scored: Sequence[str],
                     auroc_class: str | None = "mel") -> dict:
    """Scores over the external images of the ``scored`` classes: balanced accuracy (mean recall over them; a
    prediction of any other class counts as wrong), each one's recall, and ``auroc_class``-vs-rest AUROC."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    idx = [list(class_names).index(c) for c in scored]
    rows = np.isin(labels, idx)
    lab, pr = labels[rows], probs[rows]
    pred = pr.argmax(1)
    recall = {class_names[c]: float((pred[lab == c] == c).mean()) for c in idx}
    out = {"balanced_accuracy": float(np.mean(list(recall.values()))), "per_class_recall": recall,
           "n_images": int(rows.sum()), "classes": list(scored)}
    if auroc_class in scored and len(idx) > 1:
        k = list(class_names).index(auroc_class)
        out[f"{auroc_class}_auroc"] = float(roc_auc_score(lab == k, pr[:, k]))
    return out
