"""Replaying recordings: the file source of the pipeline, with optional pacing and a progress callback.

A recording goes through the same pipeline as a live session; this module only decides when each
payload is fed. By default that is as fast as possible; with a speed, the original gaps between the
events' timestamps are kept (scaled), with long silences cut short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relay_cli.event import InvalidEvent, check_payload
from relay_cli.pipeline import Pipeline, without_gc
from relay_cli.reader import BadLine, Source, entries, to_event, where

__all__ = ["Pacer", "ReplayStats", "replay"]


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


def replay(
    paths: Sequence[str],
    pipeline: Pipeline,
    *,
    problem: Callable[[str, str], None],
    pacer: Pacer | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Feed every event of ``paths`` to ``pipeline``; report bad lines through ``problem(where, message)``.

    Raises :class:`relay_cli.reader.InputError` when a file as a whole cannot be read. A truncated last
    line, what a recorder killed mid-write leaves, is reported but not counted as bad.
    """
    stats = ReplayStats()
    feed = pipeline.feed
    with without_gc():
        _replay(paths, feed, pipeline, stats, problem, pacer, follow, stop, progress)
    return stats


def _replay(
    paths: Sequence[str],
    feed: Callable[[dict[str, Any], bytes | None], bool],
    pipeline: Pipeline,
    stats: ReplayStats,
    problem: Callable[[str, str], None],
    pacer: Pacer | None,
    follow: bool,
    stop: Callable[[], bool] | None,
    progress: Callable[[int], None] | None,
) -> None:
    for path in paths:
        source = Source(path)
        for line, raw, value in entries(source, follow=follow, stop=stop):
            if progress is not None and raw is not None:
                stats.bytes_read += len(raw)
                if stats.bytes_read & 0xFFFF < len(raw):
                    progress(stats.bytes_read)
            if value.__class__ is BadLine:
                if value.truncated:
                    stats.truncated += 1
                    problem(where(source, line), f"{value.message} (a truncated last line, skipped)")
                else:
                    stats.bad += 1
                    problem(where(source, line), value.message)
                continue
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
                try:
                    payload, note = to_event(value)
                    if note is not None:
                        stats.frames += 1
                        continue
                    check_payload(payload)
                except InvalidEvent as exc:
                    stats.bad += 1
                    problem(where(source, line), str(exc))
                    continue
                data = None
            if pacer is not None:
                pacer.wait(payload)
            if not feed(payload, data):
                return
            if follow:
                pipeline.drain()
