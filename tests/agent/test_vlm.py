"""VLM command guidance: vocabulary, prompt, parser, likelihood scoring, latching, threads, auto-labeller."""

from __future__ import annotations

import logging
import re
import threading
import time

import numpy as np
import pytest
import torch

from agent.model.vlm import CommandResult, VLMCommandGuidance, VLMConfig, build_prompt, parse_commands
from agent.model.vlm_labels import commands_from_trajectory
from agent.model.vlm_parse import resolve_commands
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS, NavigationCommand, PathPlan, SpeedPlan
from irlvla.shared_data import shared_path

SEED = shared_path("seed", "IRL-VLA-supplementary.txt")
VIEWS = VLMConfig().views

S, P = SpeedPlan, PathPlan


def _images(h: int = 90, w: int = 160, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for v in VIEWS}


@pytest.fixture(scope="module")
def guidance():
    g = VLMCommandGuidance(VLMConfig(refresh_every=3, seed=0))
    yield g
    g.close()


# ------------------------------------------------------------------------------------------------------ vocabulary


def test_vocabulary_is_the_seeds_exactly():
    assert SPEED_PLAN_COMMANDS == (
        "Emergency Decel", "Full Stop", "Creeping", "Regenerative Braking", "Controlled Decel", "Mild Decel Linear",
        "Mild Decel", "Mild Accel", "Mild Accel NonLinear", "Mild Accel Linear", "Aggressive Accel",
        "Constant Speed Loose", "Constant Speed Strict",
    )  # fmt: skip
    assert PATH_PLAN_COMMANDS == (
        "Swerving", "Sharp Left Turn", "Slight Left Turn", "Sharp Right Turn", "Slight Right Turn", "Straight Strict",
        "Left LaneChange", "Lane Micro Adjust", "Right LaneChange",
    )  # fmt: skip
    if not SEED.is_file():
        pytest.skip("../shared seed text absent")
    text = SEED.read_text()
    speed = re.search(r"Speed Plan Command:\s*(.+)", text).group(1).strip()
    path = re.search(r"Path Plan Command:\s*(.+)", text).group(1).strip()
    assert tuple(s.strip() for s in speed.split(",")) == SPEED_PLAN_COMMANDS
    assert tuple(s.strip() for s in path.split(",")) == PATH_PLAN_COMMANDS


# ------------------------------------------------------------------------------------------------------ prompt


def test_prompt_is_senna_style():
    prompt = build_prompt(7.26, NavigationCommand.LEFT, VIEWS)
    assert prompt.startswith(
        "<FRONT LEFT VIEW>:\n<image>\n<FRONT VIEW>:\n<image>\n<FRONT RIGHT VIEW>:\n<image>\n"
        "<BACK LEFT VIEW>:\n<image>\n<BACK VIEW>:\n<image>\n<BACK RIGHT VIEW>:\n<image>\n"
    )
    assert prompt.count("<image>") == 6
    assert "Your current speed is 7.3 m/s and the navigation command is" in prompt
    assert "'turn left'" in prompt
    for name in SPEED_PLAN_COMMANDS + PATH_PLAN_COMMANDS:
        assert name in prompt
    assert "'SPEED, PATH'" in prompt
    with pytest.raises(ValueError, match="ego_speed"):
        build_prompt(float("nan"), NavigationCommand.LEFT, VIEWS)


# ------------------------------------------------------------------------------------------------------ parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mild Accel, Straight Strict", (S.MILD_ACCEL, P.STRAIGHT_STRICT)),
        ("Mild Accel Linear, Left LaneChange", (S.MILD_ACCEL_LINEAR, P.LEFT_LANECHANGE)),
        ("Mild Accel NonLinear, Lane Micro Adjust", (S.MILD_ACCEL_NONLINEAR, P.LANE_MICRO_ADJUST)),
        ("mild decel linear, right lanechange", (S.MILD_DECEL_LINEAR, P.RIGHT_LANECHANGE)),
        ("MILD_ACCEL_NONLINEAR, SHARP_LEFT_TURN\n", (S.MILD_ACCEL_NONLINEAR, P.SHARP_LEFT_TURN)),
        ("mild-accel-non-linear,   slight  right   turn", (S.MILD_ACCEL_NONLINEAR, P.SLIGHT_RIGHT_TURN)),
        ("MildAccelLinear, LeftLaneChange", (S.MILD_ACCEL_LINEAR, P.LEFT_LANECHANGE)),
        ("Left Lane Change, Full Stop", (S.FULL_STOP, P.LEFT_LANECHANGE)),  # either order
        ("PATH: Swerving. SPEED: Emergency Decel.", (S.EMERGENCY_DECEL, P.SWERVING)),
        ("I think: blah Creeping foo; then Sharp Right Turn!", (S.CREEPING, P.SHARP_RIGHT_TURN)),
        ("Constant Speed Loose, Straight Strict", (S.CONSTANT_SPEED_LOOSE, P.STRAIGHT_STRICT)),
        ("Mild Acceleration, Straight", (None, None)),  # no label hidden inside a longer word
        ("Mild Accel Linearly", (S.MILD_ACCEL, None)),  # "Linear" must end on a word boundary
        ("Constant Speed, Left Turn", (None, None)),  # incomplete labels are not commands
        ("", (None, None)),
    ],
)
def test_parse_commands(text, expected):
    assert parse_commands(text) == expected


def test_garbage_falls_back_and_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="agent.model.vlm_parse"):
        speed, path, used = resolve_commands("banana ', next . next")
    assert (speed, path, used) == (S.CONSTANT_SPEED_STRICT, P.STRAIGHT_STRICT, True)
    assert "falling back" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent.model.vlm_parse"):
        assert resolve_commands("Full Stop, banana") == (S.FULL_STOP, P.STRAIGHT_STRICT, True)
        assert resolve_commands("Full Stop, Swerving") == (S.FULL_STOP, P.SWERVING, False)
    assert caplog.text.count("falling back") == 1
    with pytest.raises(TypeError):
        parse_commands(None)


# ------------------------------------------------------------------------------------------------------ scoring


def test_likelihood_probabilities_cover_exactly_the_commands(guidance):
    r = guidance.score_commands(_images(), 6.0, NavigationCommand.STRAIGHT, tick=4)
    assert r.speed_probs.shape == (13,) and r.path_probs.shape == (9,)
    assert r.speed_probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert r.path_probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(r.speed_probs > 0) and np.all(r.path_probs > 0)
    assert r.speed == int(np.argmax(r.speed_probs)) and r.path == int(np.argmax(r.path_probs))
    assert r.source == "likelihood" and r.tick == 4 and r.latency_ms > 0
    assert r.text == f"{SPEED_PLAN_COMMANDS[r.speed]}, {PATH_PLAN_COMMANDS[r.path]}"


def test_likelihood_is_deterministic_for_a_seed(guidance):
    imgs = _images()
    a = guidance.score_commands(imgs, 6.0, NavigationCommand.RIGHT)
    other = VLMCommandGuidance(VLMConfig(seed=0))
    b = other.score_commands(imgs, 6.0, NavigationCommand.RIGHT)
    np.testing.assert_array_equal(a.speed_probs, b.speed_probs)
    np.testing.assert_array_equal(a.path_probs, b.path_probs)
    c = VLMCommandGuidance(VLMConfig(seed=1)).score_commands(imgs, 6.0, NavigationCommand.RIGHT)
    assert not np.allclose(a.speed_probs, c.speed_probs)


def test_scores_match_an_independent_teacher_forced_forward(guidance):
    """The cached, batched scorer against a plain full-sequence forward summing log-probs by hand."""
    imgs = _images(seed=3)
    r = guidance.score_commands(imgs, 3.0, NavigationCommand.LEFT)
    b = guidance.backend
    inputs = b.prepare(imgs, 3.0, NavigationCommand.LEFT)
    prompt = inputs["input_ids"][0].tolist()

    def loglik(prefix: list[int], answer: list[int]) -> float:
        ids = torch.tensor([prefix + answer])
        with torch.no_grad():
            logits = b.model(input_ids=ids, pixel_values=inputs["pixel_values"]).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        return float(sum(logp[len(prefix) - 1 + k, tok] for k, tok in enumerate(answer)))

    tok = b.tokenizer
    comma = tok.convert_tokens_to_ids(",")
    for i in (0, 7, 9):  # "Emergency Decel", "Mild Accel", "Mild Accel Linear"
        answer = tok.convert_tokens_to_ids(SPEED_PLAN_COMMANDS[i].split()) + [comma]
        assert r.extras["speed_loglik"][i] == pytest.approx(loglik(prompt, answer), abs=1e-3)
    speed_answer = tok.convert_tokens_to_ids(SPEED_PLAN_COMMANDS[r.speed].split()) + [comma]
    for j in (1, 6):  # "Sharp Left Turn", "Left LaneChange"
        answer = tok.convert_tokens_to_ids(PATH_PLAN_COMMANDS[j].split()) + [tok.eos_token_id]
        assert r.extras["path_loglik"][j] == pytest.approx(loglik(prompt + speed_answer, answer), abs=1e-3)


def test_full_forward_scoring_equals_cached_scoring(guidance):
    imgs = _images(seed=5)
    a = guidance.score_commands(imgs, 9.0, NavigationCommand.UNKNOWN)
    b = VLMCommandGuidance(VLMConfig(seed=0, reuse_prefix_cache=False)).score_commands(
        imgs, 9.0, NavigationCommand.UNKNOWN
    )
    np.testing.assert_allclose(a.extras["speed_loglik"], b.extras["speed_loglik"], atol=1e-3)
    np.testing.assert_allclose(a.extras["path_loglik"], b.extras["path_loglik"], atol=1e-3)


@pytest.mark.parametrize(
    "text, speed, path, source",
    [
        ("Mild Decel, Slight Left Turn", "Mild Decel", "Slight Left Turn", "generation"),
        ("Creeping", "Creeping", "Straight Strict", "fallback"),  # the missing path plan falls back
        ("no idea", "Constant Speed Strict", "Straight Strict", "fallback"),
    ],
)
def test_generate_mode_parses_the_generated_text(text, speed, path, source):
    """Greedy generation runs on the real tiny model; its (random) text is replaced by a known answer at decoding so
    the parse and the fallback are checked exactly."""
    g = VLMCommandGuidance(VLMConfig(mode="generate", max_new_tokens=6))
    decoded = []

    def decode(ids):
        decoded.append(ids)
        return text

    g.backend.decode = decode
    r = g.commands(_images(), 2.0, NavigationCommand.LEFT, tick=0)
    assert len(decoded) == 1 and 1 <= len(decoded[0]) <= 6  # the generated continuation, prompt excluded
    assert (r.speed_name, r.path_name, r.source, r.text) == (speed, path, source, text)
    assert r.speed_probs[r.speed] == 1.0 and r.path_probs[r.path] == 1.0


def test_bad_inputs_are_named(guidance):
    imgs = _images()
    del imgs["CAM_BACK"]
    with pytest.raises(ValueError, match="CAM_BACK"):
        guidance.score_commands(imgs, 1.0, NavigationCommand.LEFT)
    imgs = _images()
    imgs["CAM_FRONT"] = imgs["CAM_FRONT"].astype(np.float32)
    with pytest.raises(ValueError, match="CAM_FRONT"):
        guidance.score_commands(imgs, 1.0, NavigationCommand.LEFT)
    with pytest.raises(ValueError, match="ego_speed"):
        guidance.score_commands(_images(), float("inf"), NavigationCommand.LEFT)


# ------------------------------------------------------------------------------------------------------ latching


def test_latching_runs_the_vlm_only_on_refresh_ticks(monkeypatch):
    g = VLMCommandGuidance(VLMConfig(refresh_every=3))
    calls: list[int] = []
    real = g._run

    def spy(images, ego_speed, nav, tick):
        calls.append(tick)
        return real(images, ego_speed, nav, tick)

    monkeypatch.setattr(g, "_run", spy)
    imgs = _images()
    results = [g.commands(imgs, 5.0, NavigationCommand.STRAIGHT, t) for t in range(8)]
    assert calls == [0, 3, 6]
    assert [r.tick for r in results] == [0, 0, 0, 3, 3, 3, 6, 6]
    assert results[1] is results[0] and results[2] is results[0]
    g.commands(imgs, 5.0, NavigationCommand.STRAIGHT, 10)  # skipped ticks still refresh
    g.commands(imgs, 5.0, NavigationCommand.STRAIGHT, 2)  # tick went back: a new episode
    assert calls == [0, 3, 6, 10, 2]
    g.reset()
    g.commands(imgs, 5.0, NavigationCommand.STRAIGHT, 3)
    assert calls[-1] == 3 and len(calls) == 6


def test_background_mode_returns_results_and_closes():
    g = VLMCommandGuidance(VLMConfig(background=True, refresh_every=2))
    worker = g._worker
    assert worker is not None and worker.is_alive()
    imgs = _images()
    first = g.commands(imgs, 4.0, NavigationCommand.LEFT, 0)  # blocks once
    assert isinstance(first, CommandResult) and first.tick == 0
    assert g.commands(imgs, 4.0, NavigationCommand.LEFT, 1) is first  # not due: latched, no request
    g.commands(imgs, 4.0, NavigationCommand.LEFT, 2)  # due: submitted, returns without waiting
    deadline = time.monotonic() + 20
    while g.latched.tick != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert g.latched.tick == 2
    assert g.num_vlm_calls == 2
    again = g.commands(imgs, 4.0, NavigationCommand.LEFT, 0)  # tick went back: new episode, blocks for a fresh one
    assert again.tick == 0 and again is not first
    g.close()
    assert not worker.is_alive()
    assert "vlm-command-guidance" not in [t.name for t in threading.enumerate()]
    g.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        g.commands(imgs, 4.0, NavigationCommand.LEFT, 10)


def test_background_worker_failure_is_reported(monkeypatch):
    g = VLMCommandGuidance(VLMConfig(background=True))

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(g, "_run", broken)
    with pytest.raises(RuntimeError, match="first result") as info:
        g.commands(_images(), 4.0, NavigationCommand.LEFT, 0)
    assert "boom" in str(info.value.__cause__)
    g.close()


# ------------------------------------------------------------------------------------------------- config, backends


def test_pretrained_without_a_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_path"):
        VLMCommandGuidance(VLMConfig(backend="pretrained"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VLMCommandGuidance(VLMConfig(backend="pretrained", model_path=str(tmp_path / "nope")))
    with pytest.raises(FileNotFoundError, match="cannot load"):
        VLMCommandGuidance(VLMConfig(backend="pretrained", model_path=str(tmp_path)))


def test_pretrained_backend_loads_a_local_folder(guidance, tmp_path):
    """Save the tiny VLM with a LLaVA processor, reload it through AutoProcessor/AutoModelForImageTextToText."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    guidance.backend.model.save_pretrained(tmp_path)
    LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}),
        tokenizer=guidance.backend.tokenizer,
        patch_size=14,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
    ).save_pretrained(tmp_path)
    g = VLMCommandGuidance(VLMConfig(backend="pretrained", model_path=str(tmp_path)))
    r = g.commands(_images(), 5.0, NavigationCommand.RIGHT, 0)
    assert r.source == "likelihood" and r.speed_probs.sum() == pytest.approx(1.0)
    # six views of 17 image tokens each went through the processor's own expansion
    ids = g.backend.prepare(_images(), 5.0, NavigationCommand.RIGHT)["input_ids"]
    assert int((ids == g.backend.model.config.image_token_index).sum()) == 6 * 17


QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_pretrained_backend_handles_qwen2_vl_with_a_chat_template(tmp_path):
    """A second family (M-RoPE, flattened patches, chat template): cached scoring equals full forwards."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    from agent.model.vlm_backend import build_tiny_tokenizer

    marks = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]
    marks += ["user", "assistant"]  # chat roles, so no <unk> is mistaken for a video token
    tok = build_tiny_tokenizer(VIEWS, marks)
    vocab = tok.get_vocab()
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "patch_size": 14,
            "spatial_merge_size": 2, "temporal_patch_size": 2,
        },
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        image_token_id=vocab["<|image_pad|>"], vision_start_token_id=vocab["<|vision_start|>"],
        vision_end_token_id=vocab["<|vision_end|>"],
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        Qwen2VLForConditionalGeneration(config).save_pretrained(tmp_path)
    Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tok,
        chat_template=QWEN_CHAT_TEMPLATE,
    ).save_pretrained(tmp_path)
    cached = VLMCommandGuidance(VLMConfig(backend="pretrained", model_path=str(tmp_path)))
    assert cached.backend.prompt_text(5.0, NavigationCommand.LEFT).endswith("<|im_start|>assistant\n")
    inputs = cached.backend.prepare(_images(), 5.0, NavigationCommand.LEFT)
    n_image_tokens = int((inputs["input_ids"] == vocab["<|image_pad|>"]).sum())
    assert n_image_tokens == int(inputs["image_grid_thw"].prod(1).sum()) // 4 > 0  # 2x2 patches merge to one token
    a = cached.score_commands(_images(), 5.0, NavigationCommand.LEFT)
    full = VLMCommandGuidance(VLMConfig(backend="pretrained", model_path=str(tmp_path), reuse_prefix_cache=False))
    b = full.score_commands(_images(), 5.0, NavigationCommand.LEFT)
    assert cached._cache_ok  # the cached path did not fall back
    np.testing.assert_allclose(a.extras["speed_loglik"], b.extras["speed_loglik"], atol=1e-3)
    np.testing.assert_allclose(a.extras["path_loglik"], b.extras["path_loglik"], atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "huge"}, "backend"),
        ({"mode": "sample"}, "mode"),
        ({"refresh_every": 0}, "refresh_every"),
        ({"image_size": 50}, "multiple of patch_size"),
        ({"views": ()}, "views"),
        ({"views": ("CAM_FRONT", "CAM_FRONT")}, "duplicates"),
        ({"dtype": "int8"}, "dtype"),
        ({"text_heads": 3}, "text_heads"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VLMConfig(**kwargs)


def test_command_result_checks_its_tables():
    with pytest.raises(ValueError, match="speed_probs"):
        CommandResult(S.FULL_STOP, P.SWERVING, np.ones(12) / 12, np.ones(9) / 9, "likelihood", 1.0, 0)
    with pytest.raises(ValueError, match="path_probs"):
        CommandResult(S.FULL_STOP, P.SWERVING, np.ones(13) / 13, np.ones(9), "likelihood", 1.0, 0)
    with pytest.raises(ValueError, match="source"):
        CommandResult(S.FULL_STOP, P.SWERVING, np.ones(13) / 13, np.ones(9) / 9, "guess", 1.0, 0)
    r = CommandResult(S.FULL_STOP, P.RIGHT_LANECHANGE, np.ones(13) / 13, np.ones(9) / 9, "likelihood", 1.0, 0)
    hot = r.as_vector()
    assert hot.shape == (22,) and hot.sum() == 2 and hot[1] == 1 and hot[13 + 8] == 1
    soft = r.as_vector(soft=True)
    assert soft[:13].sum() == pytest.approx(1.0) and soft[13:].sum() == pytest.approx(1.0)
    fb = CommandResult.fallback(tick=7)
    assert (fb.speed_name, fb.path_name, fb.source, fb.tick) == (
        "Constant Speed Strict",
        "Straight Strict",
        "fallback",
        7,
    )


# ------------------------------------------------------------------------------------------------------ auto-labeller

T = 0.5 * np.arange(0, 9)  # now and 8 future samples at 0.5 s


def _straight(x: np.ndarray) -> np.ndarray:
    return np.stack([x[1:], np.zeros(8), np.zeros(8)], 1)


def test_label_stop():
    v = np.maximum(5.0 - 1.25 * T, 0.0)  # 1.25 m/s^2 to a standstill at 4 s
    assert commands_from_trajectory(_straight(5.0 * T - 0.625 * T**2), v) == (S.FULL_STOP, P.STRAIGHT_STRICT)
    assert commands_from_trajectory(np.zeros((8, 3)), 0.0) == (S.FULL_STOP, P.STRAIGHT_STRICT)  # standing still


def test_label_hard_brake():
    v = np.maximum(15.0 - 6.0 * T, 0.0)  # 6 m/s^2, stopped after 2.5 s
    x = np.where(T < 2.5, 15.0 * T - 3.0 * T**2, 18.75)
    assert commands_from_trajectory(_straight(x), v)[0] == S.EMERGENCY_DECEL


def test_label_constant_speed():
    assert commands_from_trajectory(_straight(10.0 * T), np.full(9, 10.0)) == (
        S.CONSTANT_SPEED_STRICT,
        P.STRAIGHT_STRICT,
    )
    # scalar speed: future speeds from the pose spacing (10 m/s)
    assert commands_from_trajectory(_straight(10.0 * T), 10.0) == (S.CONSTANT_SPEED_STRICT, P.STRAIGHT_STRICT)
    wobbly = 10.0 + np.array([0, 0.5, 0.9, 0.5, 0.0, -0.5, -0.9, -0.5, 0.2])  # mean accel 0.05, range 1.8
    assert commands_from_trajectory(_straight(10.0 * T), wobbly)[0] == S.MILD_ACCEL


def test_label_sharp_left_turn():
    r, v = 8.0, 4.0  # quarter-plus circle: heading = v t / r reaches 2 rad (115 deg) at 4 s
    th = v * T[1:] / r
    poses = np.stack([r * np.sin(th), r * (1 - np.cos(th)), th], 1)
    assert commands_from_trajectory(poses, np.full(9, v)) == (S.CONSTANT_SPEED_STRICT, P.SHARP_LEFT_TURN)


def test_label_lane_change_left():
    u = T[1:] / 4.0
    y = 3.5 * (3 * u**2 - 2 * u**3)  # smooth 3.5 m shift, lateral speed zero again at 4 s
    heading = np.arctan2(3.5 * (6 * u - 6 * u**2) / 4.0, 10.0)
    poses = np.stack([10.0 * T[1:], y, heading], 1)
    assert commands_from_trajectory(poses, np.full(9, 10.0)) == (S.CONSTANT_SPEED_STRICT, P.LEFT_LANECHANGE)
    poses[:, 1:] *= -1
    assert commands_from_trajectory(poses, np.full(9, 10.0))[1] == P.RIGHT_LANECHANGE


def test_label_other_classes():
    x = _straight(10.0 * T)
    assert commands_from_trajectory(x, 5.0 + 2.5 * T)[0] == S.AGGRESSIVE_ACCEL  # mean 2.5 m/s^2
    assert commands_from_trajectory(x, 5.0 + 1.5 * T)[0] == S.MILD_ACCEL_LINEAR  # straight ramp
    assert commands_from_trajectory(x, 5.0 + 6.0 * (T / 4) ** 3)[0] == S.MILD_ACCEL_NONLINEAR  # mean 1.5, late
    assert commands_from_trajectory(x, 5.0 + 0.5 * T)[0] == S.MILD_ACCEL  # mean 0.5
    assert commands_from_trajectory(x, 16.0 - 3.0 * T)[0] == S.REGENERATIVE_BRAKING  # mean -3, ends at 4 m/s
    assert commands_from_trajectory(x, 12.0 - 1.5 * T)[0] == S.CONTROLLED_DECEL  # mean -1.5
    assert commands_from_trajectory(x, 12.0 - 0.5 * T)[0] == S.MILD_DECEL_LINEAR  # mean -0.5, straight ramp
    assert commands_from_trajectory(x, 12.0 - 2.0 * (T / 4) ** 3)[0] == S.MILD_DECEL  # mean -0.5, late
    assert commands_from_trajectory(x, np.full(9, 1.0))[0] == S.CREEPING
    assert commands_from_trajectory(x, 10.0 + 0.2 * T)[0] == S.CONSTANT_SPEED_LOOSE  # mean 0.2, range 0.8
    r = 80.0  # gentle right curve: heading -0.5 rad (-28.6 deg) at 4 s
    th = -10.0 * T[1:] / r
    curve = np.stack([r * np.sin(-th), -r * (1 - np.cos(th)), th], 1)
    assert commands_from_trajectory(curve, np.full(9, 10.0))[1] == P.SLIGHT_RIGHT_TURN
    swerve = np.stack([10.0 * T[1:], 1.5 * np.sin(np.pi * T[1:] / 4), np.zeros(8)], 1)  # out 1.5 m and back
    assert commands_from_trajectory(swerve, np.full(9, 10.0))[1] == P.SWERVING
    nudge = np.stack([10.0 * T[1:], 0.6 * (3 * (T[1:] / 4) ** 2 - 2 * (T[1:] / 4) ** 3), np.zeros(8)], 1)
    assert commands_from_trajectory(nudge, np.full(9, 10.0))[1] == P.LANE_MICRO_ADJUST


def test_label_bad_input():
    with pytest.raises(ValueError, match="future_poses"):
        commands_from_trajectory(np.zeros((8, 2)), 1.0)
    with pytest.raises(ValueError, match="N\\+1"):
        commands_from_trajectory(np.zeros((8, 3)), np.zeros(8))
    with pytest.raises(ValueError, match="NaN"):
        commands_from_trajectory(np.full((8, 3), np.nan), 1.0)
