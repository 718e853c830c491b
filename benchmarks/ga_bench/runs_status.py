"""Which (arm, seed) runs a benchmark folder has finished, against what its preset plans, for the report."""

from __future__ import annotations

from .presets import PRESETS, preset_default
from .protocol import ARM_KEYS, BASELINES, known_arms

__all__ = ["runs_status", "runs_lines", "run_commits", "study_arms", "variant_arms"]


def _arg(value) -> str:
    return ",".join(value) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else str(value)


def run_commits(records: dict[str, list[dict]]) -> list[dict]:
    """The code and machine of each run shown, grouped: a folder grown over several invocations (sessions, machines,
    commits) has runs of each. Records made before they named their commit count under ``commit: None``."""
    groups: dict[tuple, dict] = {}
    for arm, recs in records.items():
        for r in recs:
            prov = r.get("provenance") or {}
            key = (prov.get("commit"), bool(prov.get("dirty")), prov.get("device"))
            g = groups.setdefault(key, {"commit": key[0], "dirty": key[1], "device": key[2], "runs": []})
            g["runs"].append(f"{arm} seed {r['seed']}")
    return sorted(groups.values(), key=lambda g: (g["commit"] is None, -len(g["runs"])))


def study_arms(results: dict) -> list[str]:
    """The arms of ``results``'s command that its preset does not plan (a study's, from ``studies/balance_arms.py``)."""
    cfg = results["config"]
    planned = PRESETS.get(cfg["preset"], {}).get("arms", cfg["arms"])
    return [a for a in cfg["arms"] if a not in planned]


def variant_arms(results: dict) -> list[str]:
    """The GAN arms a folder that reads its baselines from another (``--baselines-from``) was asked for with
    ``--arms``, when they are fewer than its preset's: such a folder compares a second generator on those arms only,
    so they are its plan (not the preset's other GAN arms). Empty otherwise."""
    cfg = results["config"]
    if not cfg.get("baselines_from"):
        return []
    own = [a for a in cfg["arms"] if a not in BASELINES]
    preset = [a for a in PRESETS.get(cfg["preset"], {}).get("arms", cfg["arms"]) if a not in BASELINES]
    return own if own and set(own) < set(preset) else []


def _external_args(cfg: dict) -> str:
    """The external test's options of the runs (a resume without them would score the new runs on no external set)."""
    if not cfg.get("external_test"):
        return ""
    return (f" --external-test {cfg['external_test']}"
            + "".join(f" --{flag} {cfg[k]}" for k, flag in (("external_class_map", "class-map"),
                                                             ("external_resize", "external-resize")) if cfg.get(k))
            + (" --external-drop-copies" if cfg.get("external_drop_copies") else "")
            + (" --keep-classifiers" if cfg.get("keep_classifiers") else ""))


def runs_status(results: dict) -> dict:
    """The preset's planned (arm, seed) runs against those finished in the run folder: which this report shows,
    which are finished but left out of it (a run for a subset of arms or seeds), which are missing."""
    cfg = results["config"]
    preset = PRESETS.get(cfg["preset"], {})
    arms, seeds = list(preset.get("arms", cfg["arms"])), list(preset.get("seeds", cfg["seeds"]))
    if study_arms(results):  # a study's arms (benchmarks/studies/balance_arms.py): its plan is its own arm list
        arms = list(cfg["arms"])
    elif own := variant_arms(results):  # another generator's GAN arms beside a folder's baselines
        arms = [a for a in arms if a in BASELINES] + own
    finished = {(a, int(s)) for a, s in results.get("runs_finished", [])}
    shown = {(a, s) for a, d in results["arms"].items() for s in d["seeds"]}
    planned = [(a, s) for s in seeds for a in arms]
    order = {a: i for i, a in enumerate(known_arms())}
    return {"planned": planned, "shown": sorted(shown, key=lambda r: (r[1], order.get(r[0], 99))),
            "left_out": sorted(finished - shown, key=lambda r: (r[1], order.get(r[0], 99))),
            "missing": [r for r in planned if r not in finished]}


def runs_lines(results: dict) -> list[str]:
    cfg = results["config"]
    if "runs_finished" not in results:  # results written before the list existed
        return []
    st = runs_status(results)

    def fmt(runs):
        by_seed: dict[int, list[str]] = {}
        for a, s in runs:
            by_seed.setdefault(s, []).append(f"`{a}`")
        return "; ".join(f"seed {s}: {', '.join(v)}" for s, v in sorted(by_seed.items()))

    study, own = study_arms(results), variant_arms(results)
    if study:
        who = (f"This folder's arms ({', '.join(f'`{a}`' for a in cfg['arms'])}: a study's list, beyond preset "
               f"`{cfg['preset']}`'s) plan")
    elif own:
        who = (f"This folder (preset `{cfg['preset']}`'s baselines, read from `{cfg['baselines_from']}`, and "
               f"{', '.join(f'`{a}`' for a in own)} with its own generator) plans")
    else:
        who = f"Preset `{cfg['preset']}` plans"
    lines = ["## Runs", "", f"{who} {len(st['planned'])} (arm, seed) runs; "
             f"{len(st['planned']) - len(st['missing'])} are finished, {len(st['shown'])} in this report."]
    if st["left_out"]:
        lines.append(f"Finished but not in this report (it was written for a subset): {fmt(st['left_out'])}.")
    if st["missing"]:
        frac = cfg.get("train_fraction", 1.0)
        gan_missing = any(a.startswith("gan") for a, _ in st["missing"])
        generator = (results.get("generator") or {}).get("path")  # the folder's GAN runs refuse any other
        if not generator and cfg.get("generator_from_full_split") \
                and not preset_default(cfg["preset"], "generator_from_full_split"):
            generator = cfg.get("generator")  # the shared generator given to this slice: no GAN run made yet
        script = "benchmarks/studies/balance_arms.py" if study else "benchmarks/balance_isic.py"
        cmd = (f"python {script} --preset {cfg['preset']} --out {cfg['out']}"
               + (f" --arms {','.join(cfg['arms'])}" if study else "")
               + (f" --arms {','.join(own)}" if own and not study else "")
               + (f" --train-fraction {frac:g}" if frac < 1 else "")
               + (f" --split-manifest {cfg['split_manifest']}" if cfg.get("split_manifest") else "")
               + "".join(f" --{k.replace('_', '-')} {cfg[k]}" for k in ("max_train_per_class", "upper_bound_from")
                         if cfg.get(k) is not None)
               + (" --generator-from-full-split" if cfg.get("generator_from_full_split")
                  and not preset_default(cfg["preset"], "generator_from_full_split") else "")
               + (f" --generator {generator}" if gan_missing and generator else "")
               + (f" --baselines-from {cfg['baselines_from']}" if cfg.get("baselines_from") else "")
               + "".join(f" --{k.replace('_', '-')} {_arg(cfg[k])}" for k in ARM_KEYS
                         if cfg.get(k) is not None and cfg[k] != preset_default(cfg["preset"], k))
               + _external_args(cfg))
        lines += [f"Missing: {fmt(st['missing'])}.", "",
                  f"Resume (finished runs are kept, never redone): `{cmd}`; `--arms` / `--seeds` run a subset, "
                  "`--time-limit-minutes M` pauses cleanly between runs, `--report-only` rewrites this report over "
                  "every finished run."]
        if cfg.get("baselines_from"):
            lines[-1] += f" Missing baseline runs are run in `{cfg['baselines_from']}` (this folder only reads them)."
        sliced = frac < 1 or cfg.get("max_train_images") or cfg.get("max_train_per_class")
        given = cfg.get("generator") and not cfg.get("generator_from_full_split")  # a preset's shipped one
        if gan_missing and not generator and sliced and given:
            baselines = ",".join(a for a in known_arms() if not a.startswith("gan") and a in {m for m, _ in st["missing"]})
            lines[-1] += (" The GAN arms need a generator trained on this folder's `manifest.csv` "
                          f"(`{cfg['generator']}` was trained on the whole training split, which a slice refuses): "
                          "train one and pass it with `--generator FILE`"
                          + (f"; until then `--arms {baselines}` runs the missing baselines." if baselines else "."))
    else:
        lines.append("Every planned run is finished.")
    code = []
    for g in results.get("run_commits") or []:
        where = (f"commit `{g['commit'][:12]}`{' (dirty tree)' if g['dirty'] else ''} on {g['device']}"
                 if g["commit"] else "code not recorded (finished before run records named their commit)")
        code.append(f"- {where}: {len(g['runs'])} run{'s' if len(g['runs']) > 1 else ''} ({', '.join(g['runs'])})")
    if code:
        lines += ["", "The code and machine of the runs in this report:", "", *code]
    return lines + [""]
