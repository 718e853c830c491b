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

- ``gan_feedback``: ``gan_light``'s set (``distill_set`` "matched": ``gan_matched``'s), its generated images chosen
  by the teacher's feedback (``gan_augment.balanced.FeedbackTopK``): of ``1 / feedback_keep`` draws per image, those
  on the class's real-image manifold in the teacher's features and, of those, the least sure under it. Control: the
  same set of random draws - ``gan_light`` (``gan_matched``) itself.

Every arm draws ``aug_oversample``'s number of images per epoch, class-balanced over each item's main class.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import Dataset

from classifier import build_transform
from ga_bench.protocol import ArmSpec, known_arms, register_arm
from gan_augment import MinorityOversampler
from gan_augment.balanced import (BoundarySamples, FeedbackTopK, GANBalancedDataset, MixupSamples, SoftTargets,
                                  sampling_targets, synthetic_counts, synthetic_share, teacher_probabilities)
from gan_augment.classifier_file import classifier_input, load_classifier

__all__ = ["TEACH_ARMS", "CONTROLS"]

# mechanism -> its control (gan_feedback's: gan_matched where the set is gan_matched's)
CONTROLS = {"gan_distill": "real_distill", "gan_boundary": "real_mixup", "gan_feedback": "gan_light"}


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


def _teacher(runner, arm: str = "gan_distill / real_distill"):
    if not runner.filter_classifier or not runner.filter_classifier.is_file():
        raise ValueError(f"{arm} need(s) the real-trained teacher (the aug seed-0 classifier): run "
                         "`aug` first (list it before them in --arms), or pass --restore-judge")
    return load_classifier(runner.filter_classifier, device=runner.device)


def _light_or_matched(runner):
    """(strategy, bank size) of gan_light's set, or gan_matched's with ``distill_set`` "matched"."""
    cfg = runner.cfg
    if cfg.distill_set not in ("light", "matched"):
        raise ValueError(f"--distill-set must be light or matched, got {cfg.distill_set!r}")
    if cfg.distill_set == "light":
        return cfg.strategy, cfg.bank_size
    strategy = synthetic_share(cfg.light_synthetic_fraction)  # gan_matched's set: the same share in every class
    return strategy, max(cfg.bank_size, sum(strategy(runner.train_real.targets).values()) - len(runner.train_real))


def _distill_loaders(runner, arm, seed):
    cfg = runner.cfg
    if runner.generator is None:
        raise ValueError(f"{arm} needs --generator (the control's real images take the generated images' places)")
    tf = build_transform(cfg.image_size, augment=True, mean=runner.mean, std=runner.std, seed=seed)
    eval_tf = build_transform(cfg.image_size, augment=False, mean=runner.mean, std=runner.std)
    cap = cfg.light_synthetic_fraction
    strategy, bank = _light_or_matched(runner)
    balanced = GANBalancedDataset(runner.train_real, runner.generator, strategy=strategy, max_synthetic_fraction=cap,
                                  transform=tf, bank_size=bank, device=runner.device, seed=seed)
    ds = balanced if arm == "gan_distill" else _RealInSlots(balanced, runner.train_real, seed)
    n = len(runner.train_real)
    slots = list(range(n, len(ds)))
    probs = teacher_probabilities(_teacher(runner)[0], [ds.raw(i)[0] for i in slots], eval_tf,
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


def _feedback_loaders(runner, arm, seed):
    """gan_light's (gan_matched's) loader with the teacher's pick of 1 / feedback_keep draws per generated image."""
    from gan_augment.generators import load_generator

    cfg = runner.cfg
    if runner.generator is None:
        raise ValueError(f"{arm} needs --generator")
    model, meta = _teacher(runner, arm)
    G = load_generator(runner.generator, device=runner.device)
    if list(G.class_names or []) != list(runner.class_names) or list(meta["class_names"]) != list(runner.class_names):
        raise ValueError(f"{arm}: the generator's classes {G.class_names} and the teacher's {meta['class_names']} must "
                         f"be the data's {runner.class_names}, in that order")
    real = runner.train_real
    labels = np.asarray(real.targets)
    strategy, bank = _light_or_matched(runner)
    cap = cfg.light_synthetic_fraction
    # the slice's real images of each class that receives generated ones: the manifold the picks must stay on (the
    # classes that receive none - the largest - are not stacked: at the full split that is most of the images)
    wanted = synthetic_counts(Counter(labels.tolist()), sampling_targets(labels, strategy, runner.class_names), cap)
    reference = {}
    for c in sorted(c for c, n in wanted.items() if n > 0):
        images = [torch.from_numpy(np.ascontiguousarray(real[i][0])) for i in np.flatnonzero(labels == c)]
        images = [im[..., None] if im.ndim == 2 else im for im in images]
        reference[int(c)] = torch.stack(images).permute(0, 3, 1, 2).contiguous()
    picker = FeedbackTopK(G, model, cfg.feedback_keep, reference, preprocess=classifier_input(meta, runner.device))
    tf = build_transform(cfg.image_size, augment=True, mean=runner.mean, std=runner.std, seed=seed)
    balanced = GANBalancedDataset(real, picker, strategy=strategy, max_synthetic_fraction=cap, transform=tf,
                                  bank_size=bank, device=runner.device, seed=seed)
    n = len(real)
    sampler = MinorityOversampler(balanced.get_labels(), cfg.strategy, num_samples=n, seed=seed,
                                  classes=runner.class_names)
    info = {"images_per_epoch": n, "synthetic": balanced.class_counts(), "synthetic_cap": cap,
            "feedback": {runner.class_names[c]: st for c, st in sorted(picker.last_stats.items())},
            "feedback_reference": {runner.class_names[c]: len(im) for c, im in sorted(reference.items())}}
    return runner.loader(balanced, sampler=sampler, drop_last=True), None, info, None, 0


def _feedback_dose(cfg):
    return {"feedback_keep": (cfg.feedback_keep, "--feedback-keep"), "distill_set": (cfg.distill_set, "--distill-set")}


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
            teacher=True, origin=__name__),
    ArmSpec("real_distill", light=True, loaders=_record_dose(_distill_loaders, _distill_dose), dose=_distill_dose,
            teacher=True, origin=__name__),
    ArmSpec("gan_boundary", loaders=_record_dose(_boundary_loaders, _boundary_dose), dose=_boundary_dose,
            origin=__name__),
    ArmSpec("real_mixup", loaders=_record_dose(_boundary_loaders, _boundary_dose), dose=_boundary_dose,
            origin=__name__),
    ArmSpec("gan_feedback", light=True, loaders=_record_dose(_feedback_loaders, _feedback_dose), dose=_feedback_dose,
            teacher=True, origin=__name__),
)
for _spec in TEACH_ARMS:
    if _spec.name not in known_arms():
        register_arm(_spec)
