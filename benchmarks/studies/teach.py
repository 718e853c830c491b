"""The regimes study's mechanisms (issue #43, item 3): generated images used as soft or boundary examples, each arm
beside the control that isolates what its generated images add (``gan_augment.balanced.soft``).

- ``gan_distill``: ``gan_light``'s set (``distill_set`` "matched": ``gan_matched``'s, the few-shot slice's, where every
  class is as large as the largest and ``gan_light`` adds no image), its synthetic items labelled ``distill_hard_weight * one-hot + (1 -
  distill_hard_weight) * softmax(teacher / distill_temperature)``; the teacher is the real-trained judge (``aug``
  seed 0). Control ``real_distill``: the same set with real images of the same class in the synthetic items' places
  (seeded draws), labelled by the same teacher the same way (self-distillation).
- ``gan_boundary``: ``aug_oversample``'s images plus ``boundary_rate`` x as many generated between two classes
  (class-balanced first class, uniform second, its weight in [0, 0.5]), labelled with that mix. Control
  ``real_mixup``: the same pairs, weights and label rule, each item a mix of two real training images.

Every arm draws ``aug_oversample``'s number of images per epoch, class-balanced over each item's main class.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from classifier import build_transform
from ga_bench.protocol import ArmSpec, known_arms, register_arm
from gan_augment import MinorityOversampler
from gan_augment.balanced import (BoundarySamples, GANBalancedDataset, MixupSamples, SoftTargets, synthetic_share,
                                  teacher_probabilities)
from gan_augment.classifier_file import load_classifier

__all__ = ["TEACH_ARMS", "CONTROLS"]

CONTROLS = {"gan_distill": "real_distill", "gan_boundary": "real_mixup"}  # mechanism -> its control


class _RealInSlots(Dataset):
    """``balanced``'s layout (real items, then one item per synthetic slot) with a real image of the slot's class in
    each synthetic slot (seeded draw)."""

    def __init__(self, balanced: GANBalancedDataset, real, seed: int):
        self.real, self.transform = real, balanced.transform
        labels = np.asarray(real.targets)
        rng = np.random.default_rng(seed)
        n = len(labels)
        self.slot_labels = balanced.get_labels()[n:]
        self.source = list(range(n)) + [int(rng.choice(np.flatnonzero(labels == c))) for c in self.slot_labels]
        self.labels = labels.tolist() + list(self.slot_labels)

    def __len__(self) -> int:
        return len(self.source)

    def get_labels(self) -> list[int]:
        return self.labels

    def raw(self, index: int):
        return self.real[self.source[index]][0], self.labels[index]

    def __getitem__(self, index: int):
        from gan_augment.data.transforms import apply_transform

        image, label = self.raw(index)
        return apply_transform(self.transform, image), label


def _teacher(runner):
    if not runner.filter_classifier or not runner.filter_classifier.is_file():
        raise ValueError("gan_distill / real_distill need the real-trained teacher (the aug seed-0 classifier): run "
                         "`aug` first (list it before them in --arms), or pass --restore-judge")
    model, _ = load_classifier(runner.filter_classifier, device=runner.device)
    return model


def _distill_loaders(runner, arm, seed):
    cfg = runner.cfg
    if runner.generator is None:
        raise ValueError(f"{arm} needs --generator (the control's real images take the generated images' places)")
    tf = build_transform(cfg.image_size, augment=True, mean=runner.mean, std=runner.std, seed=seed)
    eval_tf = build_transform(cfg.image_size, augment=False, mean=runner.mean, std=runner.std)
    if cfg.distill_set not in ("light", "matched"):
        raise ValueError(f"--distill-set must be light or matched, got {cfg.distill_set!r}")
    cap = cfg.light_synthetic_fraction
    strategy, bank = cfg.strategy, cfg.bank_size
    if cfg.distill_set == "matched":  # gan_matched's set: the same synthetic share in every class
        strategy = synthetic_share(cap)
        bank = max(bank, sum(strategy(runner.train_real.targets).values()) - len(runner.train_real))
    balanced = GANBalancedDataset(runner.train_real, runner.generator, strategy=strategy, max_synthetic_fraction=cap,
                                  transform=tf, bank_size=bank, device=runner.device, seed=seed)
    ds = balanced if arm == "gan_distill" else _RealInSlots(balanced, runner.train_real, seed)
    n = len(runner.train_real)
    slots = list(range(n, len(ds)))
    probs = teacher_probabilities(_teacher(runner), [ds.raw(i)[0] for i in slots], eval_tf,
                                  temperature=cfg.distill_temperature, device=runner.device)
    soft = SoftTargets(ds, dict(zip(slots, probs)), len(runner.class_names), hard_weight=cfg.distill_hard_weight)
    sampler = MinorityOversampler(soft.get_labels(), cfg.strategy, num_samples=n, seed=seed,
                                  classes=runner.class_names)
    agree = float(np.mean(probs.argmax(1) == np.asarray(soft.get_labels()[n:]))) if slots else float("nan")
    info = {"images_per_epoch": n, "synthetic": balanced.class_counts(), "synthetic_cap": cap,
            "soft_items": len(slots), "teacher_agrees_with_label": agree,
            "slot_images": "generated" if arm == "gan_distill" else "real (self-distillation control)"}
    return runner.loader(soft, sampler=sampler, drop_last=True), None, info, None, 0


def _boundary_loaders(runner, arm, seed):
    cfg = runner.cfg
    tf = build_transform(cfg.image_size, augment=True, mean=runner.mean, std=runner.std, seed=seed)
    real = runner.train_real  # raw uint8 images and labels
    if arm == "gan_boundary":
        from gan_augment.generators import load_generator

        G = load_generator(runner.generator, device=runner.device)
        ds = BoundarySamples(real, G, rate=cfg.boundary_rate, seed=seed, transform=tf, device=runner.device,
                             classes=runner.class_names)
    else:
        ds = MixupSamples(real, rate=cfg.boundary_rate, seed=seed, transform=tf, num_classes=len(runner.class_names))
    n = len(real)
    sampler = MinorityOversampler(ds.get_labels(), cfg.strategy, num_samples=n, seed=seed, classes=runner.class_names)
    info = {"images_per_epoch": n, "boundary_items": len(ds) - n, "boundary_rate": cfg.boundary_rate,
            "boundary_images": "generated between classes" if arm == "gan_boundary" else "mixup of real images"}
    return runner.loader(ds, sampler=sampler, drop_last=True), None, info, None, 0


def _distill_dose(cfg):
    return {"distill_temperature": (cfg.distill_temperature, "--distill-temperature"),
            "distill_hard_weight": (cfg.distill_hard_weight, "--distill-hard-weight"),
            "distill_set": (cfg.distill_set, "--distill-set")}


def _boundary_dose(cfg):
    return {"boundary_rate": (cfg.boundary_rate, "--boundary-rate")}


def _record_dose(loaders, dose):
    """The arm's settings into its record too (so that a resumed folder refuses another dose)."""
    def wrapped(runner, arm, seed):
        loader, weights, info, final, epochs = loaders(runner, arm, seed)
        info.update({k: v for k, (v, _) in dose(runner.cfg).items()})
        return loader, weights, info, final, epochs
    return wrapped


TEACH_ARMS = (
    ArmSpec("gan_distill", light=True, loaders=_record_dose(_distill_loaders, _distill_dose), dose=_distill_dose,
            origin=__name__),
    ArmSpec("real_distill", light=True, loaders=_record_dose(_distill_loaders, _distill_dose), dose=_distill_dose,
            origin=__name__),
    ArmSpec("gan_boundary", loaders=_record_dose(_boundary_loaders, _boundary_dose), dose=_boundary_dose,
            origin=__name__),
    ArmSpec("real_mixup", loaders=_record_dose(_boundary_loaders, _boundary_dose), dose=_boundary_dose,
            origin=__name__),
)
for _spec in TEACH_ARMS:
    if _spec.name not in known_arms():
        register_arm(_spec)
