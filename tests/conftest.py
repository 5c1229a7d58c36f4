"""Helpers shared by the test modules: running the real CLI, the real corpus, strict value comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
REAL_FRAMES = DATA / "real_frames.jsonl"

# Variables that change how relay prints; every run starts without them unless a test sets them.
_OUTPUT_ENV = ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "TERM", "TZ", "COLUMNS")


def relay_env(**overrides: str) -> dict[str, str]:
    """The environment for a ``relay`` subprocess: no colour settings, UTC, plus ``overrides``.

    Bytecode is cached outside the source tree, since start-up is most of a short run's cost.
    """
    env = {k: v for k, v in os.environ.items() if k not in _OUTPUT_ENV and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), f"relay-tests-pycache-{os.getuid()}")
    env["TZ"] = "UTC"
    env.update(overrides)
    return env


def run_relay(
    *args: str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m relay_cli ARGS`` with ``input`` on stdin (or an empty, non-terminal stdin)."""
    return subprocess.run(
        [sys.executable, "-m", "relay_cli", *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env if env is not None else relay_env(),
        timeout=timeout,
        check=False,
    )


def real_records() -> list[dict[str, Any]]:
    """Every line of the real corpus: ``{"source", "kind", "data"}``."""
    lines = REAL_FRAMES.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def real_payloads() -> list[dict[str, Any]]:
    """Every bare payload of the corpus and the params of every ``signalwire.event`` frame, in order."""
    payloads: list[dict[str, Any]] = []
    for record in real_records():
        data = record["data"]
        if record["kind"] == "payload":
            payloads.append(data)
        elif record["kind"] == "frame" and data.get("method") == "signalwire.event":
            payloads.append(data["params"])
    return payloads


def strict_equal(a: Any, b: Any) -> bool:
    """Equal values of the same type at every depth: ``1``, ``1.0``, ``True`` and ``"1"`` all differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
