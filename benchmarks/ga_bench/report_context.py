"""What a benchmark report is read next to: published figures on the same images, and (in a short run such as
``make demo``) the committed full-scale result. Split from :mod:`ga_bench.report`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .protocol import REPO
from .fmt import ci_pp as _ci


def _pm(values: Sequence[float], pct: bool = True) -> str:
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], float)
    if len(v) == 0:
        return "-"
    scale = 100 if pct else 1
    return f"{v.mean() * scale:.1f} ± {v.std(ddof=1) * scale:.1f}" if len(v) > 1 else f"{v.mean() * scale:.1f}"


# Published figures on the same images at 64 px, for scale: DermaMNIST (HAM10000 resized) in MedMNIST+, Doerrich et
# al., "Rethinking model prototyping through the MedMNIST+ dataset collection" (Sci. Rep. 2025; arXiv 2404.15786),
# end-to-end training, mean ± std over 3 seeds, BENCHMARK.md of sdoerrich97/rethinking-model-prototyping-MedMNISTPlus.
OUTSIDE_64PX = {
    "source": "MedMNIST+ (Doerrich et al. 2025, arXiv 2404.15786), DermaMNIST 64x64, end-to-end, 3 seeds",
    "rows": [("VGG16", 79.53, 1.19, 94.36, 0.40), ("ResNet-18", 76.36, 0.22, 91.70, 0.76),
             ("DenseNet-121", 76.16, 0.58, 93.05, 0.24), ("EfficientNet-B4", 71.45, 0.10, 87.58, 0.27)],
}
HAM10000_CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _outside_lines(results: dict) -> list[str]:
    """HAM10000 at 64 px: the published DermaMNIST figures next to this run's accuracy and macro-AUROC."""
    if results["config"].get("image_size") != 64 or list(results["data"]["class_names"]) != HAM10000_CLASSES:
        return []
    lines = ["## Outside figures at 64 px (for scale, not a like-for-like comparison)", "",
             f"{OUTSIDE_64PX['source']}: accuracy / macro-AUROC (%).", "",
             "| model | accuracy | macro-AUROC |", "|---|---:|---:|"]
    lines += [f"| {m} | {a:.1f} ± {sa:.1f} | {u:.1f} ± {su:.1f} |" for m, a, sa, u, su in OUTSIDE_64PX["rows"]]
    lines += ["", "This run's arms are in the accuracy and macro-AUROC columns above. Why they differ: DermaMNIST "
              "splits HAM10000 by image (7:1:2), so images of one lesion - HAM10000 has up to six per lesion - land "
              "in training and test alike, which flatters every score; this benchmark splits by `lesion_id`. "
              "Accuracy follows the majority class (nv is two thirds of the test images), which is why the "
              "benchmark judges arms on balanced accuracy. The classifier (EfficientNet-Lite0, ImageNet weights) "
              "and schedule differ too.", ""]
    return lines


def reference_summary(folder: str) -> dict:
    """The committed full-scale result that a short run is printed under: per arm, the test balanced accuracy and
    rare-class recall over the seeds done so far, and each GAN arm's difference from the best baseline."""
    path = Path(folder)
    if not path.is_absolute() and not path.exists():
        path = REPO / folder  # "benchmarks/results/..." works from any directory
    file = path / "results.json"
    if not file.is_file():
        return {"path": folder, "available": False}
    r = json.loads(file.read_text())
    comp = r.get("comparison") or {}
    return {"path": folder, "available": True, "train_total": r["data"]["train_total"],
            "image_size": r["config"]["image_size"], "epochs": r["epochs"], "commit": r["meta"].get("commit"),
            "rare_classes": r.get("rare_classes") or [],
            "arms": {a: {k: v[k] for k in ("seeds", "balanced_accuracy", "rare_mean_recall")}
                     for a, v in r["arms"].items()},
            "best_baseline": comp.get("best_baseline"),
            "gan_vs_best": {a: {"balanced_accuracy": d["balanced_accuracy"], "meets_goal": d.get("meets_goal")}
                            for a, d in comp.items()
                            if a.startswith("gan") and isinstance(d, dict) and "balanced_accuracy" in d}}


def _reference_lines(ref: dict) -> list[str]:
    if not ref.get("available"):
        return [f"> **The evidence:** the full-scale result (`{ref['path']}`) is not committed yet; this run shows "
                "the pipeline only.", ""]
    arms = ref["arms"]
    cells = ", ".join(f"`{a}` {_pm(v['balanced_accuracy'])} ({len(v['seeds'])} seed{'s' if len(v['seeds']) != 1 else ''})"
                      for a, v in arms.items())
    lines = [f"> **The evidence** (committed, `{ref['path']}/report.md`): {ref['train_total']} training images, "
             f"{ref['image_size']} px, {ref['epochs']} epochs, commit `{str(ref.get('commit'))[:10]}`. Test balanced "
             f"accuracy (%): {cells}."]
    if ref.get("gan_vs_best"):
        lines.append(">")
        lines.append("> GAN arms minus the best baseline (`" + str(ref["best_baseline"]) + "`), pp [95 % CI]: " +
                     "; ".join(f"`{a}` {_ci(d['balanced_accuracy'])}"
                               " (" + ("no verdict: too few seeds" if d["meets_goal"] is None else
                                       ("meets the goal" if d["meets_goal"] else "misses the goal")) + ")"
                               for a, d in ref["gan_vs_best"].items()) + ".")
    else:
        lines.append("> No GAN arm has finished there yet: it holds the baselines only.")
    return lines + [""]
