#!/usr/bin/env bash
# Evaluator container entrypoint: wait until the CARLA server answers RPC, then run the resumable Bench2Drive
# evaluation (`irlvla b2d eval`) attached to it. Extra arguments are passed on to `irlvla b2d eval`.
#
# Environment (defaults in docker/Dockerfile): CARLA_HOST, CARLA_PORT, ROUTES, AGENT_CONFIG, RESULTS_DIR, B2D_ROOT,
# CARLA_ROOT; CARLA_WAIT_S (default 600) bounds the wait.
set -euo pipefail

: "${CARLA_HOST:=localhost}" "${CARLA_PORT:=2000}" "${CARLA_WAIT_S:=600}"
: "${ROUTES:?set ROUTES to a route XML}" "${AGENT_CONFIG:?set AGENT_CONFIG}" "${RESULTS_DIR:=/results}"
: "${B2D_ROOT:=/opt/Bench2Drive}" "${CARLA_ROOT:=/opt/carla}"

if [[ "${1:-}" == "--shell" ]]; then shift; exec bash "$@"; fi

echo "irlvla: waiting up to ${CARLA_WAIT_S}s for CARLA RPC at ${CARLA_HOST}:${CARLA_PORT}" >&2
python3 - "$CARLA_HOST" "$CARLA_PORT" "$CARLA_WAIT_S" <<'PY'
import socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
import carla
while True:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
        client = carla.Client(host, port)
        client.set_timeout(10.0)
        print(f"irlvla: CARLA server {client.get_server_version()} is up", file=sys.stderr)
        break
    except Exception as exc:  # not listening yet, or listening but not answering RPC yet
        if time.monotonic() > deadline:
            sys.exit(f"irlvla: CARLA at {host}:{port} not ready after {limit:.0f}s: {exc}")
        time.sleep(5.0)
PY

mkdir -p "$RESULTS_DIR"
exec irlvla b2d eval \
    --routes "$ROUTES" \
    --agent /opt/irlvla/team_code/irlvla_b2d_agent.py \
    --agent-config "$AGENT_CONFIG" \
    --out "$RESULTS_DIR" \
    --carla "${CARLA_HOST}:${CARLA_PORT}" \
    --b2d-root "$B2D_ROOT" \
    --carla-root "$CARLA_ROOT" \
    --python python3 \
    --evaluator-cmd "python3 /opt/irlvla/docker/b2d_attach_evaluator.py --routes={routes} --repetitions=1 \
--track={track} --checkpoint={checkpoint} --agent={agent} --agent-config={agent_config} --debug=0 --host={host} \
--port={port} --traffic-manager-port={tm_port} --gpu-rank={gpu} --timeout={client_timeout}" \
    "$@"
