"""The benchmark's report: per-arm aggregates, paired bootstrap comparisons, Markdown and plots."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.stats import balanced_accuracy, macro_auroc, mean_recall, paired_bootstrap

from .protocol import BASELINES, GOALS, MIN_SEEDS_FOR_VERDICT
from .report_context import HAM10000_CLASSES, _ci, _outside_lines, _pm, _reference_lines, reference_summary
from .runs_status import runs_lines, runs_status
from .report_sections import _assess_lines, _external_lines, arms_lines, external_summary  # noqa: F401
from .shared_regime import shared_generator_lines

__all__ = ["aggregate", "compare", "external_summary", "report_markdown", "plots", "reference_summary", "HAM10000_CLASSES"]


# what an arm's first record says about how it was trained, carried into the report's "Arms and variants tried"
ARM_INFO = ("synthetic", "synthetic_cap", "filter_acceptance", "real_last_epochs", "slot_images", "soft_items",
            "distill_temperature", "distill_hard_weight", "boundary_items", "boundary_images", "boundary_rate",
            "feedback", "feedback_keep")

def aggregate(records: dict[str, list[dict]], class_names: list[str], rare: list[int]) -> dict:
    arms = {}
    for arm, recs in records.items():
        recs = sorted(recs, key=lambda r: r["seed"])
        arms[arm] = {
            "seeds": [r["seed"] for r in recs],
            "balanced_accuracy": [r["test"]["balanced_accuracy"] for r in recs],
            "macro_f1": [r["test"]["macro_f1"] for r in recs],
            "auroc": [r["test"]["auroc"] for r in recs],
            "accuracy": [r["test"]["accuracy"] for r in recs],
            "per_class_recall": {c: [r["test"]["per_class_recall"][c] for r in recs] for c in class_names},
            "rare_mean_recall": [float(np.mean([r["test"]["per_class_recall"][class_names[i]] for i in rare]))
                                 for r in recs] if rare else [],
            "confusion_matrix_sum": np.sum([r["test"]["confusion_matrix"] for r in recs], axis=0).tolist(),
            "best_epoch": [r["best_epoch"] for r in recs],
            "seconds": [r["seconds"] for r in recs],
            **{k: recs[0][k] for k in ARM_INFO if k in recs[0]},
            **({"second_stage": {"trains": recs[0]["stage2"]["trains"], "epochs": recs[0]["retrain_epochs"],
                                 "lr": recs[0]["retrain_lr"]}} if "stage2" in recs[0] else {}),
        }
        tested = [r for r in recs if "synthetic_test" in r]  # runs recorded before that test have none
        if tested:
            arms[arm]["synthetic_test"] = {
                "seeds": [r["seed"] for r in tested], "per_class": tested[0]["synthetic_test"]["per_class"],
                "recall": {c: [r["synthetic_test"]["recall"][c] for r in tested] for c in class_names},
                "real_recall": {c: [r["test"]["per_class_recall"][c] for r in tested] for c in class_names}}
    return arms


def compare(arms: dict, runs_dir: Path | Callable[[str], Path], labels: np.ndarray, rare: list[int], regime: str,
            n_boot: int) -> dict:
    """Each GAN arm against the best baseline (paired bootstrap over test images and shared seeds). ``runs_dir``:
    the folder of the runs' test probabilities, or a function giving each arm's."""
    folder = runs_dir if callable(runs_dir) else (lambda arm: runs_dir)
    baselines = [a for a in BASELINES if a in arms]
    gan_arms = [a for a in arms if a.startswith("gan")]
    if not baselines or not gan_arms:
        return {}
    best = max(baselines, key=lambda a: np.mean(arms[a]["balanced_accuracy"]))
    goal = GOALS["full" if regime == "full" else "frac"]

    def probs(arm, seeds):
        return np.stack([np.load(folder(arm) / f"{arm}_seed{s}_test_probs.npy") for s in seeds])

    # each GAN arm is paired with the best baseline on the seeds both have (a report over every finished run
    # can hold arms at different seeds); the verdict is per arm: at least MIN_SEEDS_FOR_VERDICT shared seeds
    out = {"best_baseline": best, "goal": goal, "n_seeds": len(arms[best]["seeds"]), "verdict": False}
    for g in gan_arms:
        shared = [s for s in arms[g]["seeds"] if s in arms[best]["seeds"]]
        if not shared:
            out[g] = {"skipped": f"no seed in common with {best}"}
            continue
        pa, pb = probs(g, shared), probs(best, shared)
        d = {"seeds": shared,
             "balanced_accuracy": paired_bootstrap(balanced_accuracy, labels, pa, pb, n_boot=n_boot),
             "macro_auroc": paired_bootstrap(macro_auroc, labels, pa, pb, n_boot=n_boot)}
        if rare:
            d["rare_mean_recall"] = paired_bootstrap(mean_recall(rare), labels, pa, pb, n_boot=n_boot)
        d["meets_goal"], d["goal_reason"] = goal_met(d, goal, len(shared))
        out["verdict"] = out["verdict"] or len(shared) >= MIN_SEEDS_FOR_VERDICT
        out[g] = d
    return out


def goal_met(d: dict, goal: dict, n_seeds: int) -> tuple[bool | None, str]:
    """Every criterion must be measured and met: a missing one fails the goal, never passes it; with fewer than
    MIN_SEEDS_FOR_VERDICT seeds there is no verdict at all (None)."""
    if n_seeds < MIN_SEEDS_FOR_VERDICT:
        return None, f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    missing = [k for k in ("balanced_accuracy", "rare_mean_recall", "macro_auroc") if k not in d]
    if missing:
        return False, f"not measured: {', '.join(missing)}"
    ba, rare, auc = d["balanced_accuracy"], d["rare_mean_recall"], d["macro_auroc"]
    failed = []
    if ba["mean"] < goal["balanced_accuracy"]:
        failed.append(f"balanced accuracy {ba['mean'] * 100:+.1f} < +{goal['balanced_accuracy'] * 100:.0f} pp")
    if ba["ci_low"] <= 0:
        failed.append("balanced-accuracy CI not above 0")
    if rare["mean"] < goal["rare_recall"]:
        failed.append(f"rare recall {rare['mean'] * 100:+.1f} < +{goal['rare_recall'] * 100:.0f} pp")
    if auc["mean"] < 0:
        failed.append("macro-AUROC lower")
    return (not failed), ("; ".join(failed) if failed else "every criterion met")


def _closest(comp: dict, gen: dict | None, *, verdict: bool = True) -> list[str]:
    """When no GAN arm met the goal: which came closest, and what the generator check says about why (without a
    verdict - too few seeds - the same facts, worded as what the seeds so far show)."""
    # the GAN arms' comparisons only ("goal" has a balanced_accuracy key too: the goal's threshold)
    arms = {a: d for a, d in comp.items() if a.startswith("gan") and isinstance(d, dict) and "balanced_accuracy" in d}
    if not arms or any(d.get("meets_goal") for d in arms.values()):
        return []
    best = max(arms, key=lambda a: arms[a]["balanced_accuracy"]["mean"])
    d = arms[best]
    head = "**No GAN arm met the goal.** Closest:" if verdict else "Closest GAN arm so far:"
    out = ["", f"{head} `{best}`, {_ci(d['balanced_accuracy'])} pp balanced accuracy "
           f"({d.get('goal_reason', '')})."]
    chk = (gen or {}).get("check") or {}
    why = []
    for name, dist in chk.get("distribution", {}).items():
        o = dist.get("overall", {})
        if "c2st" in o:
            why.append(f"a linear probe tells its images from real ones {o['c2st']:.0%} of the time in {name} features")
    cas = chk.get("classification_accuracy_on_synthetic")
    if cas:
        # next to each class, how often the same classifier recognises real held-out images of it: a class it
        # never recognises in real images either says nothing about the generator
        real = (chk.get("classification_accuracy_on_real_heldout") or {}).get("per_class", {})
        worst = sorted(cas["per_class"].items(), key=lambda kv: kv[1])[:3]
        why.append("the real-trained classifier recognises its images of " +
                   ", ".join(f"{c} {v:.0%}" + (f" (real {real[c]:.0%})" if c in real else "") for c, v in worst)
                   + " of the time (lowest classes; in brackets: real validation images)")
    cf = chk.get("class_fidelity")
    if cf and cf.get("mean_real_heldout") is not None:
        why.append(f"a class-balanced linear classifier on real training images' {cf['feature_space']} features "
                   f"gives {cf['mean_generated']:.0%} of its images their own class ({cf['mean_real_heldout']:.0%} "
                   "of real validation images), mean over classes")
    if why:
        out.append("What the generator check says: " + "; ".join(why) + ".")
    return out


def _synthetic_test_lines(arms: dict, classes: list[str]) -> list[str]:
    """Each arm's classifiers on fresh generated images of every class, beside their recall on real ones."""
    tested = {arm: a["synthetic_test"] for arm, a in arms.items() if "synthetic_test" in a}
    if not tested:
        return []
    lines = ["", "### What each arm's classifier calls fresh generated images", "",
             "Recall on generated images of each class (new draws, another seed than the training bank; "
             f"{next(iter(tested.values()))['per_class']} per class) / on the real test images, %, mean over the "
             "seeds shown. A baseline's classifier saw no generated image (the control). A class the arm gave no "
             "synthetic images (`gan_light`: the largest) whose generated images it calls something else far more "
             "often than the control does shows the classifier using \"looks generated\" as a clue to the class.",
             "", "| arm | seeds | " + " | ".join(classes) + " |",
             "|---|---|" + "---:|" * len(classes)]
    for arm, t in tested.items():
        cells = [f"{np.mean(t['recall'][c]) * 100:.0f} / {np.mean(t['real_recall'][c]) * 100:.0f}" for c in classes]
        lines.append(f"| {arm} | {','.join(str(x) for x in t['seeds'])} | " + " | ".join(cells) + " |")
    return lines


def _manifest_file(results: dict) -> str:
    """Where the run's split is written down: the manifest it was given (``--split-manifest``), else the one of the
    folder its baselines came from (the same split, checked by hash), else the copy beside the report."""
    given = (results.get("config") or {}).get("split_manifest")
    if given:
        return f"`{given}`"
    if results.get("baselines_from"):
        return f"`{results['baselines_from']}/manifest.csv`"
    return "manifest.csv"


def report_markdown(results: dict) -> str:
    m, cfg, arms = results["meta"], results["config"], results["arms"]
    classes = results["data"]["class_names"]
    lines = [f"# Does GAN augmentation help? - {m['regime']} regime, preset `{cfg['preset']}`" if not results.get("assess")
             else f"# Does GAN augmentation help on `{results['assess'].get('data')}`? - assess.py", ""]
    if results.get("reference"):
        lines += _reference_lines(results["reference"])
    if cfg["preset"] in ("cpu64", "cpu128") and not cfg.get("max_train_images"):
        seeds = sorted({s for a in arms.values() for s in a.get("seeds", [])})
        done = "runs_finished" in results and not runs_status(results)["missing"]
        px = cfg.get("image_size", 64)
        lines += [f"> The reference protocol at {px} px on a CPU: every training image of the split "
                  f"({results['data']['train_total']}), {results['epochs']} epochs, seed"
                  f"{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}"
                  f"{'' if done else ' so far'} (each arm's seeds: the tables). Evidence at {px} px, not at the "
                  "reference 256 px.", ""]
    elif results.get("assess"):
        lines += _assess_lines(results)
    elif cfg["preset"] != "full":
        gen = results.get("generator") or {}
        res = (gen.get("check") or {}).get("generator", {}).get("resolution")
        gan = f", a {res} px GAN trained {gen.get('step')} steps" if gen else ""
        n_seeds = len(cfg["seeds"])
        lines += [f"> **Pipeline check, not evidence.** Preset `{cfg['preset']}`: {results['data']['train_total']} "
                  f"training images, {cfg['image_size']} px, {results['epochs']} epochs, {n_seeds} "
                  f"seed{'s' if n_seeds > 1 else ''}{gan}. At this scale the numbers can compare variants with "
                  "each other; they say nothing about whether GAN augmentation helps under the reference "
                  "protocol (`--preset full`)" + ("; the committed result above is the one to read." if
                                                  results.get("reference") else "."), ""]
    lines += [f"- command: `{m['command']}`", f"- commit: `{m['commit']}`{' (dirty tree)' if m.get('dirty') else ''}",
              f"- device: {m['device']}; GPU: {m['gpu'] or 'none'}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
              f"- manifest: `{m['manifest_hash'][:16]}` (grouped, stratified split; see {_manifest_file(results)})",
              f"- classifier: {cfg['classifier']} ({results['pretrained']}), {cfg['image_size']} px, batch "
              f"{cfg['batch_size']}, AdamW lr {cfg['lr']} wd {cfg['weight_decay']}, cosine with "
              f"{cfg['warmup_epochs']} warm-up epoch, {results['epochs']} epochs of {results['data']['train_total']} "
              f"images each (same steps for every arm), seeds {cfg['seeds']}", "",
              "## Data", "", results["data"]["counts_table"], ""]
    dropped = results["data"].get("dropped_leaked") or []
    if dropped:
        lines += [f"**{len(dropped)} leaked held-out image(s) dropped** (`--drop-leaked`: copies of, or in a group "
                  "with, images of an earlier split):", ""]
        lines += [f"- `{Path(d['path']).name}` ({d['split']}) = `{Path(d['copy_of']).name}` ({d['copy_split']}, "
                  f"{d['why']})" for d in dropped]
        lines.append("")
    if results.get("baselines_from"):
        lines += [f"**Baseline runs read from `{results['baselines_from']}`** (`--baselines-from`: the same split and "
                  "protocol, trained there, never here; the GAN arms are paired with them seed by seed).", ""]
    restored = results.get("judge_restored")
    if restored:
        agree = (f", the same prediction on {restored['prediction_agreement']:.1%} of test images (largest probability "
                 f"difference {restored['max_abs_probability_difference']:.2g})" if "prediction_agreement" in restored
                 else "")
        lines += [f"**The real-trained classifier (`aug` seed 0) that checks and filters the GAN images was retrained "
                  f"here** (`--restore-judge`: its record `{restored['record']}` had no weights): test balanced "
                  f"accuracy {restored['retrained_balanced_accuracy']:.2%} against the record's "
                  f"{restored['recorded_balanced_accuracy']:.2%}{agree}.", ""]
    if results.get("rare_classes"):
        lines += [f"Rare classes (the goal needs their mean recall): {', '.join(results['rare_classes'])} - "
                  f"{results.get('rare_classes_source', '')}.", ""]
    gen = results.get("generator")
    if gen:
        trained_on = ("the whole training split this run slices: **the GAN arm drew on more real images than the "
                      "baselines**, so its numbers here are not evidence" if gen.get("from_full_split") else
                      "this manifest's train split only")
        if gen.get("from_full_split") and results.get("shared_generator"):
            trained_on = ("the whole training split this run slices - the shared-generator regime below, whose upper "
                          "bound is the classifier trained on those images")
        lines += ["## Generator check (before the GAN arms)", "", f"Generator: `{gen['path']}` (step {gen.get('step')}"
                  + (f", sha256 `{gen['sha256'][:12]}`" if gen.get("sha256") else "") + f", trained on {trained_on}).", ""]
        chk = gen.get("check", {})
        dist = chk.get("distribution", {})
        for name, d in dist.items():
            if "overall" in d:
                o = d["overall"]
                probe = (f"; a linear probe tells generated from real with {o['c2st']:.0%} balanced accuracy "
                         "(50 % = indistinguishable)" if "c2st" in o else "")
                lines.append(f"- {chk.get('feature_spaces', {}).get(name, name)}: FID {o.get('fid', float('nan')):.1f}, "
                             f"KID {o.get('kid', float('nan')) * 1e3:.1f}e-3 vs the validation split "
                             f"({o['n_real']} real / {o['n_fake']} generated){probe}.")
        mem = (chk.get("memorisation") or {}).get("overall") or {}
        if "p_value" in mem:  # a generator that copies its training images leaks them: said before any accuracy
            n_train = sum((chk.get("data", {}).get("train_per_class") or {}).values())
            among = f" of {n_train:,}" if n_train else ""
            lines.append(f"- memorisation test (nearest training image{among}, generated vs held-out real; Mann-Whitney U): "
                         f"p = {mem['p_value']:.2g}, {mem['fraction_below_heldout_p1']:.0%} of generated images closer "
                         "to a training image than the held-out 1st percentile: " + (
                             "**FLAGGED - the generator reproduces training images; do not share it or its images "
                             "(nearest pairs: `generator_check/nearest_training.jpg`)**" if mem.get("flagged")
                             else "not flagged."))
        cas = chk.get("classification_accuracy_on_synthetic")
        if cas:
            real = chk.get("classification_accuracy_on_real_heldout", {}).get("per_class", {})
            lines += ["", "Real-trained classifier (`aug`, seed 0) accuracy per class:", "",
                      "| class | on synthetic | on real validation |", "|---|---:|---:|"]
            lines += [f"| {c} | {v:.2f} | {real.get(c, float('nan')):.2f} |" for c, v in cas["per_class"].items()]
        lines += ["", "Grids: `generator_check/samples_vs_real.jpg`; full metrics: `generator_check/metrics.md`.", ""]
    lines += ["## Test results (mean ± std over seeds, %)", "",
              "| arm | seeds | balanced accuracy | macro-F1 | macro-AUROC | accuracy | rare-class recall (" +
              ", ".join(results.get("rare_classes") or cfg["rare_classes"] or []) + ") |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for arm, a in arms.items():
        lines.append(f"| {arm} | {','.join(str(s) for s in a.get('seeds', [])) or '-'} | {_pm(a['balanced_accuracy'])} | {_pm(a['macro_f1'])} | {_pm(a['auroc'])} | "
                     f"{_pm(a['accuracy'])} | {_pm(a['rare_mean_recall'])} |")
    lines += ["", "### Per-class recall (%)", "", "| arm | " + " | ".join(classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for arm, a in arms.items():
        lines.append(f"| {arm} | " + " | ".join(_pm(a["per_class_recall"][c]) for c in classes) + " |")
    lines += _synthetic_test_lines(arms, classes)
    comp = results.get("comparison", {})
    if comp:
        best = comp["best_baseline"]
        goal = comp["goal"]
        lines += ["", f"## GAN arms minus the best baseline (`{best}`), percentage points, 95 % paired bootstrap CI "
                  "over test images and seeds", "",
                  f"Goal: >= +{goal['balanced_accuracy'] * 100:.0f} pp balanced accuracy, >= +{goal['rare_recall'] * 100:.0f}"
                  " pp rare-class recall, no loss of macro-AUROC.", "",
                  "| arm | seeds | Δ balanced accuracy | Δ rare-class recall | Δ macro-AUROC | meets goal |",
                  "|---|---|---|---|---|---|"]
        verdicts, undecided = [], []
        for arm, d in comp.items():
            if not arm.startswith("gan") or not isinstance(d, dict):
                continue
            if "skipped" in d:
                lines.append(f"| {arm} | - | - | - | - | not compared: {d['skipped']} |")
                continue
            n = len(d["seeds"]) if "seeds" in d else comp.get("n_seeds")  # results written before per-arm seeds
            rare = _ci(d["rare_mean_recall"]) if "rare_mean_recall" in d else "-"
            met = d.get("meets_goal")
            reason = d.get("goal_reason", "")
            lines.append(f"| {arm} | {n} | {_ci(d['balanced_accuracy'])} | {rare} | {_ci(d['macro_auroc'])} | "
                         f"{'no verdict' if met is None else ('yes' if met else 'no')}"
                         f"{f' ({reason})' if reason and met is not True else ''} |")
            if met is None:
                undecided.append(f"`{arm}` ({n} seed{'s' if n != 1 else ''})")
                continue
            ba = d["balanced_accuracy"]
            if ba["ci_low"] > 0:
                verdicts.append(f"`{arm}` beat `{best}` on balanced accuracy (CI above 0)")
            elif ba["ci_high"] < 0:
                verdicts.append(f"`{arm}` was WORSE than `{best}` on balanced accuracy (CI below 0)")
            else:
                verdicts.append(f"`{arm}` was not distinguishable from `{best}` on balanced accuracy (CI spans 0)")
        decided = {a: d for a, d in comp.items() if a.startswith("gan") and isinstance(d, dict)
                   and d.get("meets_goal") is not None}
        if verdicts:
            lines += ["", "**Verdict:** " + "; ".join(verdicts) + "."]
            lines += _closest(decided, results.get("generator"))
        if undecided:
            lines += ["", f"**No verdict:** {', '.join(undecided)} (a verdict needs at least "
                      f"{MIN_SEEDS_FOR_VERDICT} seeds shared with `{best}`); the differences above are all "
                      f"{'these seeds show' if verdicts else 'this run shows'}."]
            if not verdicts:
                lines += _closest(comp, results.get("generator"), verdict=False)
    if results.get("shared_generator"):
        lines += shared_generator_lines(results["shared_generator"])
    if results.get("external"):
        lines += _external_lines(results["external"])
    lines += ["", *runs_lines(results), *_outside_lines(results), *arms_lines(arms, cfg)]
    lines += ["", "Plots: `balanced_accuracy.png`, `per_class_recall.png`, `confusion_matrices.png`.", ""]
    return "\n".join(lines)


def plots(results: dict, out: Path) -> None:
    from gan_augment.plots import pyplot, save_figure

    plt = pyplot()
    arms, classes = results["arms"], results["data"]["class_names"]
    names = list(arms)

    def save(fig, name):
        save_figure(fig, out / name)

    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.6))
    means = [np.mean(arms[a]["balanced_accuracy"]) * 100 for a in names]
    stds = [np.std(arms[a]["balanced_accuracy"], ddof=1) * 100 if len(arms[a]["balanced_accuracy"]) > 1 else 0
            for a in names]
    ax.bar(names, means, yerr=stds, capsize=4, color=["#999" if not a.startswith("gan") else "#c44" for a in names])
    ax.set_ylabel("test balanced accuracy (%)")
    ax.set_title(f"{results['meta']['regime']} regime: mean ± std over seeds {results['config']['seeds']}")
    ax.tick_params(axis="x", rotation=30)
    save(fig, "balanced_accuracy.png")

    fig, ax = plt.subplots(figsize=(max(6, len(classes) * 1.3), 3.8))
    width = 0.8 / len(names)
    for i, a in enumerate(names):
        vals = [np.mean(arms[a]["per_class_recall"][c]) * 100 for c in classes]
        errs = [np.std(arms[a]["per_class_recall"][c], ddof=1) * 100 if len(arms[a]["per_class_recall"][c]) > 1
                else 0 for c in classes]
        ax.bar(np.arange(len(classes)) + i * width, vals, width, yerr=errs, capsize=2, label=a)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2)
    ax.set_xticklabels(classes)
    ax.set_ylabel("test recall (%, mean ± std over seeds)")
    ax.legend(fontsize=7, ncol=2)
    save(fig, "per_class_recall.png")

    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, a in zip(axes.flat, names):
        cm = np.asarray(arms[a]["confusion_matrix_sum"], float)
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(a, fontsize=9)
        ax.set_xticks(range(len(classes)))
        ax.set_yticks(range(len(classes)))
        ax.set_xticklabels(classes, rotation=90, fontsize=7)
        ax.set_yticklabels(classes, fontsize=7)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5, color="white" if v > 0.5 else "black")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("row-normalised confusion matrices (test, summed over seeds; rows = true class)", fontsize=9)
    save(fig, "confusion_matrices.png")


