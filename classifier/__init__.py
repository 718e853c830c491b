"""EfficientNet harness for the benchmark: model factory (timm), fit / evaluate, scikit-learn metrics."""

from .transforms import build_transform

__all__ = ["build_transform"]
