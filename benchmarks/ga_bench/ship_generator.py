"""Ship a trained generator with the package: copy it into ``gan_augment/pretrained/``, record its sha256 in
``index.json`` and write its model card from the run's summary and an ``evaluate`` result.

    gan-augment evaluate runs/ham64/generator.safetensors --manifest runs/ham64/manifest.csv --split val \\
        --features inception --per-class 100 --max-real-per-class 200 --out runs/ham64/eval_val
    python benchmarks/ship_generator.py runs/ham64 --name ham10000-64 --metrics runs/ham64/eval_val/metrics.json \\
        --floor benchmarks/results/gan_recipes_cpu64/study.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from gan_augment._io import write_json, write_text
from gan_augment.generators import load_generator, read_generator_metadata
from gan_augment.plots import save_class_grid
from gan_augment.pretrained import PRETRAINED_DIR, file_sha256
from gan_augment.training.warm_start import read_discriminator

from .protocol import REPO
from .fmt import num as _f

__all__ = ["ship", "model_card_markdown", "MAX_BYTES"]

MAX_BYTES = 10 * 2**20  # keep the repository and the wheel small
MAIN_FILE = "generator.safetensors"


# what the card points to, copied from the run and the evaluation into the repository's results folder
EVIDENCE_FROM_RUN = ("samples_per_class.jpg", "loss_curves.png", "train_summary.json")
EVIDENCE_FROM_EVAL = ("metrics.json", "metrics.md", "samples_vs_real.jpg", "nearest_training.jpg")


def _started_from(meta: dict) -> list[str]:
    """A warm-started run (``train.init_generator``): the step and hours above count from the file it started from."""
    init = meta.get("init_from")
    if not init:
        return []
    chain = " <- ".join(f"`{e.get('path')}` (step {e.get('step')}, sha256 `{str(e.get('sha256'))[:12]}`)"
                        for e in reversed(init.get("lineage") or [init]))
    d = init.get("discriminator")
    how = (f"the discriminator from the file written with it (`train.init_discriminator`: `{d.get('path')}`), the "
           "optimisers afresh" if d else "the discriminator and optimisers afresh")
    return [f"- **Started from** `{init.get('path')}` at step {init.get('step')} (`train.init_generator`: G and its EMA "
            f"from that file, {how}); the CPU-hours above are this run's only, the "
            f"steps count from the start of the chain. Lineage, newest first: {chain}."]


def _training(meta: dict, summary: dict) -> list[str]:
    """The card's training line; a cascade (``models.cascade``) says what was trained (its upsampler) on what base."""
    wall = summary.get("elapsed_s_total")
    hours = f"{summary.get('cpu_s_total', 0) / 3600:.1f} CPU-hours" + (f" ({wall / 3600:.1f} h wall)" if wall else "")
    c = meta.get("cascade")
    if not c:
        return [f"- **Training**: {summary.get('step')} generator steps, {hours} on {summary.get('device')}; config "
                "in the file's metadata (`training.config`)."]
    up, base_sha = c.get("upsampler") or {}, c.get("base_sha256")
    return [f"- **Cascade**: the {meta['resolution'] // 2} px generator `{c.get('base')}` (step {c.get('base_step')}"
            + (f", sha256 `{str(base_sha)[:12]}`" if base_sha else "") + ", used as it is, embedded in this file) "
            f"followed by a learned 2x upsampler (bicubic plus a residual network of {up.get('blocks')} blocks, width "
            f"{up.get('width')}).",
            f"- **Training** (the upsampler only): {summary.get('step')} steps, {hours} on {summary.get('device')}, "
            f"on the training split's real images as {meta['resolution'] // 2} -> {meta['resolution']} px pairs "
            f"(crops of {up.get('crop')} px, batch {up.get('batch_size')}; L1 x {up.get('rec_weight')} plus "
            f"{up.get('adv_weight')} x a conditional patch discriminator's loss); settings in the file's metadata "
            "(`cascade.upsampler`)."]


def model_card_markdown(name: str, meta: dict, summary: dict, metrics: dict, floor: dict | None, sha: str,
                        evidence: str | None = None) -> str:
    dist = metrics["distribution"]["inception"]
    o = dist["overall"]
    mem = metrics.get("memorisation", {}).get("overall", {})
    f = (floor or {}).get("distribution", {}).get("overall", {})
    lines = [f"# `{name}`: {meta.get('arch')} generator, {meta['resolution']} px, {meta['num_classes']} classes", "",
             "- **Load**: `gan_augment.pretrained.load_pretrained(\"" + name + "\")`; in the benchmark "
             f"`--generator pretrained:{name}`.",
             f"- **sha256**: `{sha}` (a file that does not match is refused).",
             f"- **Data**: HAM10000 (Tschandl et al., Sci Data 2018), training split only of manifest "
             f"`{meta.get('manifest_hash')}` (lesion-grouped 70/15/15, seed 0 - the split of "
             "`configs/ham10000_256.yaml` and `balance_isic.py --preset cpu64`); classes "
             f"{', '.join(meta.get('class_names') or [])}.",
             *_training(meta, summary),
             *_started_from(meta),
             "- **Licence**: CC BY-NC-SA 4.0, inherited from the training images: non-commercial use only, "
             "attribution, share alike. Synthetic images are not patients and carry no diagnosis.", "",
             f"## Measured (validation split, InceptionV3 features: {o.get('n_fake', '?')} generated images, "
             f"{o.get('n_real', '?')} real ones)", "",
             "| | FID | KID x1e3 | precision | recall | real-vs-synthetic probe |", "|---|---:|---:|---:|---:|---:|",
             f"| this generator | {_f(o.get('fid'))} | {_f((o.get('kid') or 0) * 1e3)} | {_f(o.get('precision'), '.2f')} | "
             f"{_f(o.get('recall'), '.2f')} | {_f(100 * o['c2st'] if o.get('c2st') is not None else None, '.0f')} % |"]
    if f:
        lines.append(f"| real training images (floor) | {_f(f.get('fid'))} | {_f((f.get('kid') or 0) * 1e3)} | "
                     f"{_f(f.get('precision'), '.2f')} | {_f(f.get('recall'), '.2f')} | "
                     f"{_f(100 * f['c2st'] if f.get('c2st') is not None else None, '.0f')} % |")
    lines += ["", "Per class (KID x1e3 / probe):", "",
              ", ".join(f"{c} {_f((v.get('kid') or 0) * 1e3)} / {_f(100 * v['c2st'] if v.get('c2st') is not None else None, '.0f')} %"
                        for c, v in dist.get("per_class", {}).items()), "",
              f"**Memorisation test** (nearest-training-image distances, generated vs held-out, Mann-Whitney U): "
              f"p = {_f(mem.get('p_value'), '.3f')}, {'FLAGGED' if mem.get('flagged') else 'not flagged'}.", ""]
    if "spectrum" in metrics:
        sp = metrics["spectrum"]
        lines += [f"**Fine detail** (power spectrum, generated - real, log10, upper half of the frequencies): "
                  f"{sp['high_band_gap']:+.2f} (0 = real images' detail, -0.3 = half the power); a linear probe "
                  f"on the spectra alone tells generated from real {100 * sp['probe']:.0f} % of the time.", ""]
    if "colour" in metrics:
        co = metrics["colour"]
        lines += [f"**Colour** (per image and channel: mean, spread, 10 / 50 / 90th percentiles): a linear probe on "
                  f"those numbers alone tells generated from real {100 * co['probe']:.0f} % of the time.", ""]
    if "class_fidelity" in metrics:
        cf = metrics["class_fidelity"]
        real = cf.get("real_heldout", {})
        lines += [f"**Class fidelity** (GAN-test: a class-balanced linear probe fitted on real training images' "
                  f"{cf['feature_space']} features names each image's class): it gives "
                  f"{100 * cf['mean_generated']:.0f} % of generated images their own class, "
                  f"{_f(100 * cf['mean_real_heldout'] if cf.get('mean_real_heldout') is not None else None, '.0f')} % "
                  "of real validation images (mean over classes; chance 1 / classes). Per class, generated / real: "
                  + ", ".join(f"{c} {100 * v:.0f} / {_f(100 * real[c] if c in real else None, '.0f')} %"
                              for c, v in cf["generated"].items()) + ".", ""]
    if evidence:
        lines += [f"Per-class sample grid (`samples_per_class.jpg`: 10 per class, one row per class), generated vs "
                  f"real (`samples_vs_real.jpg`), nearest training images (`nearest_training.jpg`), loss curves and "
                  f"the full metrics: `{evidence}/` in the source repository.", ""]
    return "\n".join(lines)


def ship(run_dir: Path, name: str, metrics_path: Path, *, floor_path: Path | None = None,
         dest: Path = PRETRAINED_DIR, evidence: Path | None = None, file: str = MAIN_FILE,
         in_repository: bool = False) -> Path:
    """Copy ``run_dir/generator.safetensors`` to ``dest`` as ``<name>.safetensors`` with its card and index entry;
    with ``evidence``, copy the run's grids / curves and the evaluation's files there for the card to point to.
    ``file`` ships another average of the run instead (``generator_ema0.998.safetensors`` of
    ``train.ema_extra_decays``); the run's discriminator pairs with the main file only, so it is not shipped then.
    ``in_repository``: the weights go to ``evidence/generator/`` (index key ``archived_at``), the card and index entry
    to ``dest``: loadable by name from a clone of the repository, not in the package (whose size rule keeps one
    generator, the default, in the wheel)."""
    if in_repository and (evidence is None or not evidence.resolve().is_relative_to(REPO)):
        raise ValueError("in_repository needs an evidence folder inside the repository (the weights are kept under "
                         f"it, loaded by their path there): got {evidence}")
    if Path(file).name != file or not file.endswith(".safetensors"):
        raise ValueError(f"--file {file!r}: give the name of a .safetensors file in the run folder")
    gen = run_dir / file
    if not gen.is_file():
        raise ValueError(f"{gen} does not exist")
    if gen.stat().st_size > MAX_BYTES:
        raise ValueError(f"{gen} is {gen.stat().st_size / 2**20:.1f} MiB; shipped generators stay under "
                         f"{MAX_BYTES / 2**20:.0f} MiB (use a narrower generator)")
    meta = read_generator_metadata(gen)
    metrics = json.loads(metrics_path.read_text())
    judged = metrics.get("generator", {})
    if judged.get("manifest_hash") != meta.get("manifest_hash"):
        raise ValueError(f"{metrics_path} evaluates another generator (manifest hash differs)")
    # another of the run's averages (generator_ema*.safetensors) at the same step is refused by name; a metrics file
    # of a copy under another name (a shipped file evaluated again) is not
    other = Path(str(judged.get("path", ""))).name
    wrong_file = other.startswith("generator") and other != gen.name
    if judged.get("step", meta.get("step")) != meta.get("step") or wrong_file:
        raise ValueError(f"{metrics_path} evaluates {judged.get('path')} at step {judged.get('step')}, not {gen} "
                         f"(step {meta.get('step')})")
    if not (run_dir / "train_summary.json").is_file():
        raise ValueError(f"{run_dir / 'train_summary.json'} does not exist: the card's steps and hours come from it")
    summary = json.loads((run_dir / "train_summary.json").read_text())
    if meta.get("step") != summary.get("step"):
        raise ValueError(f"{gen} is at step {meta.get('step')}, {run_dir / 'train_summary.json'} at step "
                         f"{summary.get('step')}: not the run's last export")
    # checked before anything is copied; an extra average has no discriminator of its own
    paired = _paired_discriminator(run_dir, gen) if file == MAIN_FILE else None
    floor = json.loads(floor_path.read_text()).get("floor") if floor_path else None
    shipped = f"{name.replace('-', '_')}.safetensors"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gen, dest / shipped)
    sha = file_sha256(dest / shipped)
    card = f"{name.replace('-', '_')}.md"
    shown = None
    if evidence is not None:
        evidence.mkdir(parents=True, exist_ok=True)
        for folder, names in ((run_dir, EVIDENCE_FROM_RUN), (metrics_path.parent, EVIDENCE_FROM_EVAL)):
            for n in names:
                if (folder / n).is_file():
                    shutil.copyfile(folder / n, evidence / n)
        if gen.name != MAIN_FILE:  # the run's grid shows its main average: draw this file's own in its place
            _class_grid(gen, evidence / "samples_per_class.jpg")
        try:
            shown = evidence.resolve().relative_to(REPO).as_posix()
        except ValueError:
            shown = str(evidence)
    disc_file, disc = f"{name.replace('-', '_')}.disc.safetensors", None
    if paired is not None:
        shutil.copyfile(paired, dest / disc_file)
        disc = {"file": disc_file, "sha256": file_sha256(dest / disc_file)}
    else:  # a re-shipped name whose new run wrote no discriminator: the old one does not pair with it
        (dest / disc_file).unlink(missing_ok=True)
    text = model_card_markdown(name, meta, summary, metrics, floor, sha, shown)
    if gen.name != MAIN_FILE:
        text += (f"\nShipped from the run's `{gen.name}`: the average of G with decay "
                 f"{(meta.get('training') or {}).get('ema_decay')} (`train.ema_extra_decays`), kept beside the run's "
                 f"main average (decay {_main_decay(run_dir)}) over the same training. No discriminator is "
                 "shipped with it: the run's discriminator file pairs with its main average.\n")
    if disc:
        text += (f"\nShips its discriminator too (`{disc['file']}`, sha256 `{disc['sha256'][:12]}`, written with this "
                 "generator at the same step): continue its training on another machine with `--set "
                 f"train.init_generator=pretrained:{name} --set train.init_discriminator=pretrained:{name}`.\n")
    kept: dict[str, str] = {}
    if in_repository:  # the weights beside the evidence, out of the package
        (evidence / "generator").mkdir(parents=True, exist_ok=True)
        for f in [shipped] + ([disc_file] if disc else []):
            shutil.move(str(dest / f), evidence / "generator" / f)
            kept[f] = (evidence / "generator" / f).resolve().relative_to(REPO).as_posix()
        if disc:
            disc["archived_at"] = kept[disc_file]
        text += (f"\nKept in the source repository (`{kept[shipped]}`), not in the installed package: its size rule "
                 "keeps one generator, the default, in the wheel. A clone of the repository loads it by name.\n")
    write_text(dest / card, text)
    index_path = dest / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    index[name] = {"file": shipped, "sha256": sha, "card": card, "manifest_hash": meta.get("manifest_hash"),
                   "resolution": meta["resolution"], "classes": meta.get("class_names"), "step": meta.get("step"),
                   "licence": "CC BY-NC-SA 4.0", **({"discriminator": disc} if disc else {}),
                   **({"archived_at": kept[shipped]} if in_repository else {})}
    write_json(index_path, index)
    return REPO / kept[shipped] if in_repository else dest / shipped


def _class_grid(gen: Path, path: Path, per_class: int = 10) -> None:
    G = load_generator(gen)
    if G.num_classes:
        rows = [G.sample(per_class, c, seed=0) for c in range(G.num_classes)]
        labels = list(G.class_names or map(str, range(G.num_classes)))
    else:
        rows, labels = [G.sample(per_class, seed=0)], ["samples"]
    save_class_grid(rows, labels, path, title=f"{gen.name}: {per_class} samples per class (seed 0)")


def _main_decay(run_dir: Path) -> Any:
    main = run_dir / MAIN_FILE
    return (read_generator_metadata(main).get("training") or {}).get("ema_decay", "?") if main.is_file() else "?"


def _paired_discriminator(run_dir: Path, gen: Path) -> Path | None:
    """The run's ``discriminator.safetensors`` if it was written with ``gen`` (so the pair can be trained on:
    ``train.init_discriminator=pretrained:NAME``); None when the run has none; an error for another step's."""
    disc = run_dir / "discriminator.safetensors"
    if not disc.is_file():
        return None
    if read_discriminator(disc)[0].get("generator_sha256") != file_sha256(gen):
        raise ValueError(f"{disc} was not written with {gen} (another step or run): export the pair again "
                         "(`gan-augment export-discriminator RUN_DIR`) or remove it to ship the generator alone")
    return disc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="training run folder (generator.safetensors, train_summary.json)")
    p.add_argument("--name", required=True, help="e.g. ham10000-64")
    p.add_argument("--metrics", type=Path, required=True, help="metrics.json of gan-augment evaluate (inception)")
    p.add_argument("--floor", type=Path, help="study.json whose 'floor' gives the real-vs-real values")
    p.add_argument("--evidence", type=Path, help="folder for the card's grids and metrics (default "
                                                 "benchmarks/results/pretrained_<name>)")
    p.add_argument("--file", default=MAIN_FILE, help="which of the run's generator files (default %(default)s; "
                                                     "e.g. generator_ema0.998.safetensors of train.ema_extra_decays)")
    p.add_argument("--in-repository", action="store_true",
                   help="keep the weights in the evidence folder (loadable by name from a clone), not in the package")
    args = p.parse_args(argv)
    evidence = args.evidence or REPO / "benchmarks" / "results" / f"pretrained_{args.name.replace('-', '_')}"
    try:
        path = ship(args.run_dir, args.name, args.metrics, floor_path=args.floor, evidence=evidence,
                    file=args.file, in_repository=args.in_repository)
    except (ValueError, KeyError) as exc:
        print(f"ship_generator: {exc}", file=sys.stderr)
        return 2
    print(f"shipped {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0
