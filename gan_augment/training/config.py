"""Typed training configuration, loaded from YAML and saved with every run.

Unknown keys are errors that list the valid ones; ``--set section.key=value`` overrides any field. The flat
keys of MedImageGAN's README (``arch``, ``path``, ``num_epochs``, ``latent_vector``, ...) are accepted as
written there and translated to this schema.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from .._io import write_text

__all__ = [
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "AugmentConfig",
    "TrainConfig",
    "GANConfig",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "MEDIMAGEGAN_KEYS",
]


@dataclass
class DataConfig:
    """Which images the GAN sees. Give a ``manifest`` or a source to split (the split is then saved)."""

    manifest: str | None = None  # existing manifest CSV (path,label,group,split)
    metadata: str | None = None  # or: metadata CSV + image_dir (HAM10000 style) ...
    image_dir: str | None = None
    image_folder: str | None = None  # ... or an ImageFolder tree ...
    medmnist: str | None = None  # ... or a MedMNIST .npz
    id_col: str = "image_id"
    label_col: str = "dx"
    group_col: str | None = "lesion_id"
    fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    split_seed: int = 0
    split: str = "train"  # the GAN trains on this split only
    classes: list[str] | None = None  # train on these classes only (default: all)
    train_fraction: float = 1.0  # keep this fraction of each class (the benchmark's 0.25 regime)
    max_images: int | None = None  # stratified subset of at most this many images (MedGAN: 160)
    subset_seed: int = 0
    channels: int | str = 3  # 1, 3 or "auto" (1 when every training image is grey, else 3)
    resize: str = "center_crop"  # center_crop | squash | pad: how images become squares (see data.transforms)
    cache: bool = True  # decode once into memory as uint8 (estimate printed first)
    class_balance: float = 1.0  # class sampling prob ~ count**class_balance: 1 = natural, 0 = uniform
    num_workers: int = 0  # DataLoader workers when cache is off
    # a split that puts an image, a copy of it or its group in train and val/test is refused unless:
    resplit: bool = False  # split afresh (grouped), ignoring the source's own split
    drop_leaked: bool = False  # keep the split, drop the val/test copies
    cache_on_device: bool = True  # on CUDA, keep the uint8 cache in GPU memory when it fits in a quarter of it


@dataclass
class ModelConfig:
    generator: str = "resnet"
    discriminator: str = "resnet"
    resolution: int = 256
    conditional: bool = True  # one class-conditional G for all classes; False = unconditional
    z_dim: int = 128
    g_channels: int = 64
    d_channels: int = 64
    max_mult: int = 8
    d_batch_norm: bool = True  # dcgan / sngan discriminators only
    g_spectral_norm: bool = False  # resnet generator only (BigGAN puts SN in G too)
    # fastgan generator only: per-pixel noise injection after each upsampling conv (learned strengths from 0)
    g_noise: bool = False
    # fastgan generator only: 2x upsampling in its blocks, "nearest" (FastGAN's) or "bilinear"
    g_upsample: str = "nearest"
    # fastgan generator only: grow a trained generator of half this resolution (train.init_generator) by one block,
    # its output faded in over train.fade_steps (models/fastgan.py); null = not grown
    g_grown_from: int | None = None
    d_pretrained: bool = True  # projected discriminator: ImageNet Lite0 backbone (False: random frozen one)
    # projected discriminator: width of a trained head on the full-resolution image (the frozen features start
    # at stride 4, so they see little of the finest detail); 0 = off
    d_pixel_channels: int = 0
    # projected discriminator: weight of each head's class projection term (1 = Miyato & Koyama's scaling, at
    # most ~1/8 of the unconditional term here; 8 lets the class weigh as much)
    d_class_gain: float = 1.0
    # projected discriminator: the frozen backbone sees the image upsampled this many times (1, 2, 3 or 4; 1 = at its
    # own resolution, the cheapest on a CPU)
    d_backbone_scale: int = 1
    # projected discriminator: each head also sees the minibatch standard deviation of its features over groups of
    # this many images (Karras et al. 2018; a generator whose images vary too little is told apart by it); 0 = off
    d_mbstd_group: int = 0
    # Transitional conditioning (Shahbazi et al. 2022): the class's weight in G and D ramps linearly from 0 at
    # G step [start] to 1 at [end]; before that the GAN learns all classes' images unconditionally.
    # fastgan / projected only; null = conditional from the first step.
    cond_transition: list[int] | None = None


@dataclass
class LossConfig:
    name: str = "hinge"  # bce | hinge | lsgan | wgan | wgan-gp
    r1_gamma: float = 0.0  # R1 penalty weight on real images (0 = off)
    r1_every: int = 1  # lazy regularisation interval (Karras et al. 2020)
    gp_lambda: float = 10.0  # wgan-gp
    clip: float = 0.01  # wgan
    # LeCam regularisation (Tseng et al. 2021): keeps D's real / fake logits near the moving averages of the
    # other side's, against D overfitting a small training set. 0 = off; the paper uses 0.3 (BigGAN, CIFAR).
    lecam_lambda: float = 0.0
    lecam_decay: float = 0.99
    # A spectral discriminator (Durall et al. 2020): a linear real/fake classifier on the images' ring-averaged
    # power spectrum, trained with D; G's loss gets its adversarial term times this weight. 0 = off.
    spectral_lambda: float = 0.0
    # An auxiliary classifier in the projected D (AC-GAN-style, Odena et al. 2017): a linear classifier on D's
    # frozen pooled features learns the classes from real images; G's loss gets the cross-entropy of its images
    # under it (their own class as target) times this weight. Projected D, class-conditional only. 0 = off.
    class_lambda: float = 0.0
    # A mode-seeking term for G (Mao et al. 2019, MSGAN): G's batch is made of pairs of one class with different
    # latents, and G's loss gets this weight times latent distance over image distance (MSGAN uses 1). 0 = off.
    mode_seeking_lambda: float = 0.0


@dataclass
class AugmentConfig:
    policy: str = "color,translation,cutout"  # DiffAugment ops; "" = none
    p: float = 1.0  # probability per op and image (start value when adaptive)
    adaptive: bool = False  # ADA-style p from D's overfitting signal
    target: float = 0.6
    interval: int = 4
    speed_kimg: float = 100.0
    translation: float = 0.125
    cutout: float = 0.5
    padding: str = "reflection"


@dataclass
class TrainConfig:
    steps: int = 20000  # generator updates
    epochs: float | None = None  # alternative to steps: passes over the training images (MedImageGAN)
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.0, 0.999])
    n_dis: int = 2  # D steps per G step
    ema_decay: float = 0.999  # 0 = no EMA (samples come from G itself)
    ema_start: int = 1000  # G steps before the EMA starts averaging (it copies G until then)
    # more averages of G kept beside the main one, each exported as generator_ema<decay>.safetensors (e.g.
    # [0.995, 0.999]: compare average lengths on one run's trajectory; training/ema.py)
    ema_extra_decays: list[float] = field(default_factory=list)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    amp: bool = True  # bf16 autocast on CUDA; always full precision on CPU
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile G for the training steps (slower start; D stays eager)
    sync_batchnorm: bool = False  # under torchrun on CUDA: BatchNorm statistics over the global batch
    checkpoint_every: int = 1000
    keep_last: int = 3
    sample_every: int = 500
    samples_per_class: int = 8
    log_every: int = 50
    time_limit_minutes: float | None = None  # checkpoint and stop after this long (resume later)
    # checkpoint and stop once the training loop has used this much CPU time in all (process time, summed
    # over threads and over resumed runs): compares recipes at equal compute whatever else the machine runs
    cpu_time_limit_minutes: float | None = None
    progress: bool = True
    tensorboard: bool = True
    chance_window: int = 200  # D steps averaged to decide "D is at chance"
    chance_warmup: int = 500  # D steps before that check starts
    # a generator file or pretrained:NAME that G (and its EMA) starts from, D afresh, the step count continuing the
    # file's: to continue a run without its checkpoints, or to fine-tune a shipped generator (training/warm_start.py)
    init_generator: str | None = None
    # with init_generator: the discriminator file exported with it (discriminator.safetensors of the same run and
    # step, or pretrained:NAME) that D starts from instead of afresh
    init_discriminator: str | None = None
    # model.g_grown_from: G steps over which the new block's output replaces the grown-from generator's (0: at once)
    fade_steps: int = 1000


@dataclass
class GANConfig:
    out: str = "runs/gan"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


# ------------------------------------------------------------------------------------------------ parsing
def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [v.strip() for v in str(value).split(",")] if isinstance(value, str) else [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: expected a number, got {value!r}") from None
        return float(value)
    if hint is str:
        if value is None or isinstance(value, (dict, list)):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {valid}")
    kwargs = {}
    for k, v in data.items():
        hint = hints[k]
        if dataclasses.is_dataclass(hint):
            kwargs[k] = _build(hint, v or {}, f"{where}.{k}" if where else k)
        else:
            kwargs[k] = _coerce(v, hint, f"{where}.{k}" if where else k)
    return cls(**kwargs)


# MedImageGAN README keys -> our dotted keys (value translation in _translate_medimagegan).
MEDIMAGEGAN_KEYS = ("arch", "path", "out", "run", "seed", "n_gpu", "num_epochs", "learning_rate", "beta_adam",
                    "batch_size", "latent_vector", "image_size", "loader_workers", "number_channels",
                    "gen_feature_maps", "dis_feature_maps")


def _translate_medimagegan(flat: dict[str, Any], where: str) -> dict[str, Any]:
    sections = [f.name for f in dataclasses.fields(GANConfig) if f.name != "out"]
    mixed = [k for k in flat if k in sections]
    if mixed:
        legacy = [k for k in flat if k in MEDIMAGEGAN_KEYS and k != "out"]
        raise ValueError(f"{where}: mixes MedImageGAN flat keys {legacy} with sections {mixed}; use one style")
    unknown = [k for k in flat if k not in MEDIMAGEGAN_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} in a MedImageGAN-style config; valid keys: "
                         f"{list(MEDIMAGEGAN_KEYS)}")
    arch = str(flat.get("arch", "DCGAN")).upper()
    if arch not in ("DCGAN", "SNGAN"):
        raise ValueError(f"{where}: arch must be 'DCGAN' or 'SNGAN', got {flat.get('arch')!r}")
    out = Path(str(flat.get("out", "runs")))
    lr = flat.get("learning_rate", 2e-4)
    cfg: dict[str, Any] = {
        "out": str(out / str(flat["run"])) if "run" in flat else str(out),
        "data": {"image_folder": flat.get("path"), "channels": flat.get("number_channels", 3),
                 "num_workers": flat.get("loader_workers", 0), "group_col": None},
        # MedImageGAN: unconditional DCGAN / SNGAN, BCE, Adam(lr, (beta, 0.999)), no augmentation, no EMA.
        "model": {"generator": "dcgan", "discriminator": "sngan" if arch == "SNGAN" else "dcgan",
                  "conditional": False, "resolution": flat.get("image_size", 64),
                  "z_dim": flat.get("latent_vector", 100), "g_channels": flat.get("gen_feature_maps", 64),
                  "d_channels": flat.get("dis_feature_maps", 64)},
        "loss": {"name": "bce"},
        "augment": {"policy": ""},
        "train": {"seed": flat.get("seed", 0), "epochs": flat.get("num_epochs", 5), "lr_g": lr, "lr_d": lr,
                  "betas": [flat.get("beta_adam", 0.5), 0.999], "batch_size": flat.get("batch_size", 16),
                  "n_dis": 1, "ema_decay": 0.0,
                  "device": "cpu" if int(flat.get("n_gpu", 1)) == 0 else "cuda"},
    }
    if cfg["data"]["image_folder"] is None:
        raise ValueError(f"{where}: MedImageGAN-style config needs 'path' (the image folder)")
    return cfg


def config_from_dict(data: dict[str, Any], where: str = "config") -> GANConfig:
    """Build a :class:`GANConfig`; flat MedImageGAN-style dicts are translated first."""
    data = dict(data or {})
    sections = {f.name for f in dataclasses.fields(GANConfig)}
    if data and any(k in MEDIMAGEGAN_KEYS and k not in sections for k in data):
        data = _translate_medimagegan(data, where)
    return _build(GANConfig, data, "")


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a config dict."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""  # "key=" is an empty string; "key=null" is None
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node[p] = dict(node.get(p) or {})
            node = node[p]
        node[parts[-1]] = value
    return data


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> GANConfig:
    """Read a YAML config, apply ``--set`` overrides, validate; errors name the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    sections = {f.name for f in dataclasses.fields(GANConfig)}
    if any(k in MEDIMAGEGAN_KEYS and k not in sections for k in data):
        data = _translate_medimagegan(data, str(path))
    data = apply_overrides(data, overrides)
    try:
        return _build(GANConfig, data, "")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
