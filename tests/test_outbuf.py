"""Output through a bounded buffer: a slow or stuck reader of stdout never blocks the live tail.

The buffer is tested on real pipes; ``relay tail`` is tested as a subprocess whose stdout nobody reads
(it must keep ACKing and obey SIGTERM at once), whose reader leaves after one line (``| head -1``), and
whose buffer a stuck reader fills (events left out of the display, counted, exit 1).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from harness import CREDS, RELAY, emulator, wait_until

from relay_cli.outbuf import OutBuffer, OutputError


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):
            os.close(fd)


def read_all(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_everything_written_arrives_in_order(pipe: tuple[int, int]) -> None:
    read, write = pipe
    out = OutBuffer(write)
    lines = [f"line {i}\n".encode() for i in range(10_000)]
    assert all(out.write(line) == len(line) for line in lines)
    expected = b"".join(lines)
    assert read_all(read, len(expected)) == expected
    assert out.close()


def test_a_stuck_reader_fills_the_buffer_which_refuses_more_and_says_so_once(pipe: tuple[int, int]) -> None:
    read, write = pipe
    full: list[bool] = []
    out = OutBuffer(write, limit=256 * 1024, on_full=lambda: full.append(True))
    chunk = b"x" * 4096 + b"\n"
    taken = 0
    while out.write(chunk):  # the pipe takes its 64 KiB, then the buffer its 256 KiB, then no more
        taken += len(chunk)
    assert 256 * 1024 - len(chunk) < taken <= 256 * 1024 + 1024 * 1024
    assert out.write(chunk) == 0 and full == [True]
    read_all(read, taken)  # the reader catches up: room again, and nothing was lost
    wait_until(lambda: out.pending == 0, what="the buffer to drain")
    assert out.write(chunk) == len(chunk)
    assert read_all(read, len(chunk)) == chunk
    assert out.close()


def test_a_closed_pipe_is_reported_and_later_writes_raise_broken_pipe(pipe: tuple[int, int]) -> None:
    read, write = pipe
    out = OutBuffer(write)
    os.close(read)
    out.write(b"nobody reads this\n")
    wait_until(lambda: out.broken, what="EPIPE")
    with pytest.raises(BrokenPipeError):
        out.write(b"more\n")
    assert not out.close()


def test_close_gives_up_on_a_stuck_reader_within_the_stall_limit(pipe: tuple[int, int]) -> None:
    _, write = pipe
    out = OutBuffer(write)
    out.write(b"y" * (1024 * 1024))  # far more than the pipe holds: the writer thread stays blocked
    started = time.monotonic()
    assert not out.close(stall=0.2)
    assert time.monotonic() - started < 5
    assert out.pending > 0


def test_a_failed_write_other_than_a_closed_pipe_is_an_output_error() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        out = OutBuffer(fd)
        out.write(b"no room\n")
        wait_until(lambda: out.error is not None, what="ENOSPC")
        with pytest.raises(OutputError) as caught:
            out.write(b"more\n")
        assert caught.value.errno == errno.ENOSPC
    finally:
        os.close(fd)


def spawn_tail(*args: str, stdout: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    return subprocess.Popen([*RELAY, "tail", *args], stdout=stdout, stderr=subprocess.PIPE, env=env)


def test_tail_into_a_pipe_nobody_reads_keeps_acking_and_exits_on_sigterm_at_once() -> None:
    with emulator(rate=200, seed=2) as server:
        proc = spawn_tail("--url", server.url, *CREDS, "-c", "default", "-o", "json")
        try:
            server.run(server.emulator.wait_for_connections(1))
            # About 400 bytes an event: 1,500 events are several times what the pipe holds.
            wait_until(lambda: server.emulator.stats.events_acked >= 1_500, timeout=60, what="ACKs past a full pipe")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=5)
            elapsed = time.monotonic() - started
        finally:
            proc.kill()
            _, err = proc.communicate(timeout=15)
    stderr = err.decode()
    assert proc.returncode == 143, stderr
    assert elapsed < 5
    assert "half-open" not in stderr and "Traceback" not in stderr


def test_tail_whose_reader_leaves_after_one_line_stops_quietly_with_exit_0() -> None:
    proc = spawn_tail("--demo", "--rate", "200", "-o", "json")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.stdout.close()  # what `| head -1` does after its line
        assert orjson.loads(line)["event_type"] == "signalwire.authorization.state"
        proc.wait(timeout=15)
    finally:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else b""
    stderr = err.decode()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert "shown of" not in stderr


def test_a_stuck_reader_loses_events_from_the_display_only_counted_with_exit_1(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    big = {"event_type": "calling.call.play", "params": {"call_id": "c1", "state": "playing", "pad": "z" * 2**20}}
    with emulator(mode="app") as server:
        proc = spawn_tail("--url", server.url, *CREDS, "-c", "x", "-o", "json", "-n", "41", "--record", str(record))
        try:
            server.run(server.emulator.wait_for_connections(1))
            for _ in range(40):  # 40 MiB of output: more than the pipe and the 32 MiB buffer hold
                server.run(server.emulator.push(big))
            proc.wait(timeout=60)
        finally:
            proc.kill()
            _, err = proc.communicate(timeout=15)
    stderr = err.decode()
    assert proc.returncode == 1, stderr
    assert stderr.count("stdout is blocked (32 MiB unread): events are left out of the display") == 1
    assert "the recording keeps them" in stderr
    hidden = next(line for line in stderr.splitlines() if "events not shown: stdout was blocked" in line)
    assert int(hidden.split()[1]) >= 5
    assert "bytes of output not written: stdout was blocked at exit" in stderr
    assert len(record.read_bytes().splitlines()) == 41
    assert "Traceback" not in stderr


def test_tail_into_a_full_disk_says_so_with_exit_1() -> None:
    with open("/dev/full", "wb") as full:
        proc = spawn_tail("--demo", "--rate", "200", "-n", "5", "-o", "json", stdout=full.fileno())
        _, err = proc.communicate(timeout=30)
    stderr = err.decode()
    assert proc.returncode == 1
    assert "relay: cannot write to stdout: No space left on device" in stderr
    assert "Traceback" not in stderr


def test_a_regular_file_is_written_at_once_without_the_thread(tmp_path: Path) -> None:
    """A file never keeps its writer waiting, so each write is done before ``write`` returns."""
    path = tmp_path / "out.jsonl"
    with path.open("wb") as file:
        out = OutBuffer(file.fileno())
        assert out.write(b"first\n") == 6
        assert path.read_bytes() == b"first\n"
        assert out.close() and out.pending == 0
