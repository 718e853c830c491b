"""Cut the embedded demo data set (data/ham10000_demo64/) from the full HAM10000 folder.

    python scripts/make_demo_data.py --ham-dir PATH/ham10000_200x150 [--out data/ham10000_demo64]

The split is the lesion-grouped 70/15/15 split (seed 0) that the default shipped generator was trained on: the
script rebuilds it from the metadata CSV and refuses to write anything unless its content hash is the generator's
``manifest_hash``. From it, the demo keeps what ``balance_isic.py --preset demo`` keeps: a stratified slice of
1,200 training images and at most 40 validation and 40 test images per class. Each image is stored as the
benchmark reads it at 64 px (shorter side to 64, centred crop, bicubic) in a JPEG of quality 95, under the same
``<class>/<image_id>.jpg`` path it has in the full folder, so that the demo's rows are literally rows of the full
split. ``ham10000_split.csv`` (the full split, images absent) travels with it: the benchmark checks that every demo
row belongs to it and that its hash is the one the generator records, which is how the generator check knows that
the generator never saw a demo validation or test image.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_augment.data import Manifest, build_manifest  # noqa: E402
from gan_augment.data.decode import load_pil, to_mode  # noqa: E402
from gan_augment.data.subset import per_class_cap, stratified_subset  # noqa: E402
from gan_augment.data.transforms import resize_to_square  # noqa: E402
from gan_augment.pretrained import DEFAULT_PRETRAINED, pretrained_info  # noqa: E402

TRAIN_IMAGES, EVAL_PER_CLASS, SIZE, QUALITY = 1200, 40, 64, 95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ham-dir", required=True, help="folder with HAM10000_metadata.csv and the images")
    ap.add_argument("--out", default=str(REPO / "data" / "ham10000_demo64"))
    args = ap.parse_args(argv)
    ham = Path(args.ham_dir)
    full, _ = build_manifest(metadata=str(ham / "HAM10000_metadata.csv"), image_dir=str(ham),
                             fractions=(0.7, 0.15, 0.15), seed=0)
    want = pretrained_info(DEFAULT_PRETRAINED)["manifest_hash"]
    if full.hash != want:
        raise SystemExit(f"the split of {ham} hashes to {full.short_hash}, not to the generator's {want[:12]}: "
                         "not the split the default generator was trained on; nothing written")
    keep = []
    train = full.indices("train")
    keep += [train[j] for j in stratified_subset([full.labels[i] for i in train], max_images=TRAIN_IMAGES, seed=0)]
    for split in ("val", "test"):
        idx = full.indices(split)
        keep += [idx[j] for j in per_class_cap([full.labels[i] for i in idx], EVAL_PER_CLASS, 0)]
    out = Path(args.out)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.is_dir() else None) as tmp:
        stage = Path(tmp) / out.name
        root = Path(full.paths[0]).parents[1]  # <ham>/<class>/<image>
        rows = []
        for i in sorted(keep):
            rel = Path(full.paths[i]).relative_to(root)
            dest = stage / rel.with_suffix(".jpg")
            dest.parent.mkdir(parents=True, exist_ok=True)
            img = resize_to_square(to_mode(load_pil(full.paths[i]), 3), SIZE, "center_crop")
            img.save(dest, quality=QUALITY)
            rows.append(i)
        demo = Manifest(paths=[str(stage / Path(full.paths[i]).relative_to(root).with_suffix(".jpg")) for i in rows],
                        labels=[full.labels[i] for i in rows], groups=[full.groups[i] for i in rows],
                        splits=[full.splits[i] for i in rows], class_names=list(full.class_names))
        demo.write(stage / "manifest.csv")
        source = Manifest(paths=[str(stage / Path(p).relative_to(root)) for p in full.paths], labels=full.labels,
                          groups=full.groups, splits=full.splits, class_names=list(full.class_names))
        source.write(stage / "ham10000_split.csv")
        assert Manifest.read(stage / "ham10000_split.csv").hash == want
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(stage), out)
    print(f"{out}: {len(rows)} images ({sum(p.stat().st_size for p in out.rglob('*.jpg')) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
