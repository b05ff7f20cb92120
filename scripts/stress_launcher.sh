#!/usr/bin/env bash
# The Bench2Drive launcher tests, RUNS times in a row (default 10), with two CPU-burning processes beside them: the
# launcher must not depend on timing (issue 9). Stops at the first failing run. Usage, from anywhere:
#   scripts/stress_launcher.sh [RUNS]        (PYTHON=... to pick the interpreter; NO_RAY=1 to leave out the Ray tests)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
py=${PYTHON:-python}
tests=(tests/bench2drive_eval/test_b2d_launcher.py tests/bench2drive_eval/test_b2d_infra.py)
[[ -z "${NO_RAY:-}" ]] && tests+=(tests/bench2drive_eval/test_b2d_ray.py)

burners=()
stop_burners() {
    for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_burners EXIT INT TERM
for _ in 1 2; do
    "$py" -c 'while True: pass' &
    burners+=("$!")
done
echo "CPU burners: ${burners[*]}"

start=$SECONDS
for i in $(seq 1 "$runs"); do
    echo "=== run $i/$runs ($((SECONDS - start)) s so far)"
    if ! "$py" -m pytest -q -x -p no:cacheprovider "${tests[@]}"; then
        echo "FAILED on run $i of $runs"
        exit 1
    fi
done
echo "all $runs runs passed in $((SECONDS - start)) s"
