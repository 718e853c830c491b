"""``benchmarks/assess.py``: from a folder of images to a verdict - does GAN augmentation help on *this* data? -
within a time budget, in one command.

The benchmark's protocol (:mod:`ga_bench.protocol`) on the user's data, with every choice made for them:

1. **split** - the data's own split (refused, with the two ways out, when copies or groups cross it) or a grouped
   70/15/15 one; channels and the resize policy resolved; data the benchmark cannot answer on is refused here;
2. **measure** - a few classifier steps on this machine (seconds);
3. **plan** - the budget split between the classifier runs (4 arms x 3 seeds, the epochs that fit, at most the
   protocol's 8) and the generator (the rest), printed before any long work; a budget too small is refused;
4. **baselines, seed 0** - their measured times re-plan the generator's share;
5. **generator** - the device's recipe trained on the training split only, for its share of wall time (it stops
   at a checkpoint when its share is spent and the assessment goes on with what it has); or a given generator;
6. **the check and the rest of the runs** - the generator check, `gan_light` and the other seeds, seed by seed,
   each started only when it is expected to end within the budget;
7. **the report** - report.md and report.html: the verdict (or "no verdict" and why), the generator check, the
   plan against what each stage took, and what a larger budget would change.

State lives in ``OUT/assess.json``: a second call with the same ``--out`` continues where the first stopped
(killed, or out of budget); a larger ``--budget`` trains the generator on from its checkpoint, sets aside the GAN
arm's runs and check made with the older generator, and reruns only those.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

from gan_augment._io import display_path, write_json
from gan_augment.pretrained import file_sha256

from .data_source import DEMO_DATA
from .protocol import BenchmarkConfig, GeneratorMismatch

__all__ = ["ASSESS_ARMS", "BASELINE_ARMS", "Recipe", "RECIPES", "parse_budget", "Speeds", "Plan", "BudgetTooSmall",
           "make_plan", "measure_classifier", "parser", "main", "assess"]

BASELINE_ARMS = ("aug", "aug_oversample", "aug_weighted")
ASSESS_ARMS = (*BASELINE_ARMS, "gan_light")  # the baselines that matter and the recommended GAN arm
MIN_MORE_GAN_S = 30.0  # a larger budget trains the generator on only when it adds at least this much training


from .assess_plan import (CLASSIFIER_SHARE, INCEPTION_COST, LATER_RUNS_COST, MAX_EPOCHS, MIN_EPOCHS,  # noqa: F401
                          MIN_GAN_MINUTES, RECIPES, RESERVE_S, BudgetTooSmall, Plan, Recipe, Speeds, _fmt_s, make_plan,
                          measure_classifier, parse_budget, run_seconds)

from .assess_plan import _gan_done_s, _gan_step, _load_state, _records, _set_aside  # noqa: E402,F401


# ------------------------------------------------------------------------------------------------------ the command
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="assess.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Does GAN augmentation help on this data? The whole benchmark - split, generator, baselines and "
                    "the recommended GAN arm over 3 seeds, report - within a time budget.",
        epilog="examples:\n  python benchmarks/assess.py demo:ham10000-64 --budget 2h\n"
               "  python benchmarks/assess.py path/to/ImageFolder --budget 2h --channels auto --out runs/assess_mine\n"
               "  python benchmarks/assess.py path/to/ImageFolder --budget 3h --out runs/assess_mine   # continue it")
    p.add_argument("data", help="an ImageFolder (class folders, or train/val/test with class folders inside), a "
                                "HAM10000-style folder with its metadata CSV, a MedMNIST .npz, or demo:ham10000-64")
    p.add_argument("--budget", type=parse_budget, default=parse_budget("2h"),
                   help="wall time for everything, e.g. 2h, 90m, 1h30m (default 2h); a second call with the same "
                        "--out counts what earlier calls spent")
    p.add_argument("--out", help="output folder (default runs/assess_<data name>); rerun to continue")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]: picks the recipe (64 px on a CPU, "
                                                     "256 px on a GPU)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--generator", help="use this generator instead of training one: a file trained on this "
                                       "assessment's split (OUT/manifest.csv), or pretrained:NAME")
    g.add_argument("--init-generator", help="train the generator from this one (a file or pretrained:NAME; fine-"
                                            "tuning) instead of from scratch; its lineage must not have seen this "
                                            "data's validation or test images")
    p.add_argument("--channels", type=lambda v: v if v == "auto" else int(v), choices=[1, 3, "auto"], default="auto",
                   help="1 for grey scans, 3, or auto (default: 1 when every training image is grey)")
    p.add_argument("--resize", choices=["center_crop", "squash", "pad"], default="center_crop")
    leak = p.add_mutually_exclusive_group()
    leak.add_argument("--resplit", action="store_true", help="the data's own split leaks: split afresh (grouped)")
    leak.add_argument("--drop-leaked", action="store_true", help="the data's own split leaks: drop the copies")
    p.add_argument("--rare-classes", type=lambda s: [x.strip() for x in s.split(",") if x.strip()])
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (3: the fewest that give a verdict)")
    p.add_argument("--plan-only", action="store_true", help="split, measure, print the plan and stop")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    adv = p.add_argument_group("recipe (defaults by device)")
    adv.add_argument("--image-size", type=int)
    adv.add_argument("--gan-config")
    adv.add_argument("--gan-set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a key of the generator's config (repeatable)")
    adv.add_argument("--max-epochs", type=int, default=MAX_EPOCHS)
    adv.add_argument("--min-gan-minutes", type=float, default=MIN_GAN_MINUTES)
    adv.add_argument("--max-gan-minutes", type=float,
                     help="at most this much wall time for the generator in all (default: the rest of the budget)")
    adv.add_argument("--check-features", choices=["inception", "lite0"], default="inception")
    adv.add_argument("--check-per-class", type=int, default=50)
    adv.add_argument("--max-eval-per-class", type=int, help="cap validation and test images per class")
    adv.add_argument("--batch-size", type=int)
    adv.add_argument("--num-workers", type=int, default=2)
    return p


def _config(args: argparse.Namespace, recipe: Recipe, out: Path) -> BenchmarkConfig:
    demo = args.data == DEMO_DATA
    return BenchmarkConfig(
        out=str(out), preset="assess", data_dir=args.data, image_size=args.image_size or recipe.image_size,
        channels=args.channels, resize=args.resize, batch_size=args.batch_size or recipe.batch_size,
        seeds=list(range(args.seeds)), arms=list(ASSESS_ARMS), classifier="tf_efficientnet_lite0",
        generator=args.generator, generator_from_full_split=demo, gan_config=args.gan_config or recipe.gan_config,
        gan_overrides=[*recipe.gan_overrides, *args.gan_set], check_per_class=args.check_per_class,
        check_features=args.check_features, check_max_real_per_class=200, max_eval_per_class=args.max_eval_per_class,
        synthetic_test_per_class=50, bank_size=5000, filter_quantile=0.25, rare_classes=args.rare_classes,
        num_workers=args.num_workers, device=args.device, progress=args.progress, n_boot=2000,
        resplit=args.resplit, drop_leaked=args.drop_leaked)


def _data_name(data: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", data.split(":")[-1] if data.startswith("demo:") else
                  Path(data).stem if data.endswith(".npz") else Path(data).resolve().name) or "data"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return assess(args, command=["python", "benchmarks/assess.py", *(argv if argv is not None else sys.argv[1:])])
    except (BudgetTooSmall, GeneratorMismatch, ValueError) as exc:
        print(f"assess: {exc}", file=sys.stderr)
        return 2


def assess(args: argparse.Namespace, command: list[str]) -> int:
    from gan_augment import distributed as gdist

    from .runner import run_benchmark, train_generator

    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1 (3 give a verdict)")
    device = gdist.init_from_env(args.device)[1]
    recipe = RECIPES["cuda" if device.type == "cuda" else "cpu"]
    out = Path(args.out or f"runs/assess_{_data_name(args.data)}")
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "assess.json"
    state = _load_state(state_path)
    if state and state.get("data") != args.data:
        raise ValueError(f"{out} holds an assessment of {state.get('data')!r}, not {args.data!r}: use another --out")
    if state and state.get("image_size") not in (None, args.image_size or recipe.image_size):
        raise ValueError(f"{out} was assessed at {state['image_size']} px (another device's recipe); use another "
                         "--out, or --image-size " + str(state["image_size"]))
    cfg = _config(args, recipe, out)
    call = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "budget_s": args.budget,
            "command": command, "stages": {}}
    state.setdefault("data", args.data)
    state.setdefault("image_size", cfg.image_size)
    state.setdefault("calls", [])
    state["calls"].append(call)
    state["budget_s"] = args.budget
    spent_before = sum(sum(c.get("stages", {}).values()) for c in state["calls"][:-1])
    t_call = time.monotonic()
    deadline = t_call + (args.budget - spent_before)

    def stage(name: str, t0: float) -> None:
        call["stages"][name] = call["stages"].get(name, 0.0) + time.monotonic() - t0
        write_json(state_path, state)

    def save() -> None:
        write_json(state_path, state)

    # 1. split (refusals here, before any long work)
    t0 = time.monotonic()
    prep = run_benchmark(_replace(cfg, prepare_only=True), command=command)
    counts = prep["counts"]
    n = {s: sum(counts.get(s, {}).values()) for s in ("train", "val", "test")}
    class_names = sorted(counts["train"])
    stage("split", t0)
    print(f"assess: split {out / 'manifest.csv'} ({prep['manifest_hash'][:12]}): train {n['train']}, val {n['val']}, "
          f"test {n['test']} images, {len(class_names)} classes", file=sys.stderr)

    # 2. measure
    channels = cfg.channels if cfg.channels != "auto" else _channels(cfg, out / "manifest.csv")
    t0 = time.monotonic()
    sp = state.get("speeds")
    if not sp or sp.get("device") != str(device):
        speeds = measure_classifier(cfg, len(class_names), channels, device)
        state["speeds"] = asdict(speeds)
        stage("measure", t0)
    speeds = Speeds(**state["speeds"])
    runs_dir = out / "runs"
    done = _records(runs_dir)
    train_gan = not args.generator
    gan_dir = out / "gan"
    n_eval = n["val"] + n["test"]

    def plan_now(epochs: int | None) -> Plan:
        todo = [(a, s) for s in cfg.seeds for a in ASSESS_ARMS if (a, s) not in done]
        spent = spent_before + (time.monotonic() - t_call)
        return make_plan(args.budget, n_train=n["train"], n_val=n["val"], n_test=n["test"],
                         n_classes=len(class_names), speeds=speeds, runs=len(todo), train_gan=train_gan,
                         check_images=0 if (out / "generator_check" / "metrics.json").is_file() else
                         len(class_names) * (cfg.check_per_class + min(cfg.check_max_real_per_class, n_eval)),
                         gan_done_s=_gan_done_s(gan_dir) if train_gan else 0.0, spent_s=spent, epochs=epochs,
                         min_gan_s=args.min_gan_minutes * 60, max_epochs=args.max_epochs,
                         observed_run_s=state.get("observed_run_s"),
                         max_gan_s=args.max_gan_minutes * 60 if args.max_gan_minutes else None)

    # 3. plan (the epochs are fixed by the first call: a continued assessment reruns nothing that is done)
    try:
        plan = plan_now(state.get("epochs"))
    except BudgetTooSmall as exc:
        state["calls"].pop()  # a refused call spent nothing worth counting
        if not done:  # nothing ran yet: measure afresh next time (this machine may have been busy)
            state.pop("speeds", None)
        save()
        raise BudgetTooSmall(f"{exc} (measured here: the classifier trains {speeds.train_ips:.0f} images/s; on a "
                             "machine busy with other work that is too low - rerun when it is idle)") from None
    state["epochs"] = plan.epochs
    cfg.epochs = plan.epochs
    state["plan"] = {**asdict(plan), "speeds": asdict(speeds), "made": call["started"]}
    call["plan"] = state["plan"]
    save()
    shown = display_path(args.generator) if args.generator else None
    print("\n".join([f"assess: recipe: {recipe.note}" if cfg.image_size == recipe.image_size else
                      f"assess: recipe: {cfg.image_size} px, generator config {cfg.gan_config}",
                      f"assess: plan on {speeds.device} ({cfg.image_size} px; classifier {speeds.train_ips:.0f} img/s "
                     f"training, {speeds.eval_ips:.0f} img/s inference, {speeds.source})",
                     *plan.lines(_gan_done_s(gan_dir), shown)]), file=sys.stderr)
    if args.plan_only:
        return 0

    def left_s() -> float:
        return deadline - time.monotonic()

    def classifiers(seeds: list[int], arms: list[str], generator: str | None) -> bool:
        """Run (arm, seed) runs seed by seed; False once the budget stops them."""
        from .runner import run_benchmark as rb

        for k in range(1, len(seeds) + 1):
            t0 = time.monotonic()
            limit = (left_s() - plan.reserve_s / 2) / 60
            if limit <= 0:
                return False
            c = _replace(cfg, seeds=seeds[:k], arms=arms, generator=generator, time_limit_minutes=limit)
            try:
                rb(c, command=command, run_estimate_s=_longest(runs_dir, plan.run_s),
                   extra={"assess": _summary(state, out)})
            except TimeoutError as exc:
                print(f"assess: {exc}", file=sys.stderr)
                stage("classifiers", t0)
                return False
            finally:
                done.update(_records(runs_dir))
            stage("classifiers", t0)
        return True

    # 4. the baselines at seed 0: real timings for the generator's share
    before, t0 = len(done), time.monotonic()
    finished = classifiers(cfg.seeds[:1], list(BASELINE_ARMS), None)
    if len(done) > before:  # wall time per run, data loading and tests included (no generator check among them)
        state["observed_run_s"] = (time.monotonic() - t0) / (len(done) - before)
    generator = args.generator
    if finished and train_gan:
        plan = plan_now(plan.epochs)
        state["plan_after_baselines"] = {**asdict(plan), "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        more = plan.gan_s - _gan_done_s(gan_dir)
        print("\n".join(["assess: plan from the first runs", *plan.lines(_gan_done_s(gan_dir))]), file=sys.stderr)
        # 5. the generator, for its share; it stops at a checkpoint and the assessment goes on with it
        t0 = time.monotonic()
        if more > MIN_MORE_GAN_S or not (gan_dir / "generator.safetensors").is_file():
            overrides = [f"train.init_generator={args.init_generator}"] if args.init_generator else []
            result = train_generator(cfg, out / "manifest.csv", out, channels=channels,
                                     time_limit_minutes=max(more, 1.0) / 60, extra_overrides=overrides,
                                     pause_hint="the assessment goes on with the generator as it is; a call with "
                                                "a larger --budget trains it on from this checkpoint")
            call["generator_step"] = result.step
        stage("generator", t0)
        generator = str(gan_dir / "generator.safetensors")
    if finished and generator:
        sha = file_sha256(generator) if Path(generator).is_file() else None
        if sha:
            moved = _set_aside(out, sha)
            if moved:
                call["set_aside"] = moved
                print(f"assess: the generator changed; set aside {len(moved)} results made with the earlier one "
                      f"({out / 'superseded'}), rerun now", file=sys.stderr)
        # 6. the check, gan_light and the other seeds, seed by seed
        finished = classifiers(cfg.seeds, list(ASSESS_ARMS), generator)
    # 7. the report over everything finished (fewer seeds than asked: numbers, no verdict)
    t0 = time.monotonic()
    call["finished"] = bool(finished)
    call["ended"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results = None
    if done:
        gen_for_report = generator if generator and any(a.startswith("gan") for a, _ in done) else None
        arms = list(ASSESS_ARMS) if gen_for_report else list(BASELINE_ARMS)
        try:
            results = run_benchmark(_replace(cfg, report_only=True, arms=arms, generator=gen_for_report),
                                    command=command, extra={"assess": _summary(state, out)})
        except ValueError as exc:
            print(f"assess: no report yet ({exc})", file=sys.stderr)
    stage("report", t0)
    if results is not None:  # the report's own time is known only now: written once more with it
        from .report import report_markdown
        from .report_html import report_html, verdict_sentence
        from gan_augment._io import write_text

        results["assess"] = _summary(state, out)
        write_json(out / "results.json", results)
        md = report_markdown(results)
        write_text(out / "report.md", md)
        write_text(out / "report.html", report_html(results, md, out))
        print(f"\nassess: {verdict_sentence(results)}\nassess: report {out / 'report.html'} (and report.md)",
              file=sys.stderr)
    if not finished:
        print("assess: the budget is spent before every run finished; rerun with a larger --budget (same --out) to "
              "continue", file=sys.stderr)
    return 0


def _replace(cfg: BenchmarkConfig, **changes) -> BenchmarkConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


def _channels(cfg: BenchmarkConfig, manifest_path: Path) -> int:
    """``--channels auto`` resolved as the runner resolves it (1 when every training image is grey)."""
    from gan_augment.data import Manifest
    from gan_augment.data.decode import resolve_channels

    m = Manifest.read(manifest_path)
    return resolve_channels(cfg.channels, [m.paths[i] for i in m.indices("train")])


def _longest(runs: Path, estimate: float) -> float:
    """The next run's expected length: the longest finished one (training + tests), else the plan's estimate."""
    secs = [float(r.get("seconds", 0)) * 1.1 + 10 for r in _records(runs).values()]
    return max(secs) if secs else estimate


def _summary(state: dict, out: Path) -> dict:
    """What the report says of the assessment: budget, the plan, each call's stages, the generator's training."""
    stages: dict[str, float] = {}
    for c in state.get("calls", []):
        for k, v in c.get("stages", {}).items():
            stages[k] = stages.get(k, 0.0) + v
    gan = out / "gan"
    return {"data": state.get("data"), "budget_s": state.get("budget_s"), "epochs": state.get("epochs"),
            "plan": state.get("plan"), "plan_after_baselines": state.get("plan_after_baselines"),
            "stages_s": stages, "spent_s": sum(stages.values()), "calls": len(state.get("calls", [])),
            "generator_trained_s": _gan_done_s(gan), "generator_step": _gan_step(gan),
            "commands": [c.get("command") for c in state.get("calls", [])]}
