"""The tiny IRL-VLA model on CPU: shapes, gradients to every head, determinism, and the geometry inside it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agent import geometry
from agent.config import load_preset
from agent.model.irlvla import build_model
from agent.model.planner import bev_grid_coords
from agent.types import model_rig
from irlvla.shared_data import shared_path


def make_batch(cfg, b: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n, h, w = cfg.preprocess.num_cameras, cfg.preprocess.image_height, cfg.preprocess.image_width
    rig = model_rig(w, h)
    k = cfg.planner.num_anchors
    return {
        "images": torch.randn(b, n, 3, h, w, generator=g),
        "intrinsics": torch.tensor(rig.intrinsics(), dtype=torch.float32).expand(b, -1, -1, -1).clone(),
        "cam_to_ego": torch.tensor(rig.cam_to_ego(), dtype=torch.float32).expand(b, -1, -1, -1).clone(),
        "ego": torch.randn(b, cfg.planner.ego_dim, generator=g),
        "speed_probs": torch.softmax(torch.randn(b, 13, generator=g), -1),
        "path_probs": torch.softmax(torch.randn(b, 9, generator=g), -1),
        "noise": torch.randn(b, k, cfg.planner.num_poses, 3, generator=g),
    }


def add_targets(batch: dict, cfg) -> dict:
    b = batch["images"].shape[0]
    t = torch.arange(1, 9, dtype=torch.float32)
    gt = torch.stack([2.0 * t, 0.05 * t**2, 0.01 * t], -1)
    s = cfg.bev.size * cfg.seg.upsample
    batch.update(
        gt_trajectory=gt.expand(b, -1, -1).clone(),
        agent_boxes=torch.tensor([[10.0, 2.0, 0.1, 4.5, 1.9, 3.0, 0.0], [5.0, -3.0, 0.0, 0.8, 0.8, 0.0, 1.0]]).expand(
            b, -1, -1
        ),
        agent_labels=torch.tensor([[0, 1]]).expand(b, -1),
        agent_mask=torch.ones(b, 2, dtype=torch.bool),
        map_points=torch.linspace(-20, 20, cfg.map.num_points).view(1, 1, -1, 1).expand(b, 2, -1, 2).clone(),
        map_labels=torch.tensor([[0, 2]]).expand(b, -1),
        map_mask=torch.ones(b, 2, dtype=torch.bool),
        bev_semantic=torch.randint(0, 7, (b, s, s), generator=torch.Generator().manual_seed(1)),
        rwm_targets=torch.rand(b, cfg.planner.num_anchors, 9, generator=torch.Generator().manual_seed(2)),
    )
    return batch


@pytest.fixture(scope="module")
def tiny():
    cfg = load_preset("tiny")
    return cfg, build_model(cfg)


def test_inference_shapes(tiny):
    cfg, model = tiny
    model.eval()
    with torch.no_grad():
        out = model(make_batch(cfg, b=2), mode="infer")
    k, p, a = cfg.planner.num_anchors, cfg.planner.num_poses, cfg.detection.num_agents
    s, d = cfg.bev.size, cfg.d_model
    assert out["trajectories"].shape == (2, k, p, 3)
    assert out["confidence_logits"].shape == (2, k)
    assert out["bev"].shape == (2, d, s, s)
    assert out["agent_boxes"].shape == (2, a, 7)
    assert out["agent_class_logits"].shape == (2, a, len(cfg.detection.class_names))
    assert out["ego_token"].shape == (2, d)
    assert out["map_points"].shape == (2, cfg.map.num_queries, cfg.map.num_points, 2)
    assert out["seg_logits"].shape == (2, 7, s * cfg.seg.upsample, s * cfg.seg.upsample)
    assert out["rwm"]["metrics"].shape == (2, k, 9)
    assert out["rwm"]["epdms"].shape == (2, k)
    assert len(out["plan_layers"]) == cfg.planner.num_layers
    m = out["rwm"]["metrics"]
    assert torch.all((m >= 0) & (m <= 1)) and torch.all((out["rwm"]["epdms"] >= 0) & (out["rwm"]["epdms"] <= 1))
    # box fields stay in their physical ranges
    boxes = out["agent_boxes"]
    assert torch.all(boxes[..., :2].abs() <= cfg.bev.range_m / 2) and torch.all(boxes[..., 3:5] > 0)
    assert torch.all(boxes[..., 2].abs() <= math.pi + 1e-6)


def test_same_noise_same_output_and_noise_matters(tiny):
    cfg, model = tiny
    model.eval()
    batch = make_batch(cfg)
    with torch.no_grad():
        a = model(batch, mode="infer")
        b = model(dict(batch), mode="infer")
        other = dict(batch, noise=batch["noise"] + 0.5)
        c = model(other, mode="infer")
    assert torch.equal(a["trajectories"], b["trajectories"])
    assert torch.equal(a["confidence_logits"], b["confidence_logits"])
    assert torch.equal(a["rwm"]["epdms"], b["rwm"]["epdms"])
    assert not torch.equal(a["trajectories"], c["trajectories"])


def test_forward_backward_reaches_every_parameter(tiny):
    cfg, model = tiny
    model.train()
    model.zero_grad(set_to_none=True)
    batch = add_targets(make_batch(cfg, b=2, seed=3), cfg)
    batch["timesteps"] = torch.tensor([3, 40])
    out = model(batch, mode="train")
    losses = model.loss(out, batch)
    for key in ("imitation", "detection", "map", "seg", "rwm", "total"):
        assert torch.isfinite(losses[key]), key
    losses["total"].backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    for head in ("backbone", "neck", "bev", "detection", "map", "seg", "planner", "rwm", "speed_embedding"):
        norm = sum(float(p.grad.abs().sum()) for p in getattr(model, head).parameters())
        assert norm > 0, head
    model.eval()


def test_rwm_does_not_train_the_trunk(tiny):
    cfg, model = tiny
    model.train()
    model.zero_grad(set_to_none=True)
    batch = make_batch(cfg)
    batch["rwm_targets"] = torch.full((1, cfg.planner.num_anchors, 9), 0.5)
    out = model(batch, mode="train")
    model.loss(out, batch)["rwm"].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.planner.parameters())
    assert any(p.grad is not None for p in model.rwm.parameters())
    model.eval()


def test_imitation_loss_prefers_the_expert(tiny):
    """Scoring the expert itself as the positive mode's output gives zero regression loss."""
    from agent.model.losses import imitation_loss, positive_modes

    cfg, model = tiny
    anchors = model.planner.anchors
    gt = anchors[3:4].clone()
    assert positive_modes(anchors, gt).tolist() == [3]
    traj = anchors.unsqueeze(0).clone()
    logits = torch.full((1, anchors.shape[0]), -10.0)
    logits[0, 3] = 10.0
    _, parts = imitation_loss([(traj, logits)], anchors, gt, cfg.planner)
    assert float(parts["plan_reg"]) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["plan_cls"]) < 1e-4


def test_lss_frustum_points_and_cells(tiny):
    cfg, model = tiny
    lss = model.bev
    stride = cfg.preprocess.image_width // cfg.feature_hw[1]
    # a front camera (optical axis along ego +x) at (1.5, 0.2, 1.6), principal point at feature cell (row 3, col 10)
    cx, cy = (10 + 0.5) * stride, (3 + 0.5) * stride
    K = torch.tensor([[100.0, 0, cx], [0, 100.0, cy], [0, 0, 1]])
    ext = torch.tensor(geometry.camera_to_ego(1.5, 0.2, 1.6, 0.0, 0.0, 0.0), dtype=torch.float32)
    pts = lss.ego_points(K.view(1, 1, 3, 3), ext.view(1, 1, 4, 4))
    d = cfg.bev.depth_min + 2.5 * cfg.bev.depth_step  # centre of depth bin 2
    assert torch.allclose(pts[0, 0, 2, 3, 10], torch.tensor([1.5 + d, 0.2, 1.6]), atol=1e-4)
    # cell of ego point (10, 5, 0) with 2 m cells over 64 m: row floor(22/2) = 11, col floor(27/2) = 13
    idx = lss.cell_index(torch.tensor([[[10.0, 5.0, 0.0], [10.0, 5.0, 9.0], [40.0, 0.0, 0.0]]]))
    s = cfg.bev.size
    assert idx.tolist() == [[11 * s + 13, s * s, s * s]]


def test_grid_sample_reads_the_right_bev_cell():
    s, r = 32, 64.0
    centres = geometry.bev_grid(s, r)
    bev = torch.zeros(1, 1, s, s)
    bev[0, 0, 11, 13] = 1.0
    xy = torch.tensor(centres[11, 13], dtype=torch.float32).view(1, 1, 1, 2)
    grid = bev_grid_coords(xy, r)
    val = torch.nn.functional.grid_sample(bev, grid, align_corners=False)
    assert float(val) == pytest.approx(1.0, abs=1e-6)


def test_ddim_matches_diffusers(tiny):
    from diffusers import DDIMScheduler

    _, model = tiny
    planner = model.planner
    ref = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", prediction_type="sample", clip_sample=False
    )
    ref.set_timesteps(125)  # step ratio 1000 // 125 = 8: from t = 8 the previous timestep is 0
    g = torch.Generator().manual_seed(0)
    x_t, x0, eps = (torch.randn(1, 4, 8, 3, generator=g) for _ in range(3))
    ours = planner.ddim_step(x_t, x0, 8, 0)
    theirs = ref.step(x0, 8, x_t, eta=0.0).prev_sample
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(planner.ddim_step(x_t, x0, 8, -1), x0, atol=1e-6)
    t = torch.tensor([8])
    assert torch.allclose(planner.add_noise(x0, eps, t), ref.add_noise(x0, eps, t), atol=1e-6)


def test_rwm_aggregation_by_hand():
    from agent.model.rwm import epdms_from_submetrics, expected_submetrics

    def logit(p):
        return math.log(p / (1 - p))

    nc = torch.log(torch.tensor([0.2, 0.3, 0.5]))  # E[NC] = 0.3 * 0.5 + 0.5 = 0.65
    ddc = torch.tensor([-40.0, -40.0, 40.0])  # E[DDC] = 1
    # dac 0.9, tlc 1, ttc 0.5, lk 0.8, hc 1, ec 0.6
    binary = torch.tensor([logit(0.9), 40.0, 0.0, logit(0.8), 40.0, logit(0.6)])
    ep = torch.tensor(logit(0.7))
    m = expected_submetrics(nc, ddc, binary, ep)
    expected = [0.65, 0.9, 1.0, 1.0, 0.7, 0.5, 0.8, 1.0, 0.6]  # nc dac ddc tlc ep ttc lk hc ec
    assert m.tolist() == pytest.approx(expected, abs=1e-5)
    # 0.65 * 0.9 * 1 * 1 * (5*0.7 + 5*0.5 + 2*0.8 + 2*1 + 2*0.6) / 16 = 0.585 * 10.8 / 16
    assert float(epdms_from_submetrics(m)) == pytest.approx(0.394875, abs=1e-5)
    # the winning-class confidence would give 0.5 for NC; the expected value differs
    assert float(m[0]) != pytest.approx(0.5)


def test_rwm_loss_targets_are_checked(tiny):
    from agent.model.rwm import rwm_loss

    cfg, model = tiny
    model.eval()
    with torch.no_grad():
        out = model(make_batch(cfg), mode="infer")
    with pytest.raises(ValueError, match="do not match"):
        rwm_loss(out["rwm"], torch.zeros(1, 3, 9), cfg.rwm)


def test_bad_batch_is_named(tiny):
    cfg, model = tiny
    batch = make_batch(cfg)
    batch["ego"] = torch.zeros(1, 5)
    with pytest.raises(ValueError, match="ego"):
        model(batch, mode="infer")
    del batch["ego"]
    with pytest.raises(KeyError, match="ego"):
        model(batch, mode="infer")
    batch = make_batch(cfg)
    batch["noise"] = torch.zeros(1, 2, 8, 3)
    with pytest.raises(ValueError, match="noise"):
        model(batch, mode="infer")


def test_anchor_tools(tmp_path):
    from agent.model.anchors import kmeans_anchors, load_anchors, nearest_anchor, procedural_anchors

    t = 0.5 * np.arange(1, 9)
    straight = np.stack([5 * t, 0 * t, 0 * t], -1)
    left = np.stack([5 * t, 0.5 * t**2, 0.1 * t], -1)
    rng = np.random.default_rng(0)
    trajs = np.concatenate([straight + rng.normal(0, 0.05, (40, 8, 3)), left + rng.normal(0, 0.05, (40, 8, 3))])
    trajs[..., 2] = np.concatenate([np.zeros((40, 8)), np.tile(0.1 * t, (40, 1))])
    centres = kmeans_anchors(trajs, 2, seed=0)
    assert centres.shape == (2, 8, 3)
    i_left = int(np.argmax(centres[:, -1, 1]))  # the left cluster ends at y = 8, the straight one at y = 0
    assert np.allclose(centres[1 - i_left, :, :2], straight[:, :2], atol=0.05)
    assert np.allclose(centres[i_left, :, :2], left[:, :2], atol=0.05)
    assert np.allclose(centres[i_left, :, 2], 0.1 * t, atol=1e-9)
    assert np.array_equal(kmeans_anchors(trajs, 2, seed=0), centres)
    assert nearest_anchor(centres, left) == i_left
    fan = procedural_anchors(20)
    assert fan.shape == (20, 8, 3) and np.allclose(fan[0], 0.0)
    path = tmp_path / "a.npy"
    np.save(path, trajs)
    assert load_anchors(path, 2).shape == (2, 8, 3)
    with pytest.raises(ValueError, match="needs 100"):
        load_anchors(path, 100)
    np.save(path, trajs[:, :6])
    with pytest.raises(ValueError, match="6 poses"):
        load_anchors(path, 2)


def test_shared_navsim_anchors_reduce_to_the_planner_size():

    from agent.model.anchors import load_anchors

    path = shared_path("data", "navsim", "trajectory_anchors_256.npy")
    if not path.is_file():
        pytest.skip("shared NAVSIM anchors not available")
    anchors = load_anchors(path, 20)
    assert anchors.shape == (20, 8, 3)
    raw = np.load(path)
    # every centroid lies inside the data's bounding box
    assert anchors[..., 0].min() >= raw[..., 0].min() - 1e-6 and anchors[..., 0].max() <= raw[..., 0].max() + 1e-6


def test_lss_geometry_of_the_real_rig(tiny):
    """Preprocessed Bench2Drive cameras: the optical-axis ray of every camera leaves its mount along its yaw.

    Expected mounts come straight from the CARLA numbers (x forward, y right, yaw clockwise in degrees, origin at the
    vehicle centre 1.39 m ahead of the rear axle): ours = (x + 1.39, -y, 1.6), yaw = -yaw_carla.
    """
    from agent.preprocess import preprocess_cameras

    cfg, model = tiny
    rig = model_rig()  # 704 x 256 -> tiny 352 x 128: scale 0.5, no crop, principal point (176, 64)
    imgs = {c.name: np.zeros((256, 704, 3), np.uint8) for c in rig.cameras}
    cams = preprocess_cameras(imgs, rig, cfg.preprocess)
    assert np.allclose(cams.intrinsics[:, 0, 2], 176.0) and np.allclose(cams.intrinsics[:, 1, 2], 64.0)
    pts = model.bev.ego_points(torch.from_numpy(cams.intrinsics)[None], torch.from_numpy(cams.cam_to_ego)[None])[0]
    # feature cell (row 3, col 10) is centred on pixel (168, 56) at stride 16: 8 px left of and 8 px above the
    # principal point, i.e. a ray tilted left and up by 8 / f with f = 352 / (2 tan(fov / 2)); depth bin 0 is at 2.5 m
    d = 2.5
    carla = {"CAM_FRONT": (0.80, 0.0, 0.0, 70.0), "CAM_FRONT_LEFT": (0.27, -0.55, -55.0, 70.0),
             "CAM_BACK": (-2.0, 0.0, 180.0, 110.0), "CAM_BACK_RIGHT": (-0.32, 0.55, 110.0, 70.0)}  # fmt: skip
    for name, (x, y, yaw, fov) in carla.items():
        i = cfg.preprocess.camera_names.index(name)
        h = math.radians(-yaw)
        off = d * 8.0 / (352.0 / (2.0 * math.tan(math.radians(fov / 2.0))))
        expected = [x + 1.39 + d * math.cos(h) - off * math.sin(h), -y + d * math.sin(h) + off * math.cos(h), 1.6 + off]
        assert pts[i, 0, 3, 10].tolist() == pytest.approx(expected, abs=1e-3), name


def test_set_losses_vanish_for_perfect_predictions():
    """Matched predictions equal to the ground truth cost nothing but the existence/class terms; map matching
    ignores polyline direction."""
    from agent.config import DetectionConfig, MapConfig
    from agent.model.losses import detection_loss, map_loss

    gt = torch.tensor([[[10.0, 2.0, 0.1, 4.5, 1.9, 3.0, 0.0], [5.0, -3.0, 3.1, 0.8, 0.8, 0.0, 1.0]]])
    boxes = torch.zeros(1, 4, 7)
    boxes[0, 1], boxes[0, 3] = gt[0, 1], gt[0, 0]
    boxes[0, 3, 2] += 2 * math.pi  # same heading, wrapped
    logits = torch.tensor([[-20.0, 20.0, -20.0, 20.0]])
    cls = torch.full((1, 4, 3), -20.0)
    cls[0, 1, 1] = cls[0, 3, 0] = 20.0
    pred = {"agent_boxes": boxes, "agent_logits": logits, "agent_class_logits": cls}
    _, parts = detection_loss(pred, gt, torch.tensor([[0, 1]]), torch.ones(1, 2), DetectionConfig(), 64.0)
    assert float(parts["det_box"]) == pytest.approx(0.0, abs=1e-5)
    assert float(parts["det_cls"]) < 1e-6 and float(parts["det_exist"]) < 1e-6

    line = torch.stack([torch.linspace(0, 20, 5), torch.full((5,), 3.0)], -1)
    mpred = {
        "map_points": torch.stack([torch.zeros(5, 2), line.flip(0)]).unsqueeze(0),  # query 1 holds it reversed
        "map_logits": torch.tensor([[-20.0, 20.0]]),
        "map_class_logits": torch.tensor([[[0.0, 0.0, 0.0], [-20.0, 20.0, -20.0]]]),
    }
    _, parts = map_loss(mpred, line[None, None], torch.tensor([[1]]), torch.ones(1, 1), MapConfig(num_points=5), 64.0)
    assert float(parts["map_pts"]) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["map_cls"]) < 1e-6 and float(parts["map_exist"]) < 1e-6


def test_full_lss_lifts_points_projected_through_the_native_rig():
    """Bench2Drive 1600x900 cameras -> the full preset's 256x704 input (scale 0.44 to 704x396, bottom crop of 140
    rows): an ego point projected through the native camera lands on a feature cell whose LSS frustum point, at the
    point's depth, is the point itself, and the point falls into the BEV cell that the geometry module names."""
    from agent.config import load_preset as load
    from agent.model.bev import LSSBEV
    from agent.preprocess import preprocess_cameras
    from agent.types import bench2drive_rig

    cfg = load("full")
    fh, fw = cfg.feature_hw
    assert (fh, fw) == (16, 44)
    lss = LSSBEV(8, cfg.bev, (fh, fw), 16)
    rig = bench2drive_rig()
    cams = preprocess_cameras({c.name: np.zeros((900, 1600, 3), np.uint8) for c in rig.cameras}, rig, cfg.preprocess)
    pts = lss.ego_points(torch.from_numpy(cams.intrinsics)[None], torch.from_numpy(cams.cam_to_ego)[None])[0]
    scale, top = 0.44, 140.0
    for i, cam in enumerate(rig.cameras):
        for row, col, depth_bin in ((9, 30, 37), (12, 5, 10), (4, 40, 80)):
            # the feature cell's centre pixel in the model image, back in the native image
            u = ((col + 0.5) * 16) / scale
            v = ((row + 0.5) * 16 + top) / scale
            d = cfg.bev.depth_min + (depth_bin + 0.5) * cfg.bev.depth_step
            # lift with the native pinhole (f = 800 / tan 35 deg or 800 / tan 55 deg, c = (800, 450)) by hand
            f = 800.0 / math.tan(math.radians(cam.fov_deg / 2.0))
            optical = np.array([(u - 800.0) / f * d, (v - 450.0) / f * d, d, 1.0])
            ego = (cam.cam_to_ego @ optical)[:3]
            uv, depth = geometry.project_points(ego[None], cam.intrinsics, cam.cam_to_ego)
            assert uv[0].tolist() == pytest.approx([u, v], abs=1e-6) and depth[0] == pytest.approx(d)
            assert pts[i, depth_bin, row, col].tolist() == pytest.approx(ego.tolist(), abs=2e-3), cam.name
            cell = np.floor(geometry.world_to_bev_pixel(ego[None, :2], cfg.bev.size, cfg.bev.range_m)[0]).astype(int)
            idx = int(lss.cell_index(torch.tensor(ego, dtype=torch.float32).view(1, 1, 3)))
            inside = 0 <= cell[0] < 128 and 0 <= cell[1] < 128 and cfg.bev.z_min <= ego[2] < cfg.bev.z_max
            assert idx == (cell[0] * 128 + cell[1] if inside else 128 * 128), cam.name


def test_summary_shapes_are_the_model_outputs(tiny):
    """`irlvla model summary` derives shapes from the config without running the model; they must be the shapes a
    real forward pass produces (checked on tiny, so the full summary is trusted without a forward in CI)."""
    from agent.cli import model_shapes

    cfg, model = tiny
    model.eval()
    with torch.no_grad():
        out = model(make_batch(cfg), mode="infer")
    shapes = model_shapes(cfg)
    assert list(out["bev"].shape) == [1, cfg.d_model, cfg.bev.size, cfg.bev.size]
    assert shapes["bev"][2:] == list(out["bev"].shape[2:])
    assert list(out["depth"].shape) == [cfg.preprocess.num_cameras, shapes["depth_bins"], *shapes["neck"][2:]]
    assert list(out["agent_boxes"].shape) == shapes["agent_boxes"]
    assert list(out["map_points"].shape) == shapes["map_polylines"]
    assert list(out["seg_logits"].shape) == shapes["seg_logits"]
    assert list(out["ego_tokens"].shape) == shapes["ego_command_tokens"]
    assert list(out["trajectories"].shape) == shapes["candidates"]
    assert list(out["rwm"]["metrics"].shape) == shapes["rwm_submetrics"]
    feats = model.backbone(torch.zeros(1, 3, cfg.preprocess.image_height, cfg.preprocess.image_width))
    assert [list(f.shape[1:]) for f in feats] == [s[1:] for s in shapes["backbone_features"]]
