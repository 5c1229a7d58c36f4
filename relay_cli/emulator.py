"""A local RELAY server: the far end of the protocol, for demos, benchmarks and tests of the client.

It speaks the server side of PROTOCOL.md over real WebSockets: authentication, sessions that survive a dropped
socket and are resumed with the credentials that opened them plus ``protocol`` (and ``authorization_state``), ACK
tracking with redelivery on resume, server pings, seeded demo traffic or a recording, SignalWire's routing of
inbound calls (each offered to one session on its context; ``calling.pass`` offers it to the next), and faults a
test can inject at will (an abrupt drop, a ``signalwire.disconnect``, raw frames, a half-open socket). Frames
are built and classified by :mod:`relay_cli.protocol` only, so client and emulator cannot drift apart on the wire
format.

Nothing here prints: status lines go to the ``log`` callback, never with a secret in them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import os
import ssl as _ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.protocol import State

from relay_cli.burst import BurstServerConnection
from relay_cli.demo import DemoTraffic
from relay_cli.protocol import (
    AUTH_FAILED,
    BAD_AUTH_STATE,
    CALL_GONE,
    CALL_NOT_FOUND,
    CALL_PASS,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_FRAME,
    METHOD_NOT_FOUND,
    FrameError,
    Kind,
    classify,
    error,
    event_frame,
    make_protocol,
    new_id,
    request,
    result,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_CONTEXTS",
    "MAX_CONTEXT_LENGTH",
    "MAX_FRAME",
    "MAX_UNACKED",
    "MAX_UNACKED_BYTES",
    "RING_TIMEOUT",
    "SESSION_TTL",
    "Emulator",
    "EmulatorStats",
]

MAX_UNACKED = 10_000
"""Un-ACKed events kept per session for redelivery; beyond it the oldest are forgotten."""
MAX_UNACKED_BYTES = 64 * 2**20
"""The same bound in bytes: a few large events must not hold as much memory as ten thousand small ones."""
MAX_CONTEXTS = 100
"""Contexts one session may receive on."""
MAX_CONTEXT_LENGTH = 256
"""Characters in one context name."""
CONNECT_TIMEOUT = 10.0
"""Seconds a new socket has to send ``signalwire.connect`` before it is closed."""
RING_TIMEOUT = 30.0
"""Seconds an inbound call rings before it ends unanswered (``noAnswer``)."""
MAX_CALLS = 1024
"""Inbound calls remembered per session for ``calling.pass``; beyond it the oldest are forgotten."""
SESSION_TTL = 300.0
"""Seconds a session stays resumable after its socket went away."""
DISCONNECT_GRACE = 2.0
"""Seconds ``send_disconnect`` waits for the client's reply before closing anyway."""

AUTH_MESSAGE = "Authentication service failed with status ProtocolError, 401 Unauthorized: {}"
RECEIVE_MESSAGE = "Receiving all inbound related to the requested relay contexts and available scopes"
UNRECEIVE_MESSAGE = "No longer receiving inbound related to the requested relay contexts"
PASSING_MESSAGE = "Passing call"
INTERNAL_ERROR = -32603
_RECEIVE = "calling.call.receive"
_STATE = "calling.call.state"
SCOPES = ("calling", "messaging", "tasking")
# Events sent back to back before the pump lets the reader handle ACKs, when rate is 0.
_BURST = 64


@dataclass
class EmulatorStats:
    """Counters over the emulator's lifetime, for tests and benchmarks.

    ``events_sent`` counts demo, replayed and pushed events once each (not the ``authorization.state`` events,
    not redeliveries, which ``events_redelivered`` counts); ``events_acked`` counts ACKs of those.
    ``calls_offered`` counts offers of an inbound call made after a pass or by :meth:`Emulator.offer_call`
    (a demo stream's own ``calling.call.receive`` is not counted); ``calls_passed`` the passes accepted.
    """

    connections: int = 0
    sessions_created: int = 0
    sessions_resumed: int = 0
    auth_failures: int = 0
    events_sent: int = 0
    events_acked: int = 0
    events_redelivered: int = 0
    pings_sent: int = 0
    pings_answered: int = 0
    calls_offered: int = 0
    calls_passed: int = 0


class _Gone(Exception):
    """The connection closed while waiting for ``thaw()``."""


class _InboundCall:
    """An inbound call as routing sees it: whom it is offered to now, who had it before, whether it still rings."""

    __slots__ = ("call_id", "context", "created", "ended", "holder", "offered", "receive", "source", "timer")

    def __init__(self, call_id: str, context: str, receive: dict[str, Any], source: _Session | None) -> None:
        self.call_id = call_id
        self.context = context
        self.receive = receive
        """The ``calling.call.receive`` payload, sent again as the offer to each next session."""
        self.source = source
        """The session whose demo stream plays the call; None for :meth:`Emulator.offer_call`'s calls."""
        self.created = time.monotonic()
        self.holder: _Session | None = None
        self.offered: set[int] = set()
        self.ended = False
        self.timer: asyncio.TimerHandle | None = None


class _Session:
    """What outlives a socket: the protocol string, contexts, event stream and the events not yet ACKed."""

    def __init__(self, protocol: str, project: str, index: int, credential: bytes = b"") -> None:
        self.protocol = protocol
        self.project = project
        self.index = index
        self.credential = credential
        """A keyed hash of the credentials that opened the session (never the secret itself): resumes must match."""
        self.sessionid = str(uuid.uuid4())
        self.contexts: list[str] = []
        self.source: Iterator[dict[str, Any]] | None = None
        self.generation = 0
        self.authorization_state = ""
        self.sent = 0
        self.unacked: OrderedDict[str, bytes] = OrderedDict()
        self.unacked_bytes = 0
        self.forgotten = 0
        self.calls: dict[str, _InboundCall] = {}
        """Inbound calls offered to this session, by call id, whether it still has them or passed them on."""
        self.live_calls: dict[str, dict[str, Any]] = {}
        """Inbound calls the session's stream has under way (call id → receive params), kept by the stream."""
        self.ended_calls: dict[str, None] = {}
        """Ids of inbound calls the stream ended lately."""
        self.rerouted: dict[str, _InboundCall] = {}
        """Calls of this session's stream that it passed: their events go to the holder, or nowhere."""
        self.drains: set[_Conn] = set()
        """Other connections the stream wrote rerouted events to since the pump last waited for them."""
        self.conn: _Conn | None = None
        self.detached_at: float | None = None


class _Conn:
    """One socket and the tasks feeding it."""

    def __init__(self, ws: BurstServerConnection) -> None:
        self.ws = ws
        self.session: _Session | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.pings: dict[str, float] = {}
        self.disconnect_id: str | None = None
        self.disconnect_replied = asyncio.Event()
        self.done = asyncio.Event()
        self.held: list[bytes] = []
        """Frames written synchronously while frozen, sent on thaw()."""
        address = ws.remote_address
        self.peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "client"


class Emulator:
    """A RELAY server on ``host:port`` (port 0 picks a free one; read :attr:`url` after :meth:`start`).

    With ``project``/``token`` set only those credentials are accepted and JWTs are refused; without them
    any non-empty pair, or any non-empty JWT, is. Each session gets demo traffic at ``rate`` events per second
    (0: as fast as the socket drains), or the ``replay`` payloads instead, at most ``events`` per session.

    A ``replay`` that is a sequence is replayed from its start to every new session; any other iterable is
    consumed once, shared by all sessions. Replayed payloads without an ``event_channel`` get the session's.
    Redelivered events keep their original frame id, so a client can recognise duplicates.

    Inbound calls are routed as SignalWire routes them: each is offered to one session on its context. A demo
    stream's call is first offered to the session the stream belongs to; :meth:`offer_call` picks the sessions
    on a context in turn. ``calling.pass`` from the session holding a call offers it to the next session on that
    context that has not had it (the rest of the call's events go there), or, with none left, leaves it ringing
    unheld until ``ring_timeout`` seconds after it started, when it ends. A socket that has not sent
    ``signalwire.connect`` after ``connect_timeout`` seconds is closed.
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
        demo: bool = True,
        ping_interval: float = 20.0,
        seed: int | None = None,
        replay: Iterable[dict[str, Any]] | None = None,
        ring_timeout: float = RING_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
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
        self.project = project
        self.token = token
        self.rate = rate
        self.events = events
        self.demo = demo
        self.ping_interval = ping_interval
        self.seed = seed
        self.ring_timeout = ring_timeout
        self.connect_timeout = connect_timeout
        self.log = log
        self.stats = EmulatorStats()
        self.url = ""
        self._replay_list: Sequence[dict[str, Any]] | None = None
        self._replay_iter: Iterator[dict[str, Any]] | None = None
        if isinstance(replay, Sequence):
            self._replay_list = replay
        elif replay is not None:
            self._replay_iter = iter(replay)
        self._replaying = replay is not None
        self._server: Server | None = None
        self._conns: set[_Conn] = set()
        self._sessions: dict[str, _Session] = {}
        self._live = asyncio.Event()
        self._live.set()
        self._connected = 0
        self._connected_changed = asyncio.Condition()
        self._node_id = str(uuid.uuid4())
        self._space_id = str(uuid.uuid4())
        self._jwt_project = str(uuid.uuid4())
        # Frame ids are UUID-shaped as in the SDKs; a counter under a random prefix is cheaper than uuid4().
        self._id_prefix = str(uuid.uuid4())[:24]
        self._id_counter = 0
        self._credential_key = os.urandom(32)
        self._last_offered: dict[str, int] = {}

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
        port = self._server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'wss' if self.ssl else 'ws'}://{host}:{port}"
        self.log(f"emulator listening on {self.url}")

    async def close(self) -> None:
        """Stop listening and close every connection (close code 1001)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
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

    # -- fault injection -----------------------------------------------------------------------------------

    async def drop(self) -> None:
        """Abort every connection without a close frame, as a network failure would; sessions survive."""
        conns = list(self._conns)
        for conn in conns:
            conn.ws.transport.abort()
        await self._wait_done(conns)
        if conns:
            self.log(f"dropped {len(conns)} connection(s)")

    async def send_disconnect(self, restart: bool = False) -> None:
        """Ask every client to reconnect (``restart``: fresh session), closing each socket after its reply."""
        conns = [c for c in self._conns if c.session is not None]
        await asyncio.gather(*(self._disconnect(c, restart) for c in conns))

    async def inject(self, raw: str | bytes) -> None:
        """Send ``raw`` as one text frame to every open connection, unchecked: for malformed-input tests."""
        await asyncio.gather(*(self._send_quietly(c, raw) for c in list(self._conns)))

    async def push(self, payload: dict[str, Any]) -> str:
        """Send one ``signalwire.event`` to every session; tracked for ACK and redelivery like demo events."""
        frame_id = self._next_id()
        data = orjson.dumps(event_frame(payload, frame_id))
        conns = [c for c in self._conns if c.session is not None]
        for conn in conns:
            assert conn.session is not None
            self._track(conn.session, frame_id, data)
        self.stats.events_sent += len(conns)
        await asyncio.gather(*(self._send_quietly(c, data) for c in conns))
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
        params: dict[str, Any] = {
            "call_state": "created",
            "direction": "inbound",
            "device": {"type": "phone", "params": {"from_number": from_number, "to_number": to_number}},
            "call_id": call_id,
            "node_id": self._node_id,
            "tag": "",
            "context": context,
            "segment_id": call_id,
        }
        receive = {"event_type": _RECEIVE, "space_id": self._space_id, "context": context, "params": params}
        call = _InboundCall(call_id, context, receive, None)
        self._schedule_ring_out(call)
        candidates = self._receivers(context, call)
        if candidates:
            last = self._last_offered.get(context, -1)
            target = next((s for s in candidates if s.index > last), candidates[0])
            self._last_offered[context] = target.index
            self._offer(call, target)
        else:
            self.log(f"offered call {call_id}: no session receives on {_clip(context)}")
        return call_id

    # -- connection handling -------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, BurstServerConnection)
        conn = _Conn(ws)
        self._conns.add(conn)
        self.stats.connections += 1
        self.log(f"{conn.peer} connected")
        try:
            await self._serve(conn)
        except (ConnectionClosed, _Gone):
            pass
        except Exception as exc:
            self.log(f"{conn.peer}: internal error, closing: {exc!r}")
            ws.transport.abort()
        finally:
            self._conns.discard(conn)
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                session.detached_at = time.monotonic()
            conn.done.set()
            self.log(f"{conn.peer} disconnected")

    async def _serve(self, conn: _Conn) -> None:
        ws = conn.ws
        try:
            async with asyncio.timeout(self.connect_timeout):
                first = await ws.recv()
        except TimeoutError:
            self.log(f"{conn.peer}: no signalwire.connect within {self.connect_timeout:g} s, closing")
            await ws.close(1008, "signalwire.connect not sent in time")
            return
        await self._unfrozen(conn)
        frame, kind = self._decode(conn, first)
        if frame is None or kind is not Kind.CONNECT:
            self.log(f"{conn.peer}: first request was not signalwire.connect, closing")
            rid = _reply_id(frame.get("id")) if frame is not None else None
            await self._reply(conn, error(rid, INVALID_REQUEST, "signalwire.connect must be the first request"))
            await ws.close(1008, "expected signalwire.connect")
            return
        if not await self._connect(conn, frame):
            await ws.close(1008, "signalwire.connect failed")
            return
        while True:
            try:
                message = await ws.recv(decode=False)  # orjson reads the UTF-8 bytes directly
            except ConnectionClosedOK:
                return
            if not self._live.is_set():
                await self._unfrozen(conn)
            try:
                reply = self._on_message(conn, message)
            except Exception as exc:  # a bug must cost the client one request, not its connection
                self.log(f"{conn.peer}: internal error handling a frame: {exc!r}")
                reply = error(None, INTERNAL_ERROR, "Internal error")
            if reply is not None:
                await ws.send(orjson.dumps(reply), text=True)

    def _decode(self, conn: _Conn, message: str | bytes) -> tuple[dict[str, Any] | None, Kind | None]:
        """The frame and its kind, or Nones (logged) for anything that is not JSON-RPC: never raises."""
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            self.log(f"{conn.peer}: ignored a frame that is not JSON ({len(message)} bytes)")
            return None, None
        try:
            kind = classify(frame)
        except FrameError as exc:
            self.log(f"{conn.peer}: ignored a frame that is not JSON-RPC: {exc}")
            return None, None
        return frame, kind

    async def _connect(self, conn: _Conn, frame: dict[str, Any]) -> bool:
        """Authenticate, create or resume the session, start its traffic; False after replying an error."""
        rid = _reply_id(frame.get("id"))
        params = frame.get("params")
        if not isinstance(params, dict):
            params = {}
        protocol = params.get("protocol")
        agent = params.get("agent")
        self.log(
            f"{conn.peer}: signalwire.connect{' (resume)' if protocol else ''}"
            f" from agent {_clip(agent) if isinstance(agent, str) else 'unnamed'}"
        )
        identity = self._authenticate(params.get("authentication"))
        if identity is None:
            self.stats.auth_failures += 1
            self.log(f"{conn.peer}: authentication failed")
            await self._reply(conn, error(rid, AUTH_FAILED, AUTH_MESSAGE))
            return False
        project, credential = identity
        try:
            contexts = _contexts(params.get("contexts", []))
        except ValueError as exc:
            await self._reply(conn, error(rid, INVALID_PARAMS, str(exc)))
            return False
        self._expire_sessions()
        if protocol:
            session = self._sessions.get(protocol) if isinstance(protocol, str) else None
            if session is None or not hmac.compare_digest(session.credential, credential):
                # One answer for both, so a protocol string alone says nothing about whether its session exists.
                why = "session not found" if session is None else "credentials differ from the session's"
                self.log(f"{conn.peer}: resume refused: {why}")
                await self._reply(conn, error(rid, AUTH_FAILED, "session not found"))
                return False
            state = params.get("authorization_state")
            if state is not None and not (isinstance(state, str) and _same(state, session.authorization_state)):
                self.log(f"{conn.peer}: resume refused: authorization_state does not match")
                await self._reply(conn, error(rid, BAD_AUTH_STATE, "invalid authorization_state"))
                return False
            if session.conn is not None and session.conn is not conn:
                await self._evict(session.conn)
            if any(c not in session.contexts for c in contexts):
                merged = session.contexts + [c for c in contexts if c not in session.contexts]
                if len(merged) > MAX_CONTEXTS:
                    await self._reply(conn, error(rid, INVALID_PARAMS, _TOO_MANY_CONTEXTS))
                    return False
                self._set_contexts(session, merged)
            restored = True
            self.stats.sessions_resumed += 1
        else:
            session = _Session(make_protocol(project), project, self.stats.sessions_created, credential)
            self._sessions[session.protocol] = session
            self._set_contexts(session, contexts)
            restored = False
            self.stats.sessions_created += 1
        session.conn = conn
        session.detached_at = None
        conn.session = session
        session.authorization_state = base64.b64encode(os.urandom(96)).decode()
        await self._reply(conn, result(rid, self._connect_result(session, restored)))
        auth_event = {
            "event_type": "signalwire.authorization.state",
            "event_channel": session.protocol,
            "timestamp": time.time(),
            "project_id": project,
            "space_id": self._space_id,
            "params": {"authorization_state": session.authorization_state},
        }
        await self._reply(conn, event_frame(auth_event, self._next_id()))
        what = "resumed" if restored else "created"
        self.log(f"{conn.peer}: session {what}, {_summary(session.contexts)}")
        conn.tasks.append(asyncio.create_task(self._guard(conn, self._pump(conn, session))))
        if self.ping_interval > 0:
            conn.tasks.append(asyncio.create_task(self._guard(conn, self._pinger(conn))))
        async with self._connected_changed:
            self._connected += 1
            self._connected_changed.notify_all()
        return True

    def _authenticate(self, auth: Any) -> tuple[str, bytes] | None:
        """The project the credentials belong to and their keyed hash, or None when they are refused."""
        if not isinstance(auth, dict):
            return None
        project, token, jwt = auth.get("project"), auth.get("token"), auth.get("jwt_token")
        if isinstance(project, str) and project and isinstance(token, str) and token:
            if self.project is not None and not _same(project, self.project):
                return None
            if self.token is not None and not _same(token, self.token):
                return None
            return project, self._credential(["token", project, token])
        if isinstance(jwt, str) and jwt and self.project is None and self.token is None:
            return self._jwt_project, self._credential(["jwt", jwt])
        return None

    def _credential(self, parts: list[str]) -> bytes:
        """A keyed hash of credentials: enough to recognise them again, useless to anyone who reads it."""
        return hmac.new(self._credential_key, orjson.dumps(parts), hashlib.sha256).digest()

    def _connect_result(self, session: _Session, restored: bool) -> dict[str, Any]:
        return {
            "protocol": session.protocol,
            "identity": f"{session.sessionid}@{self._node_id}.emulator",
            "authorization": {
                "project": session.project,
                "scopes": list(SCOPES),
                "expires_at": None,
                "signature": hashlib.sha256(session.protocol.encode()).hexdigest(),
            },
            "sessionid": session.sessionid,
            "nodeid": self._node_id,
            "session_restored": restored,
        }

    def _expire_sessions(self) -> None:
        limit = time.monotonic() - SESSION_TTL
        stale = [p for p, s in self._sessions.items() if s.detached_at is not None and s.detached_at < limit]
        for protocol in stale:
            del self._sessions[protocol]

    async def _evict(self, old: _Conn) -> None:
        """A resume took the session over from a socket the server still thought alive: drop that socket."""
        self.log(f"{old.peer}: session resumed elsewhere, dropping this connection")
        old.session = None
        for task in old.tasks:
            task.cancel()
        old.ws.transport.abort()
        await self._wait_done([old])

    # -- messages from a connected client ------------------------------------------------------------------

    def _on_message(self, conn: _Conn, message: str | bytes) -> dict[str, Any] | None:
        """Handle one frame; the reply to send, if any."""
        frame, kind = self._decode(conn, message)
        if frame is None:
            return None
        session = conn.session
        if session is None:
            return None  # taken over by a resume on another socket, which is being dropped
        fid = frame.get("id")
        if kind is Kind.RESULT:
            if isinstance(fid, str):
                data = session.unacked.pop(fid, None)
                if data is not None:
                    session.unacked_bytes -= len(data)
                    self.stats.events_acked += 1
                elif conn.pings.pop(fid, None) is not None:
                    self.stats.pings_answered += 1
                elif fid == conn.disconnect_id:
                    conn.disconnect_replied.set()
            return None
        if kind is Kind.ERROR:
            self.log(f"{conn.peer}: client replied with an error to {_clip(fid)}")
            if isinstance(fid, str) and fid == conn.disconnect_id:
                conn.disconnect_replied.set()
            return None
        method = frame["method"]
        if "id" not in frame:
            self.log(f"{conn.peer}: ignored {_clip(method)} without an id")
            return None
        if _reply_id(fid) is not fid:
            self.log(f"{conn.peer}: refused {_clip(method)} with an id that is no string, number or null")
            return error(None, INVALID_REQUEST, "id must be a string, a number or null")
        params = frame.get("params")
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            return error(fid, INVALID_PARAMS, "params must be an object")
        if method == CALL_PASS:
            return self._pass(session, fid, params)
        if method in ("signalwire.receive", "signalwire.unreceive"):
            try:
                contexts = _contexts(params.get("contexts"))
            except ValueError as exc:
                return error(fid, INVALID_PARAMS, str(exc))
            if method == "signalwire.receive":
                new = session.contexts + [c for c in contexts if c not in session.contexts]
                if len(new) > MAX_CONTEXTS:
                    return error(fid, INVALID_PARAMS, _TOO_MANY_CONTEXTS)
                message_text = RECEIVE_MESSAGE
            else:
                new = [c for c in session.contexts if c not in contexts]
                message_text = UNRECEIVE_MESSAGE
            if new != session.contexts:
                self._set_contexts(session, new)
            self.log(f"{conn.peer}: {method} {len(contexts)} context(s): now {_summary(session.contexts)}")
            return result(fid, {"code": "200", "message": message_text})
        if kind is Kind.PING:
            stamp = params.get("timestamp")
            if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
                stamp = time.time()
            return result(fid, {"timestamp": stamp})
        if kind is Kind.CONNECT:
            return error(fid, INVALID_REQUEST, "already connected")
        return error(fid, METHOD_NOT_FOUND, f"Method not found: {_clip(method)}")

    # -- routing of inbound calls --------------------------------------------------------------------------

    def _pass(self, session: _Session, fid: Any, params: dict[str, Any]) -> dict[str, Any]:
        """``calling.pass``: the holder gives the call back to routing, which offers it to the next session."""
        for name in ("call_id", "node_id"):
            value = params.get(name)
            if not isinstance(value, str) or not value:
                return error(fid, INVALID_PARAMS, f"Invalid params: {name} must be a non-empty string")
        call_id: str = params["call_id"]
        call = session.calls.get(call_id)
        if call is None:
            receive = session.live_calls.get(call_id)
            if receive is not None:
                call = self._stream_call(session, call_id, receive)
            elif call_id in session.ended_calls:
                return result(fid, {"code": CALL_GONE, "message": "Call has ended", "call_id": call_id})
        if call is not None and call.ended:
            return result(fid, {"code": CALL_GONE, "message": "Call has ended", "call_id": call_id})
        if call is None or call.holder is not session:
            return result(fid, {"code": CALL_NOT_FOUND, "message": "Call not found", "call_id": call_id})
        self.stats.calls_passed += 1
        call.holder = None
        if call.source is not None:
            _remember(call.source.rerouted, call)
        target = self._next_receiver(call, session)
        if target is not None:
            self._offer(call, target)
        elif call.source is not None:
            self._schedule_ring_out(call)  # offer_call's calls ring out on their own schedule already
        self.log(f"session {session.index} passed call {_clip(call_id)}: offered to {_offered_to(target)}")
        return result(fid, {"code": "200", "message": PASSING_MESSAGE, "call_id": call_id})

    def _receivers(self, context: str, call: _InboundCall) -> list[_Session]:
        """The connected sessions on ``context`` that have not been offered ``call``, oldest first."""
        found = [
            s
            for s in self._sessions.values()
            if s.conn is not None and s.index not in call.offered and context in s.contexts
        ]
        found.sort(key=lambda s: s.index)
        return found

    def _next_receiver(self, call: _InboundCall, after: _Session) -> _Session | None:
        """Who is offered ``call`` after ``after`` passed it: the next session in turn, wrapping around."""
        candidates = self._receivers(call.context, call)
        if not candidates:
            return None
        return next((s for s in candidates if s.index > after.index), candidates[0])

    def _offer(self, call: _InboundCall, target: _Session) -> None:
        """Make ``target`` the call's holder and send it the call's ``calling.call.receive``."""
        call.holder = target
        call.offered.add(target.index)
        _remember(target.calls, call)
        self.stats.calls_offered += 1
        self._deliver(target, {**call.receive, "timestamp": time.time()})

    def _deliver(self, session: _Session, payload: dict[str, Any]) -> _Conn | None:
        """Send one event to ``session`` now, tracked for ACK: the connection written to, if any."""
        payload = {**payload, "event_channel": session.protocol, "project_id": session.project}
        frame_id = self._next_id()
        data = orjson.dumps(event_frame(payload, frame_id))
        self._track(session, frame_id, data)
        self.stats.events_sent += 1
        conn = session.conn
        if conn is None:
            return None  # delivered when the session resumes, with what else it did not ACK
        if self._live.is_set():
            conn.ws.write_texts((data,))
        else:
            conn.held.append(data)
        return conn

    def _stream_call(self, session: _Session, call_id: str, receive: dict[str, Any]) -> _InboundCall:
        """A call of the session's own stream, first looked at when the session passes it: until then the
        stream's bookkeeping (``live_calls``) is all there is of it, so routing costs nothing per event."""
        context = receive.get("context")
        envelope = {"event_type": _RECEIVE, "space_id": self._space_id, "context": context, "params": receive}
        call = _InboundCall(call_id, context if isinstance(context, str) else "", envelope, session)
        call.holder = session
        call.offered.add(session.index)
        _remember(session.calls, call)
        return call

    def _reroute(self, session: _Session, payload: dict[str, Any]) -> bool:
        """Send an event of a call the stream's session passed to its holder, or drop it; False: not such a call."""
        params = payload.get("params")
        if not isinstance(params, dict):
            return False
        call_id = params.get("call_id")
        call = session.rerouted.get(call_id) if isinstance(call_id, str) else None
        if call is None:
            peer = params.get("peer")
            peer_id = peer.get("call_id") if isinstance(peer, dict) else None
            call = session.rerouted.get(peer_id) if isinstance(peer_id, str) else None
            if call is None:
                return False
        elif payload["event_type"] == _STATE and params.get("call_state") == "ended":
            del session.rerouted[call.call_id]
            call.ended = True
            if call.timer is not None:
                call.timer.cancel()
        if call.holder is not None:
            conn = self._deliver(call.holder, payload)
            if conn is not None:
                session.drains.add(conn)
        return True

    def _schedule_ring_out(self, call: _InboundCall) -> None:
        if call.timer is None and not call.ended:
            delay = max(0.0, call.created + self.ring_timeout - time.monotonic())
            call.timer = asyncio.get_running_loop().call_later(delay, self._ring_out, call)

    def _ring_out(self, call: _InboundCall) -> None:
        """The ring timeout: a call still ringing ends; the session holding it, if any, is told.

        Only :meth:`offer_call`'s calls can be held then: a demo call is timed only once nobody holds it.
        """
        if call.ended:
            return
        call.ended = True
        holder = call.holder
        if holder is None:
            self.log(f"call {_clip(call.call_id)} rang out with nobody holding it")
            return
        params = {k: v for k, v in call.receive["params"].items() if k not in ("context", "segment_id")}
        for state in ("ending", "ended"):
            state_params = {**params, "call_state": state, "end_reason": "noAnswer"}
            event = {"event_type": _STATE, "timestamp": time.time(), "space_id": self._space_id}
            self._deliver(holder, {**event, "params": state_params})

    def _set_contexts(self, session: _Session, contexts: list[str]) -> None:
        """New contexts act at once: demo traffic restarts on them, as a DemoTraffic's contexts are fixed."""
        session.contexts = contexts
        if self._replaying:
            if session.source is None:
                session.source = self._replay_source(session)
        elif self.demo:
            seed = None
            if self.seed is not None:
                digest = hashlib.blake2b(f"{self.seed}:{session.index}:{session.generation}".encode(), digest_size=8)
                seed = int.from_bytes(digest.digest(), "big")
            session.generation += 1
            traffic = DemoTraffic(
                contexts=tuple(contexts),
                seed=seed,
                project_id=session.project,
                space_id=self._space_id,
                event_channel=session.protocol,
                start=time.time(),
                concurrency=8,
            )
            session.source = iter(traffic)
            session.live_calls, session.ended_calls = traffic.inbound_calls, traffic.ended_inbound_calls

    def _replay_source(self, session: _Session) -> Iterator[dict[str, Any]]:
        payloads = iter(self._replay_list) if self._replay_list is not None else self._replay_iter
        assert payloads is not None
        channel = session.protocol
        for payload in payloads:
            if not isinstance(payload, dict):
                self.log(f"replay: skipped an entry that is not an object ({type(payload).__name__})")
                continue
            _follow_calls(session, payload)
            yield payload if payload.get("event_channel") else {**payload, "event_channel": channel}

    # -- what the server sends -----------------------------------------------------------------------------

    async def _pump(self, conn: _Conn, session: _Session) -> None:
        """Redeliver what was not ACKed, then the session's stream at ``rate``, at most ``events`` in all."""
        ws = conn.ws
        if session.unacked:
            backlog = list(session.unacked.values())
            self.log(f"{conn.peer}: redelivering {len(backlog)} un-ACKed event(s)")
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
            batch, drawn = self._draw(session, size)
            n += drawn
            if batch:
                await ws.send_texts(batch)
            if session.drains:
                await self._drain(session)
            if drawn < size:
                if session.source is not None and self._replaying:
                    self.log(f"{conn.peer}: replay finished")
                return
        self.log(f"{conn.peer}: sent the {cap} event(s) allowed per session")

    def _draw(self, session: _Session, size: int) -> tuple[list[bytes], int]:
        """Take up to ``size`` payloads from the session's stream: the encoded, tracked event frames for the
        session itself, and how many were taken (events of calls it passed go elsewhere or nowhere)."""
        source = session.source
        if source is None:
            return [], 0
        batch = []
        # Paced demo traffic is stamped when sent, as a real server stamps it; unpaced traffic and replays
        # keep their own timestamps, whose gaps are what `relay replay --speed` reproduces.
        restamp = self.rate > 0 and not self._replaying
        rerouted = session.rerouted
        drawn = 0
        for payload in itertools.islice(source, size):
            drawn += 1
            if restamp:
                payload["timestamp"] = time.time()
            if rerouted and self._reroute(session, payload):
                continue
            frame_id = self._next_id()
            data = orjson.dumps(event_frame(payload, frame_id))
            self._track(session, frame_id, data)
            batch.append(data)
        session.sent += len(batch)  # the cap counts what the session got, not events of calls it passed
        self.stats.events_sent += len(batch)
        return batch, drawn

    async def _drain(self, session: _Session) -> None:
        """Wait until the other connections the stream wrote to have drained: a slow reader holds it back."""
        conns, session.drains = session.drains, set()
        for conn in conns:
            if conn.ws.protocol.state is State.OPEN:
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send_texts(())

    async def _pinger(self, conn: _Conn) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            ping_id = new_id()
            if len(conn.pings) > 100:
                conn.pings.clear()
            conn.pings[ping_id] = time.monotonic()
            await self._reply(conn, request("signalwire.ping", {"timestamp": time.time()}, ping_id))
            self.stats.pings_sent += 1

    async def _disconnect(self, conn: _Conn, restart: bool) -> None:
        for task in conn.tasks:
            task.cancel()
        conn.disconnect_id = new_id()
        frame = request("signalwire.disconnect", {"restart": True} if restart else {}, conn.disconnect_id)
        try:
            await self._reply(conn, frame)
        except (ConnectionClosed, _Gone):
            return
        self.log(f"{conn.peer}: sent signalwire.disconnect{' (restart)' if restart else ''}")
        replied = asyncio.ensure_future(conn.disconnect_replied.wait())
        closed = asyncio.ensure_future(conn.ws.wait_closed())
        try:
            done, _ = await asyncio.wait(
                (replied, closed), timeout=DISCONNECT_GRACE, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            replied.cancel()
            closed.cancel()
        if not done:
            self.log(f"{conn.peer}: no reply to signalwire.disconnect, closing anyway")
        if restart and conn.session is not None:
            self._sessions.pop(conn.session.protocol, None)
        await conn.ws.close(1000, "signalwire.disconnect")

    def _track(self, session: _Session, frame_id: str, data: bytes) -> None:
        unacked = session.unacked
        unacked[frame_id] = data
        session.unacked_bytes += len(data)
        if len(unacked) > MAX_UNACKED or session.unacked_bytes > MAX_UNACKED_BYTES:
            self._forget(session)

    def _forget(self, session: _Session) -> None:
        """Forget the oldest un-ACKed events until the store is within both bounds (the newest is always kept)."""
        unacked = session.unacked
        before = session.forgotten
        while len(unacked) > 1 and (len(unacked) > MAX_UNACKED or session.unacked_bytes > MAX_UNACKED_BYTES):
            _, data = unacked.popitem(last=False)
            session.unacked_bytes -= len(data)
            session.forgotten += 1
        if before == 0 or session.forgotten // (10 * MAX_UNACKED) > before // (10 * MAX_UNACKED):
            self.log(
                f"session has over {MAX_UNACKED} un-ACKed events or {MAX_UNACKED_BYTES // 2**20} MiB of them: "
                f"forgot the oldest ({session.forgotten} so far)"
            )

    async def _reply(self, conn: _Conn, frame: dict[str, Any]) -> None:
        if not self._live.is_set():
            await self._unfrozen(conn)
        await conn.ws.send(orjson.dumps(frame), text=True)

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
            self.log(f"{conn.peer}: internal error, closing: {exc!r}")
            conn.ws.transport.abort()

    async def _wait_done(self, conns: list[_Conn]) -> None:
        if conns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCONNECT_GRACE):
                    await asyncio.gather(*(c.done.wait() for c in conns))

    def _next_id(self) -> str:
        self._id_counter += 1
        return f"{self._id_prefix}{self._id_counter:012x}"


_TOO_MANY_CONTEXTS = f"at most {MAX_CONTEXTS} contexts per session"


def _contexts(value: Any) -> list[str]:
    """The contexts as a list without duplicates; ValueError saying what is wrong with them otherwise."""
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise ValueError("contexts must be a list of non-empty strings")
    if len(value) > MAX_CONTEXTS:
        raise ValueError(_TOO_MANY_CONTEXTS)
    if any(len(c) > MAX_CONTEXT_LENGTH for c in value):
        raise ValueError(f"a context is at most {MAX_CONTEXT_LENGTH} characters")
    return list(dict.fromkeys(value))


def _summary(contexts: Sequence[str]) -> str:
    """Contexts for a log line: a count and the first few, shortened, never the whole list."""
    if not contexts:
        return "no contexts"
    shown = ", ".join(_clip(c, 32) for c in contexts[:3])
    more = f", +{len(contexts) - 3} more" if len(contexts) > 3 else ""
    return f"{len(contexts)} context(s): {shown}{more}"


def _clip(value: Any, limit: int = 64) -> str:
    """A client-supplied value for a log line: strings quoted (escaped) and shortened, other values by type."""
    if isinstance(value, str):
        return repr(value[:limit] + "…" if len(value) > limit else value)
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def _reply_id(value: Any) -> Any:
    """The id to answer a request with: its own when JSON-RPC allows it (a string, a number, null), else null."""
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    return None


def _follow_calls(session: _Session, payload: dict[str, Any]) -> None:
    """Keep ``live_calls`` and ``ended_calls`` for a replayed stream, as DemoTraffic keeps them for its own."""
    params = payload.get("params")
    if not isinstance(params, dict):
        return
    event_type = payload.get("event_type")
    if event_type == _RECEIVE:
        call_id = params.get("call_id")
        if isinstance(call_id, str):
            live = session.live_calls
            live[call_id] = params
            if len(live) > MAX_CALLS:
                del live[next(iter(live))]
    elif event_type == _STATE and params.get("call_state") == "ended":
        call_id = params.get("call_id")
        if isinstance(call_id, str) and session.live_calls.pop(call_id, None) is not None:
            ended = session.ended_calls
            ended[call_id] = None
            if len(ended) > MAX_CALLS:
                del ended[next(iter(ended))]


def _remember(calls: dict[str, _InboundCall], call: _InboundCall) -> None:
    """Add ``call`` under its id, forgetting the oldest beyond ``MAX_CALLS``."""
    calls[call.call_id] = call
    if len(calls) > MAX_CALLS:
        del calls[next(iter(calls))]


def _offered_to(session: _Session | None) -> str:
    if session is None:
        return "nobody (it rings unheld until its ring timeout)"
    return f"session {session.index}"


def _same(a: str, b: str) -> bool:
    """Compare secrets in constant time; as bytes, since compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(a.encode(), b.encode())
