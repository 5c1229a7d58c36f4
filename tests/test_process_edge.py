"""What surrounds every command: closed or full standard streams, odd hosts and COLUMNS, as one line, never a
traceback. Each runs ``relay`` as a user's shell does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import relay_env

RELAY = f"{sys.executable} -m relay_cli"
EVENT = '{"event_type": "calling.call.state", "params": {"call_id": "c-1", "call_state": "ringing"}}\n'


def shell(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in relay_env(**env).items() if not k.startswith("SIGNALWIRE_") or k in env}
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.jsonl"
    path.write_text(EVENT * 3)
    return path


@pytest.mark.parametrize("args", ["replay {rec}", "parse {rec}", "calls {rec}", "--help", "--version"])
def test_a_stdout_that_cannot_be_written_is_one_line_and_exit_1(args: str, recording: Path) -> None:
    result = shell(f"{RELAY} {args.format(rec=recording)} >/dev/full")
    assert (result.returncode, result.stderr) == (1, "relay: cannot write to stdout: No space left on device\n")


@pytest.mark.parametrize("args", ["replay {rec}", "parse {rec}", "tail --demo -n 2 -q"])
def test_a_closed_stdout_ends_quietly(args: str, recording: Path) -> None:
    result = shell(f"{RELAY} {args.format(rec=recording)} >&-")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_closed_stdin_reads_as_empty_input() -> None:
    result = shell(f"{RELAY} parse - <&-")
    assert (result.returncode, result.stderr) == (1, "relay: <stdin>: empty input, no JSON found\n")


@pytest.mark.parametrize(
    ("space", "why"),
    [
        ("127.0.0.1:99999", "is not a valid host: Port out of range 0-65535"),
        ("host:abc", "is not a valid host: Port could not be cast to integer value as 'abc'"),
        ("a..b", "has a host name no resolver takes (an empty or too long label)"),
    ],
)
def test_a_space_no_socket_can_dial_is_a_usage_error_naming_its_variable(space: str, why: str) -> None:
    result = shell(f"{RELAY} tail -c office --project p --token t", SIGNALWIRE_SPACE=space)
    assert result.returncode == 2
    assert result.stderr == f"relay: SIGNALWIRE_SPACE={space!r} (from the environment): {why}\n"


def test_a_url_whose_host_no_resolver_takes_is_a_usage_error() -> None:
    result = shell(f"{RELAY} tail --url wss://a..b/ -c office --project p --token t")
    assert (result.returncode, result.stderr) == (
        2,
        "relay: --url 'wss://a..b/' has a host name no resolver takes (an empty or too long label)\n",
    )


def test_a_listen_or_control_host_no_resolver_takes_is_one_line() -> None:
    long = "a" * 300
    served = shell(f"{RELAY} serve --port 0 --host {long}")
    assert (served.returncode, served.stderr) == (1, f"relay: cannot listen on {long[:100]!r}: not a valid host name\n")
    called = shell(f"{RELAY} call --to +15550001000 --control http://a..b")
    assert called.returncode == 1 and called.stderr.startswith("relay: no relay serve control plane at http://a..b: ")


def test_a_huge_columns_is_capped_not_built() -> None:
    result = shell(f"{RELAY} --help", COLUMNS="99999999999")
    assert result.returncode == 0 and "Usage: relay" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 1000


@pytest.mark.parametrize("command", ["tail --demo -n 1", "serve --port 0", "proxy --plain --listen 127.0.0.1:0"])
def test_an_empty_record_file_name_is_a_usage_error_not_no_recording(command: str) -> None:
    result = shell(f"{RELAY} {command} --record ''")
    assert (result.returncode, result.stderr) == (2, "relay: --record needs a file name: it was given an empty one\n")
