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
from pathlib import Path
from typing import Any

from ga_bench.cpu_budget import Paused, pausable, train_for_cpu
from ga_bench.fmt import fidelity_cells, num

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "ham10000_128_grow.yaml"
COMMON = ["train.steps=1000000", "train.progress=false", "train.tensorboard=false", "train.device=cpu",
          "train.keep_last=1"]
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "grow": ("the shipped 64 px generator grown to 128 px, its discriminator continued", []),
    "scratch": ("the same networks at 128 px from random weights",
                ["model.g_grown_from=null", "train.init_generator=null", "train.init_discriminator=null"]),
}
POINTS_CPU_MINUTES = (20.0, 40.0, 60.0)
RESOLUTION = 128
CONTINUE_EVERY = 30.0  # CPU-minutes between the leader's points after the pilot
PATIENCE = 2  # points without a lower FID before the continuation stops
GOAL = {"c2st": 0.80, "fid_over_floor": 1.5}  # issue #44 at 128 px, with the memorisation test passed


def overrides(key: str) -> list[str]:
    return [*COMMON, *VARIANTS[key][1]]


POINT_FILES = ("generator.safetensors", "discriminator.safetensors", "train_summary.json", "samples_per_class.jpg",
               "loss_curves.png")


def keep_point(run_dir: Path, eval_dir: Path) -> None:
    """Keep the judged generator beside its evaluation (ignored ``runs/``), with the files that ship it
    (``benchmarks/ship_generator.py EVAL_DIR``): the best point need not be the last."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    for name in POINT_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, eval_dir / name)


def leader(study: dict[str, Any]) -> str | None:
    """The variant with the lower FID at the pilot's last point; None until both variants have reached it."""
    last = f"{study['points_cpu_minutes'][-1]:g}"
    pts = {k: study.get("variants", {}).get(k, {}).get("points", {}).get(last) for k in VARIANTS}
    if not all(pts.values()):
        return None
    return min(VARIANTS, key=lambda k: pts[k]["overall"].get("fid") or float("inf"))


def goal(point: dict[str, Any], floor: dict[str, Any]) -> dict[str, bool]:
    """Issue #44's goal at 128 px, part by part: probe <= 80 %, FID <= 1.5x the real floor's, memorisation not
    flagged."""
    o = point["overall"]
    return {"probe": (o.get("c2st") or 1.0) <= GOAL["c2st"],
            "fid": (o.get("fid") or float("inf")) <= GOAL["fid_over_floor"] * (floor.get("fid") or 0.0),
            "memorisation": not point.get("memorisation", {}).get("flagged", True)}


def settled_step(key: str) -> int:
    """The G step from which the variant's generator is its own: a grown one mixes in the file's upsampled images
    until its fade-in ends (the file's step + ``train.fade_steps``); one from scratch at once (0)."""
    from gan_augment.generators import read_generator_metadata
    from gan_augment.training import load_config
    from gan_augment.training.warm_start import resolve_init_generator

    cfg = load_config(CONFIG, overrides(key))
    if cfg.model.g_grown_from is None:
        return 0
    start = read_generator_metadata(resolve_init_generator(cfg.train.init_generator)).get("step") or 0
    return int(start) + int(cfg.train.fade_steps)


def stalled(points: dict[str, dict[str, Any]], settled: int = 0) -> bool:
    """True when the last :data:`PATIENCE` points (in CPU order), all at or after step ``settled`` (the end of a
    fade-in: points before it judge a blend), have not lowered the best FID of the points before them."""
    pts = sorted(points.values(), key=lambda p: p["cpu_minutes"])
    fids = [p["overall"].get("fid") or float("inf") for p in pts]
    if len(pts) <= PATIENCE or any(p["step"] < settled for p in pts[-PATIENCE:]):
        return False
    return min(fids[-PATIENCE:]) >= min(fids[:-PATIENCE])


def study_markdown(study: dict[str, Any], out: str = "benchmarks/results/grow128_cpu") -> str:
    """The folder's README: question, the answer at the largest point both variants reached, the table, the
    command."""
    variants, floor = study.get("variants", {}), (study.get("floor") or {}).get("distribution", {}).get("overall", {})
    common = [p for p in map(lambda x: f"{x:g}", study["points_cpu_minutes"])
              if all(p in variants.get(k, {}).get("points", {}) for k in VARIANTS)]
    lines = ["# Grow the 64 px generator to 128 px, or train 128 px from scratch?", "",
             "**Question.** At equal CPU time on this machine, which start gives the better 128 px generator of "
             "HAM10000: the shipped 64 px generator grown by one block, or the same networks from random weights? "
             "(Issue #44's pilot; the way in for 128 and 256 px on a CPU.)", ""]
    if common:
        p = common[-1]
        a, b = (variants[k]["points"][p]["overall"] for k in ("grow", "scratch"))
        better = "grow" if (a.get("fid") or 1e9) < (b.get("fid") or 1e9) else "scratch"
        lines += [f"**Answer (at {p} CPU-minutes, the largest point both reached).** `{better}` has the lower FID: "
                  f"grow FID {num(a.get('fid'))}, probe {num(100 * (a.get('c2st') or float('nan')), '.0f')} %; "
                  f"scratch FID {num(b.get('fid'))}, probe {num(100 * (b.get('c2st') or float('nan')), '.0f')} %; "
                  f"real training images at {RESOLUTION} px: FID {num(floor.get('fid'))}, probe "
                  f"{num(100 * (floor.get('c2st') or float('nan')), '.0f')} %. One training seed each.", ""]
    else:
        lines += ["**Answer.** Not yet: no CPU point has been reached by both variants.", ""]
    cont = study.get("continuation")
    if cont and floor:
        pts = variants[cont["variant"]]["points"]
        best = min(pts.values(), key=lambda q: q["overall"].get("fid") or float("inf"))
        parts = goal(best, floor)
        o = best["overall"]
        verdict = ("met" if all(parts.values()) else
                   "not met (" + ", ".join(k for k, ok in parts.items() if not ok) + ")")
        lines += [f"**Continued.** `{cont['variant']}` trained on past the pilot, judged every "
                  f"{cont['every']:g} CPU-minutes while its FID improved (to {cont['to']:g} CPU-minutes at most; "
                  f"stop after {PATIENCE} points without a lower FID once its generator is its own - step "
                  f"{cont.get('settled_step', 0)}, the end of a fade-in - or at the goal). Its best point by FID: "
                  f"{best['cpu_minutes']:.0f} CPU-minutes, step {best['step']}: FID {num(o.get('fid'))}, probe "
                  f"{num(100 * (o.get('c2st') or float('nan')), '.0f')} %. Goal at {RESOLUTION} px (probe <= "
                  f"{100 * GOAL['c2st']:.0f} %, FID <= {GOAL['fid_over_floor']:g}x the floor = "
                  f"{num(GOAL['fid_over_floor'] * floor['fid'])}, memorisation not flagged): {verdict}."
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
        lines.append(f"| real training images ({RESOLUTION} px floor) | | | {fidelity_cells(floor)}")
    missing = [f"{k} @ {p:g}" for p in study["points_cpu_minutes"] for k in VARIANTS
               if f"{p:g}" not in variants.get(k, {}).get("points", {})]
    meta = study.get("meta", {})
    lines += ["", "Variants: " + "; ".join(f"`{k}` - {d}" for k, (d, _) in VARIANTS.items()) + ".", "",
              "**Command** (resumable; finished points are kept):", "", "```bash",
              f"python benchmarks/studies/grow128.py --out {out} --time-limit-minutes 170"
              + (f" --continue-to {study['continuation']['to']:g}" if study.get("continuation") else ""), "```", "",
              f"Code: commit `{str(meta.get('commit'))[:12]}` on {meta.get('device')}."
              + (f" **Not yet run:** {', '.join(missing)}." if missing else "")]
    if study.get("paused"):
        lines.append(f"Paused: {study['paused']}.")
    return "\n".join(lines) + "\n"


def run_study(out: Path, runs_dir: Path, *, time_limit_minutes: float | None, cache_dir: Path | None,
              points: tuple[float, ...] = POINTS_CPU_MINUTES, continue_to: float | None = None) -> dict[str, Any]:
    from gan_augment._io import write_json, write_text
    from gan_augment.generators import load_generator
    from gan_augment.provenance import run_metadata
    from studies.gan_recipes import MAX_REAL_PER_CLASS, PER_CLASS, _collect, evaluate_point, real_floor

    deadline = time.monotonic() + time_limit_minutes * 60 if time_limit_minutes else None
    out.mkdir(parents=True, exist_ok=True)
    path = out / "study.json"
    study = json.loads(path.read_text()) if path.is_file() else {
        "meta": run_metadata(device="cpu"), "config": str(CONFIG.relative_to(REPO)), "common": COMMON,
        "points_cpu_minutes": list(points), "per_class": PER_CLASS, "max_real_per_class": MAX_REAL_PER_CLASS,
        "features": "inception", "variants": {}}
    for key, (desc, extra) in VARIANTS.items():  # a variant with points but no checkpoint starts over
        rec = study["variants"].setdefault(key, {"description": desc, "overrides": overrides(key), "points": {}})
        ckpts = runs_dir / key / "checkpoints"
        if rec["points"] and not (ckpts.is_dir() and any(ckpts.glob("ckpt_*.pt"))):
            print(f"grow128: {key} has points but no checkpoint in {runs_dir / key}; starting it over", file=sys.stderr)
            rec["points"] = {}

    def point(key: str, budget: float) -> None:  # train the variant to ``budget`` CPU-minutes and judge it there
        label, run_dir = f"{budget:g}", runs_dir / key
        rec = study["variants"][key]
        if label in rec["points"]:
            return
        train_for_cpu(CONFIG, overrides(key), run_dir, budget, deadline, name=key)
        if deadline is not None and deadline - time.monotonic() < 4 * 60:
            raise Paused("not enough time left to evaluate")
        rec["points"][label] = evaluate_point(key, run_dir, run_dir / f"eval_{label}", cache_dir)
        keep_point(run_dir, run_dir / f"eval_{label}")
        if "floor" not in study:
            names = list(load_generator(run_dir / "generator.safetensors").class_names)
            study["floor"] = real_floor(run_dir / "manifest.csv", names, cache_dir, resolution=RESOLUTION)
        _collect(key, run_dir, out / key, final=label)
        for ev in (out / key).glob("eval_*"):  # image panels of the last point only (the repository stays light)
            if ev.name != f"eval_{label}":
                for panel in ("samples_vs_real.jpg", "nearest_training.jpg"):
                    (ev / panel).unlink(missing_ok=True)
        study["meta"]["last_update"] = run_metadata(device="cpu")
        write_json(path, study)
        write_text(out / "README.md", study_markdown(study, out.as_posix()))
        print(f"grow128: {key} @ {label} CPU-min: {rec['points'][label]['overall']}", flush=True)

    with pausable(study, "grow128"):
        for budget in points:  # both variants at each point before the next: a pause leaves them comparable
            for key in VARIANTS:
                point(key, budget)
        best = leader(study)
        if continue_to and best:
            cont = study.setdefault("continuation", {"variant": best, "every": CONTINUE_EVERY})
            cont["to"] = max(continue_to, cont.get("to", 0))
            cont.pop("stopped", None)  # decided again from the points (a resumed or extended run)
            cont["settled_step"] = settled = settled_step(best)
            budget = points[-1] + CONTINUE_EVERY
            while budget <= cont["to"] + 1e-9:
                pts = study["variants"][best]["points"]
                met = [p for p in pts.values() if all(goal(p, study["floor"]["distribution"]["overall"]).values())]
                if met or stalled(pts, settled):
                    why = "goal met" if met else f"{PATIENCE} points without a lower FID"
                    cont["stopped"] = f"{why} at {max(map(float, pts)):g} CPU-min"
                    break
                point(best, budget)
                budget += CONTINUE_EVERY
    write_json(path, study)
    write_text(out / "README.md", study_markdown(study, out.as_posix()))
    return study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/grow128_cpu"))
    p.add_argument("--runs-dir", type=Path, default=Path("runs/grow128_cpu"), help="checkpoints (not committed)")
    p.add_argument("--time-limit-minutes", type=float, help="pause cleanly before this much wall time")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/feature_cache"))
    p.add_argument("--continue-to", type=float, metavar="CPU_MIN",
                   help=f"after the pilot, train its leader on to this many CPU-minutes, judged every "
                        f"{CONTINUE_EVERY:g} while it improves")
    args = p.parse_args(argv)
    run_study(args.out, args.runs_dir, time_limit_minutes=args.time_limit_minutes, cache_dir=args.cache_dir,
              continue_to=args.continue_to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
