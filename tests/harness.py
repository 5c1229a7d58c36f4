"""A real emulator on a loopback port, running in a thread, for tests that run ``relay`` against it.

The CLI under test runs as a subprocess; the emulator runs on its own event loop here, so tests can
inject faults (drops, disconnects, malformed frames) while the client is connected.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from relay_cli.emulator import Emulator

T = TypeVar("T")


class EmulatorThread:
    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.logs: list[str] = []
        options.setdefault("log", self.logs.append)
        self._options = options
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.emulator: Emulator

    def start(self) -> None:
        self._thread.start()

        async def make() -> Emulator:
            emulator = Emulator(**self._options)
            await emulator.start()
            return emulator

        self.emulator = self.run(make())

    @property
    def url(self) -> str:
        return self.emulator.url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        self.run(self.emulator.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@contextmanager
def emulator(**options: Any) -> Iterator[EmulatorThread]:
    server = EmulatorThread(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


RELAY = [sys.executable, "-m", "relay_cli"]
CREDS = ["--project", "p-123", "--token", "PT-secret-token-value"]


def relay(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``relay`` to completion, capturing stdout and stderr separately."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    full_env.update(env or {})
    return subprocess.run([*RELAY, *args], capture_output=True, text=True, timeout=timeout, env=full_env, check=False)


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start ``relay`` in the background, for tests that act while it runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    return subprocess.Popen([*RELAY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def interrupt(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 15) -> tuple[str, str]:
    proc.send_signal(sig)
    return proc.communicate(timeout=timeout)
