"""Metrics: distribution (FID/KID/IS/PR on features), reference (piq/lpips), memorisation, and `evaluate`."""

from .features import FEATURE_EXTRACTORS, FeatureExtractor, cached_features, create_feature_extractor
from .fidelity import (METRIC_DIRECTIONS, class_fidelity, colour_comparison, distribution_metrics, fid, inception_score,
                       kid, precision_recall, real_vs_synthetic, spectrum_comparison)
from .memorisation import memorisation_test
from .reference import REFERENCE_METRICS, LPIPSUnavailable, load_lpips, nearest_indices, reference_metrics

__all__ = [
    "FEATURE_EXTRACTORS",
    "FeatureExtractor",
    "LPIPSUnavailable",
    "METRIC_DIRECTIONS",
    "REFERENCE_METRICS",
    "cached_features",
    "class_fidelity",
    "colour_comparison",
    "create_feature_extractor",
    "distribution_metrics",
    "fid",
    "inception_score",
    "kid",
    "load_lpips",
    "memorisation_test",
    "nearest_indices",
    "precision_recall",
    "real_vs_synthetic", "spectrum_comparison",
    "reference_metrics",
]
