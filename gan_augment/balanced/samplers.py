"""Real-image oversampling to a strategy's targets, on one process or sharded across DDP ranks."""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..distributed import shard_length, shard_order
from .strategy import Strategy, resolve_class_names, resolve_labels, sampling_targets

__all__ = ["MinorityOversampler", "DistributedMinorityOversampler"]


def _oversample_indices(labels: np.ndarray, targets: Mapping[int, int], num_samples: int | None, replacement: bool,
                        generator: torch.Generator) -> torch.Tensor:
    if replacement:
        counts = Counter(int(y) for y in labels)
        weights = torch.tensor([targets[int(y)] / counts[int(y)] for y in labels], dtype=torch.double)
        n = num_samples if num_samples is not None else sum(targets.values())
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    # exact counts: every real image once, then extra copies drawn without replacement (cycling) per class
    parts = []
    for c, target in targets.items():
        idx = torch.from_numpy(np.flatnonzero(labels == c))
        reps = [idx]
        extra = target - len(idx)
        while extra > 0:
            perm = idx[torch.randperm(len(idx), generator=generator)][:extra]
            reps.append(perm)
            extra -= len(perm)
        parts.append(torch.cat(reps))
    out = torch.cat(parts)
    out = out[torch.randperm(len(out), generator=generator)]
    if num_samples is not None:
        out = out[:num_samples] if num_samples <= len(out) else \
            torch.cat([out, out[torch.randint(len(out), (num_samples - len(out),), generator=generator)]])
    return out


class MinorityOversampler(Sampler[int]):
    """Real-only oversampling to the same targets as :class:`GANBalancedDataset` (the benchmark's baseline).

    ``replacement=True`` draws ``num_samples`` (default: sum of targets) indices with probability
    proportional to target / real count, so per-class counts match the targets in expectation;
    ``replacement=False`` gives the exact counts (each image once, plus extra copies spread evenly).
    ``labels`` may be a sequence or a dataset (labels found as in :func:`resolve_labels`). Randomness comes
    from ``generator`` if given, else from ``seed`` and :meth:`set_epoch` (never the global RNG).

    Example:
        >>> labels = [0] * 6 + [1] * 2
        >>> sampler = MinorityOversampler(labels, strategy="not majority", replacement=False)
        >>> sorted(Counter(labels[i] for i in sampler).items())
        [(0, 6), (1, 6)]
    """

    def __init__(self, labels: Sequence[int] | Dataset, strategy: Strategy = "not majority", *,
                 num_samples: int | None = None, replacement: bool = True, generator: torch.Generator | None = None,
                 seed: int = 0, classes: Sequence[str] | None = None):
        if isinstance(labels, Dataset):
            ds = labels
            labels = resolve_labels(ds)
            classes = classes or resolve_class_names(ds, None, int(labels.max()) + 1)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) == 0:
            raise ValueError("no labels")
        names = list(classes) if classes is not None else [str(i) for i in range(int(self.labels.max()) + 1)]
        self.targets = sampling_targets(self.labels, strategy, names)
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples, self.replacement, self.generator, self.seed = num_samples, replacement, generator, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        if self.generator is not None:
            return self.generator
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return g

    def indices(self) -> torch.Tensor:
        return _oversample_indices(self.labels, self.targets, self.num_samples, self.replacement, self._generator())

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples if self.num_samples is not None else sum(self.targets.values())


class DistributedMinorityOversampler(MinorityOversampler):
    """:class:`MinorityOversampler` sharded across DDP ranks like ``DistributedSampler``.

    Every rank draws the same oversampled list from ``(seed, epoch)`` (call :meth:`set_epoch` each epoch),
    pads it to a multiple of ``num_replicas`` (or drops the tail with ``drop_last``) and takes every
    ``num_replicas``-th index starting at ``rank``.
    """

    def __init__(self, labels: Sequence[int] | Dataset, strategy: Strategy = "not majority", *,
                 num_replicas: int | None = None, rank: int | None = None, seed: int = 0, drop_last: bool = False,
                 replacement: bool = True, num_samples: int | None = None, classes: Sequence[str] | None = None):
        super().__init__(labels, strategy, num_samples=num_samples, replacement=replacement, seed=seed,
                         classes=classes)
        if num_replicas is None or rank is None:
            if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
                raise ValueError("pass num_replicas and rank, or initialise torch.distributed first")
            num_replicas = num_replicas or torch.distributed.get_world_size()
            rank = torch.distributed.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} replicas")
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        self.per_rank = shard_length(super().__len__(), num_replicas, drop_last)

    def __iter__(self):
        return iter(shard_order(self.indices().tolist(), self.num_replicas, self.rank, self.drop_last))

    def __len__(self) -> int:
        return self.per_rank

