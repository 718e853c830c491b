"""GANBalancedDataset and the minority samplers: counts per strategy, caps, determinism, workers, types, errors."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from gan_augment import DistributedMinorityOversampler, GANBalancedDataset, MinorityOversampler
from gan_augment.balanced import resolve_labels, sampling_targets, synthetic_counts, synthetic_share
from gan_augment.balanced.dataset import GIVE_UP_ROUNDS
from gan_augment.data import ManifestDataset, scan_image_folder, split_scan
from gan_augment.generators import save_generator
from gan_augment.models import create_generator

from .conftest import make_image_folder

# Most tests use 40x30 real images on purpose (synthetic items must match a non-square size); silence the
# aspect-ratio warning there and check it once in test_aspect_warning_and_classifier_filter.
pytestmark = pytest.mark.filterwarnings("ignore:real images are 40x30")

LABELS = [0] * 50 + [1] * 20 + [2] * 5
NAMES = ["nv", "mel", "df"]


class PILDataset(Dataset):
    """A user's dataset: PIL images of 40x30, labels in ``targets``, names in ``classes``."""

    def __init__(self, labels=LABELS, size=(40, 30), mode="RGB"):
        self.targets = list(labels)
        self.classes = list(NAMES)
        self.size, self.mode = size, mode

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        value = (i * 7) % 256
        return Image.new(self.mode, self.size, (value, value, value) if self.mode == "RGB" else value), self.targets[i]


def cond_generator(classes=NAMES, res=32, channels=3, seed=0):
    # a freshly initialised ResNet G already maps different latents to different images (a DCGAN at
    # init gives near-constant images in eval mode), which is what these tests need
    torch.manual_seed(seed)
    arch = "resnet" if res in (32, 64) else "dcgan"
    G = create_generator(arch, resolution=res, num_classes=len(classes), channels=channels, base_channels=4,
                         z_dim=8)
    G.class_names = list(classes)
    return G.eval()


# ------------------------------------------------------------------------------------------------ strategy
def test_sampling_strategies_follow_imbalanced_learn():
    y = np.array(LABELS)
    assert sampling_targets(y, "not majority", NAMES) == {0: 50, 1: 50, 2: 50}
    assert sampling_targets(y, "auto", NAMES) == {0: 50, 1: 50, 2: 50}
    assert sampling_targets(y, "minority", NAMES) == {0: 50, 1: 20, 2: 50}
    assert sampling_targets(y, "not minority", NAMES) == {0: 50, 1: 50, 2: 5}
    assert sampling_targets(y, "all", NAMES) == {0: 50, 1: 50, 2: 50}
    assert sampling_targets(y, 0.5, NAMES) == {0: 50, 1: 25, 2: 25}
    assert sampling_targets(y, {"df": 30}, NAMES) == {0: 50, 1: 20, 2: 30}
    assert sampling_targets(y, {1: 21}, NAMES) == {0: 50, 1: 21, 2: 5}
    assert sampling_targets(y, lambda labels: {"df": 10 * int((labels == 2).sum())}, NAMES) == {0: 50, 1: 20, 2: 50}
    with pytest.raises(ValueError, match=r"unknown strategy 'balanced'; choose one of \['not majority'"):
        sampling_targets(y, "balanced", NAMES)
    with pytest.raises(ValueError, match="target 3 for class 'df' is below its 5 real images"):
        sampling_targets(y, {"df": 3}, NAMES)
    with pytest.raises(ValueError, match=r"unknown class 'bcc'; classes are \['nv', 'mel', 'df'\]"):
        sampling_targets(y, {"bcc": 100}, NAMES)
    with pytest.raises(ValueError, match=r"ratio .* in \(0, 1\]"):
        sampling_targets(y, 1.5, NAMES)


def test_synthetic_cap():
    real = {0: 50, 1: 20, 2: 5}
    targets = {0: 50, 1: 50, 2: 50}
    assert synthetic_counts(real, targets, None) == {0: 0, 1: 30, 2: 45}
    assert synthetic_counts(real, targets, 0.5) == {0: 0, 1: 20, 2: 5}  # at most 1 synthetic per real
    assert synthetic_counts(real, targets, 0.9) == {0: 0, 1: 30, 2: 45}  # 9:1 cap not binding
    assert synthetic_counts(real, targets, 0.8) == {0: 0, 1: 30, 2: 20}  # 4:1
    assert synthetic_counts(real, targets, 0.0) == {0: 0, 1: 0, 2: 0}


def test_synthetic_share_gives_every_class_the_same_share_the_largest_included():
    y = np.array(LABELS)  # 50 / 20 / 5
    assert sampling_targets(y, synthetic_share(0.5), NAMES) == {0: 100, 1: 40, 2: 10}
    assert sampling_targets(y, synthetic_share(0.2), NAMES) == {0: 62, 1: 25, 2: 6}  # floor(n / 4)
    real = {0: 50, 1: 20, 2: 5}
    # the cap at the same fraction never trims it (same rounding)
    for f in (0.2, 0.5, 0.75):
        assert synthetic_counts(real, synthetic_share(f)(y), f) == synthetic_counts(real, synthetic_share(f)(y), None)
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"synthetic share of each class must be in \(0, 1\)"):
            synthetic_share(bad)
    bal = GANBalancedDataset(PILDataset(), cond_generator(), strategy=synthetic_share(0.5), device="cpu",
                             return_synthetic_flag=True)
    counts = bal.class_counts()
    assert {c: (v["real"], v["synthetic"]) for c, v in counts.items()} == {"nv": (50, 50), "mel": (20, 20),
                                                                          "df": (5, 5)}
    assert sum(int(bal[i][2]) for i in range(len(bal)) if bal[i][1] == 0) == 50  # the majority's synthetic half


# ------------------------------------------------------------------------------------------------ labels
def test_labels_from_targets_get_labels_samples_and_subset(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 5, "b": 3, "c": 2})
    ds = ManifestDataset(split_scan(scan_image_folder(root), (1.0,), names=("train",)), "train")
    assert resolve_labels(ds).tolist() == [0] * 5 + [1] * 3 + [2] * 2
    # Subset: the labels AT the subset's indices, not the parent's first len(subset) labels (torchsampler's bug)
    sub = Subset(ds, [9, 8, 5, 0])
    assert resolve_labels(sub).tolist() == [2, 2, 1, 0]
    assert resolve_labels(Subset(sub, [0, 3])).tolist() == [2, 0]

    class WithGetLabels(Dataset):
        def __len__(self):
            return 3

        def get_labels(self):
            return [1, 0, 1]

    assert resolve_labels(WithGetLabels()).tolist() == [1, 0, 1]

    class WithSamples(Dataset):
        samples = [("x", 2), ("y", 0)]

        def __len__(self):
            return 2

    assert resolve_labels(WithSamples()).tolist() == [2, 0]
    bare = TensorDataset(torch.zeros(3, 3, 8, 8))
    with pytest.raises(ValueError, match=r"cannot find the labels of TensorDataset.*pass labels=\[...\]"):
        resolve_labels(bare)
    with pytest.raises(ValueError, match="labels has 2 entries but the dataset has 3 items"):
        resolve_labels(bare, [0, 1])


def test_subset_counts_in_the_balanced_dataset(tmp_path):
    ds = PILDataset()
    sub = Subset(ds, list(range(40, 75)))  # 10 nv, 20 mel, 5 df
    bal = GANBalancedDataset(sub, cond_generator(), max_synthetic_fraction=None, device="cpu")
    assert bal.class_counts() == {
        "nv": {"real": 10, "synthetic": 10, "target": 20, "bank": 10},
        "mel": {"real": 20, "synthetic": 0, "target": 20, "bank": 0},
        "df": {"real": 5, "synthetic": 15, "target": 20, "bank": 15}}


# ------------------------------------------------------------------------------------------------ counts
@pytest.mark.parametrize("strategy,expected", [
    ("not majority", {0: 50, 1: 50, 2: 50}),
    ("minority", {0: 50, 1: 20, 2: 50}),
    (0.6, {0: 50, 1: 30, 2: 30}),
    ({"df": 12}, {0: 50, 1: 20, 2: 12}),
])
def test_epoch_counts_match_strategy_exactly(strategy, expected):
    bal = GANBalancedDataset(PILDataset(), cond_generator(), strategy=strategy, max_synthetic_fraction=None,
                             device="cpu", return_synthetic_flag=True)
    seen = Counter()
    synthetic_majority = 0
    for i in range(len(bal)):
        _, y, is_syn = bal[i]
        seen[y] += 1
        synthetic_majority += int(is_syn and y == 0)
    assert dict(seen) == expected
    assert synthetic_majority == 0  # the majority class never gets synthetic images
    assert len(bal) == sum(expected.values())


def test_cap_holds_and_missing_generator_warns():
    bal = GANBalancedDataset(PILDataset(), cond_generator(), max_synthetic_fraction=0.75, device="cpu")
    counts = bal.class_counts()
    for c in counts.values():
        assert c["synthetic"] <= 3 * c["real"]
    assert counts["df"]["synthetic"] == 15 and counts["mel"]["synthetic"] == 30
    only_df = cond_generator(["df"])
    with pytest.warns(UserWarning, match=r"classes \['mel'\] have no generator and are not augmented"):
        partial = GANBalancedDataset(PILDataset(), only_df, max_synthetic_fraction=None, device="cpu")
    assert partial.class_counts()["mel"]["synthetic"] == 0 and partial.class_counts()["df"]["synthetic"] == 45
    table = partial.summary()
    assert "| df | 5 | 45 | 50 | 45 | 90% |" in table and "| **total** |" in table


def _allocated_during(fn):
    """(result, peak bytes Python and numpy allocated while ``fn`` ran), measured with tracemalloc."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_bank_memory_is_bounded_as_targets_grow():
    measured = []
    for target in (100, 1000, 5000):
        bal, peak = _allocated_during(lambda: GANBalancedDataset(
            PILDataset(), cond_generator(), strategy={"df": target, "mel": target}, max_synthetic_fraction=None,
            bank_size=12, device="cpu"))
        assert len(bal) == 50 + 2 * target
        assert sum(c["bank"] for c in bal.class_counts().values()) == 12
        assert sum(b.nbytes for b in bal._bank.values()) == bal.bank_nbytes == 12 * 30 * 40 * 3  # real size
        measured.append(peak)
    # what was really allocated grows by far less than the 50x larger targets would need as images
    assert measured[2] < measured[0] + 50 * 30 * 40 * 3
    assert measured[2] < 2 * measured[0]


def test_documented_bank_memory_matches_a_measured_bank():
    """README / docstring: "10,000 RGB images at 256x256 take ~2 GB": measure the bytes of a 256 px bank."""
    bal, peak = _allocated_during(lambda: GANBalancedDataset(
        PILDataset(size=(256, 256)), cond_generator(res=32), strategy={"df": 60}, max_synthetic_fraction=None,
        bank_size=8, device="cpu"))
    per_image = bal.bank_nbytes / 8
    assert peak >= bal.bank_nbytes  # the bank really is allocated (not a view of something smaller)
    assert abs(10_000 * per_image / 1e9 - 2.0) < 0.05
    assert "10,000 RGB images at 256x256 take ~2 GB" in " ".join(GANBalancedDataset.__doc__.split())


# ------------------------------------------------------------------------------------------------ items
def test_synthetic_items_match_real_type_size_and_mode():
    bal = GANBalancedDataset(PILDataset(), cond_generator(), device="cpu")
    img, y = bal[len(bal) - 1]
    assert isinstance(img, Image.Image) and img.size == (40, 30) and img.mode == "RGB" and y == 2
    gray = GANBalancedDataset(PILDataset(mode="L"), cond_generator(), device="cpu")
    assert gray[len(gray) - 1][0].mode == "L"
    arrays = TensorDataset(torch.zeros(75, 24, 24, 3, dtype=torch.uint8), torch.tensor(LABELS))

    class NumpyDS(Dataset):
        targets = LABELS

        def __len__(self):
            return 75

        def __getitem__(self, i):
            return arrays[i][0].numpy(), LABELS[i]

    syn = GANBalancedDataset(NumpyDS(), cond_generator(), classes=NAMES, device="cpu")[74 + 10]
    assert isinstance(syn[0], np.ndarray) and syn[0].shape == (24, 24, 3) and syn[0].dtype == np.uint8
    tensors = TensorDataset(torch.zeros(75, 1, 28, 28, dtype=torch.uint8), torch.tensor(LABELS))
    tb = GANBalancedDataset(tensors, cond_generator(res=28, channels=1), labels=LABELS, classes=NAMES, device="cpu")
    t = tb[80][0]
    assert t.dtype == torch.uint8 and t.shape == (1, 28, 28)
    normalised = TensorDataset(torch.randn(75, 3, 8, 8), torch.tensor(LABELS))
    with pytest.raises(ValueError, match="normalised float tensors"):
        GANBalancedDataset(normalised, cond_generator(), labels=LABELS, classes=NAMES, device="cpu")


def test_albumentations_pipeline_applies_to_synthetic_items():
    import albumentations as A

    raw = GANBalancedDataset(PILDataset(), cond_generator(), device="cpu")
    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    flipped = GANBalancedDataset(PILDataset(), cond_generator(), transform=flip, device="cpu")
    i = len(raw) - 3
    np.testing.assert_array_equal(flipped[i][0], np.asarray(raw[i][0])[:, ::-1])
    np.testing.assert_array_equal(flipped[0][0], np.asarray(raw[0][0])[:, ::-1])  # real items too
    only_syn = GANBalancedDataset(PILDataset(), cond_generator(), synthetic_transform=flip, device="cpu")
    assert isinstance(only_syn[0][0], Image.Image) and isinstance(only_syn[i][0], np.ndarray)


# ------------------------------------------------------------------------------------------------ determinism
def _all_synthetic(ds):
    return np.stack([np.asarray(ds[i][0]) for i in range(len(ds.labels), len(ds))])


def test_same_seed_same_images_and_order():
    a = GANBalancedDataset(PILDataset(), cond_generator(), seed=3, device="cpu")
    b = GANBalancedDataset(PILDataset(), cond_generator(), seed=3, device="cpu")
    c = GANBalancedDataset(PILDataset(), cond_generator(), seed=4, device="cpu")
    assert np.array_equal(_all_synthetic(a), _all_synthetic(b))
    assert not np.array_equal(_all_synthetic(a), _all_synthetic(c))

    def order(ds):
        loader = DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0),
                            collate_fn=lambda batch: [y for _, y in batch])
        return [y for batch in loader for y in batch]

    assert order(a) == order(b)
    before = _all_synthetic(a)
    a.refresh()
    assert not np.array_equal(before, _all_synthetic(a))  # refresh draws new images...
    b.refresh()
    assert np.array_equal(_all_synthetic(a), _all_synthetic(b))  # ...reproducibly
    r = GANBalancedDataset(PILDataset(), cond_generator(), seed=3, device="cpu", refresh_every_epoch=True)
    first = _all_synthetic(r)
    r.set_epoch(1)
    assert not np.array_equal(first, _all_synthetic(r))


def test_on_the_fly_workers_give_distinct_reproducible_images():
    def run():
        ds = GANBalancedDataset(PILDataset(), cond_generator(), mode="on_the_fly", seed=1, device="cpu",
                                max_synthetic_fraction=None, batch_size=8, return_synthetic_flag=True)
        loader = DataLoader(ds, batch_size=5, num_workers=2, shuffle=False,
                            collate_fn=lambda batch: [(np.asarray(x), y, s) for x, y, s in batch])
        return [item for batch in loader for item in batch]

    first, second = run(), run()
    assert len(first) == 150
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, second))  # reproducible
    synthetic = [x for x, _, s in first if s]
    assert len(synthetic) == 75
    distinct = {x.tobytes() for x in synthetic}
    assert len(distinct) == len(synthetic)  # no image repeated across workers or batches


# ------------------------------------------------------------------------------------------------ generators
def test_generator_specs_and_mismatch_errors(tmp_path):
    path = save_generator(cond_generator(), tmp_path / "g.safetensors")
    from_file = GANBalancedDataset(PILDataset(), str(path), device="cpu")
    from_obj = GANBalancedDataset(PILDataset(), cond_generator(), device="cpu")
    assert np.array_equal(_all_synthetic(from_file), _all_synthetic(from_obj))
    # per-class unconditional generators as a dict, by name or index
    torch.manual_seed(0)
    u_df = create_generator("resnet", resolution=32, base_channels=4, z_dim=8)
    u_mel = create_generator("resnet", resolution=32, base_channels=4, z_dim=8)
    per_class = GANBalancedDataset(PILDataset(), {"df": u_df, 1: u_mel}, device="cpu", max_synthetic_fraction=0.9)
    assert per_class.class_counts()["df"]["synthetic"] == 45 and per_class.class_counts()["mel"]["synthetic"] == 30
    # the default dose: at most one synthetic image per real one (the benchmark's gan_light)
    light = GANBalancedDataset(PILDataset(), {"df": u_df, 1: u_mel}, device="cpu")
    assert light.class_counts()["df"] == {"real": 5, "synthetic": 5, "target": 50, "bank": 5}
    # a list of files: one unconditional generator per class, named by the file
    u_df.class_names = ["df"]
    f_df = save_generator(u_df, tmp_path / "df.safetensors")
    u_mel.class_names = ["mel"]
    f_mel = save_generator(u_mel, tmp_path / "mel.safetensors")
    listed = GANBalancedDataset(PILDataset(), [str(f_df), str(f_mel)], device="cpu")
    assert listed.class_counts()["mel"]["synthetic"] == 20  # capped at its 20 real images (the default dose)
    with pytest.raises(ValueError, match=r"generator classes \['nv', 'bcc', 'df'\] do not match the dataset classes "
                                         r"\['nv', 'mel', 'df'\] \(not in the dataset: \['bcc'\]\)"):
        GANBalancedDataset(PILDataset(), cond_generator(["nv", "bcc", "df"]), device="cpu")
    with pytest.raises(ValueError, match="covered by two generators"):
        GANBalancedDataset(PILDataset(), [str(f_df), str(f_df)], device="cpu")
    with pytest.raises(ValueError, match="must name its one class"):
        GANBalancedDataset(PILDataset(), create_generator("dcgan", resolution=32, base_channels=4), device="cpu")
    with pytest.raises(ValueError, match="mode must be 'bank' or 'on_the_fly'"):
        GANBalancedDataset(PILDataset(), cond_generator(), mode="lazy")
    with pytest.raises(ValueError, match="a generator must be a file path"):
        GANBalancedDataset(PILDataset(), 42, device="cpu")


# ------------------------------------------------------------------------------------------------ samplers
def test_minority_oversampler_counts_and_determinism():
    exact = MinorityOversampler(LABELS, "not majority", replacement=False, seed=0)
    counts = Counter(LABELS[i] for i in exact)
    assert dict(counts) == {0: 50, 1: 50, 2: 50} and len(exact) == 150
    # every real image appears, extra copies are spread evenly (df: 5 images x 10)
    df_hits = Counter(i for i in exact if LABELS[i] == 2)
    assert set(df_hits.values()) == {10}
    assert list(exact) == list(MinorityOversampler(LABELS, "not majority", replacement=False, seed=0))
    exact.set_epoch(1)
    assert list(exact) != list(MinorityOversampler(LABELS, "not majority", replacement=False, seed=0))
    # with replacement: counts match the targets in expectation (tolerance: 3 % of the draws per class)
    sampled = MinorityOversampler(LABELS, "not majority", num_samples=30_000, seed=1)
    frac = Counter(LABELS[i] for i in sampled)
    for c in (0, 1, 2):
        assert abs(frac[c] / 30_000 - 1 / 3) < 0.03
    g = torch.Generator().manual_seed(5)
    assert len(list(MinorityOversampler(LABELS, 0.5, generator=g))) == 50 + 25 + 25
    from_ds = MinorityOversampler(PILDataset(), {"df": 20})
    assert from_ds.targets == {0: 50, 1: 20, 2: 20}


def test_distributed_oversampler_shards_like_distributed_sampler():
    shards = [list(DistributedMinorityOversampler(LABELS, num_replicas=4, rank=r, replacement=False, seed=2))
              for r in range(4)]
    assert [len(s) for s in shards] == [38, 38, 38, 38]  # ceil(150 / 4), padded
    full = list(MinorityOversampler(LABELS, replacement=False, seed=2))
    merged = [shards[r][k] for k in range(38) for r in range(4)]
    assert merged[:150] == full
    assert len(DistributedMinorityOversampler(LABELS, num_replicas=4, rank=0, drop_last=True)) == 37
    with pytest.raises(ValueError, match="rank 4 out of range"):
        DistributedMinorityOversampler(LABELS, num_replicas=4, rank=4)


def test_aspect_warning_and_classifier_filter():
    with pytest.warns(UserWarning, match="real images are 40x30 but generators make squares"):
        GANBalancedDataset(PILDataset(), cond_generator(), device="cpu")

    def bright_only(images, c):  # a stand-in for "a real-trained classifier recognises the class"
        return images.float().mean(dim=(1, 2, 3)) > images.float().mean()

    square = PILDataset(size=(32, 32))
    ds = GANBalancedDataset(square, cond_generator(), accept=bright_only, device="cpu", max_synthetic_fraction=None)
    stats = ds.filter_stats
    assert set(stats) == {"mel", "df"}
    assert all(0 < s["accepted"] <= s["drawn"] for s in stats.values())
    assert ds.class_counts()["df"]["synthetic"] == 45 and ds.class_counts()["df"]["bank"] == 45
    plain = GANBalancedDataset(square, cond_generator(), device="cpu", max_synthetic_fraction=None)
    kept = np.stack([np.asarray(ds[i][0]) for i in range(75, 150)]).reshape(75, -1).mean(1)
    base = np.stack([np.asarray(plain[i][0]) for i in range(75, 150)]).reshape(75, -1).mean(1)
    assert kept.mean() > base.mean()  # the filter changed what is in the bank
    reject_all = lambda im, c: torch.zeros(len(im), dtype=torch.bool)  # noqa: E731
    with pytest.warns(UserWarning, match=r"classes \['mel', 'df'\]: no generated image passed the filter"):
        nothing = GANBalancedDataset(square, cond_generator(), accept=reject_all, device="cpu", max_filter_rounds=2)
    assert len(nothing) == 75 and nothing.class_counts()["df"]["synthetic"] == 0
    # a filter that keeps nothing stops after GIVE_UP_ROUNDS rounds per class, well before max_filter_rounds
    with pytest.warns(UserWarning, match="no generated image passed the filter"):
        hopeless = GANBalancedDataset(square, cond_generator(), accept=reject_all, device="cpu")
    assert GIVE_UP_ROUNDS < hopeless.max_filter_rounds
    per_round = nothing.filter_stats["df"]["drawn"] // 2  # max_filter_rounds=2 above
    assert hopeless.filter_stats["df"] == {"accepted": 0, "drawn": per_round * GIVE_UP_ROUNDS}
    with pytest.raises(ValueError, match="none of .* generated images passed the filter"):
        lazy = GANBalancedDataset(square, cond_generator(), accept=reject_all, mode="on_the_fly", device="cpu",
                                  max_filter_rounds=2)
        lazy[len(lazy) - 1]


def test_throughput_helpers_count_every_image():
    from gan_augment.perf import loader_throughput, sampling_throughput

    ds = GANBalancedDataset(PILDataset(size=(32, 32)), cond_generator(), device="cpu", max_synthetic_fraction=None)
    r = loader_throughput(ds, batch_size=16, num_workers=0)
    assert r["images"] == len(ds) == 150 and r["images_per_second"] > 0
    assert loader_throughput(ds, batch_size=16, num_workers=0, max_items=40)["images"] == 48  # whole batches
    s = sampling_throughput(cond_generator(), n=8, batch_size=4)
    assert s["images"] == 8 and s["resolution"] == 32 and s["images_per_second"] > 0


def test_a_generator_at_another_resolution_is_resized_with_a_warning():
    big = PILDataset(size=(64, 64))
    with pytest.warns(UserWarning, match=r"the generator makes 32 px images and the real images are 64x64: synthetic "
                                         r"images are resized to 64x64 \(upsampled: blurrier"):
        ds = GANBalancedDataset(big, cond_generator(res=32), device="cpu")
    assert ds[len(big)][0].size == (64, 64)  # resized to the real items' size
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the generator's own size: nothing to say
        GANBalancedDataset(PILDataset(size=(32, 32)), cond_generator(res=32), device="cpu")
