"""The GAN recipe study's bookkeeping: its generated table, the missing points it names, and its plot."""

from __future__ import annotations

from studies.gan_recipes import POINTS_CPU_MINUTES, VARIANTS, pixel_diversity
from studies.gan_recipes_report import _plot, study_markdown


def _point(cpu, fid, spread):
    return {"step": 100, "cpu_minutes": cpu, "wall_minutes": cpu / 2, "img_per_s": 10.0, "d_loss_recent": 1.9,
            "d_acc_recent": 0.6, "overall": {"fid": fid, "kid": 0.1, "kid_std": 0.01, "precision": 0.2, "recall": 0.1,
                                            "c2st": 0.97},
            "per_class": {}, "spread_per_class": {"a": spread, "b": spread}, "pixel_std_per_class": {},
            "memorisation": {"p_value": 0.9, "flagged": False}, "memorisation_flagged_classes": []}


def _study():
    return {"meta": {"commit": "abc", "device": "cpu", "versions": {"torch": "x"}},
            "base_config": "configs/ham10000_256.yaml", "points_cpu_minutes": list(POINTS_CPU_MINUTES),
            "per_class": 50, "max_real_per_class": 200,
            "floor": {"distribution": {"overall": {"fid": 49.0, "kid": 0.0026, "precision": 0.85, "recall": 0.85,
                                                   "c2st": 0.55}},
                      "spread_per_class": {"a": 20.0, "b": 10.0}, "n_train_images": 100},
            "variants": {"resnet": {"description": VARIANTS["resnet"][0], "overrides": [],
                                    "points": {"10": _point(10.7, 424.4, 10.0), "20": _point(20.3, 300.0, 10.0)}}}}


def test_table_rows_spread_and_missing_points(tmp_path):
    text = study_markdown(_study())
    assert "**Real floor** (100 real training images in place of generated ones): FID 49.0" in text
    row = "| ResNet G + ResNet D (the old recipe) | 10.7 | 100 | 10.0 | 424.4 | 100.0 | 0.20 | 0.10 | 97 | 0.75 | 0.90 |"
    assert row in text  # spread: mean of 10/20 and 10/10
    missing = text.split("**Not yet run:**")[1]
    assert "resnet @ 40" in missing and "resnet @ 10" not in missing and "fastgan_projected @ 10" in missing
    assert "--out benchmarks/results/gan_recipes_cpu64 --variants resnet,fastgan_resnetD," in missing
    # a folder asked for some variants names only those, with its own folders in the resume command
    study = {**_study(), "variants_requested": ["resnet"], "runs_dir": "runs/elsewhere"}
    study["meta"] = {**study["meta"], "last_update": {"commit": "def"}}
    text = study_markdown(study, "benchmarks/results/elsewhere")
    assert "commit `abc` (its latest point: `def`)" in text
    assert text.split("**Not yet run:** ")[1].startswith(
        "resnet @ 40. Resume with `python benchmarks/studies/gan_recipes.py --out benchmarks/results/elsewhere "
        "--runs-dir runs/elsewhere --variants resnet` (finished points are kept).")
    _plot(_study(), tmp_path / "fid.png")
    assert (tmp_path / "fid.png").stat().st_size > 1000


def test_pixel_diversity_is_zero_for_copies():
    import torch

    same = torch.full((4, 3, 8, 8), 100, dtype=torch.uint8)
    assert pixel_diversity(same) == 0.0
    varied = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 8, 8) * 10
    assert abs(pixel_diversity(varied) - float(torch.tensor([0., 10, 20, 30]).std())) < 1e-6


def test_class_fidelity_column_floor_line_and_backfill(tmp_path, monkeypatch):
    import studies.gan_recipes as gr

    study = _study()
    study["variants"]["resnet"]["points"]["20"]["step"] = 200
    cf = {"mean_generated": 0.25, "mean_real_heldout": 0.7, "ratio": 0.36, "generated": {}, "real_heldout": {}}
    # no generator on disk for a variant: nothing filled; the column shows '-'
    assert gr.backfill_class_fidelity(study, tmp_path, None) == []
    (tmp_path / "resnet").mkdir()
    (tmp_path / "resnet" / "generator.safetensors").write_bytes(b"")
    calls = []
    monkeypatch.setattr(gr, "generator_step", lambda path: 200)
    monkeypatch.setattr(gr, "class_fidelity_now", lambda run_dir, cache: calls.append(run_dir) or cf)
    assert gr.backfill_class_fidelity(study, tmp_path, None) == ["resnet @ 20"]  # only the point of that step
    pts = study["variants"]["resnet"]["points"]
    assert pts["20"]["class_fidelity"] == cf and "class_fidelity" not in pts["10"]
    # "10" stays without it (its generator is gone), and is not measured again on every later run
    assert gr.backfill_class_fidelity(study, tmp_path, None) == [] and len(calls) == 1
    text = study_markdown(study)
    assert "class fidelity of real held-out images 70 %" in text.split("**Real floor**")[1].split("\n")[0]
    row = next(line for line in text.splitlines() if line.startswith("| ResNet G") and "| 20.3 |" in line)
    assert row.endswith("| 0.90 | - | - | 25 |")


def test_every_variant_is_a_valid_config_whose_networks_can_be_built():
    from studies.gan_recipes import BASE_CONFIG, COMMON

    from gan_augment.training import load_config
    from gan_augment.training.networks import network_kwargs

    for key, (_, overrides) in VARIANTS.items():
        cfg = load_config(BASE_CONFIG, [*COMMON, *overrides, "out=unused"])
        assert cfg.model.resolution == 64 and cfg.train.batch_size == 32, key
        network_kwargs(cfg.model)  # options that belong to another discriminator are refused here
        if cfg.loss.class_lambda:
            assert cfg.model.discriminator == "projected" and cfg.model.conditional, key
    head = load_config(BASE_CONFIG, [*COMMON, *VARIANTS["fastgan_projected_classhead"][1], "out=unused"])
    assert head.loss.class_lambda == 1.0 and head.model.generator == "fastgan"
