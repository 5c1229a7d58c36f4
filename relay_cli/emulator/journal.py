"""A bounded journal of every frame the emulator sends or receives, oldest first.

The emulator funnels each frame through :meth:`Journal.add` (or :meth:`Journal.add_events` for a burst of
events) at the moment it decodes or encodes it, so a test, or later a control plane, can see the whole
conversation. Appending is on the emulator's hot path, so a burst is one entry holding its frames' bytes, not
their decoded values (which would keep thousands of dicts alive for the garbage collector to walk): entries
become :class:`~relay_cli.protocol.FrameRecord` objects, decoded where needed, only when read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, FrameRecord, Kind

__all__ = ["JOURNAL_SIZE", "Journal", "Observer"]

JOURNAL_SIZE = 10_000
"""Frames a journal keeps by default; beyond it the oldest are forgotten."""

# direction, time, connection, session, kind, the decoded value (None: decode the bytes when read), the bytes of
# each frame (one, or a burst's)
_Entry = tuple[str, float, str, str, "Kind | None", Any, Sequence[bytes]]

Observer = Callable[[str, float, str, str, "Kind | None", Sequence[bytes]], None]
"""Told of every frame as it is journaled: direction, time, connection, session, kind, the frames' bytes."""


class Journal:
    """The last ``size`` frames both ways, each with the session it belongs to ("" when it has none)."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        if size < 0:
            raise ValueError("size must not be negative")
        self.size = size
        self._entries: deque[_Entry] = deque()
        self._frames = 0
        self.total = 0
        """Frames journaled since the start or the last :meth:`clear`, forgotten ones included."""
        self.observers: list[Observer] = []
        """Who else sees each frame as it passes (the frame printer of ``relay serve``, ``expect_recv``); they
        must not raise."""

    def add(
        self, direction: str, time: float, connection: str, session: str, kind: Kind | None, value: Any, raw: bytes
    ) -> None:
        """Hot path (an ACK per event). A journal of size 0 only counts."""
        self.total += 1
        if self.observers:
            for observer in self.observers:
                observer(direction, time, connection, session, kind, (raw,))
        if self.size:
            self._entries.append((direction, time, connection, session, kind, value, (raw,)))
            self._frames += 1
            if self._frames > self.size:
                self._trim()

    def add_events(self, time: float, connection: str, session: str, raws: Sequence[bytes]) -> None:
        """Hot path. Journal a burst of sent ``signalwire.event`` frames, sent in one write at ``time``."""
        self.total += len(raws)
        if self.observers:
            for observer in self.observers:
                observer(RELAY_TO_APP, time, connection, session, Kind.EVENT, raws)
        if self.size:
            self._entries.append((RELAY_TO_APP, time, connection, session, Kind.EVENT, None, raws))
            self._frames += len(raws)
            if self._frames > self.size:
                self._trim()

    def _trim(self) -> None:
        entries = self._entries
        while self._frames > self.size:
            first = entries[0]
            excess = self._frames - self.size
            if len(first[6]) <= excess:
                entries.popleft()
                self._frames -= len(first[6])
            else:  # keep the newest frames of the oldest burst
                entries[0] = (*first[:6], first[6][excess:])
                self._frames -= excess

    def claim(self, connection: str, session: str) -> None:
        """File the latest frame ``connection`` sent while it had no session (its ``signalwire.connect``) under
        the session it opened."""
        entries = self._entries
        for i in range(len(entries) - 1, -1, -1):
            entry = entries[i]
            if entry[2] == connection and entry[0] == APP_TO_RELAY:
                if entry[3] == "":
                    entries[i] = (*entry[:3], session, *entry[4:])
                return

    def __len__(self) -> int:
        return self._frames

    def records(self) -> Iterator[FrameRecord]:
        """The frames kept, oldest first."""
        for _, record in self.entries():
            yield record

    def entries(self) -> Iterator[tuple[str, FrameRecord]]:
        """The frames kept with the session each belongs to (its ``sessionid``), oldest first."""
        for direction, time, connection, session, kind, kept, raws in list(self._entries):
            for raw in raws:
                value = orjson.loads(raw) if kept is None and kind is not None else kept
                yield session, FrameRecord(direction, time, connection, kind, value, raw)

    def clear(self) -> None:
        self._entries.clear()
        self._frames = 0
        self.total = 0
