"""The one pipeline every command runs its events through: tally, record, filter, print.

``tail`` and ``replay`` differ only in where payloads come from; what happens to each payload is
written here once. The hot path works on the decoded dict and the encoded bytes it arrived as, and
builds typed events only when the chosen printer needs them.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from relay_cli.pipeline.recording import Recorder

if TYPE_CHECKING:  # the printers are the views' business: the pipeline only calls one
    from relay_cli.views.printers import Printer

__all__ = ["Output", "Pipeline", "Tally", "without_gc"]


class Output(Protocol):
    """Where rendered events go: a binary stream, or a :class:`relay_cli.outbuf.OutBuffer`, whose
    ``write`` returns 0 for output it had no room for."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


@contextlib.contextmanager
def without_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoded JSON holds no reference cycles, and on a big file the
    collector's passes over millions of fresh objects cost time and free nothing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass
class Tally:
    """What went through: events by type, how many were shown, and for how long."""

    by_type: Counter[str] = field(default_factory=Counter)
    shown: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def received(self) -> int:
        return self.by_type.total()

    def summary(self, **extra: int) -> list[str]:
        """Lines for stderr: totals first, then the event types, most frequent first."""
        elapsed = time.monotonic() - self.started
        head = f"{self.shown} shown of {self.received} events in {elapsed:.1f} s"
        tail = "".join(f", {value} {name}" for name, value in extra.items())
        lines = [head + tail]
        if self.by_type:
            width = max(len(name) for name in self.by_type)
            lines += [f"  {name:<{width}}  {count:>7}" for name, count in self.by_type.most_common()]
        return lines


class Pipeline:
    """Feeds payloads to the sinks; :meth:`feed` says whether to go on (False once ``count`` is shown).

    ``feed`` tallies and records every payload, asks ``accept``, and hands what passes to ``show``. A
    replay, which neither tallies nor records, calls ``accept`` and ``show`` itself: most events of a
    filtered replay are then dropped after one call instead of two. Both are closures over the chosen
    sinks, built once: they run for every event, and local lookups cost a fraction of attribute lookups.

    ``stateless`` says that ``printer`` and ``accept`` keep nothing from one event to the next (no call
    tracker, no pretty line's colours per call, no call ids claimed by a prefix): see :attr:`splittable`.
    """

    def __init__(
        self,
        *,
        out: Output,
        printer: Printer | None,
        accept: Callable[[dict[str, Any]], bool] | None = None,
        recorder: Recorder | None = None,
        count: int | None = None,
        flush: bool = False,
        observe: Callable[[dict[str, Any]], Any] | None = None,
        stateless: bool = False,
    ) -> None:
        self.tally = tally = Tally()
        self.accept = accept
        self.printer = printer
        self.splittable = stateless and not count and observe is None
        """Whether copies of this pipeline, each given part of the events (in worker processes), print together
        what it prints: only when nothing is kept from one event to the next, nothing counted, nothing observed."""
        self.when_idle: Callable[[Callable[[], None]], object] | None = None
        """With ``flush``: run a callback once the source has nothing more to hand over (an event loop's
        ``call_soon``). A burst of events then costs one write instead of one each, and nothing waits
        longer than the burst takes to process."""
        self.hidden = 0
        """Events that passed the filters but that the output had no room for (a stuck reader)."""
        self.output_error: OSError | None = None
        """Why writing the output failed when it failed in a flush between events (a closed pipe: the
        reader is gone, as with ``| head -1``); :meth:`feed` then says to stop."""
        self._flush_due = False
        self._out = out
        self._pending: list[bytes] = []
        by_type = tally.by_type
        pending = self._pending
        limit = count or 0
        drain = self.drain

        def show(payload: dict[str, Any], data: bytes | None, frame_id: Any = None) -> bool:
            tally.shown += 1
            if observe is not None:
                observe(payload)
            if printer is not None:
                pending.append(printer(payload, data, frame_id))
                if len(pending) >= 512:
                    drain()
                elif flush:
                    if self.output_error is not None:
                        return False
                    if self.when_idle is None:
                        drain()
                    elif not self._flush_due:
                        self._flush_due = True
                        self.when_idle(self._idle_flush)
            return not limit or tally.shown < limit

        def feed(payload: dict[str, Any], data: bytes | None, frame_id: Any = None) -> bool:
            by_type[payload.get("event_type", "")] += 1
            if recorder is not None:
                recorder.write(payload, data)
            if accept is not None and not accept(payload):
                return True
            return show(payload, data, frame_id)

        self.show = show
        self.feed = feed

    def _idle_flush(self) -> None:
        """Runs as an event-loop callback, where an exception would only be logged: the error is kept
        instead, and the next event ends the run."""
        self._flush_due = False
        try:
            self.drain()
        except OSError as exc:
            self.output_error = exc

    def write(self, data: bytes) -> None:
        """Write output already rendered elsewhere (by a worker process), after what is buffered."""
        self._pending.append(data)
        self.drain()

    def drain(self) -> None:
        """Write what is buffered; called by batch sources between chunks and at the end."""
        pending = self._pending
        if pending:
            data = b"".join(pending)
            events = len(pending)
            pending.clear()
            if self._out.write(data) == 0 and data:
                self.hidden += events
        self._out.flush()
