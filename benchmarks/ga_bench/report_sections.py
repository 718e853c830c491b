"""Report sections of the assessment (``assess.py``) and of the external test set (``--external-test``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.stats import balanced_accuracy, paired_bootstrap

from .protocol import BASELINES, MIN_SEEDS_FOR_VERDICT, is_uniform
from .report_context import _ci, _pm

__all__ = ["external_summary", "arms_lines"]


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = float(s)
    return f"{s / 3600:.1f} h" if s >= 5400 else (f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s")


def _seeds(seeds: list) -> str:
    return f"{len(seeds)} seed{'s' * (len(seeds) != 1)}"


def _assess_lines(results: dict) -> list[str]:
    """``assess.py``: the budget, the plan against what each stage took, and what a larger budget would change."""
    a = results["assess"]
    plan = a.get("plan_after_baselines") or a.get("plan") or {}
    stages = a.get("stages_s") or {}
    budget = a.get("budget_s") or 0
    lines = ["## The assessment", "",
             f"`assess.py` on `{a.get('data')}`: a budget of {_dur(budget)}, {_dur(a.get('spent_s'))} spent over "
             f"{a.get('calls')} call{'s' if a.get('calls') != 1 else ''} ({a.get('spent_s', 0) / budget:.0%} of the "
             f"budget); {a.get('epochs')} epochs per classifier run.", "",
             "| stage | planned | took |", "|---|---|---|"]
    planned = {"classifiers": (plan.get("runs", 0) * plan.get("run_s", 0) + plan.get("check_s", 0)
                               if plan else None),
               "generator": (plan.get("gan_s") or None) if plan else None}
    names = {"split": "split and checks", "measure": "speed measurement", "classifiers":
             "classifier runs and the generator check", "generator": "generator training", "report": "report"}
    for key, label in names.items():
        if key in stages or planned.get(key):
            lines.append(f"| {label} | {_dur(planned.get(key)) if planned.get(key) else '-'} | "
                         f"{_dur(stages.get(key)) if key in stages else '-'} |")
    lines.append("")
    if a.get("generator_step"):
        lines.append(f"The generator trained {a['generator_step']} steps in {_dur(a.get('generator_trained_s'))} of "
                     "wall time on this assessment's training split only.")
    more = []
    seeds_needed = len(results["config"]["seeds"])
    missing = [arm for arm, d in results["arms"].items() if len(d.get("seeds", [])) < seeds_needed]
    absent = [arm for arm in ("aug", "aug_oversample", "aug_weighted", "gan_light") if arm not in results["arms"]]
    if missing or absent:
        more.append(f"runs missing ({', '.join(missing + absent)}): a verdict needs {MIN_SEEDS_FOR_VERDICT} seeds of "
                    "every arm; rerun the same command with a larger `--budget` to finish them")
    chk = (results.get("generator") or {}).get("check") or {}
    probes = [d.get("overall", {}).get("c2st") for d in chk.get("distribution", {}).values()]
    probes = [p for p in probes if p is not None]
    if probes:
        p = max(probes)
        cpu64 = Path(results["config"].get("gan_config") or "").name == "ham10000_64_cpu.yaml"
        more.append(f"the generator: a linear probe tells its images from real ones {p:.0%} of the time "
                    + ("- near 100 %, the classifier can learn 'looks generated' as a shortcut; " if p > 0.9 else "- ")
                    + ("on HAM10000 this 64 px recipe took about 16 CPU-hours to reach 73-75 %; " if cpu64 else "")
                    + "a larger `--budget` trains this generator on from its checkpoint and reruns only the GAN arm "
                      "and the check")
    mem = (chk.get("memorisation") or {}).get("overall") or {}
    if mem.get("flagged"):
        more.append(f"not the memorisation: the test flagged this generator ({mem['fraction_below_heldout_p1']:.0%} of "
                    "its images closer to a training image than the held-out 1st percentile) - more steps over the "
                    f"same {results['data'].get('train_total')} training images are more likely to raise that than "
                    "lower it; do not share the generator or its images")
    if a.get("epochs") and a["epochs"] < 8:
        more.append(f"the classifiers trained {a['epochs']} epochs, fewer than the protocol's 8: the baselines may be "
                    "under-trained (the epochs are fixed by the first call; a new --out with a larger budget gives "
                    "them more)")
    if more:
        lines += ["", "**What a larger budget would change:**", "", *[f"- {m}" for m in more]]
    lines.append("")
    return lines


def external_summary(records: dict[str, list[dict]], folder: Callable[[str], Path], labels: np.ndarray,
                     class_names: list[str], info: dict, n_boot: int) -> dict:
    """The external test over every run scored on it: each arm's scores, the best baseline *on this test set* (it
    need not be the in-distribution one) and each GAN arm against it, paired bootstrap over external images of the
    scored classes and shared seeds."""
    scored = [class_names.index(c) for c in info["scored_classes"]]
    rows = np.isin(labels, scored)
    arms = {}
    for arm, recs in records.items():
        recs = sorted((r for r in recs if "external_test" in r), key=lambda r: r["seed"])
        if not recs:
            continue
        e = [r["external_test"] for r in recs]
        arms[arm] = {"seeds": [r["seed"] for r in recs], "balanced_accuracy": [x["balanced_accuracy"] for x in e],
                     "per_class_recall": {c: [x["per_class_recall"][c] for x in e] for c in info["scored_classes"]}}
        if all("mel_auroc" in x for x in e):
            arms[arm]["mel_auroc"] = [x["mel_auroc"] for x in e]
    out: dict = {"info": info, "arms": arms}
    baselines = [a for a in BASELINES if a in arms]
    if not baselines:
        return out
    best = max(baselines, key=lambda a: np.mean(arms[a]["balanced_accuracy"]))
    out["best_baseline"] = best

    def probs(arm, seeds):
        return np.stack([np.load(folder(arm) / f"{arm}_seed{s}_external_probs.npy")[rows] for s in seeds])

    # balanced accuracy over the scored classes: their labels re-indexed 0..k-1 would change argmax; instead the
    # images of other classes are left out and the metric averages the recall of the classes present (NaN-safe)
    for g in [a for a in arms if a.startswith("gan")]:
        shared = [s for s in arms[g]["seeds"] if s in arms[best]["seeds"]]
        if shared:
            out[g] = {"seeds": shared, "balanced_accuracy": paired_bootstrap(
                balanced_accuracy, labels[rows], probs(g, shared), probs(best, shared), n_boot=n_boot)}
    # melanoma-vs-rest AUROC against the baseline best *by that metric* (the goal names either metric)
    with_auroc = [a for a in baselines if "mel_auroc" in arms[a]]
    if with_auroc:
        best_auc = max(with_auroc, key=lambda a: np.mean(arms[a]["mel_auroc"]))
        out["best_baseline_mel_auroc"] = best_auc
        from sklearn.metrics import roc_auc_score

        mel = class_names.index("mel")

        def mel_auroc(lab: np.ndarray, p: np.ndarray) -> float:
            pos = lab == mel
            return roc_auc_score(pos, p[:, mel]) if 0 < pos.sum() < len(pos) else float("nan")

        for g in [a for a in arms if a.startswith("gan") and "mel_auroc" in arms[a]]:
            shared = [s for s in arms[g]["seeds"] if s in arms[best_auc]["seeds"]]
            if shared:
                out.setdefault(g, {"seeds": shared})["mel_auroc"] = paired_bootstrap(
                    mel_auroc, labels[rows], probs(g, shared), probs(best_auc, shared), n_boot=n_boot)
    return out


def _external_lines(ext: dict) -> list[str]:
    info, arms = ext["info"], ext["arms"]
    scored = info["scored_classes"]
    lines = ["", f"## External test: {info.get('name')} ({info.get('note') or info.get('source')})", "",
             f"{info['n_images']} images from `{info.get('source')}`, resized `{info.get('resize')}`; scored classes "
             f"(at least {info['min_images_per_class']} images): " + ", ".join(
                 f"{c} {info['counts'][c]}" for c in scored) + "; too few to score: " + (", ".join(
                     f"{c} {n}" for c, n in info["counts"].items() if c not in scored and n) or "none")
             + "; absent: " + (", ".join(c for c, n in info["counts"].items() if not n) or "none") + ".",
             ""]
    left = info.get("dropped") or {}
    if left or info.get("unmapped"):
        lines += ["Left out: " + "; ".join([f"{n} {why}" for why, n in left.items()]
                                          + [f"{n} of class `{c}` (not in the class map)"
                                             for c, n in (info.get("unmapped") or {}).items()]) + ".", ""]
    among = info.get("copies_looked_for_among") or {}
    if among:
        lines += [f"Copies and near copies were looked for among {among['training_images']:,} training images"
                  + (" - the whole split the shared generator was trained on, not only this slice's." if
                     among.get("generator_split") else "."), ""]
    if not arms:
        return lines + ["No run of this folder has been scored on it (runs whose classifiers were not kept cannot "
                        "be).", ""]
    auroc = any("mel_auroc" in a for a in arms.values())
    lines += ["| arm | seeds | balanced accuracy | " + ("melanoma-vs-rest AUROC | " if auroc else "")
              + " | ".join(f"recall {c}" for c in scored) + " |",
              "|---|---|---:|" + ("---:|" if auroc else "") + "---:|" * len(scored)]
    for arm, a in arms.items():
        lines.append(f"| {arm} | {','.join(map(str, a['seeds']))} | {_pm(a['balanced_accuracy'])} | "
                     + (f"{_pm(a['mel_auroc'])} | " if auroc and "mel_auroc" in a else ("- | " if auroc else ""))
                     + " | ".join(_pm(a["per_class_recall"][c]) for c in scored) + " |")
    best = ext.get("best_baseline")
    gans = [g for g in arms if g.startswith("gan") and g in ext]
    if best and gans:
        lines += ["", f"GAN arms minus the best baseline on this test set (`{best}`), balanced accuracy over the scored "
                  "classes, pp, 95 % paired bootstrap CI over its images and seeds:", ""]
        lines += [f"- `{g}` ({_seeds(ext[g]['seeds'])}): {_ci(ext[g]['balanced_accuracy'])}" for g in gans
                  if "balanced_accuracy" in ext[g]]
    best_auc = ext.get("best_baseline_mel_auroc")
    gans = [g for g in gans if "mel_auroc" in ext[g]]
    if best_auc and gans:
        lines += ["", f"Melanoma-vs-rest AUROC, GAN arms minus the baseline best on it (`{best_auc}`), pp, 95 % paired "
                  "bootstrap CI:", ""]
        lines += [f"- `{g}` ({_seeds(ext[g]['seeds'])}): {_ci(ext[g]['mel_auroc'])}" for g in gans]
    return lines + [""]


def _mean(stats, key: str) -> float:
    """Mean of a per-class statistic, weighted by the images each class kept."""
    stats = list(stats)
    return sum(s[key] * s["kept"] for s in stats) / max(1, sum(s["kept"] for s in stats))


def arms_lines(arms: dict, cfg: dict) -> list[str]:
    """"Arms and variants tried": what each arm trained on, from its first record."""
    lines = ["## Arms and variants tried", ""]
    for arm, a in arms.items():
        extra = ""
        if "synthetic" in a:
            syn = sum(v["synthetic"] for v in a["synthetic"].values())
            cap = a.get("synthetic_cap", cfg["max_synthetic_fraction"])
            extra = f" - {syn} synthetic images in the balanced set (cap {cap:.0%} per class)"
            extra += (", drawn uniformly" if is_uniform(arm) else
                      ", drawn class-balanced (MinorityOversampler)")
        if "slot_images" in a:  # the distillation arms: what fills the synthetic places, and how it is labelled
            extra = (f" - {a.get('soft_items')} places for synthetic images in the balanced set (cap "
                     f"{a.get('synthetic_cap', 0):.0%} per class), filled with {a['slot_images']} images and labelled "
                     f"soft: the teacher's probabilities at temperature {a.get('distill_temperature')} mixed with the "
                     f"one-hot label at weight {a.get('distill_hard_weight')}; drawn class-balanced")
        if "boundary_images" in a:
            extra += (f" - {a.get('boundary_items')} items between two classes with the mixed label "
                      f"({a['boundary_images']}; {a.get('boundary_rate')} per real image)")
        if "feedback" in a:  # gan_feedback: the teacher's pick of the generator's draws
            fb = a["feedback"].values()
            on = sum(s["kept_on_manifold"] for s in fb) / max(1, sum(s["kept"] for s in fb))
            extra += (f"; each the real-trained teacher's pick of {1 / a.get('feedback_keep', 1):g} draws - on the "
                      f"class's real-image manifold in its features ({on:.0%} of those kept), and the least sure "
                      f"of those (its mean probability of the class {_mean(fb, 'p_class_kept'):.2f} kept, "
                      f"{_mean(fb, 'p_class_drawn'):.2f} drawn)")
        if "real_last_epochs" in a:
            n = a["real_last_epochs"]
            extra += f"; its last {n} epoch{'s' * (n != 1)} on real images only"
        if "second_stage" in a:
            st = a["second_stage"]
            epochs = f"{st['epochs']} epoch{'s' * (st['epochs'] != 1)}"
            what = ("the head alone, re-initialised, on frozen features (cRT)" if st["trains"] == "head"
                    else "every layer")
            extra += f"; then {epochs} on real images only (class-balanced) from learning rate {st['lr']:g}: {what}"
        if "filter_acceptance" in a:
            extra += "; filter acceptance " + ", ".join(f"{c} {v:.0%}" for c, v in a["filter_acceptance"].items())
        if "synthetic" in a and not syn:
            extra += " - **no synthetic image was used: this arm trained on real images alone**"
        lines.append(f"- `{arm}`{extra}")
    return lines
