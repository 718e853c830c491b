"""Training: typed configs, GAN data, the Trainer (loop, EMA, AMP, checkpoint/resume, logging)."""

from .config import (
    AugmentConfig,
    DataConfig,
    GANConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    load_config,
)
from .data import GANData, IndexStream, prepare_gan_data
from .trainer import Trainer, TrainingDiverged, TrainResult, resolve_device, train

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "GANConfig",
    "GANData",
    "IndexStream",
    "LossConfig",
    "ModelConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "prepare_gan_data",
    "resolve_device",
    "train",
]
