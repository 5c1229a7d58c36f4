"""``relay replay`` and ``relay calls``: recordings through the tail pipeline, paced, followed, summarised."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import relay, spawn, wait_until

from relay_cli.demo import DemoTraffic


def write_log(path: Path, payloads: list[dict[str, Any]], tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in payloads) + tail)
    return path


def demo(n: int, seed: int = 4) -> list[dict[str, Any]]:
    stream = iter(DemoTraffic(seed=seed, start=1_764_201_234.0))
    return [next(stream) for _ in range(n)]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A recording made by ``relay tail --record``, and what that tail printed with ``--format json``."""
    path = tmp_path_factory.mktemp("rec") / "rec.jsonl"
    result = relay("tail", "--demo", "--rate", "0", "-n", "3000", "-o", "json", "--record", str(path))
    assert result.returncode == 0, result.stderr
    return path, result.stdout


def test_replay_json_reproduces_tail_output_byte_for_byte(recording: tuple[Path, str]) -> None:
    path, printed = recording
    result = relay("replay", str(path), "-o", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed


def test_replay_filters_match_the_same_events_as_tail_would(recording: tuple[Path, str]) -> None:
    path, printed = recording
    result = relay("replay", str(path), "-t", "calling.call.*", "-x", "*.state", "--where", "params.state~^fin")
    expected = [
        line
        for line in printed.splitlines()
        if (p := orjson.loads(line))["event_type"].startswith("calling.call.")
        and not p["event_type"].endswith(".state")
        and str(p["params"].get("state", "")).startswith("fin")
    ]
    assert result.stdout.splitlines() == expected and expected


def test_replay_formats(recording: tuple[Path, str]) -> None:
    path, _ = recording
    frames = [orjson.loads(x) for x in relay("replay", str(path), "-n", "3", "-o", "frame").stdout.splitlines()]
    assert [f["method"] for f in frames] == ["signalwire.event"] * 3
    typed = [orjson.loads(x) for x in relay("replay", str(path), "-n", "3", "-o", "typed").stdout.splitlines()]
    assert typed[1]["class"] in {"CallStateEvent", "CallReceiveEvent", "MessageStateEvent", "DialEvent"}
    pretty = relay("replay", str(path), "-n", "3", "-o", "pretty", "--color", "never").stdout.splitlines()
    assert len(pretty) == 3 and "session authorization updated" in pretty[0]
    assert relay("replay", str(path), "-o", "none").stdout == ""


def test_replay_reads_stdin_and_several_logs(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a.jsonl", demo(5, seed=1))
    b = write_log(tmp_path / "b.jsonl", demo(7, seed=2))
    both = relay("replay", str(a), str(b), "-o", "json")
    assert len(both.stdout.splitlines()) == 12
    piped = subprocess.run(
        [sys.executable, "-m", "relay_cli", "replay", "-", "-o", "json"],
        input=a.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert piped.returncode == 0 and piped.stdout == a.read_bytes()


def test_replay_accepts_arrays_and_frames(tmp_path: Path) -> None:
    payloads = demo(4)
    frames = [
        {"jsonrpc": "2.0", "id": str(i), "method": "signalwire.event", "params": p} for i, p in enumerate(payloads)
    ]
    (tmp_path / "arr.json").write_bytes(orjson.dumps(frames, option=orjson.OPT_INDENT_2))
    result = relay("replay", str(tmp_path / "arr.json"), "-o", "json")
    assert [orjson.loads(x) for x in result.stdout.splitlines()] == payloads


def test_bad_lines_are_reported_and_skipped_with_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = demo(3)
    path.write_bytes(orjson.dumps(good[0]) + b"\n{oops\n" + b'{"event_type": 7}\n' + orjson.dumps(good[1]) + b"\n")
    result = relay("replay", str(path), "-o", "json")
    assert result.returncode == 1
    assert f"{path}:2: invalid JSON" in result.stderr
    assert f"{path}:3: event_type must be a string, not a number" in result.stderr
    assert "2 bad lines skipped" in result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr


def test_a_truncated_last_line_is_only_a_warning(tmp_path: Path) -> None:
    path = write_log(tmp_path / "cut.jsonl", demo(3), tail=b'{"event_type": "calling.call.pl')
    result = relay("replay", str(path), "-o", "json")
    assert result.returncode == 0
    assert f"{path}:4: invalid JSON" in result.stderr and "truncated last line" in result.stderr
    assert len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["/no/such/file.jsonl"], 1, "/no/such/file.jsonl: no such file"),
        (["-", "-"], 2, "stdin (-) can be read only once"),
        (["-f", "a.jsonl", "b.jsonl"], 2, "--follow reads one recording at a time"),
        (["x.jsonl", "--where", "nonsense"], 2, "expected PATH=VALUE, PATH!=VALUE or PATH~REGEX"),
    ],
)
def test_replay_usage_and_input_errors(args: list[str], code: int, message: str) -> None:
    result = relay("replay", *args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_recording_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    result = relay("replay", str(tmp_path / "empty.jsonl"))
    assert result.returncode == 1 and "empty input" in result.stderr


def test_speed_keeps_the_recorded_gaps_and_max_gap_cuts_them(tmp_path: Path) -> None:
    payloads = [{"event_type": "calling.call.play", "timestamp": 1000.0 + t, "params": {}} for t in (0, 0.4, 0.8, 30)]
    path = write_log(tmp_path / "gaps.jsonl", payloads)
    started = time.monotonic()
    result = relay("replay", str(path), "--speed", "1", "--max-gap", "0.5", "-o", "json")
    elapsed = time.monotonic() - started
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 4
    assert 1.2 <= elapsed < 10  # 0.4 + 0.4 + 0.5 (the 30 s gap cut to 0.5 s), plus start-up
    fast = time.monotonic()
    relay("replay", str(path), "--speed", "100", "--max-gap", "0.5", "-o", "json")
    assert time.monotonic() - fast < elapsed


def test_follow_prints_lines_appended_while_it_runs(tmp_path: Path) -> None:
    path = write_log(tmp_path / "live.jsonl", demo(2))
    proc = spawn("replay", str(path), "--follow", "-o", "json")
    assert proc.stdout is not None
    lines: list[str] = [proc.stdout.readline(), proc.stdout.readline()]
    more = demo(4)[2:]
    with path.open("ab") as f:
        f.write(orjson.dumps(more[0]) + b"\n" + orjson.dumps(more[1])[:10])
        f.flush()
        lines.append(proc.stdout.readline())
        f.write(orjson.dumps(more[1])[10:] + b"\n")
    lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert [orjson.loads(x) for x in lines] == demo(4)


def test_summary_reports_calls_messages_and_span(recording: tuple[Path, str]) -> None:
    path, _ = recording
    result = relay("replay", str(path), "-o", "none", "--summary")
    assert result.returncode == 0 and result.stdout == ""
    for heading in (
        "events by type (3000)",
        "calls by final state",
        "ended/hangup",
        "call duration, answered to ended",
        "p50",
        "p99",
        "messages by final state",
        "time span",
        "malformed lines 0",
    ):
        assert heading in result.stderr


def test_calls_prints_one_block_per_call_in_first_event_order(recording: tuple[Path, str]) -> None:
    path, printed = recording
    result = relay("calls", str(path), "--color", "never")
    assert result.returncode == 0, result.stderr
    blocks = [b for b in result.stdout.split("\n\n") if b.strip()]
    headers = [b.splitlines()[0] for b in blocks]
    assert all(h.startswith(("call ", "message ")) for h in headers)
    first_ids = []
    for line in printed.splitlines():
        params = orjson.loads(line)["params"]
        key = params.get("call_id") or params.get("message_id")
        if key and key not in first_ids:
            first_ids.append(key)
    shown = [h.split()[1] for h in headers if h.startswith("call ")]
    assert shown == [i for i in first_ids if i in set(shown)]
    assert "+0.000s" in blocks[0]


def test_calls_narrows_to_one_call_by_prefix(recording: tuple[Path, str]) -> None:
    path, printed = recording
    call_id = next(orjson.loads(x)["params"]["call_id"] for x in printed.splitlines() if '"calling.call.receive"' in x)
    result = relay("calls", str(path), "--call-id", call_id[:8], "--color", "never")
    headers = [b.splitlines()[0] for b in result.stdout.split("\n\n") if b.strip()]
    assert headers[0].startswith(f"call {call_id}")
    assert all(call_id in b or "peer" in b for b in result.stdout.split("\n\n") if b.strip())


def test_progress_bar_shows_only_when_stderr_is_a_terminal_and_stdout_is_not(tmp_path: Path) -> None:
    from relay_cli.cli import _progress
    from relay_cli.output import Terminal

    path = write_log(tmp_path / "p.jsonl", demo(3))
    quiet = Terminal(stdout=io.BytesIO(), stderr=io.StringIO(), stdout_tty=True, stderr_tty=True)
    with _progress(quiet, [str(path)], enabled=True) as progress:
        assert progress is None
    loud = Terminal(stdout=io.BytesIO(), stderr=io.StringIO(), stdout_tty=False, stderr_tty=True)
    with _progress(loud, [str(path)], enabled=True) as progress:
        assert progress is not None
        progress(10)


def test_interrupted_replay_exits_130(tmp_path: Path) -> None:
    path = write_log(
        tmp_path / "slow.jsonl",
        [{"event_type": "calling.call.play", "timestamp": 1000.0 + t, "params": {}} for t in range(20)],
    )
    proc = spawn("replay", str(path), "--speed", "1", "-o", "json")
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and "Traceback" not in err
    wait_until(lambda: proc.poll() is not None)
