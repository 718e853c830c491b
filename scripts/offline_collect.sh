#!/usr/bin/env bash
# Unpack what a `scripts/offline_job.sh` job returned (its OUT folder, copied back) into this checkout:
#   *.tar                      -> benchmarks/results/... (logs, plots, per-run records; reviewed, then committed)
#   gen_REGIME.part-NN/.sha256 -> .gen/REGIME/ (ignored; bring it to a later job) and, joined and checked,
#                                 runs/gan_REGIME/generator.safetensors for use here
#   aug_REGIME.safetensors     -> benchmarks/results/ham10000_REGIME/runs/aug_seed0.safetensors (ignored; bring it)
# Commits nothing.  Usage: bash scripts/offline_collect.sh OUT
set -euo pipefail
src=$(cd "${1:?usage: offline_collect.sh OUT}" && pwd)
cd "${DEST:-$(dirname "$0")/..}"  # DEST: another checkout (tests)
shopt -s nullglob
for t in "$src"/*.tar; do
  tar -xf "$t" && echo "unpacked $(basename "$t"): $(tar -tf "$t" | cut -d/ -f1-3 | sort -u | tr '\n' ' ')"
done
for sum in "$src"/gen_*.sha256; do
  r=$(basename "$sum" .sha256); r=${r#gen_}
  parts=("$src"/gen_"$r".part-*)
  [ ${#parts[@]} -gt 0 ] || { echo "offline_collect: $sum but no parts" >&2; exit 2; }
  rm -rf ".gen/$r.tmp" && mkdir -p ".gen/$r.tmp" "runs/gan_$r"
  for p in "${parts[@]}"; do cp "$p" ".gen/$r.tmp/generator.part-${p##*.part-}"; done
  cp "$sum" ".gen/$r.tmp/generator.sha256"
  cat ".gen/$r.tmp"/generator.part-* > "runs/gan_$r/generator.safetensors.tmp"
  want=$(cut -d' ' -f1 "$sum"); got=$(sha256sum "runs/gan_$r/generator.safetensors.tmp" | cut -d' ' -f1)
  [ "$want" = "$got" ] || { echo "offline_collect: the $r generator parts do not match $sum" >&2; exit 2; }
  mv "runs/gan_$r/generator.safetensors.tmp" "runs/gan_$r/generator.safetensors"
  rm -rf ".gen/$r" && mv ".gen/$r.tmp" ".gen/$r"
  echo "generator ($r): .gen/$r (bring it to a later job) and runs/gan_$r/generator.safetensors (sha256 ${got:0:12})"
done
for w in "$src"/aug_*.safetensors; do
  r=$(basename "$w" .safetensors); r=${r#aug_}
  mkdir -p "benchmarks/results/ham10000_$r/runs"
  cp "$w" "benchmarks/results/ham10000_$r/runs/aug_seed0.safetensors"
  echo "aug classifier ($r): benchmarks/results/ham10000_$r/runs/aug_seed0.safetensors (ignored; bring it to a later job)"
done
