"""Twice the resolution by a learned upsampler: a trained generator + a 2x upsampler trained on real image pairs.

Issue #44's route (b), the cascade: the generator is kept as it is; an upsampler
(``gan_augment.models.cascade.Upsampler2x``: bicubic plus a learned residual) is trained on the training split's
images prepared at the generator's resolution and at twice it (L1 + a conditional patch discriminator), and the
two are saved as one generator file that samples at twice the size. Judged at fixed points of the upsampler's
CPU time by the protocol of the 64 px study (``studies/gan_recipes.py``: InceptionV3 FID / KID / precision /
recall and the real-vs-generated probe against the validation split, per class, memorisation), beside point 0 -
the untrained upsampler, i.e. the generator's images upsampled bicubically (what a user gets today by resizing)
- and the real training images at the large size (the floor). The validation pairs' L1 error against bicubic's
says whether the upsampler learnt anything from real images at all.

    python benchmarks/studies/cascade.py --out benchmarks/results/cascade128_cpu --time-limit-minutes 170

At 256 px (issue #44's route b) the base is the shipped 128 px generator:

    python benchmarks/studies/cascade.py --base pretrained:ham10000-128 --out benchmarks/results/cascade256_cpu \
        --points 0,30,60,120 --time-limit-minutes 170

Resumable: finished points are kept, the upsampler resumes from its checkpoint in ``--runs-dir``; where that is gone
(another machine) the trained points are measured again, point 0 and the floor are kept.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ga_bench.cpu_budget import Paused, pausable
from ga_bench.fmt import fidelity_cells, num, pct

REPO = Path(__file__).resolve().parents[2]
BASE = "pretrained:ham10000-64-lite128-16k"
CONFIG = REPO / "configs" / "ham10000_128_grow.yaml"  # its data section: the split the base generator saw
POINTS_CPU_MINUTES = (0.0, 10.0, 30.0, 60.0)
VAL_PAIRS = 300  # validation pairs for the L1 check
EVAL_RESERVE_S = 15 * 60  # one evaluation point at 128 px: ~10 minutes of 2 cores (Inception features), and a margin


def _options(study: dict[str, Any]) -> str:
    """The command-line options that reproduce ``study`` beyond its defaults (its base, config and points)."""
    opts = ""
    if study["base"] != BASE:
        opts += f" --base {study['base']}"
    if study.get("config") and study["config"] != str(CONFIG.relative_to(REPO)):
        opts += f" --config {study['config']}"
    if tuple(study["points_cpu_minutes"]) != POINTS_CPU_MINUTES:
        opts += " --points " + ",".join(f"{x:g}" for x in study["points_cpu_minutes"])
    from gan_augment.training.upsampler import UpsamplerConfig

    adv = study.get("upsampler", {}).get("adv_weight")
    if adv is not None and adv != UpsamplerConfig.adv_weight:
        opts += f" --adv-weight {adv:g}"
    return opts


def best_point(points: dict[str, Any], labels: list[str]) -> str | None:
    """The trained point the project's shipping rule picks (``gan_augment.pretrained.DEFAULT_PRETRAINED``'s): the
    lowest probe accuracy in whole percent, FID breaking ties within 1 point; None before a trained point."""
    trained = [x for x in labels if x != "0" and points[x]["overall"].get("c2st") is not None]
    if not trained:
        return None
    low = min(round(100 * points[x]["overall"]["c2st"]) for x in trained)
    tied = [x for x in trained if round(100 * points[x]["overall"]["c2st"]) == low]
    best_fid = min(points[x]["overall"].get("fid") or float("inf") for x in tied)
    return next(x for x in tied if (points[x]["overall"].get("fid") or float("inf")) <= best_fid + 1.0)


def _best_sentence(points: dict[str, Any], done: list[str]) -> str:
    best = best_point(points, done)
    if best is None or best == done[-1]:
        return ""
    o = points[best]["overall"]
    return (f" The best point so far by the shipping rule (lowest probe, FID breaking ties within 1): {best} "
            f"CPU-minutes, FID {num(o.get('fid'))}, probe {pct(o.get('c2st'))} %.")


def study_markdown(study: dict[str, Any], out: str) -> str:
    """The folder's README: question, answer at the last point, the table, the command."""
    points, floor = study.get("points", {}), (study.get("floor") or {}).get("distribution", {}).get("overall", {})
    res, base = study["resolution"], study["base"]
    lines = [f"# {res} px by a learned 2x upsampler behind the {res // 2} px generator (the cascade)", "",
             f"**Question.** Does an upsampler trained on real training images ({res // 2} -> {res} px pairs) turn "
             f"the {res // 2} px generator `{base}` into a usable {res} px generator - better than upsampling its "
             "images bicubically (point 0) - and how much CPU does that take? (Issue #44's route b, piloted where "
             "it is cheap.)", ""]
    done = [p for p in map(lambda x: f"{x:g}", study["points_cpu_minutes"]) if p in points]
    if "0" in points and len(done) > 1:
        a, b = points["0"]["overall"], points[done[-1]]["overall"]
        lines += [f"**Answer (at {done[-1]} CPU-minutes of upsampler training).** FID {num(b.get('fid'))} against "
                  f"{num(a.get('fid'))} bicubic, probe {pct(b.get('c2st'))} % against {pct(a.get('c2st'))} %; "
                  f"real training images at {res} px: FID {num(floor.get('fid'))}, probe {pct(floor.get('c2st'))} %. "
                  "One training seed." + _best_sentence(points, done), ""]
    else:
        lines += ["**Answer.** Not yet: no trained point measured.", ""]
    lines += [f"InceptionV3 features, validation split, {study['per_class']} generated images per class, at most "
              f"{study['max_real_per_class']} real ones per class; probe = how often a linear probe tells generated "
              f"from real (50 % = never). L1 = mean absolute error in grey levels on {study['val_pairs']} validation "
              f"images upsampled from {res // 2} px (bicubic: {num(study.get('bicubic_l1'), '.2f')}).", "",
              "| CPU-min | steps | L1 val | FID | KID x1e3 | precision | recall | probe % | memorisation p |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label in done:
        pt = points[label]
        o, mem = pt["overall"], pt.get("memorisation", {})
        lines.append(f"| {label}{' (bicubic)' if label == '0' else ''} | {pt['step']} | {num(pt.get('l1_val'), '.2f')} "
                     f"| {fidelity_cells(o, mem)}")
    if floor:
        lines.append(f"| real training images ({res} px floor) | | | {fidelity_cells(floor)}")
    missing = [f"{p:g}" for p in study["points_cpu_minutes"] if f"{p:g}" not in points]
    meta = study.get("meta", {})
    lines += ["", f"Upsampler: {study['upsampler']}.", "",
              "**Command** (resumable; finished points are kept):", "", "```bash",
              f"python benchmarks/studies/cascade.py --out {out} --time-limit-minutes 170" + _options(study), "```",
              "",
              f"Code: commit `{str(meta.get('commit'))[:12]}` on {meta.get('device')}."
              + (f" **Not yet measured:** {', '.join(missing)} CPU-minutes." if missing else "")]
    if study.get("paused"):
        lines.append(f"Paused: {study['paused']}.")
    return "\n".join(lines) + "\n"


def image_pairs(config: Path, base_meta: dict[str, Any], split: str, run_dir: Path, max_images: int | None = None,
                manifest: Path | None = None):
    """(small, large) uint8 tensors of ``split`` at the base generator's resolution and twice it, prepared by the
    config's data pipeline; refused when the split is not the one the base generator was trained on. ``manifest``:
    a split manifest already built from the config's data (read and checked in a second, not scanned again)."""
    import torch

    from gan_augment.training import load_config, prepare_gan_data

    cfg = load_config(config)
    data_cfg = dataclasses.replace(cfg.data, split=split, max_images=max_images, subset_seed=0)
    res = int(base_meta["resolution"])
    out = []
    for r in (res, 2 * res):
        if manifest is not None:  # the split once built: read it (the source scan takes ~15 s on HAM10000)
            data_cfg = dataclasses.replace(data_cfg, manifest=str(manifest), metadata=None, image_dir=None,
                                           image_folder=None, medmnist=None)
        data = prepare_gan_data(data_cfg, r, run_dir, verbose=False)
        manifest = data.manifest_path
        if data.manifest.hash != base_meta.get("manifest_hash"):
            raise ValueError(f"{config}: its split (manifest {data.manifest.hash[:12]}) is not the one the base "
                             f"generator was trained on ({str(base_meta.get('manifest_hash'))[:12]}): the upsampler "
                             "must learn from the same training images only")
        if list(data.class_names) != list(base_meta.get("class_names") or []):
            raise ValueError(f"{config}: classes {data.class_names} differ from the base generator's "
                             f"{base_meta.get('class_names')}")
        out.append(torch.stack([data.dataset[i][0] for i in range(len(data.dataset))]))
    return out[0], out[1], data.manifest_path


def point_evidence(eval_dir: Path, log: list[dict[str, Any]], manifest: Path, grid_per_class: int = 10) -> None:
    """What shipping a judged point takes beside its generator file (``benchmarks/ship_generator.py EVAL_DIR``):
    ``train_summary.json`` (the upsampler's steps and CPU time - the base generator is used as it is),
    ``samples_per_class.jpg`` and ``loss_curves.png`` (the upsampler's log up to the file's step)."""
    import platform

    import torch

    from gan_augment import __version__
    from gan_augment._io import write_json
    from gan_augment.data.manifest import Manifest
    from gan_augment.generators import load_generator
    from gan_augment.plots import plot_loss_log, save_class_grid

    G = load_generator(eval_dir / "generator.safetensors")
    step, cascade = int(G.meta["step"]), G.meta["cascade"]
    log = [r for r in log if r["step"] <= step]
    write_json(eval_dir / "train_summary.json", {
        "step": step, "finished": True, "trained": "upsampler", "cpu_s_total": cascade["cpu_s"],
        "elapsed_s_total": None,  # the upsampler counts its CPU time only
        "device": f"cpu ({platform.processor() or platform.machine()})", "torch": torch.__version__,
        "gan_augment": __version__, "python": platform.python_version(),
        "train_images": Manifest.read(manifest).splits.count("train"), "manifest_hash": G.meta.get("manifest_hash"),
        "cascade": cascade, "last_log": log[-1] if log else {}})
    rows = [G.sample(grid_per_class, c, seed=0) for c in range(G.num_classes)]
    save_class_grid(rows, list(G.class_names), eval_dir / "samples_per_class.jpg",
                    title=f"{G.resolution} px cascade, upsampler step {step}: {grid_per_class} samples per class "
                          "(seed 0)")
    if log:
        plot_loss_log(log, eval_dir / "loss_curves.png",
                      title=f"{G.resolution} px upsampler: L1 to the real image, adversarial loss, patch D loss")


def checkpoint_log(path: Path) -> list[dict[str, Any]]:
    """The upsampler checkpoint's training log (read with ``weights_only=True``: no pickled code runs)."""
    import torch

    return list(torch.load(path, map_location="cpu", weights_only=True)["log"])


def run_study(out: Path, runs_dir: Path, *, base: str, config: Path, time_limit_minutes: float | None,
              cache_dir: Path | None, points: tuple[float, ...] = POINTS_CPU_MINUTES, up_cfg=None,
              adv_weight: float | None = None) -> dict[str, Any]:
    """Train the upsampler to each point of CPU time in turn, evaluating the cascade there; ``up_cfg``: an
    :class:`UpsamplerConfig` (default: its defaults, crops of at most 64 px), ``adv_weight`` replacing its
    adversarial weight. A study folder holds one configuration: resuming it with another is refused."""
    from gan_augment._io import display_path, write_json, write_text
    from gan_augment.generators import load_generator, save_generator
    from gan_augment.models.cascade import cascade_generator
    from gan_augment.pretrained import file_sha256, resolve_spec
    from gan_augment.provenance import run_metadata
    from gan_augment.training.upsampler import UpsamplerConfig, UpsamplerTrainer
    from studies.gan_recipes import MAX_REAL_PER_CLASS, PER_CLASS, _collect, generator_point, real_floor

    deadline = time.monotonic() + time_limit_minutes * 60 if time_limit_minutes else None
    base_path = resolve_spec(base)
    G = load_generator(base_path)
    base = base if base.startswith("pretrained:") else display_path(base)  # no machine path in committed files
    res = 2 * G.resolution
    up_cfg = up_cfg or UpsamplerConfig(crop=min(64, res))
    if adv_weight is not None:
        up_cfg = dataclasses.replace(up_cfg, adv_weight=adv_weight)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = out / "study.json"
    mine = json.loads(json.dumps(dataclasses.asdict(up_cfg)))  # tuples as JSON stores them
    study = json.loads(path.read_text()) if path.is_file() else {
        "meta": run_metadata(device="cpu"), "base": base, "config": display_path(config),
        "resolution": res, "points_cpu_minutes": list(points), "per_class": PER_CLASS,
        "max_real_per_class": MAX_REAL_PER_CLASS, "val_pairs": VAL_PAIRS, "features": "inception",
        "upsampler": mine, "points": {}}
    if study["upsampler"] != mine:
        diff = sorted(k for k in mine.keys() | study["upsampler"].keys() if mine.get(k) != study["upsampler"].get(k))
        raise ValueError(f"{path}: its points were measured with another upsampler configuration (differing: "
                         f"{', '.join(diff)}); use another --out for another configuration")
    small, large, manifest = image_pairs(config, G.meta, "train", runs_dir)
    val_small, val_large, _ = image_pairs(config, G.meta, "val", runs_dir, max_images=VAL_PAIRS, manifest=manifest)
    if manifest.resolve() != (runs_dir / "manifest.csv").resolve():  # a config naming its manifest file
        shutil.copy2(manifest, runs_dir / "manifest.csv")
    trainer = UpsamplerTrainer(small, large, up_cfg)
    ckpt = runs_dir / "upsampler.pt"
    if ckpt.is_file():
        trainer.load(ckpt)
    elif set(study["points"]) - {"0"}:  # point 0 is the untrained upsampler (bicubic): it needs no checkpoint
        print(f"cascade: trained points measured but no checkpoint in {runs_dir}; starting the upsampler over "
              "(point 0, bicubic, kept)", file=sys.stderr)
        study["points"] = {k: v for k, v in study["points"].items() if k == "0"}
    study["bicubic_l1"] = trainer.evaluate_l1(val_small, val_large)["bicubic_l1_grey_levels"]
    with pausable(study, "cascade"):
        for budget in points:
            label = f"{budget:g}"
            if label in study["points"]:
                continue
            stop = trainer.train(10**9, cpu_limit_s=budget * 60,
                                 deadline=None if deadline is None else deadline - EVAL_RESERVE_S, log_every=100)
            trainer.save(ckpt)
            if stop == "deadline" or (deadline is not None and deadline - time.monotonic() < EVAL_RESERVE_S):
                raise Paused(f"the upsampler is at {trainer.cpu_s / 60:.1f} of {label} CPU-minutes; an evaluation "
                             "needs more time than is left")
            gen = runs_dir / f"eval_{label}" / "generator.safetensors"  # each judged file kept (to ship any point)
            gen.parent.mkdir(parents=True, exist_ok=True)
            save_generator(cascade_generator(G, trainer.up), gen, manifest_hash=G.meta.get("manifest_hash"),
                           split="train", step=trainer.step,
                           extra={"cascade": {"base": base, "base_step": G.meta.get("step"),
                                              "base_sha256": file_sha256(base_path),
                                              "upsampler": dataclasses.asdict(up_cfg), "cpu_s": trainer.cpu_s}})
            point_evidence(gen.parent, trainer.log, runs_dir / "manifest.csv")
            point = generator_point(gen, runs_dir / "manifest.csv", runs_dir / f"eval_{label}", cache_dir)
            point.update(step=trainer.step, cpu_minutes=trainer.cpu_s / 60,
                         l1_val=trainer.evaluate_l1(val_small, val_large)["l1_grey_levels"],
                         log_tail=trainer.log[-3:])
            study["points"][label] = point
            if "floor" not in study:
                study["floor"] = real_floor(runs_dir / "manifest.csv", list(G.class_names), cache_dir, resolution=res)
            _collect("cascade", runs_dir, out, final=label)
            study["meta"]["last_update"] = run_metadata(device="cpu")
            write_json(path, study)
            write_text(out / "README.md", study_markdown(study, out.as_posix()))
            print(f"cascade: {label} CPU-min, step {trainer.step}: {point['overall']}, L1 {point['l1_val']:.2f}",
                  flush=True)
    write_json(path, study)
    write_text(out / "README.md", study_markdown(study, out.as_posix()))
    return study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=BASE, help="the generator to upsample (a file or pretrained:NAME)")
    p.add_argument("--config", type=Path, default=CONFIG, help="a training config whose data section is its split")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cascade128_cpu"))
    p.add_argument("--runs-dir", type=Path, help="checkpoints, not committed (default runs/ + the --out folder's name)")
    p.add_argument("--points", default=",".join(f"{x:g}" for x in POINTS_CPU_MINUTES),
                   help="upsampler CPU-minutes at which to evaluate (0 = bicubic)")
    p.add_argument("--time-limit-minutes", type=float, help="pause cleanly before this much wall time")
    p.add_argument("--adv-weight", type=float,
                   help="the upsampler's adversarial weight against 100 x L1 (default 1, pix2pix's; 0: L1 alone)")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/feature_cache"))
    p.add_argument("--evidence-for", metavar="POINT",
                   help="only write what shipping a measured point takes (its summary, class grid, loss curves) "
                        "into --runs-dir/eval_POINT, from the upsampler checkpoint's log")
    args = p.parse_args(argv)
    if args.adv_weight is not None and not args.adv_weight >= 0:
        p.error(f"--adv-weight must be >= 0, got {args.adv_weight}")
    runs_dir = args.runs_dir or Path("runs") / args.out.name
    if args.evidence_for is not None:
        eval_dir = runs_dir / f"eval_{float(args.evidence_for):g}"
        for need in (eval_dir / "generator.safetensors", runs_dir / "upsampler.pt", runs_dir / "manifest.csv"):
            if not need.is_file():
                p.error(f"--evidence-for {args.evidence_for}: {need} does not exist (a point measured on this machine)")
        point_evidence(eval_dir, checkpoint_log(runs_dir / "upsampler.pt"), runs_dir / "manifest.csv")
        print(f"wrote {eval_dir}/train_summary.json, samples_per_class.jpg, loss_curves.png")
        return 0
    points = tuple(sorted(float(x) for x in args.points.split(",")))
    run_study(args.out, runs_dir, base=args.base, config=args.config,
              time_limit_minutes=args.time_limit_minutes,
              cache_dir=args.cache_dir, points=points, adv_weight=args.adv_weight)
    return 0


if __name__ == "__main__":
    sys.exit(main())
