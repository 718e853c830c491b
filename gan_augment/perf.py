"""Throughput measurements for the speed benchmark (never used as timed unit tests)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .models import GeneratorBase

__all__ = ["loader_throughput", "sampling_throughput"]


def _collate_count(batch: list) -> int:
    # Stack like the default collate would, so the measurement includes building the batch tensor.
    images = [b[0] for b in batch]
    if isinstance(images[0], torch.Tensor):
        torch.stack(images)
    return len(batch)


def loader_throughput(dataset: Dataset, *, batch_size: int = 64, num_workers: int = 2, seed: int = 0,
                      max_items: int | None = None) -> dict[str, Any]:
    """Images per second of one shuffled epoch (or ``max_items``) through a DataLoader."""
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, generator=g,
                        collate_fn=_collate_count)
    n, start = 0, time.perf_counter()
    for count in loader:
        n += count
        if max_items is not None and n >= max_items:
            break
    elapsed = time.perf_counter() - start
    return {"images": n, "seconds": elapsed, "images_per_second": n / elapsed}


@torch.no_grad()
def sampling_throughput(generator: GeneratorBase, *, n: int = 256, batch_size: int = 32,
                        device: str | torch.device = "cpu", warmup: int = 1) -> dict[str, Any]:
    """Generator images per second (uint8 output, eval mode), after ``warmup`` untimed batches."""
    device = torch.device(device)
    generator = generator.to(device).eval()
    cls = 0 if generator.num_classes else None
    for _ in range(warmup):
        generator.sample(batch_size, cls, seed=0, batch_size=batch_size, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    generator.sample(n, cls, seed=1, batch_size=batch_size, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    return {"images": n, "seconds": elapsed, "images_per_second": n / elapsed, "batch_size": batch_size,
            "resolution": generator.resolution, "device": str(device)}
