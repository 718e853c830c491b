"""Starting a run from a trained generator instead of random weights (``train.init_generator``).

Two uses: continuing a long run on a machine that does not have its checkpoints (a results folder or a package
ships the generator file, never the optimiser state; a cluster job's scratch disk is gone), and fine-tuning a
shipped generator on one's own data. G - and with it its EMA - starts from the file's weights (the file holds
the EMA, the better of the two); D starts afresh unless ``train.init_discriminator`` names the discriminator
file written with that generator (below); both optimisers start afresh. A fresh D costs more than it may seem:
continuing the shipped 64 px CPU generator this way, the fresh projected D started at chance and needed ~3,000 steps
(47 minutes on 2 cores) to get back to where the checkpointed one had been, and G gained nothing meanwhile
(benchmarks/results/warm_start_cpu64) - keep checkpoints when you can. The step counter continues from
the file's step, so step-based schedules (EMA start, transitional conditioning) do not restart and the exported
file's step counts every G update behind it.

The file's lineage - every generator file the chain started from, with the manifest it was trained on - is kept in
the new generator's metadata (``init_from``), so a benchmark can refuse a generator whose ancestor saw its test
images even when the last run was trained on the right split.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import __version__
from .._io import atomic_path, safetensors_metadata
from ..generators import load_checkpoint_file, load_generator, read_generator_metadata
from ..models import GeneratorBase, create_discriminator
from ..pretrained import file_sha256, pretrained_discriminator_path, resolve_spec
from .config import ModelConfig, config_from_dict
from .networks import network_kwargs

__all__ = ["warm_start", "resolve_init_generator", "DISCRIMINATOR_FORMAT", "save_discriminator", "read_discriminator",
           "export_discriminator", "warm_start_discriminator", "discriminator_identity", "load_discriminator"]

_SAME = ("arch", "resolution", "channels", "z_dim", "num_classes")


def resolve_init_generator(spec: str) -> Path:
    """``pretrained:NAME`` -> the shipped file (hash-checked against its card); a path must exist."""
    path = Path(resolve_spec(spec))
    if not path.is_file():
        raise ValueError(f"train.init_generator: no generator file {path}")
    return path


def warm_start(G: GeneratorBase, spec: str, class_names: list[str]) -> dict[str, Any]:
    """Load the weights of the generator file ``spec`` into ``G`` (same architecture and classes, or a clear
    ValueError naming what differs); return what the run records of it: path, sha256, step, lineage."""
    path = resolve_init_generator(spec)
    source = load_generator(path)  # rebuilt from its metadata, its weights checked against that architecture
    meta = source.meta
    if getattr(G, "grown_from", None) is not None and source.resolution != G.resolution:
        return _grow(G, source, spec, path, class_names)
    if getattr(source, "grown_from", None) is not None and float(source.fade) < 1:  # continuing a grown file
        raise ValueError(f"train.init_generator {spec}: a grown generator still fading in (fade "
                         f"{float(source.fade):.2f}): resume its run from the checkpoint instead")
    theirs = {k: getattr(source, k) for k in _SAME}
    ours = {k: getattr(G, k) for k in _SAME}
    differ = [k for k in _SAME if theirs[k] != ours[k]]
    # options this generator has and the file was written without are allowed: noise inputs (their strengths start
    # at 0, so G starts as the file's generator) and the upsampling mode (no weights; the images change a little)
    compat = getattr(G, "start_compatible_args", {}) or {}
    added = {k for k, (default, _) in compat.items()
             if source.arch_args.get(k, default) == default and G.arch_args.get(k, default) != default}

    def plain(args: dict) -> str:  # an option at its default is the same generator whether or not it is written
        return json.dumps({k: v for k, v in args.items() if k not in added and not (k in compat and v == compat[k][0])},
                          sort_keys=True)

    if plain(source.arch_args) != plain(G.arch_args):
        differ.append("arch_args")
        theirs["arch_args"], ours["arch_args"] = source.arch_args, G.arch_args
    if differ:
        raise ValueError(f"train.init_generator {spec}: its generator differs from this run's model in "
                         + "; ".join(f"{k} ({theirs[k]} there, {ours[k]} here)" for k in differ)
                         + ": set the model section to the file's")
    if G.num_classes and list(meta.get("class_names") or []) != list(class_names):
        raise ValueError(f"train.init_generator {spec}: its classes {meta.get('class_names')} are not this run's "
                         f"{list(class_names)} (same names in the same order): a class-conditional generator's "
                         "rows would draw the wrong class")
    if added:
        new_params = [re.compile(compat[k][1]) for k in sorted(added) if compat[k][1]]
        missing, unexpected = G.load_state_dict(source.state_dict(), strict=False)
        stray = [m for m in missing if not any(r.fullmatch(m) for r in new_params)]
        if unexpected or stray:
            raise ValueError(f"train.init_generator {spec}: its weights do not fit this run's generator with "
                             f"{sorted(added)} added (missing {stray}, unexpected {list(unexpected)})")
    else:
        G.load_state_dict(source.state_dict(), strict=True)
    return _record(spec, path, meta)


def _record(spec: str, path: Path, meta: dict) -> dict[str, Any]:
    own = {"path": spec, "sha256": file_sha256(path), "step": int(meta.get("step") or 0),
           "manifest_hash": meta.get("manifest_hash"), "split": meta.get("split")}
    return {**own, "lineage": list((meta.get("init_from") or {}).get("lineage") or []) + [own]}


def _grow(G: GeneratorBase, source: GeneratorBase, spec: str, path: Path, class_names: list[str]) -> dict[str, Any]:
    """``model.g_grown_from``: every weight of the file's generator into G's blocks of the same place, its output
    layer into ``to_image_low``; G's new block, SLE and output layer keep their fresh init; the fade starts at 0."""
    where = f"train.init_generator {spec}"
    if source.resolution != G.grown_from:
        raise ValueError(f"{where}: a {source.resolution} px generator; model.g_grown_from {G.grown_from} grows a "
                         f"{G.grown_from} px one")
    differ = [k for k in _SAME if k != "resolution" and getattr(source, k) != getattr(G, k)]
    skip = ("resolution", "grown_from")
    if {k: v for k, v in source.arch_args.items() if k not in skip} != \
            {k: v for k, v in G.arch_args.items() if k not in skip}:
        differ.append("arch_args")
    if differ:
        raise ValueError(f"{where}: its generator differs from this run's model in "
                         + "; ".join(f"{k} ({getattr(source, k, source.arch_args)} there, {getattr(G, k, G.arch_args)} "
                                     "here)" for k in differ) + ": set the model section to the file's")
    if G.num_classes and list(source.meta.get("class_names") or []) != list(class_names):
        raise ValueError(f"{where}: its classes {source.meta.get('class_names')} are not this run's {list(class_names)}")
    if getattr(source, "grown_from", None) is not None and float(source.fade) < 1:
        raise ValueError(f"{where}: a generator still fading in its own last block (fade {float(source.fade):.2f}): "
                         "train it past its train.fade_steps first")
    # a grown file's own low path (to_image_low, fade) is dead at fade 1: its output layer becomes our low path
    state = {("to_image_low." + k.split(".", 1)[1] if k.startswith("to_image.") else k): v
             for k, v in source.state_dict().items() if not (k.startswith("to_image_low.") or k == "fade")}
    ours = G.state_dict()
    wrong = sorted(k for k in state if k in ours and ours[k].shape != state[k].shape)
    unexpected = sorted(k for k in state if k not in ours)
    last = len(G.ups) - 1
    new = re.compile(rf"(ups\.{last}\..*|sles\.{len(G.sles) - 1}\..*|to_image\..*|fade)")
    stray = sorted(k for k in ours if k not in state and not new.fullmatch(k))
    if wrong or unexpected or stray:
        raise ValueError(f"{where}: its weights do not fit this run's grown generator (other shapes {wrong[:4]}, "
                         f"unexpected {unexpected[:4]}, missing {stray[:4]})")
    G.load_state_dict(state, strict=False)
    G.fade.fill_(0.0)
    return {**_record(spec, path, source.meta), "grown_from": source.resolution}


# ------------------------------------------------------------------------------------------ the discriminator
# A generator file alone continues badly (module docstring): the fresh D spends thousands of steps catching up.
# So every run also exports its D beside the generator - ``discriminator.safetensors``, the trainable state only
# (a projected D's frozen backbone and fixed random projections are rebuilt from the config, never saved) plus the
# augmentation probability and LeCam averages it was trained with - and ``train.init_discriminator`` starts a warm
# run's D from it. The pair is what a resumed run needs of a checkpoint short of the Adam moments (which rebuild
# in a few hundred steps): 2.6 MB for the 64 px projected D next to its 8.5 MB generator, against 42 MB of
# checkpoint. The file names the generator file it was exported with (sha256), and a warm start refuses any other
# pairing: a D trained against one G says little about another.

DISCRIMINATOR_FORMAT = "gan-augment-discriminator"
# the discriminator's registry arguments (network_kwargs) under their model-section names
_D_ARG_KEYS = {"base_channels": "d_channels", "max_mult": "max_mult", "batch_norm": "d_batch_norm",
               "pretrained": "d_pretrained", "pixel_channels": "d_pixel_channels", "class_gain": "d_class_gain",
               "backbone_scale": "d_backbone_scale", "mbstd_group": "d_mbstd_group"}


def discriminator_identity(model: dict[str, Any]) -> dict[str, Any]:
    """The model-section keys that shape D or what its weights mean beyond the state dict's names and shapes (a
    projected D's backbone weights and random projections are rebuilt from them, never saved): the
    discriminator, resolution, conditioning and the registry arguments this discriminator takes."""
    mc = config_from_dict({"model": model}).model
    _, d_kwargs = network_kwargs(mc)
    return {"discriminator": mc.discriminator, "resolution": mc.resolution, "conditional": mc.conditional,
            **{_D_ARG_KEYS.get(k, k): v for k, v in d_kwargs.items()}}


def save_discriminator(state_dict: dict[str, torch.Tensor], path: str | Path, *, model: dict[str, Any],
                       class_names: list[str], manifest_hash: str, split: str, step: int, generator_sha256: str,
                       state: dict[str, Any] | None = None) -> Path:
    """Write D's trainable state (``D.state_dict()``) and what it fits (the model section's D keys, classes, the
    generator file's sha256), atomically."""
    meta = {"format": DISCRIMINATOR_FORMAT, "format_version": 1, "library_version": __version__,
            "model": discriminator_identity(model), "class_names": list(class_names),
            "manifest_hash": manifest_hash, "split": split, "step": int(step),
            "generator_sha256": generator_sha256, "state": state or {}}
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"gan_augment": json.dumps(meta)})
    return path


def read_discriminator(path: str | Path, *, what: str = "train.init_discriminator"
                       ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a discriminator file; a ValueError naming ``what`` asked for it and the file for
    anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: no discriminator file {path}")
    try:
        meta = safetensors_metadata(path)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if meta.get("format") != DISCRIMINATOR_FORMAT:
        raise ValueError(f"{what}: {path} is not a discriminator file (format "
                         f"{meta.get('format')!r}; a run writes one as discriminator.safetensors beside its "
                         "generator, or `gan-augment export-discriminator RUN_DIR` from its last checkpoint)")
    return meta, load_file(str(path))


def export_discriminator(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """From a run folder's last checkpoint, write the discriminator file paired with the run's
    ``generator.safetensors`` (which must be the export of that same step) - for runs made before the trainer
    exported D itself. Returns the file (default ``RUN_DIR/discriminator.safetensors``)."""
    run_dir = Path(run_dir)
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    if not ckpts:
        raise ValueError(f"{run_dir / 'checkpoints'}: no checkpoint to export a discriminator from")
    state = load_checkpoint_file(ckpts[-1])
    gen = run_dir / "generator.safetensors"
    if not gen.is_file():
        raise ValueError(f"{gen} is missing: the discriminator file names the generator it pairs with")
    gen_step = read_generator_metadata(gen).get("step")
    if gen_step != state["step"]:
        raise ValueError(f"{gen} is at step {gen_step}, the last checkpoint {ckpts[-1].name} at step {state['step']}: "
                         "not a pair (export the generator of that checkpoint first)")
    cfg = state["config"]
    train_state = {"augment_p": float(state["augment"]["p"]), "lecam": state.get("lecam")}
    return save_discriminator(state["D"], out or run_dir / "discriminator.safetensors",
                              model=cfg["model"], class_names=state["class_names"],
                              manifest_hash=state["manifest_hash"], split=cfg["data"]["split"], step=state["step"],
                              generator_sha256=file_sha256(gen), state=train_state)


def warm_start_discriminator(D: torch.nn.Module, spec: str, model: dict[str, Any], class_names: list[str],
                             generator: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the discriminator file ``spec`` into ``D`` after checking it pairs with the generator the run started
    from (``generator``: what :func:`warm_start` returned) and fits this run's model and classes. Returns (what
    the run records of it, its training state: augmentation probability, LeCam averages)."""
    path = Path(resolve_discriminator_spec(spec))
    meta, tensors = read_discriminator(path)
    if meta.get("generator_sha256") != generator["sha256"]:
        raise ValueError(f"train.init_discriminator {spec} was trained beside generator "
                         f"{str(meta.get('generator_sha256'))[:12]}... (step {meta.get('step')}), but "
                         f"train.init_generator {generator['path']} is {generator['sha256'][:12]}... (step "
                         f"{generator['step']}): start both from one run's pair (generator.safetensors and "
                         "discriminator.safetensors written together)")
    ours, theirs = discriminator_identity(model), meta.get("model") or {}
    # a key the file does not name was written before that option existed: it had the option's default
    theirs = {**{k: v for k, v in vars(ModelConfig()).items() if k in ours}, **theirs}
    if generator.get("grown_from") and theirs.get("resolution") == generator["grown_from"]:
        # a grown run: the grown-from generator's D fits if its frozen backbone saw the same view (64 px images at
        # backbone scale 2 = 128 px images at scale 1) - its heads then sit on the same feature maps
        view = lambda d: int(d.get("resolution") or 0) * int(d.get("d_backbone_scale") or 1)  # noqa: E731
        if view(theirs) != view(ours):
            scale, left = divmod(view(theirs), int(ours["resolution"]))
            fix = (f"set model.d_backbone_scale to {scale}" if scale and not left else
                   "no backbone scale of this resolution gives that view: start D afresh "
                   "(train.init_discriminator: null)")
            raise ValueError(f"train.init_discriminator {spec}: its backbone saw {view(theirs)} px images, this grown "
                             f"run's sees {view(ours)} px (model.d_backbone_scale {ours.get('d_backbone_scale')}): "
                             + fix)
        theirs = {**theirs, "resolution": ours["resolution"], "d_backbone_scale": ours.get("d_backbone_scale")}
    differ = [k for k in ours if theirs.get(k) != ours[k]]  # keys this D does not take are not compared
    if differ:
        raise ValueError(f"train.init_discriminator {spec}: its discriminator differs from this run's in "
                         + "; ".join(f"model.{k} ({theirs.get(k)} there, {ours[k]} here)" for k in differ))
    if list(meta.get("class_names") or []) != list(class_names):
        raise ValueError(f"train.init_discriminator {spec}: its classes {meta.get('class_names')} are not this "
                         f"run's {list(class_names)}")
    own = D.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"train.init_discriminator {spec}: its weights do not fit this run's discriminator: "
                         f"missing {missing[:4]}, unexpected {unexpected[:4]}, other shapes {wrong[:4]} (the loss "
                         "section adds parts to D: loss.spectral_lambda, loss.class_lambda)")
    D.load_state_dict(tensors, strict=True)
    record = {"path": spec, "sha256": file_sha256(path), "step": int(meta.get("step") or 0)}
    return record, dict(meta.get("state") or {})


def load_discriminator(spec: str | Path, *, channels: int = 3, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a trained discriminator from its file (``pretrained:NAME`` or a path), in eval mode, for scoring
    images (``gan_augment.sampling.DiscriminatorTopK``); ``channels`` is its generator's (the file does not say).
    ``D.meta`` holds the file's metadata (classes, step, the generator file it was trained beside)."""
    path = Path(resolve_discriminator_spec(str(spec)))
    meta, tensors = read_discriminator(path, what="load_discriminator")
    identity = dict(meta.get("model") or {})
    mc = config_from_dict({"model": {k: v for k, v in identity.items() if k in vars(ModelConfig())}},
                          where=str(path)).model
    if mc.discriminator == "projected" and not mc.d_pretrained:  # timm's random init is not seeded, not saved
        raise ValueError(f"{path}: its frozen backbone was random (model.d_pretrained: false) and is not in the file: "
                         "it cannot be rebuilt, so its scores cannot be reproduced")
    _, d_kwargs = network_kwargs(mc)
    num_classes = len(meta.get("class_names") or []) if mc.conditional else 0
    D = create_discriminator(mc.discriminator, resolution=mc.resolution, num_classes=num_classes, channels=channels,
                             **d_kwargs)
    # parts the loss section adds (loss.class_lambda's classifier, loss.spectral_lambda's spectrum head) do not
    # enter D(x, y)'s real/fake logits, the score this is for
    tensors = {k: v for k, v in tensors.items() if k.split(".")[0] not in ("class_head", "spectral_head")}
    try:
        D.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: its weights do not fit a {mc.discriminator!r} discriminator for {channels}-channel "
                         f"images rebuilt from its metadata: {exc}") from None
    D.meta = meta
    return D.to(device).eval()


def resolve_discriminator_spec(spec: str) -> str:
    """``pretrained:NAME`` -> the discriminator shipped with that generator (hash-checked); a path stays a path."""
    if spec.startswith("pretrained:"):
        return str(pretrained_discriminator_path(spec.split(":", 1)[1]))
    return spec
