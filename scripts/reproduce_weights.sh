#!/usr/bin/env bash
# Reproduce weights/irlvla_b2d.safetensors end to end on the embedded world: data -> anchors -> imitation -> planner
# (on the frozen trunk) -> RWM labels -> RWM -> RL (RWM reward; and the exact-scorer variant for the benchmark) ->
# open-loop benchmark -> closed-loop benchmark -> export.
#
#   scripts/reproduce_weights.sh [OUT] [PROFILE]
#
# PROFILE (weights/manifest.json holds the shipped run's own figures, per stage, with the machine's load average):
#   cpu2     (default) what the shipped checkpoint was trained with: 400 imitation steps at batch 8, 3000 planner
#            steps at batch 32, all 439 training samples labelled (+ 40 held-out), 2000 reward-model steps, 200 + 200
#            RL steps, the open-loop benchmark on all held-out samples, the closed loop on 8 held-out routes.
#            Measured on the 2-core VM with idle cores: see weights/README.md (the closed loop is most of it).
#   reduced  a quick check (30 imitation steps, 40 labelled samples, no closed loop).
#   full     longer training (2000 imitation steps, 10000 planner steps, ...; the closed loop on all 48 held-out
#            routes): NEVER RUN on this machine. Meant for a bigger or GPU machine.
#
# Stages with no dependency between them run at the same time (held-out data alongside anchors + imitation; the two
# label sets; the two RL variants; two policies at a time in the closed loop). Every stage is skipped when its output
# exists, so a killed run continues where it stopped (training stages also resume inside from their last
# checkpoint). Each command and its wall time are logged to OUT/commands.tsv, the whole run's elapsed time and the
# load average (sampled every 30 s) to OUT/pipeline.tsv and OUT/load.tsv; the export step copies them into
# weights/manifest.json. IRLVLA (the CLI) and PYTHON can be overridden from the environment.
set -euo pipefail
OUT=${1:-runs/reproduce}
PROFILE=${2:-cpu2}
IRLVLA=${IRLVLA:-irlvla}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"

# IL_EMA: an EMA of the weights only helps when the run is many times longer than 1 / (1 - decay); over 30 steps a
# 0.99 EMA keeps 0.99^30 = 74 % of the random initial weights, so the short profiles train without one.
case "$PROFILE" in
  cpu2)    TRAIN_SCENES=66; HELD_SCENES=33; IL_STEPS=400; IL_BATCH=8; IL_LR=2e-3; IL_WARMUP=4; IL_EMA=0; PLAN_STEPS=3000
           LABEL_TRAIN=0; LABEL_HELD=40; RWM_STEPS=2000; RL_STEPS=200; RLX_STEPS=200; RL_BC=0.5; RL_LR=1e-4
           BENCH=0; CL_ROUTES=8 ;;
  reduced) TRAIN_SCENES=66; HELD_SCENES=33; IL_STEPS=30; IL_BATCH=8; IL_LR=1e-3; IL_WARMUP=10; IL_EMA=0
           PLAN_STEPS=1500; LABEL_TRAIN=40; LABEL_HELD=24; RWM_STEPS=300; RL_STEPS=100; RLX_STEPS=50; RL_BC=0.5
           RL_LR=1e-4; BENCH=24; CL_ROUTES=0 ;;
  full)    TRAIN_SCENES=66; HELD_SCENES=33; IL_STEPS=2000; IL_BATCH=8; IL_LR=1e-3; IL_WARMUP=10; IL_EMA=0.99
           PLAN_STEPS=10000; LABEL_TRAIN=0; LABEL_HELD=120; RWM_STEPS=5000; RL_STEPS=1000; RLX_STEPS=1000
           RL_BC=0.5; RL_LR=1e-4; BENCH=0; CL_ROUTES=all ;;
  *) echo "unknown profile $PROFILE (cpu2 | reduced | full)" >&2; exit 2 ;;
esac

# The 11 scenario families the shipped checkpoint's data cycled through (scene j of a split is family j mod F): listing
# them keeps every seed's scene as it was after yield_emergency joined the families.
FAMILIES=straight_road,curve,intersection,t_junction,lane_change,merge,static_obstacle,cut_in,pedestrian_crossing,hard_brake,red_light

stage() {  # stage NAME DONE_FILE COMMAND...
  local name=$1 done=$2; shift 2
  if [[ -e "$done" ]]; then echo "== $name: done ($done)"; return; fi
  echo "== $name: $*"
  local t0=$SECONDS
  "$@"
  printf '%s\t%s\t%s\n' "$name" "$((SECONDS - t0))" "$*" >> "$OUT/commands.tsv"
}

together() {  # run the named functions at the same time; fail when any of them fails
  local pids=() rc=0
  for fn in "$@"; do "$fn" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}

( while :; do printf '%s\t%s\n' "$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.tsv"; sleep 30; done ) &
LOAD_PID=$!
trap 'kill $LOAD_PID 2>/dev/null || true' EXIT
[[ -e "$OUT/started" ]] || date +%s > "$OUT/started"  # a resumed run's elapsed time counts from the first start

data_heldout() {
  stage data-heldout "$OUT/data/heldout/manifest.json" \
    "$IRLVLA" train data --split heldout --scenes $HELD_SCENES --families $FAMILIES --workers 2 \
    --out "$OUT/data/heldout" --no-progress
}
anchors_il() {
  stage anchors "$OUT/anchors.npy" "$IRLVLA" train anchors --data "$OUT/data/train" --k 8 --out "$OUT/anchors.npy"
  stage il "$OUT/il/model.safetensors" \
    "$IRLVLA" train il --data "$OUT/data/train" --anchors "$OUT/anchors.npy" --out "$OUT/il" --steps $IL_STEPS \
    --batch-size $IL_BATCH --lr $IL_LR --warmup-steps $IL_WARMUP --ema $IL_EMA --checkpoint-every 8 --num-workers 1 \
    --no-progress
}
planner() {  # the planner alone on the imitation trunk's cached outputs (milliseconds a step), to convergence
  stage planner "$OUT/planner/model.safetensors" \
    "$IRLVLA" train planner --data "$OUT/data/train" --eval-data "$OUT/data/heldout" \
    --checkpoint "$OUT/il/model.safetensors" --out "$OUT/planner" --steps $PLAN_STEPS --batch-size 32 --lr 2e-3 \
    --warmup-steps 50 --checkpoint-every 500 --no-progress
}
labels_train() {
  stage labels-train "$OUT/labels_train.npz" \
    "$IRLVLA" train rwm-labels --data "$OUT/data/train" --checkpoint "$OUT/planner/model.safetensors" \
    --max-samples $LABEL_TRAIN --perturbed 8 --policy-samples 8 --workers 2 --out "$OUT/labels_train.npz" --no-progress
}
labels_heldout() {
  stage labels-heldout "$OUT/labels_heldout.npz" \
    "$IRLVLA" train rwm-labels --data "$OUT/data/heldout" --checkpoint "$OUT/planner/model.safetensors" \
    --max-samples $LABEL_HELD --perturbed 8 --policy-samples 8 --workers 2 --out "$OUT/labels_heldout.npz" --no-progress
}
# The two RL runs share the two cores: one torch thread each (two threads each spin against each other; measured,
# the trunk cache alone took over 9 CPU-minutes per process that way instead of about 30 s).
rl_rwm() {
  stage rl-rwm "$OUT/rl_rwm/model.safetensors" \
    env OMP_NUM_THREADS=1 "$IRLVLA" train rl --data "$OUT/data/train" --checkpoint "$OUT/rwm/model.safetensors" \
    --reward rwm \
    --out "$OUT/rl_rwm" --steps $RL_STEPS --batch-size 4 --lr $RL_LR --warmup-steps 10 --bc-weight $RL_BC \
    --checkpoint-every 50 --no-progress
}
rl_exact() {
  stage rl-exact "$OUT/rl_exact/model.safetensors" \
    env OMP_NUM_THREADS=1 "$IRLVLA" train rl --data "$OUT/data/train" --checkpoint "$OUT/rwm/model.safetensors" \
    --reward exact \
    --out "$OUT/rl_exact" --steps $RLX_STEPS --batch-size 4 --lr $RL_LR --warmup-steps 10 --bc-weight $RL_BC \
    --checkpoint-every 50 --no-progress
}

stage data-train "$OUT/data/train/manifest.json" \
  "$IRLVLA" train data --split train --scenes $TRAIN_SCENES --families $FAMILIES --keep-trivial 0.25 --workers 2 \
  --out "$OUT/data/train" --no-progress
together data_heldout anchors_il
planner
together labels_train labels_heldout
stage rwm "$OUT/rwm/model.safetensors" \
  "$IRLVLA" train rwm --data "$OUT/data/train" --labels "$OUT/labels_train.npz" --checkpoint "$OUT/planner/model.safetensors" \
  --eval-data "$OUT/data/heldout" --eval-labels "$OUT/labels_heldout.npz" --out "$OUT/rwm" \
  --steps $RWM_STEPS --batch-size 16 --lr 2e-3 --warmup-steps 20 --checkpoint-every 100 --num-workers 0 --no-progress
together rl_rwm rl_exact
stage bench "$OUT/bench_policy.json" \
  "$PYTHON" "$ROOT/benchmarks/bench_policy.py" --data "$OUT/data/heldout" --max-samples $BENCH \
  --il "$OUT/planner/model.safetensors" --rwm "$OUT/rwm/model.safetensors" --rl-rwm "$OUT/rl_rwm/model.safetensors" \
  --rl-exact "$OUT/rl_exact/model.safetensors" --rwm-agreement "$OUT/rwm/heldout_agreement.json" \
  --rl-summaries "$OUT/rl_rwm/summary.json" "$OUT/rl_exact/summary.json" --out "$OUT/bench_policy.json"
if [[ $CL_ROUTES != 0 ]]; then  # closed loop: the same policies drive held-out routes (two at a time)
  stage bench-closed-loop "$OUT/bench_closed_loop.json" \
    "$PYTHON" "$ROOT/benchmarks/bench_policy.py" --no-open-loop \
    --il "$OUT/planner/model.safetensors" --rwm "$OUT/rwm/model.safetensors" --rl-rwm "$OUT/rl_rwm/model.safetensors" \
    --rl-exact "$OUT/rl_exact/model.safetensors" --closed-loop-routes $CL_ROUTES --closed-loop-seed 0 \
    --closed-loop-workers 2 --closed-loop-out "$OUT/closed_loop" --out "$OUT/bench_closed_loop.json"
fi
printf 'pipeline\t%s\t%s\n' "$(($(date +%s) - $(cat "$OUT/started")))" "$PROFILE" >> "$OUT/pipeline.tsv"
"$IRLVLA" train export --run "$OUT" --checkpoint "$OUT/rl_rwm/model.safetensors" --profile "$PROFILE" \
  --out "$ROOT/weights/irlvla_b2d.safetensors"
