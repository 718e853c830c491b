"""Regenerate (--write) or check the README's results table from benchmarks/results/*/results.json."""

import argparse
import sys
from pathlib import Path

from classifier.results_table import update_readme

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write", action="store_true", help="rewrite README.md (default: only check)")
    args = p.parse_args()
    root = Path(__file__).resolve().parents[1]
    ok = update_readme(root / "README.md", "benchmarks/results", write=args.write)
    print("README results table is up to date" if ok else
          ("README results table rewritten" if args.write else "README results table is STALE: run with --write"))
    sys.exit(0 if ok or args.write else 1)
