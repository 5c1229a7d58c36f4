"""Work on a big file on every core: spans of it in forked worker processes, results in file order.

Decoding JSON is nearly all that a filtered replay costs, and every line of JSON Lines decodes on its
own, so a file cut at line ends can be worked on by as many processes as there are cores. The caller
gives the function to run on the bytes of one span (:mod:`relay_cli.pipeline.replay` gives its replay
loop) and the one that takes each result, here, in the file's order; this module knows nothing else.

The workers are forked and managed here rather than through a process pool, because that is what
makes every way of stopping safe:

- each has a pipe of its own for spans and one for results, and is the only writer of its results: a
  worker that dies (the OOM killer) is an end of file here, never a half-read message to wait on;
- they ignore Ctrl-C and SIGTERM, which reach the whole process group: this process stops them, with
  SIGKILL, once it has decided to stop, so no signal can catch one halfway;
- if this process is killed outright, their pipes close and they exit on their own.

Spans go round-robin, at most ``_AHEAD`` queued per worker, so memory stays flat whatever the file's
size. The file is opened once, by the caller, before the fork, and read with ``pread``: renaming another
file over the path mid-run does not mix the two.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
from collections.abc import Callable
from types import FrameType
from typing import IO, Generic, NoReturn, TypeVar

from relay_cli.errors import RelayError, Terminated

__all__ = ["WorkerDied", "available", "run_spans"]

T = TypeVar("T")

_STOPS = {signal.SIGINT, signal.SIGTERM}
_SPAN = struct.Struct("<qq")  # start, end (-1: to the end of the file)
_SIZE = struct.Struct("<Q")
_AHEAD = 2


class WorkerDied(RelayError):
    """A worker process ended without handing back its span (killed, out of memory): the run cannot finish."""


def available() -> bool:
    """Whether worker processes can be forked here (not on Windows)."""
    return hasattr(os, "fork")


class _Worker(Generic[T]):
    """One forked worker, seen from this process: where to send spans and where its results arrive."""

    def __init__(self, pid: int, spans: int, results: IO[bytes], name: str) -> None:
        self.pid = pid
        self.spans = spans
        self.results = results
        self.died = f"{name}: a worker process died"

    def send(self, start: int, end: int) -> None:
        try:
            os.write(self.spans, _SPAN.pack(start, end))
        except BrokenPipeError:
            raise WorkerDied(self.died) from None

    def receive(self) -> T:
        """The next result; an end of file before a whole one means the worker died."""
        size = self.results.read(_SIZE.size)
        if len(size) == _SIZE.size:
            (length,) = _SIZE.unpack(size)
            body = self.results.read(length)
            if len(body) == length:
                ok, value = pickle.loads(body)  # noqa: S301 - written by our own forked child
                if not ok:
                    raise value
                result: T = value
                return result
        raise WorkerDied(self.died)

    def stop(self, kill: bool) -> None:
        os.close(self.spans)
        self.results.close()
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def run_spans(
    fd: int,
    cuts: list[tuple[int, int]],
    work: Callable[[bytes], T],
    take: Callable[[T], None],
    *,
    jobs: int,
    name: str,
) -> None:
    """Run ``work`` on the bytes of each span ``cuts`` of the file open at ``fd``, in ``jobs`` worker
    processes, and hand each result to ``take`` here, in the order of ``cuts``.

    ``work`` runs in a forked copy of this process, so it may use anything this process had built; its
    result, or the exception it raised (raised here), must pickle. The last span is read to the end of
    the file as it is then. ``name`` names the file in :class:`WorkerDied`. SIGTERM raises
    :class:`~relay_cli.errors.Terminated` here, after the workers are stopped.
    """
    workers: list[_Worker[T]] = []
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    previous = signal.signal(signal.SIGTERM, _terminate)
    finished = False
    try:
        for _ in range(min(jobs, len(cuts))):
            workers.append(_fork(fd, work, workers, name))
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        count = len(workers)
        sent = 0
        for index in range(len(cuts)):
            while sent < len(cuts) and sent < index + count * _AHEAD:
                start, end = cuts[sent]
                workers[sent % count].send(start, end if sent < len(cuts) - 1 else -1)
                sent += 1
            take(workers[index % count].receive())
        finished = True
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)  # a second Ctrl-C waits until the workers are gone
        for worker in workers:
            worker.stop(kill=not finished)
        signal.signal(signal.SIGTERM, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated


def _fork(fd: int, work: Callable[[bytes], T], earlier: list[_Worker[T]], name: str) -> _Worker[T]:
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
            _serve(fd, spans_r, results_w, work)
            code = 0
        finally:
            os._exit(code)
    os.close(spans_r)
    os.close(results_w)
    return _Worker(pid, spans_w, os.fdopen(results_r, "rb"), name)


def _serve(fd: int, spans_r: int, results_w: int, work: Callable[[bytes], T]) -> None:
    """Run ``work`` on each span asked for, until this process's pipe closes; exceptions go back as results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
    with open(spans_r, "rb") as spans, open(results_w, "wb") as results:
        while len(span := spans.read(_SPAN.size)) == _SPAN.size:
            start, end = _SPAN.unpack(span)
            try:
                body = pickle.dumps((True, work(_read(fd, start, end))))
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


def _read(fd: int, start: int, end: int) -> bytes:
    if end < 0:
        end = os.fstat(fd).st_size
    chunks = []
    offset = start
    while offset < end and (chunk := os.pread(fd, end - offset, offset)):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
