"""`irlvla scenes generate` / `show`: files land where promised, bad input exits 2 with a message naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from irlvla.cli import main
from sim.scenarios import generate_scene, scene_seeds
from sim.scene_io import SUFFIX, load_scene, scene_to_bytes


def test_generate_writes_tokens_and_matches_the_library(tmp_path, capsys):
    out = tmp_path / "scenes"
    assert main(["scenes", "generate", "--n", "2", "--seed", "3", "--out", str(out), "--families", "curve"]) == 0
    files = sorted(out.iterdir())
    assert len(files) == 2 and all(f.name.endswith(SUFFIX) for f in files)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scenes"] == 2 and summary["families"] == {"curve": 2} and summary["failed"] == []
    # scene i is generate_scene(family, scene_seeds(n, seed)[i]), byte for byte
    expected = [generate_scene("curve", int(s)) for s in scene_seeds(2, 3)]
    by_token = {s.token: scene_to_bytes(s) for s in expected}
    for f in files:
        scene = load_scene(f)
        assert f.name == scene.token + SUFFIX
        assert f.read_bytes() == by_token[scene.token]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--n", "2", "--seed", "-4"], "--seed must be non-negative"),
        (["--n", "1", "--families", "teleport"], "unknown families"),
        (["--n", "1", "--past", "0.5"], "past_s"),
    ],
)
def test_generate_rejects_bad_parameters(tmp_path, capsys, argv, needle):
    rc = main(["scenes", "generate", "--out", str(tmp_path / "o"), *argv])
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # validated before anything is created


def test_show_reports_missing_input(tmp_path, capsys):
    assert main(["scenes", "show", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "scene not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["scenes", "show", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2


def test_show_renders_a_folder(tmp_path):
    scenes = tmp_path / "scenes"
    assert (
        main(["scenes", "generate", "--n", "1", "--seed", "0", "--out", str(scenes), "--families", "intersection"]) == 0
    )
    out = tmp_path / "renders"
    rc = main(
        ["scenes", "show", str(scenes), "--out", str(out), "--width", "160", "--height", "90", "--bev-size", "64"]
    )
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert sum(n.endswith("_bev.png") for n in names) == 1
    assert sum(n.endswith("_mosaic.png") for n in names) == 1
    assert sum("_CAM_" in n for n in names) == 6
    front = next(p for p in out.iterdir() if p.name.endswith("_CAM_FRONT.png"))
    img = np.asarray(Image.open(front))
    assert img.shape == (90, 160, 3)
    assert main(["scenes", "show", str(scenes), "--out", str(out), "--t", "99"]) == 2


def test_show_skips_a_corrupt_scene_and_renders_the_rest(tmp_path, capsys):
    scenes = tmp_path / "scenes"
    assert main(["scenes", "generate", "--n", "1", "--seed", "0", "--out", str(scenes)]) == 0
    (scenes / "aaa_broken.scene.json.gz").write_bytes(b"\x1f\x8b truncated")  # sorts first
    out = tmp_path / "renders"
    args = ["scenes", "show", str(scenes), "--all", "--out", str(out), "--width", "64", "--height", "36"]
    assert main([*args, "--bev-size", "32"]) == 2
    assert "aaa_broken" in capsys.readouterr().err
    assert sum(p.name.endswith("_CAM_FRONT.png") for p in out.iterdir()) == 1  # the good scene was still rendered
