"""Run the stock Bench2Drive `leaderboard_evaluator.py` against an already running CARLA server.

The B2D evaluator moves `--port` to the next port it can bind on localhost (`find_free_port`) and then launches
`$CARLA_ROOT/CarlaUE4.sh` there. In the compose setup the server already listens on that port in the shared network
namespace, so the port would be bumped away from it. This wrapper keeps the ports as given (the image's CARLA_ROOT
holds a no-op CarlaUE4.sh) and then runs the evaluator's own `main()` with the same command line; nothing else in the
evaluator changes.

    python docker/b2d_attach_evaluator.py --routes=... --agent=... --host=localhost --port=2000 ...
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from leaderboard import leaderboard_evaluator as evaluator
    except ImportError as e:
        sys.stderr.write(
            f"cannot import the Bench2Drive evaluator ({e}); PYTHONPATH needs <b2d>/leaderboard, "
            "<b2d>/scenario_runner and $CARLA_ROOT/PythonAPI/carla\n"
        )
        return 2
    evaluator.find_free_port = lambda port: int(port)  # attach: the port is taken by the server on purpose
    sys.argv[0] = evaluator.__file__
    result = evaluator.main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
