"""The studies' one-idea arms, registered with the benchmark's protocol (:func:`ga_bench.protocol.register_arm`).

Each tested one idea against ``gan_light`` on HAM10000 at 64 px; none beat oversampling (``docs/benchmark.md``).
They run through ``benchmarks/studies/balance_arms.py`` (the benchmark's command line with these arms added), so
the product's ``balance_isic.py`` offers only the baselines and the GAN arms worth a user's time.

- ``gan_rare``: ``gan_light`` for the rare classes only (``rare_classes``, the ones the goal's rare-class recall is
  about); every other class is oversampled from its real images, as in ``aug_oversample``. Defined after
  ``gan_light``'s per-class results at 64 px (gains on akiec and vasc, losses on bcc, bkl and mel, where half the
  class's draws went to synthetic images), so its runs test that dose.
- ``gan_matched``: ``gan_light``'s share of synthetic images (``light_synthetic_fraction``) in *every* class, the
  largest included. ``gan_light`` gives the largest class no synthetic image, so "looks generated" (which a linear
  probe tells 79-96 % of the time) also means "not the largest class", a shortcut a classifier can learn; here it
  says nothing about the class. The rare classes get the same synthetic images as in ``gan_light`` (same seed; its
  bank is raised to hold every synthetic image, so whenever ``gan_light``'s holds all of its own - cpu64: 2,318 in
  5,000 - the two arms differ only by the largest class's synthetic half). At cpu64 with ``ham10000-64-lite128`` it
  removed the shortcut (small there) and was no better than ``gan_light``.
- ``gan_real_last``: ``gan_light`` for all but the last ``real_last_epochs`` epochs (2), which draw real images only,
  as ``aug_oversample`` does (one optimiser and schedule throughout, so the last epochs fine-tune at the low learning
  rates the schedule has reached). Its first epochs are ``gan_light``'s run. Defined after the synthetic test showed
  GAN-trained classifiers learning the generated images as look-alikes of their own, better than the real images
  they stand in for: does a real-only ending put the boundaries back?
- ``gan_crt`` and ``gan_real_ft``: ``gan_light``'s run, then a second stage of ``retrain_epochs`` (2) on real images
  drawn as ``aug_oversample`` draws them, from a fresh learning rate: the head alone, re-initialised, on frozen
  features (classifier re-training, Kang et al., ICLR 2020; ``crt_lr``), or every layer (``real_ft_lr``). Defined
  after ``gan_real_last``'s ending at the schedule's low tail did not undo what the generated images taught
  (:mod:`studies.retrain`).
- ``gan_uniform`` (kept to document it): ``gan`` drawn uniformly from the set - the first definition of ``gan``,
  which under-draws the classes where the cap binds.
"""

from __future__ import annotations

import numpy as np

from classifier import fit
from ga_bench.protocol import ArmSpec, known_arms, rare_classes_of, register_arm
from gan_augment.balanced import synthetic_share

from studies.retrain import SECOND_STAGE, two_stage

__all__ = ["STUDY_ARMS"]


def _rare_strategy(data, cap, strategy, bank_size):
    """gan_rare: synthetic images for the rare classes only, up to the largest class's count."""
    cfg = data.cfg
    rare = rare_classes_of(data.train_real.targets, data.class_names, given=cfg.rare_classes, share=cfg.rare_share)
    return ({c: int(np.bincount(data.train_real.targets).max()) for c in rare}, bank_size,
            {"synthetic_classes": rare})


def _matched_strategy(data, cap, strategy, bank_size):
    """gan_matched: the same synthetic share in every class, the largest included; every synthetic image in the
    bank, so the rare classes get gan_light's images (same seed, same counts)."""
    share = synthetic_share(cap)
    need = sum(share(data.train_real.targets).values()) - len(data.train_real)
    return share, max(bank_size, need), {}


def _real_last_loaders(runner, arm, seed):
    """gan_light's loader, then aug_oversample's (real images only) for the last real_last_epochs."""
    loader, weights, info = runner.train_set("gan_light", seed)
    final_epochs = runner.cfg.real_last_epochs
    info["real_last_epochs"] = final_epochs
    return loader, weights, info, runner.train_set("aug_oversample", seed)[0], final_epochs


def _real_last_validate(cfg, n_epochs):
    if not 1 <= cfg.real_last_epochs <= n_epochs - 1:
        raise ValueError(f"--real-last-epochs must be in [1, epochs - 1 = {n_epochs - 1}] for gan_real_last (some "
                         f"epochs with generated images, some without), got {cfg.real_last_epochs}")


def _real_last_fit(runner, arm, seed, model, loader, fcfg, info, final_loader):
    return fit(model, loader, runner.loader(runner.val), runner.class_names, fcfg, final_loader=final_loader)


def _first_stage_loaders(runner, arm, seed):
    """A two-stage arm's first stage is gan_light's run."""
    loader, weights, info = runner.train_set("gan_light", seed)
    return loader, weights, info, None, 0


def _two_stage_fit(runner, arm, seed, model, loader, fcfg, info, final_loader):
    return two_stage(runner, arm, seed, model, loader, fcfg, info)


def _two_stage_validate(cfg, n_epochs):
    if not (cfg.retrain_epochs >= 1 and cfg.crt_lr > 0 and cfg.real_ft_lr > 0):
        raise ValueError(f"gan_crt / gan_real_ft need --retrain-epochs >= 1 and learning rates > 0, got "
                         f"{cfg.retrain_epochs}, --crt-lr {cfg.crt_lr:g}, --real-ft-lr {cfg.real_ft_lr:g}")


def _crt_dose(cfg):
    return {"retrain_epochs": (cfg.retrain_epochs, "--retrain-epochs"), "retrain_lr": (cfg.crt_lr, "--crt-lr")}


def _real_ft_dose(cfg):
    return {"retrain_epochs": (cfg.retrain_epochs, "--retrain-epochs"),
            "retrain_lr": (cfg.real_ft_lr, "--real-ft-lr")}


STUDY_ARMS = (
    ArmSpec("gan_rare", light=True, strategy=_rare_strategy, origin=__name__),
    ArmSpec("gan_matched", light=True, strategy=_matched_strategy, origin=__name__),
    ArmSpec("gan_real_last", light=True, loaders=_real_last_loaders, fit=_real_last_fit,
            validate=_real_last_validate, origin=__name__),
    ArmSpec("gan_crt", light=True, loaders=_first_stage_loaders, fit=_two_stage_fit, dose=_crt_dose,
            validate=_two_stage_validate, origin=__name__),
    ArmSpec("gan_real_ft", light=True, loaders=_first_stage_loaders, fit=_two_stage_fit, dose=_real_ft_dose,
            validate=_two_stage_validate, origin=__name__),
    ArmSpec("gan_uniform", uniform=True, origin=__name__),
)
assert set(SECOND_STAGE) == {"gan_crt", "gan_real_ft"}
for _spec in STUDY_ARMS:
    if _spec.name not in known_arms():
        register_arm(_spec)
