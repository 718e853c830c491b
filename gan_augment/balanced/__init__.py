"""Drop-in class balancing for a user's training loop: GAN images for rare classes, or real oversampling.

    from gan_augment import GANBalancedDataset, MinorityOversampler
    train_ds = GANBalancedDataset(real_ds, "generator.safetensors", strategy="not majority", transform=albu)
    loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=4)

``strategy`` reads like imbalanced-learn's ``sampling_strategy`` for over-sampling: ``"not majority"``
(default), ``"minority"``, ``"not minority"``, ``"all"``, a float ratio, a dict ``{class: target count}`` or a
callable ``labels -> dict`` - e.g. :func:`synthetic_share`, the same share of generated images in every class, the
largest included, so that "looks generated" cannot stand for "a rare class". Targets are counts *after* balancing;
classes already at or above their target get nothing. Labels are discovered like torchsampler does, but ``Subset``
is read through its indices (torchsampler reads the parent's labels, a known bug).
"""

from .dataset import GANBalancedDataset
from .feedback import FeedbackTopK
from .samplers import DistributedMinorityOversampler, MinorityOversampler
from .soft import BoundarySamples, MixupSamples, SoftTargets, boundary_pairs, teacher_probabilities
from .strategy import (STRATEGY_NAMES, resolve_class_names, resolve_labels, sampling_targets, synthetic_counts,
                       synthetic_share)

__all__ = [
    "GANBalancedDataset",
    "MinorityOversampler",
    "SoftTargets",
    "teacher_probabilities",
    "BoundarySamples",
    "MixupSamples",
    "FeedbackTopK",
    "boundary_pairs",
    "DistributedMinorityOversampler",
    "STRATEGY_NAMES",
    "resolve_labels",
    "resolve_class_names",
    "sampling_targets",
    "synthetic_counts",
    "synthetic_share",
]
