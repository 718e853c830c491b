"""Data layer: sources -> grouped split -> manifest -> dataset (files flow one way, never back)."""

from .dataset import ManifestDataset, estimate_cache_bytes
from .decode import IMAGE_EXTENSIONS, ImageDecodeError, load_image, load_pil, make_npz_ref, parse_npz_ref
from .manifest import MANIFEST_COLUMNS, Manifest, format_counts_table
from .sources import Sample, ScanResult, resolve_duplicates, scan_image_folder, scan_medmnist_npz, scan_metadata_csv
from .split import build_manifest, grouped_stratified_split, parse_fractions, split_scan
from .transforms import apply_transform, gan_preprocess, gan_to_uint8, resize_center_crop, uint8_to_gan

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "MANIFEST_COLUMNS",
    "Manifest",
    "ManifestDataset",
    "Sample",
    "ScanResult",
    "apply_transform",
    "build_manifest",
    "estimate_cache_bytes",
    "format_counts_table",
    "gan_preprocess",
    "gan_to_uint8",
    "grouped_stratified_split",
    "load_image",
    "load_pil",
    "make_npz_ref",
    "parse_npz_ref",
    "parse_fractions",
    "resize_center_crop",
    "resolve_duplicates",
    "scan_image_folder",
    "scan_medmnist_npz",
    "scan_metadata_csv",
    "split_scan",
    "uint8_to_gan",
]
