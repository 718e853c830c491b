"""Training seeds in an A/B (``benchmarks/studies/gan_ab.py``): run each arm at several seeds and pair each lever with
the control at the same seed, the control's own seed-to-seed range as the yardstick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SEED_KEY = "train.seed"
# (label, path into an evaluation record, scale, format, which sign is better) for the paired table
PAIRED_METRICS = (("FID", ("overall", "fid"), 1.0, "+.1f", -1), ("KID x1e3", ("overall", "kid"), 1e3, "+.1f", -1),
                  ("recall", ("overall", "recall"), 1.0, "+.2f", +1),
                  ("probe %", ("overall", "c2st"), 100.0, "+.1f", -1),
                  ("spectral gap", ("spectral_gap",), 1.0, "+.2f", +1))


def split_seed(overrides: list[str]) -> tuple[tuple[str, ...], str | None]:
    """An arm's overrides -> (its lever: every override but ``train.seed``, the seed it sets or None)."""
    lever, seed = [], None
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == SEED_KEY:
            seed = value.strip()
        else:
            lever.append(o)
    return tuple(lever), seed


def expand_train_seeds(arms: list[tuple[str, list[str]]], seeds: list[int],
                       base_seed: int) -> list[tuple[str, list[str]]]:
    """Each arm at each training seed: ``NAME`` at ``base_seed`` (the base config's, no override, so arms run
    before keep their names), ``NAME_seedN`` with ``train.seed=N`` otherwise; arm by arm, seeds in the order given."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--train-seeds: expected distinct integers, got {seeds}")
    out = []
    for name, overrides in arms:
        if split_seed(overrides)[1] is not None:
            raise ValueError(f"--arm {name} sets {SEED_KEY} itself; with --train-seeds every arm runs at each seed")
        for seed in seeds:
            out.append((name, list(overrides)) if seed == base_seed
                       else (f"{name}_seed{seed}", [*overrides, f"{SEED_KEY}={seed}"]))
    return out


def config_seed(base: Path, overrides: list[str] = ()) -> int:
    from gan_augment.training import load_config

    return load_config(base, list(overrides)).train.seed


def _base_seed(ab: dict[str, Any]) -> str | None:
    """The training seed of an arm that sets none: recorded by the run; for an older ``ab.json``, read from its
    base config when that is at hand; None (shown as "base") otherwise."""
    if ab.get("base_train_seed") is not None:
        return str(ab["base_train_seed"])
    try:
        return str(config_seed(REPO / ab["setup"]["base_config"]))
    except (ValueError, KeyError, OSError):
        return None


def _value(ev: dict[str, Any], path: tuple[str, ...], scale: float) -> float | None:
    for k in path:
        ev = ev.get(k) if isinstance(ev, dict) else None
    return None if ev is None else scale * ev


def _mean_over(arms: list[dict[str, Any]], eval_seeds: list[str], path: tuple[str, ...], scale: float) -> float | None:
    """The mean of one number over several arms (repeats of one training seed) and the given evaluation seeds."""
    vals = [_value(a["evaluations"][s], path, scale) for a in arms for s in eval_seeds]
    return None if not vals or any(v is None for v in vals) else float(np.mean(vals))


def paired_differences(ab: dict[str, Any]) -> dict[str, Any]:
    """Each lever against the control (the arms without overrides but ``train.seed``) at the same training seed.

    Arms are grouped by lever (their overrides less ``train.seed``) and training seed; arms in ``ab["pair_exclude"]``
    are left out, and several arms in one cell (repeats) are averaged. Per lever and metric: the difference arm -
    control at each training seed both have (means over the evaluation seeds both have), its mean, whether every
    seed agrees in sign, and the control's own range across its training seeds - the yardstick every seed's
    difference has to clear. Two seeds make a yardstick, not a significance test: with the range of two control
    runs as the yardstick, a lever with no effect still clears it on about one metric in five (two seeds, normal
    run-to-run noise, simulated)."""
    base_seed = _base_seed(ab)
    excluded = set(ab.get("pair_exclude") or [])
    cells: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for name, a in ab["arms"].items():
        if name in excluded or not a.get("evaluations"):
            continue
        lever, seed = split_seed(a["overrides"])
        seed = seed if seed is not None else base_seed
        cells.setdefault(lever, {}).setdefault("base" if seed is None else seed, []).append(name)
    control = cells.get((), {})

    def common_evals(names: list[str]) -> list[str]:
        sets = [set(ab["arms"][n]["evaluations"]) for n in names]
        return sorted(set.intersection(*sets)) if sets else []

    yardstick = {}
    for label, path, scale, _, _ in PAIRED_METRICS:
        means = [_mean_over([ab["arms"][n] for n in names], common_evals(names), path, scale)
                 for names in control.values()]
        means = [m for m in means if m is not None]
        yardstick[label] = float(max(means) - min(means)) if len(means) >= 2 else None
    levers = []
    for lever, by_seed in cells.items():
        if not lever:
            continue
        seeds = [s for s in sorted(by_seed, key=lambda x: (len(x), x)) if s in control]
        rec = {"lever": list(lever), "arms": {s: by_seed[s] for s in seeds}, "controls": {s: control[s] for s in seeds},
               "unpaired": sorted(n for s, names in by_seed.items() if s not in control for n in names),
               "metrics": {}}
        for label, path, scale, _, better in PAIRED_METRICS:
            diffs = {}
            for s in seeds:
                evals = common_evals(by_seed[s] + control[s])
                arm = _mean_over([ab["arms"][n] for n in by_seed[s]], evals, path, scale)
                ctl = _mean_over([ab["arms"][n] for n in control[s]], evals, path, scale)
                if arm is not None and ctl is not None:
                    diffs[s] = arm - ctl
            if not diffs:
                continue
            mean = float(np.mean(list(diffs.values())))
            same_sign = len(diffs) >= 2 and (all(d > 0 for d in diffs.values()) or all(d < 0 for d in diffs.values()))
            y = yardstick[label]
            rec["metrics"][label] = {
                "per_seed": diffs, "mean": mean, "same_sign": same_sign, "control_range": y,
                # a lead (or loss) every seed shows, each larger than the control's own seed-to-seed range
                "clears_yardstick": bool(same_sign and y is not None and min(abs(d) for d in diffs.values()) > y),
                "direction": "better" if mean * better > 0 else "worse" if mean * better < 0 else "equal"}
        levers.append(rec)
    return {"base_seed": base_seed, "excluded": sorted(excluded), "control": control, "yardstick": yardstick,
            "levers": levers}


def paired_markdown(ab: dict[str, Any]) -> list[str]:
    """The paired table (lines), or nothing when no lever has a control at a shared training seed."""
    pd = paired_differences(ab)
    levers = [lv for lv in pd["levers"] if lv["metrics"]]
    if not levers:
        return []
    labels = [m[0] for m in PAIRED_METRICS]
    fmts = {m[0]: m[3] for m in PAIRED_METRICS}
    lines = ["## Paired by training seed", "",
             "Each lever minus the control at the same training seed (mean over the evaluation seeds both have; "
             "several runs of one seed are averaged), one number per training seed, then their mean. **Bold**: the "
             "difference at every training seed has the same sign and is larger than the control's own range across "
             "its training seeds (last row) - the least it must clear to be more than the seed, not a significance "
             "test (a lever with no effect clears it on about one metric in five); with one training seed there is "
             "no verdict. Lower is better for FID, KID and the probe; higher for recall and the spectral gap.",
             "", "| lever | training seeds (arms) | " + " | ".join(labels) + " |",
             "|---|---|" + "---:|" * len(labels)]
    for lv in levers:
        arms = "; ".join(f"{s}: {', '.join(lv['arms'][s])} vs {', '.join(lv['controls'][s])}" for s in lv["arms"])
        cells = []
        for label in labels:
            m = lv["metrics"].get(label)
            if m is None:
                cells.append("-")
                continue
            per = " / ".join(format(d, fmts[label]) for d in m["per_seed"].values())
            cell = per if len(m["per_seed"]) == 1 else f"{per} (mean {format(m['mean'], fmts[label])})"
            cells.append(f"**{cell}**" if m["clears_yardstick"] else cell)
        lines.append(f"| {', '.join(f'`{o}`' for o in lv['lever'])} | {arms} | " + " | ".join(cells) + " |")
    ctl = "; ".join(f"{s}: {', '.join(n)}" for s, n in pd["control"].items())
    lines.append(f"| control's range across training seeds | {ctl} | "
                 + " | ".join(_fmt(pd["yardstick"][label], fmts[label].lstrip("+")) for label in labels) + " |")
    notes = []
    if pd["excluded"]:
        notes.append(f"Left out of the pairing: {', '.join(pd['excluded'])}.")
    unpaired = sorted(n for lv in pd["levers"] for n in lv["unpaired"])
    if unpaired:
        notes.append(f"No control at their training seed: {', '.join(unpaired)}.")
    return lines + ([""] + [" ".join(notes)] if notes else []) + [""]


def _fmt(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)
