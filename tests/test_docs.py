"""The README documents every command and every option, and the help text lists the exit codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from relay_cli.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
COMMAND = typer.main.get_command(app)
COMMANDS = sorted(COMMAND.commands)  # type: ignore[attr-defined]


def options(name: str) -> list[str]:
    command = COMMAND.commands[name]  # type: ignore[attr-defined]
    found = []
    for param in command.params:
        found += [opt for opt in param.opts if opt.startswith("--") and opt != "--help"]
    return found


def test_every_command_is_there() -> None:
    assert COMMANDS == ["call", "calls", "message", "parse", "proxy", "replay", "serve", "tail"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_readme_section(name: str) -> None:
    assert re.search(rf"^### `relay {name}`", README, re.MULTILINE), f"no README section for relay {name}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_the_readme(name: str) -> None:
    missing = [opt for opt in options(name) if f"`{opt}" not in README]
    assert not missing, f"relay {name}: {missing} not in README.md"


def test_exit_codes_are_in_the_readme_and_the_help() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    for code in ("0 ok", "1 runtime failure", "2 usage error", "130 interrupted", "143 terminated"):
        assert code in result.output
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 130 |", "| 143 |"):
        assert code in README
