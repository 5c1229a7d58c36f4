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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import orjson

from relay_cli.errors import ExitCode, RelayError
from relay_cli.lifecycles import ENDED, INBOUND_MESSAGE, MESSAGE
from relay_cli.outbuf import OutBuffer, OutputError
from relay_cli.pipeline.recording import FrameRecorder, RecordingError
from relay_cli.pipeline.stages import Pipeline
from relay_cli.protocol import ConnectionNumbers, Kind, RecordedClose
from relay_cli.session import Credentials, RelaySession, SessionConfig, SessionError, SessionStats
from relay_cli.views.text import escape, short, with_reason

if TYPE_CHECKING:
    from relay_cli.emulator import Emulator
    from relay_cli.emulator.playback import Recording
    from relay_cli.emulator.sessions import Peer
    from relay_cli.proxy import Link, Proxy
    from relay_cli.views.frames import FrameView
    from relay_cli.views.proxy import ProxyView

__all__ = [
    "ControlPlane",
    "Demo",
    "FramePrinter",
    "JournalRecorder",
    "LiveTail",
    "ProxyWatch",
    "follow_call",
    "follow_message",
    "load_playback",
    "run_proxy",
    "run_serve",
]

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


class FramePrinter:
    """Every frame the emulator journals, through a :class:`~relay_cli.views.frames.FrameView`, onto stdout.

    It is a journal observer, so it runs on the emulator's hot path and must never block or raise: lines go to
    an :class:`~relay_cli.outbuf.OutBuffer`, a full buffer leaves frames out (counted in :attr:`hidden`), and a
    closed stdout (``relay serve | head``) or a failed write stops the printing and asks the run to end.
    """

    def __init__(self, view: FrameView, output: OutBuffer) -> None:
        self.view = view
        self.output = output
        self.hidden = 0
        self.error: OutputError | None = None
        self.closed = False
        """The reader of stdout went away, or a write failed: nothing more is printed."""
        self.on_closed: Callable[[], None] = lambda: None

    def observe(
        self, direction: str, at: float, connection: str, session: str, kind: Kind | None, raws: Sequence[bytes]
    ) -> None:
        if self.closed:
            return
        view, write = self.view, self.output.write
        try:
            for raw in raws:
                line = view(direction, at, connection, kind, raw)
                if line and not write(line):
                    self.hidden += 1
        except BrokenPipeError:
            self._close()
        except OutputError as exc:
            self.error = exc
            self._close()

    def _close(self) -> None:
        self.closed = True
        self.on_closed()

    def close(self) -> None:
        """Write what is buffered: at most a second more (a run ends on a signal or a closed stdout)."""
        self.output.close(limit=1.0)
        if self.output.error is not None and self.error is None:
            self.error = OutputError.of(self.output.error)


class JournalRecorder:
    """Every frame the emulator journals, both ways, into a two-way recording (``relay serve --record``).

    A journal observer, on the emulator's hot path, so it never raises: a burst of events (one journal entry) is
    one ``write(2)``; a failed write (a full disk) stops the recording, keeps the error in :attr:`error` for the
    run to report, and asks the run to end, as a closed stdout does for :class:`FramePrinter`. ``numbers`` names
    the connections: the printer's own, when frames are printed too, so the two agree.
    """

    def __init__(self, recorder: FrameRecorder, numbers: ConnectionNumbers) -> None:
        self.recorder = recorder
        self.numbers = numbers
        self.error: RecordingError | None = None
        self.on_closed: Callable[[], None] = lambda: None

    def observe(
        self, direction: str, at: float, connection: str, session: str, kind: Kind | None, raws: Sequence[bytes]
    ) -> None:
        if self.error is not None:
            return
        try:
            self.recorder.write_many(direction, at, self.numbers(connection), raws)
        except RecordingError as exc:
            self.error = exc
            self.on_closed()

    def closed(self, peer: Peer, at: float, code: int | None, reason: str, detail: str) -> None:
        """An ``Emulator.on_close`` observer: a connection's end, for a connection with frames recorded."""
        number = self.numbers.known(peer.id)
        if self.error is not None or number is None:
            return
        try:
            self.recorder.closed(RecordedClose(at, number, code, reason, detail))
        except RecordingError as exc:
            self.error = exc
            self.on_closed()


async def _serve(
    emulator: Emulator,
    status: Callable[[str], None],
    started: Callable[[], None],
    printer: FramePrinter | None,
    recorder: JournalRecorder | None = None,
) -> ExitCode:
    task = asyncio.current_task()
    assert task is not None
    ended: dict[str, ExitCode] = {}
    restore = _on_signals(task, ended)
    stop = asyncio.Event()
    if recorder is not None:
        later = asyncio.get_running_loop().call_soon

        def unwritable() -> None:
            later(stop.set)  # not from inside the journal's loop over its observers

        recorder.on_closed = unwritable
    if printer is not None:
        loop = asyncio.get_running_loop()

        def closed() -> None:
            loop.call_soon(stop.set)  # not from inside the journal's loop over its observers

        printer.on_closed = closed

        def unread() -> None:
            loop.call_soon_threadsafe(stop.set)

        printer.output.on_end = unread
        if printer.output.broken or printer.output.error is not None:
            stop.set()
    try:
        async with emulator:
            started()
            await stop.wait()
    except asyncio.CancelledError:
        if "code" not in ended:
            raise
        task.uncancel()
        status("emulator stopped")
        return ended["code"]
    except UnicodeError:  # a host name no resolver takes (an empty or too long label)
        raise RelayError(f"cannot listen on {emulator.host[:100]!r}: not a valid host name") from None
    except OSError as exc:
        control = getattr(emulator, "control_port", None)
        plane = " (the control plane)" if control and f", {control})" in (exc.strerror or str(exc)) else ""
        port = control if plane else emulator.port
        raise RelayError(f"cannot listen on {emulator.host}:{port}{plane}: {_unbound(exc)}") from None
    finally:
        restore()
    failed = printer is not None and printer.error is not None
    return ExitCode.FAILURE if failed or (recorder is not None and recorder.error is not None) else ExitCode.OK


def _unbound(exc: OSError) -> str:
    """Why an address could not be listened on, in the errno's own words: asyncio's message repeats the address,
    as a Python tuple."""
    import os

    return os.strerror(exc.errno) if isinstance(exc.errno, int) and exc.errno > 0 else exc.strerror or str(exc)


def run_serve(
    emulator: Emulator,
    status: Callable[[str], None],
    *,
    started: Callable[[], None] = lambda: None,
    printer: FramePrinter | None = None,
    recorder: JournalRecorder | None = None,
) -> ExitCode:
    """Serve until SIGINT or SIGTERM, until the reader of the printed frames goes away (exit 0), or until the
    recording fails (exit 1); ``started`` is called once listening. Raise :class:`RelayError` when the emulator
    cannot listen."""
    return asyncio.run(_serve(emulator, status, started, printer, recorder))


def load_playback(path: str, problem: Callable[[str, str], None]) -> Recording:
    """The two-way recording ``relay serve --playback`` plays, read as every recording is; bad lines go to
    ``problem`` (``FILE:LINE``, message). Raise :class:`RelayError` when it cannot be read or holds no frame."""
    from relay_cli.emulator.playback import Recording
    from relay_cli.pipeline.reader import Source, recorded_frames

    source = Source(path)
    lines = (
        (at, v if v is None or isinstance(v, tuple) else v.message)
        for at, v in recorded_frames(source)
        if not isinstance(v, RecordedClose)  # the app ends its own connections
    )
    return Recording.read(source.name, lines, problem)


# -- relay proxy ---------------------------------------------------------------------------------------------

TICK = 0.25
"""Seconds between two looks for events whose ACK is overdue: a flagged line is at most this late."""


class ProxyWatch:
    """What ``relay proxy`` does with every frame it forwards and every connection it opens or ends.

    The proxy calls :meth:`frame` on its hot path, just before it forwards the frame, so nothing here blocks or
    raises. The frame is recorded before it is forwarded: one that reached the other side is on disk, whatever
    happens next. It is shown through the view into an :class:`~relay_cli.outbuf.OutBuffer`: a stuck reader of stdout
    leaves lines out (counted in :attr:`hidden`), and never stalls the app's session. What ends the run (a
    recording that cannot be written, a failed or closed stdout) calls :attr:`on_end`, with the error kept in
    :attr:`error`. A ``--call-id`` prefix found to match two calls only warns: watching must never end the app's
    session.
    """

    def __init__(
        self,
        view: ProxyView,
        output: OutBuffer | None,
        recorder: FrameRecorder | None,
        status: Callable[[str], None],
        warn: Callable[[str], None],
    ) -> None:
        self.view = view
        self.output = output
        self.recorder = recorder
        self.status = status
        self.warn = warn
        self.error: RelayError | None = None
        self.hidden = 0
        """Lines left out while stdout was blocked."""
        self.on_end: Callable[[], None] = lambda: None
        self._shown = output is not None
        self._warned = False

    def frame(self, direction: str, at: float, connection: int, data: bytes, text: bool) -> None:
        """Hot path: every frame, before it is forwarded; decoded once, by the view, for the recording too."""
        lines = self.view.frame(direction, at, connection, data, text)
        if self.recorder is not None:
            seen = self.view.last
            decoded = seen.frame if seen is not None else None
            self._record(self.recorder.write, direction, at, connection, data, text, decoded)
        self._show(lines)
        if self.view.error is not None and not self._warned:
            self._warned = True  # the view hides the second call's frames; the app's session goes on regardless
            self.warn(f"{self.view.error}: its frames are hidden from now on")

    def link(self, link: Link) -> None:
        """A connection opened, was refused its upstream, or closed: a status line, and the view is told."""
        number = f"#{link.connection}"
        if link.what == "open":
            self.status(f"{number} app {link.peer} connected → {link.detail}")
        elif link.what == "refused":
            self.warn(f"{number} app {link.peer} turned away (HTTP 502): cannot reach RELAY: {link.detail}")
        else:
            code = f" ({link.code}{' ' + link.reason if link.reason else ''})" if link.code is not None else ""
            self.status(f"{number} closed {link.detail}{code}")
            if self.recorder is not None:
                self._record(
                    self.recorder.closed, RecordedClose(link.at, link.connection, link.code, link.reason, link.detail)
                )
        self._show(self.view.link(link))

    def _record(self, write: Callable[..., None], *args: Any) -> None:
        """One line of the recording; a failed write (a full disk) stops the recording and ends the run."""
        try:
            write(*args)
        except RecordingError as exc:
            self.recorder = None
            self._end(exc)

    def tick(self) -> None:
        """Flag the events whose ACK is overdue."""
        self._show(self.view.tick(time.time()))

    def close(self) -> None:
        """Show what the view still holds, then write what is buffered: at most a second more."""
        self._show(self.view.finish())
        if self.output is not None:
            self.output.close(limit=1.0)
            if self.output.error is not None and self.error is None:
                self.error = OutputError.of(self.output.error)

    def _show(self, lines: bytes) -> None:
        if not lines or not self._shown:
            return
        assert self.output is not None
        try:
            if not self.output.write(lines):
                self.hidden += lines.count(b"\n")
        except BrokenPipeError:  # the reader of stdout went away (relay proxy | head): a normal end
            self._shown = False
            self.on_end()
        except OutputError as exc:
            self._shown = False
            self._end(exc)

    def _end(self, error: RelayError) -> None:
        if self.error is None:
            self.error = error
        self.on_end()


async def _proxy(proxy: Proxy, watch: ProxyWatch, started: Callable[[], None]) -> ExitCode:
    task = asyncio.current_task()
    assert task is not None
    ended: dict[str, ExitCode] = {}
    restore = _on_signals(task, ended)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def end() -> None:
        loop.call_soon_threadsafe(stop.set)  # from the proxy's callbacks, or from the output's writer thread

    watch.on_end = end
    if watch.output is not None:
        watch.output.on_end = end
    try:
        async with proxy:
            started()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK)
                watch.tick()
    except asyncio.CancelledError:
        if "code" not in ended:
            raise
        task.uncancel()
        return ended["code"]
    except UnicodeError:  # a host name no resolver takes (an empty or too long label)
        raise RelayError(f"cannot listen on {proxy.host[:100]!r}: not a valid host name") from None
    except OSError as exc:
        raise RelayError(f"cannot listen on {proxy.host}:{proxy.port}: {_unbound(exc)}") from None
    finally:
        restore()
    return ExitCode.FAILURE if watch.error is not None else ExitCode.OK


def run_proxy(proxy: Proxy, watch: ProxyWatch, *, started: Callable[[], None] = lambda: None) -> ExitCode:
    """Forward until SIGINT or SIGTERM (130, 143), until the reader of stdout goes away (0), or until the watch
    fails (1; its error in ``watch.error``); ``started`` is called once listening. Raise :class:`RelayError` when
    the proxy cannot listen."""
    return asyncio.run(_proxy(proxy, watch, started))


# -- relay call, relay message: asking a running relay serve ------------------------------------------------

POLL_INTERVAL = 0.1
"""Seconds between two looks at a call or message followed by ``--wait``."""
_HTTP_TIMEOUT = 10.0


class ControlPlane:
    """The HTTP control plane of a running ``relay serve``, at ``url`` (``http://host:port``): JSON in, JSON out.

    Every failure is a :class:`RelayError` of one line: nobody listening, no answer, an answer that is not
    the control plane's, or the control plane's own ``{"error": ...}``.
    """

    def __init__(self, url: str, timeout: float = _HTTP_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")

    def post(self, path: str, body: dict[str, Any], *, what: str) -> dict[str, Any]:
        status, answer = self._request("POST", path, body)
        if status >= 400:
            raise RelayError(f"relay serve refused {what}: {_error_of(answer, status)}")
        return answer

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        status, answer = self.request(method, path, body)
        if not isinstance(answer, dict):
            raise RelayError(f"{self.url} is not relay serve's control plane: HTTP {status} without JSON")
        return status, answer

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request and its answer: the HTTP status and the decoded JSON (None when the body is not JSON)."""
        import http.client  # here: only relay call and relay message need it

        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = kind(self._host, self._port, timeout=self.timeout)
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"} if data is not None else {}
        try:
            conn.request(method, self._prefix + path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read(2**20 + 1)
        except ConnectionRefusedError:
            raise RelayError(f"no relay serve control plane at {self.url}: connection refused") from None
        except TimeoutError:
            raise RelayError(f"no answer from {self.url} within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException, UnicodeError) as exc:  # UnicodeError: a host no resolver takes
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise RelayError(f"no relay serve control plane at {self.url}: {why}") from None
        finally:
            conn.close()
        try:
            return response.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return response.status, None


def _error_of(answer: dict[str, Any], status: int) -> str:
    error = answer.get("error")
    return escape(str(error)) if error else f"HTTP {status}"


def _follow(
    plane: ControlPlane, path: str, what: str, final: Callable[[str], bool], say: Callable[[str], None]
) -> dict[str, Any]:
    """Look at ``path`` until its state is final; say each new state; the last answer."""
    said = ""
    while True:
        status, answer = plane.get(path)
        if status == 404:
            raise RelayError(f"relay serve no longer knows {what}: {_error_of(answer, status)}")
        if status >= 400:
            raise RelayError(f"relay serve cannot say how {what} is: {_error_of(answer, status)}")
        state = escape(str(answer.get("state") or "?"))
        if state != said:
            said = state
            if not final(state):
                say(f"{what}: {state}")
        if final(state):
            return answer
        time.sleep(POLL_INTERVAL)


def follow_call(plane: ControlPlane, call_id: str, status: Callable[[str], None]) -> bool:
    """Follow a call until it ended; say its states on ``status``; whether it was answered."""
    what = f"call {short(call_id)}"
    final = _follow(
        plane,
        f"/relay/calls/{quote(call_id, safe='')}",
        what,
        lambda state: state == ENDED,
        status,
    )
    reason = final.get("end_reason")
    ended = with_reason(ENDED, reason)
    if final.get("answered") is True:
        status(f"{what}: answered, {ended}")
        return True
    status(f"{what}: {ended} unanswered")
    return False


def follow_message(plane: ControlPlane, message_id: str, status: Callable[[str], None]) -> bool:
    """Follow a message until its final state; say its states on ``status``; whether it was delivered."""
    what = f"message {short(message_id)}"
    final = _follow(
        plane,
        f"/relay/messages/{quote(message_id, safe='')}",
        what,
        lambda state: state in _MESSAGE_FINAL,
        status,
    )
    state = final.get("state")
    told = with_reason(state, final.get("reason"))
    status(f"{what}: {told}")
    return state not in MESSAGE.failed


_MESSAGE_FINAL = frozenset((*MESSAGE.final, *INBOUND_MESSAGE.final))
