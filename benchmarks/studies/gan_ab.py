"""A paired A/B of training recipes from one start: each arm continues the same generator for the same CPU time.

A change to the recipe (an option of the discriminator, the loss or the augmentation) is judged against a control
that differs in nothing else: both arms start G and its EMA from one generator file (``train.init_generator``,
a fresh discriminator unless ``--start-discriminator`` is given), train for the same budget of the training
loop's own CPU time (``train.cpu_time_limit_minutes``: process time over all threads, so other work on the
machine does not shift it) and are evaluated like every shipped generator (validation split, 50 generated
images per class against up to 200 real ones, InceptionV3 features) at several evaluation seeds, next to the
start itself. Starting from a committed generator (``pretrained:NAME``) makes the A/B reproducible from a clean
clone. An arm resumes from its checkpoint after an interruption (``--time-limit-minutes`` pauses cleanly);
finished arms and evaluations are never redone.

One training run per arm is not evidence: two runs of the same control from the same start, differing only in
``train.seed`` (D's initialisation, latents, augmentation, data order), can differ as much as a lever does.
``--train-seeds 0,1`` runs every arm at each training seed (``NAME`` at the base config's seed, ``NAME_seedN``
with ``train.seed=N`` otherwise) and the report pairs each arm with the control at the same training seed:
the difference per seed, its mean, and the control's own range across training seeds as the yardstick.

    python benchmarks/studies/gan_ab.py --start pretrained:ham10000-64-long --cpu-minutes 45 --train-seeds 0,1 \\
        --arm control= --arm mbstd=model.d_mbstd_group=4 --out benchmarks/results/mbstd_cpu64
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/NAME.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from studies.ab_pairs import config_seed, expand_train_seeds, paired_markdown
from ga_bench.cpu_budget import Paused, collect_run, pausable, train_for_cpu
from ga_bench.fmt import num as _f

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "configs" / "ham10000_64_cpu.yaml"
PER_CLASS, MAX_REAL_PER_CLASS = 50, 200  # the shipped generators' evaluation
D_TAIL_STEPS = 250  # D's hinge loss is reported as its mean over an arm's last this many logged steps


def parse_arm(text: str) -> tuple[str, list[str]]:
    """``NAME=key=value,key=value`` (``NAME=`` for the control) -> (NAME, overrides)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--arm {text!r}: expected NAME=key=value[,key=value...] (NAME= for the control), NAME of "
                         "letters, digits, - and _")
    overrides = [o.strip() for o in rest.split(",") if o.strip()]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ValueError(f"--arm {name}: overrides must be key=value, got {bad}")
    return name, overrides


def _log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "log.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def train_arm(base: Path, overrides: list[str], run_dir: Path, *, start: str, start_discriminator: str | None,
              cpu_minutes: float, deadline: float | None) -> bool:
    """Train (or resume) one arm from ``start`` until its loop has used ``cpu_minutes`` of CPU time; False if it
    already had."""
    sets = [*overrides, f"train.init_generator={start}", "train.steps=10000000", "train.progress=false"]
    if start_discriminator:
        sets.append(f"train.init_discriminator={start_discriminator}")
    return train_for_cpu(base, sets, run_dir, cpu_minutes, deadline)


def evaluation_record(metrics: dict[str, Any], features: str = "inception") -> dict[str, Any]:
    """The numbers the A/B table shows, from one ``evaluate_generator`` result (in ``features``)."""
    dist = metrics["distribution"][features]
    o, mem = dist["overall"], metrics["memorisation"]["overall"]
    return {
        "overall": {k: o.get(k) for k in ("fid", "kid", "precision", "recall", "c2st", "spread_ratio")},
        "per_class": {c: {k: v.get(k) for k in ("kid", "recall", "c2st")} for c, v in dist["per_class"].items()},
        "spectral_gap": metrics.get("spectrum", {}).get("high_band_gap"),
        "colour_probe": metrics.get("colour", {}).get("probe"),
        "class_fidelity": {k: metrics.get("class_fidelity", {}).get(k)
                           for k in ("mean_generated", "mean_real_heldout")},
        "memorisation": {k: mem.get(k) for k in ("p_value", "fraction_below_heldout_p1", "flagged")},
        "generator": {k: metrics["generator"].get(k) for k in ("step", "path")},
    }


def training_record(run_dir: Path, start_step: int | None) -> dict[str, Any]:
    recs = _log(run_dir)
    if not recs:
        return {}
    last = recs[-1]
    tail = [r for r in recs if r["step"] > last["step"] - D_TAIL_STEPS]
    return {"start_step": start_step, "end_step": last["step"],
            "steps": last["step"] - (start_step or 0) if start_step is not None else None,
            "wall_s": last.get("elapsed_s"), "cpu_s": last.get("cpu_s"),
            "img_per_s": float(np.median([r["img_per_s"] for r in recs if r.get("img_per_s")])),
            "d_loss_tail": float(np.mean([r["d_loss"] for r in tail])), "d_loss_chance": last.get("d_loss_chance"),
            "aug_p_last": last.get("aug_p")}


def _evaluate(generator: Path | str, manifest: Path, out: Path, seed: int, setup: dict[str, Any]) -> dict[str, Any]:
    from gan_augment.metrics.evaluate import evaluate_generator

    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    return evaluate_generator(generator, manifest, out=out, split="val", per_class=setup["per_class"],
                              features=[setup["features"]], max_real_per_class=setup["max_real_per_class"],
                              seed=seed, device="cpu", progress=False)


def _collect(run_dir: Path, dest: Path) -> None:
    """What is committed of an arm: its config, log, curves, grid, summary and each evaluation's metrics."""
    collect_run(run_dir, dest, {ev.name: ("metrics.json", "metrics.md", "samples_vs_real.jpg")
                                for ev in sorted(run_dir.glob("eval_val_seed*"))})


def run_ab(out: Path, *, arms: list[tuple[str, list[str]]], start: str, cpu_minutes: float,
           eval_seeds: list[int], base: Path = BASE_CONFIG, runs_dir: Path | None = None,
           start_discriminator: str | None = None, time_limit_minutes: float | None = None,
           per_class: int = PER_CLASS, max_real_per_class: int = MAX_REAL_PER_CLASS,
           features: str = "inception", note: str | None = None,
           pair_exclude: list[str] | None = None) -> dict[str, Any]:
    from gan_augment._io import write_json, write_text
    from gan_augment.generators import read_generator_metadata
    from gan_augment.pretrained import resolve_spec
    from gan_augment.provenance import run_metadata

    names = [n for n, _ in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must differ, got {names}")
    start_file = resolve_spec(start)  # pretrained:NAME -> its hash-checked file; a path stays a path
    start_step = read_generator_metadata(start_file).get("step")
    deadline = time.monotonic() + time_limit_minutes * 60 if time_limit_minutes else None
    runs_dir = runs_dir or REPO / "runs" / "gan_ab" / out.name
    ab_path = out / "ab.json"
    ab = json.loads(ab_path.read_text()) if ab_path.is_file() else {}
    setup = {"base_config": str(base.relative_to(REPO) if base.is_relative_to(REPO) else base), "start": start,
             "start_step": start_step, "start_discriminator": start_discriminator, "cpu_minutes": cpu_minutes,
             "per_class": per_class, "max_real_per_class": max_real_per_class, "features": features}
    if ab and ab.get("setup") != setup:
        raise ValueError(f"{ab_path} holds an A/B with another setup ({ab.get('setup')}); this one is {setup}: "
                         "give it its own --out")
    ab.setdefault("setup", setup)
    ab.setdefault("meta", run_metadata(device="cpu"))
    ab.setdefault("arms", {})
    ab.setdefault("start", {})
    ab.setdefault("base_train_seed", config_seed(base))
    if note is not None:  # the question the A/B asks, shown above its tables; the last one given stands
        ab["note"] = note
    if pair_exclude is not None:  # arms the paired table leaves out (e.g. a run disturbed by other work)
        ab["pair_exclude"] = list(pair_exclude)
    with pausable(ab, "gan_ab"):
        for name, overrides in arms:
            rec = ab["arms"].setdefault(name, {"overrides": overrides, "evaluations": {}})
            if rec["overrides"] != overrides:
                raise ValueError(f"arm {name} in {ab_path} was run with {rec['overrides']}, not {overrides}")
            run_dir = runs_dir / name
            if train_arm(base, overrides, run_dir, start=start, start_discriminator=start_discriminator,
                         cpu_minutes=cpu_minutes, deadline=deadline) or "training" not in rec:
                rec["training"] = {**training_record(run_dir, start_step), "meta": run_metadata(device="cpu")}
            for seed in eval_seeds:
                if str(seed) in rec["evaluations"]:
                    continue
                if deadline is not None and deadline - time.monotonic() < 4 * 60:
                    raise Paused("not enough time left to evaluate")
                metrics = _evaluate(run_dir / "generator.safetensors", run_dir / "manifest.csv",
                                    run_dir / f"eval_val_seed{seed}", seed, setup)
                rec["evaluations"][str(seed)] = evaluation_record(metrics, features)
                write_json(ab_path, ab)
            _collect(run_dir, out / name)
            # the start, under the same protocol and manifest (the first arm's run wrote it)
            for seed in eval_seeds:
                if str(seed) not in ab["start"]:
                    metrics = _evaluate(start_file, run_dir / "manifest.csv", runs_dir / f"start_eval_seed{seed}",
                                        seed, setup)
                    ab["start"][str(seed)] = evaluation_record(metrics, features)
            write_json(ab_path, ab)
            write_text(out / "README.md", ab_markdown(ab))
    write_json(ab_path, ab)
    write_text(out / "README.md", ab_markdown(ab))
    return ab


def _seeds(by_seed: dict[str, Any], get, fmt) -> str:
    return " / ".join(_f(get(v), fmt) for _, v in sorted(by_seed.items()))


def ab_markdown(ab: dict[str, Any]) -> str:
    s = ab["setup"]
    seeds = sorted({k for a in ab["arms"].values() for k in a["evaluations"]} | set(ab["start"]))
    sl = " / ".join(seeds)
    lines = [f"# A/B from `{s['start']}` (step {s['start_step']}): {', '.join(ab['arms'])}", "",
             f"Generated by `benchmarks/studies/gan_ab.py` from `ab.json`. Every arm: `{s['base_config']}` with its "
             f"overrides, G + EMA from `{s['start']}`, "
             + (f"D from `{s['start_discriminator']}`" if s.get("start_discriminator") else "a fresh discriminator")
             + f", {s['cpu_minutes']:g} minutes of the training loop's own CPU time. Evaluated on the validation "
             f"split ({s['per_class']} generated images per class against up to {s['max_real_per_class']} real "
             f"ones, {s.get('features', 'inception')} features) at evaluation seeds {sl}.", ""]
    if ab.get("note"):
        lines += [ab["note"], ""]
    if ab.get("paused"):
        lines += [f"**Paused**: {ab['paused']} - rerun the same command to continue.", ""]
    lines += ["| arm | overrides | G steps | wall | real images/s | D hinge loss, last steps (chance) | "
              "augmentation p |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, a in ab["arms"].items():
        t = a.get("training") or {}
        lines.append(f"| {name} | {', '.join(f'`{o}`' for o in a['overrides']) or '(control)'} | "
                     f"{_f(t.get('steps'), ',')} ({_f(t.get('start_step'), ',')} -> {_f(t.get('end_step'), ',')}) | "
                     f"{_f(t.get('wall_s'), '.0f')} s | {_f(t.get('img_per_s'))} | {_f(t.get('d_loss_tail'), '.2f')} "
                     f"({_f(t.get('d_loss_chance'), '.2f')}) | {_f(t.get('aug_p_last'), '.2f')} |")
    rows = [("the start", ab["start"])] + [(n, a["evaluations"]) for n, a in ab["arms"].items()]
    lines += ["", f"| generator (eval seed {sl}) | FID | KID x1e3 | precision | recall | probe % | spread | "
              "spectral gap | colour probe % | class fidelity % | memorisation p | % below held-out 1st pct |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    def get(*path, scale=1.0):  # a number inside one evaluation record, scaled; None when absent
        def fn(v):
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            return None if v is None else scale * v
        return fn

    columns = [(get("overall", "fid"), ".1f"), (get("overall", "kid", scale=1e3), ".1f"),
               (get("overall", "precision"), ".2f"), (get("overall", "recall"), ".2f"),
               (get("overall", "c2st", scale=100), ".0f"), (get("overall", "spread_ratio"), ".2f"),
               (get("spectral_gap"), "+.2f"), (get("colour_probe", scale=100), ".0f"),
               (get("class_fidelity", "mean_generated", scale=100), ".0f"), (get("memorisation", "p_value"), ".2g"),
               (get("memorisation", "fraction_below_heldout_p1", scale=100), ".1f")]
    for label, ev in rows:
        if ev:
            lines.append(f"| {label} | " + " | ".join(_seeds(ev, fn, fmt) for fn, fmt in columns) + " |")
    classes = next((list(next(iter(ev.values()))["per_class"]) for _, ev in rows if ev), [])
    for key, title, scale, fmt in (("c2st", "probe % per class", 100, ".0f"),
                                   ("kid", "KID x1e3 per class", 1e3, ".1f")):
        lines += ["", f"| {title} (eval seed {sl}) | " + " | ".join(classes) + " |",
                  "|---|" + "---:|" * len(classes)]
        for label, ev in rows:
            if ev:
                lines.append(f"| {label} | " + " | ".join(_seeds(ev, get("per_class", c, key, scale=scale), fmt)
                                                         for c in classes) + " |")
    lines += ["", "Probe: balanced accuracy of a linear classifier telling generated from real image features "
              "(50 % = indistinguishable). Spread: within-class feature spread, generated / real. Spectral gap: "
              "generated - real log10 power over the upper half of the frequencies. Colour probe: the same test on "
              "per-image colour statistics alone. Memorisation: Mann-Whitney p that generated images lie closer to "
              "training images than held-out real ones do (flagged below 0.01 with more than 5 % below the held-out "
              "1st percentile).", ""]
    lines += paired_markdown(ab)
    lines += ["## Provenance", "", "| arm | trained at commit | machine | recorded (UTC) | command |",
              "|---|---|---|---|---|"]
    for name, a in ab["arms"].items():
        m = (a.get("training") or {}).get("meta") or {}
        commit = m.get("commit", "?")[:10] + (" (dirty)" if m.get("dirty") else "")
        lines.append(f"| {name} | {commit} | {m.get('device', '?')} | {m.get('date', '?')} | "
                     f"`{m.get('command', '?')}` |")
    lines.append("")
    return "\n".join(lines)


def report_only(out: Path, note: str | None = None, pair_exclude: list[str] | None = None) -> int:
    """Rewrite ``out/README.md`` from ``out/ab.json`` (setting its note and the arms left out of the pairing first,
    when given)."""
    from gan_augment._io import write_json, write_text

    ab_path = out / "ab.json"
    if not ab_path.is_file():
        print(f"gan_ab: {ab_path} does not exist: nothing to report", file=sys.stderr)
        return 2
    ab = json.loads(ab_path.read_text())
    unknown = sorted(set(pair_exclude or ()) - set(ab["arms"]))
    if unknown:
        print(f"gan_ab: --pair-exclude {', '.join(unknown)}: no such arm in {ab_path} ({', '.join(ab['arms'])})",
              file=sys.stderr)
        return 2
    if note is not None or pair_exclude is not None:
        if note is not None:
            ab["note"] = note
        if pair_exclude is not None:
            ab["pair_exclude"] = list(pair_exclude)
        write_json(ab_path, ab)
    write_text(out / "README.md", ab_markdown(ab))
    print((out / "README.md").read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="results folder (ab.json, README.md, each arm's files)")
    p.add_argument("--start", help="generator file or pretrained:NAME every arm starts from")
    p.add_argument("--start-discriminator", help="discriminator file or pretrained:NAME (default: a fresh D)")
    p.add_argument("--arm", action="append", help="NAME=key=value,... (NAME= for the control); repeat for each arm")
    p.add_argument("--cpu-minutes", type=float, help="each arm's budget of training-loop CPU time")
    p.add_argument("--train-seeds", help="run every arm at each of these training seeds (e.g. 0,1) and pair each "
                   "with the control at the same seed in the report")
    p.add_argument("--pair-exclude", action="append", metavar="ARM",
                   help="leave this arm out of the paired table (e.g. a run disturbed by other work); repeatable")
    p.add_argument("--eval-seeds", default="0,1")
    p.add_argument("--base", type=Path, default=BASE_CONFIG)
    p.add_argument("--runs", type=Path, help="where the arms train (default runs/gan_ab/<out's name>)")
    p.add_argument("--time-limit-minutes", type=float, help="pause cleanly after this wall time; rerun to continue")
    p.add_argument("--note", help="the question this A/B asks, kept in ab.json and shown above the tables")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite README.md from --out's ab.json (with --note: set the note first); trains nothing")
    args = p.parse_args(argv)
    if args.report_only:
        return report_only(args.out, args.note, args.pair_exclude)
    missing = [flag for flag, v in (("--start", args.start), ("--arm", args.arm), ("--cpu-minutes", args.cpu_minutes))
               if v is None]
    if missing:
        p.error(f"{', '.join(missing)} required (unless --report-only)")
    try:
        arms = [parse_arm(a) for a in args.arm]
        if args.train_seeds:
            try:
                seeds = [int(x) for x in args.train_seeds.split(",")]
            except ValueError:
                raise ValueError(f"--train-seeds {args.train_seeds!r}: expected integers such as 0,1") from None
            arms = expand_train_seeds(arms, seeds, config_seed(args.base))
        if args.pair_exclude and set(args.pair_exclude) - {n for n, _ in arms}:
            raise ValueError(f"--pair-exclude {sorted(set(args.pair_exclude) - {n for n, _ in arms})}: not an arm "
                             f"of this command ({', '.join(n for n, _ in arms)})")
        run_ab(args.out, arms=arms, start=args.start, cpu_minutes=args.cpu_minutes,
               eval_seeds=[int(x) for x in args.eval_seeds.split(",")], base=args.base, runs_dir=args.runs,
               start_discriminator=args.start_discriminator, time_limit_minutes=args.time_limit_minutes,
               note=args.note, pair_exclude=args.pair_exclude)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gan_ab: {exc}", file=sys.stderr)
        return 2
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
