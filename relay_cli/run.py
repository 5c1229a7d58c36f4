"""Running the live commands: a session (or the in-process emulator) into the pipeline, until told to stop.

This is where the ways a live run can end meet: ``--count``, ``--timeout``, Ctrl-C, SIGTERM, rejected
credentials, a closed stdout (``relay tail | head -1``). Each ends the same way: the socket closed
cleanly, the recording flushed, an exit code; what went wrong is raised, once all that is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay_cli.errors import ExitCode, RelayError
from relay_cli.pipeline.stages import Pipeline
from relay_cli.session import Credentials, RelaySession, SessionConfig, SessionError, SessionStats

if TYPE_CHECKING:
    from relay_cli.emulator import Emulator

__all__ = ["Demo", "LiveTail", "run_serve"]

_DEMO_CREDENTIALS = Credentials(project="demo", token="demo")  # noqa: S106


@dataclass(frozen=True)
class Demo:
    """``relay tail --demo``: a session of an in-process emulator, with no account and no network.

    The emulator serves no app, so its calls are kept (not passed back to routing), to show what an app's
    session sees; with no context given, the session takes the emulator's traffic on ``default``.
    """

    rate: float = 5.0
    seed: int | None = None

    def config(self, contexts: Sequence[str]) -> SessionConfig:
        """The session's config. The emulator listens on a loopback port of its own choosing: the URL is
        completed once it does."""
        return SessionConfig(
            url="ws://127.0.0.1",
            credentials=_DEMO_CREDENTIALS,
            contexts=list(contexts) or ["default"],
            pass_calls=False,
        )

    def emulator(self) -> Emulator:
        from relay_cli.emulator import Emulator  # here: only --demo needs it, and it costs start-up time

        return Emulator(
            project=_DEMO_CREDENTIALS.project, token=_DEMO_CREDENTIALS.token, rate=self.rate, seed=self.seed
        )


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


class LiveTail:
    """``relay tail``: a session of ``config`` (or of ``demo``'s emulator) into ``pipeline``, until an end.

    ``session`` makes the session from its config (with the caller's sinks for status lines and problems);
    :attr:`stats` has its counters, also after :meth:`run` raised.
    """

    def __init__(
        self,
        config: SessionConfig,
        pipeline: Pipeline,
        *,
        session: Callable[[SessionConfig], RelaySession],
        timeout: float | None = None,
        demo: Demo | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.timeout = timeout
        self.demo = demo
        self.stats = SessionStats()
        self._session = session

    def run(self) -> ExitCode:
        """Run until ``--count``, the timeout, a signal (130, 143) or a closed stdout (0); raise
        :class:`SessionError` when no session could be had, after the socket is closed and the output drained."""
        return asyncio.run(self._run())

    async def _run(self) -> ExitCode:
        task = asyncio.current_task()
        assert task is not None
        ended: dict[str, ExitCode] = {}
        restore = _on_signals(task, ended)
        pipeline = self.pipeline
        stdout_closed = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                config = self.config
                if self.demo is not None:
                    emulator = self.demo.emulator()
                    await stack.enter_async_context(emulator)
                    config = dataclasses.replace(config, url=emulator.url)
                session = self._session(config)
                self.stats = session.stats
                if self.demo is not None:
                    session.status(f"demo: RELAY emulator on {config.url}")
                pipeline.when_idle = asyncio.get_running_loop().call_soon
                try:
                    stdout_closed = await self._feed(session)
                except TimeoutError:
                    if not session.stats.connects:
                        why = f": {session.last_error}" if session.last_error else ""
                        raise SessionError(f"timed out after {self.timeout:g} s without a session{why}") from None
                    session.status(f"timed out after {self.timeout:g} s")
                finally:
                    await session.close()
        except asyncio.CancelledError:
            if "code" not in ended:
                raise
            task.uncancel()
            return ended["code"]
        finally:
            restore()
            pipeline.when_idle = None
            if not stdout_closed and not isinstance(pipeline.output_error, BrokenPipeError):
                with contextlib.suppress(BrokenPipeError):
                    pipeline.drain()
        return ExitCode.OK

    async def _feed(self, session: RelaySession) -> bool:
        """Every event into the pipeline, until it has shown enough; say whether the reader of stdout went away."""
        async with asyncio.timeout(self.timeout):
            async with contextlib.aclosing(session.events()) as events:
                async for item in events:
                    try:
                        if not self.pipeline.feed(item.payload, item.data, item.id):
                            break
                    except BrokenPipeError:  # the reader of stdout is gone (| head): a normal end
                        return True
        return False


async def _serve(emulator: Emulator, status: Callable[[str], None]) -> ExitCode:
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
        return ended["code"]
    except OSError as exc:
        raise RelayError(f"cannot listen on {emulator.host}:{emulator.port}: {exc.strerror or exc}") from None
    finally:
        restore()
    return ExitCode.OK


def run_serve(emulator: Emulator, status: Callable[[str], None]) -> ExitCode:
    """Serve until SIGINT or SIGTERM; raise :class:`RelayError` when the emulator cannot listen."""
    return asyncio.run(_serve(emulator, status))
