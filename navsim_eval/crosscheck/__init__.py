"""Cross-check of `navsim_eval` against the official NAVSIM devkit (optional; needs navsim + nuplan-devkit).

Conversion of our scenes into NAVSIM metric caches, runners for the official PDM-Closed planner, IDM agents and
scorer, and the proposal-by-proposal comparison. See docs/navsim_crosscheck.md.
"""
