"""What ``relay_server`` is: an emulator on a thread of its own, and the test's hold on it through the control plane.

The emulator runs in app mode (``relay serve``'s default traffic) on its own thread and event loop, so a plain
``def`` test, a test that runs ``asyncio.run``, and an asyncio test plugin's loop all reach it alike, and an SDK
app on the test's loop runs while the emulator answers it. Everything the test asks goes through the control plane
over HTTP, the routes ``relay call`` and ``relay message`` use, so the test sees what a user of ``relay serve`` would.

Every wait has a sync form (blocking, refused inside a running event loop, where it would stall the app) and an
async one. A wait that times out raises :class:`RelayTimeout`, an ``AssertionError`` that names what was awaited
and shows the journal's last frames.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import ssl
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from relay_cli.emulator import Emulator
from relay_cli.emulator.control import DEFAULT_FROM
from relay_cli.emulator.sessions import Mode
from relay_cli.errors import RelayError
from relay_cli.run import ControlPlane
from relay_cli.testing.handles import CallHandle, MessageHandle
from relay_cli.testing.journal import Journal, Where, describe
from relay_cli.testing.waiting import DEFAULT_TIMEOUT, RelayTimeout, apoll, not_in_loop, poll

__all__ = ["DEFAULT_SPEED", "RelayServer", "Tls"]

__tracebackhide__ = True  # failures point at the test's line, never at the plugin's insides

DEFAULT_SPEED = 20.0
"""Simulated seconds per real second: a 30 s call takes 1.5 s."""
PROJECT = "relay-test-project"
TOKEN = "relay-test-token"  # noqa: S105 (what the fixture accepts, not a secret)
_HTTP_TIMEOUT = 10.0
_START_TIMEOUT = 15.0
_SHOWN = 10
"""Journal frames a failure shows."""


@dataclass(frozen=True)
class Tls:
    """The session's local CA (its certificate is what apps trust) and the server context signed by it."""

    ca_file: str
    context: ssl.SSLContext


class RelayServer:
    """An emulator for one test: where an app connects, far ends to start, the journal to read and wait on."""

    def __init__(
        self,
        tls: Tls,
        *,
        speed: float = DEFAULT_SPEED,
        seed: int = 0,
        mode: Mode = "app",
        host: str = "127.0.0.1",
    ) -> None:
        self.tls = tls
        self.speed = speed
        self.seed = seed
        self.mode = mode
        self.project = PROJECT
        self.token = TOKEN
        self.ca_file = tls.ca_file
        self.host = ""
        """``127.0.0.1:PORT``: the SDK's ``host=`` (it dials ``wss://`` + host)."""
        self.url = ""
        self.control_url = ""
        self.log: deque[str] = deque(maxlen=200)
        """The emulator's log lines, the most recent last."""
        self._bind = host
        self._thread: _EmulatorThread | None = None
        self._apps: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return

        def make() -> Emulator:
            return Emulator(
                host=self._bind,
                port=0,
                ssl=self.tls.context,
                project=self.project,
                token=self.token,
                mode=self.mode,
                speed=self.speed,
                seed=self.seed,
                control_port=0,
                log=self.log.append,
            )

        self._thread = _EmulatorThread(make)
        emulator = self._thread.start(_START_TIMEOUT)
        port = emulator.url.rsplit(":", 1)[1]
        self.host = f"{self._bind}:{port}"
        self.url = emulator.url
        self.control_url = emulator.control_url

    def stop(self) -> None:
        for _, proc, _ in self._apps:
            _end_process(proc)
        for _, _, out in self._apps:
            out.close()
        self._apps.clear()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    @property
    def env(self) -> dict[str, str]:
        """The variables an app run as a subprocess needs (the SDK reads them), and ``RELAY_CONTROL`` for
        ``relay call``/``relay message``; pass ``{**os.environ, **relay_server.env}``."""
        return {
            "SIGNALWIRE_SPACE": self.host,
            "SIGNALWIRE_RELAY_CA_FILE": self.ca_file,
            "SIGNALWIRE_PROJECT_ID": self.project,
            "SIGNALWIRE_API_TOKEN": self.token,
            "RELAY_CONTROL": self.control_url,
        }

    # -- far ends ----------------------------------------------------------------------------------------

    def call(
        self,
        to: str,
        from_: str | None = None,
        context: str = "default",
        *,
        press: str | None = None,
        say: str | None = None,
        hangup_after: float | None = None,
        machine: bool = False,
        fax: bool = False,
    ) -> CallHandle:
        """A far end calls ``to`` on ``context`` (as ``relay call``): it presses ``press`` when prompted for digits
        (the default far end presses ``1``; ``""`` presses nothing), says ``say``, hangs up ``hangup_after``
        simulated seconds after the answer. Left out: the far-end rules' default."""
        body: dict[str, Any] = {"to_number": to, "context": context}
        if from_ is not None:
            body["from_number"] = from_
        for name, value in (("press", press), ("say", say), ("hangup_after", hangup_after)):
            if value is not None:
                body[name] = value
        if machine:
            body["machine"] = True
        if fax:
            body["fax"] = True
        placed = self._post("/relay/calls", body, "relay_server.call")
        return CallHandle(self, placed["call_id"], to, from_ or DEFAULT_FROM, list(placed.get("sent_to") or []))

    def message(
        self, to: str, from_: str = DEFAULT_FROM, body: str = "hello", context: str = "default"
    ) -> MessageHandle:
        """A far end ``from_`` sends ``to`` a message on ``context`` (as ``relay message``)."""
        sent = self._post(
            "/relay/messages",
            {"to_number": to, "from_number": from_, "body": body, "context": context},
            "relay_server.message",
        )
        return MessageHandle(self, sent["message_id"], to, from_, body)

    def far_ends(self, rules: Mapping[str, Any] | None = None, *, replace: bool = False) -> dict[str, Any]:
        """The rules for the numbers the app dials or messages: ``{"default": {...}, "numbers": {number: {...}}}``.

        With ``rules`` they are merged in (``replace``: they replace all); the rules in force are returned.
        """
        if rules is None:
            return self._get("/relay/far_ends", "the far-end rules")
        method = "PUT" if replace else "POST"
        return self._send(method, "/relay/far_ends", dict(rules), "relay_server.far_ends")

    def far_end(self, number: str, **script: Any) -> dict[str, Any]:
        """One number's rule: ``far_end("+15550001001", answer="busy")``; fields as in ``relay serve --far-ends``
        (answer, answer_after, press, say, machine, fax, hangup_after, message)."""
        return self.far_ends({"numbers": {number: script}})

    # -- what happened -----------------------------------------------------------------------------------

    def journal(self, session_id: str | None = None) -> Journal:
        """Every frame both ways so far, oldest first, in ``mock_relay``'s shape (of one session, if named)."""
        path = "/__mock__/journal" + (f"?session_id={quote(session_id, safe='')}" if session_id else "")
        entries = self._request("GET", path, None, "the journal")
        return Journal(entries if isinstance(entries, list) else [])

    def reset_journal(self) -> None:
        self._post("/__mock__/journal/reset", {}, "relay_server.reset_journal")

    def sessions(self) -> list[dict[str, Any]]:
        """The connected sessions: ``{id, connection_id, connected_at, peer_addr, protocol_string}``."""
        return list(self._get("/__mock__/sessions", "the sessions").get("sessions", []))

    def calls(self) -> list[dict[str, Any]]:
        """Every call's status (inbound and the legs the app dialled or connected), the most recent last."""
        return list(self._get("/relay/calls", "the calls").get("calls", []))

    def messages(self) -> list[dict[str, Any]]:
        """Every message's status, both directions, the most recent last."""
        return list(self._get("/relay/messages", "the messages").get("messages", []))

    def frames(self, last: int = _SHOWN) -> str:
        """The journal's last frames as ``relay serve`` shows them."""
        return "\n".join(self.journal().lines(last))

    # -- waiting -----------------------------------------------------------------------------------------

    def wait_for(
        self,
        *,
        method: str | None = None,
        event_type: str | None = None,
        where: Where = None,
        count: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Block until the journal holds ``count`` requests of ``method`` from the app (or events of ``event_type``
        to it) whose params match ``where``; the ``count``-th such entry. Patterns like ``"calling.play*"`` work."""
        not_in_loop("relay_server.wait_for()", "await relay_server.wait_for_async()")
        check, fail = self._waiter(method, event_type, where, count)
        return poll(check, timeout, fail)

    async def wait_for_async(
        self,
        *,
        method: str | None = None,
        event_type: str | None = None,
        where: Where = None,
        count: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """:meth:`wait_for` in a coroutine."""
        check, fail = self._waiter(method, event_type, where, count)
        return await apoll(check, timeout, fail)

    def wait_for_app(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Block until ``count`` sessions are connected; the sessions."""
        not_in_loop("relay_server.wait_for_app()", "await relay_server.wait_for_app_async()")
        return poll(lambda: self._connected(count), timeout, lambda t: self._no_app(count, t))

    async def wait_for_app_async(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        return await apoll(lambda: self._connected(count), timeout, lambda t: self._no_app(count, t))

    @contextlib.contextmanager
    def app(
        self,
        *command: str | os.PathLike[str],
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Iterator[subprocess.Popen[bytes]]:
        """Run ``command`` (an app) with :attr:`env` set, until it has connected; stop it on leaving the block.

        Its output is kept and shown when the app exits before connecting, or when the test fails.
        """
        not_in_loop("relay_server.app()", "a subprocess of your own and await relay_server.wait_for_app_async()")
        args = [os.fspath(c) for c in command]
        if not args:
            raise TypeError("relay_server.app: give the command to run, e.g. app(sys.executable, 'app.py')")
        before = len(self.sessions())
        out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop(), after the failure report read it)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})}
        proc = subprocess.Popen(  # noqa: S603 (the test's own command)
            args, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        name = " ".join(args)
        self._apps.append((name, proc, out))
        try:

            def connected() -> list[dict[str, Any]] | None:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"relay_server.app: {name} exited with {proc.returncode} before it connected;"
                        f" its output:\n{_tail(out)}"
                    )
                return self._connected(before + 1)

            poll(connected, timeout, lambda t: self._no_app(before + 1, t, name))
            yield proc
        finally:
            _end_process(proc)

    # -- a failure's report ---------------------------------------------------------------------------------

    def describe(self, frames: bool = True) -> str:
        """What a failed test shows: the server, its seed, the journal's last frames (unless ``frames`` is false:
        a timeout's message showed them), the log, the apps' output."""
        parts = [self._identity()]
        try:
            journal = self.journal() if frames else None
        except Exception as exc:  # the report must not fail the report
            parts.append(f"(journal unavailable: {exc})")
        else:
            if journal is not None:
                parts.append(_frames_text(journal, 20))
        if self.log:
            parts.append("emulator log (last lines):\n" + "\n".join(f"  {line}" for line in list(self.log)[-10:]))
        for name, proc, out in self._apps:
            state = "running" if proc.poll() is None else f"exited with {proc.returncode}"
            parts.append(f"app {name} ({state}), its output:\n{_tail(out)}")
        return "\n".join(parts)

    # -- inside ------------------------------------------------------------------------------------------

    def _identity(self) -> str:
        return (
            f"relay_server: seed {self.seed}, speed {self.speed:g}, mode {self.mode}; app at wss://{self.host},"
            f" control plane at {self.control_url} (rerun with @pytest.mark.relay(seed={self.seed}))"
        )

    def timed_out(self, what: str) -> RelayTimeout:
        """The failure of a wait for ``what``: it says what, and shows the journal's last frames and the seed."""
        try:
            journal = self.journal()
        except Exception:
            journal = Journal()
        return RelayTimeout(f"{what}\n{_frames_text(journal, _SHOWN)}\n{self._identity()}")

    def _waiter(
        self, method: str | None, event_type: str | None, where: Where, count: int
    ) -> tuple[Callable[[], dict[str, Any] | None], Callable[[float], RelayTimeout]]:
        if (method is None) == (event_type is None):
            raise TypeError("relay_server.wait_for: give method= (a request from the app) or event_type= (an event)")
        if count < 1:
            raise ValueError("relay_server.wait_for: count must be 1 or more")
        what = describe(method, event_type, where)

        def found() -> list[dict[str, Any]]:
            journal = self.journal()
            if method is not None:
                return journal.requests(method, where=where)
            return journal.events(event_type, where=where)

        def check() -> dict[str, Any] | None:
            entries = found()
            return entries[count - 1] if len(entries) >= count else None

        def fail(timeout: float) -> RelayTimeout:
            seen = len(found())
            if count == 1:
                return self.timed_out(f"relay_server.wait_for: no {what[what.index(' ') + 1 :]} within {timeout:g} s")
            return self.timed_out(f"relay_server.wait_for: {seen} of the {count} awaited ({what}) within {timeout:g} s")

        return check, fail

    def _connected(self, count: int) -> list[dict[str, Any]] | None:
        sessions = self.sessions()
        return sessions if len(sessions) >= count else None

    def _no_app(self, count: int, timeout: float, name: str = "") -> RelayTimeout:
        who = name or "the app"
        now = len(self.sessions())
        return self.timed_out(
            f"{who} did not connect within {timeout:g} s ({now} session(s), {count} awaited): does it use"
            f" relay_server.env (SIGNALWIRE_SPACE={self.host})?"
        )

    def _get(self, path: str, what: str) -> dict[str, Any]:
        answer = self._request("GET", path, None, what)
        return answer if isinstance(answer, dict) else {}

    def _post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        return self._send("POST", path, body, what)

    def _send(self, method: str, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        answer = self._request(method, path, body, what)
        return answer if isinstance(answer, dict) else {}

    def _request(self, method: str, path: str, body: dict[str, Any] | None, what: str) -> Any:
        if not self.control_url:
            raise RuntimeError("relay_server is not running (used after its test ended?)")
        try:
            status, answer = ControlPlane(self.control_url, timeout=_HTTP_TIMEOUT).request(method, path, body)
        except RelayError as exc:
            raise RuntimeError(f"relay_server's control plane did not answer {what}: {exc}") from None
        if status >= 400:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise ValueError(f"{what}: {error or f'HTTP {status}'}")
        return answer


class _EmulatorThread:
    """One emulator on a thread with its own event loop, from start to stop."""

    def __init__(self, make: Callable[[], Emulator]) -> None:
        self._make = make
        self._ready: concurrent.futures.Future[Emulator] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="relay_server", daemon=True)

    def start(self, timeout: float) -> Emulator:
        self._thread.start()
        return self._ready.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        emulator = self._make()
        await emulator.start()
        self._ready.set_result(emulator)
        try:
            await self._stop.wait()
        finally:
            await emulator.close()


def _frames_text(journal: Journal, last: int) -> str:
    if not journal:
        return (
            "the journal is empty: no app has connected (connect with host=relay_server.host, or run the app"
            " with relay_server.env)"
        )
    lines = journal.lines(last)
    head = f"the journal's last {len(lines)} frames of {len(journal)} (ACKs and pings left out):"
    return "\n".join([head, *(f"  {line}" for line in lines)])


def _end_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _tail(out: IO[bytes], lines: int = 30) -> str:
    with contextlib.suppress(OSError, ValueError):
        out.seek(0)
        text = out.read().decode("utf-8", "replace").splitlines()[-lines:]
        out.seek(0, os.SEEK_END)
        return "\n".join(f"  {line}" for line in text) or "  (nothing)"
    return "  (unavailable)"
