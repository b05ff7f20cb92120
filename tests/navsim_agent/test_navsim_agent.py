"""`IRLVLAAgent` driven by NAVSIM-shaped inputs (stand-ins rendered from the embedded world), Hydra instantiation,
the shared feature path, training hooks, and the embedded two-stage evaluation with the real agent."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from navsim_agent.agent import IRLVLAAgent, policy_features
from navsim_agent.devkit import HAVE_NAVSIM, Trajectory
from navsim_agent.embedded import agent_input_from_scene, make_two_stage_set
from sim.scenarios import generate_scene

YAML = Path(__file__).resolve().parents[2] / "navsim_agent" / "irlvla_agent.yaml"


@pytest.fixture(scope="module")
def agent():
    a = IRLVLAAgent(device="cpu")
    a.initialize()
    return a


@pytest.fixture(scope="module")
def agent_input():
    return agent_input_from_scene(generate_scene("straight_road", 0), width=352, height=198)


def test_sensor_config_is_the_six_current_cameras_and_no_lidar(agent):
    sc = agent.get_sensor_config()
    for cam in ("cam_f0", "cam_l0", "cam_l1", "cam_r0", "cam_r1", "cam_b0"):
        assert getattr(sc, cam) == [3]
    assert sc.cam_l2 is False and sc.cam_r2 is False and sc.lidar_pc is False
    assert agent.name() == "irlvla_agent" and agent.requires_scene is False


def test_compute_trajectory_returns_eight_poses_from_the_policy_step(agent, agent_input):
    traj = agent.compute_trajectory(agent_input)
    assert isinstance(traj, Trajectory)
    assert traj.poses.shape == (8, 3) and np.isfinite(traj.poses).all()
    assert traj.trajectory_sampling.num_poses == 8 and traj.trajectory_sampling.interval_length == 0.5


def test_the_feature_builder_is_the_policy_path_and_training_hooks_work(agent, agent_input):
    (builder,) = agent.get_feature_builders()
    feats = builder.compute_features(agent_input)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        k: tuple(v.shape) for k, v in policy_features(agent.policy, agent_input).items()
    }
    batch = {k: v.unsqueeze(0) for k, v in feats.items()}
    # the same noise as the policy's tick 0: forward's candidates are the step's candidates
    agent.policy.reset()
    step = agent.policy.step(
        __import__("navsim_agent.convert", fromlist=["x"]).observation_from_agent_input(agent_input)
    )
    agent.eval()
    with torch.no_grad():
        out = agent.forward({**batch, "noise": agent.policy.noise_for_tick(0)})
    np.testing.assert_allclose(out["trajectories"][0].double().numpy(), step.candidates, atol=1e-4)
    assert out["trajectory"].shape == (1, 8, 3)
    # one training step on the human future
    agent.train()
    target = {
        "gt_trajectory": torch.as_tensor(generate_scene("straight_road", 0).human_trajectory(), dtype=torch.float32)[
            None
        ]
    }
    preds = agent.forward(batch)
    loss = agent.compute_loss(batch, target, preds)
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt = agent.get_optimizers()
    opt.zero_grad()
    loss.backward()
    opt.step()
    agent.eval()


def test_the_hydra_yaml_instantiates_the_agent():
    hydra_utils = pytest.importorskip("hydra.utils")  # hydra-core is in the dev extra
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(YAML)
    assert cfg._target_ == "navsim_agent.agent.IRLVLAAgent"
    if not HAVE_NAVSIM:  # nuPlan's TrajectorySampling is not importable here: the local stand-in has its signature
        cfg.trajectory_sampling._target_ = "navsim_agent.devkit.LocalTrajectorySampling"
    agent = hydra_utils.instantiate(cfg)
    assert isinstance(agent, IRLVLAAgent)
    assert agent._trajectory_sampling.num_poses == 8


def test_a_missing_checkpoint_and_a_wrong_sampling_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        IRLVLAAgent(checkpoint_path=str(tmp_path / "none.safetensors"))
    from navsim_agent.devkit import TrajectorySampling

    with pytest.raises(ValueError, match="8 poses at 0.5 s"):
        IRLVLAAgent(trajectory_sampling=TrajectorySampling(time_horizon=5, interval_length=0.5))


def test_embedded_two_stage_evaluation_with_the_agent(agent, tmp_path):
    from navsim_agent.cli import evaluate

    ts = make_two_stage_set(tmp_path / "set", ["straight_road"], [0], ((0.0, 0.0),))
    rows, path, failed = evaluate(ts.folder, tmp_path / "scores.csv", agent, reactive=True)
    assert failed == {}
    with open(path, newline="") as f:
        recs = {r["token"]: r for r in csv.DictReader(f)}
    assert set(recs) == {
        "straight_road_0", "straight_road_0_prev", "straight_road_0_s0", "straight_road_0_s0_prev",
        "extended_pdm_score_stage_one", "extended_pdm_score_stage_two", "extended_pdm_score_combined",
    }  # fmt: skip
    s = {t: float(recs[t]["score"]) for t in recs}
    # one follow-up per side: weight 1; combined = (s1(now) s2(now) + s1(prev) s2(prev)) / 2
    expect = (
        s["straight_road_0"] * s["straight_road_0_s0"] + s["straight_road_0_prev"] * s["straight_road_0_s0_prev"]
    ) / 2
    assert s["extended_pdm_score_combined"] == pytest.approx(expect, abs=1e-12)
