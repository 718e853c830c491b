#!/usr/bin/env bash
# One step of the GPU plan per batch job, for a GPU node with no internet, no access to the data's usual place
# and a job time limit (a hospital or university cluster): each step stops cleanly before MINUTES, returns what
# it finished as files under $OUT, and the same step in the next job resumes it. Prepare on a connected machine
# with `bash scripts/offline_pack.sh` (data archive + wheelhouse); after each job unpack what it returned with
# `bash scripts/offline_collect.sh OUT` (it commits nothing).
#
#   OUT=<empty folder> [GAN_AUGMENT_COMMIT=<sha>] bash scripts/offline_job.sh STEP [REGIME] [MINUTES]
#
# STEP
#   prep             unpack the data archive, install packed wheels, put a packed generator / aug classifier in
#                    place (every step does this first; alone it is for a job that only brings something)
#   gan REGIME       train configs/ham10000_256.yaml for MINUTES (default 8) on REGIME's training split -
#                    full: the lesion-grouped 70/15/15 split, seed 0; frac025: the benchmark's 25 % reduction of
#                    it (written first by balance_isic.py --prepare-only) - resuming from the node's last
#                    checkpoint. Returns gan_REGIME.tar (log, curves, sample grid, summary, config) and the EMA
#                    generator as gen_REGIME.part-NN + .sha256 (one part, or parts of at most PART_MIB MiB where
#                    the way back limits the size of a file).
#   bench REGIME     balance_isic.py --preset full [--train-fraction 0.25] with that regime's generator (trained
#                    on this node, or brought in .gen/REGIME; with none yet, the four baseline arms only),
#                    pausing between runs after MINUTES (default 7.5), hard stop a minute later. Resumes from the
#                    runs committed under benchmarks/results/ham10000_REGIME and this node's. Returns
#                    bench_REGIME.tar and, once trained, the aug seed-0 classifier (aug_REGIME.safetensors, needed
#                    by gan_filtered and the generator check in later jobs: bring it back at its place under runs/).
#   ablation         benchmarks/gan_ablation.py at 128 px, 3,000 steps per variant, each variant pausing after
#                    MINUTES (default 8) and resuming in the next job; returns ablation.tar.
#   speed            benchmarks/speed.py --device cuda; returns speed.tar.
#
# Environment: FEATURES (inception | lite0; default inception) is the feature space of FID/KID in `bench` and
# `ablation` - lite0 where the 87 MB InceptionV3 wheel cannot be brought; PART_MIB (default 0: no limit);
# WORK_DIR (default .data: kept on the node between jobs), DATA_DIR, WHEEL_DIRS, GEN_DIR, RESULTS_DIR, PY.
#
# Trying a step here (CPU, tiny): OUT=/tmp/out DATA_DIR=../shared/data/ham10000_200x150 PY=.venv/bin/python
#   GAN_SET="train.steps=4 model.resolution=32 ..." BENCH_ARGS="--image-size 32 ..." bash scripts/offline_job.sh gan full
# (tests/test_offline_jobs.py does exactly that, across three simulated nodes).
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:?usage: offline_job.sh prep|gan|bench|ablation|speed [full|frac025] [MINUTES]}
regime=${2:-full}
PY=${PY:-python3}
: "${OUT:?set OUT to an empty folder: what the job returns is written there}"
WORK=${WORK_DIR:-$PWD/.data}                  # kept on the node between jobs (ignored by git)
DATA=${DATA_DIR:-$WORK/ham10000_200x150}
SITE=${SITE:-/tmp/site}                        # where packed wheels are installed
WHEEL_DIRS=${WHEEL_DIRS-.whl .whl-lite0 .whl-inception}  # packed wheel folders
GEN_DIR=${GEN_DIR:-.gen}                      # packed generator parts, one folder per regime
PART_MIB=${PART_MIB:-0}                       # largest file returned (0: no limit)
FEATURES=${FEATURES:-inception}               # FID/KID feature space of bench and ablation
RESULTS=${RESULTS_DIR:-benchmarks/results}    # committed results (earlier sessions' runs to resume from)
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
case $regime in
  full) frac=(); gan_name=gan_ham10000_256 ;;
  frac025) frac=(--train-fraction 0.25); gan_name=gan_ham10000_frac025_256 ;;
  *) echo "offline_job: unknown regime '$regime' (full | frac025)" >&2; exit 2 ;;
esac
mkdir -p "$WORK/results" "$WORK/stash"
say() { echo "[offline_job $(date -u +%H:%M:%S)] $*"; }

# ---- prep (every step)
if [ ! -f "$DATA/HAM10000_metadata.csv" ]; then
  [ -f .carry/ham.tar ] || { echo "offline_job: no data at $DATA and no .carry/ham.tar: bring the data archive (scripts/offline_pack.sh)" >&2; exit 2; }
  tar -xf .carry/ham.tar -C "$(dirname "$DATA")" && say "unpacked HAM10000 into $(dirname "$DATA")"
fi
shopt -s nullglob
wheels=()
for d in $WHEEL_DIRS; do wheels+=("$d"/*.whl); done
if [ ${#wheels[@]} -gt 0 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
  say "installed ${#wheels[@]} wheels into $SITE"
fi
for r in full frac025; do  # packed generator parts -> one verified file on this node
  parts=("$GEN_DIR/$r"/generator.part-*)
  [ ${#parts[@]} -gt 0 ] || continue
  cat "${parts[@]}" > "$WORK/stash/gen_$r.safetensors.tmp"
  if [ -f "$GEN_DIR/$r/generator.sha256" ]; then
    want=$(cut -d' ' -f1 "$GEN_DIR/$r/generator.sha256")
    got=$(sha256sum "$WORK/stash/gen_$r.safetensors.tmp" | cut -d' ' -f1)
    [ "$want" = "$got" ] || { echo "offline_job: $GEN_DIR/$r parts do not join to the recorded sha256" >&2; exit 2; }
  fi
  mv "$WORK/stash/gen_$r.safetensors.tmp" "$WORK/stash/gen_$r.safetensors" && say "stashed the $r generator"
done
for r in full frac025; do  # a brought aug seed-0 classifier -> the benchmark folder on this node
  src=$RESULTS/ham10000_$r/runs/aug_seed0.safetensors
  if [ -f "$src" ]; then mkdir -p "$WORK/results/ham10000_$r/runs"; cp "$src" "$WORK/results/ham10000_$r/runs/"; fi
done
$PY -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"

pack() {  # pack NAME FOLDER...: folders under $WORK/results -> $OUT/NAME.tar as benchmarks/results/FOLDER
  # without weights, checkpoints, TensorBoard events, the per-step sample grids (samples/: one 256 px grid is
  # MBs; the final samples_per_class.png stays) and manifest.csv (1 MB; its hash is in every result and the
  # split is rebuilt from the data), big PNGs as palette PNGs: results stay small enough to commit
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
    $PY - "$out/job_runs.json" "$regime" <<'EOF'
import json, sys
from gan_augment.provenance import run_metadata
from gan_augment._io import write_json
path, regime = sys.argv[1], sys.argv[2]
runs = json.load(open(path))["jobs"] if __import__("os").path.isfile(path) else []
runs.append(run_metadata(["bash", "scripts/offline_job.sh", "gan", regime]))
write_json(path, {"jobs": runs})
EOF
    pack "gan_$regime" "$gan_name"
    if [ -f "$out/generator.safetensors" ]; then
      if [ "$PART_MIB" -gt 0 ]; then split -b "${PART_MIB}M" -d "$out/generator.safetensors" "$OUT/gen_$regime.part-"
      else cp "$out/generator.safetensors" "$OUT/gen_$regime.part-00"; fi
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
      say "no $regime generator on this node (run 'gan $regime' or bring .gen): the four baseline arms only"
    fi
    say "balance_isic.py --preset full ${frac[*]} ${with[*]} (pausing after ${minutes} min)"
    rc=0
    # a hard stop 1 min after the soft one: the job must keep time to pack what finished
    timeout -s INT "$(awk "BEGIN{print int($minutes*60+60)}")" \
      $PY benchmarks/balance_isic.py --preset full "${frac[@]}" --data-dir "$DATA" --out "$out" "${with[@]}" \
        --check-features "$FEATURES" --time-limit-minutes "$minutes" --no-progress ${BENCH_ARGS:-} || rc=$?
    pack "bench_$regime" "ham10000_$regime"
    [ -f "$out/runs/aug_seed0.safetensors" ] && cp "$out/runs/aug_seed0.safetensors" "$OUT/aug_$regime.safetensors"
    say "benchmark exit code $rc (2 with 'paused' above: rerun this step to continue)"
    exit $rc ;;
  ablation)
    minutes=${3:-8}
    rc=0
    $PY benchmarks/gan_ablation.py --base configs/ham10000_256.yaml --out "$WORK/results/gan_ablation_gpu128" \
      --steps "${ABLATION_STEPS:-3000}" --features "$FEATURES" --set model.resolution=128 \
      --set "data.metadata=$DATA/HAM10000_metadata.csv" --set "data.image_dir=$DATA" \
      --set "train.time_limit_minutes=$minutes" ${ABLATION_ARGS:-} || rc=$?
    pack ablation gan_ablation_gpu128
    exit $rc ;;
  speed)
    rc=0
    $PY benchmarks/speed.py --device cuda --out "$WORK/results/speed/gpu" || rc=$?
    pack speed speed
    exit $rc ;;
  *) echo "offline_job: unknown step '$step' (prep | gan | bench | ablation | speed)" >&2; exit 2 ;;
esac
