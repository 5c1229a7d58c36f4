"""Shell completions: the shipped scripts are current, and the app answers their questions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def complete_bash(words: str) -> list[str]:
    env = {
        **os.environ,
        "_RELAY_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    result = subprocess.run([sys.executable, "-m", "relay_cli"], env=env, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_shipped_completion_scripts_match_the_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "completions.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for shell in ("bash", "zsh", "fish"):
        assert "_RELAY_COMPLETE" in (ROOT / "completions" / f"relay.{shell}").read_text()


def test_zsh_script_starts_with_its_compdef_tag() -> None:
    assert (ROOT / "completions" / "relay.zsh").read_text().startswith("#compdef relay\n")


def test_commands_complete() -> None:
    assert set(complete_bash("relay ")) >= {"tail", "parse", "replay", "serve"}


def test_option_values_complete() -> None:
    assert complete_bash("relay tail --format ") == ["pretty", "json", "frame", "typed", "none"]
    assert "--context" in complete_bash("relay tail --con")
