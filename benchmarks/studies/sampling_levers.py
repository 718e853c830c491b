"""Can drawing differently lift a trained generator? Sampling-time levers, judged like every shipped generator.

No training: each lever draws from one generator file another way (``gan_augment.sampling``) and is evaluated
exactly as gan_ab evaluates an arm (validation split, 50 generated images per class against up to 200 real ones,
InceptionV3 features, the same evaluation seeds), beside the generator's own draws:

- ``scale:S`` - every latent times S (below 1 the truncation trick: fewer odd images, less variety);
- ``topk:K`` - of 1/K draws of a class, the fraction K its trained discriminator scores as most real (the
  deterministic end of discriminator rejection sampling, Azadi et al., ICLR 2019); ``--discriminator`` names the
  discriminator file written beside the generator (``pretrained:NAME`` for a shipped pair);
- both, comma-separated (``scale:0.8,topk:0.5``: the pick over truncated draws).

The discriminator judged the generator in its own (Lite0) features while it trained; the judge here is InceptionV3,
as for every generator of this project, so a pick that only pleases D's features does not score.

    python benchmarks/studies/sampling_levers.py --generator pretrained:ham10000-64-lite128 \\
        --discriminator pretrained:ham10000-64-lite128 --lever plain= --lever topk050=topk:0.5 \\
        --out benchmarks/results/sampling_levers_cpu64 --runs runs/sampling_levers_cpu64
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from studies.gan_ab import MAX_REAL_PER_CLASS, PER_CLASS, _f, _seeds, evaluation_record

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "benchmarks" / "results" / "ham10000_cpu64_full" / "manifest.csv"  # the benchmark's split
METHODS = ("scale", "topk")


def parse_lever(text: str) -> tuple[str, list[tuple[str, float]]]:
    """``NAME=METHOD:VALUE[,METHOD:VALUE]`` (``NAME=`` for the generator's own draws) -> (name, steps)."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--lever {text!r}: expected NAME=METHOD:VALUE[,...] (NAME= for the plain generator)")
    steps = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        method, colon, value = part.partition(":")
        if method not in METHODS or not colon:
            raise ValueError(f"--lever {text!r}: {part!r} is not METHOD:VALUE with METHOD one of {list(METHODS)}")
        try:
            steps.append((method, float(value)))
        except ValueError:
            raise ValueError(f"--lever {text!r}: {value!r} is not a number") from None
    if [m for m, _ in steps] not in ([], ["scale"], ["topk"], ["scale", "topk"]):
        raise ValueError(f"--lever {text!r}: at most one scale and one topk, the scale first")
    return name.strip(), steps


def build(generator, steps: list[tuple[str, float]], discriminator=None):
    """The generator drawing as ``steps`` say (validated by the wrappers)."""
    from gan_augment.sampling import DiscriminatorTopK, LatentScaled

    for method, value in steps:
        if method == "scale":
            generator = LatentScaled(generator, value)
        else:
            if discriminator is None:
                raise ValueError("a topk lever needs --discriminator (the discriminator file of this generator)")
            generator = DiscriminatorTopK(generator, discriminator, value)
    return generator


def run(out: Path, runs: Path, *, generator: str, discriminator: str | None, levers: list[tuple[str, list]],
        seeds: list[int], manifest: Path, per_class: int = PER_CLASS, max_real_per_class: int = MAX_REAL_PER_CLASS,
        features: str = "inception") -> dict[str, Any]:
    """Evaluate every lever at every seed (what ``out/levers.json`` already holds is not redone); returns it."""
    from gan_augment.generators import load_generator
    from gan_augment.pretrained import file_sha256, resolve_spec
    from gan_augment.provenance import run_metadata
    from gan_augment.training.warm_start import load_discriminator, resolve_discriminator_spec

    gpath = Path(resolve_spec(generator))
    G = load_generator(gpath)
    D = None
    if discriminator is not None:
        D = load_discriminator(discriminator, channels=G.channels)
        if D.meta.get("generator_sha256") != file_sha256(gpath):
            raise ValueError(f"--discriminator {discriminator} was trained beside another generator file "
                             f"({str(D.meta.get('generator_sha256'))[:12]}...), not {generator}")
    path = out / "levers.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    old = res.get("setup") or {}
    res["setup"] = {"generator": generator, "generator_sha256": file_sha256(gpath), "step": G.meta.get("step"),
                    "discriminator": discriminator,
                    "discriminator_sha256": file_sha256(resolve_discriminator_spec(discriminator))
                    if discriminator else None,
                    "manifest": str(manifest.relative_to(REPO) if manifest.is_relative_to(REPO) else manifest),
                    "split": "val", "per_class": per_class, "max_real_per_class": max_real_per_class,
                    "features": features, "seeds": sorted(set(old.get("seeds") or []) | set(seeds))}
    if res.get("levers") and {k: v for k, v in old.items() if k != "seeds"} != {
            k: v for k, v in res["setup"].items() if k != "seeds"}:
        raise ValueError(f"{path} holds levers of another setup ({old}); use another --out")
    res.setdefault("levers", {})
    for name, steps in levers:
        as_json = [[m, v] for m, v in steps]
        rec = res["levers"].setdefault(name, {"steps": as_json, "evaluations": {}})
        if rec["steps"] != as_json:
            raise ValueError(f"lever {name!r} was run as {rec['steps']} in {path}; give this one another name")
        for seed in seeds:
            key = f"seed{seed}"
            if key in rec["evaluations"]:
                continue
            rec["evaluations"][key] = evaluate_once(
                build(G, steps, D), manifest, runs / name / f"eval_val_{key}", out / name / f"eval_val_{key}",
                seed=seed, grid=seed == seeds[0], per_class=per_class, max_real_per_class=max_real_per_class,
                features=features)
            res["meta"] = run_metadata(device="cpu")
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(res, indent=1))
            (out / "README.md").write_text(levers_markdown(res))
    return res


def evaluate_once(generator, manifest: Path, ev_dir: Path, dest: Path, *, seed: int, grid: bool, per_class: int,
                  max_real_per_class: int, features: str, cache_dir: Path | None = None) -> dict[str, Any]:
    """One evaluation (validation split), reused from ``ev_dir`` when it is there; its files copied to ``dest``
    (the grid only when ``grid``); returns its record."""
    from gan_augment.metrics.evaluate import evaluate_generator

    m = (json.loads((ev_dir / "metrics.json").read_text()) if (ev_dir / "metrics.json").is_file() else
         evaluate_generator(generator, manifest, out=ev_dir, split="val", per_class=per_class, features=[features],
                            max_real_per_class=max_real_per_class, seed=seed, device="cpu", progress=False,
                            cache_dir=cache_dir))
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("metrics.json", "metrics.md") + (("samples_vs_real.jpg",) if grid else ()):
        shutil.copy2(ev_dir / f, dest / f)
    return {**evaluation_record(m, features), "meta": m.get("meta")}


def protocol_sentence(s: dict[str, Any]) -> str:
    """How the rows were evaluated, from a results file's ``setup``."""
    return (f"Evaluated on the {s['split']} split of `{s['manifest']}`: {s['per_class']} generated images per "
            f"class against up to {s['max_real_per_class']} real ones, {s['features']} features, evaluation seeds "
            + " / ".join(str(x) for x in s["seeds"]) + " (\"a / b\" below). Probe: how often a linear classifier "
            "tells the images from real ones (50 % = never; the goal <= 75 %). Memorisation: p of the "
            "nearest-training-distance test and the % of generated images closer to a training image than the "
            "held-out 1st percentile (flagged above 5 %).")


METRIC_COLUMNS = ("FID | KID x1e3 | precision | recall | probe % | class fidelity % | memorisation p | "
                  "% below held-out 1st pct |")


def metric_cells(ev: dict[str, Any]) -> str:
    """The METRIC_COLUMNS cells of one row, "a / b" over its evaluation seeds."""
    def get(*keys, scale=1.0):
        def fn(v):
            for k in keys:
                v = (v or {}).get(k)
            return None if v is None else v * scale
        return fn
    return (f"{_seeds(ev, get('overall', 'fid'), '.1f')} | {_seeds(ev, get('overall', 'kid', scale=1e3), '.1f')} | "
            f"{_seeds(ev, get('overall', 'precision'), '.2f')} | {_seeds(ev, get('overall', 'recall'), '.2f')} | "
            f"{_seeds(ev, get('overall', 'c2st', scale=100), '.0f')} | "
            f"{_seeds(ev, get('class_fidelity', 'mean_generated', scale=100), '.0f')} | "
            f"{_seeds(ev, get('memorisation', 'p_value'), '.2g')} | "
            f"{_seeds(ev, get('memorisation', 'fraction_below_heldout_p1', scale=100), '.1f')} |")


def provenance_lines(meta: dict[str, Any], folder: str) -> list[str]:
    return [f"Commit `{str(meta.get('commit'))[:12]}`" + (" (uncommitted changes)" if meta.get("dirty") else "")
            + f"; {meta.get('device')}; torch {(meta.get('versions') or {}).get('torch')}; last evaluation "
            f"{meta.get('date')}; command `{meta.get('command')}`.",
            f"Each evaluation's `metrics.json` / `metrics.md` lies under `{folder}/eval_val_seedN/`, with the first "
            "seed's grid of generated and real images (`samples_vs_real.jpg`).", ""]


def _describe(steps: list) -> str:
    words = {"scale": "latent x {:g}", "topk": "D's top {:.0%} of draws"}
    return ", then ".join(words[m].format(v) for m, v in steps) or "the generator's own draws"


def levers_markdown(res: dict[str, Any]) -> str:
    s, meta = res["setup"], res.get("meta") or {}
    lines = [f"# Sampling-time levers on `{s['generator']}` (step {s['step']})", "",
             "Generated by `benchmarks/studies/sampling_levers.py` from `levers.json`. No training: each lever draws from "
             f"the generator file (sha256 `{s['generator_sha256'][:12]}`) another way"
             + (f", the top-k levers scored by `{s['discriminator']}` (sha256 "
                f"`{str(s['discriminator_sha256'])[:12]}`)" if s.get("discriminator") else "")
             + ". " + protocol_sentence(s), "",
             "| lever | draws | " + METRIC_COLUMNS,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rec in res["levers"].items():
        lines.append(f"| `{name}` | {_describe(rec['steps'])} | {metric_cells(rec['evaluations'])}")
    lines += ["", "Per-class probe % (first evaluation seed):", "",
              "| lever | " + " | ".join(_classes(res)) + " |", "|---|" + "---:|" * len(_classes(res))]
    for name, rec in res["levers"].items():
        first = rec["evaluations"][sorted(rec["evaluations"])[0]] if rec["evaluations"] else {}
        probes = [((first.get("per_class") or {}).get(c) or {}).get("c2st") for c in _classes(res)]
        lines.append(f"| `{name}` | " + " | ".join(_f(None if p is None else 100 * p, ".0f") for p in probes) + " |")
    lines += [""] + provenance_lines(meta, "LEVER")
    return "\n".join(lines)


def _classes(res: dict[str, Any]) -> list[str]:
    for rec in res["levers"].values():
        for ev in rec["evaluations"].values():
            return list(ev.get("per_class") or {})
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generator", required=True, help="generator file or pretrained:NAME")
    ap.add_argument("--discriminator", help="its discriminator file or pretrained:NAME (needed by topk levers)")
    ap.add_argument("--lever", action="append", required=True, help="NAME=METHOD:VALUE[,METHOD:VALUE]; NAME= plain")
    ap.add_argument("--seeds", default="0,1", help="evaluation seeds (default 0,1)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST, help="the split the generator was trained on")
    ap.add_argument("--out", type=Path, required=True, help="results folder (levers.json, README.md, evaluations)")
    ap.add_argument("--runs", type=Path, required=True, help="working folder of the evaluations (not committed)")
    args = ap.parse_args(argv)
    try:
        levers = [parse_lever(t) for t in args.lever]
        names = [n for n, _ in levers]
        if len(set(names)) != len(names):
            raise ValueError(f"--lever names must differ, got {names}")
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        if any(steps and steps[-1][0] == "topk" for _, steps in levers) and not args.discriminator:
            raise ValueError("a topk lever needs --discriminator (the discriminator file of this generator)")
        run(args.out, args.runs, generator=args.generator, discriminator=args.discriminator, levers=levers,
            seeds=seeds, manifest=args.manifest.resolve())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
