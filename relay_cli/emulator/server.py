"""The emulator on real sockets: asyncio and websockets around the sans-I/O :class:`EmulatorCore`.

This module only moves bytes and keeps time: it accepts sockets, hands each frame to the core and writes what
the core returns, paces the demo stream, sends pings, wakes the core's timers, and injects the faults a test
asks for (an abrupt drop, a ``signalwire.disconnect``, raw frames, a half-open socket). Bursts of events go out
in one write through :mod:`relay_cli.burst`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.protocol import State

from relay_cli.burst import BurstServerConnection
from relay_cli.emulator.control import ControlPlane
from relay_cli.emulator.http import ControlServer
from relay_cli.emulator.journal import JOURNAL_SIZE, Journal
from relay_cli.emulator.playback import Playback, Recording
from relay_cli.emulator.sessions import (
    RING_TIMEOUT,
    EmulatorCore,
    EmulatorStats,
    Mode,
    Peer,
    Session,
    reply_id,
)
from relay_cli.protocol import APP_TO_RELAY, INVALID_REQUEST, MAX_FRAME, RELAY_TO_APP, FrameError, Kind, classify, error

__all__ = ["CONNECT_TIMEOUT", "DISCONNECT_GRACE", "Emulator"]

CONNECT_TIMEOUT = 10.0
"""Seconds a new socket has to send ``signalwire.connect`` before it is closed."""
DISCONNECT_GRACE = 2.0
"""Seconds ``send_disconnect`` waits for the client's reply before closing anyway."""
# Events sent back to back before the pump lets the reader handle ACKs, when rate is 0.
_BURST = 64


class _Gone(Exception):
    """The connection closed while waiting for ``thaw()``."""


class _Conn(Peer):
    """One socket and the tasks feeding it."""

    def __init__(self, ws: BurstServerConnection, live: asyncio.Event) -> None:
        address = ws.remote_address
        super().__init__(f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "client")
        self.ws = ws
        self.live = live
        self.tasks: list[asyncio.Task[None]] = []
        self.replied = asyncio.Event()
        self.done = asyncio.Event()
        self.held: list[bytes] = []
        """Frames written synchronously while frozen, sent on thaw()."""
        self.connected_at = time.time()
        self.aborted = False
        """The server dropped it (no close frame either way): a drop by RELAY, not by the app."""

    def abort(self) -> None:
        self.aborted = True
        self.ws.transport.abort()

    def write(self, frames: Sequence[bytes]) -> None:
        if self.live.is_set():
            self.ws.write_texts(frames)
        else:
            self.held.extend(frames)

    def disconnect_replied(self) -> None:
        super().disconnect_replied()
        self.replied.set()


class Emulator:
    """A RELAY server on ``host:port`` (port 0 picks a free one; read :attr:`url` after :meth:`start`).

    With ``project``/``token`` set only those credentials are accepted and JWTs are refused; without them
    any non-empty pair, or any non-empty JWT, is. Each session gets demo traffic at ``rate`` events per second
    (0: as fast as the socket drains), or the ``replay`` payloads instead, at most ``events`` per session.

    A ``replay`` that is a sequence is replayed from its start to every new session; any other iterable is
    consumed once, shared by all sessions. Replayed payloads without an ``event_channel`` get the session's.
    Redelivered events keep their original frame id, so a client can recognise duplicates.

    Inbound calls are routed as :mod:`relay_cli.emulator.sessions` describes; a call nobody answers ends
    ``ring_timeout`` seconds after it started. A socket that has not sent ``signalwire.connect`` after
    ``connect_timeout`` seconds is closed. :attr:`journal` holds the last ``journal_size`` frames both ways.

    With ``control_port`` set (0: a free port) the control plane of :mod:`relay_cli.emulator.control` listens on
    ``control_host`` (default: ``host``) too; read :attr:`control_url` after :meth:`start`.

    With ``playback`` the apps that connect are answered from that recording (:mod:`relay_cli.emulator.playback`);
    :attr:`playback` then says how it went.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: _ssl.SSLContext | None = None,
        project: str | None = None,
        token: str | None = None,
        rate: float = 5.0,
        events: int | None = None,
        mode: Mode = "demo",
        speed: float = 1.0,
        ping_interval: float = 20.0,
        seed: int | None = None,
        replay: Iterable[dict[str, Any]] | None = None,
        ring_timeout: float = RING_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        journal_size: int = JOURNAL_SIZE,
        control_port: int | None = None,
        control_host: str | None = None,
        callers: float = 0.0,
        playback: Recording | None = None,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must not be negative")
        if events is not None and events < 0:
            raise ValueError("events must not be negative")
        if ping_interval < 0:
            raise ValueError("ping_interval must not be negative")
        if ring_timeout < 0 or connect_timeout <= 0:
            raise ValueError("ring_timeout must not be negative and connect_timeout must be positive")
        self.host = host
        self.port = port
        self.ssl = ssl
        self.rate = rate
        self.events = events
        self.ping_interval = ping_interval
        self.connect_timeout = connect_timeout
        self.log = log
        self.core = EmulatorCore(
            project=project,
            token=token,
            rate=rate,
            mode=mode,
            speed=speed,
            seed=seed,
            replay=replay,
            ring_timeout=ring_timeout,
            log=log,
            journal_size=journal_size,
            playback=playback,
        )
        self.url = ""
        self.control_port = control_port
        self.callers = callers
        """Inbound calls per simulated minute from the default far end (``relay serve --callers``)."""
        self.control_host = control_host or host
        self.control_url = ""
        """``http://host:port`` of the control plane once it listens; "" without one."""
        self.control: ControlPlane | None = None
        self._control_server: ControlServer | None = None
        self._server: Server | None = None
        self._conns: set[_Conn] = set()
        self._live = asyncio.Event()
        self._live.set()
        self._connected = 0
        self._connected_changed = asyncio.Condition()
        self.on_close: list[Callable[[Peer, float, int | None, str, str], None]] = []
        """Told of each connection's end, after its last frame: ``(peer, at, code, reason, detail)``, the close
        code and reason of whoever closed first (None and "" for a drop) and who ("by the app", "by RELAY",
        "dropped by the app", "dropped by RELAY"): ``relay serve --record`` records it."""
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def stats(self) -> EmulatorStats:
        return self.core.stats

    @property
    def journal(self) -> Journal:
        return self.core.journal

    @property
    def playback(self) -> Playback | None:
        """What the playback of a recording matched and missed (``playback=``); None without one."""
        return self.core.playback

    @property
    def _sessions(self) -> dict[str, Session]:
        """The sessions by protocol string (tests reach in to make the server forget one)."""
        return self.core.sessions

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; :attr:`url` is valid afterwards."""
        if self._server is not None:
            return
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self.ssl,
            max_size=MAX_FRAME,
            ping_interval=None,
            close_timeout=DISCONNECT_GRACE,
            max_queue=64,
            compression=None,
            create_connection=BurstServerConnection,
        )
        self.core.on_schedule = self._wake.set
        self._ticker = asyncio.create_task(self._tick())
        port = self._server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'wss' if self.ssl else 'ws'}://{host}:{port}"
        if self.control_port is not None:
            await self._start_control(self.control_port)
        if self.callers:
            self.core.calls.start_callers(self.callers)
        plane = f" (control plane on {self.control_url})" if self.control_url else ""
        self.log(f"RELAY emulator on {self.url}{plane}")

    async def _start_control(self, port: int) -> None:
        if self.control is None:  # once: it hooks its scenarios into the core
            self.control = ControlPlane(self.core, _Wire(self))
        server = ControlServer(self.control.handle, self.control_host, port, self.log)
        try:
            await server.start()
        except OSError:
            await self.close()
            raise
        self._control_server = server
        host = f"[{self.control_host}]" if ":" in self.control_host else self.control_host
        self.control_url = self.core.control_url = f"http://{host}:{server.port}"

    async def close(self) -> None:
        """Stop listening and close every connection (close code 1001)."""
        control, self._control_server = self._control_server, None
        if control is not None:
            await control.close()
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.log("emulator closed")

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def wait_for_connections(self, n: int, timeout: float = 5.0) -> None:
        """Wait until ``n`` ``signalwire.connect`` have succeeded in all; TimeoutError if not in time."""
        async with asyncio.timeout(timeout), self._connected_changed:
            await self._connected_changed.wait_for(lambda: self._connected >= n)

    async def _tick(self) -> None:
        """Wake the core when its timers fall due (ring-outs, scheduled events), or sooner when told."""
        core = self.core
        while True:
            due = core.next_due()
            self._wake.clear()
            if due is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, due - core.clock()))
            core.tick()

    # -- fault injection -----------------------------------------------------------------------------------

    async def drop(self) -> None:
        """Abort every connection without a close frame, as a network failure would; sessions survive."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
        await self._wait_done(conns)
        if conns:
            self.log(f"dropped {len(conns)} connection(s)")

    async def send_disconnect(self, restart: bool = False) -> None:
        """Ask every client to reconnect (``restart``: fresh session), closing each socket after its reply."""
        conns = [c for c in self._conns if c.session is not None]
        await asyncio.gather(*(self._disconnect(c, restart) for c in conns))

    async def inject(self, raw: str | bytes) -> None:
        """Send ``raw`` as one text frame to every open connection, unchecked: for malformed-input tests."""
        conns = list(self._conns)
        for conn in conns:
            self.core.raw_out(conn, raw)
        await asyncio.gather(*(self._send_quietly(c, raw) for c in conns))

    async def push_frame(self, frame: dict[str, Any], session_id: str | None = None) -> list[str]:
        """Send ``frame`` verbatim (journaled, not tracked for ACK) to the connected session whose ``sessionid`` is
        ``session_id``, or to every connected session; the ids it went to. LookupError: no such session."""
        raw = orjson.dumps(frame)
        try:
            kind: Kind | None = classify(frame)
        except FrameError:
            kind = None
        targets = [
            (s, s.conn)
            for s in self.core.sessions.values()
            if isinstance(s.conn, _Conn) and (session_id is None or s.sessionid == session_id)
        ]
        if session_id is not None and not targets:
            raise LookupError("no such session")
        core = self.core
        for session, conn in targets:
            core.journal.add(RELAY_TO_APP, core.wall(), conn.id, session.sessionid, kind, None, raw)
        await asyncio.gather(*(self._send_quietly(conn, raw) for _, conn in targets))
        return [session.sessionid for session, _ in targets]

    def session_list(self) -> list[dict[str, Any]]:
        """The connected sessions as the control plane lists them, oldest first."""
        live = sorted(
            ((s, s.conn) for s in self.core.sessions.values() if isinstance(s.conn, _Conn)), key=lambda p: p[0].index
        )
        return [
            {
                "id": s.sessionid,
                "connection_id": conn.id,
                "connected_at": conn.connected_at,
                "peer_addr": conn.name,
                "protocol_string": s.protocol,
            }
            for s, conn in live
        ]

    async def push(self, payload: dict[str, Any]) -> str:
        """Send one ``signalwire.event`` to every session; tracked for ACK and redelivery like demo events."""
        frame_id, sends = self.core.push(payload)
        await asyncio.gather(*(self._send_quietly(peer, data) for peer, data in sends if isinstance(peer, _Conn)))
        return frame_id

    def freeze(self) -> None:
        """Behave like a half-open socket: connections stay up but nothing is sent or answered until thaw().

        Sends started while frozen (including ``push`` and ``inject``) wait for thaw() or the socket's close.
        """
        self._live.clear()
        self.log("frozen")

    def thaw(self) -> None:
        for conn in self._conns:
            if conn.held:
                conn.ws.write_texts(conn.held)
                conn.held = []
        self._live.set()
        self.log("thawed")

    async def offer_call(
        self,
        context: str = "default",
        *,
        call_id: str | None = None,
        from_number: str = "+15550100001",
        to_number: str = "+15550100002",
    ) -> str:
        """Start an inbound call on ``context`` and offer it to one session receiving on it; return its call id.

        Sessions on the context take turns (round robin). Nobody answers the call: it ends (``noAnswer``) after
        ``ring_timeout``, and the session holding it then is sent ``ending`` and ``ended``. A call nobody receives
        on its context rings out the same way, unseen.
        """
        if not self._live.is_set():
            await self._live.wait()
        call_id = call_id or str(uuid.uuid4())
        self.core.offer_call(context, call_id, from_number, to_number)
        return call_id

    # -- connection handling -------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, BurstServerConnection)
        conn = _Conn(ws, self._live)
        self._conns.add(conn)
        self.stats.connections += 1
        self.log(f"{conn.name} connected")
        try:
            await self._serve(conn)
        except (ConnectionClosed, _Gone):
            pass
        except Exception as exc:
            self.log(f"{conn.name}: internal error, closing: {exc!r}")
            conn.abort()
        finally:
            self._conns.discard(conn)
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            self.core.detach(conn)
            conn.done.set()
            self.log(f"{conn.name} disconnected")
            self._ended(conn)

    def _ended(self, conn: _Conn) -> None:
        """Tell :attr:`on_close` how ``conn`` ended: who closed it first, with which code, or who dropped it."""
        if not self.on_close:
            return
        ws = conn.ws.protocol
        rcvd, sent = ws.close_rcvd, ws.close_sent
        code: int | None
        if rcvd is not None and (sent is None or ws.close_rcvd_then_sent):
            code, reason, detail = rcvd.code, rcvd.reason, "by the app"
        elif sent is not None:
            code, reason, detail = sent.code, sent.reason, "by RELAY"
        else:
            code, reason, detail = None, "", "dropped by RELAY" if conn.aborted else "dropped by the app"
        at = time.time()
        for told in self.on_close:
            try:
                told(conn, at, code, reason, detail)
            except Exception as exc:  # an observer must not break the server
                self.log(f"internal error in a close observer: {exc!r}")

    async def _serve(self, conn: _Conn) -> None:
        ws, core = conn.ws, self.core
        try:
            async with asyncio.timeout(self.connect_timeout):
                first = await ws.recv()
        except TimeoutError:
            self.log(f"{conn.name}: no signalwire.connect within {self.connect_timeout:g} s, closing")
            await ws.close(1008, "signalwire.connect not sent in time")
            return
        await self._unfrozen(conn)
        frame, kind = core.decode(conn, first)
        if frame is None or kind is not Kind.CONNECT:
            self.log(f"{conn.name}: first request was not signalwire.connect, closing")
            rid = reply_id(frame.get("id")) if frame is not None else None
            refusal = error(rid, INVALID_REQUEST, "signalwire.connect must be the first request")
            await self._send(conn, [core.encode(conn, refusal)])
            await ws.close(1008, "expected signalwire.connect")
            return
        outcome = core.connect(conn, frame)
        # What a resumed session had not ACKed, taken now: an event sent between here and the pump's first run
        # (a call offered as the connect result goes out) is not a backlog, and must not be sent twice.
        backlog = core.backlog(outcome.session) if outcome.session is not None and outcome.session.unacked else []
        if outcome.evict is not None:
            assert isinstance(outcome.evict, _Conn)
            await self._evict(outcome.evict)
        await self._send(conn, outcome.replies)
        session = outcome.session
        if session is None:
            await ws.close(1008, "signalwire.connect failed")
            return
        conn.tasks.append(asyncio.create_task(self._guard(conn, self._pump(conn, session, backlog))))
        if self.ping_interval > 0:
            conn.tasks.append(asyncio.create_task(self._guard(conn, self._pinger(conn))))
        async with self._connected_changed:
            self._connected += 1
            self._connected_changed.notify_all()
        while True:
            try:
                message = await ws.recv(decode=False)  # orjson reads the UTF-8 bytes directly
            except ConnectionClosedOK:
                return
            if not self._live.is_set():
                await self._unfrozen(conn)
            reply = core.receive(conn, message)
            if reply is not None:
                await ws.send(reply, text=True)

    async def _evict(self, old: _Conn) -> None:
        """A resume took the session over from a socket the server still thought alive: drop that socket."""
        for task in old.tasks:
            task.cancel()
        old.abort()
        await self._wait_done([old])

    # -- what the server sends -----------------------------------------------------------------------------

    async def _pump(self, conn: _Conn, session: Session, backlog: list[bytes]) -> None:
        """Redeliver ``backlog`` (what was not ACKed), then the session's stream at ``rate``, at most ``events``."""
        ws, core = conn.ws, self.core
        if backlog:
            self.log(f"{conn.name}: redelivering {len(backlog)} un-ACKed event(s)")
            for start in range(0, len(backlog), _BURST):
                if not self._live.is_set():
                    await self._unfrozen(conn)
                burst = backlog[start : start + _BURST]
                await ws.send_texts(burst)
                self.stats.events_redelivered += len(burst)
                await asyncio.sleep(0)
        rate, cap = self.rate, self.events
        loop = asyncio.get_running_loop()
        origin = loop.time()
        n = 0
        while cap is None or session.sent < cap:
            if rate > 0:
                # A schedule on the monotonic clock, not sleep(1 / rate): no drift, and events that fell due
                # while a send waited go out together.
                now = loop.time()
                owed = int((now - origin) * rate) + 1 - n
                if owed <= 0:
                    await asyncio.sleep(origin + n / rate - now)
                    owed = 1
                else:
                    if owed > rate + _BURST:
                        origin, n, owed = now, 0, 1  # over a second behind (freeze, slow reader): no burst
                    await asyncio.sleep(0)
                size = min(owed, _BURST)
            else:
                await asyncio.sleep(0)  # let the reader take ACKs between bursts
                size = _BURST
            if cap is not None:
                size = min(size, cap - session.sent)
            if not self._live.is_set():
                await self._unfrozen(conn)
            batch, drawn = core.draw(session, size)
            n += drawn
            if batch:
                await ws.send_texts(batch)
            if session.drains:
                await self._drain(session)
            if drawn < size:
                if session.source is not None and core.replaying:
                    self.log(f"{conn.name}: replay finished")
                return
        self.log(f"{conn.name}: sent the {cap} event(s) allowed per session")

    async def _drain(self, session: Session) -> None:
        """Wait until the other connections the stream wrote to have drained: a slow reader holds it back."""
        conns, session.drains = session.drains, set()
        for conn in conns:
            assert isinstance(conn, _Conn)
            if conn.ws.protocol.state is State.OPEN:
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send_texts(())

    async def _pinger(self, conn: _Conn) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            await self._send(conn, [self.core.ping(conn)])

    async def _disconnect(self, conn: _Conn, restart: bool) -> None:
        for task in conn.tasks:
            task.cancel()
        try:
            await self._send(conn, [self.core.disconnect(conn, restart)])
        except (ConnectionClosed, _Gone):
            return
        self.log(f"{conn.name}: sent signalwire.disconnect{' (restart)' if restart else ''}")
        replied = asyncio.ensure_future(conn.replied.wait())
        closed = asyncio.ensure_future(conn.ws.wait_closed())
        try:
            done, _ = await asyncio.wait(
                (replied, closed), timeout=DISCONNECT_GRACE, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            replied.cancel()
            closed.cancel()
        if not done:
            self.log(f"{conn.name}: no reply to signalwire.disconnect, closing anyway")
        if restart and conn.session is not None:
            self.core.forget(conn.session)
        await conn.ws.close(1000, "signalwire.disconnect")

    async def _send(self, conn: _Conn, frames: Sequence[bytes]) -> None:
        """Send frames the core built (and journaled), one at a time, once thawed."""
        for data in frames:
            if not self._live.is_set():
                await self._unfrozen(conn)
            await conn.ws.send(data, text=True)

    async def _send_quietly(self, conn: _Conn, data: str | bytes) -> None:
        """Send, ignoring a connection that is gone: in a broadcast one dead client must not fail all."""
        with contextlib.suppress(ConnectionClosed, _Gone):
            if not self._live.is_set():
                await self._unfrozen(conn)
            if isinstance(data, str):
                await conn.ws.send(data)
            else:
                await conn.ws.send(data, text=True)

    async def _unfrozen(self, conn: _Conn) -> None:
        """Return once thawed; raise _Gone if the connection closes first."""
        if self._live.is_set():
            return
        live = asyncio.ensure_future(self._live.wait())
        closed = asyncio.ensure_future(conn.ws.wait_closed())
        try:
            await asyncio.wait((live, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            live.cancel()
            closed.cancel()
        if not self._live.is_set():
            raise _Gone

    async def _guard(self, conn: _Conn, work: Coroutine[Any, Any, None]) -> None:
        """Run a connection's background task: a closed socket ends it quietly, a bug is logged once."""
        try:
            await work
        except (ConnectionClosed, _Gone):
            pass
        except Exception as exc:
            self.log(f"{conn.name}: internal error, closing: {exc!r}")
            conn.abort()

    async def _wait_done(self, conns: list[_Conn]) -> None:
        if conns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCONNECT_GRACE):
                    await asyncio.gather(*(c.done.wait() for c in conns))


class _Wire:
    """The emulator as the control plane's routes see it (:class:`relay_cli.emulator.control.Wire`)."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    @property
    def ws_port(self) -> int:
        server = self._emulator._server
        return int(server.sockets[0].getsockname()[1]) if server is not None else 0

    async def push_frame(self, frame: dict[str, Any], session_id: str | None) -> list[str]:
        return await self._emulator.push_frame(frame, session_id)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def watch(self) -> _RecvWatch:
        return _RecvWatch(self._emulator.journal)

    def sessions(self) -> list[dict[str, Any]]:
        return self._emulator.session_list()


class _RecvWatch:
    """The requests apps send from now on, in order, for ``expect_recv``: a journal observer feeds it, an event
    wakes the waiter (no polling)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._seen: list[tuple[str, str]] = []
        self._changed = asyncio.Event()
        journal.observers.append(self._observe)

    def _observe(self, direction: str, _time: float, _conn: str, session: str, kind: Kind | None, raws: Any) -> None:
        if direction != APP_TO_RELAY or kind is None or kind in (Kind.RESULT, Kind.ERROR):
            return
        for raw in raws:
            try:
                method = orjson.loads(raw).get("method")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(method, str):
                self._seen.append((session, method))
        self._changed.set()

    async def expect(self, method: str, session_id: str | None, timeout: float) -> bool:
        """Whether a request of ``method`` (from ``session_id``'s session) came, or comes within ``timeout``;
        the frames before it are passed over."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for i, (session, seen) in enumerate(self._seen):
                        if seen == method and (session_id is None or session == session_id):
                            del self._seen[: i + 1]
                            return True
                    self._seen.clear()
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._journal.observers.remove(self._observe)
