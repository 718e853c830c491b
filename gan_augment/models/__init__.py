"""Generators and discriminators behind one registry: ``create_generator(name, resolution=..., ...)``."""

from .base import DiscriminatorBase, GeneratorBase
from .registry import (
    create_discriminator,
    create_generator,
    list_discriminators,
    list_generators,
    register_discriminator,
    register_generator,
)

__all__ = [
    "DiscriminatorBase",
    "GeneratorBase",
    "create_discriminator",
    "create_generator",
    "list_discriminators",
    "list_generators",
    "register_discriminator",
    "register_generator",
]
