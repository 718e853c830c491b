"""Is it the colour? The shipped 64 px generators' images judged on per-image colour statistics alone.

A linear probe on InceptionV3 features tells the shipped generators' images from real validation images 86-96 %
of the time, and the recipe's discriminator trains under DiffAugment's colour transform at p = 1 (brightness,
saturation and contrast drawn afresh for every image), which should blind it to exactly the colour errors a
dermoscopy generator can make. If colour were what gives the images away, the colour statistics alone would tell
them apart too. This runs :func:`gan_augment.metrics.colour_comparison` (per channel: mean, spread, 10 / 50 /
90th percentiles; a linear probe on those 15 numbers) under the generator check's selection (validation split,
up to 200 real images per class, 50 generated per class) at two evaluation seeds, overall and per class, with
the real floor (real training images in place of generated ones, same selection).

    python benchmarks/studies/colour_probe.py --out benchmarks/results/colour_probe_cpu64
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "benchmarks" / "results" / "ham10000_cpu64_full" / "manifest.csv"  # the benchmark's split
GENERATORS = ("pretrained:ham10000-64", "pretrained:ham10000-64-ac", "pretrained:ham10000-64-long")
# the committed InceptionV3 probe of each (eval seed 0, the same selection), shown beside the colour probe
INCEPTION = {"pretrained:ham10000-64": "pretrained_ham10000_64",
             "pretrained:ham10000-64-ac": "pretrained_ham10000_64_ac",
             "pretrained:ham10000-64-long": "pretrained_ham10000_64_long"}
PER_CLASS, MAX_REAL_PER_CLASS = 50, 200


def colour_probe(manifest_path: Path, generators: list[str], seeds: list[int]) -> dict[str, Any]:
    from gan_augment.data import Manifest
    from gan_augment.generators import load_generator
    from gan_augment.metrics import colour_comparison
    from gan_augment.metrics.evaluate import _sample, load_real_images
    from gan_augment.pretrained import resolve_spec
    from gan_augment.provenance import run_metadata

    manifest = Manifest.read(manifest_path)
    loaded = {name: load_generator(resolve_spec(name)) for name in generators}
    classes = [list(G.class_names) for G in loaded.values()]
    if any(c != classes[0] for c in classes):
        raise ValueError(f"the generators {generators} do not share one class list: {classes}")
    classes = classes[0]
    res = {g.resolution for g in loaded.values()}
    if len(res) != 1:
        raise ValueError(f"the generators {generators} do not share one resolution: {sorted(res)}")
    resolution = res.pop()

    def compare(real, real_labels, fake, fake_labels) -> dict[str, Any]:
        r = colour_comparison(real, fake)
        r["per_class_probe"] = {c: colour_comparison(real[torch.from_numpy(real_labels == i)],
                                                     fake[torch.from_numpy(fake_labels == i)])["probe"]
                                for i, c in enumerate(classes)}
        return r

    rows: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        held = load_real_images(manifest, "val", classes, resolution=resolution, channels=3,
                                max_per_class=MAX_REAL_PER_CLASS, seed=seed, progress=False)
        train = load_real_images(manifest, "train", classes, resolution=resolution, channels=3,
                                 max_per_class=MAX_REAL_PER_CLASS, seed=seed, progress=False)
        # the real floor: PER_CLASS training images per class, drawn like the generated ones are counted
        pick = np.concatenate([np.flatnonzero(train.labels == i)[:PER_CLASS] for i in range(len(classes))])
        rows.setdefault("real training images (the floor)", {})[str(seed)] = compare(
            held.images, held.labels, train.images[torch.from_numpy(pick)], train.labels[pick])
        for name, G in loaded.items():
            fake, fake_labels = _sample(G, classes, PER_CLASS, seed, "cpu")
            rows.setdefault(name, {})[str(seed)] = compare(held.images, held.labels, fake, fake_labels)
    inception = {}
    for name in generators:
        path = REPO / "benchmarks" / "results" / INCEPTION.get(name, "-") / "metrics.json"
        if path.is_file():
            import json

            inception[name] = json.loads(path.read_text())["distribution"]["inception"]["overall"].get("c2st")
    return {"meta": run_metadata(), "manifest": str(manifest_path), "manifest_hash": manifest.hash,
            "classes": classes, "seeds": seeds, "per_class_generated": PER_CLASS,
            "max_real_per_class": MAX_REAL_PER_CLASS, "rows": rows, "inception_probe_eval_seed0": inception}


def colour_markdown(r: dict[str, Any]) -> str:
    seeds = [str(s) for s in r["seeds"]]
    classes = r["classes"]
    sl = " / ".join(seeds)
    lines = ["# Is it the colour? Per-image colour statistics of the shipped 64 px generators", "",
             f"Validation split of the cpu64 benchmark (manifest `{r['manifest_hash'][:12]}`), up to "
             f"{r['max_real_per_class']} real images per class against {r['per_class_generated']} generated per "
             f"class, evaluation seeds {sl}. Colour probe: cross-validated balanced accuracy of a linear probe on "
             "15 numbers per image (per channel: mean, standard deviation, 10 / 50 / 90th percentiles; 0.5 = "
             "indistinguishable). Gaps: generated minus real, mean over images, grey levels (0-255). InceptionV3 "
             "probe: the committed generator check of each (eval seed 0, same selection).", "",
             f"| images (eval seed {sl}) | colour probe | InceptionV3 probe | mean gap R / G / B | std gap R / G / B |",
             "|---|---:|---:|---|---|"]
    for name, by_seed in r["rows"].items():
        probe = " / ".join(f"{by_seed[s]['probe']:.2f}" for s in seeds)
        inc = r["inception_probe_eval_seed0"].get(name)
        gaps = {k: " / ".join(" ".join(f"{by_seed[s]['generated_minus_real'][ch][k]:+.1f}" for ch in "RGB")
                              for s in seeds) for k in ("mean", "std")}
        lines.append(f"| {name} | {probe} | {'-' if inc is None else f'{inc:.2f}'} | {gaps['mean']} | {gaps['std']} |")
    lines += ["", f"| colour probe per class (eval seed {sl}) | " + " | ".join(classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for name, by_seed in r["rows"].items():
        lines.append(f"| {name} | " + " | ".join(" / ".join(f"{by_seed[s]['per_class_probe'][c]:.2f}" for s in seeds)
                                                 for c in classes) + " |")
    floor = np.mean([v["probe"] for v in r["rows"]["real training images (the floor)"].values()])
    gens = {n: by for n, by in r["rows"].items() if not n.startswith("real training")}
    inc = [v for v in r["inception_probe_eval_seed0"].values() if v is not None]
    if gens:
        probes = [np.mean([v["probe"] for v in by.values()]) for by in gens.values()]

        def mean_gap(k, rows=gens):  # over generators, seeds and channels
            return np.mean([g[k] for by in rows.values() for v in by.values()
                            for g in v["generated_minus_real"].values()])

        floor_rows = {k: v for k, v in r["rows"].items() if k.startswith("real training")}

        def class_probe(c, rows=gens):
            return np.mean([v["per_class_probe"][c] for by in rows.values() for v in by.values()])

        above = {c: class_probe(c) - class_probe(c, floor_rows) for c in classes}  # small classes vary more
        top = sorted(above, key=above.get, reverse=True)[:3]
        lines += ["", f"**Reading.** Colour statistics alone tell the generated images from real ones "
                  f"{min(probes):.2f}-{max(probes):.2f} of the time (mean over the seeds; real training images "
                  f"{floor:.2f})" + (f", InceptionV3 features {min(inc):.2f}-{max(inc):.2f}" if inc else "") +
                  f". On average the generated images are {abs(mean_gap('mean')):.1f} grey levels "
                  f"{'brighter' if mean_gap('mean') > 0 else 'darker'} per channel than real ones and their pixel "
                  f"spread is {abs(mean_gap('std')):.1f} levels {'narrower' if mean_gap('std') < 0 else 'wider'} "
                  "(real training images, drawn 50 per class like the generated ones: "
                  f"{mean_gap('mean', floor_rows):+.1f}"
                  f" and {mean_gap('std', floor_rows):+.1f}, the class mix of the selection); "
                  "the colour probe per class rises furthest above real images' for "
                  + ", ".join(f"{c} ({class_probe(c):.2f} against {class_probe(c, floor_rows):.2f})" for c in top)
                  + "."]
    lines += ["", "Command: `python benchmarks/studies/colour_probe.py --out benchmarks/results/colour_probe_cpu64` "
              f"(commit {r['meta'].get('commit', '?')[:10]}, {r['meta'].get('cpu', r['meta'].get('device', '?'))}).",
              ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from gan_augment._io import write_json, write_text

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/colour_probe_cpu64"))
    p.add_argument("--manifest", type=Path, default=MANIFEST)
    p.add_argument("--generators", default=",".join(GENERATORS), help="files or pretrained:NAME, comma-separated")
    p.add_argument("--seeds", default="0,1")
    args = p.parse_args(argv)
    try:
        result = colour_probe(args.manifest, [g.strip() for g in args.generators.split(",")],
                              [int(s) for s in args.seeds.split(",")])
    except (ValueError, FileNotFoundError) as exc:
        print(f"colour_probe: {exc}", file=sys.stderr)
        return 2
    write_json(args.out / "colour_probe.json", result)
    write_text(args.out / "README.md", colour_markdown(result))
    print(colour_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
