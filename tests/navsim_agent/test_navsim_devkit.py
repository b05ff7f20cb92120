"""With the official devkit importable (optional; docs/navsim_crosscheck.md): the agent is a real NAVSIM
`AbstractAgent` returning navsim `Trajectory` objects, and a real `MetricCache` is scored with its own reference and
centreline exactly as our scorer scores the scene it was built from."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nuplan")
pytest.importorskip("navsim.agents.abstract_agent")

from navsim.agents.abstract_agent import AbstractAgent
from navsim.common.dataclasses import Trajectory

from navsim_agent.agent import IRLVLAAgent
from navsim_agent.convert import scene_cache_from_metric_cache
from navsim_agent.embedded import agent_input_from_scene
from navsim_eval import score_proposals
from navsim_eval.cache import SceneCache
from navsim_eval.crosscheck.metric_cache import scene_to_metric_cache
from sim.scenarios import generate_scene


def test_the_agent_is_a_navsim_abstract_agent_and_returns_navsim_trajectories():
    agent = IRLVLAAgent(device="cpu")
    assert isinstance(agent, AbstractAgent)
    agent.initialize()
    traj = agent.compute_trajectory(agent_input_from_scene(generate_scene("curve", 0), width=352, height=198))
    assert isinstance(traj, Trajectory) and traj.poses.shape == (8, 3)


@pytest.mark.parametrize("family", ["curve", "intersection"])
def test_a_real_metric_cache_is_scored_with_its_own_reference_and_centreline(family):
    scene = generate_scene(family, 0)
    planned = SceneCache.build(scene)
    cache = scene_to_metric_cache(
        scene, reference=planned.reference_plan, centerline=None
    )  # the devkit's own objects: InterpolatedTrajectory, PDMPath
    given = scene_cache_from_metric_cache(scene, cache)
    assert given.reference_source == "given"
    np.testing.assert_allclose(given.reference_plan[:, :3], planned.reference_plan[:, :3], atol=1e-9)
    np.testing.assert_allclose(given.map_queries.centerline.poses, planned.map_queries.centerline.poses, atol=1e-9)
    plans = np.stack([scene.human_trajectory(), np.zeros((8, 3))])
    a = score_proposals(scene, plans, cache=planned)
    b = score_proposals(scene, plans, cache=given)
    np.testing.assert_allclose(a.table, b.table, atol=1e-9)
