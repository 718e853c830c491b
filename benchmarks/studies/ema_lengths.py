"""How long an average of G? One training run's averages, judged like every shipped generator.

A run with ``train.ema_extra_decays`` exports one generator file per average of G's weights, all from the same
trajectory of G: ``generator.safetensors`` (``train.ema_decay``) and ``generator_ema<decay>.safetensors``. Each is
evaluated as gan_ab evaluates an arm (validation split, 50 generated images per class against up to 200 real ones,
InceptionV3 features, the same evaluation seeds), beside the file the run started from (``--start``), so the
averages differ in nothing but their length. Resumable: what ``out/ema.json`` holds is not redone.

    python benchmarks/studies/ema_lengths.py --run runs/gan_ab/ema_cpu64/run --start FILE --seeds 0,1 \\
        --out benchmarks/results/ema_length_cpu64 --runs runs/ema_length_cpu64
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from studies.gan_ab import MAX_REAL_PER_CLASS, PER_CLASS, _f
from studies.sampling_levers import METRIC_COLUMNS, evaluate_once, metric_cells, protocol_sentence, provenance_lines

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "benchmarks" / "results" / "ham10000_cpu64_full" / "manifest.csv"  # the benchmark's split


def _rel(p: Path) -> str:
    """Relative to the repository where it lies under it: symlinks are not followed (a second checkout whose
    ``runs/`` links to the first one's still records ``runs/...``)."""
    p = Path(os.path.abspath(p))
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def run_files(run_dir: Path) -> dict[str, dict[str, Any]]:
    """``{label: {path, decay, step}}`` for the run's main generator file and every ``generator_ema*`` beside it,
    shortest average first; refuses files of different steps (a run stopped between two exports)."""
    from gan_augment.generators import read_generator_metadata

    paths = [run_dir / "generator.safetensors", *sorted(run_dir.glob("generator_ema*.safetensors"))]
    if not paths[0].is_file():
        raise ValueError(f"{run_dir}: no generator.safetensors (the folder of a finished or paused training run)")
    if len(paths) == 1:
        raise ValueError(f"{run_dir}: no generator_ema*.safetensors beside generator.safetensors (train the run "
                         "with train.ema_extra_decays)")
    files = {}
    for p in paths:
        meta = read_generator_metadata(p)
        decay = float((meta.get("training") or {}).get("ema_decay") or 0.0)
        files[f"ema{decay!r}"] = {"path": p, "decay": decay, "step": meta.get("step")}
    steps = {f["step"] for f in files.values()}
    if len(steps) != 1:
        raise ValueError(f"{run_dir}: its generator files are of different steps {sorted(steps)}; resume the run "
                         "until it writes them together")
    return dict(sorted(files.items(), key=lambda kv: kv[1]["decay"]))


def half_life(decay: float) -> float | None:
    """G steps after which an update's weight in the average has halved."""
    return math.log(0.5) / math.log(decay) if 0 < decay < 1 else None


def run(out: Path, runs: Path, *, run_dir: Path, seeds: list[int], manifest: Path, start: str | None = None,
        per_class: int = PER_CLASS, max_real_per_class: int = MAX_REAL_PER_CLASS,
        features: str = "inception") -> dict[str, Any]:
    from gan_augment.pretrained import file_sha256, resolve_spec
    from gan_augment.provenance import run_metadata

    files = run_files(run_dir)
    entries = {name: {"path": f["path"], "decay": f["decay"]} for name, f in files.items()}
    if start is not None:
        if not Path(resolve_spec(start)).is_file():
            raise ValueError(f"--start {start}: no such generator file")
        entries = {"start": {"path": Path(resolve_spec(start)), "decay": None}, **entries}
    summary_path = run_dir / "train_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    path = out / "ema.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    old = res.get("setup") or {}
    res["setup"] = {"run": _rel(run_dir), "step": next(iter(files.values()))["step"], "start": start,
                    "cpu_minutes": round(summary["cpu_s_total"] / 60, 1) if "cpu_s_total" in summary else None,
                    "manifest": _rel(manifest), "split": "val", "per_class": per_class,
                    "max_real_per_class": max_real_per_class, "features": features,
                    "seeds": sorted(set(old.get("seeds") or []) | set(seeds))}
    if res.get("averages") and {k: v for k, v in old.items() if k != "seeds"} != {
            k: v for k, v in res["setup"].items() if k != "seeds"}:
        raise ValueError(f"{path} holds another run's evaluations ({old}); use another --out")
    res.setdefault("averages", {})
    for name, e in entries.items():
        sha = file_sha256(e["path"])
        rec = res["averages"].setdefault(name, {"file": _rel(e["path"]), "sha256": sha, "decay": e["decay"],
                                                "half_life_steps": half_life(e["decay"] or 0), "evaluations": {}})
        if rec["sha256"] != sha:
            raise ValueError(f"{e['path']} changed since {path} evaluated it (sha256 {rec['sha256'][:12]}...)")
        for seed in seeds:
            key = f"seed{seed}"
            if key in rec["evaluations"]:
                continue
            rec["evaluations"][key] = evaluate_once(
                e["path"], manifest, runs / name / f"eval_val_{key}", out / name / f"eval_val_{key}", seed=seed,
                grid=seed == seeds[0], per_class=per_class, max_real_per_class=max_real_per_class,
                features=features, cache_dir=runs / "feature_cache")
            res["meta"] = run_metadata(device="cpu")
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(res, indent=1))
            (out / "README.md").write_text(ema_markdown(res))
    return res


def ema_markdown(res: dict[str, Any]) -> str:
    s, meta = res["setup"], res.get("meta") or {}
    lines = [f"# Averages of one run's G: `{s['run']}` at step {s['step']}", "",
             "Generated by `benchmarks/studies/ema_lengths.py` from `ema.json`. Every row but the start is an exponential "
             "moving average of the same run's G weights (`train.ema_decay` and `train.ema_extra_decays`), so the "
             "rows differ only in how long they average"
             + (f"; the run trained {s['cpu_minutes']:g} minutes of its loop's CPU time" if s.get("cpu_minutes")
                else "") + (f" from `{s['start']}`" if s.get("start") else "")
             + ". " + protocol_sentence(s), "",
             "| average | decay | half-life (G steps) | " + METRIC_COLUMNS,
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rec in res["averages"].items():
        label = f"start (`{rec['file']}`)" if name == "start" else f"`{rec['file'].rsplit('/', 1)[-1]}`"
        lines.append(f"| {label} | {_f(rec['decay'], 'g')} | {_f(rec['half_life_steps'], '.0f')} | "
                     f"{metric_cells(rec['evaluations'])}")
    lines += [""] + provenance_lines(meta, "AVERAGE")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="the training run's folder (its generator files)")
    ap.add_argument("--start", help="the generator file or pretrained:NAME the run started from (a row beside)")
    ap.add_argument("--seeds", default="0,1", help="evaluation seeds (default 0,1)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST, help="the split the generator was trained on")
    ap.add_argument("--out", type=Path, required=True, help="results folder (ema.json, README.md, evaluations)")
    ap.add_argument("--runs", type=Path, required=True, help="working folder of the evaluations (not committed)")
    args = ap.parse_args(argv)
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        run(args.out, args.runs, run_dir=args.run, seeds=seeds, manifest=args.manifest.resolve(), start=args.start)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
