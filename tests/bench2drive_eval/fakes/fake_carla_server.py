"""Stand-in for CarlaUE4.sh: listens on -carla-rpc-port until killed.

Env cues: FAKE_CARLA_STATE (folder; the server appends "<pid> <pgid> <port>" to servers.log),
FAKE_CARLA_DIE_AFTER (seconds before exiting by itself, once per state folder).
"""

import os
import socket
import sys
import time


def main() -> int:
    port = None
    for arg in sys.argv[1:]:
        if arg.lower().startswith("-carla-rpc-port="):
            port = int(arg.split("=", 1)[1])
    if port is None:
        print("fake carla: no -carla-rpc-port", file=sys.stderr)
        return 2
    state = os.environ.get("FAKE_CARLA_STATE")
    die_after = None
    if state:
        with open(os.path.join(state, "servers.log"), "a") as f:
            f.write(f"{os.getpid()} {os.getpgid(0)} {port}\n")
        flag = os.path.join(state, "server_died")
        if os.environ.get("FAKE_CARLA_DIE_AFTER") and not os.path.exists(flag):
            die_after = float(os.environ["FAKE_CARLA_DIE_AFTER"])
            open(flag, "w").close()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("", port))
    srv.listen(16)
    srv.settimeout(0.1)
    t0 = time.monotonic()
    while die_after is None or time.monotonic() - t0 < die_after:
        try:
            conn, _ = srv.accept()
            conn.close()
        except TimeoutError:
            pass
    return 3


if __name__ == "__main__":
    sys.exit(main())
