"""DrivingPolicy: preprocessing geometry, selection with collision / drivable checks, PlanResult, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agent.boxes import box_corners, boxes_overlap
from agent.config import PreprocessConfig, SelectionConfig, load_preset
from agent.contract import CommandResult, Planner, PlanResult
from agent.model.vlm import VLMCommandGuidance
from agent.policy import DrivingPolicy
from agent.preprocess import image_transform, preprocess_cameras
from agent.selection import collision_check, offroad_fraction, select_candidate
from agent.types import EgoStatus, NavigationCommand, Observation, bench2drive_rig, model_rig

TIMES = 0.5 * np.arange(1, 9)


def straight(speed: float, y: float = 0.0) -> np.ndarray:
    return np.stack([speed * TIMES, np.full(8, y), np.zeros(8)], -1)


def observation(seed: int = 0, rig=None) -> Observation:
    rig = rig or model_rig()
    rng = np.random.default_rng(seed)
    imgs = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras}
    ego = EgoStatus([5.0, 0.0], [0.0, 0.0], 0.0, NavigationCommand.STRAIGHT)
    return Observation(imgs, rig, ego, target_point=np.array([25.0, 1.0]))


# --------------------------------------------------------------------------------------------------- geometry


def test_sat_handles_rotated_boxes():
    a = box_corners(0.0, 0.0, 0.0, 2.0, 2.0)
    # a 2x2 square rotated 45 deg reaches sqrt(2) from its centre along x
    near = box_corners(2.3, 0.0, math.pi / 4, 2.0, 2.0)  # tip at 0.886 < 1: overlap
    far = box_corners(2.5, 0.0, math.pi / 4, 2.0, 2.0)  # tip at 1.086 > 1: apart
    assert bool(boxes_overlap(a, near))
    assert not bool(boxes_overlap(a, far))  # their axis-aligned bounding boxes would overlap
    assert not bool(boxes_overlap(a, box_corners(0.0, 2.01, 0.0, 2.0, 2.0)))


def test_collision_with_forecast_agent():
    cfg = SelectionConfig(safety_margin=0.0)
    cands = np.stack([straight(5.0), straight(5.0, y=6.0)])
    # an agent 30 m ahead driving towards us at 5 m/s: the rear-axle pose at t reaches x = 5t, the ego box centre
    # 1.39 m further; the boxes (4.89 m and 4.5 m long) touch when 5t + 1.39 + 2.445 + 2.25 >= 30 - 5t -> t >= 2.39 s
    boxes = np.array([[30.0, 0.0, math.pi, 4.5, 1.9, -5.0, 0.0]])
    hit, first = collision_check(cands, boxes, TIMES, cfg)
    assert hit.tolist() == [True, False]
    assert first.tolist() == [4, -1]  # t = 2.5 s is the first sampled time after 2.39 s


def test_selection_rejects_candidate_through_detected_agent():
    cfg = SelectionConfig()
    cands = np.stack([straight(5.0), straight(5.0, y=4.0), straight(0.0)])
    conf = np.array([0.99, 0.5, 0.3])
    rewards = np.array([0.95, 0.6, 0.2])  # the model prefers the straight candidate
    boxes = np.array([[10.0, 0.0, 0.0, 4.5, 2.0, 0.0, 0.0], [10.0, 20.0, 0.0, 4.5, 2.0, 0.0, 0.0]])
    sel = select_candidate(cands, conf, rewards, boxes, np.array([0.9, 0.9]), None, 64.0, TIMES, cfg)
    assert sel.collision.tolist() == [True, False, False]
    assert sel.index == 1
    # without the detection (low existence score) the preferred candidate wins
    sel = select_candidate(cands, conf, rewards, boxes, np.array([0.1, 0.1]), None, 64.0, TIMES, cfg)
    assert sel.index == 0 and not sel.collision.any()


def test_offroad_fraction_from_segmentation():
    cfg = SelectionConfig()
    size, rng_m = 32, 64.0
    drivable = np.ones((size, size))
    drivable[:, :14] = 0.0  # columns 0..13 are y > 32 - 14 * 2 = 4 m: everything more than 4 m to the left
    cands = np.stack([straight(5.0), straight(5.0, y=8.0)])
    frac = offroad_fraction(cands, drivable, rng_m, TIMES, cfg)
    assert frac[0] == 0.0
    assert frac[1] == pytest.approx(1.0)  # ego centre at y = 8, corners at 8 -/+ 1.12 m: all beyond 4 m


# ------------------------------------------------------------------------------------------------ preprocessing


def test_preprocess_intrinsics_follow_resize_and_crop():
    cfg = PreprocessConfig()  # 256 x 704, bottom crop
    tf = image_transform(1600, 900, cfg)
    # scale 704 / 1600 = 0.44 -> 704 x 396, keep the bottom 256 rows: crop 140 from the top
    assert (tf.resized_w, tf.resized_h, tf.left, tf.top) == (704, 396, 0, 140)
    rig = bench2drive_rig()
    f = 1600 / (2 * math.tan(math.radians(70) / 2))
    imgs = {c.name: np.zeros((900, 1600, 3), np.uint8) for c in rig.cameras}
    cams = preprocess_cameras(imgs, rig, cfg)
    K = cams.intrinsics[0]
    assert K[0, 0] == pytest.approx(f * 0.44, rel=1e-5) and K[1, 1] == pytest.approx(f * 0.44, rel=1e-5)
    assert K[0, 2] == pytest.approx(352.0) and K[1, 2] == pytest.approx(450 * 0.44 - 140)
    assert cams.images.shape == (6, 3, 256, 704)
    # black pixels normalise to -mean / std
    assert cams.images[0, 0, 0, 0] == pytest.approx(-0.485 / 0.229, rel=1e-5)


def test_preprocess_names_missing_camera():
    rig = bench2drive_rig(704, 256)
    imgs = {c.name: np.zeros((256, 704, 3), np.uint8) for c in rig.cameras}
    cfg = PreprocessConfig(camera_names=("CAM_FRONT", "cam_f0"))
    with pytest.raises(ValueError, match="cam_f0"):
        preprocess_cameras(imgs, rig, cfg)


# ------------------------------------------------------------------------------------------------------ policy


@pytest.fixture(scope="module")
def policy():
    return DrivingPolicy.from_config(load_preset("tiny"), use_vlm=False)


def test_plan_result_shapes(policy):
    cfg = policy.cfg
    r = policy.step(observation())
    assert isinstance(r, PlanResult)
    k = cfg.planner.num_anchors
    assert r.trajectory.poses.shape == (8, 3)
    assert r.candidates.shape == (k, 8, 3)
    assert r.confidences.shape == r.rewards.shape == r.scores.shape == (k,)
    assert r.submetrics.shape == (k, 9)
    assert np.array_equal(r.trajectory.poses, r.candidates[r.selected])
    assert r.selected == int(np.argmax(r.scores))
    assert r.detections.boxes.shape == (cfg.detection.num_agents, 7)
    assert r.map.polylines.shape == (cfg.map.num_queries, cfg.map.num_points, 2)
    s = cfg.bev.size * cfg.seg.upsample
    assert r.seg.shape == (7, s, s) and np.allclose(r.seg.sum(0), 1.0, atol=1e-5)
    assert set(r.penalties) == {"collision", "first_collision", "offroad"}
    assert r.commands.source == "fallback" and r.commands.speed_probs.shape == (13,)
    for stage in ("preprocess", "vlm", "perception", "planner", "rwm", "selection", "total"):
        assert r.timings[stage] >= 0.0
    assert r.timings["total"] >= r.timings["perception"]
    record = json.loads(json.dumps(r.as_dict()))
    assert record["selected"] == r.selected and len(record["trajectory"]) == 8
    assert record["speed_command"] == "Constant Speed Strict" and record["path_command"] == "Straight Strict"


def test_policy_is_reproducible(policy):
    other = DrivingPolicy.from_config(load_preset("tiny"), use_vlm=False)
    policy.reset()
    a, b = policy.step(observation(1)), other.step(observation(1))
    assert np.array_equal(a.candidates, b.candidates) and a.selected == b.selected
    assert np.array_equal(a.rewards, b.rewards)
    c = policy.step(observation(1))  # the next tick draws other noise
    assert not np.array_equal(a.candidates, c.candidates)


def test_policy_from_full_resolution_rig_with_jpeg():
    cfg = load_preset("tiny", preprocess={"jpeg_quality": 90})
    pol = DrivingPolicy.from_config(cfg, use_vlm=False)
    r = pol.step(observation(2, rig=bench2drive_rig(800, 450)))
    assert r.candidates.shape[0] == cfg.planner.num_anchors


def test_policy_with_tiny_vlm_commands():
    """The VLM is built with the policy (not at the first step), on the policy's device, and its decision is exactly
    the one the same guidance gives on its own for the same inputs."""
    cfg = load_preset("tiny")
    pol = DrivingPolicy.from_config(cfg)
    assert isinstance(pol.vlm, VLMCommandGuidance) and pol.vlm.backend.device == pol.device
    assert pol.vlm.num_vlm_calls == 0
    obs = observation(3)
    r = pol.step(obs)
    pol.close()
    alone = VLMCommandGuidance(cfg.vlm)
    ref = alone.commands(obs.images, obs.ego.speed, obs.ego.command, 0)
    alone.close()
    assert r.commands.source == "likelihood"  # the tiny backend scores every command; no fallback
    assert (r.commands.speed, r.commands.path) == (ref.speed, ref.path)
    np.testing.assert_allclose(r.commands.speed_probs, ref.speed_probs, rtol=1e-6)
    np.testing.assert_allclose(r.commands.path_probs, ref.path_probs, rtol=1e-6)


def test_policy_implements_the_contract(policy):
    assert isinstance(policy, Planner)
    assert isinstance(policy.step(observation(5)), PlanResult)


def test_policy_feeds_the_latched_command_as_one_hot():
    """The planner gets the chosen command (one-hot, as in training), not the VLM's soft probability table."""
    from agent.types import PathPlan, SpeedPlan

    speed_probs = np.full(13, 0.5 / 12)
    speed_probs[SpeedPlan.CREEPING] = 0.5
    path_probs = np.full(9, 0.6 / 8)
    path_probs[PathPlan.LEFT_LANECHANGE] = 0.4

    class SoftVLM:
        def commands(self, images, ego_speed, nav_command, tick):
            return CommandResult(
                SpeedPlan.CREEPING, PathPlan.LEFT_LANECHANGE, speed_probs, path_probs, "likelihood", 1.0, tick
            )

        def reset(self) -> None: ...

        def close(self) -> None: ...

    pol = DrivingPolicy(DrivingPolicy.from_config(load_preset("tiny"), use_vlm=False).model, vlm=SoftVLM())
    seen = {}
    encode = pol.model.encode_commands

    def spy(ego, speed, path):
        seen["speed"], seen["path"] = speed.clone(), path.clone()
        return encode(ego, speed, path)

    pol.model.encode_commands = spy
    r = pol.step(observation(4))
    assert r.commands.speed_name == "Creeping" and r.commands.path_name == "Left LaneChange"
    expected_speed = np.zeros(13)
    expected_speed[2] = 1.0  # Creeping is the third speed command of the seed
    expected_path = np.zeros(9)
    expected_path[6] = 1.0  # Left LaneChange is the seventh path command of the seed
    assert seen["speed"][0].tolist() == expected_speed.tolist()
    assert seen["path"][0].tolist() == expected_path.tolist()


def test_selection_never_picks_a_non_finite_candidate():
    cfg = SelectionConfig()
    cands = np.stack([straight(5.0), straight(4.0), straight(3.0)])
    cands[1, 3, 0] = np.nan  # the best-scored candidate has a NaN waypoint
    conf = np.array([0.2, 0.9, np.nan])  # and the third a NaN confidence
    rewards = np.array([0.5, 0.9, 0.9])
    sel = select_candidate(cands, conf, rewards, np.zeros((0, 7)), np.zeros(0), None, 64.0, TIMES, cfg)
    assert sel.index == 0
    with pytest.raises(ValueError, match="non-finite"):
        select_candidate(cands, np.full(3, np.nan), rewards, np.zeros((0, 7)), np.zeros(0), None, 64.0, TIMES, cfg)
