"""Throughput measurements for the speed benchmark (never used as timed unit tests)."""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .models import GeneratorBase

__all__ = ["loader_throughput", "sampling_throughput", "bare_gan_step_throughput", "trainer_log_throughput",
           "feature_throughput", "synchronize"]


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
                        device: str | torch.device = "cpu", warmup: int = 1, amp: bool = False) -> dict[str, Any]:
    """Generator images per second (uint8 output on the host, eval mode), after ``warmup`` untimed batches."""
    device = torch.device(device)
    generator = generator.to(device).eval()
    cls = 0 if generator.num_classes else None
    for _ in range(warmup):
        generator.sample(batch_size, cls, seed=0, batch_size=batch_size, device=device, amp=amp)
    synchronize(device)
    start = time.perf_counter()
    generator.sample(n, cls, seed=1, batch_size=batch_size, device=device, amp=amp)
    synchronize(device)
    elapsed = time.perf_counter() - start
    return {"images": n, "seconds": elapsed, "images_per_second": n / elapsed, "batch_size": batch_size,
            "resolution": generator.resolution, "device": str(device), "bf16": bool(amp and device.type == "cuda")}


def synchronize(device: str | torch.device) -> None:
    """Wait for queued CUDA work (timings must not end before the GPU does); a no-op on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_gan_step_throughput(G: torch.nn.Module, D: torch.nn.Module, loss, *, batch_size: int, n_dis: int,
                             steps: int, warmup: int = 2, amp: bool = True, channels_last: bool = True,
                             fused: bool | None = None) -> dict[str, Any]:
    """Real images/s of the plainest GAN loop over ``G`` and ``D``: random "real" batches already on the device,
    ``n_dis`` D updates (hinge/BCE/... from ``loss``) and one G update with D frozen, no augmentation, EMA, logging
    or data pipeline. The yardstick the trainer's overhead is measured against (same modules, batch, precision).
    """
    device = next(G.parameters()).device
    cuda = device.type == "cuda"
    fmt = torch.channels_last if cuda and channels_last else torch.contiguous_format
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and amp else contextlib.nullcontext()
    fused = cuda if fused is None else fused
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.999), **({"fused": True} if fused else {}))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.999), **({"fused": True} if fused else {}))
    k = getattr(G, "num_classes", 0)
    real = (torch.rand(batch_size, G.channels, G.resolution, G.resolution, device=device) * 2 - 1).contiguous(
        memory_format=fmt)
    y = torch.randint(0, k, (batch_size,), device=device) if k else None

    def step() -> None:
        for _ in range(n_dis):
            z = torch.randn(batch_size, G.z_dim, device=device)
            with torch.no_grad(), autocast:
                fake = G(z, y)
            with autocast:
                d_loss = loss.d_loss(D(real, y).float(), D(fake, y).float())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        z = torch.randn(batch_size, G.z_dim, device=device)
        with autocast:
            g_loss = loss.g_loss(D(G(z, y), y).float())
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)

    G.train()
    D.train()
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    elapsed = time.perf_counter() - start
    images = steps * batch_size * n_dis
    return {"steps": steps, "images": images, "seconds": elapsed, "images_per_second": images / elapsed}


def trainer_log_throughput(records: list[dict[str, Any]], *, skip: int = 1) -> dict[str, Any]:
    """Median of the trainer's logged img/s windows after the first ``skip`` (start-up) windows."""
    windows = [r["img_per_s"] for r in records[skip:]] or [r["img_per_s"] for r in records]
    if not windows:
        raise ValueError("the trainer logged no throughput windows")
    return {"windows": len(windows), "images_per_second": statistics.median(windows), "all_windows": windows}


@torch.no_grad()
def feature_throughput(extractor, *, n: int = 256, resolution: int = 256, batch_size: int = 64,
                       warmup: int = 1) -> dict[str, Any]:
    """Feature-extractor images/s on uint8 ``resolution`` images (resize to its input size included)."""
    images = torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8)
    for _ in range(warmup):
        extractor(images[:batch_size], batch_size=batch_size)
    synchronize(extractor.device)
    start = time.perf_counter()
    extractor(images, batch_size=batch_size)
    synchronize(extractor.device)
    elapsed = time.perf_counter() - start
    return {"images": n, "seconds": elapsed, "images_per_second": n / elapsed, "batch_size": batch_size,
            "extractor": extractor.label, "device": str(extractor.device)}
