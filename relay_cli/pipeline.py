"""The one pipeline every command runs its events through: tally, record, filter, print.

``tail`` and ``replay`` differ only in where payloads come from; what happens to each payload is
written here once. The hot path works on the decoded dict and the encoded bytes it arrived as, and
builds typed events only when the chosen printer needs them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from relay_cli.recording import Recorder
from relay_cli.render import Printer

__all__ = ["Pipeline", "Tally"]


@dataclass
class Tally:
    """What went through: events by type, how many were shown, and for how long."""

    by_type: Counter[str] = field(default_factory=Counter)
    received: int = 0
    shown: int = 0
    started: float = field(default_factory=time.monotonic)

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
    """Feeds payloads to the sinks; :meth:`feed` says whether to go on (False once ``count`` is shown)."""

    def __init__(
        self,
        *,
        out: IO[bytes],
        printer: Printer | None,
        accept: Callable[[dict[str, Any]], bool] | None = None,
        recorder: Recorder | None = None,
        count: int | None = None,
        flush: bool = False,
    ) -> None:
        self.tally = Tally()
        self._out = out
        self._printer = printer
        self._accept = accept
        self._recorder = recorder
        self._count = count
        self._flush = flush
        self._pending: list[bytes] = []

    def feed(self, payload: dict[str, Any], data: bytes | None, frame_id: Any = None) -> bool:
        tally = self.tally
        tally.received += 1
        event_type = payload.get("event_type", "")
        tally.by_type[event_type if isinstance(event_type, str) else "?"] += 1
        if self._recorder is not None:
            self._recorder.write(payload, data)
        if self._accept is not None and not self._accept(payload):
            return True
        tally.shown += 1
        if self._printer is not None:
            if self._flush:
                self._out.write(self._printer(payload, data, frame_id))
                self._out.flush()
            else:
                self._pending.append(self._printer(payload, data, frame_id))
                if len(self._pending) >= 256:
                    self.drain()
        return self._count is None or tally.shown < self._count

    def drain(self) -> None:
        """Write what is buffered; called by batch sources between chunks and at the end."""
        if self._pending:
            self._out.write(b"".join(self._pending))
            self._pending.clear()
        self._out.flush()
