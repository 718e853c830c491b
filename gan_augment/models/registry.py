"""Registry + factory for generators and discriminators (timm's ``@register_model`` / ``create_model`` pattern).

Each architecture registers a small typed constructor under a name; ``create_generator(name, ...)`` builds it
and records the name and arguments on the module (``arch``, ``arch_args``) so a generator file can rebuild
exactly the same network later without the trainer.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from torch import nn

__all__ = [
    "register_generator",
    "register_discriminator",
    "create_generator",
    "create_discriminator",
    "list_generators",
    "list_discriminators",
]

_GENERATORS: dict[str, Callable[..., nn.Module]] = {}
_DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def _register(table: dict, kind: str, name: str) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered")
        table[name] = fn
        return fn

    return deco


def register_generator(name: str) -> Callable[[F], F]:
    """Decorator: register a generator constructor under ``name``."""
    return _register(_GENERATORS, "generator", name)


def register_discriminator(name: str) -> Callable[[F], F]:
    """Decorator: register a discriminator constructor under ``name``."""
    return _register(_DISCRIMINATORS, "discriminator", name)


def _create(table: dict, kind: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    _ensure_builtin_models()
    key = name.lower()
    if key not in table:
        raise ValueError(f"unknown {kind} {name!r}; available: {sorted(table)}")
    module = table[key](**kwargs)
    module.arch = key
    module.arch_args = dict(kwargs)
    return module


def create_generator(name: str, *, resolution: int, num_classes: int = 0, channels: int = 3, **kwargs: Any):
    """Build a registered generator: ``G(z, y)`` -> images in [-1, 1], shape (N, channels, resolution, resolution).

    ``num_classes=0`` means unconditional (``y`` is ``None``).
    """
    return _create(_GENERATORS, "generator", name,
                   dict(resolution=resolution, num_classes=num_classes, channels=channels, **kwargs))


def create_discriminator(name: str, *, resolution: int, num_classes: int = 0, channels: int = 3, **kwargs: Any):
    """Build a registered discriminator: ``D(x, y)`` -> logits of shape (N,)."""
    return _create(_DISCRIMINATORS, "discriminator", name,
                   dict(resolution=resolution, num_classes=num_classes, channels=channels, **kwargs))


def list_generators() -> list[str]:
    _ensure_builtin_models()
    return sorted(_GENERATORS)


def list_discriminators() -> list[str]:
    _ensure_builtin_models()
    return sorted(_DISCRIMINATORS)


def _ensure_builtin_models() -> None:
    # Importing the modules runs their @register_* decorators.
    from . import cascade, dcgan, fastgan, projected, resnet  # noqa: F401
