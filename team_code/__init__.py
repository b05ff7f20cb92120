"""The IRL-VLA agent for the Bench2Drive (CARLA leaderboard) evaluator: `team_code/irlvla_b2d_agent.py`.

See docs/carla_agent.md. Modules: sensors (the suite), images, localization, route, controllers, metric_log, config.
The leaderboard interface it builds on (base class, sensor rules, metric_info records) is in `bench2drive_eval`.
"""
