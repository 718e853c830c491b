"""Run by the torchrun tests in test_distributed.py (one process per rank); saves each rank's weights.

usage: python -m torch.distributed.run --standalone --nproc_per_node N tests/_dist_worker.py gan CONFIG.json OUT_DIR
       python -m torch.distributed.run --standalone --nproc_per_node N tests/_dist_worker.py classifier OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from gan_augment import distributed


def _gan(config_path: str, out: str) -> None:
    from gan_augment.training import Trainer, config_from_dict

    cfg = config_from_dict(json.loads(Path(config_path).read_text()))
    trainer = Trainer(cfg)
    trainer.fit()
    state = {"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "G_ema": trainer.ema.module.state_dict()}
    torch.save(state, Path(out) / f"rank{trainer.dist.rank}.pt")


def classifier_case(out: str | None = None) -> dict:
    """A small BatchNorm-free CNN fitted for 2 epochs on fixed random data, sharded when under torchrun."""
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    from classifier.engine import FitConfig, fit
    from gan_augment.distributed import ShardedSampler, get_info, init_from_env, shard_bounds

    info, _ = init_from_env("cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 16, 16, generator=g)
    y = torch.arange(48) % 3
    x[y == 1, 0] += 1.0  # learnable signal
    train = TensorDataset(x[:32], y[:32])
    val = TensorDataset(x[32:], y[32:])
    sampler = RandomSampler(train, generator=torch.Generator().manual_seed(1))
    batch = 8
    if info.enabled:
        sampler = ShardedSampler(sampler)
        lo, hi = shard_bounds(batch)
        batch = hi - lo
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 3))
    cfg = FitConfig(epochs=3, lr=3e-2, warmup_epochs=0.5, device="cpu", progress=False)
    model, result = fit(model, DataLoader(train, batch_size=batch, sampler=sampler, drop_last=True),
                        DataLoader(val, batch_size=16), ["a", "b", "c"], cfg)
    state = {"model": model.state_dict(), "best_epoch": result.best_epoch,
             "history": [h["train_loss"] for h in result.history]}
    if out is not None:
        torch.save(state, Path(out) / f"rank{get_info().rank}.pt")
    return state


def main() -> None:
    mode, *args = sys.argv[1:]
    try:
        if mode == "gan":
            _gan(*args)
        elif mode == "classifier":
            classifier_case(*args)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
