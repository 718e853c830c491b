"""The shared-generator regime (``--upper-bound-from``): a clinic receives a generator trained on a public training
split, not the public images. Its classifier trains on a slice of that split (a ``--train-fraction`` or a few-shot
``--max-train-per-class`` slice), the GAN arms draw on the shipped generator (``--generator-from-full-split``), and
the upper bound is the same classifier trained on every real image the generator saw: the full regime's best
baseline, read from its benchmark folder (same val/test rows and protocol).

Each GAN arm gets the share of the gap it closes, ``(GAN - best slice baseline) / (upper bound - best slice
baseline)`` in test balanced accuracy, with a paired bootstrap CI (:func:`classifier.stats.gap_closed_bootstrap`),
next to the generator's memorisation test and nearest-neighbour panel: sharing a generator is a privacy claim.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.stats import balanced_accuracy, gap_closed_bootstrap
from gan_augment.data import Manifest

from .protocol import BASELINES, PROTOCOL_KEYS, REPO, BenchmarkConfig
from .report_context import _pm

__all__ = ["UpperBound", "load_upper_bound", "generator_manifest", "shared_generator_summary",
           "shared_generator_lines"]

SLICE_KEYS = ("train_fraction", "max_train_images", "max_train_per_class")  # what differs between the two regimes


class UpperBound:
    """The full regime's benchmark folder: its best baseline, and that baseline's test probabilities per seed."""

    def __init__(self, folder: Path, results: dict):
        self.folder, self.results = folder, results
        arms = results["arms"]
        done = [a for a in BASELINES if a in arms]
        if not done:
            raise ValueError(f"--upper-bound-from {folder}: its results.json has no baseline run ({list(BASELINES)})")
        self.arm = max(done, key=lambda a: np.mean(arms[a]["balanced_accuracy"]))
        self.seeds = list(arms[self.arm]["seeds"])
        self.balanced_accuracy = list(arms[self.arm]["balanced_accuracy"])
        self.train_total = results["data"]["train_total"]

    def probs(self, seeds) -> np.ndarray:
        runs = Path(self.results["baselines_from"]) / "runs" if self.results.get("baselines_from") else \
            self.folder / "runs"
        if not runs.is_absolute() and not runs.is_dir():
            runs = REPO / runs
        return np.stack([np.load(runs / f"{self.arm}_seed{s}_test_probs.npy") for s in seeds])


def load_upper_bound(cfg: BenchmarkConfig, manifest: Manifest) -> UpperBound:
    """Read ``cfg.upper_bound_from`` and refuse it unless it is the full split this slice was cut from, with the
    same protocol and the same test rows (checked before any run)."""
    folder = Path(cfg.upper_bound_from)
    name = f"--upper-bound-from {folder}"
    if not any(getattr(cfg, k) not in (None, 1.0) for k in SLICE_KEYS):
        raise ValueError(f"{name}: the shared-generator regime is a slice of the training split (--train-fraction or "
                         "--max-train-per-class); this run trains on all of it")
    if not cfg.generator_from_full_split:
        raise ValueError(f"{name}: the shared-generator regime draws on a generator trained on the whole training "
                         "split; add --generator-from-full-split")
    if not (folder / "results.json").is_file() or not (folder / "manifest.csv").is_file():
        raise ValueError(f"{name}: needs a benchmark folder with results.json and manifest.csv")
    results = json.loads((folder / "results.json").read_text())
    theirs = Manifest.read(folder / "manifest.csv")
    source = getattr(manifest, "source_hash", None) or manifest.hash
    if theirs.hash != source:
        raise ValueError(f"{name}: its split (manifest {theirs.short_hash}) is not the one this slice was cut from "
                         f"({source[:12]})")
    tcfg = results.get("config", {})
    if any(tcfg.get(k) not in (None, 1.0) for k in SLICE_KEYS):
        raise ValueError(f"{name}: it is itself a slice ({', '.join(k for k in SLICE_KEYS if tcfg.get(k) not in (None, 1.0))}); "
                         "the upper bound trains on the whole training split")
    differ = [k for k in PROTOCOL_KEYS if k not in SLICE_KEYS and k in tcfg and tcfg[k] != getattr(cfg, k)]
    if differ:
        raise ValueError(f"{name}: another protocol ({', '.join(f'{k} {tcfg[k]!r} vs {getattr(cfg, k)!r}' for k in differ)})")

    def test_rows(m: Manifest) -> list[tuple[str, int]]:
        return [(str(Path(m.paths[i]).resolve()), m.labels[i]) for i in m.indices("test")]

    if test_rows(theirs) != test_rows(manifest):
        raise ValueError(f"{name}: its test images differ from this run's (--max-eval-per-class or another data "
                         "folder?); the gap needs the same test rows")
    return UpperBound(folder, results)


def generator_manifest(cfg, manifest: Manifest) -> Manifest:
    """The split whose training images the generator saw: ``manifest``, or in the shared-generator regime (a slice
    with ``--upper-bound-from``) the whole split it was cut from - where the generator check's memorisation test and
    the external set's copy check look for copies. Its images not where its manifest says: the slice's, with a
    warning."""
    import warnings

    upper = Path(cfg.upper_bound_from) / "manifest.csv" if getattr(cfg, "upper_bound_from", None) else None
    if upper is None or not upper.is_file():
        return manifest
    full = Manifest.read(upper)
    missing = [p for p in full.paths if not Path(p).is_file()][:1]
    if missing:
        warnings.warn(f"copies are looked for among the slice's training images only: the whole split's images "
                      f"({full.location}) are not where its manifest says, e.g. {missing[0]}", stacklevel=2)
        return manifest
    return full


def _evidence(folder: Path) -> dict:
    result = json.loads((folder / "metrics.json").read_text())
    mem = result.get("memorisation", {})
    panel = next((p for p in (folder / "nearest_training.png", folder / "nearest_training.jpg") if p.is_file()), None)
    data = result.get("data", {})
    return {"folder": str(folder.relative_to(REPO)), "memorisation": mem.get("overall", {}),
            "per_class_flagged": sorted(c for c, v in (mem.get("per_class") or {}).items() if v.get("flagged")),
            "panel": str(panel.relative_to(REPO)) if panel else None,
            "train_searched": sum((data.get("train_per_class") or {}).values()),
            "generated": data.get("per_class_generated")}


def generator_evidence(generator: str | None) -> dict | None:
    """A shipped generator's committed evaluation (``benchmarks/results/pretrained_<name>/``): its memorisation
    test and the nearest-neighbour panel, on the split it was trained on - from its ``privacy/`` subfolder when
    there is one (``gan-augment evaluate --max-train-per-class all``: every training image searched), else the
    card's evaluation."""
    if not generator or not generator.startswith("pretrained:"):
        return None
    folder = REPO / "benchmarks" / "results" / f"pretrained_{generator.split(':', 1)[1].replace('-', '_')}"
    for where in (folder / "privacy", folder):
        if (where / "metrics.json").is_file():
            return _evidence(where)
    return None


def shared_generator_summary(upper: UpperBound, arms: dict, folder: Callable[[str], Path], labels: np.ndarray,
                             slice_total: int, generator: str | None, n_boot: int) -> dict:
    """Each GAN arm's share of the gap between the slice's best baseline and the upper bound, on the seeds the
    three share."""
    baselines = [a for a in BASELINES if a in arms]
    out = {"upper_bound_from": str(upper.folder), "upper_arm": upper.arm, "upper_seeds": upper.seeds,
           "upper_balanced_accuracy": upper.balanced_accuracy, "generator_saw": upper.train_total,
           "slice_train_total": slice_total, "evidence": generator_evidence(generator), "arms": {}}
    if not baselines:
        return out
    best = max(baselines, key=lambda a: np.mean(arms[a]["balanced_accuracy"]))
    out["slice_best"] = best

    def probs(arm, seeds):
        return np.stack([np.load(folder(arm) / f"{arm}_seed{s}_test_probs.npy") for s in seeds])

    for g in (a for a in arms if a.startswith("gan")):
        shared = [s for s in arms[g]["seeds"] if s in arms[best]["seeds"] and s in upper.seeds]
        if not shared:
            out["arms"][g] = {"skipped": f"no seed shared with {best} and the upper bound"}
            continue
        d = gap_closed_bootstrap(balanced_accuracy, labels, probs(g, shared), probs(best, shared),
                                 upper.probs(shared), n_boot=n_boot)
        out["arms"][g] = {"seeds": shared, **d}
    return out


def shared_generator_lines(d: dict) -> list[str]:
    """The report's section: what the generator saw, the gap closed per GAN arm, the privacy evidence."""
    lines = ["## Shared-generator regime", "",
             f"The classifier trains on {d['slice_train_total']} real training images; the generator was trained on "
             f"**all {d['generator_saw']} training images of the split** (what a clinic that receives this generator "
             "instead of the images gets). Upper bound: the same classifier on those "
             f"{d['generator_saw']} real images - `{d['upper_arm']}` of `{d['upper_bound_from']}`, "
             f"{_pm(d['upper_balanced_accuracy'])} % test balanced accuracy (seeds "
             f"{', '.join(map(str, d['upper_seeds']))}).", ""]
    if d.get("arms"):
        lines += [f"Share of the gap closed = (GAN arm - `{d.get('slice_best')}`) / (upper bound - "
                  f"`{d.get('slice_best')}`), test balanced accuracy averaged over the seeds the three share; 95 % "
                  "paired bootstrap CI over test images and seeds:", "",
                  "| GAN arm | seeds | GAN % | best slice baseline % | upper bound % | gap closed |", "|---|---|---:|---:|---:|---|"]
        for g, a in d["arms"].items():
            if "skipped" in a:
                lines.append(f"| {g} | - | - | - | - | {a['skipped']} |")
                continue
            note = f" ({a['undefined_share']:.0%} of replicates without a gap)" if a["undefined_share"] > 0.01 else ""
            lines.append(f"| {g} | {','.join(map(str, a['seeds']))} | {a['arm'] * 100:.1f} | {a['base'] * 100:.1f} | "
                         f"{a['upper'] * 100:.1f} | {a['share']:+.0%} [{a['ci_low']:+.0%}, {a['ci_high']:+.0%}]{note} |")
        lines.append("")
    ev = d.get("evidence")
    if ev:
        mem = ev["memorisation"]
        flagged = ev["per_class_flagged"]
        searched = (f", {ev['generated']} generated images per class against {ev['train_searched']} training images"
                    if ev.get("train_searched") and ev.get("generated") else "")
        lines += [f"Privacy evidence of the generator (`{ev['folder']}`, on the split it was trained on{searched}): "
                  f"memorisation test p = {mem.get('p_value', float('nan')):.3f}, "
                  f"{mem.get('fraction_below_heldout_p1', float('nan')):.1%} of generated images closer to a training "
                  f"image than the held-out 1st percentile: **{'FLAGGED' if mem.get('flagged') else 'not flagged'}**"
                  + (f"; flagged classes: {', '.join(flagged)}" if flagged else "; no class flagged")
                  + (f". Nearest training images: `{ev['panel']}`." if ev.get("panel") else "."),
                  "A test that passes bounds what the nearest-neighbour test can see, not every leak (no membership "
                  "inference attack was run).", ""]
    else:
        lines += ["No committed memorisation test for this generator file: run `gan-augment evaluate` on it before "
                  "sharing it.", ""]
    return lines
