"""The budget plan of ``assess.py``: recipes per device, budget parsing, the classifier's measured speed, and how a
budget splits between the classifier runs and the generator (:func:`make_plan`)."""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import BenchmarkConfig

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


