"""Output that never blocks its producer: a bounded buffer that a background thread writes to stdout.

A live tail must keep ACKing, answering pings and acting on signals whatever the reader of its stdout
does, so the event loop only appends to this buffer. The thread writes with ``os.write`` on the file
descriptor: a thread blocked inside ``sys.stdout``'s BufferedWriter holds its lock, and the interpreter
aborts at exit when it cannot take that lock; blocked in ``os.write`` it holds nothing and exit proceeds.

The buffer is bounded in bytes and large (32 MiB by default, minutes of a busy session), so a reader
that is only slow loses nothing; what a stuck reader leaves no room for is refused and counted by the
caller. A closed pipe (``relay tail | head -1``) is :attr:`OutBuffer.broken`, and every later write
raises :class:`BrokenPipeError`, as a plain stream's would.

Only a pipe, a terminal or a socket can keep a writer waiting for as long as its reader likes. A regular
file or ``/dev/null`` takes each write at once, so it is written to directly, without the thread and the
hand-over to it (a few per cent of a busy tail's CPU).
"""

from __future__ import annotations

import errno
import os
import queue
import select
import stat
import threading
import time
from collections.abc import Callable
from os import write as os_write

from relay_cli.errors import RelayError

__all__ = ["DEFAULT_LIMIT", "OutBuffer", "OutputError"]

DEFAULT_LIMIT = 32 * 1024 * 1024
_BATCH = 1024 * 1024
"""At most this much is joined into one ``write(2)``: fewer system calls, without copying the buffer."""


class OutputError(RelayError, OSError):
    """Writing the output failed for another reason than a closed pipe (a full disk, an I/O error)."""

    @classmethod
    def of(cls, error: OSError) -> OutputError:
        return cls(error.errno, error.strerror or str(error))

    def __str__(self) -> str:
        return f"cannot write to stdout: {self.strerror}"


class OutBuffer:
    """``write`` and ``flush`` as on a binary stream, without ever blocking; :meth:`close` at the end.

    ``write`` returns the bytes it took: all of them, or 0 when the buffer is full (``on_full`` is then
    called, once). It raises :class:`BrokenPipeError` once the reader is gone and :class:`OutputError`
    once a write failed otherwise.
    """

    def __init__(self, fd: int, *, limit: int = DEFAULT_LIMIT, on_full: Callable[[], None] | None = None) -> None:
        self.fd = fd
        self.limit = limit
        self.broken = False
        """The reader closed the pipe: nothing more will be written."""
        self.error: OSError | None = None
        self.on_end: Callable[[], None] = lambda: None
        """Called (from the writer thread) once the pipe broke or a write failed: a server that only writes
        now and then learns at once that its reader went away."""
        self._on_full = on_full
        self._full_said = False
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        # Two counters, each written by one thread only, so their difference needs no lock.
        self._taken = 0
        self._written = 0
        self._thread: threading.Thread | None = None
        if not _never_blocks(fd):
            self._thread = threading.Thread(target=self._run, name="relay-stdout", daemon=True)
            self._thread.start()

    @property
    def pending(self) -> int:
        """Bytes taken but not yet written."""
        return self._taken - self._written

    def write(self, data: bytes) -> int:
        if self.broken or self.error is not None:
            self._raise()
        size = len(data)
        if self._thread is None:
            self._taken += size
            if not self._write(data):
                self._raise()
            return size
        if self._taken - self._written + size > self.limit:
            if not self._full_said:
                self._full_said = True
                if self._on_full is not None:
                    self._on_full()
            return 0
        self._taken += size
        self._queue.put(data)
        return size

    def flush(self) -> None:
        """Nothing to do: the thread writes as soon as data is taken."""

    def close(self, *, stall: float = 1.0, limit: float | None = None) -> bool:
        """Write what is buffered and stop the thread; say whether everything was written.

        Waits while the reader makes progress, and gives up after ``stall`` seconds without any (a stuck
        reader), or after ``limit`` seconds in all (a run ended by a signal must end promptly). A Ctrl-C
        while waiting gives up at once.
        """
        thread = self._thread
        if thread is None:
            return not self.broken and self.error is None
        self._queue.put(None)
        started = moved = time.monotonic()
        written = self._written
        try:
            while thread.is_alive():
                thread.join(0.05)
                now = time.monotonic()
                if self._written != written:
                    written, moved = self._written, now
                if now - moved >= stall or (limit is not None and now - started >= limit):
                    break
        except KeyboardInterrupt:
            pass
        return not thread.is_alive() and not self.broken and self.error is None

    def _raise(self) -> None:
        if self.broken:
            raise BrokenPipeError(errno.EPIPE, "the reader of the output is gone")
        assert self.error is not None
        raise OutputError.of(self.error)

    def _run(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        while True:
            chunk = get()
            if chunk is None:
                return
            chunks = [chunk]
            size = len(chunk)
            ending = False
            while size < _BATCH:
                try:
                    more = get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    ending = True
                    break
                chunks.append(more)
                size += len(more)
            if not self._write(b"".join(chunks) if len(chunks) > 1 else chunk) or ending:
                return

    def _write(self, data: bytes) -> bool:
        view = memoryview(data)
        try:
            while view:
                try:
                    done = os_write(self.fd, view)
                except BlockingIOError:
                    # Someone sharing the descriptor made it non-blocking: wait until it takes more.
                    select.select([], [self.fd], [])
                    continue
                self._written += done
                view = view[done:]
        except BrokenPipeError:
            self.broken = True
            self.on_end()
            return False
        except OSError as exc:
            self.error = exc
            self.on_end()
            return False
        return True


def _never_blocks(fd: int) -> bool:
    """A regular file or ``/dev/null``: a write returns at once (or fails), whoever reads."""
    try:
        info = os.fstat(fd)
        return stat.S_ISREG(info.st_mode) or (
            stat.S_ISCHR(info.st_mode) and info.st_rdev == os.stat(os.devnull).st_rdev
        )
    except OSError:
        return False
