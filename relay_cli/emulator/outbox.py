"""A timed outbox: items (frames, calls to ring out, demo flows) that fall due at given times, on a clock passed in.

A heap of ``(due, sequence, item)``: items due at the same time come out in the order they were put in. Nothing
here reads a clock or sleeps; the server asks :meth:`Outbox.next_due` when to wake and :meth:`Outbox.pop_due`
what is due then, so a test drives it with plain numbers. Demo traffic runs its flows on one in simulated time,
always taking the earliest (:meth:`Outbox.put_pop_first`) whatever a clock says.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

__all__ = ["Outbox"]

T = TypeVar("T")


class Outbox(Generic[T]):
    """Items by the time they fall due."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()

    def put(self, due: float, item: T) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), item))

    def next_due(self) -> float | None:
        """When the earliest item falls due; None when the outbox is empty."""
        return self._heap[0][0] if self._heap else None

    def pop_first(self) -> tuple[float, T]:
        """Take the earliest item out, with when it falls due; IndexError when the outbox is empty."""
        due, _, item = heapq.heappop(self._heap)
        return due, item

    def put_pop_first(self, due: float, item: T) -> tuple[float, int, T]:
        """Hot path (once per demo event): put ``item``, then take the earliest out (maybe ``item`` itself) as
        its heap entry ``(due, sequence, item)``: one heap operation and no new tuple, where a put and a pop
        are two of each."""
        return heapq.heappushpop(self._heap, (due, next(self._seq), item))

    def pop_due(self, now: float) -> list[T]:
        """Take every item due at ``now`` or before, earliest first."""
        heap, due = self._heap, []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        return due

    def __len__(self) -> int:
        return len(self._heap)
