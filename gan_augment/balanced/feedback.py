"""Generated images chosen by a real-trained classifier's feedback: the draws it is least sure of that still look
like real images of their class in its own features.

:class:`FeedbackTopK` wraps a loaded generator and is a generator itself (``sample(n, class_, seed=...)``), so
``GANBalancedDataset`` takes it unchanged. Of ``ceil(n / keep)`` draws of a class it keeps ``n``:

1. *on the real manifold*: a draw whose penultimate features (L2-normalised) fall inside the k-nearest-neighbour
   ball of at least one real reference image of the class - the membership test behind improved precision
   (Kynkaanniemi et al., NeurIPS 2019), here in the classifier's own feature space;
2. among those, the ones the classifier gives the class the lowest probability (the highest cross-entropy loss,
   one of Askari-Hemmat et al.'s feedback criteria): near real images, yet where the classifier is unsure - the
   boundary examples that a classifier trained on hard-labelled generated images lacked (it recognised the
   generated images far better than the real ones).

When fewer than ``n`` draws are on the manifold, the rest are the draws closest to it (distance / ball radius).
This is selection after sampling, not guidance during it: Askari-Hemmat et al. ("Feedback-guided data synthesis
for imbalanced classification", TMLR 2024) steer a diffusion model's sampling with classifier feedback, and found
that the samples must stay close to the real data's support; a GAN's latent draws are filtered here instead. Its control is a random
subset of the same size of the same generator's draws - the generator's own ``sample``.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import nn

from ..classifier_file import penultimate_and_logits
from ..models.base import GeneratorBase, resolve_classes
from ..sampling import _Wrapped

__all__ = ["FeedbackTopK"]


class FeedbackTopK(_Wrapped):
    """``n`` of ``ceil(n / keep)`` draws of a class: on the real images' manifold in ``classifier``'s features, and
    of those the least sure under it.

    Args:
        generator: a loaded generator (``GeneratorBase``).
        classifier: trained on real images only (the teacher), its class indices the generator's; timm or
            efficientnet_pytorch (its pooled penultimate features and logits are read), or any module with
            ``features`` given.
        keep: fraction of draws kept, in (0, 1]; 1 is the generator's own draws.
        reference: real images per class, ``{class index or name: uint8 tensor (N, C, H, W)}`` - the classifier's
            training images; a class without at least two has no manifold and is refused when sampled.
        preprocess: uint8 (N, C, H, W) tensor -> the classifier's input batch (resize, normalise).
        k: the neighbour whose distance is a reference image's ball radius (3, as in improved precision).
        features: ``(classifier, x) -> (features, logits)``; default: pooled penultimate features and logits.
    """

    def __init__(self, generator: GeneratorBase, classifier: nn.Module, keep: float,
                 reference: Mapping[int | str, torch.Tensor], *, preprocess: Callable[[torch.Tensor], torch.Tensor],
                 k: int = 3, batch_size: int = 100,
                 features: Callable[[nn.Module, torch.Tensor],
                                    tuple[torch.Tensor, torch.Tensor]] = penultimate_and_logits):
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1] (the fraction of draws kept), got {keep}")
        if k < 1 or batch_size < 1:
            raise ValueError(f"k and batch_size must be >= 1, got k={k}, batch_size={batch_size}")
        if not getattr(generator, "conditional", False):
            raise ValueError("FeedbackTopK picks within a class: it needs a class-conditional generator")
        super().__init__(generator, {"method": "classifier_feedback_top_k", "keep": float(keep), "k": int(k)})
        object.__setattr__(self, "classifier", classifier)  # not a submodule: not moved, saved or trained
        self.keep, self.k, self.score_batch = float(keep), int(k), int(batch_size)
        self.preprocess, self.features = preprocess, features
        self.reference: dict[int, torch.Tensor] = {}
        names = list(self.class_names or [])
        for key, images in reference.items():
            if isinstance(key, str):
                if key not in names:
                    raise ValueError(f"reference class {key!r} is not one of the generator's classes {names}")
                key = names.index(key)
            if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError(f"reference images of class {key} must be a uint8 tensor (N, C, H, W)")
            self.reference[int(key)] = images
        self._manifold: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.last_stats: dict[int, dict[str, float]] = {}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L2-normalised features, class probabilities) of uint8 images under the classifier, in eval mode."""
        model, was_training = self.classifier, self.classifier.training
        device = next(iter(model.parameters()), torch.empty(0)).device
        model.eval()
        try:
            feats, probs = [], []
            for i in range(0, len(images), self.score_batch):
                f, logits = self.features(model, self.preprocess(images[i:i + self.score_batch].to(device)))
                feats.append(nn.functional.normalize(f.float(), dim=1).cpu())
                probs.append(torch.softmax(logits.float(), dim=1).cpu())
        finally:
            model.train(was_training)
        return torch.cat(feats), torch.cat(probs)

    def manifold(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Class ``c``'s reference features and each one's ball radius (distance to its k-th nearest other
        reference image; k capped at the class's size - 1)."""
        if c not in self._manifold:
            images = self.reference.get(c)
            if images is None or len(images) < 2:
                raise ValueError(f"class {self._name(c)!r}: FeedbackTopK needs at least 2 reference images of it "
                                 f"(got {0 if images is None else len(images)})")
            ref, _ = self.embed(images)
            d = torch.cdist(ref, ref)
            k = min(self.k, len(ref) - 1)
            radii = d.topk(k + 1, dim=1, largest=False).values[:, k]  # column 0 is the image itself
            radii = radii.clamp_min(1e-12)  # k + 1 copies of one image: a ball of (almost) no size, not 0 / 0
            self._manifold[c] = (ref, radii)
        return self._manifold[c]

    def _name(self, c: int) -> str:
        names = self.class_names or []
        return names[c] if c < len(names) else str(c)

    @torch.no_grad()
    def sample(self, n: int, class_: int | str | None = None, *, seed: int | None = None,
               generator: torch.Generator | None = None, batch_size: int = 64,
               device: str | torch.device | None = None, output: str = "uint8", amp: bool = False) -> torch.Tensor:
        """Like :meth:`GeneratorBase.sample` for one class; ``self.last_stats[class]`` says how many draws were on
        the manifold and the classifier's mean probability of the class for the kept and for all draws."""
        if output not in ("uint8", "float"):
            raise ValueError(f"output must be 'uint8' or 'float', got {output!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if isinstance(class_, (list, tuple, torch.Tensor)) or class_ is None:
            raise ValueError("FeedbackTopK picks within one class: pass one class index or name")
        c = int(resolve_classes(self, class_, 1)[0])  # validates the class
        if n == 0:  # nothing drawn: a class without reference images (one that receives none) is fine here
            return torch.zeros(0, self.channels, self.resolution, self.resolution,
                               dtype=torch.uint8 if output == "uint8" else torch.float32)
        ref, radii = self.manifold(c)
        m = math.ceil(n / self.keep - 1e-9)
        cand = self.generator.sample(m, class_, seed=seed, generator=generator, batch_size=batch_size,
                                     device=device, amp=amp)
        feats, probs = self.embed(cand)
        ratio = torch.cat([(torch.cdist(feats[i:i + 1000], ref) / radii).min(dim=1).values
                           for i in range(0, len(feats), 1000)])
        p = probs[:, c]
        inside = ratio <= 1
        key = torch.where(inside, p, ratio)  # inside: least sure first; outside: closest to the manifold first
        order = torch.argsort(key, stable=True)
        order = order[torch.argsort((~inside[order]).to(torch.int8), stable=True)]  # every inside draw first
        picked = order[:n]
        self.last_stats[c] = {"drawn": m, "on_manifold": int(inside.sum()), "kept": int(len(picked)),
                              "kept_on_manifold": int(inside[picked].sum()),
                              "p_class_kept": float(p[picked].mean()), "p_class_drawn": float(p.mean())}
        images = cand[picked]
        if output == "float":
            from ..data.transforms import uint8_to_gan

            return uint8_to_gan(images)
        return images
