"""The emulator's session logic without I/O: authentication, sessions and resume, ACK tracking, contexts, routing.

:class:`EmulatorCore` is the server side of PROTOCOL.md as plain method calls: the server hands it each frame a
client sent and writes what it returns; frames it sends on its own (an offered call, a ring-out, a scheduled
event) go to :meth:`Peer.write`, which the server implements. Clocks are passed in, so a test drives it
without a socket or an event loop. Every frame either way goes through the core's funnel into its
:class:`~relay_cli.emulator.journal.Journal`.

Inbound calls are routed as SignalWire routes them: each is offered to one session on its context. A demo
stream's call is first offered to the session the stream belongs to; :meth:`EmulatorCore.offer_call` picks the
sessions on a context in turn. ``calling.pass`` from the session holding a call offers it to the next session on
that context that has not had it (the rest of the call's events go there), or, with none left, leaves it ringing
unheld until ``ring_timeout`` seconds after it started, when it ends.

Nothing here prints: status lines go to the ``log`` callback, never with a secret in them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from relay_cli.emulator.calls import CallControl
from relay_cli.emulator.farends import FarEnds
from relay_cli.emulator.flows import DemoTraffic
from relay_cli.emulator.journal import JOURNAL_SIZE, Journal
from relay_cli.emulator.messages import MESSAGE_METHODS, Messaging
from relay_cli.emulator.methods import (
    MAX_CONTEXT_LENGTH,
    MAX_CONTEXTS,
    METHODS,
    TOO_MANY_CONTEXTS,
    Handler,
    Request,
    parse_contexts,
)
from relay_cli.emulator.outbox import Outbox
from relay_cli.emulator.playback import Playback, Recording
from relay_cli.emulator.verbs import CALL_METHODS
from relay_cli.protocol import (
    APP_TO_RELAY,
    AUTH_FAILED,
    BAD_AUTH_STATE,
    CALL_GONE,
    CALL_NOT_FOUND,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RELAY_TO_APP,
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
    "MAX_CONTEXTS",
    "MAX_CONTEXT_LENGTH",
    "MAX_UNACKED",
    "MAX_UNACKED_BYTES",
    "MODES",
    "RING_TIMEOUT",
    "SESSION_TTL",
    "Connected",
    "EmulatorCore",
    "EmulatorStats",
    "InboundCall",
    "Mode",
    "Peer",
    "Session",
]

Mode = Literal["demo", "app", "scripted"]
MODES: tuple[Mode, ...] = ("demo", "app", "scripted")
"""What drives calls (EMULATOR.md section 1): the emulator's own demo app; virtual far ends and the connected
app's verbs; or nothing but the control plane (``mock_relay`` semantics)."""

MAX_UNACKED = 10_000
"""Un-ACKed events kept per session for redelivery; beyond it the oldest are forgotten."""
MAX_UNACKED_BYTES = 64 * 2**20
"""The same bound in bytes: a few large events must not hold as much memory as ten thousand small ones."""
RING_TIMEOUT = 30.0
"""Seconds an inbound call rings before it ends unanswered (``noAnswer``)."""
MAX_CALLS = 1024
"""Inbound calls remembered per session for ``calling.pass``; beyond it the oldest are forgotten."""
SESSION_TTL = 300.0
"""Seconds a session stays resumable after its socket went away."""

AUTH_MESSAGE = "Authentication service failed with status ProtocolError, 401 Unauthorized: {}"
PASSING_MESSAGE = "Passing call"
_RECEIVE = "calling.call.receive"
_STATE = "calling.call.state"
_AUTH_STATE = "signalwire.authorization.state"
SCOPES = ("calling", "messaging", "tasking")


@dataclass
class EmulatorStats:
    """Counters over the emulator's lifetime, for tests and benchmarks.

    ``events_sent`` counts demo, replayed and pushed events once each (not the ``authorization.state`` events,
    not redeliveries, which ``events_redelivered`` counts); ``events_acked`` counts ACKs of those.
    ``calls_offered`` counts offers of an inbound call made after a pass or by ``offer_call``
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


class Peer:
    """One connection as the session logic sees it; the server subclasses it with a socket behind :meth:`write`."""

    def __init__(self, name: str, connection_id: str = "") -> None:
        self.name = name
        """How log lines name the connection (``host:port``)."""
        self.id = connection_id or str(uuid.uuid4())
        self.session: Session | None = None
        self.pings: dict[str, float] = {}
        self.disconnect_id: str | None = None
        self.disconnect_answered = False

    def write(self, frames: Sequence[bytes]) -> None:
        """Send ``frames`` now, in order, without waiting (the server's job); a plain Peer drops them."""

    def disconnect_replied(self) -> None:
        """The client answered ``signalwire.disconnect``: the server may close the socket."""
        self.disconnect_answered = True


class InboundCall:
    """An inbound call as routing sees it: whom it is offered to now, who had it before, whether it still rings."""

    __slots__ = ("call_id", "context", "created", "ended", "holder", "offered", "receive", "source", "timed")

    def __init__(
        self, call_id: str, context: str, receive: dict[str, Any], source: Session | None, created: float
    ) -> None:
        self.call_id = call_id
        self.context = context
        self.receive = receive
        """The ``calling.call.receive`` payload, sent again as the offer to each next session."""
        self.source = source
        """The session whose demo stream plays the call; None for ``offer_call``'s calls."""
        self.created = created
        self.holder: Session | None = None
        self.offered: set[int] = set()
        self.ended = False
        self.timed = False
        """Its ring-out is on the core's timers."""


class Session:
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
        self.calls: dict[str, InboundCall] = {}
        """Inbound calls offered to this session, by call id, whether it still has them or passed them on."""
        self.live_calls: dict[str, dict[str, Any]] = {}
        """Inbound calls the session's stream has under way (call id → receive params), kept by the stream."""
        self.ended_calls: dict[str, None] = {}
        """Ids of inbound calls the stream ended lately."""
        self.rerouted: dict[str, InboundCall] = {}
        """Calls of this session's stream that it passed: their events go to the holder, or nowhere."""
        self.drains: set[Peer] = set()
        """Other connections the stream wrote rerouted events to since the pump last waited for them."""
        self.outbox: Outbox[dict[str, Any]] = Outbox()
        """Events to send this session later (payloads by due time on the core's clock)."""
        self.conn: Peer | None = None
        self.detached_at: float | None = None


@dataclass
class Connected:
    """What ``signalwire.connect`` came to: the frames to send, and on success the session and a connection
    that held it before and must be dropped first (a resume from a new socket)."""

    replies: list[bytes]
    session: Session | None = None
    evict: Peer | None = None
    restored: bool = False


@dataclass
class _Replay:
    items: Sequence[dict[str, Any]] | None = None
    shared: Iterator[dict[str, Any]] | None = None
    active: bool = field(init=False)

    def __post_init__(self) -> None:
        self.active = self.items is not None or self.shared is not None


class EmulatorCore:
    """The server side of RELAY as plain calls: see the module docstring; the options are :class:`Emulator`'s."""

    def __init__(
        self,
        *,
        project: str | None = None,
        token: str | None = None,
        rate: float = 5.0,
        mode: Mode = "demo",
        speed: float = 1.0,
        seed: int | None = None,
        replay: Iterable[dict[str, Any]] | None = None,
        ring_timeout: float = RING_TIMEOUT,
        log: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        journal_size: int = JOURNAL_SIZE,
        methods: Mapping[str, Handler] | None = None,
        playback: Recording | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if playback is not None and (mode == "demo" or replay is not None):
            raise ValueError("playback answers an app from a recording: it goes with neither demo traffic nor replay")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.project = project
        self.token = token
        self.rate = rate
        self.mode: Mode = mode
        self.demo = mode == "demo"
        self.speed = speed
        """Every simulated delay (ringing, media, far ends) is ``speed`` times shorter."""
        self.seed = seed
        self.ring_timeout = ring_timeout
        self.log = log
        self.clock = clock
        """Monotonic seconds: ring timeouts, session expiry, the outbox."""
        self.wall = wall
        """Wall-clock seconds: event timestamps and the journal."""
        self.methods = methods if methods is not None else {**METHODS, **CALL_METHODS, **MESSAGE_METHODS}
        self.fallback: Handler | None = None
        """Answers the methods not in :attr:`methods` (playback answers them all); None: ``-32601``."""
        self.stats = EmulatorStats()
        self.journal = Journal(journal_size)
        self.sessions: dict[str, Session] = {}
        """By protocol string."""
        self.on_schedule: Callable[[], None] = lambda: None
        """Called when something new is put on a timer: the server's ticker may have to wake sooner."""
        if isinstance(replay, Sequence):
            self._replay = _Replay(items=replay)
        elif replay is not None:
            self._replay = _Replay(shared=iter(replay))
        else:
            self._replay = _Replay()
        self.node_id = str(uuid.uuid4())
        self.space_id = str(uuid.uuid4())
        self._jwt_project = str(uuid.uuid4())
        # Frame ids are UUID-shaped as in the SDKs; a counter under a random prefix is cheaper than uuid4().
        self._id_prefix = str(uuid.uuid4())[:24]
        self._id_counter = 0
        self._credential_key = os.urandom(32)
        self._last_offered: dict[tuple[str, str], int] = {}
        """By (kind, context): the index of the session the last one went to."""
        self._ring_outs: Outbox[InboundCall] = Outbox()
        self._timers: Outbox[Callable[[], None]] = Outbox()
        self.calls = CallControl(self)
        self.messages = Messaging(self)
        self.far_ends = FarEnds()
        """The scripts of virtual parties: outbound numbers by rule, the default for everyone else."""
        self.after_request: list[Callable[[Request, dict[str, Any] | None], None]] = []
        """Told of each request a handler answered and its reply, before the reply is sent: the control
        plane's scenarios queue the events that follow it."""
        self.control_url = ""
        """The control plane's base URL (``http://host:port``) once it listens: recording URLs point there."""
        self.after_connect: list[Callable[[Session, bool], None]] = []
        """Told of each session a ``signalwire.connect`` opened (False) or resumed (True), before its result is
        sent: playback starts its timed events on the first."""
        self.playback = Playback(self, playback) if playback is not None else None
        """Plays a recording to the apps that connect (``relay serve --playback``); None otherwise."""

    # -- the funnel: every frame in or out is journaled here ----------------------------------------------

    def decode(self, peer: Peer, message: str | bytes) -> tuple[dict[str, Any] | None, Kind | None]:
        """Journal a frame the client sent; return it decoded and its kind, or Nones (logged) for anything that
        is not JSON-RPC: never raises."""
        raw = message.encode() if isinstance(message, str) else message
        session = peer.session.sessionid if peer.session is not None else ""
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.journal.add(APP_TO_RELAY, self.wall(), peer.id, session, None, None, raw)
            self.log(f"{peer.name}: ignored a frame that is not JSON ({len(raw)} bytes)")
            return None, None
        try:
            kind = classify(frame)
        except FrameError as exc:
            self.journal.add(APP_TO_RELAY, self.wall(), peer.id, session, None, frame, raw)
            self.log(f"{peer.name}: ignored a frame that is not JSON-RPC: {exc}")
            return None, None
        # Hot path (an ACK per event): the bytes only, decoded when the journal is read; a kept dict per
        # frame would leave thousands alive for the garbage collector to walk.
        self.journal.add(APP_TO_RELAY, self.wall(), peer.id, session, kind, None, raw)
        return frame, kind

    def encode(self, peer: Peer, frame: dict[str, Any], kind: Kind | None = None) -> bytes:
        """One frame to send ``peer``, encoded and journaled."""
        raw = orjson.dumps(frame)
        session = peer.session.sessionid if peer.session is not None else ""
        if kind is None:
            kind = classify(frame)
        self.journal.add(RELAY_TO_APP, self.wall(), peer.id, session, kind, None, raw)
        return raw

    def raw_out(self, peer: Peer, raw: str | bytes) -> None:
        """Journal a frame sent unchecked (a fault a test injects)."""
        data = raw.encode() if isinstance(raw, str) else raw
        session = peer.session.sessionid if peer.session is not None else ""
        self.journal.add(RELAY_TO_APP, self.wall(), peer.id, session, None, None, data)

    def _journal_event(self, peer: Peer | None, session: Session, data: bytes) -> None:
        self.journal.add(RELAY_TO_APP, self.wall(), peer.id if peer else "", session.sessionid, Kind.EVENT, None, data)

    # -- connect ---------------------------------------------------------------------------------------------

    def connect(self, peer: Peer, frame: dict[str, Any]) -> Connected:
        """Authenticate, create or resume the session: its result and first event, or the error to send."""
        rid = reply_id(frame.get("id"))
        params = frame.get("params")
        if not isinstance(params, dict):
            params = {}
        protocol = params.get("protocol")
        agent = params.get("agent")
        self.log(
            f"{peer.name}: signalwire.connect{' (resume)' if protocol else ''}"
            f" from agent {clip(agent) if isinstance(agent, str) else 'unnamed'}"
        )

        def refuse(code: int, message: str) -> Connected:
            return Connected([self.encode(peer, error(rid, code, message), Kind.ERROR)])

        identity = self.authenticate(params.get("authentication"))
        if identity is None:
            self.stats.auth_failures += 1
            self.log(f"{peer.name}: authentication failed")
            return refuse(AUTH_FAILED, AUTH_MESSAGE)
        project, credential = identity
        try:
            contexts = parse_contexts(params.get("contexts", []))
        except ValueError as exc:
            return refuse(INVALID_PARAMS, str(exc))
        self.expire_sessions()
        evict = None
        if protocol:
            session = self.sessions.get(protocol) if isinstance(protocol, str) else None
            if session is None or not hmac.compare_digest(session.credential, credential):
                # One answer for both, so a protocol string alone says nothing about whether its session exists.
                why = "session not found" if session is None else "credentials differ from the session's"
                self.log(f"{peer.name}: resume refused: {why}")
                return refuse(AUTH_FAILED, "session not found")
            state = params.get("authorization_state")
            if state is not None and not (isinstance(state, str) and _same(state, session.authorization_state)):
                self.log(f"{peer.name}: resume refused: authorization_state does not match")
                return refuse(BAD_AUTH_STATE, "invalid authorization_state")
            if session.conn is not None and session.conn is not peer:
                evict = session.conn
                evict.session = None
                self.log(f"{evict.name}: session resumed elsewhere, dropping this connection")
            if any(c not in session.contexts for c in contexts):
                merged = session.contexts + [c for c in contexts if c not in session.contexts]
                if len(merged) > MAX_CONTEXTS:
                    return Connected([self.encode(peer, error(rid, INVALID_PARAMS, TOO_MANY_CONTEXTS))], evict=evict)
                self.set_contexts(session, merged)
            restored = True
            self.stats.sessions_resumed += 1
        else:
            session = Session(make_protocol(project), project, self.stats.sessions_created, credential)
            self.sessions[session.protocol] = session
            self.set_contexts(session, contexts)
            restored = False
            self.stats.sessions_created += 1
        session.conn = peer
        session.detached_at = None
        peer.session = session
        self.journal.claim(peer.id, session.sessionid)
        session.authorization_state = base64.b64encode(os.urandom(96)).decode()
        auth_event = {
            "event_type": _AUTH_STATE,
            "event_channel": session.protocol,
            "timestamp": self.wall(),
            "project_id": project,
            "space_id": self.space_id,
            "params": {"authorization_state": session.authorization_state},
        }
        replies = [
            self.encode(peer, result(rid, self.connect_result(session, restored)), Kind.RESULT),
            self.encode(peer, event_frame(auth_event, self.next_id()), Kind.EVENT),
        ]
        what = "resumed" if restored else "created"
        self.log(f"{peer.name}: session {what}, {summary(session.contexts)}")
        for hook in self.after_connect:
            hook(session, restored)
        return Connected(replies, session, evict, restored)

    def authenticate(self, auth: Any) -> tuple[str, bytes] | None:
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

    def connect_result(self, session: Session, restored: bool) -> dict[str, Any]:
        return {
            "protocol": session.protocol,
            "identity": f"{session.sessionid}@{self.node_id}.emulator",
            "authorization": {
                "project": session.project,
                "scopes": list(SCOPES),
                "expires_at": None,
                "signature": hashlib.sha256(session.protocol.encode()).hexdigest(),
            },
            "sessionid": session.sessionid,
            "nodeid": self.node_id,
            "session_restored": restored,
        }

    def expire_sessions(self) -> None:
        limit = self.clock() - SESSION_TTL
        stale = [p for p, s in self.sessions.items() if s.detached_at is not None and s.detached_at < limit]
        for protocol in stale:
            del self.sessions[protocol]

    def detach(self, peer: Peer) -> None:
        """The connection is gone: its session, if it still holds one, waits to be resumed."""
        session = peer.session
        if session is not None and session.conn is peer:
            session.conn = None
            session.detached_at = self.clock()

    # -- frames from a connected client ----------------------------------------------------------------------

    def receive(self, peer: Peer, message: str | bytes) -> bytes | None:
        """Handle one frame from a connected client; the encoded reply to send, if any."""
        try:
            reply = self._dispatch(peer, message)
        except Exception as exc:  # a bug must cost the client one request, not its connection
            self.log(f"{peer.name}: internal error handling a frame: {exc!r}")
            reply = error(None, INTERNAL_ERROR, "Internal error")
        return None if reply is None else self.encode(peer, reply)

    def _dispatch(self, peer: Peer, message: str | bytes) -> dict[str, Any] | None:
        frame, kind = self.decode(peer, message)
        if frame is None:
            return None
        session = peer.session
        if session is None:
            return None  # taken over by a resume on another socket, which is being dropped
        fid = frame.get("id")
        if kind is Kind.RESULT:
            if isinstance(fid, str):
                data = session.unacked.pop(fid, None)
                if data is not None:
                    session.unacked_bytes -= len(data)
                    self.stats.events_acked += 1
                elif peer.pings.pop(fid, None) is not None:
                    self.stats.pings_answered += 1
                elif fid == peer.disconnect_id:
                    peer.disconnect_replied()
            return None
        if kind is Kind.ERROR:
            self.log(f"{peer.name}: client replied with an error to {clip(fid)}")
            if isinstance(fid, str) and fid == peer.disconnect_id:
                peer.disconnect_replied()
            return None
        method = frame["method"]
        if "id" not in frame:
            self.log(f"{peer.name}: ignored {clip(method)} without an id")
            return None
        if reply_id(fid) is not fid:
            self.log(f"{peer.name}: refused {clip(method)} with an id that is no string, number or null")
            return error(None, INVALID_REQUEST, "id must be a string, a number or null")
        params = frame.get("params")
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            return error(fid, INVALID_PARAMS, "params must be an object")
        handler = self.methods.get(method) or self.fallback
        if handler is None:
            return error(fid, METHOD_NOT_FOUND, f"Method not found: {clip(method)}")
        req = Request(peer, session, fid, method, params)
        reply = handler(self, req)
        for hook in self.after_request:
            hook(req, reply)
        return reply

    def receive_contexts(self, peer: Peer, session: Session, method: str, contexts: list[str], add: bool) -> str:
        """``signalwire.receive`` (``add``) or ``unreceive``: '' when done, else why not."""
        if add:
            new = session.contexts + [c for c in contexts if c not in session.contexts]
            if len(new) > MAX_CONTEXTS:
                return TOO_MANY_CONTEXTS
        else:
            new = [c for c in session.contexts if c not in contexts]
        if new != session.contexts:
            self.set_contexts(session, new)
        self.log(f"{peer.name}: {method} {len(contexts)} context(s): now {summary(session.contexts)}")
        return ""

    def set_contexts(self, session: Session, contexts: list[str]) -> None:
        """New contexts act at once: demo traffic restarts on them, as a DemoTraffic's contexts are fixed."""
        session.contexts = contexts
        if self._replay.active:
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
                space_id=self.space_id,
                event_channel=session.protocol,
                start=self.wall(),
                concurrency=8,
            )
            session.source = iter(traffic)
            session.live_calls, session.ended_calls = traffic.inbound_calls, traffic.ended_inbound_calls

    def _replay_source(self, session: Session) -> Iterator[dict[str, Any]]:
        replay = self._replay
        payloads = iter(replay.items) if replay.items is not None else replay.shared
        assert payloads is not None
        channel = session.protocol
        for payload in payloads:
            if not isinstance(payload, dict):
                self.log(f"replay: skipped an entry that is not an object ({type(payload).__name__})")
                continue
            _follow_calls(session, payload)
            yield payload if payload.get("event_channel") else {**payload, "event_channel": channel}

    @property
    def replaying(self) -> bool:
        return self._replay.active

    # -- what the server sends on its own --------------------------------------------------------------------

    def backlog(self, session: Session) -> list[bytes]:
        """The events ``session`` has not ACKed, oldest first, journaled as sent again."""
        backlog = list(session.unacked.values())
        peer = session.conn
        self.journal.add_events(self.wall(), peer.id if peer else "", session.sessionid, backlog)
        return backlog

    def draw(self, session: Session, size: int) -> tuple[list[bytes], int]:
        """Hot path. Take up to ``size`` payloads from the session's stream: the encoded, tracked, journaled event
        frames for the session itself, and how many were taken (events of calls it passed go elsewhere or
        nowhere)."""
        source = session.source
        if source is None:
            return [], 0
        batch: list[bytes] = []
        # Paced demo traffic is stamped when sent, as a real server stamps it; unpaced traffic and replays
        # keep their own timestamps, whose gaps are what `relay replay --speed` reproduces.
        restamp = self.rate > 0 and not self._replay.active
        rerouted = session.rerouted
        dumps, track = orjson.dumps, self._track
        drawn = 0
        for payload in itertools.islice(source, size):
            drawn += 1
            if restamp:
                payload["timestamp"] = self.wall()
            if rerouted and self._reroute(session, payload):
                continue
            frame_id = self.next_id()
            data = dumps(event_frame(payload, frame_id))
            track(session, frame_id, data)
            batch.append(data)
        if batch:
            peer = session.conn
            self.journal.add_events(self.wall(), peer.id if peer else "", session.sessionid, batch)
        session.sent += len(batch)  # the cap counts what the session got, not events of calls it passed
        self.stats.events_sent += len(batch)
        return batch, drawn

    def push(self, payload: dict[str, Any]) -> tuple[str, list[tuple[Peer, bytes]]]:
        """One ``signalwire.event`` for every connected session, tracked for ACK and redelivery: its frame id
        (the same for all) and the frame to send each connection."""
        frame_id = self.next_id()
        frame = event_frame(payload, frame_id)
        data = orjson.dumps(frame)
        out = []
        for session in self.sessions.values():
            peer = session.conn
            if peer is not None and peer.session is session:
                self._track(session, frame_id, data)
                self._journal_event(peer, session, data)
                out.append((peer, data))
        self.stats.events_sent += len(out)
        return frame_id, out

    def ping(self, peer: Peer) -> bytes:
        """A ``signalwire.ping`` for ``peer``, remembered so its answer is counted."""
        ping_id = new_id()
        if len(peer.pings) > 100:
            peer.pings.clear()
        peer.pings[ping_id] = self.clock()
        self.stats.pings_sent += 1
        return self.encode(peer, request(Kind.PING.value, {"timestamp": self.wall()}, ping_id), Kind.PING)

    def disconnect(self, peer: Peer, restart: bool) -> bytes:
        """A ``signalwire.disconnect`` for ``peer`` (``restart``: come back with a fresh session)."""
        peer.disconnect_id = new_id()
        peer.disconnect_answered = False
        frame = request(Kind.DISCONNECT.value, {"restart": True} if restart else {}, peer.disconnect_id)
        return self.encode(peer, frame, Kind.DISCONNECT)

    def session_by_id(self, sessionid: str) -> Session | None:
        """The session whose connect result gave ``sessionid`` (the control plane's ``session_id``)."""
        return next((s for s in self.sessions.values() if s.sessionid == sessionid), None)

    def forget(self, session: Session) -> None:
        """Drop ``session``: it cannot be resumed any more."""
        self.sessions.pop(session.protocol, None)

    def schedule(self, session: Session, delay: float, payload: dict[str, Any]) -> None:
        """Send ``payload`` to ``session`` as an event ``delay`` seconds from now (tracked for ACK as any event)."""
        session.outbox.put(self.clock() + max(0.0, delay), payload)
        self.on_schedule()

    def schedule_flow(self, session: Session, steps: Iterable[tuple[int, str, dict[str, Any], str | None]]) -> int:
        """Put a flow's steps (see :mod:`relay_cli.emulator.flows`: delays in microseconds) on the session's
        outbox, each after the one before; how many. Each is stamped when it is sent."""
        now, due, n = self.clock(), 0, 0
        outbox, space = session.outbox, self.space_id
        for delay_us, event_type, params, context in steps:
            due += delay_us
            payload: dict[str, Any] = {"event_type": event_type, "space_id": space, "params": params}
            if context is not None:
                payload["context"] = context
            outbox.put(now + due / 1_000_000, payload)
            n += 1
        self.on_schedule()
        return n

    def later(self, delay: float, action: Callable[[], None], *, scaled: bool = True) -> None:
        """Run ``action`` ``delay`` simulated seconds from now (``scaled``: divided by :attr:`speed`).

        The action decides when it runs whether it still applies (a play stopped meanwhile does nothing), so
        nothing needs cancelling; an exception in it is logged, never raised into the server.
        """
        if scaled:
            delay /= self.speed
        self._timers.put(self.clock() + max(0.0, delay), action)
        self.on_schedule()

    def next_due(self) -> float | None:
        """When :meth:`tick` next has work, on :attr:`clock`; None when nothing is scheduled."""
        dues = [
            self._ring_outs.next_due(),
            self._timers.next_due(),
            *(s.outbox.next_due() for s in self.sessions.values()),
        ]
        return min((d for d in dues if d is not None), default=None)

    def tick(self, now: float | None = None) -> None:
        """Do what has fallen due by ``now``: calls ringing out, timed actions, scheduled events."""
        now = self.clock() if now is None else now
        for call in self._ring_outs.pop_due(now):
            self._ring_out(call)
        for action in self._timers.pop_due(now):
            try:
                action()
            except Exception as exc:  # one broken timer must not stop the others or the server
                self.log(f"internal error in a timed action: {exc!r}")
        for session in list(self.sessions.values()):
            if session.outbox.next_due() is not None:
                for payload in session.outbox.pop_due(now):
                    self.deliver(session, {**payload, "timestamp": self.wall()})

    def deliver(self, session: Session, payload: dict[str, Any]) -> Peer | None:
        """Send one event to ``session`` now, tracked for ACK: the connection written to, if any."""
        payload = {**payload, "event_channel": session.protocol, "project_id": session.project}
        frame_id = self.next_id()
        frame = event_frame(payload, frame_id)
        data = orjson.dumps(frame)
        self._track(session, frame_id, data)
        self.stats.events_sent += 1
        peer = session.conn
        self._journal_event(peer, session, data)
        if peer is None:
            return None  # delivered when the session resumes, with what else it did not ACK
        peer.write((data,))
        return peer

    def _track(self, session: Session, frame_id: str, data: bytes) -> None:
        unacked = session.unacked
        unacked[frame_id] = data
        session.unacked_bytes += len(data)
        if len(unacked) > MAX_UNACKED or session.unacked_bytes > MAX_UNACKED_BYTES:
            self._forget_oldest(session)

    def _forget_oldest(self, session: Session) -> None:
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

    def next_id(self) -> str:
        self._id_counter += 1
        return f"{self._id_prefix}{self._id_counter:012x}"

    # -- routing of inbound calls ----------------------------------------------------------------------------

    def offer_call(
        self, context: str, call_id: str, from_number: str, to_number: str, *, target: Session | None = None
    ) -> InboundCall:
        """Start an inbound call on ``context`` and offer it to one session receiving on it (in turn), or to
        ``target``; routing's record of it (its ``holder`` is who has it now)."""
        params: dict[str, Any] = {
            "call_state": "created",
            "direction": "inbound",
            "device": {"type": "phone", "params": {"from_number": from_number, "to_number": to_number}},
            "call_id": call_id,
            "node_id": self.node_id,
            "tag": "",
            "context": context,
            "segment_id": call_id,
        }
        receive = {"event_type": _RECEIVE, "space_id": self.space_id, "context": context, "params": params}
        call = InboundCall(call_id, context, receive, None, self.clock())
        self._schedule_ring_out(call)
        if target is not None:
            self._offer(call, target)
            return call
        target = self.in_turn("call", context, self._receivers(context, call))
        if target is not None:
            self._offer(call, target)
        else:
            self.log(f"offered call {call_id}: no session receives on {clip(context)}")
        return call

    def pass_call(self, session: Session, fid: Any, call_id: str) -> dict[str, Any]:
        """``calling.pass``: the holder gives the call back to routing, which offers it to the next session."""
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
        self.log(f"session {session.index} passed call {clip(call_id)}: offered to {_offered_to(target)}")
        return result(fid, {"code": "200", "message": PASSING_MESSAGE, "call_id": call_id})

    def in_turn(self, kind: str, context: str, candidates: list[Session]) -> Session | None:
        """Whose turn it is among ``candidates`` (oldest first) for the next ``kind`` ("call", "message") on
        ``context``: round robin, each kind taking its own turns; None when there is no candidate."""
        if not candidates:
            return None
        last = self._last_offered.get((kind, context), -1)
        target = next((s for s in candidates if s.index > last), candidates[0])
        self._last_offered[(kind, context)] = target.index
        return target

    def _receivers(self, context: str, call: InboundCall) -> list[Session]:
        """The connected sessions on ``context`` that have not been offered ``call``, oldest first."""
        found = [
            s
            for s in self.sessions.values()
            if s.conn is not None and s.index not in call.offered and context in s.contexts
        ]
        found.sort(key=lambda s: s.index)
        return found

    def _next_receiver(self, call: InboundCall, after: Session) -> Session | None:
        """Who is offered ``call`` after ``after`` passed it: the next session in turn, wrapping around."""
        candidates = self._receivers(call.context, call)
        if not candidates:
            return None
        return next((s for s in candidates if s.index > after.index), candidates[0])

    def _offer(self, call: InboundCall, target: Session) -> None:
        """Make ``target`` the call's holder and send it the call's ``calling.call.receive``."""
        call.holder = target
        call.offered.add(target.index)
        _remember(target.calls, call)
        self.stats.calls_offered += 1
        self.deliver(target, {**call.receive, "timestamp": self.wall()})

    def _stream_call(self, session: Session, call_id: str, receive: dict[str, Any]) -> InboundCall:
        """A call of the session's own stream, first looked at when the session passes it: until then the
        stream's bookkeeping (``live_calls``) is all there is of it, so routing costs nothing per event."""
        context = receive.get("context")
        envelope = {"event_type": _RECEIVE, "space_id": self.space_id, "context": context, "params": receive}
        call = InboundCall(call_id, context if isinstance(context, str) else "", envelope, session, self.clock())
        call.holder = session
        call.offered.add(session.index)
        _remember(session.calls, call)
        return call

    def _reroute(self, session: Session, payload: dict[str, Any]) -> bool:
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
            call.ended = True  # a ring-out still on the timers finds it ended and does nothing
        if call.holder is not None:
            conn = self.deliver(call.holder, payload)
            if conn is not None:
                session.drains.add(conn)
        return True

    def _schedule_ring_out(self, call: InboundCall) -> None:
        if not call.timed and not call.ended:
            call.timed = True
            self._ring_outs.put(call.created + self.ring_timeout / self.speed, call)
            self.on_schedule()

    def _ring_out(self, call: InboundCall) -> None:
        """The ring timeout: a call still ringing ends; the session holding it, if any, is told.

        Only ``offer_call``'s calls can be held then: a demo call is timed only once nobody holds it. A call the
        app controls (:class:`CallControl`) is ended by it instead, and not at all once answered.
        """
        if call.ended or self.calls.ring_out(call):
            return
        call.ended = True
        holder = call.holder
        if holder is None:
            self.log(f"call {clip(call.call_id)} rang out with nobody holding it")
            return
        params = {k: v for k, v in call.receive["params"].items() if k not in ("context", "segment_id")}
        for state in ("ending", "ended"):
            state_params = {**params, "call_state": state, "end_reason": "noAnswer"}
            event = {"event_type": _STATE, "timestamp": self.wall(), "space_id": self.space_id}
            self.deliver(holder, {**event, "params": state_params})


def summary(contexts: Sequence[str]) -> str:
    """Contexts for a log line: a count and the first few, shortened, never the whole list."""
    if not contexts:
        return "no contexts"
    shown = ", ".join(clip(c, 32) for c in contexts[:3])
    more = f", +{len(contexts) - 3} more" if len(contexts) > 3 else ""
    return f"{len(contexts)} context(s): {shown}{more}"


def clip(value: Any, limit: int = 64) -> str:
    """A client-supplied value for a log line: strings quoted (escaped) and shortened, other values by type."""
    if isinstance(value, str):
        return repr(value[:limit] + "…" if len(value) > limit else value)
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def reply_id(value: Any) -> Any:
    """The id to answer a request with: its own when JSON-RPC allows it (a string, a number, null), else null."""
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    return None


def _follow_calls(session: Session, payload: dict[str, Any]) -> None:
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


def _remember(calls: dict[str, InboundCall], call: InboundCall) -> None:
    """Add ``call`` under its id, forgetting the oldest beyond ``MAX_CALLS``."""
    calls[call.call_id] = call
    if len(calls) > MAX_CALLS:
        del calls[next(iter(calls))]


def _offered_to(session: Session | None) -> str:
    if session is None:
        return "nobody (it rings unheld until its ring timeout)"
    return f"session {session.index}"


def _same(a: str, b: str) -> bool:
    """Compare secrets in constant time; as bytes, since compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(a.encode(), b.encode())
