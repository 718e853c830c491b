"""What the external set's preparation does to a classifier's scores (issue #43, item 2: "mind the frames").

isic9_180 holds 180x180 squares squashed from 4:3 frames; the benchmark reads them ``unsquash_4x3`` (stretched back
to 4:3, then as the training images are read). isic9 also holds some HAM10000 images: those of the benchmark's
held-out split are scored by the same classifiers three ways - from the HAM10000 file as in training, from isic9's
square un-squashed (the external set's preparation) and from the square centre-cropped (no un-squashing). If the
external preparation cost accuracy, the first two would differ; then a drop on the other clinics' images would be
the preparation's, not the clinics'.

    python benchmarks/studies/external_frames.py --manifest benchmarks/results/regime_shared_fewshot20/manifest.csv \\
        --classifiers 'RUNS/*_classifier.safetensors' --out benchmarks/results/regime_shared_fewshot20/external_frames
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import glob
import re
from pathlib import Path

import numpy as np

from ga_bench.external import EXTERNAL_SETS
from gan_augment._io import display_path, write_json
from gan_augment.data import Manifest
from gan_augment.data.external import parse_class_map

WAYS = (("training file", "center_crop"), ("external square, unsquash_4x3", "unsquash_4x3"),
        ("external square, center_crop", "center_crop"))


def pairs_of(manifest: Manifest, folder: str, class_map: str, split: str) -> list[tuple[str, str, str]]:
    """(training file, external file, the manifest's label) for each image of ``split`` the external folder also
    holds (same file stem; a trailing "(1)" of a renamed copy ignored), in a mapped class folder."""
    mapping = parse_class_map(class_map)
    held = {Path(manifest.paths[i]).stem: (manifest.paths[i], manifest.labels[i]) for i in manifest.indices(split)}
    out = []
    for p in sorted(Path(folder).glob("*/*/*")):
        stem = re.sub(r"\(\d+\)$", "", p.stem)
        if stem in held and p.parent.name in mapping:
            out.append((held[stem][0], str(p), held[stem][1]))
    return out


def score(model, ds) -> np.ndarray:
    """A classifier's probabilities on a dataset."""
    import torch

    from classifier.engine import predict

    probs, _ = predict(model, torch.utils.data.DataLoader(ds, batch_size=64), device="cpu")
    return probs


def dataset(paths: list[str], labels: list[str], class_names: list[str], resize: str, meta: dict):
    """``paths`` read as a classifier of ``meta`` reads its input (its size, mean and std) with ``resize``."""
    from classifier import build_transform
    from gan_augment.data import ManifestDataset

    size = int(meta["image_size"])
    m = Manifest(paths=paths, labels=labels, groups=paths, splits=["x"] * len(paths), class_names=class_names)
    return ManifestDataset(m, "x", image_size=size, channels=3, resize=resize, output="numpy", cache=True,
                           allow_empty_classes=True, verbose=False,
                           transform=build_transform(size, augment=False, mean=meta["mean"], std=meta["std"]))


def metrics(probs: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    present = sorted(set(y.tolist()))
    pred = probs.argmax(1)
    return {"balanced_accuracy": float(np.mean([(pred[y == c] == c).mean() for c in present])),
            "macro_auroc": float(np.mean([roc_auc_score(y == c, probs[:, c]) for c in present]))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True, help="a benchmark folder's manifest.csv (its held-out split)")
    ap.add_argument("--classifiers", required=True, nargs="+", help="classifier files or glob patterns")
    ap.add_argument("--external", default="isic9", help=f"a named set ({', '.join(EXTERNAL_SETS)}) or an ImageFolder "
                    "of squares squashed from 4:3 frames (then --class-map)")
    ap.add_argument("--class-map", default=None, help="external_class=training_class,... (default: the named set's)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", required=True, help="writes OUT.json and OUT.md")
    a = ap.parse_args(argv)
    if a.external in EXTERNAL_SETS:
        folder, class_map = EXTERNAL_SETS[a.external].folder, a.class_map or EXTERNAL_SETS[a.external].class_map
    elif Path(a.external).is_dir() and a.class_map:
        folder, class_map = a.external, a.class_map
    else:
        raise SystemExit(f"--external {a.external}: neither a named set ({', '.join(EXTERNAL_SETS)}) nor a folder "
                         "given with --class-map")
    manifest = Manifest.read(a.manifest)
    files = sorted({f for g in a.classifiers for f in (glob.glob(g) or [g])})
    missing = [f for f in files if not Path(f).is_file()]
    if missing or not files:
        raise SystemExit(f"--classifiers: no such file {missing[0] if missing else a.classifiers}")
    pairs = pairs_of(manifest, folder, class_map, a.split)
    if not pairs:
        raise SystemExit(f"no image of {a.manifest}'s {a.split} split is in {display_path(folder)}")
    names = manifest.class_names
    labels = [lab for *_, lab in pairs]
    y = np.asarray([names.index(lab) for lab in labels])
    from gan_augment.classifier_file import load_classifier

    rows, readings = [], {}  # one dataset per (reading, input size, normalisation): decoded once
    for f in files:
        model, meta = load_classifier(f)
        ref = None
        row = {"classifier": Path(f).name}
        for way, resize in WAYS:
            key = (way, int(meta["image_size"]), tuple(meta["mean"]), tuple(meta["std"]))
            if key not in readings:
                paths = [t if way == "training file" else e for t, e, _ in pairs]
                readings[key] = dataset(paths, labels, names, resize, meta)
            probs = score(model, readings[key])
            ref = probs.argmax(1) if ref is None else ref
            row[way] = {**metrics(probs, y), "same_prediction_as_training_file": float(np.mean(probs.argmax(1) == ref))}
        rows.append(row)
    counts = {names[c]: int((y == c).sum()) for c in sorted(set(y.tolist()))}
    mean = {way: {k: float(np.mean([r[way][k] for r in rows])) for k in rows[0][way]} for way, _ in WAYS}
    diff = [r[WAYS[1][0]]["balanced_accuracy"] - r[WAYS[0][0]]["balanced_accuracy"] for r in rows]
    out = {"manifest": display_path(a.manifest), "external": display_path(a.external), "split": a.split, "n_images": len(pairs),
           "per_class": counts, "classifiers": rows, "mean": mean,
           "unsquash_minus_training_file_ba": {"mean": float(np.mean(diff)), "min": float(min(diff)),
                                               "max": float(max(diff))}}
    write_json(Path(a.out + ".json"), out)
    lines = [f"# The external preparation on images both sets hold ({display_path(a.external)})", "",
             f"{len(pairs)} images of `{display_path(a.manifest)}`'s {a.split} split that {a.external} also holds "
             f"({', '.join(f'{c} {n}' for c, n in counts.items())}), scored by {len(rows)} classifiers three ways; "
             "means over the classifiers (balanced accuracy over the classes present, macro one-vs-rest AUROC):", "",
             "| read from | BA % | macro AUROC | same prediction as from the training file |", "|---|---:|---:|---:|"]
    lines += [f"| {w} | {m['balanced_accuracy'] * 100:.1f} | {m['macro_auroc']:.3f} | "
              f"{m['same_prediction_as_training_file']:.0%} |" for w, m in mean.items()]
    d = out["unsquash_minus_training_file_ba"]
    lines += ["", f"BA un-squashed minus BA from the training file, per classifier: mean {d['mean'] * 100:+.1f} pp, "
              f"range {d['min'] * 100:+.1f} to {d['max'] * 100:+.1f} pp.", ""]
    Path(a.out + ".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
