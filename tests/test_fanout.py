"""A big recording split across worker processes prints exactly what one process prints, and stops cleanly."""

from __future__ import annotations

import dataclasses
import fcntl
import io
import itertools
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import RELAY, relay, wait_until
from test_replay import F_GETPIPE_SZ, pipe_bytes

from relay_cli.emulator.flows import DemoTraffic
from relay_cli.pipeline import replay as replay_module
from relay_cli.pipeline.filters import EventFilter
from relay_cli.pipeline.reader import spans
from relay_cli.pipeline.replay import ReplayStats, replay
from relay_cli.pipeline.stages import Pipeline
from relay_cli.pipeline.workers import WorkerDied
from relay_cli.views.printers import Format, Style, make_printer


def messy_log(path: Path, events: int) -> Path:
    """Demo events with every kind of line a reader must report or skip, spread through the file."""
    stream = iter(DemoTraffic(seed=7, start=1_764_201_234.0))
    odd = itertools.cycle(
        [
            b"{oops\n",
            b'{"event_type": 7}\n',
            b"\n",
            b'{"jsonrpc": "2.0", "id": "1", "result": {}}\n',
            b'{"jsonrpc": "2.0", "id": "9", "method": "signalwire.event", "params": '
            + orjson.dumps(next(stream))
            + b"}\n",
            b"[1, 2]\n",
        ]
    )
    lines = [orjson.dumps(next(stream)) + b"\n" for _ in range(events)]
    for at in range(len(lines) - 7, 0, -97):
        lines.insert(at, next(odd))
    path.write_bytes(b"".join(lines) + b'{"event_type": "calling.call.pl')
    return path


def run(path: Path, fmt: Format, jobs: int, **filters: Any) -> tuple[bytes, list[tuple[str, str]], ReplayStats, int]:
    out = io.BytesIO()
    problems: list[tuple[str, str]] = []
    accept = EventFilter(**filters).predicate if filters else None
    pipeline = Pipeline(out=out, printer=make_printer(fmt, Style(color=False)), accept=accept, stateless=True)
    stats = replay([str(path)], pipeline, problem=lambda where, message: problems.append((where, message)), jobs=jobs)
    pipeline.drain()
    return out.getvalue(), problems, dataclasses.replace(stats, bytes_read=0), pipeline.tally.shown


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return messy_log(tmp_path_factory.mktemp("fanout") / "messy.jsonl", 3000)


@pytest.mark.parametrize(
    ("fmt", "filters"),
    [
        (Format.json, {}),
        (Format.json, {"types": ["calling.call.play"]}),
        (Format.frame, {"exclude": ["*.state"], "where": ["params.state~^fin"]}),
        (Format.typed, {"types": ["messaging.*"]}),
        (Format.none, {}),
    ],
)
def test_split_replay_prints_and_reports_exactly_what_one_process_does(
    messy: Path, monkeypatch: pytest.MonkeyPatch, fmt: Format, filters: dict[str, Any]
) -> None:
    monkeypatch.setattr(replay_module, "SPAN_BYTES", 16 << 10)
    assert len(spans(str(messy), replay_module.SPAN_BYTES)) > 50
    one = run(messy, fmt, jobs=1, **filters)
    split = run(messy, fmt, jobs=3, **filters)
    assert split == one
    _, problems, stats, shown = one
    assert stats.bad > 10 and stats.frames >= 5 and stats.truncated == 1 and shown > 0
    assert problems[-1][1].endswith("(a truncated last line, skipped)")
    assert any(message.startswith("invalid JSON") for _, message in problems)


def test_spans_cut_json_lines_at_line_ends_and_cover_the_whole_file(messy: Path) -> None:
    data = messy.read_bytes()
    cuts = spans(str(messy), 10_000)
    assert cuts[0][0] == 0 and cuts[-1][1] == len(data)
    assert all(end == next_start for (_, end), (next_start, _) in itertools.pairwise(cuts))
    assert all(data[end - 1 : end] == b"\n" for _, end in cuts[:-1])
    assert len(cuts) > 20


@pytest.mark.parametrize(
    "text",
    [
        b"[\n" + b",\n".join([b'{"event_type": "a", "params": {}}'] * 3000) + b"\n]\n",  # one array
        b'{\n "event_type": "a",\n "params": {}\n}\n' * 1000,  # objects spread over lines
        b"{oops\n" + b'{"event_type": "a", "params": {}}\n' * 3000,  # a bad first line: read whole
        b"\xef\xbb\xbf" + b'{"event_type": "a", "params": {}}\n' * 3000,  # a byte order mark
    ],
)
def test_only_plain_json_lines_are_cut(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "log"
    path.write_bytes(text)
    assert spans(str(path), 1000) == [(0, len(text))]


def test_a_worker_that_dies_is_an_error_not_a_hang(messy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_module, "SPAN_BYTES", 16 << 10)
    parent = os.getpid()

    def printer(payload: dict[str, Any], raw: bytes | None, frame_id: Any = None) -> bytes:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
        return b""

    pipeline = Pipeline(out=io.BytesIO(), printer=printer, stateless=True)
    with pytest.raises(WorkerDied, match=r"messy\.jsonl: a worker process died$"):
        replay([str(messy)], pipeline, problem=lambda where, message: None, jobs=2)


def test_a_file_that_cannot_be_opened_is_left_for_the_reader_to_report(tmp_path: Path) -> None:
    assert spans(str(tmp_path), 1000) == []
    assert spans(str(tmp_path / "missing.jsonl"), 1000) == []


def test_an_exception_in_a_worker_is_raised_here(messy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_module, "SPAN_BYTES", 16 << 10)

    def printer(payload: dict[str, Any], raw: bytes | None, frame_id: Any = None) -> bytes:
        raise RuntimeError("the printer broke")

    pipeline = Pipeline(out=io.BytesIO(), printer=printer, stateless=True)
    with pytest.raises(RuntimeError, match="the printer broke"):
        replay([str(messy)], pipeline, problem=lambda where, message: None, jobs=2)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recording bigger than two spans, so the command line splits it."""
    path = messy_log(tmp_path_factory.mktemp("fanout") / "big.jsonl", 600)
    body = path.read_bytes().rpartition(b"\n")[0] + b"\n"
    copies = replay_module.SPAN_BYTES * 2 // len(body) + 1
    path.write_bytes(body * copies + b'{"event_type": "calling.call.pl')
    return path


def test_relay_replay_splits_a_big_recording_with_the_same_output_and_exit_code(big: Path) -> None:
    one = relay("replay", str(big), "-o", "json", "-t", "calling.*", "--jobs", "1")
    split = relay("replay", str(big), "-o", "json", "-t", "calling.*", "--jobs", "2")
    assert one.returncode == split.returncode == 1
    assert split.stdout == one.stdout and split.stderr == one.stderr
    last = big.read_bytes().count(b"\n") + 1
    assert f"{big}:{last}: invalid JSON" in split.stderr and "truncated last line" in split.stderr


def test_jobs_must_be_at_least_one() -> None:
    result = relay("replay", "x.jsonl", "--jobs", "0")
    assert result.returncode == 2 and "Invalid value for '--jobs'" in result.stderr


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def start_split_replay(big: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A split replay in a process group of its own, as a shell would start it, with both workers up.

    stdout is a pipe nobody reads yet, so the replay blocks with spans in flight.
    """
    proc = subprocess.Popen(
        [*RELAY, "replay", str(big), "-o", "json", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")},
        start_new_session=True,
    )
    wait_until(lambda: len(children(proc.pid)) == 2, what="two workers")
    return proc, children(proc.pid)


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to find the workers")


@needs_proc
@pytest.mark.parametrize(
    ("signals", "group", "code"),
    [
        ([signal.SIGINT], False, 130),
        ([signal.SIGINT], True, 130),  # Ctrl-C: the terminal signals the whole group
        ([signal.SIGINT, signal.SIGINT], True, 130),  # Ctrl-C pressed twice
        ([signal.SIGTERM], False, 143),
        ([signal.SIGTERM], True, 143),  # systemd, timeout and kill -- -PGID signal the group
        ([signal.SIGKILL], False, -9),  # the workers see their pipes close and exit on their own
    ],
)
def test_a_stopped_split_replay_takes_its_workers_with_it(
    big: Path, signals: list[signal.Signals], group: bool, code: int
) -> None:
    proc, workers = start_split_replay(big)
    try:
        for sig in signals:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    wait_until(lambda: all(gone(pid) for pid in workers), what="the workers to exit")


@needs_proc
def test_a_worker_killed_while_it_hands_back_a_span_is_an_error_not_a_hang(big: Path) -> None:
    # The second worker's 8 MB result cannot fit the pipe while the parent is blocked on stdout, so it
    # dies partway through sending it (or before): the parent must see a short read, not wait for more.
    proc, workers = start_split_replay(big)
    try:
        assert proc.stdout is not None
        out = proc.stdout.fileno()
        full = fcntl.fcntl(out, F_GETPIPE_SZ)
        wait_until(lambda: pipe_bytes(out) >= full, timeout=30, what="the parent to block on stdout")
        os.kill(workers[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert f"{big}: a worker process died; --jobs 1 reads in this process".encode() in err
    assert b"Traceback" not in err
    wait_until(lambda: all(gone(pid) for pid in workers), what="the workers to exit")
