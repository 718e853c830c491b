"""gan-augment: class-conditional GAN augmentation for imbalanced medical image classification.

Importing the package has no side effects: nothing is downloaded, no file is written, no global RNG is touched.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Public names resolve lazily so that `import gan_augment` stays cheap and the CLI starts fast.
_EXPORTS = {
    "Manifest": "gan_augment.data",
    "ManifestDataset": "gan_augment.data",
    "GANBalancedDataset": "gan_augment.balanced",
    "MinorityOversampler": "gan_augment.balanced",
    "DistributedMinorityOversampler": "gan_augment.balanced",
    "synthetic_share": "gan_augment.balanced",
    "ShardedSampler": "gan_augment.distributed",
    "load_generator": "gan_augment.generators",
    "save_generator": "gan_augment.generators",
    "create_generator": "gan_augment.models",
    "create_discriminator": "gan_augment.models",
    "list_generators": "gan_augment.models",
    "list_discriminators": "gan_augment.models",
    "load_pretrained": "gan_augment.pretrained",
    "list_pretrained": "gan_augment.pretrained",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gan_augment' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = ["__version__", *_EXPORTS]
