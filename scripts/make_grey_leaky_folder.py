"""Write a grey ImageFolder with its own *leaky* train/val/test split, cut from HAM10000 - the kind of folder users
bring (a public scan collection with "- Copy" files on both sides of its split), for checking ``assess.py`` end to end.

    python scripts/make_grey_leaky_folder.py --ham-dir ../shared/data/ham10000_200x150 --out runs/grey_leaky

Four classes (nv, mel, bkl, df; at most 600 / 300 / 300 / all images), converted to 8-bit grey PNG at their size
(200x150), split 70/15/15 by lesion (seed 0) into ``train/``, ``val/``, ``test/``; then ``--copies`` training images
are copied into ``test/`` as ``NAME - Copy.png`` (the leak ``assess.py`` must refuse). HAM10000 is CC BY-NC-SA 4.0
(Tschandl et al. 2018): the folder stays on your machine.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from collections import defaultdict
from pathlib import Path

from PIL import Image

CAPS = {"nv": 600, "mel": 300, "bkl": 300, "df": None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ham-dir", required=True, help="the HAM10000 folder with HAM10000_metadata.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--copies", type=int, default=12, help="training images copied into test/ (the leak)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    ham, out = Path(args.ham_dir), Path(args.out)
    meta = ham / "HAM10000_metadata.csv"
    if not meta.is_file():
        p.error(f"--ham-dir {ham}: no HAM10000_metadata.csv there")
    if out.exists():
        p.error(f"--out {out} exists; remove it or choose another folder")
    files = {f.stem: f for f in ham.rglob("*.jpg")}
    lesions: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    with open(meta, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["dx"] in CAPS and row["image_id"] in files:
                lesions[row["dx"]][row["lesion_id"]].append(row["image_id"])
    rng = random.Random(args.seed)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    train_files = []
    for dx, by_lesion in sorted(lesions.items()):
        ids = sorted(by_lesion)
        rng.shuffle(ids)
        n = len(ids)
        parts = {"train": ids[:round(0.7 * n)], "val": ids[round(0.7 * n):round(0.85 * n)],
                 "test": ids[round(0.85 * n):]}
        cap = CAPS[dx]
        for split, chosen in parts.items():
            images = [i for lesion in chosen for i in by_lesion[lesion]]
            if cap:
                images = images[:round(cap * {"train": 0.7, "val": 0.15, "test": 0.15}[split])]
            folder = tmp / split / dx
            folder.mkdir(parents=True, exist_ok=True)
            for image_id in images:
                Image.open(files[image_id]).convert("L").save(folder / f"{image_id}.png")
                if split == "train":
                    train_files.append(folder / f"{image_id}.png")
    for src in rng.sample(train_files, min(args.copies, len(train_files))):
        shutil.copy(src, tmp / "test" / src.parent.name / f"{src.stem} - Copy.png")
    tmp.rename(out)
    counts = {s: {d.name: len(list(d.iterdir())) for d in sorted((out / s).iterdir())} for s in ("train", "val", "test")}
    print(f"wrote {out}: {counts}; {args.copies} training images copied into test/ as '- Copy' files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
