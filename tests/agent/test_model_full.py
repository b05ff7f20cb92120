"""The full (paper-size) preset: structure and parameter counts on the 'meta' device, never a forward pass; the
`irlvla model summary` command; the DD3D / detectron2 V2-99 weight mapping."""

from __future__ import annotations

import json
import re

import pytest
import torch

from agent.config import BackboneConfig, load_preset
from agent.model.backbone import VoVNetBackbone, detectron2_to_timm_key, load_vovnet_weights


@pytest.fixture(scope="module")
def full_model():
    from agent.model.irlvla import build_model

    cfg = load_preset("full")
    return cfg, build_model(cfg, device="meta")


def test_full_backbone_is_vovnet99_at_62m(full_model):
    cfg, model = full_model
    n = sum(p.numel() for p in model.backbone.parameters())
    assert 61.5e6 < n < 63.0e6  # VoVNetV2-99 eSE, stages 2-5, no classifier: ~62.2 M
    assert model.backbone.out_channels == (768, 1024)
    assert model.backbone.strides == (16, 32)
    # stages hold 1, 3, 9, 3 OSA blocks
    blocks = [len(getattr(model.backbone.body, f"stages_{i}").blocks) for i in range(4)]
    assert blocks == [1, 3, 9, 3]


def test_full_structure_matches_paper(full_model):
    cfg, model = full_model
    assert model.detection.queries.weight.shape == (31, 256)  # 30 agents + 1 ego
    assert model.bev_pos.shape == (128 * 128, 256)
    assert model.bev.frustum.shape == (118, 16, 44, 3)
    assert tuple(model.planner.anchors.shape) == (20, 8, 3)
    assert len(model.planner.layers) == 2
    assert model.speed_embedding.weight.shape == (13, 256) and model.path_embedding.weight.shape == (9, 256)
    assert model.seg.classifier.out_channels == 7
    total = model.parameter_counts()["total"]
    assert 70e6 < total < 85e6


def test_summary_cli_json(capsys):
    from irlvla.cli import main

    assert main(["model", "summary", "--preset", "full", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["backbone"] == "ese_vovnet99b"
    assert 61.5e6 < summary["parameters"]["backbone"] < 63.0e6
    shapes = summary["shapes"]
    assert shapes["bev"] == [1, 256, 128, 128]
    assert shapes["queries"] == {"ego": 1, "agents": 30, "map": 50}
    assert shapes["images"] == [1, 6, 3, 256, 704]
    assert shapes["backbone_features"] == [[6, 768, 16, 44], [6, 1024, 8, 22]]
    assert shapes["candidates"] == [1, 20, 8, 3]
    assert shapes["depth_bins"] == 118


def test_summary_cli_text(capsys):
    from irlvla.cli import main

    assert main(["model", "summary", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "backbone" in out and "total" in out and "candidates" in out


# ---------------------------------------------------------------------------------------------- DD3D weights


@pytest.mark.parametrize(
    "src, dst",
    [
        ("backbone.bottom_up.stem.stem_1/conv.weight", "stem_0.conv.weight"),
        ("backbone.bottom_up.stem.stem_3/norm.running_mean", "stem_2.bn.running_mean"),
        (
            "backbone.bottom_up.stage4.OSA4_2.layers.3.OSA4_2_3/norm.running_var",
            "stages_2.blocks.1.conv_mid.3.bn.running_var",
        ),
        ("stage2.OSA2_1.concat.OSA2_1_concat/conv.weight", "stages_0.blocks.0.conv_concat.conv.weight"),
        ("backbone.stage5.OSA5_3.ese.fc.bias", "stages_3.blocks.2.attn.fc.bias"),
        ("backbone.fpn_lateral4.weight", None),
    ],
)
def test_detectron2_key_mapping(src, dst):
    assert detectron2_to_timm_key(src) == dst


def _to_detectron2(key: str) -> str:
    """Hand-written inverse of the mapping (timm features-only name -> vovnet-detectron2 name), for the test."""
    part = {"conv": "conv", "bn": "norm"}
    if m := re.match(r"stem_(\d)\.(conv|bn)\.(\w+)$", key):
        return f"backbone.bottom_up.stem.stem_{int(m[1]) + 1}/{part[m[2]]}.{m[3]}"
    if m := re.match(r"stages_(\d)\.blocks\.(\d+)\.conv_mid\.(\d+)\.(conv|bn)\.(\w+)$", key):
        s, b = int(m[1]) + 2, int(m[2]) + 1
        return f"backbone.bottom_up.stage{s}.OSA{s}_{b}.layers.{m[3]}.OSA{s}_{b}_{m[3]}/{part[m[4]]}.{m[5]}"
    if m := re.match(r"stages_(\d)\.blocks\.(\d+)\.conv_concat\.(conv|bn)\.(\w+)$", key):
        s, b = int(m[1]) + 2, int(m[2]) + 1
        return f"backbone.bottom_up.stage{s}.OSA{s}_{b}.concat.OSA{s}_{b}_concat/{part[m[3]]}.{m[4]}"
    if m := re.match(r"stages_(\d)\.blocks\.(\d+)\.attn\.fc\.(\w+)$", key):
        s, b = int(m[1]) + 2, int(m[2]) + 1
        return f"backbone.bottom_up.stage{s}.OSA{s}_{b}.ese.fc.{m[3]}"
    raise AssertionError(key)


def _small_cfg(**kw) -> BackboneConfig:
    base = dict(
        variant="custom",
        stem_chs=(8, 8, 16),
        stage_conv_chs=(8, 8, 8, 8),
        stage_out_chs=(16, 16, 24, 24),
        layer_per_block=2,
        block_per_stage=(1, 2, 1, 1),
    )
    base.update(kw)
    return BackboneConfig(**base)


def test_detectron2_weights_load_into_ese_every_block_backbone(tmp_path):
    torch.manual_seed(0)
    src = VoVNetBackbone(_small_cfg(ese_every_block=True))
    state = {_to_detectron2(k): v for k, v in src.body.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["backbone.fpn_lateral4.weight"] = torch.zeros(1)  # FPN keys are ignored, not errors
    path = tmp_path / "v99_d2.pth"
    torch.save({"model": state}, path)
    torch.manual_seed(1)
    dst = VoVNetBackbone(_small_cfg(ese_every_block=True))
    report = load_vovnet_weights(dst, path)
    assert (
        report["missing"] == [] and report["unexpected"] == [] and report["ignored"] == ["backbone.fpn_lateral4.weight"]
    )
    for k, v in src.body.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, dst.body.state_dict()[k]), k
    # timm's layout (gate only on each stage's last block) cannot hold them: the error says which keys and why
    with pytest.raises(ValueError, match=r"stages_1\.blocks\.0\.attn\.fc\.weight.*ese_every_block"):
        load_vovnet_weights(VoVNetBackbone(_small_cfg()), path)
    # a wrong shape is named with both shapes
    state["backbone.bottom_up.stem.stem_1/conv.weight"] = torch.zeros(8, 3, 5, 5)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"stem_0\.conv\.weight: file \(8, 3, 5, 5\) vs model \(8, 3, 3, 3\)"):
        load_vovnet_weights(dst, path)


def test_timm_classifier_weights_load(tmp_path):
    """ImageNet-style timm VovNet weights (stem.N / stages.N names, classifier head) load into the features backbone."""
    from timm.models import vovnet

    from agent.model.backbone import resolve_arch

    cfg = _small_cfg(block_per_stage=(1, 1, 1, 1))
    torch.manual_seed(0)
    classifier = vovnet.VovNet(resolve_arch(cfg), num_classes=10)
    path = tmp_path / "timm.pth"
    torch.save(classifier.state_dict(), path)
    torch.manual_seed(1)
    dst = VoVNetBackbone(cfg)
    report = load_vovnet_weights(dst, path)
    assert report["ignored"] == ["head.fc.weight", "head.fc.bias"]
    src = classifier.state_dict()
    assert torch.equal(
        dst.body.state_dict()["stages_3.blocks.0.conv_concat.conv.weight"],
        src["stages.3.blocks.0.conv_concat.conv.weight"],
    )
    assert torch.equal(dst.body.state_dict()["stem_1.bn.running_var"], src["stem.1.bn.running_var"])
