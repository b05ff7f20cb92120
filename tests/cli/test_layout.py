"""The house drawn from the imports (`irlvla.layout`): the rules of docs/architecture.md hold in the code."""

from __future__ import annotations

from pathlib import Path

from irlvla.layout import MAX_ROOM_SHARE, measure

#: Known breaks of the rules, listed so a new one fails and a fixed one must be taken off (docs/architecture.md).
KNOWN_VIOLATIONS: list[str] = []
KNOWN_OVERSIZED: set[str] = set()


def test_rooms_import_only_downwards_without_cycles():
    lay = measure()
    assert lay.eager["agent"] <= {"irlvla"} and lay.lazy["agent"] <= {"irlvla"}  # the core imports no other room
    assert lay.violations() == KNOWN_VIOLATIONS
    assert lay.cycles() == []


def test_no_room_holds_more_than_30_percent():
    lay = measure()
    assert {r for r in lay.lines if lay.share(r) > MAX_ROOM_SHARE} == KNOWN_OVERSIZED


def test_the_measure_sees_imports_cycles_and_rule_breaks(tmp_path: Path):
    """A hand-made tree: `a.x` <-> `a.y` through a type-only import, `a` importing `b` (not allowed) lazily."""
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "__init__.py").write_text("")
    (tmp_path / "agent" / "x.py").write_text("from agent.y import Y\n\n\ndef f():\n    import sim.z\n")
    (tmp_path / "agent" / "y.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from agent.x import f\nY = 1\n"
    )
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "z.py").write_text("from agent import x\n")
    lay = measure(tmp_path, ("agent", "sim"))
    assert lay.lines == {"agent": 5 + 5, "sim": 1}
    assert lay.eager == {"agent": set(), "sim": {"agent"}} and lay.lazy == {"agent": {"sim"}, "sim": set()}
    assert lay.cycles() == [["agent.x", "agent.y"]]
    assert lay.violations() == ["agent -> sim"]
    assert lay.module_edges["sim.z"] == {"agent.x"}  # `from agent import x` names the module agent.x
