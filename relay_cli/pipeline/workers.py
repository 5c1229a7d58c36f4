"""Replaying a big JSON Lines file on every core: spans of it in worker processes, output in file order.

Decoding JSON is nearly all that a filtered replay costs, and every line decodes on its own, so a
file cut at line ends can be decoded by as many processes as there are cores. Each worker runs the
replay loop of :mod:`relay_cli.pipeline.replay` over one span into a buffer; this process writes the buffers in
the file's order and reports the workers' problems with line numbers counted from the top of the
file, so the result is byte for byte what one process prints.

The workers are forked and managed here rather than through a process pool, because that is what
makes every way of stopping safe:

- each has a pipe of its own for spans and one for results, and is the only writer of its results: a
  worker that dies (the OOM killer) is an end of file here, never a half-read message to wait on;
- they ignore Ctrl-C and SIGTERM, which reach the whole process group: this process stops them, with
  SIGKILL, once it has decided to stop, so no signal can catch one halfway;
- if this process is killed outright, their pipes close and they exit on their own.

Spans go round-robin, at most ``_AHEAD`` queued per worker, so memory stays flat whatever the file's
size. The file is opened once, before the fork, and read with ``pread``: renaming another file over the
path mid-replay does not mix the two.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import struct
from collections.abc import Callable
from types import FrameType
from typing import IO, NoReturn

from relay_cli.pipeline.reader import InputError, Source, where
from relay_cli.pipeline.replay import ReplayStats, replay_source
from relay_cli.pipeline.stages import Pipeline

__all__ = ["available", "replay_spans"]

SpanResult = tuple[bytes, list[tuple["int | str", str]], ReplayStats, int, int]
"""What a worker hands back for one span: output, ``(line, message)`` problems, stats, events shown, lines."""

_STOPS = {signal.SIGINT, signal.SIGTERM}
_SPAN = struct.Struct("<qq")  # start, end (-1: to the end of the file)
_SIZE = struct.Struct("<Q")
_AHEAD = 2


def available() -> bool:
    """Whether worker processes can be forked here (not on Windows)."""
    return hasattr(os, "fork")


class _Worker:
    """One forked worker, seen from this process: where to send spans and where its results arrive."""

    def __init__(self, pid: int, spans: int, results: IO[bytes], name: str) -> None:
        self.pid = pid
        self.spans = spans
        self.results = results
        self.died = f"{name}: a worker process died; --jobs 1 reads in this process"

    def send(self, start: int, end: int) -> None:
        try:
            os.write(self.spans, _SPAN.pack(start, end))
        except BrokenPipeError:
            raise InputError(self.died) from None

    def receive(self) -> SpanResult:
        """The next result; an end of file before a whole one means the worker died."""
        size = self.results.read(_SIZE.size)
        if len(size) == _SIZE.size:
            (length,) = _SIZE.unpack(size)
            body = self.results.read(length)
            if len(body) == length:
                ok, value = pickle.loads(body)  # noqa: S301 - written by our own forked child
                if not ok:
                    raise value
                result: SpanResult = value
                return result
        raise InputError(self.died)

    def stop(self, kill: bool) -> None:
        os.close(self.spans)
        self.results.close()
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


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

    The last span is read to the end of the file as it is then, as one process would. SIGTERM ends
    this process with 143 (after stopping the workers), as it would without workers.
    """
    try:
        fd = os.open(source.path, os.O_RDONLY)
    except OSError as exc:
        raise InputError(f"{source.name}: cannot read: {exc.strerror or exc}") from None
    workers: list[_Worker] = []
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    previous = signal.signal(signal.SIGTERM, _terminate)
    finished = False
    try:
        for _ in range(min(jobs, len(cuts))):
            workers.append(_fork(fd, pipeline, workers, source.name))
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        count = len(workers)
        sent = lines_before = 0
        for index in range(len(cuts)):
            while sent < len(cuts) and sent < index + count * _AHEAD:
                start, end = cuts[sent]
                workers[sent % count].send(start, end if sent < len(cuts) - 1 else -1)
                sent += 1
            out, problems, span_stats, shown, lines = workers[index % count].receive()
            for line, message in problems:
                problem(where(source, lines_before + line if isinstance(line, int) else line), message)
            lines_before += lines
            stats.add(span_stats)
            pipeline.tally.shown += shown
            pipeline.write(out)
            if progress is not None:
                progress(stats.bytes_read)
        finished = True
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)  # a second Ctrl-C waits until the workers are gone
        for worker in workers:
            worker.stop(kill=not finished)
        os.close(fd)
        signal.signal(signal.SIGTERM, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def _fork(fd: int, pipeline: Pipeline, earlier: list[_Worker], name: str) -> _Worker:
    spans_r, spans_w = os.pipe()
    results_r, results_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: it never returns from here
        code = 1
        try:
            for worker in earlier:  # their pipes must close when this process's ends do, not when ours do
                os.close(worker.spans)
                os.close(worker.results.fileno())
            os.close(spans_w)
            os.close(results_r)
            _serve(fd, spans_r, results_w, pipeline)
            code = 0
        finally:
            os._exit(code)
    os.close(spans_r)
    os.close(results_w)
    return _Worker(pid, spans_w, os.fdopen(results_r, "rb"), name)


def _serve(fd: int, spans_r: int, results_w: int, pipeline: Pipeline) -> None:
    """Replay each span asked for, until this process's pipe closes; exceptions go back as results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
    with open(spans_r, "rb") as spans, open(results_w, "wb") as results:
        while len(span := spans.read(_SPAN.size)) == _SPAN.size:
            start, end = _SPAN.unpack(span)
            try:
                body = pickle.dumps((True, _replay_span(fd, start, end, pipeline)))
            except Exception as exc:  # handed to the parent, which raises it
                try:
                    body = pickle.dumps((False, exc))
                except Exception:  # one that cannot be pickled
                    body = pickle.dumps((False, RuntimeError(repr(exc))))
            try:
                results.write(_SIZE.pack(len(body)) + body)
                results.flush()
            except BrokenPipeError:
                return


def _replay_span(fd: int, start: int, end: int, parent: Pipeline) -> SpanResult:
    if end < 0:
        end = os.fstat(fd).st_size
    chunks = []
    offset = start
    while offset < end and (chunk := os.pread(fd, end - offset, offset)):
        chunks.append(chunk)
        offset += len(chunk)
    lines = b"".join(chunks)
    out = io.BytesIO()
    pipeline = Pipeline(out=out, printer=parent.printer, accept=parent.accept)
    stats = ReplayStats(bytes_read=len(lines))
    problems: list[tuple[int | str, str]] = []
    replay_source(Source("", lines=lines), pipeline, stats, lambda line, message: problems.append((line, message)))
    pipeline.drain()
    output = out.getvalue()
    # The pipeline's closures refer to it, and workers (forked inside ``without_gc``) never collect such
    # cycles: freeing the buffer here is what keeps a worker's memory flat from one span to the next.
    out.close()
    return output, problems, stats, pipeline.tally.shown, lines.count(b"\n")
