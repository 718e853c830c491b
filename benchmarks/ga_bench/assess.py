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
import json
import math
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gan_augment._io import display_path, write_json
from gan_augment.pretrained import file_sha256

from .data_source import DEMO_DATA
from .protocol import BenchmarkConfig, GeneratorMismatch

__all__ = ["ASSESS_ARMS", "BASELINE_ARMS", "Recipe", "RECIPES", "parse_budget", "Speeds", "Plan", "BudgetTooSmall",
           "make_plan", "measure_classifier", "parser", "main", "assess"]

BASELINE_ARMS = ("aug", "aug_oversample", "aug_weighted")
ASSESS_ARMS = (*BASELINE_ARMS, "gan_light")  # the baselines that matter and the recommended GAN arm


@dataclass(frozen=True)
class Recipe:
    """What a device trains: the classifier's input size and the generator's config."""

    image_size: int
    gan_config: str
    batch_size: int
    gan_overrides: tuple[str, ...] = ()
    note: str = ""


RECIPES = {
    # the shipped generators' recipe (FastGAN-lite + projected D on Lite0), the cpu64 benchmark's classifier
    "cpu": Recipe(64, "configs/ham10000_64_cpu.yaml", 64, ("train.steps=100000", "train.checkpoint_every=100"),
                  "64 px: the recipe of the shipped CPU generators and of the cpu64 benchmark"),
    # the reference resolution; planned from a measurement on the GPU at hand
    "cuda": Recipe(256, "configs/ham10000_fastgan_256.yaml", 64, ("train.steps=100000", "train.checkpoint_every=250"),
                   "256 px: FastGAN + projected D, the resolution dermoscopy classifiers use"),
}

MAX_EPOCHS = 8  # the cpu64 protocol's epochs (its first run's best validation epoch was the 7th)
MIN_EPOCHS = 3
MIN_GAN_MINUTES = 10.0  # below this no generator of the recipe makes images worth testing
CLASSIFIER_SHARE = 0.5  # of the budget, at most, while a generator is trained (up to 0.7 to reach MIN_EPOCHS)
INCEPTION_COST = 150.0  # the generator check's Inception per image, in classifier inferences at 64 px (measured)
# a run beside the GAN arm (the synthetic test, a report per seed) against a seed-0 baseline's wall time: 110 s
# against 91 s in the demo's 2 h assessment (benchmarks/results/assess_demo_2h), which ran out of budget 3 runs early
# when the plan took them as equal
LATER_RUNS_COST = 1.25
RESERVE_S = 30.0  # the split, the report, and what is not measured (+ 3 % of the budget)


def parse_budget(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``45min``, ``600s`` or a number of minutes -> seconds."""
    s = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)(hours?|h|minutes?|min|m|seconds?|sec|s)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise argparse.ArgumentTypeError(f"--budget {text!r}: write it as 2h, 90m, 1h30m or 600s")
    unit = {"h": 3600, "m": 60, "s": 1}
    total = sum(float(n) * unit[u[0]] for n, u in parts)
    if total <= 0:
        raise argparse.ArgumentTypeError(f"--budget {text!r} must be positive")
    return total


def _fmt_s(s: float) -> str:
    s = max(0.0, float(s))
    if s >= 3600:
        return f"{int(s // 3600)} h {int(round(s % 3600 / 60)):02d} min"
    if s >= 60:
        return f"{s / 60:.0f} min" if s >= 600 else f"{s / 60:.1f} min"
    return f"{s:.0f} s"


@dataclass
class Speeds:
    """Images per second of the classifier on this machine (training steps; inference)."""

    train_ips: float
    eval_ips: float
    device: str = "cpu"
    source: str = "measured"  # measured (a few steps) | runs (the finished runs' own times)


@dataclass
class Plan:
    """How the budget is spent, in seconds of wall time."""

    budget_s: float
    epochs: int
    runs: int  # classifier runs still to train
    run_s: float  # one classifier run, estimated
    check_s: float
    gan_s: float  # the generator's total share (0: given, nothing trained)
    reserve_s: float
    spent_s: float = 0.0  # by earlier calls on the same --out
    notes: list[str] = field(default_factory=list)

    @property
    def classifier_s(self) -> float:
        return self.runs * self.run_s

    @property
    def total_s(self) -> float:
        return self.spent_s + self.classifier_s + self.check_s + self.gan_s + self.reserve_s

    def lines(self, gan_done_s: float = 0.0, gan_given: str | None = None) -> list[str]:
        rows = [f"budget {_fmt_s(self.budget_s)}" + (f", of which {_fmt_s(self.spent_s)} spent so far"
                                                    if self.spent_s else ""),
                f"  classifier runs   {self.runs:>3} x {_fmt_s(self.run_s):>9} = {_fmt_s(self.classifier_s):>10}  "
                f"({self.epochs} epochs each)"]
        if gan_given:
            rows.append(f"  generator              given: {gan_given}")
        else:
            more = max(self.gan_s - gan_done_s, 0.0)
            rows.append(f"  generator              {_fmt_s(self.gan_s):>10}  (trained so far {_fmt_s(gan_done_s)}; "
                        f"{_fmt_s(more)} to go)")
        rows += [f"  generator check        {_fmt_s(self.check_s):>10}",
                 f"  split, report, margin  {_fmt_s(self.reserve_s):>10}",
                 *[f"  note: {n}" for n in self.notes]]
        return rows


class BudgetTooSmall(ValueError):
    """The budget cannot hold the smallest useful assessment; the message says what would."""


def run_seconds(epochs: int, n_train: int, n_val: int, n_test: int, n_synthetic_test: int, speeds: Speeds) -> float:
    """One classifier run: ``epochs`` of training and validation, the test, the synthetic test, model set-up."""
    return (epochs * (n_train / speeds.train_ips + n_val / speeds.eval_ips)
            + (n_test + n_synthetic_test) / speeds.eval_ips + 5.0)


def make_plan(budget_s: float, *, n_train: int, n_val: int, n_test: int, n_classes: int, speeds: Speeds,
              runs: int, train_gan: bool, check_images: int, gan_done_s: float = 0.0, spent_s: float = 0.0,
              epochs: int | None = None, synthetic_test_per_class: int = 50, min_gan_s: float = MIN_GAN_MINUTES * 60,
              max_epochs: int = MAX_EPOCHS, min_epochs: int = MIN_EPOCHS, observed_run_s: float | None = None,
              max_gan_s: float | None = None) -> Plan:
    """Split ``budget_s`` (minus ``spent_s``) between ``runs`` classifier runs and the generator.

    The classifier runs take the most epochs (``min_epochs`` .. ``max_epochs``) whose runs fit in
    :data:`CLASSIFIER_SHARE` of what is left (up to 0.7 of it to reach ``min_epochs``) - or all of it when no
    generator is trained; ``epochs`` given (a continued assessment) is kept. The generator gets the rest, at least
    ``min_gan_s`` in all (``gan_done_s`` of it already trained). ``observed_run_s``: the wall time finished runs of
    these epochs took here (replaces the estimate from ``speeds``); ``max_gan_s`` caps the generator's share (what
    it leaves is not spent). :class:`BudgetTooSmall` names the budget that would do."""
    min_epochs = min(min_epochs, max_epochs)
    left = budget_s - spent_s
    syn = n_classes * synthetic_test_per_class if train_gan or check_images else 0
    # the check runs Inception at 299 px: ~150x slower per image than the classifier's inference at 64 px (the demo's
    # 2 h assessment: 630 images checked in 2 min at 742 img/s of classifier inference; benchmarks/results/
    # assess_demo_2h)
    check_s = check_images / max(speeds.eval_ips / INCEPTION_COST, 1e-6) + 20.0 if check_images else 0.0
    reserve = RESERVE_S + 0.03 * budget_s
    fixed = check_s + reserve
    need_gan = max(min_gan_s - gan_done_s, 0.0) if train_gan else 0.0

    def runs_s(e: int) -> float:
        if observed_run_s is not None and e == epochs:  # runs beside the GAN arm also test generated images and
            return runs * observed_run_s * LATER_RUNS_COST  # report their seed: slower than the first baselines
        return runs * run_seconds(e, n_train, n_val, n_test, syn, speeds)

    if epochs is None:
        fits = [e for e in range(max_epochs, min_epochs - 1, -1)
                if runs_s(e) <= (CLASSIFIER_SHARE * (left - fixed) if train_gan else left - fixed)]
        if not fits and train_gan:
            fits = [e for e in range(max_epochs, min_epochs - 1, -1)
                    if runs_s(e) <= 0.7 * (left - fixed) and left - fixed - runs_s(e) >= need_gan]
        if not fits:
            smallest = spent_s + runs_s(min_epochs) + fixed + need_gan
            smallest = max(smallest, spent_s + (runs_s(min_epochs) + fixed) / 0.7) if train_gan else smallest
            what = (f"{runs} classifier runs of {min_epochs} epochs ({_fmt_s(runs_s(min_epochs))} on this machine)"
                    + (f" and {_fmt_s(min_gan_s)} of generator training" if train_gan else ""))
            raise BudgetTooSmall(f"a budget of {_fmt_s(budget_s)} cannot hold {what}: give --budget "
                                 f"{math.ceil(smallest / 60 / 5) * 5:.0f}m or more"
                                 + (", or a trained generator (--generator)" if train_gan else ""))
        epochs = fits[0]
    classifier = runs_s(epochs)
    gan_s = max(left - fixed - classifier, 0.0) + gan_done_s if train_gan else 0.0
    if max_gan_s is not None and gan_s > max_gan_s:
        gan_s = max(max_gan_s, gan_done_s)
    plan = Plan(budget_s=budget_s, epochs=epochs, runs=runs, run_s=classifier / runs if runs else 0.0,
                check_s=check_s, gan_s=gan_s, reserve_s=reserve, spent_s=spent_s)
    if epochs < max_epochs:
        plan.notes.append(f"{epochs} epochs, fewer than the protocol's {max_epochs}: the baselines may be "
                          "under-trained; a larger --budget gives them more")
    if train_gan and gan_s < need_gan + gan_done_s:
        plan.notes.append(f"the generator gets {_fmt_s(gan_s)}, less than the {_fmt_s(min_gan_s)} it needs")
    return plan


def measure_classifier(cfg: BenchmarkConfig, n_classes: int, channels: int, device, *, steps: int = 6,
                       warmup: int = 2) -> Speeds:
    """Time a few training steps and inference batches of the benchmark's classifier on random images of its size
    (no data loading: the first real runs correct the estimate)."""
    import torch

    from classifier import create_classifier

    torch.manual_seed(0)
    model, _ = create_classifier(cfg.classifier, num_classes=n_classes, pretrained="auto",
                                 allow_download=cfg.allow_download, in_chans=channels)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(cfg.batch_size, channels, cfg.image_size, cfg.image_size, device=device)
    y = torch.randint(0, n_classes, (cfg.batch_size,), device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for i in range(warmup + steps):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    sync()
    train_ips = steps * cfg.batch_size / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
    eval_ips = steps * cfg.batch_size / (time.perf_counter() - t0)
    # data loading and augmentation share the CPU with the model: the runs measured ~20 % slower than the steps
    factor = 0.8 if device.type == "cpu" else 0.9
    return Speeds(train_ips=train_ips * factor, eval_ips=eval_ips * factor, device=str(device))


# --------------------------------------------------------------------------------------------------- the state file
def _load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not readable ({exc}); delete it to start the assessment over") from None


def _records(runs: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for p in runs.glob("*_seed*.json"):
        m = re.fullmatch(r"(.+)_seed(\d+)", p.stem)
        if m:
            out[(m[1], int(m[2]))] = json.loads(p.read_text())
    return out


def _gan_done_s(gan_dir: Path) -> float:
    """Wall seconds of training loop the generator run has behind it (its log's last record)."""
    log = gan_dir / "log.jsonl"
    if not log.is_file():
        return 0.0
    last = [ln for ln in log.read_text().splitlines() if ln.strip()]
    return float(json.loads(last[-1]).get("elapsed_s", 0.0)) if last else 0.0


def _gan_step(gan_dir: Path) -> int:
    summary = gan_dir / "train_summary.json"
    return int(json.loads(summary.read_text()).get("step", 0)) if summary.is_file() else 0


def _set_aside(out: Path, sha: str) -> list[str]:
    """Move the GAN arm's runs and the generator check made with another generator than ``sha`` to
    ``OUT/superseded/<their sha>/`` (kept, not deleted) so that they are rerun with the new one."""
    moved = []
    for record in sorted((out / "runs").glob("gan*_seed*.json")):
        used = (json.loads(record.read_text()).get("generator") or {}).get("sha256")
        if used and used != sha:
            dest = out / "superseded" / used[:12]
            dest.mkdir(parents=True, exist_ok=True)
            for f in record.parent.glob(record.stem + "*"):
                shutil.move(str(f), dest / f.name)
            moved.append(record.stem)
    check = out / "generator_check" / "metrics.json"
    if check.is_file():
        used = (json.loads(check.read_text()).get("generator") or {}).get("sha256")
        if used and used != sha:
            dest = out / "superseded" / used[:12]
            dest.mkdir(parents=True, exist_ok=True)
            shutil.move(str(out / "generator_check"), dest / "generator_check")
            moved.append("generator_check")
    return moved


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
        if more > 30 or not (gan_dir / "generator.safetensors").is_file():
            overrides = [f"train.init_generator={args.init_generator}"] if args.init_generator else []
            result = train_generator(cfg, out / "manifest.csv", out, channels=channels,
                                     time_limit_minutes=max(more, 1.0) / 60, extra_overrides=overrides)
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
