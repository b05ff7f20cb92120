"""Bench2Drive launcher: CARLA servers, leaderboard evaluator processes, watchdog, shards, and the Ray backend."""
