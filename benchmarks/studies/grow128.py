"""128 px on a CPU: grow the shipped 64 px generator, or train 128 px from scratch? (issue #44's pilot)

Two variants of ``configs/ham10000_128_grow.yaml`` trained for the same budget of the training loop's own CPU time
(``train.cpu_time_limit_minutes``, so other work on the machine does not change it) and judged at fixed points of it
by the protocol of the 64 px study (``studies/gan_recipes.py``'s ``evaluate_point``: InceptionV3 FID / KID /
precision / recall and the real-vs-generated probe against the validation split, per class, the memorisation
test), at 128 px, beside the same numbers for real training images at 128 px (the floor):

- ``grow``: the shipped ``ham10000-64-lite128-16k`` grown by one block (its blocks kept, the new one faded in over
  ``train.fade_steps``), its discriminator file continued;
- ``scratch``: the same networks and recipe from random weights (the control).

    python benchmarks/studies/grow128.py --out benchmarks/results/grow128_cpu --time-limit-minutes 170

``--continue-to N`` then trains the pilot's leader (the lower FID at its last point) on to N CPU-minutes, judged
every :data:`CONTINUE_EVERY` of them by the same protocol, while it improves: it stops after :data:`PATIENCE` points
without a lower FID once its fade-in has ended (:func:`settled_step`; the pilot's points of ``grow`` judge a blend of
the 64 px file's upsampled images and the new block's), or once it meets issue #44's goal at 128 px (:func:`goal`).

``--study grow256`` is the same loop one step up (issue #44's 256 px route a, :data:`G256`): the shipped 128 px
generator grown by one more block (``configs/ham10000_256_grow.yaml``, a fresh projected D at 256 px), one variant,
judged at 256 px at 30 / 60 / 120 CPU-minutes (the pilot's ~2 CPU-hours), continued every 60 while its FID falls,
and given up when no point's probe is below 95 % after 240 CPU-minutes (the issue's stop rule):

    python benchmarks/studies/grow128.py --study grow256 --time-limit-minutes 170 --continue-to 240

Resumable: finished points are kept; a variant whose checkpoint is gone (another machine) starts over.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ga_bench.cpu_budget import Paused, pausable, train_for_cpu
from ga_bench.fmt import fidelity_cells, num, pct

REPO = Path(__file__).resolve().parents[2]
COMMON = ["train.steps=1000000", "train.progress=false", "train.tensorboard=false", "train.device=cpu",
          "train.keep_last=1"]


@dataclass(frozen=True)
class GrowStudy:
    """One growing study: the config, its variants (name -> (description, overrides)), the pilot's CPU points,
    the continuation's rhythm and stop rules, and the goal at the study's resolution."""

    name: str  # the folder names' default: benchmarks/results/{name}_cpu, runs/{name}_cpu
    config: Path
    resolution: int
    variants: dict[str, tuple[str, list[str]]]
    points: tuple[float, ...]
    goal: dict[str, float | None]  # c2st: the probe to reach; fid_over_floor: None when the goal sets none
    title: str
    question: str
    continue_every: float = 30.0  # CPU-minutes between the leader's points after the pilot
    patience: int = 2  # points without a lower FID before the continuation stops
    give_up: tuple[float, float] | None = None  # (CPU-minutes, probe): stop when no point by then is below it
    ship_probe: float | None = None  # the probe at which a point may be shipped, when below the goal's


G128 = GrowStudy(
    name="grow128", config=REPO / "configs" / "ham10000_128_grow.yaml", resolution=128,
    variants={"grow": ("the shipped 64 px generator grown to 128 px, its discriminator continued", []),
              "scratch": ("the same networks at 128 px from random weights",
                          ["model.g_grown_from=null", "train.init_generator=null", "train.init_discriminator=null"])},
    points=(20.0, 40.0, 60.0), goal={"c2st": 0.80, "fid_over_floor": 1.5},  # issue #44 at 128 px
    title="Grow the 64 px generator to 128 px, or train 128 px from scratch?",
    question="At equal CPU time on this machine, which start gives the better 128 px generator of HAM10000: the "
             "shipped 64 px generator grown by one block, or the same networks from random weights? (Issue #44's "
             "pilot; the way in for 128 and 256 px on a CPU.)")

G256 = GrowStudy(
    name="grow256", config=REPO / "configs" / "ham10000_256_grow.yaml", resolution=256,
    variants={"grow": ("the shipped 128 px generator grown to 256 px, a fresh projected D at 256 px", [])},
    points=(30.0, 60.0, 120.0), goal={"c2st": 0.80, "fid_over_floor": None}, continue_every=60.0,
    give_up=(240.0, 0.95), ship_probe=0.90,
    title="256 px by growing the 128 px generator once more (route a)",
    question="How far does the shipped 128 px generator, grown by one more block and trained against a fresh "
             "projected discriminator at 256 px, get per CPU-hour on this machine? (Issue #44's route a; the "
             "cascade, route b, is `cascade256_cpu`.)")

STUDIES = {s.name: s for s in (G128, G256)}
# the 128 px study's values under their old names (its tests and callers)
CONFIG, VARIANTS, POINTS_CPU_MINUTES, RESOLUTION = G128.config, G128.variants, G128.points, G128.resolution
CONTINUE_EVERY, PATIENCE, GOAL = G128.continue_every, G128.patience, G128.goal


def overrides(key: str, spec: GrowStudy = G128) -> list[str]:
    return [*COMMON, *spec.variants[key][1]]


POINT_FILES = ("generator.safetensors", "discriminator.safetensors", "train_summary.json", "samples_per_class.jpg",
               "loss_curves.png")


def keep_point(run_dir: Path, eval_dir: Path) -> None:
    """Keep the judged generator beside its evaluation (ignored ``runs/``), with the files that ship it
    (``benchmarks/ship_generator.py EVAL_DIR``): the best point need not be the last."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    for name in POINT_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, eval_dir / name)


def leader(study: dict[str, Any], spec: GrowStudy = G128) -> str | None:
    """The variant with the lowest FID at the pilot's last point; None until every variant has reached it."""
    last = f"{study['points_cpu_minutes'][-1]:g}"
    pts = {k: study.get("variants", {}).get(k, {}).get("points", {}).get(last) for k in spec.variants}
    if not all(pts.values()):
        return None
    return min(spec.variants, key=lambda k: pts[k]["overall"].get("fid") or float("inf"))


def goal(point: dict[str, Any], floor: dict[str, Any], spec: GrowStudy = G128) -> dict[str, bool]:
    """The study's goal, part by part: the probe at most ``spec.goal["c2st"]``, FID at most
    ``fid_over_floor`` x the real floor's (where the goal sets one), memorisation not flagged."""
    o = point["overall"]
    parts = {"probe": (o.get("c2st") or 1.0) <= spec.goal["c2st"]}
    if spec.goal.get("fid_over_floor") is not None:
        parts["fid"] = (o.get("fid") or float("inf")) <= spec.goal["fid_over_floor"] * (floor.get("fid") or 0.0)
    parts["memorisation"] = not point.get("memorisation", {}).get("flagged", True)
    return parts


def settled_step(key: str, spec: GrowStudy = G128) -> int:
    """The G step from which the variant's generator is its own: a grown one mixes in the file's upsampled images
    until its fade-in ends (the file's step + ``train.fade_steps``); one from scratch at once (0)."""
    from gan_augment.generators import read_generator_metadata
    from gan_augment.training import load_config
    from gan_augment.training.warm_start import resolve_init_generator

    cfg = load_config(spec.config, overrides(key, spec))
    if cfg.model.g_grown_from is None:
        return 0
    start = read_generator_metadata(resolve_init_generator(cfg.train.init_generator)).get("step") or 0
    return int(start) + int(cfg.train.fade_steps)


def stalled(points: dict[str, dict[str, Any]], settled: int = 0, patience: int = PATIENCE) -> bool:
    """True when the last ``patience`` points (in CPU order), all at or after step ``settled`` (the end of a
    fade-in: points before it judge a blend), have not lowered the best FID of the points before them."""
    pts = sorted(points.values(), key=lambda p: p["cpu_minutes"])
    fids = [p["overall"].get("fid") or float("inf") for p in pts]
    if len(pts) <= patience or any(p["step"] < settled for p in pts[-patience:]):
        return False
    return min(fids[-patience:]) >= min(fids[:-patience])


def given_up(points: dict[str, dict[str, Any]], spec: GrowStudy) -> bool:
    """The study's stop rule by probe: a point at or past ``spec.give_up[0]`` CPU-minutes and no point with a probe
    below ``spec.give_up[1]``."""
    if spec.give_up is None or not points:
        return False
    minutes, probe = spec.give_up
    return (max(map(float, points)) >= minutes
            and all((p["overall"].get("c2st") or 1.0) >= probe for p in points.values()))


def study_markdown(study: dict[str, Any], out: str | None = None, spec: GrowStudy = G128) -> str:
    """The folder's README: question, the answer at the largest point every variant reached, the table, the
    command."""
    out = out or f"benchmarks/results/{spec.name}_cpu"
    variants, floor = study.get("variants", {}), (study.get("floor") or {}).get("distribution", {}).get("overall", {})
    res = spec.resolution
    common = [p for p in map(lambda x: f"{x:g}", study["points_cpu_minutes"])
              if all(p in variants.get(k, {}).get("points", {}) for k in spec.variants)]
    lines = [f"# {spec.title}", "", f"**Question.** {spec.question}", ""]
    floor_text = (f"real training images at {res} px: FID {num(floor.get('fid'))}, probe {pct(floor.get('c2st'))} %")
    if common and len(spec.variants) > 1:
        p = common[-1]
        a, b = (variants[k]["points"][p]["overall"] for k in ("grow", "scratch"))
        better = "grow" if (a.get("fid") or 1e9) < (b.get("fid") or 1e9) else "scratch"
        lines += [f"**Answer (at {p} CPU-minutes, the largest point both reached).** `{better}` has the lower FID: "
                  f"grow FID {num(a.get('fid'))}, probe {pct(a.get('c2st'))} %; "
                  f"scratch FID {num(b.get('fid'))}, probe {pct(b.get('c2st'))} %; {floor_text}. One training seed "
                  "each.", ""]
    elif common:
        (key,) = spec.variants
        pts = variants[key]["points"]
        last = max(pts.values(), key=lambda q: q["cpu_minutes"])
        o = last["overall"]
        lines += [f"**Answer (at {last['cpu_minutes']:.0f} CPU-minutes, the last point).** FID {num(o.get('fid'))}, "
                  f"probe {pct(o.get('c2st'))} %; {floor_text}. One training seed. Per CPU-hour: see the table "
                  "(CPU-min = the training loop's own CPU time).", ""]
    else:
        lines += ["**Answer.** Not yet: no CPU point has been reached by "
                  + ("both variants." if len(spec.variants) > 1 else "the run."), ""]
    cont = study.get("continuation")
    if cont and floor:
        pts = variants[cont["variant"]]["points"]
        best = min(pts.values(), key=lambda q: q["overall"].get("fid") or float("inf"))
        parts = goal(best, floor, spec)
        o = best["overall"]
        verdict = ("met" if all(parts.values()) else
                   "not met (" + ", ".join(k for k, ok in parts.items() if not ok) + ")")
        fid_goal = (f"FID <= {spec.goal['fid_over_floor']:g}x the floor = "
                    f"{num(spec.goal['fid_over_floor'] * floor['fid'])}, " if spec.goal.get("fid_over_floor") else "")
        rules = f"stop after {spec.patience} points without a lower FID once its generator is its own - step " \
                f"{cont.get('settled_step', 0)}, the end of a fade-in -"
        if spec.give_up:
            rules += (f" when no point has a probe below {100 * spec.give_up[1]:.0f} % after "
                      f"{spec.give_up[0]:g} CPU-minutes,")
        lines += [f"**Continued.** `{cont['variant']}` trained on past the pilot, judged every "
                  f"{cont['every']:g} CPU-minutes while its FID improved (to {cont['to']:g} CPU-minutes at most; "
                  f"{rules} or at the goal). Its best point by FID: "
                  f"{best['cpu_minutes']:.0f} CPU-minutes, step {best['step']}: FID {num(o.get('fid'))}, probe "
                  f"{pct(o.get('c2st'))} %. Goal at {res} px (probe <= {100 * spec.goal['c2st']:.0f} %, "
                  f"{fid_goal}memorisation not flagged): {verdict}."
                  + (f" A point may be shipped once its probe is <= {100 * spec.ship_probe:.0f} %, in place of "
                     "the one shipped only if lower at two evaluation seeds." if spec.ship_probe else "")
                  + (f" Stopped: {cont['stopped']}." if cont.get("stopped") else ""), ""]
    lines += [f"InceptionV3 features, validation split, {study['per_class']} generated images per class, at most "
              f"{study['max_real_per_class']} real ones per class; probe = how often a linear probe tells generated "
              "from real (50 % = never).", "",
              "| variant | CPU-min | G steps | FID | KID x1e3 | precision | recall | probe % | memorisation p |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for key, rec in variants.items():
        for label, pt in rec["points"].items():
            o, mem = pt["overall"], pt.get("memorisation", {})
            lines.append(f"| {key} | {pt['cpu_minutes']:.1f} | {pt['step']} | {fidelity_cells(o, mem)}")
    if floor:
        lines.append(f"| real training images ({res} px floor) | | | {fidelity_cells(floor)}")
    missing = [f"{k} @ {p:g}" for p in study["points_cpu_minutes"] for k in spec.variants
               if f"{p:g}" not in variants.get(k, {}).get("points", {})]
    meta = study.get("meta", {})
    script = "grow128.py" + (f" --study {spec.name}" if spec is not G128 else "")
    lines += ["", "Variants: " + "; ".join(f"`{k}` - {d}" for k, (d, _) in spec.variants.items()) + ".", "",
              "**Command** (resumable; finished points are kept):", "", "```bash",
              f"python benchmarks/studies/{script} --out {out} --time-limit-minutes 170"
              + (f" --continue-to {study['continuation']['to']:g}" if study.get("continuation") else ""), "```", "",
              f"Code: commit `{str(meta.get('commit'))[:12]}` on {meta.get('device')}."
              + (f" **Not yet run:** {', '.join(missing)}." if missing else "")]
    if study.get("paused"):
        lines.append(f"Paused: {study['paused']}.")
    return "\n".join(lines) + "\n"


def run_study(out: Path, runs_dir: Path, *, time_limit_minutes: float | None, cache_dir: Path | None,
              points: tuple[float, ...] | None = None, continue_to: float | None = None,
              spec: GrowStudy = G128) -> dict[str, Any]:
    from gan_augment._io import write_json, write_text
    from gan_augment.generators import load_generator
    from gan_augment.provenance import run_metadata
    from studies.gan_recipes import MAX_REAL_PER_CLASS, PER_CLASS, _collect, evaluate_point, real_floor

    points = points or spec.points
    deadline = time.monotonic() + time_limit_minutes * 60 if time_limit_minutes else None
    out.mkdir(parents=True, exist_ok=True)
    path = out / "study.json"
    study = json.loads(path.read_text()) if path.is_file() else {
        "meta": run_metadata(device="cpu"), "config": str(spec.config.relative_to(REPO)), "common": COMMON,
        "points_cpu_minutes": list(points), "per_class": PER_CLASS, "max_real_per_class": MAX_REAL_PER_CLASS,
        "features": "inception", "variants": {}}
    for key, (desc, extra) in spec.variants.items():  # a variant with points but no checkpoint starts over
        rec = study["variants"].setdefault(key, {"description": desc, "overrides": overrides(key, spec), "points": {}})
        ckpts = runs_dir / key / "checkpoints"
        if rec["points"] and not (ckpts.is_dir() and any(ckpts.glob("ckpt_*.pt"))):
            print(f"{spec.name}: {key} has points but no checkpoint in {runs_dir / key}; starting it over",
                  file=sys.stderr)
            rec["points"] = {}

    def readme() -> str:
        return study_markdown(study, out.as_posix(), spec)

    def point(key: str, budget: float) -> None:  # train the variant to ``budget`` CPU-minutes and judge it there
        label, run_dir = f"{budget:g}", runs_dir / key
        rec = study["variants"][key]
        if label in rec["points"]:
            return
        train_for_cpu(spec.config, overrides(key, spec), run_dir, budget, deadline, name=key)
        if deadline is not None and deadline - time.monotonic() < 4 * 60:
            raise Paused("not enough time left to evaluate")
        rec["points"][label] = evaluate_point(key, run_dir, run_dir / f"eval_{label}", cache_dir)
        keep_point(run_dir, run_dir / f"eval_{label}")
        if "floor" not in study:
            names = list(load_generator(run_dir / "generator.safetensors").class_names)
            study["floor"] = real_floor(run_dir / "manifest.csv", names, cache_dir, resolution=spec.resolution)
        _collect(key, run_dir, out / key, final=label)
        for ev in (out / key).glob("eval_*"):  # image panels of the last point only (the repository stays light)
            if ev.name != f"eval_{label}":
                for panel in ("samples_vs_real.jpg", "nearest_training.jpg"):
                    (ev / panel).unlink(missing_ok=True)
        study["meta"]["last_update"] = run_metadata(device="cpu")
        write_json(path, study)
        write_text(out / "README.md", readme())
        print(f"{spec.name}: {key} @ {label} CPU-min: {rec['points'][label]['overall']}", flush=True)

    with pausable(study, spec.name):
        for budget in points:  # every variant at each point before the next: a pause leaves them comparable
            for key in spec.variants:
                point(key, budget)
        best = leader(study, spec)
        if continue_to and best:
            cont = study.setdefault("continuation", {"variant": best, "every": spec.continue_every})
            cont["to"] = max(continue_to, cont.get("to", 0))
            cont.pop("stopped", None)  # decided again from the points (a resumed or extended run)
            cont["settled_step"] = settled = settled_step(best, spec)
            budget = points[-1] + spec.continue_every
            while budget <= cont["to"] + 1e-9:
                pts = study["variants"][best]["points"]
                floor = study["floor"]["distribution"]["overall"]
                met = [p for p in pts.values() if all(goal(p, floor, spec).values())]
                why = ("goal met" if met else
                       f"{spec.patience} points without a lower FID" if stalled(pts, settled, spec.patience) else
                       f"no probe below {100 * spec.give_up[1]:.0f} % by {spec.give_up[0]:g} CPU-min"
                       if given_up(pts, spec) else None)
                if why:
                    cont["stopped"] = f"{why} at {max(map(float, pts)):g} CPU-min"
                    break
                point(best, budget)
                budget += spec.continue_every
    write_json(path, study)
    write_text(out / "README.md", readme())
    return study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", choices=sorted(STUDIES), default=G128.name,
                   help="grow128: 64 -> 128 px, grown vs scratch; grow256: 128 -> 256 px (issue #44's route a)")
    p.add_argument("--out", type=Path, help="results folder (default benchmarks/results/STUDY_cpu)")
    p.add_argument("--runs-dir", type=Path, help="checkpoints, not committed (default runs/STUDY_cpu)")
    p.add_argument("--time-limit-minutes", type=float, help="pause cleanly before this much wall time")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/feature_cache"))
    p.add_argument("--continue-to", type=float, metavar="CPU_MIN",
                   help="after the pilot, train its leader on to this many CPU-minutes, judged at the study's "
                        "rhythm while it improves")
    args = p.parse_args(argv)
    spec = STUDIES[args.study]
    run_study(args.out or Path(f"benchmarks/results/{spec.name}_cpu"), args.runs_dir or Path(f"runs/{spec.name}_cpu"),
              time_limit_minutes=args.time_limit_minutes, cache_dir=args.cache_dir, continue_to=args.continue_to,
              spec=spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
