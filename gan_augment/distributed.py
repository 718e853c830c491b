"""torchrun support shared by the GAN trainer and the classifier harness.

``torchrun --nproc_per_node N ...`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; :func:`init_from_env` joins the
process group (NCCL on CUDA, gloo on CPU) and picks ``cuda:LOCAL_RANK``. Without those variables everything here
is a no-op for a single process, so library code calls these helpers unconditionally.

The GAN trainer all-reduces gradients itself (:func:`all_reduce_gradients`) instead of wrapping G and D in
``DistributedDataParallel``: a GAN step runs D twice before one backward, freezes D while G learns through it and
takes double-backward penalties (R1, WGAN-GP), which DDP's reducer does not support. Averaging the flattened
gradients after ``backward()`` is what NVIDIA's StyleGAN2-ADA / StyleGAN3 training loops do for the same reason.
The classifier is a plain forward/backward and uses DDP.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

__all__ = ["DistInfo", "init_from_env", "get_info", "is_main", "barrier", "main_first", "all_reduce_gradients",
           "average_buffers", "all_reduce_mean", "broadcast_flag", "shutdown", "check_consistent", "shard_bounds",
           "shard_length", "shard_order", "ShardedSampler", "draw_for_shard"]


@dataclass(frozen=True)
class DistInfo:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def get_info() -> DistInfo:
    """World size and ranks of the current process group (1 / 0 / 0 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_world_size(), dist.get_rank(), _env_int("LOCAL_RANK", dist.get_rank()))
    return DistInfo(1, 0, 0)


def init_from_env(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` and return it with this process's device.

    ``device`` is ``"auto"``, ``"cpu"`` or ``"cuda"``/``"cuda:K"``; under torchrun a CUDA device becomes
    ``cuda:LOCAL_RANK``. Calling it twice is harmless.
    """
    world = _env_int("WORLD_SIZE", 1)
    want_cuda = (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'auto' or 'cpu'")
    if world <= 1:
        return DistInfo(), torch.device(device if device != "auto" else ("cuda" if want_cuda else "cpu"))
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if want_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo", timeout=datetime.timedelta(minutes=30),
                                **({"device_id": dev} if want_cuda else {}))
    return DistInfo(world, rank, local_rank), dev


def is_main() -> bool:
    """Rank 0, or the only process. After :func:`shutdown`, falls back to the ``RANK`` variable."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def shutdown() -> None:
    """Leave the process group (end of a torchrun job); a no-op when not distributed.

    On a clean exit every rank first meets at a barrier, so none tears its Gloo/NCCL connections down while
    another still has collective work in flight (seen once on 2 loaded CPU cores as a Gloo worker thread
    aborting, "terminate called without an active exception"). Called from a ``finally`` while an exception
    propagates it skips the barrier: the other ranks may be waiting in another collective, and a barrier
    would hang until the timeout instead of letting torchrun stop the job."""
    if dist.is_available() and dist.is_initialized():
        if sys.exc_info()[0] is None:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if get_info().enabled:
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first (it may write files), then on the other ranks."""
    info = get_info()
    if info.enabled and not info.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if info.enabled and info.is_main:
            dist.barrier()


def _flat_all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Average ``tensors`` in place across ranks with one collective per dtype."""
    world = dist.get_world_size()
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def all_reduce_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` across ranks (a parameter without a gradient counts as zero)."""
    if not get_info().enabled:
        return
    grads = []
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    if grads:
        _flat_all_reduce_mean(grads)


def average_buffers(*modules: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics, spectral-norm vectors) across ranks."""
    if not get_info().enabled:
        return
    buffers = [b for m in modules if m is not None for b in m.buffers() if b.is_floating_point()]
    if buffers:
        _flat_all_reduce_mean(buffers)


def all_reduce_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average a dict of scalar tensors across ranks (returns new tensors)."""
    if not get_info().enabled or not values:
        return values
    keys = list(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    return {k: stacked[i] for i, k in enumerate(keys)}


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (so all ranks stop together)."""
    if not get_info().enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def check_consistent(module: nn.Module, name: str) -> None:
    """Raise if ``module``'s parameters differ between ranks (a broken all-reduce would let them drift)."""
    info = get_info()
    if not info.enabled:
        return
    local = torch.stack([p.detach().double().sum() for p in module.parameters()]
                        + [b.detach().double().sum() for b in module.buffers() if b.is_floating_point()])
    lo, hi = local.clone(), local.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        worst = int((hi - lo).abs().argmax())
        raise RuntimeError(f"{name} differs between ranks (tensor #{worst}: {lo[worst]:.6g} vs {hi[worst]:.6g}); "
                           "the ranks ran different code or data")


def shard_bounds(n_global: int, info: DistInfo | None = None) -> tuple[int, int]:
    """``[start, stop)`` of this rank's contiguous share of a global batch of ``n_global`` items."""
    info = info or get_info()
    if n_global % info.world_size:
        raise ValueError(f"a global batch of {n_global} does not split over {info.world_size} processes; "
                         "choose a batch size divisible by the number of processes")
    per = n_global // info.world_size
    return info.rank * per, (info.rank + 1) * per


def draw_for_shard(fn, n: int, tail: tuple[int, ...], *args, shard: tuple[int, int], generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """``fn(*args, (n * world, *tail))`` drawn for the whole global batch, then rank ``rank``'s ``n`` rows, for
    ``shard=(rank, world)``: every rank consumes the random stream one process would, so sharding a batch does not
    change its latents or augmentation draws. ``fn`` is ``torch.rand`` / ``torch.randn`` / ``torch.randint``."""
    rank, world = shard
    out = fn(*args, (n * world, *tail), generator=generator, device=device)
    return out[rank * n:(rank + 1) * n] if world > 1 else out


class ShardedSampler(Sampler[int]):
    """Shard any seeded sampler across ranks, like ``DistributedSampler`` does for a plain dataset.

    Every rank iterates the same ``base`` sampler (so its randomness must come from a seed or a seeded generator,
    never the global RNG, which differs between ranks), pads the order to a multiple of ``num_replicas`` by
    repeating its head, and keeps every ``num_replicas``-th index from ``rank``: the ranks see disjoint
    shares of what one process would see, equally many each. ``set_epoch`` is passed on to ``base``.
    """

    def __init__(self, base: Sampler[int], *, num_replicas: int | None = None, rank: int | None = None):
        info = get_info()
        self.base = base
        self.num_replicas = info.world_size if num_replicas is None else num_replicas
        self.rank = info.rank if rank is None else rank
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} out of range for {self.num_replicas} replicas")

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return shard_length(len(self.base), self.num_replicas)

    def __iter__(self):
        return iter(shard_order(list(self.base), self.num_replicas, self.rank))


def shard_length(n: int, num_replicas: int, drop_last: bool = False) -> int:
    """Items per rank when ``n`` items are sharded (padded up, or the tail dropped with ``drop_last``)."""
    return n // num_replicas if drop_last else math.ceil(n / num_replicas)


def shard_order(order: list[int], num_replicas: int, rank: int, drop_last: bool = False) -> list[int]:
    """Rank ``rank``'s share of ``order``: padded by repeating its head (or truncated), then every
    ``num_replicas``-th item from ``rank`` - what ``DistributedSampler`` does to its permutation."""
    total = shard_length(len(order), num_replicas, drop_last) * num_replicas
    if order and len(order) < total:  # repeat as often as needed (an order shorter than half the ranks too)
        order = order * math.ceil(total / len(order))
    return order[:total][rank::num_replicas]
