"""Replaying a big JSON Lines file on every core: spans of it in worker processes, output in file order.

Decoding JSON is nearly all that a filtered replay costs, and every line decodes on its own, so a
file cut at line ends can be decoded by as many processes as there are cores. Each worker runs the
replay loop of :mod:`relay_cli.replay` over one span into a buffer; this process writes the buffers in
the file's order and reports the workers' problems with line numbers counted from the top of the
file, so the result is byte for byte what one process prints. About two spans per worker are in
flight at a time, so memory stays flat whatever the file's size.

Workers are forked: they inherit the pipeline's filter and printer as they are, without pickling.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import FrameType
from typing import NoReturn

from relay_cli.pipeline import Pipeline
from relay_cli.reader import InputError, Source, read_span, where
from relay_cli.replay import ReplayStats, replay_source

__all__ = ["available", "replay_spans"]

SpanResult = tuple[bytes, list[tuple["int | str", str]], ReplayStats, int, int]
"""What a worker hands back for one span: output, ``(line, message)`` problems, stats, events shown, lines."""

_STOPS = {signal.SIGINT, signal.SIGTERM}

_parent: Pipeline | None = None
"""The pipeline whose filter and printer the workers use, set just before they are forked."""


def available() -> bool:
    """Whether worker processes can be forked here (not on Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def replay_spans(
    source: Source,
    cuts: list[tuple[int, int]],
    pipeline: Pipeline,
    stats: ReplayStats,
    problem: Callable[[str, str], None],
    progress: Callable[[int], None] | None,
    jobs: int,
) -> None:
    """Replay the spans ``cuts`` of ``source`` in ``jobs`` worker processes, writing through ``pipeline``.

    Ctrl-C and SIGTERM stop the workers before this process exits (130 or 143), so none is left
    behind; both are held back while the workers start, so neither can come between a fork and the
    executor knowing of it. A worker that dies (the OOM killer) is an :class:`InputError`.
    """
    global _parent  # noqa: PLW0603 - the one way to hand a closure to forked workers without pickling it
    _parent = pipeline
    workers = min(jobs, len(cuts))
    lines_before = 0
    previous = signal.signal(signal.SIGTERM, _terminate)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker, initargs=(os.getpid(),)
    )
    try:
        in_flight: deque[tuple[int, Future[SpanResult]]] = deque()
        for index, (start, end) in enumerate(cuts):
            in_flight.append((end, pool.submit(_replay_span, source.path, start, end)))
            if index == 0:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            while in_flight and (len(in_flight) > 2 * workers or index == len(cuts) - 1):
                end_of_span, future = in_flight.popleft()
                out, problems, span_stats, shown, lines = future.result()
                for line, message in problems:
                    problem(where(source, lines_before + line if isinstance(line, int) else line), message)
                lines_before += lines
                stats.add(span_stats)
                pipeline.tally.shown += shown
                pipeline.write(out)
                if progress is not None:
                    progress(end_of_span)
    except BrokenProcessPool:
        raise InputError(f"{source.name}: a worker process died; --jobs 1 reads in this process") from None
    finally:
        pool.shutdown(cancel_futures=True)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGTERM, previous)
        _parent = None


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def _start_worker(parent: int) -> None:
    """Ctrl-C reaches the whole process group; only the parent acts on it, and stops the workers.

    A parent killed outright (SIGKILL, the OOM killer) cannot stop them, and a worker waiting for its
    next span would wait forever, so each worker also watches for its parent to go.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # results carry every problem; a dying pipe's complaints are noise
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _replay_span(path: str, start: int, end: int) -> SpanResult:
    assert _parent is not None, "workers are forked by replay_spans"
    lines = read_span(path, start, end)
    out = io.BytesIO()
    pipeline = Pipeline(out=out, printer=_parent.printer, accept=_parent.accept)
    stats = ReplayStats()
    problems: list[tuple[int | str, str]] = []
    replay_source(Source(path, lines=lines), pipeline, stats, lambda line, message: problems.append((line, message)))
    pipeline.drain()
    output = out.getvalue()
    # The pipeline's closures refer to it, and workers (forked inside ``without_gc``) never collect such
    # cycles: freeing the buffer here is what keeps a worker's memory flat from one span to the next.
    out.close()
    return output, problems, stats, pipeline.tally.shown, lines.count(b"\n")
