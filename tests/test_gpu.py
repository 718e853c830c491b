"""CUDA paths, which the default (CPU) suite cannot reach: the trainer with bf16 autocast, channels_last, fused
Adam and the uint8 cache in GPU memory; a run moving between a GPU node and a CPU machine (resume, generator
file); sampling, feature extraction, GANBalancedDataset and the classifier harness on a GPU.

    pytest -m gpu          # on a machine with CUDA (skipped elsewhere)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from gan_augment import GANBalancedDataset
from gan_augment.data import ManifestDataset
from gan_augment.generators import load_generator
from gan_augment.models import create_generator
from gan_augment.training import Trainer, config_from_dict

from .conftest import make_image_folder

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

RECIPES = {
    # the ResNet pair of configs/ham10000_256.yaml and the FastGAN + projected pair of ham10000_64_cpu.yaml
    # (random frozen backbone here: the test checks the device paths, not ImageNet features)
    "resnet": {"generator": "resnet", "discriminator": "resnet", "resolution": 32, "z_dim": 16,
               "g_channels": 8, "d_channels": 8, "max_mult": 2},
    "fastgan_projected": {"generator": "fastgan", "discriminator": "projected", "resolution": 64, "z_dim": 16,
                          "g_channels": 8, "d_channels": 16, "d_pretrained": False},
}


def _config(out: Path, folder: Path, model: dict, **train) -> dict:
    return {
        "out": str(out),
        "data": {"image_folder": str(folder), "fractions": [0.75, 0.25], "group_col": None, "class_balance": 0.5},
        "model": dict(model),
        "loss": {"name": "hinge"},
        "augment": {"policy": "color,translation,cutout", "adaptive": True, "interval": 2, "speed_kimg": 0.05},
        "train": {"steps": 4, "batch_size": 8, "n_dis": 1, "ema_decay": 0.9, "ema_start": 1,
                  "checkpoint_every": 2, "sample_every": 2, "log_every": 1, "samples_per_class": 2,
                  "progress": False, "tensorboard": False, "seed": 3, "device": "cuda", **train},
    }


def _cfg(d: dict):
    return config_from_dict(json.loads(json.dumps(d)))


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "imgs", {"a": 14, "b": 8, "c": 6}, size=(72, 64))


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_trainer_on_cuda_then_resumed_on_cpu(tmp_path, folder, recipe):
    """bf16 + channels_last + fused Adam + GPU cache train with finite losses; the checkpoint resumes on a CPU."""
    d = _config(tmp_path / "run", folder, RECIPES[recipe])
    trainer = Trainer(_cfg(d))
    assert trainer.is_cuda and trainer._images is not None and trainer._images.device.type == "cuda"
    first = trainer.fit()
    assert first.finished and first.step == 4
    rows = _log(first.log_path)
    losses = [v for r in rows for k, v in r.items() if k in ("d_loss", "g_loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    g_cuda = load_file(str(first.generator_path))

    d["train"].update(steps=6, device="cpu")  # the node's job ended: continue on a laptop
    second = Trainer(_cfg(d), resume=True).fit()
    assert second.finished and second.step == 6
    g_cpu = load_file(str(second.generator_path))
    moved = sum(float((g_cpu[k].float() - g_cuda[k].float()).abs().sum()) for k in g_cuda
                if g_cuda[k].is_floating_point())
    assert moved > 0  # training went on from the CUDA weights
    steps = [r["step"] for r in _log(second.log_path)]
    assert steps == sorted(set(steps)) and steps[-1] == 6


def test_generator_file_gives_the_same_images_on_cpu_and_cuda(tmp_path):
    torch.manual_seed(0)
    G = create_generator("fastgan", resolution=64, num_classes=3, base_channels=8, z_dim=16)
    G.class_names = ["a", "b", "c"]
    from gan_augment.generators import save_generator

    path = save_generator(G, tmp_path / "g.safetensors")
    cpu = load_generator(path, device="cpu").sample(16, "b", seed=7)
    cuda = load_generator(path, device="cuda").sample(16, "b", seed=7)
    assert cuda.device.type == "cpu" or cuda.is_cuda
    diff = (cpu.int() - cuda.cpu().int()).abs()
    assert diff.float().mean() < 0.5 and diff.max() <= 4  # fp32 on both: cuDNN vs CPU kernels round apart
    fast = load_generator(path, device="cuda").sample(16, "b", seed=7, amp=True).cpu()
    assert (cpu.int() - fast.int()).abs().float().mean() < 3  # bf16: "a grey level or so"


def test_lite0_features_agree_between_cpu_and_cuda():
    from gan_augment.metrics.features import create_feature_extractor

    try:
        cpu = create_feature_extractor("lite0", device="cpu")
    except (FileNotFoundError, ImportError, RuntimeError) as exc:
        pytest.skip(f"Lite0 weights not installed: {exc}")
    cuda = create_feature_extractor("lite0", device="cuda")
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (12, 3, 64, 64), dtype=np.uint8))
    fc, _ = cpu(images)
    fg, _ = cuda(images)
    cos = torch.nn.functional.cosine_similarity(fc, fg, dim=1)
    assert cos.min() > 0.999


def test_balanced_dataset_and_classifier_fit_on_cuda(tmp_path):
    from classifier import FitConfig, build_transform, create_classifier, fit
    from gan_augment.data import build_manifest

    folder = make_image_folder(tmp_path / "imgs", {"a": 24, "b": 6, "c": 4}, size=(48, 48))
    manifest, _ = build_manifest(image_folder=str(folder), group_col=None, fractions=(0.75, 0.25), seed=0)
    real = ManifestDataset(manifest, "train", image_size=32, output="numpy", cache=True, verbose=False)
    real_counts = np.bincount(real.targets, minlength=len(real.classes))
    torch.manual_seed(0)
    G = create_generator("resnet", resolution=32, num_classes=len(real.classes), base_channels=8, z_dim=16).cuda()
    G.class_names = list(real.classes)
    transform = build_transform(32, augment=True, seed=0)
    balanced = GANBalancedDataset(real, G, transform=transform, bank_size=64, device="cuda", seed=0)
    again = GANBalancedDataset(real, G, transform=transform, bank_size=64, device="cuda", seed=0)
    assert balanced.bank_per_class == again.bank_per_class and sum(balanced.bank_per_class.values()) > 0
    counts = np.bincount(balanced.get_labels(), minlength=len(real.classes))
    rare = int(real_counts.argmin())
    assert counts[rare] > real_counts[rare] and counts[int(real_counts.argmax())] == real_counts.max()
    image, label = balanced[len(balanced) - 1]  # a synthetic item, through the user's transform
    real_image, _ = balanced[0]
    assert balanced.is_synthetic(len(balanced) - 1) and image.shape == real_image.shape

    loader = DataLoader(balanced, batch_size=8, shuffle=True, num_workers=2, pin_memory=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    model, _ = create_classifier("tf_efficientnet_lite0", num_classes=len(real.classes), pretrained=False)
    model, result = fit(model, loader, None, list(real.classes),
                        FitConfig(epochs=1, device="cuda", progress=False, warmup_epochs=0.0))
    assert next(model.parameters()).is_cuda
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
