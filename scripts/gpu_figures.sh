#!/usr/bin/env bash
# The one prepared script that gathers the GPU figures of the inference runtimes (docs/runtime.md):
#   1. installs what the project needs and the machine lacks, from local wheels only (GPU machines here are offline);
#   2. records the machine (nvidia-smi, torch/CUDA, which backends exist);
#   3. runs benchmarks/bench_latency.py for every backend and torch variant it can, `full` on the GPU (uint8 frames in,
#      selected trajectory out, VLM excluded) beside torch eager fp32, plus `tiny` on one CPU core;
#   4. runs the runtime parity tests (CPU reference vs CUDA eager, CUDA graphs, half precision, device preprocessing,
#      ONNX Runtime CUDA provider and TensorRT where installed);
#   5. writes summary.json (median / p90 total per run, the 15 ms target, failures as failures).
#
# usage: scripts/gpu_figures.sh [OUT_DIR]        (default: $OUT, else out/gpu_figures)
# env:   PYTHON (default python3), WHEELS (a folder of wheels for missing packages), DEVICE (default cuda),
#        PRESET (default full), REPEATS (default 30), SKIP_TESTS=1, RUN_TIMEOUT (s per benchmark run, default 240),
#        BUDGET_S (start no new benchmark after this many seconds, default 500)
# A smoke run on a CPU machine: DEVICE=cpu PRESET=tiny REPEATS=3 scripts/gpu_figures.sh /tmp/figs
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-out/gpu_figures}}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-full}
REPEATS=${REPEATS:-30}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
mkdir -p "$OUT_DIR/bench"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export IRLVLA_CACHE="${IRLVLA_CACHE:-$OUT_DIR/.cache}"
log() { echo "[gpu_figures $(date -u +%H:%M:%S)] $*" | tee -a "$OUT_DIR/log.txt"; }

# ---- 1. dependencies (import name -> wheel name), from $WHEELS only
missing=$("$PY" - <<'PYEOF'
import importlib.util
need = {"numpy": "numpy", "scipy": "scipy", "shapely": "shapely", "PIL": "pillow", "yaml": "pyyaml",
        "timm": "timm", "transformers": "transformers", "diffusers": "diffusers", "safetensors": "safetensors",
        "onnx": "onnx", "onnxruntime": "onnxruntime", "pytest": "pytest"}
print(" ".join(w for m, w in need.items() if importlib.util.find_spec(m) is None))
PYEOF
)
if [ -n "$missing" ]; then
  if [ -n "${WHEELS:-}" ]; then
    log "installing from $WHEELS: $missing"
    "$PY" -m pip install --no-index --find-links "$WHEELS" $missing 2>&1 | tail -n 3 | tee -a "$OUT_DIR/log.txt"
  else
    log "missing packages and no WHEELS folder: $missing (runs that need them will fail and be recorded)"
  fi
fi

# ---- 2. the machine
"$PY" - "$OUT_DIR/env.json" <<'PYEOF'
import json, subprocess, sys, torch
from agent.runtime.availability import backends_available, has, ort_providers_available
env = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
       "backends": backends_available(), "ort_providers": ort_providers_available(),
       "tensorrt_installed": has("tensorrt")}
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                        "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
except Exception as exc:
    env["nvidia_smi"] = f"unavailable: {exc}"
json.dump(env, open(sys.argv[1], "w"), indent=2)
print(json.dumps(env))
PYEOF

# ---- 3. benchmarks: NAME then bench_latency arguments; a failed run leaves its error in its JSON and goes on.
# Ordered by value: torch variants on the GPU first, then the parity tests, then the slow optional runs; once
# BUDGET_S seconds have passed the remaining runs are recorded as skipped (one device session is short).
START=$(date +%s)
BUDGET_S=${BUDGET_S:-500}
bench() {
  local name=$1; shift
  if [ $(( $(date +%s) - START )) -gt "$BUDGET_S" ]; then
    log "skip $name (time budget of ${BUDGET_S} s spent)"
    echo "{\"error\": \"skipped: time budget spent\", \"args\": \"$*\"}" > "$OUT_DIR/bench/$name.json"
    return
  fi
  log "bench $name: $*"
  timeout "$RUN_TIMEOUT" "$PY" benchmarks/bench_latency.py --repeats "$REPEATS" --warmup 5 "$@" \
    > "$OUT_DIR/bench/$name.json" 2> "$OUT_DIR/bench/$name.err"
  local rc=$?
  [ $rc -eq 0 ] || echo "{\"error\": \"exit status $rc\", \"args\": \"$*\"}" > "$OUT_DIR/bench/$name.json"
}
G="--preset $PRESET --device $DEVICE"
bench torch_fp32_eager        $G --backend torch --preprocess host
bench torch_fp32_devpre       $G --backend torch --preprocess device
if [ "$DEVICE" != cpu ]; then
  bench torch_fp32_graphs       $G --backend torch --preprocess device --cuda-graphs
  bench torch_fp16_cl           $G --backend torch --preprocess device --precision fp16 --channels-last
  bench torch_fp16_cl_graphs    $G --backend torch --preprocess device --precision fp16 --channels-last --cuda-graphs
  bench torch_bf16_cl_graphs    $G --backend torch --preprocess device --precision bf16 --channels-last --cuda-graphs
  bench torch_fp16_all_graphs   $G --backend torch --preprocess device --precision fp16 --head-precision fp16 \
                                   --channels-last --cuda-graphs
  bench torch_fp16_graphs_native $G --backend torch --preprocess device --precision fp16 --channels-last \
                                   --cuda-graphs --native
  bench tensorrt_fp16           $G --backend tensorrt --precision fp16
  bench onnxruntime_cuda        $G --backend onnxruntime --ort-providers tensorrt cuda
fi

# ---- 4. parity tests (CPU reference vs CUDA eager, CUDA graphs, half precision, device preprocessing, ONNX Runtime's
# CUDA provider and TensorRT where installed; torch vs ONNX Runtime on the CPU)
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  log "parity tests"
  timeout 300 "$PY" -m pytest tests/agent/test_runtime_gpu.py tests/agent/test_runtime.py -q -p no:cacheprovider \
    --junitxml="$OUT_DIR/tests.xml" > "$OUT_DIR/tests.txt" 2>&1
  echo "$?" > "$OUT_DIR/tests.rc"
  tail -n 5 "$OUT_DIR/tests.txt" | tee -a "$OUT_DIR/log.txt"
fi

# ---- slow optional runs
bench tiny_cpu_1core            --preset tiny --device cpu --backend torch onnxruntime --threads 1
if [ "$DEVICE" != cpu ]; then
  bench torch_fp16_compile      $G --backend torch --preprocess device --precision fp16 --channels-last --compile \
                                   --cuda-graphs
fi
bench onnxruntime_cpu_ep        $G --backend onnxruntime --repeats 5

# ---- 5. summary
"$PY" - "$OUT_DIR" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
runs = {}
for f in sorted((out / "bench").glob("*.json")):
    try:
        d = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        runs[f.stem] = {"error": f"unreadable: {exc}"}
        continue
    if "results" not in d:
        runs[f.stem] = {"error": d.get("error", "no results")}
        continue
    for backend, r in d["results"].items():
        key = f.stem if len(d["results"]) == 1 else f"{f.stem}:{backend}"
        if "stages" not in r:
            runs[key] = {"error": r.get("error")}
            continue
        runs[key] = {"preset": d["preset"], "device": d["device"], "device_name": d["device_name"],
                     "native": d["native_resolution"], "runtime": r["runtime"],
                     "total_median_ms": r["stages"]["total"]["median_ms"], "total_p90_ms": r["stages"]["total"]["p90_ms"],
                     "stages_median_ms": {k: v["median_ms"] for k, v in r["stages"].items()}}
gpu = {k: v for k, v in runs.items() if "total_median_ms" in v and v["device"] != "cpu" and v["preset"] == "full"
       and not v["native"]}
best = min(gpu.items(), key=lambda kv: kv[1]["total_median_ms"]) if gpu else None
ref = runs.get("torch_fp32_eager", {}).get("total_median_ms")
summary = {"runs": runs,
           "reference_torch_eager_fp32_ms": ref,
           "best": {"run": best[0], "total_median_ms": best[1]["total_median_ms"]} if best else None,
           "target_15ms_met": bool(best and best[1]["total_median_ms"] <= 15.0),
           "tests_rc": (out / "tests.rc").read_text().strip() if (out / "tests.rc").exists() else None}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
for k, v in runs.items():
    print(f"{k:34s} " + (f"median {v['total_median_ms']:8.2f} ms  p90 {v['total_p90_ms']:8.2f} ms"
                         if "total_median_ms" in v else f"ERROR {v['error']}"))
print("best:", summary["best"], "target <= 15 ms met:", summary["target_15ms_met"])
PYEOF
log "done: $OUT_DIR/summary.json"
