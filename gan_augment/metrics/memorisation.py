"""Did the GAN copy training images? A nearest-neighbour test in feature space.

For each generated image: the distance to its nearest *training* image. For each held-out real image (never
seen by the GAN): the same distance. A generator that reproduces its training set puts its samples closer to
the training images than fresh real images are (Meehan et al. 2020, data-copying test). We report, overall and
per class:

- the one-sided Mann-Whitney U test of "generated distances are smaller than held-out distances" (scipy);
- the fraction of generated images closer to a training image than the 1st percentile of held-out distances
  (near-copies; about 1 % is expected by chance);
- ``flagged``: p < ``alpha`` and that fraction > ``copy_fraction``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from .reference import nearest_indices

__all__ = ["memorisation_test"]


def _block(d_gen: np.ndarray, d_held: np.ndarray, alpha: float, copy_fraction: float) -> dict:
    if len(d_gen) < 2 or len(d_held) < 2:
        return {"n_generated": int(len(d_gen)), "n_heldout": int(len(d_held)), "skipped": "fewer than 2 images"}
    p1 = float(np.percentile(d_held, 1))
    u = mannwhitneyu(d_gen, d_held, alternative="less")
    frac = float(np.mean(d_gen < p1))
    return {
        "n_generated": int(len(d_gen)), "n_heldout": int(len(d_held)),
        "median_nn_distance_generated": float(np.median(d_gen)),
        "median_nn_distance_heldout": float(np.median(d_held)),
        "mannwhitney_u": float(u.statistic), "p_value": float(u.pvalue),
        "heldout_p1_distance": p1, "fraction_below_heldout_p1": frac,
        "flagged": bool(u.pvalue < alpha and frac > copy_fraction),
    }


def memorisation_test(generated: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor, *,
                      generated_labels: Sequence[int] | None = None, train_labels: Sequence[int] | None = None,
                      heldout_labels: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                      alpha: float = 0.01, copy_fraction: float = 0.05) -> dict:
    """Nearest-training-image distances of generated vs held-out images (features as (N, D) tensors).

    With labels, each class is also tested against the training images *of that class*. Returns the overall
    and per-class results and, under ``"pairs"``, the (generated index, training index, distance) of every
    generated image for drawing the closest pairs.
    """
    nn_idx, d_gen = nearest_indices(generated, train)
    _, d_held = nearest_indices(heldout, train)
    out = {"overall": _block(d_gen.numpy(), d_held.numpy(), alpha, copy_fraction),
           "pairs": {"generated": list(range(len(generated))), "train": nn_idx.tolist(), "distance": d_gen.tolist()},
           "alpha": alpha, "copy_fraction": copy_fraction}
    if generated_labels is not None and train_labels is not None and heldout_labels is not None:
        gl, tl, hl = (np.asarray(v) for v in (generated_labels, train_labels, heldout_labels))
        names = list(class_names) if class_names is not None else None
        per_class = {}
        for c in sorted(set(gl.tolist())):
            tm = torch.from_numpy(tl == c)
            if tm.sum() < 1:
                continue
            _, dg = nearest_indices(generated[torch.from_numpy(gl == c)], train[tm])
            _, dh = nearest_indices(heldout[torch.from_numpy(hl == c)], train[tm]) if (hl == c).any() else \
                (None, torch.zeros(0))
            per_class[names[c] if names else str(c)] = _block(dg.numpy(), dh.numpy(), alpha, copy_fraction)
        out["per_class"] = per_class
    return out
