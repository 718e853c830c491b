"""Train a GAN run for a budget of its training loop's own CPU time, resumably (the recipe study and the A/B)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["Paused", "RUN_FILES", "collect_run", "cpu_done", "pausable", "train_for_cpu"]


class Paused(Exception):
    """The wall-clock limit was reached; rerun the same command to continue."""


def cpu_done(run_dir: Path) -> float:
    """CPU seconds the run's training loop has used so far (0 before its first summary)."""
    summary = run_dir / "train_summary.json"
    return float(json.loads(summary.read_text()).get("cpu_s_total", 0.0)) if summary.is_file() else 0.0


def train_for_cpu(base: Path, overrides: list[str], run_dir: Path, cpu_minutes: float, deadline: float | None,
                  name: str | None = None) -> bool:
    """Train (or resume from its checkpoint) the run of ``base`` + ``overrides`` in ``run_dir`` until its loop has
    used ``cpu_minutes`` of CPU time (``train.cpu_time_limit_minutes``); a run folder without a checkpoint starts
    over. ``deadline`` (a ``time.monotonic()`` value) pauses it cleanly a minute before: :class:`Paused` when
    the budget is not yet used. Returns False when it already had been (nothing trained)."""
    from gan_augment.training import Trainer, load_config

    name = name or run_dir.name
    if cpu_done(run_dir) >= cpu_minutes * 60:
        return False
    resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("ckpt_*.pt"))
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    sets = [*overrides, f"out={run_dir}", f"train.cpu_time_limit_minutes={cpu_minutes}"]
    if deadline is not None:
        left = (deadline - time.monotonic()) / 60
        if left < 2:
            raise Paused(f"{name}: no time left before the limit")
        sets.append(f"train.time_limit_minutes={left - 1:.2f}")
    trainer = Trainer(load_config(base, sets), resume=resume)
    trainer.fit()
    if trainer.cpu_s < cpu_minutes * 60:
        raise Paused(f"{name}: paused at {trainer.cpu_s / 60:.1f} of {cpu_minutes:g} CPU-minutes (wall-clock limit)")
    return True


@contextmanager
def pausable(record: dict, tool: str) -> Iterator[None]:
    """A study's loop: a :class:`Paused` inside ends it cleanly, noted in ``record["paused"]`` (and on stderr) for
    the report; a loop that ran through clears an earlier note."""
    try:
        yield
    except Paused as exc:
        print(f"{tool}: {exc}; rerun the same command to continue", file=sys.stderr)
        record["paused"] = str(exc)
    else:
        record.pop("paused", None)


RUN_FILES = ("config.yaml", "log.jsonl", "loss_curves.png", "samples_per_class.jpg", "train_summary.json")


def collect_run(run_dir: Path, dest: Path, evaluations: dict[str, tuple[str, ...]]) -> None:
    """Copy what is committed of a GAN run into ``dest``: its :data:`RUN_FILES` and, of each evaluation folder
    named in ``evaluations`` (a folder of ``run_dir``), the files listed for it; big grids as palette PNGs."""
    from gan_augment.plots import compact_pngs

    dest.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, dest / name)
    for folder, names in evaluations.items():
        (dest / folder).mkdir(exist_ok=True)
        for name in names:
            if (run_dir / folder / name).is_file():
                shutil.copy2(run_dir / folder / name, dest / folder / name)
    compact_pngs(dest, max_bytes=300_000)
