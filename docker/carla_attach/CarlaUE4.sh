#!/bin/sh
# Stand-in for CARLA's launcher inside the evaluator container. The Bench2Drive evaluator always runs
# "$CARLA_ROOT/CarlaUE4.sh ..." before connecting; here the server is the separate `carla` service, so this only
# idles until the evaluator kills its process group at exit.
echo "irlvla: CARLA runs in the carla service; not starting a server here ($*)" >&2
exec sleep infinity
