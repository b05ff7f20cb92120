from __future__ import annotations

import json
from pathlib import Path

import pytest

from irlvla.cli import main
from irlvla.shared_data import shared_path

DATA = shared_path("data", "bench2drive")
needs_data = pytest.mark.skipif(not (DATA / "UniAD-Base.merged.json").is_file(), reason="shared data absent")


@needs_data
def test_metrics_cli_on_merged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m.json"
    rc = main(
        [
            "b2d",
            "metrics",
            "--merged",
            str(DATA / "UniAD-Base.merged.json"),
            "--routes",
            str(DATA / "bench2drive220.xml"),
            "--json",
            str(out),
            "--name",
            "UniAD-Base",
            "--no-plot",
        ]
    )
    assert rc == 0
    m = json.loads(out.read_text())
    for key in (
        "driving_score",
        "success_rate",
        "efficiency",
        "comfort",
        "abilities",
        "num_routes",
        "infractions_per_km",
    ):
        assert key in m
    assert set(m["abilities"]) == {"Overtaking", "Merging", "Emergency_Brake", "Give_Way", "Traffic_Signs", "mean"}
    assert (round(m["driving_score"], 2), round(m["success_rate"], 2), round(m["efficiency"], 2)) == (
        45.81,
        16.36,
        129.21,
    )
    assert m["num_routes"] == 218 and m["comfort"] is None
    table = capsys.readouterr().out
    assert "| UniAD-Base | 45.81 | 16.36 | 129.21 | - |" in table
    assert "| UniAD-Base | 17.78 | 14.10 | 21.67 | 10.00 |" in table
    assert "strict successes only" in out.with_suffix(".md").read_text()


@needs_data
def test_split_then_merge_cli(tmp_path: Path) -> None:
    assert (
        main(
            [
                "b2d",
                "split",
                "--routes",
                str(DATA / "drivetransformer_bench2drive_dev10.xml"),
                "--shards",
                "3",
                "--out",
                str(tmp_path / "shards"),
            ]
        )
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "shards").glob("*.xml"))
    assert names == [f"drivetransformer_bench2drive_dev10_{i}.xml" for i in range(3)]
    # merge the official merged file's records split in two shard files plus an ability file that must be ignored
    doc = json.loads((DATA / "VAD.merged.json").read_text())
    recs = doc["_checkpoint"]["records"]
    res = tmp_path / "res"
    res.mkdir()
    for i, part in enumerate((recs[:100], recs[100:])):
        (res / f"eval_{i}.json").write_text(json.dumps({"_checkpoint": {"records": part}}))
    (res / "merged_ability.json").write_text("{}")
    assert main(["b2d", "merge", "--results", str(res)]) == 0
    merged = json.loads((res / "merged.json").read_text())
    assert merged["eval num"] == 213
    assert round(merged["driving score"], 2) == 42.35 and round(merged["success rate"], 4) == 0.15


def test_metrics_cli_bad_input(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"foo": 1}')
    assert main(["b2d", "metrics", "--merged", str(bad), "--json", str(tmp_path / "o.json")]) == 2
    assert "not a leaderboard checkpoint" in caplog.text
    assert not (tmp_path / "o.json").exists()
