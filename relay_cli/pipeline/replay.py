"""Replaying recordings: the file source of the pipeline, with optional pacing and a progress callback.

A recording goes through the same pipeline as a live session; this module only decides when each
payload is fed, and where. By default that is as fast as possible; with a speed, the original gaps
between the events' timestamps are kept (scaled), with long silences cut short. A big file may be
split across worker processes (:mod:`relay_cli.pipeline.workers`), each running :func:`replay_source` on a span.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from relay_cli.event import InvalidEvent, check_payload
from relay_cli.pipeline.reader import STDIN, BadLine, Notice, Source, entries, spans, to_event, unencodable, where
from relay_cli.pipeline.stages import Pipeline, without_gc

__all__ = ["SPAN_BYTES", "Pacer", "ReplayStats", "Report", "replay", "replay_source"]


class Pacer:
    """Sleeps so events come out with their recorded gaps divided by ``speed``, none longer than ``max_gap``."""

    def __init__(self, speed: float, max_gap: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed = speed
        self.max_gap = max_gap
        self._sleep = sleep
        self._last_ts: float | None = None
        self._due = 0.0

    def wait(self, payload: dict[str, Any]) -> None:
        ts = _timestamp(payload)
        if ts is None:
            return
        now = time.monotonic()
        if self._last_ts is None:
            self._due = now
        else:
            gap = min(max(ts - self._last_ts, 0.0) / self.speed, self.max_gap)
            self._due = max(self._due + gap, now - self.max_gap)
            if self._due > now:
                self._sleep(self._due - now)
        self._last_ts = ts


def _timestamp(payload: dict[str, Any]) -> float | None:
    ts = payload.get("timestamp")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    params = payload.get("params")
    ts = params.get("timestamp") if isinstance(params, dict) else None
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    return None


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


def replay(
    paths: Sequence[str],
    pipeline: Pipeline,
    *,
    problem: Callable[[str, str], None],
    pacer: Pacer | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> ReplayStats:
    """Feed every event of ``paths`` to ``pipeline``; report bad lines through ``problem(where, message)``.

    Raises :class:`relay_cli.pipeline.reader.InputError` when a file as a whole cannot be read. A truncated last
    line, what a recorder killed mid-write leaves, is reported but not counted as bad.

    With ``jobs`` above 1, a JSON Lines file of at least two spans of ``SPAN_BYTES`` is read by that many
    worker processes, span by span, and their output is written in the file's order (see
    :mod:`relay_cli.pipeline.workers`). Only a caller knows whether that is sound: the pipeline's filter and
    printer must keep no state from one event to the next, and it must have no ``count`` or ``observe``.
    Pacing and ``follow`` always read in this process.
    """
    stats = ReplayStats()
    with without_gc():
        for path in paths:
            source = Source(path)
            cuts = (
                spans(path, SPAN_BYTES)
                if jobs > 1 and pacer is None and not follow and path != STDIN and os.path.isfile(path)
                else []
            )
            if len(cuts) > 1:
                from relay_cli.pipeline import workers as fanout

                if fanout.available():
                    fanout.replay_spans(source, cuts, pipeline, stats, problem, progress, jobs)
                    continue
            if not replay_source(source, pipeline, stats, _reporter(problem, source), pacer, follow, stop, progress):
                break
    return stats


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
