"""Moving averages of G's weights (a mixin of :class:`~gan_augment.training.Trainer`).

``train.ema_decay`` is the average that samples, grids and ``generator.safetensors`` come from. ``train.
ema_extra_decays`` keeps more averages of the same run beside it, each exported as ``generator_ema<decay>.
safetensors`` (e.g. ``generator_ema0.999.safetensors``) next to the main file: one training run then answers "how
long an average?" with every candidate drawn from the same trajectory of G, which two runs with different
``ema_decay`` cannot (their training seeds' spread is as large as the effect; see the README's A/B notes). They
cost one in-place interpolation of G's parameters per step each and are checkpointed, so a resume continues them.

Every average is a timm ``ModelEmaV3`` over G's parameters; its buffers (BatchNorm running statistics) are copied
from G at each update, as for the main average. An extra decay added when a run resumes, or when it starts from a
generator file (``train.init_generator``), starts from the main average's weights (G's where there is none).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.utils import ModelEmaV3

__all__ = ["EmaMixin", "ema_file_name", "check_ema_decays"]


def ema_file_name(decay: float) -> str:
    """``generator_ema0.999.safetensors`` for ``decay`` 0.999 (``repr`` keeps every digit the config gave)."""
    return f"generator_ema{float(decay)!r}.safetensors"


def check_ema_decays(main: float, extra: list[float]) -> list[float]:
    """The extra decays as floats; a clear error for one outside (0, 1), a repeat, or the main decay again."""
    if not 0.0 <= main < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1) (0 = no average), got {main}")
    out: list[float] = []
    for d in extra:
        d = float(d)
        if not 0.0 < d < 1.0:
            raise ValueError(f"train.ema_extra_decays: each decay must be in (0, 1), got {d}")
        if d == main or d in out:
            raise ValueError(f"train.ema_extra_decays: {d} is listed twice or equals train.ema_decay ({main}); "
                             "each average needs its own decay")
        out.append(d)
    return out


class EmaMixin:
    """Builds, updates, saves and restores the averages; expects the trainer's attributes (cfg, G)."""

    def _build_emas(self) -> None:
        tc = self.cfg.train
        extra = check_ema_decays(float(tc.ema_decay), list(tc.ema_extra_decays))
        make = lambda d: ModelEmaV3(self.G, decay=d, update_after_step=tc.ema_start, exclude_buffers=True)  # noqa: E731
        self.ema = make(float(tc.ema_decay)) if tc.ema_decay > 0 else None
        self.ema_extra: dict[float, ModelEmaV3] = {d: make(d) for d in extra}

    def _ema_modules(self) -> list[torch.nn.Module]:
        """Every averaged copy of G (the main one first): what the class ramp and buffer averaging also touch."""
        return [e.module for e in ([self.ema] if self.ema is not None else []) + list(self.ema_extra.values())]

    def _update_emas(self) -> None:
        for e in ([self.ema] if self.ema is not None else []) + list(self.ema_extra.values()):
            e.update(self.G, step=self.step)

    def _emas_from_start(self) -> None:
        """A warm start: every average starts from G's weights (the generator file's)."""
        for m in self._ema_modules():
            m.load_state_dict(self.G.state_dict())

    def _ema_state(self) -> dict[str, Any]:
        return {"G_ema": self.ema.module.state_dict() if self.ema is not None else None,
                "G_ema_extra": {repr(d): e.module.state_dict() for d, e in self.ema_extra.items()}}

    def _restore_emas(self, state: dict[str, Any]) -> None:
        if self.ema is not None:
            self.ema.module.load_state_dict(state["G_ema"])
        saved = state.get("G_ema_extra") or {}
        base = self.ema.module if self.ema is not None else self.G
        for d, e in self.ema_extra.items():  # one new at this resume starts from the main average
            e.module.load_state_dict(saved.get(repr(d), base.state_dict()))
