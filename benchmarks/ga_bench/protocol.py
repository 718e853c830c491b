"""The benchmark's protocol: arms, goals, configuration, and the split every arm shares (presets: ``presets.py``).

One protocol for every arm: the same lesion-grouped split, the same classifier (ImageNet EfficientNet-Lite0),
the same optimiser, schedule, epochs, seeds and number of optimiser steps (an epoch = as many images as the
real training split, whatever the arm samples from). Arms:

- ``plain``: no augmentation;  ``aug``: the albumentations pipeline;
- ``aug_oversample``: + :class:`MinorityOversampler` (real images only);  ``aug_weighted``: + class-weighted CE;
- ``gan``: + :class:`GANBalancedDataset` (synthetic images fill each class up to the majority count, at most
  ``max_synthetic_fraction`` = 90 % of a class synthetic), drawn class-balanced by :class:`MinorityOversampler`:
  where the cap binds (the rarest classes) real and synthetic items are repeated as ``aug_oversample`` repeats
  real ones, so ``gan`` and ``aug_oversample`` see every class equally often and differ only by the synthetic
  images;  ``gan_weighted``: the same set drawn uniformly, with class-weighted CE (as ``aug_weighted``);
- ``gan_filtered``: ``gan`` keeping only synthetic images the ``aug`` seed-0 classifier (trained on the
  training split, selected on validation) assigns to their class with probability >= a threshold;
- ``gan_light``: ``gan`` with a lighter dose, at most ``light_synthetic_fraction`` of each class synthetic
  (0.5: one synthetic image per real one), so real images keep most of each rare class's weight;

Research studies add arms of their own (one idea each: a dose for the rare classes only, the same share in every
class, a real-only ending, a second stage on real images, ...) through :func:`register_arm`; they live in
``benchmarks/studies/arms.py`` and run through ``benchmarks/studies/balance_arms.py``, never through the product's
``balance_isic.py``.

The best baseline is the best of the four non-GAN arms by mean test balanced accuracy. Differences come with a
95 % paired bootstrap CI over test images and seeds. Before the GAN arms run, the generator is checked:
FID / KID against the validation split, a linear real-vs-synthetic probe (can a classifier learn "looks
generated" as a shortcut?) and the ``aug`` classifier's per-class accuracy on synthetic images.
Every finished (arm, seed) run is saved, so an interrupted benchmark resumes where it stopped;
``--time-limit-minutes`` pauses it between runs (cluster jobs with a time limit), and ``--prepare-only``
writes the split (``manifest.csv``) and stops, so a generator can be trained on exactly this benchmark's
training split elsewhere and passed back with ``--generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from gan_augment.data import Manifest
from gan_augment.generators import read_generator_metadata

from .data_source import DEMO_DATA, DEMO_DATA_DIR, REPO, prepare_manifest

__all__ = ["rare_classes_of", "rare_classes_source", "MIN_SEEDS_FOR_VERDICT", "ARMS", "DEFAULT_ARMS", "ArmSpec",
           "ARM_SPECS", "register_arm", "known_arms", "arm_spec", "is_light", "is_uniform",
           "BASELINES", "GOALS", "GeneratorMismatch", "BenchmarkConfig", "prepare_manifest",
           "check_generator", "resolve_generator", "REPO", "DEMO_DATA", "DEMO_DATA_DIR", "ARM_KEYS", "arm_dose"]


@dataclass(frozen=True)
class ArmSpec:
    """What makes an arm: how its training set is drawn and, for arms that train differently, the hooks that say how.

    ``strategy(arm_data, cap, strategy, bank_size) -> (strategy, bank_size, info)`` replaces the GAN arms' target
    counts; ``loaders(runner, arm, seed) -> (loader, class weights, info, final loader, final epochs)`` and
    ``fit(runner, arm, seed, model, loader, fit_config, info, final_loader) -> (model, fit result)`` replace how the
    run is trained; ``dose(cfg) -> {record key: (value, option)}`` adds the settings that make its runs one arm
    (checked on resume); ``validate(cfg, epochs)`` refuses settings it cannot run with."""

    name: str
    light: bool = False  # capped at light_synthetic_fraction (else max_synthetic_fraction)
    uniform: bool = False  # drawn uniformly from the set (else class-balanced, as aug_oversample)
    strategy: Callable | None = None
    loaders: Callable | None = None
    fit: Callable | None = None
    dose: Callable | None = None
    validate: Callable | None = None
    teacher: bool = False  # trains with the aug seed-0 classifier (the judge's weights) as its teacher
    filtered: bool = False  # keeps only the synthetic images the judge accepts (gan_filtered)
    origin: str = "ga_bench"  # the module that registered it

    @property
    def uses_judge(self) -> bool:
        """Whether its runs need the judge's weights (as a filter or as a teacher)."""
        return self.filtered or self.teacher


ARM_SPECS: dict[str, ArmSpec] = {}


def register_arm(spec: ArmSpec) -> ArmSpec:
    """Add an arm (a study's; the product's are below). Registering a name twice with another spec is an error."""
    if spec.name in ARM_SPECS and ARM_SPECS[spec.name] != spec:
        raise ValueError(f"arm {spec.name!r} is already registered by {ARM_SPECS[spec.name].origin}")
    ARM_SPECS[spec.name] = spec
    return spec


def known_arms() -> tuple[str, ...]:
    """Every registered arm, in the order the benchmark runs and reports them (the product's first)."""
    return tuple(ARM_SPECS)


def arm_spec(arm: str) -> ArmSpec:
    if arm not in ARM_SPECS:
        raise ValueError(f"unknown arm {arm!r}; choose from {list(ARM_SPECS)} (the studies' arms: run "
                         "benchmarks/studies/balance_arms.py)")
    return ARM_SPECS[arm]


def is_light(arm: str) -> bool:
    return arm in ARM_SPECS and ARM_SPECS[arm].light


def is_uniform(arm: str) -> bool:
    return arm in ARM_SPECS and ARM_SPECS[arm].uniform


# the product's arms: the baselines, and the GAN arms worth a user's time
for _spec in (ArmSpec("plain"), ArmSpec("aug"), ArmSpec("aug_oversample"), ArmSpec("aug_weighted"), ArmSpec("gan"),
              ArmSpec("gan_weighted", uniform=True), ArmSpec("gan_filtered", filtered=True),
              ArmSpec("gan_light", light=True)):
    register_arm(_spec)
ARMS = known_arms()  # the product's arms, all in the presets
DEFAULT_ARMS = ARMS
BASELINES = ("plain", "aug", "aug_oversample", "aug_weighted")
MIN_SEEDS_FOR_VERDICT = 3  # fewer seeds: numbers only, no "meets goal" / "beat" wording
GOALS = {"full": {"balanced_accuracy": 0.03, "rare_recall": 0.05}, "frac": {"balanced_accuracy": 0.05,
                                                                           "rare_recall": 0.05}}


class GeneratorMismatch(ValueError):
    """The generator was trained on another manifest: it may have seen test images."""


# --restore-judge: the largest test balanced accuracy difference (percentage points) between a retrained aug seed-0
# classifier and its record (another CPU's retraining came 1.3 pp from it; see judge.py)
RESTORE_TOLERANCE_PP = 2.0


@dataclass
class BenchmarkConfig:
    out: str = "runs/balance_isic"
    preset: str = "full"
    data_dir: str | None = None  # HAM10000 folder (metadata CSV), ImageFolder, or MedMNIST .npz
    dataset: str = "auto"  # auto | dermamnist (medmnist package download)
    dermamnist_size: int = 64
    split_manifest: str | None = None
    # the full split a --split-manifest was cut from (every row checked to be one of its rows): a generator trained on
    # its training split is then accepted with --generator-from-full-split, as for a --max-train-images slice
    source_split: str | None = None
    split_seed: int = 0
    fractions: tuple = (0.7, 0.15, 0.15)
    train_fraction: float = 1.0
    max_train_images: int | None = None  # a stratified slice of the training split (quick preset)
    # the few-shot slice: at most this many training images of each class (seeded draw); its runs train
    # fewshot_epochs unless --epochs says otherwise
    max_train_per_class: int | None = None
    fewshot_epochs: int = 60
    max_eval_per_class: int | None = None  # cap val/test images per class (quick preset)
    image_size: int = 256
    channels: int | str = 3  # 1, 3 or "auto" (1 when every training image is grey)
    resize: str = "center_crop"  # center_crop | squash | pad (gan_augment.data.transforms.resize_to_square)
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    epochs: int | None = None  # default: full_epochs on the whole training split, slice_epochs on a fraction
    full_epochs: int = 12
    # None: as many optimiser steps on a --train-fraction slice as full_epochs make on the whole split (epochs
    # scaled by 1 / fraction), so a regime with less data is not also a regime with less training
    slice_epochs: int | None = 20
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    classifier: str = "tf_efficientnet_lite0"
    pretrained: str = "auto"
    allow_download: bool = False
    generator: str | None = None
    # accept a generator trained on the whole training split this run only slices (--max-train-images /
    # --train-fraction): no test leak, but the GAN arm then draws on more real images than the baselines, and the
    # report says so - the demo's setting, never the evidence's
    generator_from_full_split: bool = False
    reference: str | None = None  # a committed full-scale result folder, summarised at the top of the report
    # the shared-generator regime (with generator_from_full_split on a slice): the benchmark folder of the full
    # training split, same val/test rows and protocol, whose best baseline is the upper bound - the same classifier
    # on every real image the generator saw; the report gives each GAN arm's share of the gap it closes
    upper_bound_from: str | None = None
    # a benchmark folder (same split and protocol) whose baselines are read, not trained: for a second generator
    baselines_from: str | None = None
    # the aug seed-0 classifier's record is saved but its weights are not (results folders keep none): retrain it,
    # check it against the record, keep its weights in OUT/judge/ (see judge.py)
    restore_judge: bool = False
    restore_tolerance_pp: float = RESTORE_TOLERANCE_PP  # ... if its test balanced accuracy is this close to the record's
    gan_config: str = "configs/ham10000_256.yaml"
    gan_overrides: list[str] = field(default_factory=list)
    strategy: str = "not majority"
    max_synthetic_fraction: float = 0.9
    light_synthetic_fraction: float = 0.5  # gan_light's cap (and the light study arms')
    # the settings of the studies' arms (benchmarks/studies/arms.py), kept here so that every record states them
    real_last_epochs: int = 2  # gan_real_last: its last epochs draw real images only
    retrain_epochs: int = 2  # gan_crt / gan_real_ft: epochs of the second stage (real images only) ...
    crt_lr: float = 1e-3  # ... its peak learning rate for the head alone (gan_crt; a linear probe's usual order) ...
    real_ft_lr: float = 3e-5  # ... and for every layer (gan_real_ft: a tenth of the first stage's 3e-4)
    # the regimes study's mechanisms (benchmarks/studies/teach.py): soft labels from a real-trained teacher ...
    distill_temperature: float = 2.0
    distill_hard_weight: float = 0.5  # the one-hot label's weight in a soft item's target
    # the distilled set: gan_light's ("light": the classes below the largest get generated images) or gan_matched's
    # ("matched": the light share in every class - the few-shot slice is balanced, so "light" adds none there)
    distill_set: str = "light"
    boundary_rate: float = 0.1  # ... and samples between two classes: this many per real training image
    feedback_keep: float = 0.25  # ... and gan_feedback: the teacher picks this share of the generator's draws
    bank_size: int = 10_000
    filter_threshold: float = 0.5  # gan_filtered: absolute probability the judge must give the class ...
    filter_quantile: float | None = None  # ... or this quantile of its scores on real val images of the class
    check_per_class: int = 100
    # every classifier trained beside GAN arms is also tested on this many fresh generated images per class (another
    # seed than any training bank): does it call a class's generated images what it calls its real ones? (0: skip)
    synthetic_test_per_class: int = 100
    check_features: str = "inception"
    check_max_real_per_class: int | None = None  # real images per class in the check (default: all the eval ones)
    rare_classes: list[str] | None = None  # default: the classes below rare_share of the largest (from the data)
    rare_share: float = 0.05  # HAM10000's training split: df 1.7 %, vasc 2.1 %, akiec 4.9 % of nv
    num_workers: int = 4
    device: str = "auto"
    n_boot: int = 2000
    progress: bool = True
    time_limit_minutes: float | None = None  # pause between (arm, seed) runs; rerun to continue
    # keep every run's classifier beside its record (runs/ARM_seedK_classifier.safetensors), to score it later on
    # another test set; results folders commit none (.gitignore)
    keep_classifiers: bool = False
    # an external test set every classifier is also scored on (ga_bench/external.py): a folder with a class map, or a
    # named set ("isic9": ISIC Archive images of other clinics than HAM10000's)
    external_test: str | None = None
    external_class_map: str | None = None  # "external_class=training_class,..."
    external_resize: str | None = None  # default: the named set's (isic9: unsquash_4x3), else center_crop
    external_min_per_class: int = 10  # classes with fewer external images are left out of its metrics
    external_drop_copies: bool = False  # leave out external copies of training images (else refused)
    prepare_only: bool = False  # write manifest.csv and stop
    report_only: bool = False  # report every finished (arm, seed) run of the arms and seeds asked; train nothing
    resplit: bool = False  # a source split that leaks: split afresh (grouped)
    drop_leaked: bool = False  # ... or drop the val/test copies of training images (listed in the report)

    def resolved_epochs(self) -> int:
        """The epochs every arm trains for: ``epochs``, else ``full_epochs`` on the full training split and
        ``slice_epochs`` on a slice (None: ``full_epochs / train_fraction``, the full regime's optimiser steps),
        ``fewshot_epochs`` on a few-shot slice (``max_train_per_class``: the full regime's steps would be hundreds
        of epochs of a few images, each with a full validation pass)."""
        if self.epochs is not None:
            return self.epochs
        if self.max_train_per_class is not None:
            return self.fewshot_epochs
        if self.train_fraction >= 1.0:
            return self.full_epochs
        if self.slice_epochs is None:
            return max(1, round(self.full_epochs / self.train_fraction))
        return self.slice_epochs

    def regime(self) -> str:
        """The regime's name in records and reports: full, fracNNN (a --train-fraction slice) or fewshotN."""
        if self.max_train_per_class is not None:
            return f"fewshot{self.max_train_per_class}"
        return "full" if self.train_fraction >= 1 else f"frac{int(round(self.train_fraction * 100)):03d}"


# how the GAN arms build their training sets: a folder's resume command repeats those that differ from its preset
# (its runs refuse another dose - synthetic cap, real-only ending, second stage: arm_dose, Runner.read)
ARM_KEYS = ("max_synthetic_fraction", "light_synthetic_fraction", "real_last_epochs", "retrain_epochs", "crt_lr",
            "real_ft_lr", "bank_size", "filter_threshold", "filter_quantile", "rare_classes", "rare_share",
            "distill_temperature", "distill_hard_weight", "distill_set", "boundary_rate", "feedback_keep")


def arm_dose(arm: str, cfg: BenchmarkConfig) -> dict[str, tuple[float, str]]:
    """The settings that make a GAN arm's runs one arm: a record's key -> (this config's value, the option that sets
    it). A folder's runs recorded with another value are refused (``Runner.read``); keys a record lacks are not
    checked."""
    light = is_light(arm)
    dose = {"synthetic_cap": (cfg.light_synthetic_fraction if light else cfg.max_synthetic_fraction,
                              "--light-synthetic-fraction" if light else "--max-synthetic-fraction"),
            "real_last_epochs": (cfg.real_last_epochs, "--real-last-epochs")}
    spec = ARM_SPECS.get(arm)
    if spec is not None and spec.dose is not None:
        dose.update(spec.dose(cfg))
    return dose


# the settings that shape a classifier run: --baselines-from reads another folder's runs only when all agree (and
# the split's hash and the epochs)
PROTOCOL_KEYS = ("image_size", "channels", "resize", "batch_size", "lr", "weight_decay", "warmup_epochs", "classifier",
                 "pretrained", "train_fraction", "max_train_images", "max_train_per_class", "max_eval_per_class",
                 "strategy")

def rare_classes_of(train_labels: Sequence[int], class_names: Sequence[str], *, given: Sequence[str] | None = None,
                    share: float = 0.05) -> list[str]:
    """The rare classes whose recall the verdict needs: ``given`` (checked against the data), else the classes
    whose training count is below ``share`` of the largest class's (at least the smallest class)."""
    names = list(class_names)
    if given is not None:
        unknown = [c for c in given if c not in names]
        if unknown:
            raise ValueError(f"--rare-classes {unknown} are not classes of this data; its classes are {names}")
        if not given:
            raise ValueError("--rare-classes is empty: name at least one class, or leave it out to derive them")
        return list(given)
    counts = {c: 0 for c in range(len(names))}
    for y in train_labels:
        counts[int(y)] += 1
    largest = max(counts.values())
    rare = [names[c] for c, n in counts.items() if n < share * largest]
    return rare or [names[min(counts, key=lambda c: counts[c])]]


def rare_classes_source(train_labels: Sequence[int], class_names: Sequence[str], *, given: Sequence[str] | None = None,
                        share: float = 0.05) -> str:
    """How :func:`rare_classes_of` chose, in words for the report: given, derived below the share, or - when no class
    is below it - the smallest class as a fallback (with its share of the largest)."""
    if given is not None:
        return "given (--rare-classes)"
    counts = [0] * len(class_names)
    for y in train_labels:
        counts[int(y)] += 1
    largest = max(counts)
    if any(n < share * largest for n in counts):
        return f"derived: training count below {share:.0%} of the largest class's"
    smallest = min(range(len(counts)), key=lambda c: counts[c])
    return (f"no class has fewer than {share:.0%} of the largest class's training images, so the smallest class "
            f"stands in ({class_names[smallest]}: {counts[smallest] / largest:.0%} of the largest); --rare-classes "
            "names others")


def resolve_generator(spec: str | None) -> str | None:
    """``pretrained:NAME`` -> the shipped generator's file (hash-checked against its card); a path stays a path."""
    from gan_augment.pretrained import resolve_spec

    return None if spec is None else resolve_spec(spec)


def check_generator(path: str, manifest: Manifest, *, from_full_split: bool = False) -> dict:
    """Refuse a generator that may have seen this benchmark's validation or test images. ``from_full_split``:
    also accept one trained on the unsliced split this manifest was cut from (``manifest.source_hash``; its
    val/test are a superset of this one's, its train split a superset of this one's training slice)."""
    meta = read_generator_metadata(path)
    source = getattr(manifest, "source_hash", None)
    if from_full_split and source and meta.get("manifest_hash") == source:
        pass
    elif source and source != manifest.hash and meta.get("manifest_hash") == source:
        raise GeneratorMismatch(
            f"refusing generator {path}: it was trained on the whole training split that this run only slices "
            f"(manifest {source[:12]}; this run's {manifest.hash[:12]}), so the GAN arm would draw on more real "
            "images than the baselines. For evidence, train one on this run's manifest (out/manifest.csv); to "
            "try the pipeline anyway, pass --generator-from-full-split (the report then says so)")
    elif meta.get("manifest_hash") != manifest.hash:
        raise GeneratorMismatch(
            f"refusing generator {path}: it was trained on manifest {meta.get('manifest_hash')} but this benchmark's "
            f"manifest is {manifest.hash}. A generator trained on another split may have seen test images; train "
            "it on this benchmark's manifest (out/manifest.csv) or drop --generator")
    if meta.get("split") != "train":
        raise GeneratorMismatch(f"refusing generator {path}: trained on split {meta.get('split')!r}, not 'train'")
    # a warm-started generator (train.init_generator): every file of its chain must have trained on what it did
    seen_ok = {meta.get("manifest_hash")} | ({source} if from_full_split and source else set())
    for origin in (meta.get("init_from") or {}).get("lineage") or []:
        # its own training split, or - accepted with from_full_split - the unsliced split this one was cut from
        if origin.get("manifest_hash") not in seen_ok or origin.get("split") != "train":
            raise GeneratorMismatch(
                f"refusing generator {path}: it started from {origin.get('path')} (sha256 "
                f"{str(origin.get('sha256'))[:12]}), trained on manifest {str(origin.get('manifest_hash'))[:12]} split "
                f"{origin.get('split')!r}, not on this generator's own training split, so it may have seen this "
                "benchmark's validation or test images; train it from scratch, or start it from a generator trained "
                "on this benchmark's manifest")
    missing = [c for c in (meta.get("class_names") or []) if c not in manifest.class_names]
    if missing:
        raise GeneratorMismatch(f"generator {path} has classes {missing} that the manifest lacks")
    return meta

