"""Running the live commands: a session (or the in-process emulator) into the pipeline, until told to stop.

This is where the ways a live run can end meet: ``--count``, ``--timeout``, Ctrl-C, SIGTERM, rejected
credentials, a closed stdout (``relay tail | head -1``). Each ends the same way: the socket closed
cleanly, the recording flushed, an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass

from relay_cli.emulator import Emulator
from relay_cli.pipeline.stages import Pipeline
from relay_cli.session import AuthError, Credentials, RelaySession, SessionError
from relay_cli.terminal import ExitCode

__all__ = ["Demo", "LiveResult", "run_serve", "run_tail"]


@dataclass
class Demo:
    """The in-process emulator ``relay tail --demo`` talks to."""

    rate: float = 5.0
    seed: int | None = None


@dataclass
class LiveResult:
    code: ExitCode
    error: str | None = None
    auth_failed: bool = False
    """The server rejected the credentials: the caller knows which options and variables to suggest."""
    stdout_closed: bool = False
    """The reader of stdout went away (``| head``): a normal end, with nothing more to print."""


def _on_signals(task: asyncio.Task[object], ended: dict[str, ExitCode]) -> Callable[[], None]:
    """Turn SIGINT and SIGTERM into a cancellation of ``task``, remembering which exit code they mean."""
    loop = asyncio.get_running_loop()

    def stop(code: ExitCode) -> None:
        ended.setdefault("code", code)
        task.cancel()

    pairs = ((signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED))
    for sig, code in pairs:
        loop.add_signal_handler(sig, stop, code)

    def restore() -> None:
        for sig, _ in pairs:
            loop.remove_signal_handler(sig)

    return restore


async def _tail(session: RelaySession, pipeline: Pipeline, timeout: float | None, demo: Demo | None) -> LiveResult:
    task = asyncio.current_task()
    assert task is not None
    ended: dict[str, ExitCode] = {}
    restore = _on_signals(task, ended)
    result = LiveResult(ExitCode.OK)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if demo is not None:
                emulator = Emulator(project="demo", token="demo", rate=demo.rate, seed=demo.seed)  # noqa: S106
                await stack.enter_async_context(emulator)
                session.config.url = emulator.url
                session.config.credentials = Credentials(project="demo", token="demo")  # noqa: S106
                session.status(f"demo: RELAY emulator on {emulator.url}")
            pipeline.when_idle = asyncio.get_running_loop().call_soon
            try:
                async with asyncio.timeout(timeout):
                    async with contextlib.aclosing(session.events()) as events:
                        async for item in events:
                            try:
                                if not pipeline.feed(item.payload, item.data, item.id):
                                    break
                            except BrokenPipeError:  # the reader of stdout is gone (| head): a normal end
                                result.stdout_closed = True
                                break
            except TimeoutError:
                if session.stats.connects:
                    session.status(f"timed out after {timeout:g} s")
                else:
                    why = f": {session.last_error}" if session.last_error else ""
                    result.code = ExitCode.FAILURE
                    result.error = f"timed out after {timeout:g} s without a session{why}"
            finally:
                await session.close()
    except asyncio.CancelledError:
        if "code" not in ended:
            raise
        task.uncancel()
        result.code = ended["code"]
    except SessionError as exc:
        result.code, result.error, result.auth_failed = ExitCode.FAILURE, str(exc), isinstance(exc, AuthError)
    finally:
        restore()
        pipeline.when_idle = None
        if isinstance(pipeline.output_error, BrokenPipeError):
            result.stdout_closed = True
        if not result.stdout_closed:
            try:
                pipeline.drain()
            except BrokenPipeError:
                result.stdout_closed = True
    return result


def run_tail(session: RelaySession, pipeline: Pipeline, *, timeout: float | None, demo: Demo | None) -> LiveResult:
    """Tail ``session`` into ``pipeline`` until an end condition; ``session.stats`` has its counters."""
    return asyncio.run(_tail(session, pipeline, timeout, demo))


async def _serve(emulator: Emulator, status: Callable[[str], None]) -> LiveResult:
    task = asyncio.current_task()
    assert task is not None
    ended: dict[str, ExitCode] = {}
    restore = _on_signals(task, ended)
    try:
        async with emulator:
            await asyncio.Event().wait()
    except asyncio.CancelledError:
        if "code" not in ended:
            raise
        task.uncancel()
        status("emulator stopped")
        return LiveResult(ended["code"])
    except OSError as exc:
        return LiveResult(ExitCode.FAILURE, f"cannot listen on {emulator.host}:{emulator.port}: {exc.strerror or exc}")
    finally:
        restore()
    return LiveResult(ExitCode.OK)


def run_serve(emulator: Emulator, status: Callable[[str], None]) -> LiveResult:
    """Serve until SIGINT or SIGTERM."""
    return asyncio.run(_serve(emulator, status))
