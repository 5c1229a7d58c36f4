"""Replaying recordings: the file source of the pipeline, with optional pacing and a progress callback.

A recording goes through the same pipeline as a live session; this module only decides when each
payload is fed, and where. By default that is as fast as possible; with a speed, the original gaps
between the events' timestamps are kept (scaled), with long silences cut short. A big file may be
split across worker processes (:mod:`relay_cli.pipeline.workers`), each running :func:`replay_source` on a span.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from relay_cli.event import InvalidEvent, check_payload, event_time
from relay_cli.pipeline.reader import (
    STDIN,
    BadLine,
    InputError,
    Notice,
    Source,
    entries,
    spans,
    to_event,
    unencodable,
    where,
)
from relay_cli.pipeline.stages import Pipeline, without_gc
from relay_cli.protocol import FRAME_KEY

__all__ = ["SPAN_BYTES", "Pacer", "ReplayStats", "Report", "default_jobs", "load", "replay", "replay_source"]


class Pacer:
    """Sleeps so events come out with their recorded gaps divided by ``speed``, none longer than ``max_gap``."""

    def __init__(self, speed: float, max_gap: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed = speed
        self.max_gap = max_gap
        self._sleep = sleep
        self._last_ts: float | None = None
        self._due = 0.0

    def wait(self, payload: dict[str, Any]) -> None:
        ts = event_time(payload)
        if ts is not None:
            self.wait_for(ts)

    def wait_for(self, ts: float) -> None:
        """Sleep until what was recorded at ``ts`` is due (a frame record's time)."""
        now = time.monotonic()
        if self._last_ts is None:
            self._due = now
        else:
            gap = min(max(ts - self._last_ts, 0.0) / self.speed, self.max_gap)
            self._due = max(self._due + gap, now - self.max_gap)
            if self._due > now:
                self._sleep(self._due - now)
        self._last_ts = ts


@dataclass
class ReplayStats:
    bad: int = 0
    truncated: int = 0
    frames: int = 0
    bytes_read: int = 0

    def add(self, other: ReplayStats) -> None:
        self.bad += other.bad
        self.truncated += other.truncated
        self.frames += other.frames
        self.bytes_read += other.bytes_read


Report = Callable[["int | str", str], None]
"""``report(line, message)``: a problem with one line of the source being read."""

SPAN_BYTES = 8 << 20
"""How much of a big file one worker process takes at a time (see ``jobs``)."""

SpanResult = tuple[bytes, list[tuple["int | str", str]], ReplayStats, int, int]
"""What a worker hands back for one span: output, ``(line, message)`` problems, stats, events shown, lines."""


def default_jobs() -> int:
    """One worker process per CPU this process may run on, at most 8: beyond that, writing the output here
    is what takes the time."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, 8)


def replay(
    paths: Sequence[str],
    pipeline: Pipeline,
    *,
    problem: Callable[[str, str], None],
    pacer: Pacer | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int | None = 1,
) -> ReplayStats:
    """Feed every event of ``paths`` to ``pipeline``; report bad lines through ``problem(where, message)``.

    Raises :class:`relay_cli.pipeline.reader.InputError` when a file as a whole cannot be read. A truncated last
    line, what a recorder killed mid-write leaves, is reported but not counted as bad.

    With ``jobs`` above 1 (None: :func:`default_jobs`), a JSON Lines file of at least two spans of
    ``SPAN_BYTES`` is read by that many worker processes, span by span, and their output is written in the
    file's order, when the pipeline is :attr:`~relay_cli.pipeline.stages.Pipeline.splittable`. Pacing and
    ``follow`` always read in this process.
    """
    stats = ReplayStats()
    if jobs is None:
        jobs = default_jobs()
    split = jobs > 1 and pipeline.splittable and pacer is None and not follow
    with without_gc():
        for path in paths:
            source = Source(path)
            cuts = spans(path, SPAN_BYTES) if split and path != STDIN and os.path.isfile(path) else []
            if len(cuts) > 1:
                from relay_cli.pipeline import workers  # here: only a split replay needs it (and pickle)

                if workers.available():
                    _replay_split(source, cuts, pipeline, stats, problem, progress, jobs)
                    continue
            if not replay_source(source, pipeline, stats, _reporter(problem, source), pacer, follow, stop, progress):
                break
    return stats


def load(path: str, problem: Callable[[str, str], None]) -> list[dict[str, Any]]:
    """Every event payload of a recording, read and checked as :func:`replay` reads them, for a program that
    sends them on (``relay serve --replay``); bad lines go to ``problem`` and are left out.

    Each payload goes out in a frame, so one that cannot be encoded again is a bad line, as when a replay
    prints it. Raises :class:`InputError` when the recording cannot be read or holds no event.
    """
    payloads: list[dict[str, Any]] = []

    def keep(payload: dict[str, Any], data: bytes | None, frame_id: Any = None) -> bytes:
        orjson.dumps(payload)
        payloads.append(payload)
        return b""

    replay([path], Pipeline(out=io.BytesIO(), printer=keep), problem=problem)
    if not payloads:
        raise InputError(f"{path}: no events to replay")
    return payloads


def _replay_split(
    source: Source,
    cuts: list[tuple[int, int]],
    pipeline: Pipeline,
    stats: ReplayStats,
    problem: Callable[[str, str], None],
    progress: Callable[[int], None] | None,
    jobs: int,
) -> None:
    """:func:`replay_source` on each span of ``cuts`` in a worker process; the output is written here, in the
    file's order, and problems are reported with line numbers counted from the top of the file, so the
    result is byte for byte what one process prints."""
    from relay_cli.pipeline import workers

    try:
        fd = os.open(source.path, os.O_RDONLY)
    except OSError as exc:
        raise InputError(f"{source.name}: cannot read: {exc.strerror or exc}") from None
    printer, accept = pipeline.printer, pipeline.accept
    lines_before = 0

    def work(lines: bytes) -> SpanResult:
        out = io.BytesIO()
        span = Pipeline(out=out, printer=printer, accept=accept)
        span_stats = ReplayStats(bytes_read=len(lines))
        problems: list[tuple[int | str, str]] = []
        replay_source(Source("", lines=lines), span, span_stats, lambda line, message: problems.append((line, message)))
        span.drain()
        output = out.getvalue()
        # The pipeline's closures refer to it, and workers (forked inside ``without_gc``) never collect such
        # cycles: freeing the buffer here is what keeps a worker's memory flat from one span to the next.
        out.close()
        return output, problems, span_stats, span.tally.shown, lines.count(b"\n")

    def take(result: SpanResult) -> None:
        nonlocal lines_before
        out, problems, span_stats, shown, lines = result
        for line, message in problems:
            problem(where(source, lines_before + line if isinstance(line, int) else line), message)
        lines_before += lines
        stats.add(span_stats)
        pipeline.tally.shown += shown
        pipeline.write(out)
        if progress is not None:
            progress(stats.bytes_read)

    try:
        workers.run_spans(fd, cuts, work, take, jobs=jobs, name=source.name)
    finally:
        os.close(fd)


def _reporter(problem: Callable[[str, str], None], source: Source) -> Report:
    return lambda line, message: problem(where(source, line), message)


def replay_source(
    source: Source,
    pipeline: Pipeline,
    stats: ReplayStats,
    report: Report,
    pacer: Pacer | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> bool:
    """One source through the pipeline; False once the pipeline has shown all it was asked to."""
    accept = pipeline.accept
    show = pipeline.show
    for line, raw, value in entries(source, follow=follow, stop=stop):
        if progress is not None and raw is not None:
            stats.bytes_read += len(raw)
            if stats.bytes_read & 0xFFFF < len(raw):
                progress(stats.bytes_read)
        if (
            value.__class__ is dict
            and "jsonrpc" not in value
            and "method" not in value
            and "id" not in value
            and FRAME_KEY not in value
            and value.get("event_type", "").__class__ is str
            and value.get("params", value).__class__ is dict
        ):
            payload, data = value, raw  # the common case, a well-formed payload line, in a few lookups
        else:
            checked = _payload(line, value, stats, report)
            if checked is None:
                continue
            payload, data = checked, None
        if pacer is not None:
            pacer.wait(payload)
        if accept is None or accept(payload):
            try:
                more = show(payload, data)
            except (orjson.JSONEncodeError, RecursionError) as exc:
                # Nested deeper than the encoder goes: a bad line, found where it is encoded again, since
                # telling it apart as it is read would cost every line (a zero-cost ``try`` costs none).
                pipeline.tally.shown -= 1
                stats.bad += 1
                report(line, unencodable(exc))
                continue
            if not more:
                return False
        if follow:
            pipeline.drain()
    return True


def _payload(line: int | str, value: Any, stats: ReplayStats, report: Report) -> dict[str, Any] | None:
    """The payload of an entry off the common path: a frame's params, or None (reported) for a bad line."""
    if value.__class__ is Notice:
        report(line, value.message)
        return None
    if value.__class__ is BadLine:
        if value.truncated:
            stats.truncated += 1
            report(line, f"{value.message} (a truncated last line, skipped)")
        else:
            stats.bad += 1
            report(line, value.message)
        return None
    try:
        payload, note = to_event(value)
        if note is not None:
            stats.frames += 1
            return None
        check_payload(payload)
    except InvalidEvent as exc:
        stats.bad += 1
        report(line, str(exc))
        return None
    return payload  # type: ignore[no-any-return]
