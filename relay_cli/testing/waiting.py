"""How ``relay_server`` waits: poll the control plane until an answer is there, in a plain test or a coroutine.

The sync form blocks and is refused inside a running event loop, where it would stall the app under test on that
loop; the async form does its HTTP on a worker thread, so that app keeps running. A wait that runs out raises
:class:`RelayTimeout`, an ``AssertionError``, so pytest reports it as the test's failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DEFAULT_TIMEOUT", "RelayTimeout", "apoll", "not_in_loop", "poll"]

__tracebackhide__ = True  # failures point at the test's line, never at the plugin's insides

DEFAULT_TIMEOUT = 10.0
"""Real seconds a wait allows by default: generous, since a wait returns as soon as its answer is there."""
_POLL = 0.02
_T = TypeVar("_T")


class RelayTimeout(AssertionError):
    """A wait of ``relay_server`` ran out: the message names what was awaited and shows the last frames."""

    __module__ = "relay_cli.testing"  # as a failure names it


def poll(check: Callable[[], _T | None], timeout: float, fail: Callable[[float], Exception]) -> _T:
    """``check()`` until it returns something; ``fail(timeout)`` is raised when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise fail(timeout)
        time.sleep(_POLL)


async def apoll(check: Callable[[], _T | None], timeout: float, fail: Callable[[float], Exception]) -> _T:
    """:func:`poll` in a coroutine, ``check`` and ``fail`` run on a worker thread."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(check)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise await asyncio.to_thread(fail, timeout)
        await asyncio.sleep(_POLL)


def not_in_loop(what: str, instead: str) -> None:
    """Refuse a blocking wait inside a running event loop, naming the form to use there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{what} blocks, and would stall the event loop this code runs on: use {instead}")
