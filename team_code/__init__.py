"""The IRL-VLA agent for the Bench2Drive (CARLA leaderboard) evaluator: `team_code/irlvla_b2d_agent.py`.

See docs/carla_agent.md. Modules: sensors (suite + validator), images, localization, route, controllers, metric_log,
config, base_agent (leaderboard base or a local stand-in).
"""
