"""Input a user (or an attacker) gets wrong: each is one clear line on stderr and the documented exit code.

Deep JSON, lines that never end, compressed and binary files, a lone garbage line, objects that are no
event, a recording cut shorter while it is followed, and no input at all.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import RELAY, relay, spawn
from test_parse_cli import run_on_terminal

from relay_cli.emulator.flows import DemoTraffic
from relay_cli.pipeline.reader import MAX_LINE
from relay_cli.pipeline.replay import SPAN_BYTES

GOOD: dict[str, Any] = {
    "event_type": "calling.call.play",
    "params": {"call_id": "c1", "control_id": "k1", "state": "playing"},
}


def line(payload: Any) -> bytes:
    return orjson.dumps(payload) + b"\n"


def deep(depth: int, secret: bool = False) -> bytes:
    """A play event whose params hold lists nested ``depth`` deep: orjson decodes up to 1024 and encodes 254."""
    params = b'{"call_id":"c1","state":"playing",' + (b'"token":"a-secret-token-value",' if secret else b"")
    return b'{"event_type":"calling.call.play","params":' + params + b'"x":' + b"[" * depth + b"]" * depth + b"}}\n"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``relay`` with bytes on stdin (a pipe, never a terminal), capturing bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    return subprocess.run([*RELAY, *args], input=stdin or b"", capture_output=True, timeout=60, env=env, check=False)


# -- 4a: nested too deeply -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "secret"),
    [
        (["replay", "-o", "frame", "-j", "1"], False),
        (["replay", "-o", "typed", "-j", "1"], False),
        (["replay", "-o", "json", "-j", "1"], True),  # a secret makes the json printer encode it again
        (["replay", "-o", "pretty", "-v", "--color", "never"], True),
        (["parse", "-o", "json"], False),
    ],
)
def test_json_nested_too_deeply_to_encode_is_a_bad_line_and_the_run_goes_on(
    tmp_path: Path, args: list[str], secret: bool
) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_bytes(line(GOOD) + deep(1000, secret) + line(GOOD))
    result = relay(*args[:1], str(path), *args[1:])
    assert result.returncode == 1, result.stderr
    assert f"{path}:2: nested too deeply" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert result.stdout.count("c1") >= 2  # the good lines around it are shown


def test_json_nested_too_deeply_in_a_split_replay_is_reported_with_its_line_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    stream = iter(DemoTraffic(seed=5, start=1_764_201_234.0))
    lines = []
    size = 0
    while size < 2 * SPAN_BYTES + (1 << 20):
        lines.append(line(next(stream)))
        size += len(lines[-1])
    at = len(lines) * 3 // 4  # in a later span, so its line number is counted from the top of the file
    lines.insert(at, deep(300))
    path.write_bytes(b"".join(lines))
    split = relay("replay", str(path), "-o", "frame", "--jobs", "2")
    alone = relay("replay", str(path), "-o", "frame", "--jobs", "1")
    assert split.returncode == alone.returncode == 1
    assert split.stderr == alone.stderr == f"{path}:{at + 1}: nested too deeply\nrelay: 1 bad line skipped\n"
    assert split.stdout == alone.stdout and len(split.stdout.splitlines()) == len(lines) - 1


# -- 4e: a line that never ends --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["replay", "parse"])
def test_a_line_longer_than_the_frame_limit_is_skipped_to_its_newline(tmp_path: Path, command: str) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(line(GOOD) + b'{"x": "' + b"a" * (MAX_LINE + 100) + b'"}\n' + line(GOOD))
    result = relay(command, str(path), "-o", "json")
    assert result.returncode == 1
    assert f"{path}:2: line longer than 10 MiB" in result.stderr.splitlines()
    assert len(result.stdout.splitlines()) == 2 and "Traceback" not in result.stderr


def test_a_first_line_that_never_ends_on_stdin_is_cut_at_the_limit(tmp_path: Path) -> None:
    # Read from a pipe, in chunks: memory stays at the limit, whatever the line's length.
    data = b"a" * (3 * MAX_LINE) + b"\n" + line(GOOD)
    result = run("replay", "-", "-o", "json", stdin=data)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == ["<stdin>:1: line longer than 10 MiB", "relay: 1 bad line skipped"]
    assert result.stdout == line(GOOD)


@pytest.mark.parametrize("command", ["replay", "parse", "calls"])
def test_dev_zero_is_refused_at_once_as_binary(command: str) -> None:
    result = relay(command, "/dev/zero", timeout=30)
    assert result.returncode == 1
    assert result.stderr == "relay: /dev/zero: looks like a binary file, not JSON\n"


# -- 6: compressed, binary, garbage and non-event input ---------------------------------------------------


@pytest.mark.parametrize("command", ["replay", "parse", "calls"])
def test_a_gzip_file_is_named_with_the_command_that_reads_it(tmp_path: Path, command: str) -> None:
    path = tmp_path / "rec.jsonl.gz"
    path.write_bytes(gzip.compress(line(GOOD) * 100))
    result = relay(command, str(path))
    assert result.returncode == 1
    assert result.stderr == f"relay: {path}: looks like gzip: try zcat {path} | relay {command} -\n"
    piped = run(command, stdin=path.read_bytes())
    assert piped.returncode == 1
    assert piped.stderr.decode() == f"relay: <stdin>: looks like gzip: try ... | zcat | relay {command} -\n"


@pytest.mark.parametrize("command", ["replay", "parse", "calls"])
def test_a_binary_file_is_one_line_not_one_per_line(tmp_path: Path, command: str) -> None:
    path = tmp_path / "a.out"
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 50 + b"\n" * 40)
    result = relay(command, str(path))
    assert result.returncode == 1
    assert result.stderr == f"relay: {path}: looks like a binary file, not JSON\n"


@pytest.mark.parametrize("command", ["replay", "parse", "calls"])
def test_one_garbage_line_without_a_newline_fails_it_is_no_truncated_recording(tmp_path: Path, command: str) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(b"garbage")
    result = relay(command, str(path))
    assert result.returncode == 1
    assert f"{path}:1: invalid JSON: unexpected character, expected a JSON value" in result.stderr.splitlines()
    assert "truncated" not in result.stderr


def test_a_cut_last_line_after_a_good_one_stays_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_bytes(b"\n{oops\n" + line(GOOD) + b'{"event_type": "calling.call.pl')
    result = relay("replay", str(path), "-o", "json")
    assert result.returncode == 1  # line 2 is bad; line 4 only a warning
    bad, cut, total = result.stderr.splitlines()
    assert bad.startswith(f"{path}:2: invalid JSON: ") and not bad.endswith("skipped)")
    assert cut.startswith(f"{path}:4: invalid JSON: ") and cut.endswith("(a truncated last line, skipped)")
    assert total == "relay: 1 bad line skipped"


@pytest.mark.parametrize("obj", [b"{}", b'{"foo": 1}'])
def test_parse_says_an_object_with_neither_event_type_nor_params_is_no_event(obj: bytes) -> None:
    result = run("parse", "-o", "json", stdin=obj + b"\n")
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr == b"<stdin>:1: not an event: an object with neither event_type nor params\n"


def test_parse_strict_knows_the_events_relay_itself_records(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    result = relay("tail", "--demo", "--rate", "0", "-n", "20", "-o", "none", "--record", str(path))
    assert result.returncode == 0, result.stderr
    assert b"signalwire.authorization.state" in path.read_bytes()
    strict = relay("parse", "--strict", "-o", "json", str(path))
    assert (strict.returncode, strict.stderr) == (0, "")
    unknown = run("parse", "--strict", "-o", "json", stdin=line({"event_type": "calling.call.nope", "params": {}}))
    assert unknown.returncode == 1
    assert unknown.stderr == b"<stdin>:1: unknown event type 'calling.call.nope'\n"


# -- 6: stdin when no file is given -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["replay", "calls"])
def test_replay_and_calls_read_stdin_when_no_file_is_given(tmp_path: Path, command: str) -> None:
    path = tmp_path / "rec.jsonl"
    payloads = [
        {"event_type": "calling.call.state", "timestamp": 1000.0, "params": {"call_id": "c1", "call_state": "created"}},
        {"event_type": "calling.call.state", "timestamp": 1001.0, "params": {"call_id": "c1", "call_state": "ended"}},
    ]
    path.write_bytes(b"".join(line(p) for p in payloads))
    piped = run(command, stdin=path.read_bytes())
    named = relay(command, str(path))
    assert piped.returncode == named.returncode == 0
    assert piped.stdout.decode() == named.stdout and named.stdout


@pytest.mark.parametrize("command", ["replay", "calls"])
def test_no_file_and_stdin_on_a_terminal_is_a_usage_error(command: str) -> None:
    code, out, err = run_on_terminal(command, stdin_tty=True)
    assert code == 2 and out == b""
    assert err == f"relay: no input: give a FILE, or pipe JSON into stdin (relay {command} --help)\n".encode()


# -- 6: follow a recording that is cut shorter -------------------------------------------------------------


def test_follow_reads_a_truncated_file_again_from_the_top_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    one = {**GOOD, "params": {**GOOD["params"], "call_id": "first"}}
    two = {**GOOD, "params": {**GOOD["params"], "call_id": "second"}}
    path.write_bytes(line(one) * 3)
    proc = spawn("replay", str(path), "--follow", "-o", "json")
    assert proc.stdout is not None and proc.stderr is not None
    assert [proc.stdout.readline() for _ in range(3)] == [line(one).decode()] * 3
    path.write_bytes(line(two))  # truncated to less than was read, as a log rotated by copy and truncate
    assert proc.stdout.readline() == line(two).decode()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert f"{path}: the file was truncated: reading it again from the top" in err.splitlines()


def test_follow_cuts_a_line_that_never_ends_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_bytes(line(GOOD))
    proc = spawn("replay", str(path), "--follow", "-o", "json")
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == line(GOOD).decode()
    with path.open("ab") as f:
        for _ in range(12):
            f.write(b"x" * (1 << 20))
            f.flush()
        f.write(b"\n" + line(GOOD))
    assert proc.stdout.readline() == line(GOOD).decode()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert f"{path}:2: line longer than 10 MiB" in err.splitlines()
