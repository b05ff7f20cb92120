"""Stand-in for leaderboard_evaluator.py: same CLI, writes realistic checkpoint records and metric_info route by route.

Cues (env): FAKE_B2D_STATE folder (required; per-route attempt counters and runs.log of "<route> <outcome>"),
FAKE_B2D_ROUTE_SECONDS (sleep per route), and comma-separated route ids:
FAKE_B2D_HANG_ONCE (hang forever on the first attempt), FAKE_B2D_CRASH_ONCE (write a "Failed - Simulation crashed"
record and exit -1 on the first attempt), FAKE_B2D_DIE_ONCE (exit without a record on the first attempt),
FAKE_B2D_ALWAYS_DIE (exit without a record on every attempt). With --port it requires the CARLA port to accept
connections before each route, as the real client does. FAKE_B2D_SPAWN_SERVER=1 starts $CARLA_ROOT/CarlaUE4.sh
itself, in a session of its own, as the B2D evaluator does (FAKE_B2D_SPAWN_DELAY: seconds the spawning shell waits
before running it; its pid goes to spawners.log).

Start-up, as the real evaluator: connect (with --port), then write the checkpoint with no records (its readiness)
before the first route. FAKE_B2D_START_DELAY delays that by some seconds; FAKE_B2D_FAIL_START makes it exit 1 before
(a missing leaderboard import); FAKE_B2D_FAIL_START_AFTER=N does so once N routes are done (runs.log);
FAKE_B2D_DIE_AFTER_SPAWN=1 exits 139 right after spawning the server.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

KEYS = [
    "collisions_layout",
    "collisions_pedestrian",
    "collisions_vehicle",
    "red_light",
    "stop_infraction",
    "outside_route_lanes",
    "min_speed_infractions",
    "yield_emergency_vehicle_infractions",
    "scenario_timeouts",
    "route_dev",
    "vehicle_blocked",
    "route_timeout",
]


def ids(name):
    return {x for x in os.environ.get(name, "").split(",") if x}


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def bump(state, rid):
    path = os.path.join(state, f"attempts_{rid}")
    n = int(open(path).read()) if os.path.exists(path) else 0
    with open(path, "w") as f:
        f.write(str(n + 1))
    return n + 1


def record(rid, town, scen, i, status, score_route):
    infr = {k: [] for k in KEYS}
    infr["min_speed_infractions"] = [f"Average speed is {50 + int(rid) % 100}.5% of the surrounding traffic's one"]
    if status != "Completed":
        infr["vehicle_blocked"] = ["Agent got blocked at (x=1.0, y=2.0, z=0.0)"]
    return {
        "index": i,
        "route_id": f"RouteScenario_{rid}_rep0",
        "scenario_name": scen,
        "weather_id": "1",
        "save_name": f"RouteScenario_{rid}_rep0_{town}_{scen}_1_01_01_00_00_{i:02d}",
        "status": status,
        "num_infractions": sum(len(v) for v in infr.values()),
        "infractions": infr,
        "scores": {"score_route": score_route, "score_penalty": 1.0, "score_composed": score_route},
        "meta": {"route_length": 100.0, "duration_game": 10.0, "duration_system": 12.0},
        "town_name": town,
    }


def main():
    p = argparse.ArgumentParser()
    for a in [
        "--routes",
        "--checkpoint",
        "--agent",
        "--agent-config",
        "--track",
        "--host",
        "--record",
        "--debug-checkpoint",
        "--routes-subset",
    ]:
        p.add_argument(a)
    for a in ["--port", "--traffic-manager-port", "--traffic-manager-seed", "--debug", "--repetitions", "--gpu-rank"]:
        p.add_argument(a, type=int, default=0)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--resume", type=bool, default=False)
    args = p.parse_args()
    state = os.environ["FAKE_B2D_STATE"]
    save_path = os.environ["SAVE_PATH"]
    with open(os.path.join(state, "evaluators.log"), "a") as f:
        f.write(
            f"{os.getpid()} {os.getpgid(0)} gpu={os.environ.get('CUDA_VISIBLE_DEVICES')} "
            f"track={os.environ.get('CHALLENGE_TRACK_CODENAME')} bench={os.environ.get('IS_BENCH2DRIVE')}\n"
        )
    if os.environ.get("FAKE_B2D_FAIL_START") or _done_routes(state) >= int(
        os.environ.get("FAKE_B2D_FAIL_START_AFTER", "1000000")
    ):
        print("ModuleNotFoundError: No module named 'leaderboard'", flush=True)
        return 1
    if os.environ.get("FAKE_B2D_SPAWN_SERVER"):
        delay = os.environ.get("FAKE_B2D_SPAWN_DELAY", "")
        prefix = f"echo $$ >> {state}/spawners.log; sleep {delay}; " if delay else ""
        cmd = (
            f"{prefix}{os.environ['CARLA_ROOT']}/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port={args.port} "
            f"-graphicsadapter={args.gpu_rank}"
        )
        subprocess.Popen(cmd, shell=True, preexec_fn=os.setsid)
        if os.environ.get("FAKE_B2D_DIE_AFTER_SPAWN"):
            os._exit(139)
    routes = ET.parse(args.routes).getroot().findall("route")
    doc = {
        "_checkpoint": {"global_record": {}, "progress": [0, len(routes)], "records": []},
        "entry_status": "Started",
        "eligible": True,
        "sensors": [],
        "values": [],
        "labels": [],
    }
    per_route = float(os.environ.get("FAKE_B2D_ROUTE_SECONDS", "0.05"))
    if not _simulator_up(args):
        return 255
    time.sleep(float(os.environ.get("FAKE_B2D_START_DELAY", "0")))
    write_json(args.checkpoint, doc)  # ready: connected, before the first route
    for i, route in enumerate(routes):
        rid, town = route.get("id"), route.get("town")
        scen = route.find("scenarios").find("scenario").get("name")
        n = bump(state, rid)
        if not _simulator_up(args):
            return 255
        log = open(os.path.join(state, "runs.log"), "a")
        if rid in ids("FAKE_B2D_HANG_ONCE") and n == 1:
            log.write(f"{rid} hang\n")
            log.close()
            signal.pause()
        if (rid in ids("FAKE_B2D_DIE_ONCE") and n == 1) or rid in ids("FAKE_B2D_ALWAYS_DIE"):
            log.write(f"{rid} die\n")
            log.close()
            os._exit(139)
        time.sleep(per_route)
        if rid in ids("FAKE_B2D_CRASH_ONCE") and n == 1:
            rec = record(rid, town, scen, i, "Failed - Simulation crashed", 0.0)
            doc["_checkpoint"]["records"].append(rec)
            doc["entry_status"] = "Crashed"
            write_json(args.checkpoint, doc)
            log.write(f"{rid} crash\n")
            log.close()
            return 255
        ok = int(rid) % 3 != 0
        rec = record(rid, town, scen, i, "Completed" if ok else "Failed - Agent got blocked", 100.0 if ok else 40.0)
        mdir = os.path.join(save_path, rec["save_name"])
        os.makedirs(mdir, exist_ok=True)
        steps = {
            str(t): {
                "acceleration": [0.5, 0.0, 0.0],
                "angular_velocity": [0.0, 0.0, 0.1],
                "forward_vector": [1.0, 0.0, 0.0],
                "right_vector": [0.0, 1.0, 0.0],
                "location": [t * 0.1, 0.0, 0.0],
                "rotation": [0.0, 0.0, 0.0],
            }
            for t in range(45)
        }
        write_json(os.path.join(mdir, "metric_info.json"), steps)
        doc["_checkpoint"]["records"].append(rec)
        doc["_checkpoint"]["progress"] = [i + 1, len(routes)]
        write_json(args.checkpoint, doc)
        log.write(f"{rid} done\n")
        log.close()
    doc["entry_status"] = "Finished"
    write_json(args.checkpoint, doc)
    return 0


def _simulator_up(args):
    """With --port, wait up to 10 s for CARLA to accept connections, as the real client does."""
    deadline = time.monotonic() + 10
    while args.port and not _port_open(args.host or "127.0.0.1", args.port):
        if time.monotonic() > deadline:
            print("time-out waiting for the simulator", flush=True)
            return False
        time.sleep(0.05)
    return True


def _done_routes(state):
    path = os.path.join(state, "runs.log")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.split()[1:] == ["done"])


def _port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
