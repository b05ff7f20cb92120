"""The `irlvla` dispatcher: every room's subcommand is registered and help works without a subcommand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from irlvla.cli import SUBCOMMANDS, build_parser, main


def test_every_subcommand_registers():
    parser = build_parser([])
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(SUBCOMMANDS) <= set(sub.choices)


def test_no_subcommand_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "scenes" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_console_module_runs_as_a_program():
    out = subprocess.run([sys.executable, "-m", "irlvla.cli", "--help"], capture_output=True, text=True, check=True)
    for name in SUBCOMMANDS:
        assert name in out.stdout
