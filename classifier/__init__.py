"""EfficientNet harness for the benchmark: model factory (timm), fit / evaluate, scikit-learn metrics."""

from .engine import FitConfig, FitResult, classification_metrics, fit, predict
from .models import CLASSIFIERS, ClassifierSpec, OfflineError, create_classifier, normalisation
from .stats import paired_bootstrap
from .transforms import build_transform

__all__ = [
    "CLASSIFIERS",
    "ClassifierSpec",
    "FitConfig",
    "FitResult",
    "OfflineError",
    "build_transform",
    "classification_metrics",
    "create_classifier",
    "normalisation",
    "fit",
    "paired_bootstrap",
    "predict",
]
