#!/usr/bin/env bash
# Reproduce weights/irlvla_b2d.safetensors end to end on the embedded world: data -> anchors -> imitation ->
# RWM labels -> RWM -> RL (RWM reward; and the exact-scorer variant for the benchmark) -> export -> benchmark.
#
#   scripts/reproduce_weights.sh [OUT] [PROFILE]     PROFILE: full (default; <= 90 min on 2 idle CPU cores) | reduced
#
# Every stage is skipped when its output exists, so a killed run continues where it stopped (training stages also
# resume inside from their last checkpoint). Each command and its wall time are logged to OUT/commands.tsv, which the
# export step copies into weights/manifest.json. IRLVLA (the CLI) and PYTHON can be overridden from the environment.
set -euo pipefail
OUT=${1:-runs/reproduce}
PROFILE=${2:-full}
IRLVLA=${IRLVLA:-irlvla}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"

case "$PROFILE" in
  full)    TRAIN_SCENES=66; HELD_SCENES=33; IL_STEPS=400; IL_BATCH=8; LABEL_TRAIN=300; LABEL_HELD=120
           RWM_STEPS=300; RL_STEPS=150; RLX_STEPS=150; BENCH=120 ;;
  reduced) TRAIN_SCENES=66; HELD_SCENES=33; IL_STEPS=30; IL_BATCH=8; LABEL_TRAIN=40; LABEL_HELD=24
           RWM_STEPS=40; RL_STEPS=12; RLX_STEPS=8; BENCH=24 ;;
  *) echo "unknown profile $PROFILE (full | reduced)" >&2; exit 2 ;;
esac

stage() {  # stage NAME DONE_FILE COMMAND...
  local name=$1 done=$2; shift 2
  if [[ -e "$done" ]]; then echo "== $name: done ($done)"; return; fi
  echo "== $name: $*"
  local t0=$SECONDS
  "$@"
  printf '%s\t%s\t%s\n' "$name" "$((SECONDS - t0))" "$*" >> "$OUT/commands.tsv"
}

stage data-train "$OUT/data/train/manifest.json" \
  "$IRLVLA" train data --split train --scenes $TRAIN_SCENES --keep-trivial 0.25 --workers 2 --out "$OUT/data/train" --no-progress
stage data-heldout "$OUT/data/heldout/manifest.json" \
  "$IRLVLA" train data --split heldout --scenes $HELD_SCENES --workers 2 --out "$OUT/data/heldout" --no-progress
stage anchors "$OUT/anchors.npy" "$IRLVLA" train anchors --data "$OUT/data/train" --k 8 --out "$OUT/anchors.npy"
stage il "$OUT/il/model.safetensors" \
  "$IRLVLA" train il --data "$OUT/data/train" --anchors "$OUT/anchors.npy" --out "$OUT/il" \
  --steps $IL_STEPS --batch-size $IL_BATCH --lr 1e-3 --warmup-steps 10 --ema 0.99 --checkpoint-every 20 --num-workers 1 --no-progress
stage labels-train "$OUT/labels_train.npz" \
  "$IRLVLA" train rwm-labels --data "$OUT/data/train" --checkpoint "$OUT/il/model.safetensors" --max-samples $LABEL_TRAIN \
  --perturbed 8 --policy-samples 8 --workers 2 --out "$OUT/labels_train.npz" --no-progress
stage labels-heldout "$OUT/labels_heldout.npz" \
  "$IRLVLA" train rwm-labels --data "$OUT/data/heldout" --checkpoint "$OUT/il/model.safetensors" --max-samples $LABEL_HELD \
  --perturbed 8 --policy-samples 8 --workers 2 --out "$OUT/labels_heldout.npz" --no-progress
stage rwm "$OUT/rwm/model.safetensors" \
  "$IRLVLA" train rwm --data "$OUT/data/train" --labels "$OUT/labels_train.npz" --checkpoint "$OUT/il/model.safetensors" \
  --eval-data "$OUT/data/heldout" --eval-labels "$OUT/labels_heldout.npz" --out "$OUT/rwm" \
  --steps $RWM_STEPS --batch-size 8 --lr 1e-3 --warmup-steps 10 --checkpoint-every 20 --num-workers 1 --no-progress
stage rl-rwm "$OUT/rl_rwm/model.safetensors" \
  "$IRLVLA" train rl --data "$OUT/data/train" --checkpoint "$OUT/rwm/model.safetensors" --reward rwm --out "$OUT/rl_rwm" \
  --steps $RL_STEPS --batch-size 4 --lr 1e-4 --warmup-steps 5 --bc-weight 0.1 --checkpoint-every 10 --num-workers 1 --no-progress
stage rl-exact "$OUT/rl_exact/model.safetensors" \
  "$IRLVLA" train rl --data "$OUT/data/train" --checkpoint "$OUT/rwm/model.safetensors" --reward exact --out "$OUT/rl_exact" \
  --steps $RLX_STEPS --batch-size 4 --lr 1e-4 --warmup-steps 5 --bc-weight 0.1 --checkpoint-every 10 --num-workers 1 --no-progress
stage bench "$OUT/bench_policy.json" \
  "$PYTHON" "$ROOT/benchmarks/bench_policy.py" --data "$OUT/data/heldout" --max-samples $BENCH \
  --il "$OUT/il/model.safetensors" --rwm "$OUT/rwm/model.safetensors" --rl-rwm "$OUT/rl_rwm/model.safetensors" \
  --rl-exact "$OUT/rl_exact/model.safetensors" --rwm-agreement "$OUT/rwm/heldout_agreement.json" \
  --rl-summaries "$OUT/rl_rwm/summary.json" "$OUT/rl_exact/summary.json" --out "$OUT/bench_policy.json"
"$IRLVLA" train export --run "$OUT" --checkpoint "$OUT/rl_rwm/model.safetensors" --profile "$PROFILE" \
  --out "$ROOT/weights/irlvla_b2d.safetensors"
