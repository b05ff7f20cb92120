"""The dev suite: the expert drives it with a driving score of at least 95; the shipped route file is what the
current world generates (else SUITE_VERSION needs a bump and the files a rewrite)."""

from __future__ import annotations

import pytest

from sim.closed_loop.evaluate import run_suite
from sim.closed_loop.suites import load_suite, suite_path, suite_specs, suite_xml


@pytest.mark.slow
def test_expert_drives_the_dev_suite(tmp_path):
    specs, path, _ = load_suite("dev")
    assert [s.route_id for s in specs] == [s.route_id for s in suite_specs("dev")]
    summary = run_suite(specs, "expert", tmp_path / "run", route_file=path, progress=False)
    assert len(summary.records) == 10
    assert summary.driving_score >= 95.0, summary.table()
    serious = ("collisions_vehicle", "collisions_pedestrian", "collisions_layout", "red_light", "stop_infraction")
    assert not any(r["infractions"][k] for r in summary.records for k in serious)


@pytest.mark.slow
def test_dev_route_file_is_current():
    assert suite_xml("dev", suite_specs("dev")) == suite_path("dev").read_bytes()
