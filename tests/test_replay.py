"""``relay replay`` and ``relay calls``: recordings through the tail pipeline, paced, followed, summarised."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import RELAY, relay, spawn, wait_until

from relay_cli.emulator.flows import DemoTraffic
from relay_cli.event import parse_event
from relay_cli.pipeline.replay import SPAN_BYTES, Pacer
from relay_cli.views.printers import headline

F_GETPIPE_SZ = 1032  # Linux; fcntl has the name from Python 3.10 on, but only where the platform has it


def pipe_bytes(fd: int) -> int:
    """How many bytes wait unread in a pipe."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


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
    # The demo traffic of ``relay tail --demo`` is not seeded: what is expected is read from the recording.
    path, printed = recording
    first = [orjson.loads(x) for x in printed.splitlines()[:3]]
    frames = [orjson.loads(x) for x in relay("replay", str(path), "-n", "3", "-o", "frame").stdout.splitlines()]
    assert [f["method"] for f in frames] == ["signalwire.event"] * 3
    assert [f["params"]["event_type"] for f in frames] == [p["event_type"] for p in first]
    typed = [orjson.loads(x) for x in relay("replay", str(path), "-n", "3", "-o", "typed").stdout.splitlines()]
    assert [t["class"] for t in typed] == [type(parse_event(p)).__name__ for p in first]
    pretty = relay("replay", str(path), "-n", "3", "-o", "pretty", "--color", "never").stdout.splitlines()
    assert len(pretty) == 3 and all(
        headline(p["event_type"], p["params"]) in line for p, line in zip(first, pretty, strict=True)
    )
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
    assert 1.2 <= elapsed < 30  # 0.4 + 0.4 + 0.5 (the 30 s gap cut to 0.5 s), plus start-up


def test_pacer_divides_the_gaps_by_the_speed() -> None:
    # In process, with the sleeps recorded rather than slept: a comparison of two runs' wall times is not a test.
    slept: list[float] = []
    pacer = Pacer(100.0, 0.5, sleep=slept.append)
    for t in (0, 0.4, 0.8, 30):
        pacer.wait({"timestamp": 1000.0 + t})
    # Each sleep waits until the event is due: the gaps so far, divided by 100 (time spent here only shortens it).
    assert slept and all(s <= due for s, due in zip(slept, (0.004, 0.008, 0.3), strict=False))


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
    path, printed = recording
    params = [orjson.loads(x)["params"] for x in printed.splitlines()]
    result = relay("replay", str(path), "-o", "none", "--summary")
    assert result.returncode == 0 and result.stdout == ""
    for heading in ("events by type (3000)", "calls by final state", "time span", "malformed lines 0"):
        assert heading in result.stderr
    # The rest depends on what the unseeded demo traffic did, which the recording tells.
    if any(p.get("call_state") == "ended" and p.get("end_reason") == "hangup" for p in params):
        assert "ended/hangup" in result.stderr
    answered = {p.get("call_id") for p in params if p.get("call_state") == "answered"}
    if answered & {p.get("call_id") for p in params if p.get("call_state") == "ended"}:
        assert "call duration, answered to ended" in result.stderr and "p50" in result.stderr and "p99" in result.stderr
    if any(p.get("message_state") in ("delivered", "undelivered", "failed", "received") for p in params):
        assert "messages by final state" in result.stderr


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
    call_id = next(orjson.loads(x)["params"]["call_id"] for x in printed.splitlines() if '"calling.call.state"' in x)
    result = relay("calls", str(path), "--call-id", call_id[:8], "--color", "never")
    headers = [b.splitlines()[0] for b in result.stdout.split("\n\n") if b.strip()]
    assert headers[0].startswith(f"call {call_id}")
    assert all(call_id in b or "peer" in b for b in result.stdout.split("\n\n") if b.strip())


def test_progress_bar_shows_only_when_stderr_is_a_terminal_and_stdout_is_not(tmp_path: Path) -> None:
    from relay_cli.cli import _progress
    from relay_cli.terminal import Terminal

    path = write_log(tmp_path / "p.jsonl", demo(3))
    quiet = Terminal(stdout=io.BytesIO(), stderr=io.StringIO(), stdout_tty=True, stderr_tty=True)
    with _progress(quiet, [str(path)], enabled=True) as progress:
        assert progress is None
    loud = Terminal(stdout=io.BytesIO(), stderr=io.StringIO(), stdout_tty=False, stderr_tty=True)
    with _progress(loud, [str(path)], enabled=True) as progress:
        assert progress is not None
        progress(10)


def big_log(path: Path, size: int) -> Path:
    """Seeded demo events, about ``size`` bytes of them."""
    stream = iter(DemoTraffic(seed=11, start=1_764_201_234.0))
    lines: list[bytes] = []
    total = 0
    while total < size:
        lines.append(orjson.dumps(next(stream)) + b"\n")
        total += len(lines[-1])
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize(
    ("sig", "jobs", "codes"),
    [
        (signal.SIGINT, "1", {130}),
        (signal.SIGTERM, "1", {143, -signal.SIGTERM}),  # SIGTERM's own action, which ends it at once
        (signal.SIGINT, "2", {130}),
        (signal.SIGTERM, "2", {143}),
    ],
)
def test_a_replay_into_a_pipe_nobody_reads_stops_at_once_on_a_signal(
    tmp_path: Path, sig: signal.Signals, jobs: str, codes: set[int]
) -> None:
    log = big_log(tmp_path / "big.jsonl", 2 * SPAN_BYTES + (1 << 20))  # big enough to be split with --jobs 2
    read_end, write_end = os.pipe()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
        proc = subprocess.Popen(
            [*RELAY, "replay", str(log), "-o", "json", "--jobs", jobs],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(write_end)
        capacity = fcntl.fcntl(read_end, F_GETPIPE_SZ)
        wait_until(lambda: pipe_bytes(read_end) >= capacity, timeout=30, what="the pipe to fill")
        proc.send_signal(sig)
        started = time.monotonic()
        try:
            proc.wait(timeout=20)  # before the fix, it waited forever: its stdout is never read
        finally:
            proc.kill()
        stopped_in = time.monotonic() - started
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
    finally:
        os.close(read_end)
    assert proc.returncode in codes, err
    assert b"Traceback" not in err
    assert stopped_in < 10, stopped_in  # about 0.05 s here; generous for a loaded machine


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
