"""NAVSIM data enters through the NAVSIM agent's feature and target builders (stand-ins for NAVSIM's `SceneLoader` and
`Scene` around embedded scenes, with the navsim_agent's `AgentInput` stand-in): the samples are what the policy
computes, the loader and the imitation step read them, and a missing devkit or wrong builders are named."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agent.model.vlm_labels import commands_from_trajectory
from navsim_agent.agent import policy_features
from navsim_agent.devkit import HAVE_NAVSIM
from navsim_agent.embedded import agent_input_from_scene
from sim.scenarios import generate_scene
from training.dataset import ShardDataset, collate, make_loader
from training.il import il_step
from training.loop import step_generator
from training.navsim_data import build_navsim_dataset, instantiate_agent, require_navsim

YAML = Path(__file__).resolve().parents[2] / "navsim_agent" / "irlvla_agent.yaml"


class SceneStandIn:
    """The two `Scene` methods NAVSIM's dataset caching uses: `get_agent_input()` and `get_future_trajectory(n)`."""

    def __init__(self, scene) -> None:
        self.scene = scene

    def get_agent_input(self):
        return agent_input_from_scene(self.scene, width=352, height=198)

    def get_future_trajectory(self, num_trajectory_frames: int = 8):
        return SimpleNamespace(poses=self.scene.human_trajectory(num_trajectory_frames, 0.5))


class LoaderStandIn:
    """NAVSIM's `SceneLoader` surface: `tokens` and `get_scene_from_token`; token "broken" fails to load."""

    def __init__(self, scenes) -> None:
        self.scenes = {s.token: s for s in scenes}

    @property
    def tokens(self) -> list[str]:
        return [*self.scenes, "broken"]

    def get_scene_from_token(self, token: str) -> SceneStandIn:
        if token == "broken":
            raise OSError("sensor blob missing")
        return SceneStandIn(self.scenes[token])


@pytest.fixture(scope="module")
def navsim_set(tmp_path_factory):
    overrides = ["device=cpu"]
    if not HAVE_NAVSIM:  # nuPlan's TrajectorySampling is not importable here: the local stand-in has its signature
        overrides.append("trajectory_sampling._target_=navsim_agent.devkit.LocalTrajectorySampling")
    agent = instantiate_agent(YAML, overrides)  # as NAVSIM's scripts build it: Hydra `_target_`
    scenes = [generate_scene("straight_road", 0), generate_scene("cut_in", 3)]
    loader = LoaderStandIn(scenes)
    out = tmp_path_factory.mktemp("navsim_data")
    manifest = build_navsim_dataset(
        loader, agent.get_feature_builders(), agent.get_target_builders(), out, shard_size=1, progress=False
    )
    return agent, scenes, out, manifest


def test_samples_are_the_builders_outputs(navsim_set):
    agent, scenes, out, manifest = navsim_set
    assert manifest["source"] == "navsim" and manifest["num_samples"] == 2 and manifest["num_shards"] == 2
    assert [f["token"] for f in manifest["failed_scenes"]] == ["broken"]
    assert "sensor blob missing" in manifest["failed_scenes"][0]["error"]
    ds = ShardDataset(out)
    cfg = ds.model_cfg
    for i, scene in enumerate(scenes):
        item = ds[i]
        feats = policy_features(agent.policy, agent_input_from_scene(scene, width=352, height=198))
        batch = collate([item], cfg)
        # the uint8 crops re-normalised are the builder's feature images (the inverse is exact)
        np.testing.assert_allclose(batch["images"][0].numpy(), feats["images"].numpy(), atol=1e-4)
        for key in ("intrinsics", "cam_to_ego", "ego"):
            np.testing.assert_allclose(item[key], feats[key].numpy(), atol=1e-6)
        gt = scene.human_trajectory(8, 0.5)
        np.testing.assert_allclose(item["gt_trajectory"], gt, atol=1e-5)
        speed, path = commands_from_trajectory(gt, float(np.hypot(*item["ego"][:2])), 0.5)
        assert (int(item["speed_command"]), int(item["path_command"])) == (int(speed), int(path))
        assert int(item["nav_command"]) == int(np.argmax(item["ego"][5:9]))
        assert "bev_semantic" not in item and "agent_boxes" not in item


def test_the_imitation_step_trains_on_navsim_samples(navsim_set):
    agent, _, out, _ = navsim_set
    ds = ShardDataset(out)
    batch = next(iter(make_loader(ds, 2, 1, seed=0)))
    model = agent.policy.model.train()
    loss, metrics = il_step(model, batch, step_generator(0, 0), 0)
    loss.backward()
    assert np.isfinite(float(loss.detach())) and "imitation" in metrics
    assert not {"detection", "map", "seg"} & set(metrics)  # no targets for them in NAVSIM's builders
    model.zero_grad(set_to_none=True)
    model.eval()
    with pytest.raises(ValueError, match="embedded world"):
        ds.require_scenes("rwm-labels")


def test_wrong_builders_and_a_missing_devkit_are_named(navsim_set, tmp_path):
    agent, scenes, _, _ = navsim_set

    class OtherBuilder:  # e.g. TransFuser's features
        def compute_features(self, agent_input):
            return {"camera_feature": np.zeros(3)}

    with pytest.raises(KeyError, match="IRLVLAFeatureBuilder"):
        build_navsim_dataset(
            LoaderStandIn(scenes[:1]), [OtherBuilder()], agent.get_target_builders(), tmp_path, progress=False
        )
    if not HAVE_NAVSIM:
        with pytest.raises(ImportError, match="'navsim' extra"):
            require_navsim()
