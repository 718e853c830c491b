"""Regenerate (--write) or check the results tables from committed results.json files: the README's (the runs
that matter), docs/benchmark.md's (every benchmarks/results/*/results.json) and that of every study folder whose
README.md carries the table markers (from the folder's own */results.json)."""

import argparse
import sys
from pathlib import Path

import studies.arms  # noqa: F401  (registers the studies' arms, which committed folders ran)
import studies.teach  # noqa: F401  (and the regimes study's mechanisms)
from ga_bench.results_table import table_files, update_readme

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write", action="store_true", help="rewrite the tables (default: only check)")
    args = p.parse_args()
    root = Path(__file__).resolve().parents[1]
    stale = []
    for readme, results_dir, folders in table_files(root):
        ok = update_readme(readme, results_dir, write=args.write, folders=folders)
        name = readme.relative_to(root)
        print(f"{name}: results table is up to date" if ok else
              (f"{name}: results table rewritten" if args.write else f"{name}: results table is STALE"))
        stale += [] if ok else [name]
    if stale and not args.write:
        print("run `python benchmarks/results_table.py --write`")
    sys.exit(0 if not stale or args.write else 1)
