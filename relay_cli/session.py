"""A RELAY client session over WebSockets: connect, authenticate, ACK, keep alive, reconnect, resume.

The session is a library layer: it yields event payloads and reports its status through callbacks, so
``relay tail`` and any other program use it the same way. Every event is ACKed the moment it is read,
before it is handed on, so slow rendering never delays the server; only the ``on_event`` hook (a
recording) runs before the ACK, so that an ACK means the event is kept.

An observer must not take calls: the server offers each inbound call on a context to one of the clients
subscribed to it, so with ``pass_calls`` every offered call is passed back to routing (``calling.pass``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import random
import socket
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConcurrencyError, ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode

from relay_cli import protocol
from relay_cli.burst import BurstClientConnection
from relay_cli.errors import RelayError, UsageError
from relay_cli.event import InvalidEvent, check_payload
from relay_cli.protocol import ACK_HEAD, ACK_TAIL, Kind

__all__ = [
    "AuthError",
    "Credentials",
    "EndpointError",
    "Received",
    "RelaySession",
    "SessionConfig",
    "SessionError",
    "SessionStats",
    "UntrustedCertificate",
    "endpoint_url",
    "is_loopback_url",
]

DEFAULT_HOST = "relay.signalwire.com"
_SEEN_IDS = 10_000
_PENDING_PASSES = 1_000
_LONG_KEY = 64
_EVENT = Kind.EVENT.value
"""Ids and call ids longer than this are remembered by a 16-byte digest: memory stays bounded in bytes."""
_BAD_HOST_CHARS = frozenset("@/?# \r\n\t\\")


class SessionError(RelayError):
    """A session that cannot go on: the message is one line for the user, with no secret in it."""


class AuthError(SessionError):
    """The server rejected the credentials before any session was established."""


class UntrustedCertificate(SessionError):
    """The server's TLS certificate is not trusted: a caller may say how to trust another CA (``SessionConfig.ssl``)."""


class EndpointError(SessionError, UsageError):
    """A URL or host :func:`endpoint_url` refuses, a usage error: ``param`` names the argument (``url`` or
    ``host``), ``value`` is as quoted, ``detail`` the rest of the message, from its separator on.
    ``scheme`` says a URL was given as the host: a caller may suggest giving it as the URL instead."""

    def __init__(self, param: str, value: str, detail: str, *, scheme: bool = False) -> None:
        super().__init__(f"{param} {value!r}{detail}" + (" (or give it as url)" if scheme else ""))
        self.param, self.value, self.detail, self.scheme = param, value, detail, scheme


class _Lost(Exception):
    """The connection is gone or unusable; reconnect."""


class _ResumeRefused(Exception):
    """The server would not resume the session: connect a fresh one at once (the old one is gone)."""


@dataclass(frozen=True)
class Credentials:
    """Project and token, or a JWT. ``repr`` never shows a secret."""

    project: str | None = None
    token: str | None = field(default=None, repr=False)
    jwt: str | None = field(default=None, repr=False)


@dataclass
class SessionConfig:
    url: str
    credentials: Credentials
    contexts: Sequence[str] = ()
    ssl: ssl.SSLContext | None = None
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    idle_timeout: float = 45.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    auth_attempts: int = 3
    open_timeout: float = 10.0
    pass_calls: bool = True
    """Pass every offered inbound call back to routing: the server offers a call to one subscriber only."""
    stable_after: float = 30.0
    """The backoff starts again from ``backoff_initial`` only after a connection stayed up this long, so a
    server that accepts and drops at once is not hammered."""
    connect_retries: int = 3
    """Before a first session: quick retries (a server starting up), then :class:`SessionError`."""
    connect_retry_delay: float = 0.5
    close_timeout: float = 2.0


@dataclass
class SessionStats:
    received: int = 0
    duplicates: int = 0
    malformed: int = 0
    reconnects: int = 0
    connects: int = 0
    resumed: int = 0
    passed: int = 0


@dataclass(slots=True)
class Received:
    """One event: its payload (the frame's params), the frame's id, and the payload re-encoded compactly."""

    payload: dict[str, Any]
    id: Any
    data: bytes


def endpoint_url(*, url: str | None = None, host: str | None = None) -> str:
    """The WebSocket URL to dial: ``url`` as given, else ``wss://`` and the space host, with no path.

    Plain ``ws://`` is refused unless it points at this machine: credentials must not cross a network
    in clear text. A port out of range or a host name no resolver takes (an empty or over-long label) is refused
    here, not met later as an exception.
    """
    if url:
        hostname = _dialable("url", protocol.display_url(url), url)
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss") or not hostname:
            raise EndpointError(
                "url", protocol.display_url(url), " must look like wss://HOST[:PORT] or ws://127.0.0.1:PORT"
            )
        if scheme == "ws" and not _is_loopback(hostname):
            raise EndpointError(
                "url", protocol.display_url(url), ": plain ws:// is only allowed to a loopback address; use wss://"
            )
        return url
    host = (host or DEFAULT_HOST).strip()
    if not host or any(c in _BAD_HOST_CHARS for c in host):
        raise EndpointError("host", host, " must be a bare host name such as example.signalwire.com")
    if host.startswith(("ws://", "wss://", "http://", "https://")):
        raise EndpointError("host", host, " must be a bare host name, without a scheme", scheme=True)
    if not _dialable("host", host, f"wss://{host}"):
        raise EndpointError("host", host, " must be a bare host name such as example.signalwire.com")
    return f"wss://{host}"


def _dialable(param: str, shown: str, url: str) -> str | None:
    """``url``'s host name once it is one a socket can dial (None when it has none); else EndpointError."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        what = "URL" if param == "url" else "host"
        raise EndpointError(param, shown, f" is not a valid {what}: {exc}") from None
    if hostname:
        try:
            ipaddress.ip_address(hostname)
        except ValueError:
            try:
                hostname.encode("idna")
            except UnicodeError:
                raise EndpointError(
                    param, shown, " has a host name no resolver takes (an empty or too long label)"
                ) from None
    return hostname


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (a local emulator, not a real RELAY service)."""
    try:
        hostname = urlsplit(url).hostname
    except ValueError:
        return False
    return hostname is not None and _is_loopback(hostname)


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _digest(value: str) -> bytes:
    """The set key of a long id: 200 KB ids must not pile up in memory."""
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class _Recent:
    """Keys seen lately, in two generations of at most ``limit`` each: bounded in count, and in bytes by
    :func:`_key`."""

    __slots__ = ("_before", "_limit", "_now")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._now: set[str | int | bytes] = set()
        self._before: set[str | int | bytes] = set()

    def add(self, key: str | int | bytes) -> bool:
        """Remember ``key``; say whether it is new."""
        if key in self._now or key in self._before:
            return False
        self._now.add(key)
        if len(self._now) >= self._limit:
            self._before, self._now = self._now, set()
        return True


class RelaySession:
    """One logical RELAY session that survives reconnects, resuming where the server allows it.

    ``status`` gets progress lines, ``problem`` what went wrong (malformed frames, lost connections,
    retries: shown even when progress is not), ``debug`` what only ``-v`` shows (the
    outcome of each ``calling.pass``). ``on_event(payload, data)`` runs for every new event before its
    ACK is sent: an exception from it stops the session with that event un-ACKed. ``secrets`` is shared
    with whatever prints the lines (a :class:`~relay_cli.terminal.Terminal`'s), so that it redacts the
    ``authorization_state`` values the session learns.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        status: Callable[[str], None] = lambda _: None,
        problem: Callable[[str], None] = lambda _: None,
        debug: Callable[[str], None] = lambda _: None,
        on_event: Callable[[dict[str, Any], bytes], object] | None = None,
        secrets: protocol.Secrets | None = None,
    ) -> None:
        self.config = config
        self.secrets = secrets or protocol.Secrets(config.credentials.token, config.credentials.jwt)
        """What no line from here may show; each ``authorization_state`` learned is added to it."""
        self.stats = SessionStats()
        self.status = status
        self.last_error: str | None = None
        """Why the last connection attempt failed, for a caller that gives up waiting."""
        self.on_event = on_event
        self._problem = problem
        self._debug = debug
        self._protocol: str | None = None
        self._auth_state: str | None = None
        self._refused: str | None = None
        self._ws: ClientConnection | None = None
        self._queued: list[bytes] = []
        self._closing = False
        self._restart = False
        self._last_rx = 0.0
        self._ping_id: str | None = None
        self._ping_sent = 0.0
        self._half_open: str | None = None
        # A resumed session redelivers what it did not see ACKed: those already shown are ACKed again but
        # not shown twice.
        self._seen = _Recent(_SEEN_IDS)
        self._passed = _Recent(_SEEN_IDS)
        self._passes: dict[str, str] = {}
        """Request id of each ``calling.pass`` not answered yet → the call id, for its ``debug`` line."""
        self._pass_prefix = protocol.new_id()[:-12]
        """Pass request ids are this UUID prefix and a counter: unique, UUID-shaped, and cheaper than a
        fresh UUID each (the system call for randomness is most of a pass's cost)."""
        self._pass_count = 0

    async def events(self) -> AsyncGenerator[Received, None]:
        """Every event the server sends, ACKed already, across reconnects, until :meth:`close`.

        Before a first session, a few quick retries, then :class:`SessionError`; after it, reconnects
        forever, backing off while connections do not stay up.
        """
        cfg = self.config
        loop = asyncio.get_running_loop()
        rejected = 0
        failures = 0
        delay = cfg.backoff_initial
        while not self._closing:
            try:
                ws = await self._open()
            except _ResumeRefused:
                continue
            except _Rejected as exc:
                rejected += 1
                if rejected >= cfg.auth_attempts:
                    raise AuthError(
                        f"authentication failed {rejected} times, giving up: {exc}"
                        if rejected > 1
                        else f"authentication failed: {exc}"
                    ) from None
                self._problem(f"authentication rejected ({exc}); trying again in {delay:.0f} s")
            except _Lost as exc:
                self.last_error = str(exc)
                if not self.stats.connects:
                    failures += 1
                    if failures > cfg.connect_retries:
                        tries = f" (tried {failures} times)" if failures > 1 else ""
                        raise SessionError(f"cannot connect to {protocol.display_url(cfg.url)}: {exc}{tries}") from None
                    wait = cfg.connect_retry_delay * 2 ** (failures - 1)
                    self._problem(f"cannot connect: {exc}; retrying in {wait:.1f} s")
                    await asyncio.sleep(wait)
                    continue
                self._problem(f"cannot connect: {exc}; retrying in {delay:.1f} s")
            else:
                rejected = 0
                if self.stats.connects > 1:
                    self.stats.reconnects += 1
                up_since = loop.time()
                try:
                    async for item in self._receive(ws):
                        yield item
                except _Lost as exc:
                    if self._closing:
                        break
                    if loop.time() - up_since >= cfg.stable_after:
                        delay = cfg.backoff_initial
                    self._problem(f"connection lost: {exc}; reconnecting in {delay:.1f} s")
                finally:
                    await self._drop(ws)
                if self._closing:
                    break
            if self._closing:
                break
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, cfg.backoff_max)

    async def close(self) -> None:
        """Stop reconnecting and close the socket cleanly."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            await self._drop(ws)

    async def _open(self) -> ClientConnection:
        cfg = self.config
        resuming = self._protocol is not None and not self._restart
        self.status(f"connecting to {protocol.display_url(cfg.url)}" + (" (resuming)" if resuming else ""))
        tls: dict[str, Any] = {"ssl": cfg.ssl} if cfg.ssl is not None and cfg.url.startswith("wss:") else {}
        try:
            ws = await connect(
                cfg.url,
                open_timeout=cfg.open_timeout,
                close_timeout=cfg.close_timeout,
                ping_interval=None,
                max_size=protocol.MAX_FRAME,
                compression=None,
                user_agent_header=protocol.AGENT,
                create_connection=BurstClientConnection,
                **tls,
            )
        except InvalidURI as exc:
            raise SessionError(f"invalid URL {protocol.display_url(cfg.url)!r}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise UntrustedCertificate(
                f"the TLS certificate of {protocol.display_url(cfg.url)} is not trusted ({exc.verify_message})"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise _Lost(_reason(exc)) from None
        try:
            result = await self._connect(ws, resuming)
        except BaseException:
            await self._drop(ws)
            raise
        self._ws = ws
        restored = bool(result.get("session_restored")) and resuming
        contexts = ", ".join(cfg.contexts) or "none"
        if restored:
            self.stats.resumed += 1
            self.status(f"connected, session resumed (contexts: {contexts})")
        elif self._refused is not None:
            self._problem(
                f"the server refused to resume the session ({self._refused}): connected, fresh session "
                f"(contexts: {contexts}); events in the gap may be missing"
            )
        elif self.stats.connects:
            self._problem(f"connected, fresh session (contexts: {contexts}); events in the gap may be missing")
        else:
            self.status(f"connected (contexts: {contexts})")
        self.stats.connects += 1
        self._restart = False
        self._refused = None
        protocol_id = result.get("protocol")
        self._protocol = protocol_id if isinstance(protocol_id, str) and protocol_id else None
        return ws

    async def _connect(self, ws: ClientConnection, resuming: bool) -> dict[str, Any]:
        """Send ``signalwire.connect`` and wait for its reply; a refused resume falls back to a fresh one."""
        cfg = self.config
        params = protocol.connect_params(
            project=cfg.credentials.project,
            token=cfg.credentials.token,
            jwt=cfg.credentials.jwt,
            contexts=cfg.contexts,
            protocol=self._protocol if resuming else None,
            authorization_state=self._auth_state if resuming else None,
        )
        request = protocol.request(Kind.CONNECT.value, params)
        reply = await self._call(ws, request)
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = _text(error.get("message")) if isinstance(error, dict) else _text(error)
            message = self._redact(message[:300])
            if resuming and code in (protocol.AUTH_FAILED, protocol.BAD_AUTH_STATE):
                self._refused = message or f"error {_text(code)}"
                self._protocol = self._auth_state = None
                raise _ResumeRefused
            raise _Rejected(message or f"error {_text(code)}")
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    async def _call(self, ws: ClientConnection, request: dict[str, Any]) -> dict[str, Any]:
        """Send a request and wait for the response with its id, answering the server meanwhile."""
        try:
            await ws.send(orjson.dumps(request), text=True)
            async with asyncio.timeout(self.config.open_timeout):
                while True:
                    data = await ws.recv(decode=False)
                    try:
                        frame = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(frame, dict) and frame.get("id") == request["id"] and "method" not in frame:
                        return frame
                    if isinstance(frame, dict) and "method" in frame:
                        await self._answer(ws, frame, data)
        except TimeoutError:
            raise _Lost(f"no reply to {request['method']} in {self.config.open_timeout:.0f} s") from None
        except ConnectionClosed as exc:
            raise _Lost(_closed_reason(exc)) from None

    async def _receive(self, ws: ClientConnection) -> AsyncIterator[Received]:
        loop = asyncio.get_running_loop()
        self._last_rx = loop.time()
        self._ping_id = None
        self._half_open = None
        watchdog = asyncio.create_task(self._watch(ws))
        try:
            while True:
                try:
                    data = await ws.recv(decode=False)
                    self._last_rx = loop.time()
                    item = await self._handle(ws, data)
                except ConnectionClosed as exc:
                    raise _Lost(self._half_open or _closed_reason(exc)) from None
                if item is not None:
                    yield item
        finally:
            watchdog.cancel()

    async def _handle(self, ws: ClientConnection, data: bytes) -> Received | None:
        """ACK or answer one frame; return it as an event when it is one.

        An event is ACKed after ``on_event`` has run (so a recorded event is on disk before the server
        forgets it), and also when it is malformed or a duplicate, so the server does not redeliver it.
        """
        if protocol.too_many_containers(data):
            self._malformed(data, f"over {protocol.MAX_CONTAINERS:,} arrays and objects")
            return None
        try:
            frame = orjson.loads(data)
            is_event = frame.__class__ is dict and frame.get("method") == _EVENT
            kind = Kind.EVENT if is_event else protocol.classify(frame)
        except (orjson.JSONDecodeError, protocol.FrameError) as exc:
            self._malformed(data, str(exc) if isinstance(exc, protocol.FrameError) else "not JSON")
            return None
        if kind is Kind.EVENT:
            frame_id = frame.get("id")
            ack = None
            if frame_id is not None:
                try:
                    ack = ACK_HEAD + orjson.dumps(frame_id) + ACK_TAIL
                except orjson.JSONEncodeError:
                    self._malformed(data, "its id is nested too deeply")
                    return None
            payload: dict[str, Any] = frame.get("params")
            try:
                check_payload(payload)
                encoded = orjson.dumps(payload)
            except (InvalidEvent, orjson.JSONEncodeError) as exc:
                if ack is not None:
                    self._queue(ws, ack)
                why = f"invalid event: {exc}" if isinstance(exc, InvalidEvent) else "nested too deeply"
                self._malformed(data, why)
                return None
            key: str | int | bytes | None
            if frame_id.__class__ is str:
                key = frame_id if len(frame_id) <= _LONG_KEY else _digest(frame_id)
            else:
                key = frame_id if frame_id.__class__ is int else None
            if key is not None and not self._seen.add(key):
                self.stats.duplicates += 1
                if ack is not None:
                    self._queue(ws, ack)
                return None
            if self.on_event is not None:
                self.on_event(payload, encoded)
            if ack is not None:
                self._queue(ws, ack)
            self.stats.received += 1
            event_type = payload.get("event_type")
            if event_type == "calling.call.receive":
                if self.config.pass_calls:
                    self._pass(ws, payload)
            elif event_type == "signalwire.authorization.state":
                state = payload.get("params", {}).get("authorization_state")
                if isinstance(state, str) and state:
                    self._auth_state = state
                    self.secrets.add(state)
            return Received(payload, frame_id, encoded)
        if kind in (Kind.RESULT, Kind.ERROR):
            frame_id = frame.get("id")
            if frame_id == self._ping_id:
                self._ping_id = None
            elif frame_id.__class__ is str and self._passes:
                call_id = self._passes.pop(frame_id, None)
                if call_id is not None:
                    self._debug(self._pass_outcome(call_id, frame))
            return None
        await self._answer(ws, frame, data)
        return None

    def _queue(self, ws: ClientConnection, frame: bytes) -> None:
        """Queue an ACK (or a pass): those of a burst of events go out in one write, in order, once the burst
        is handled.

        Hot path. The frames of a burst are handed over by ``recv`` without the event loop running in
        between, so the flush scheduled with the first ACK runs right after the last one is queued:
        at most the time the burst takes, a millisecond or so, and one syscall instead of one each.
        """
        queued = self._queued
        queued.append(frame)
        if len(queued) == 1:
            asyncio.get_running_loop().call_soon(self._flush, ws)

    def _flush(self, ws: ClientConnection) -> None:
        queued, self._queued = self._queued, []
        if queued and isinstance(ws, BurstClientConnection):
            ws.write_texts(queued)

    def _pass(self, ws: ClientConnection, payload: dict[str, Any]) -> None:
        """Decline an offered call, returning it to routing, once per call id; never wait for the result."""
        params = payload.get("params", payload)
        call_id = params.get("call_id")
        if call_id.__class__ is not str or not call_id:
            self._debug("an offered call without a call_id cannot be passed")
            return
        shown = call_id[:80]
        if not self._passed.add(call_id if len(call_id) <= _LONG_KEY else _digest(call_id)):
            self._debug(f"call {shown} offered again: passed already, left alone")
            return
        node_id = params.get("node_id")
        target = {"node_id": node_id, "call_id": call_id} if isinstance(node_id, str) else {"call_id": call_id}
        self._pass_count += 1
        request = protocol.request(protocol.CALL_PASS, target, f"{self._pass_prefix}{self._pass_count:012x}")
        self._passes[request["id"]] = shown
        if len(self._passes) > _PENDING_PASSES:
            del self._passes[next(iter(self._passes))]
        self.stats.passed += 1
        self._queue(ws, orjson.dumps(request))

    def _pass_outcome(self, call_id: str, frame: dict[str, Any]) -> str:
        """One line for the reply to a ``calling.pass``: an error or a failure code never stops the tail."""
        error = frame.get("error")
        if error is not None:
            detail = (
                f"error {_text(error.get('code'))}: {_text(error.get('message'))}"
                if isinstance(error, dict)
                else "error"
            )
            return self._redact(f"could not pass call {call_id}: {detail}"[:300])
        value = frame.get("result")
        if isinstance(value, dict) and isinstance(value.get("result"), dict):
            value = value["result"]
        if not isinstance(value, dict) or "code" not in value:
            return f"passed call {call_id}"
        code = _text(value["code"])
        text = f"{code} {_text(value.get('message'))}".strip()
        if protocol.is_success(value):
            return self._redact(f"passed call {call_id} ({text})"[:300])
        gone = " (the call is gone already)" if code in (protocol.CALL_NOT_FOUND, protocol.CALL_GONE) else ""
        return self._redact(f"could not pass call {call_id}: {text}"[:300] + gone)

    async def _answer(self, ws: ClientConnection, frame: dict[str, Any], data: bytes) -> None:
        """Reply to a server request: every request with an id gets exactly one response."""
        method = frame.get("method")
        frame_id = frame.get("id")
        params: dict[str, Any] = frame["params"] if isinstance(frame.get("params"), dict) else {}
        if method == Kind.DISCONNECT.value:
            self._restart = params.get("restart") is True
            if self._restart:
                self._protocol = self._auth_state = None
            self.status("the server asked to disconnect" + (" and restart" if self._restart else "; will resume"))
            if frame_id is None:
                return
            reply = protocol.ack(frame_id)
        elif frame_id is None:
            return
        elif method == Kind.PING.value:
            echo = {"timestamp": params["timestamp"]} if "timestamp" in params else None
            reply = protocol.result(frame_id, echo)
        else:
            reply = protocol.error(frame_id, protocol.METHOD_NOT_FOUND, f"method not found: {str(method)[:100]}")
        try:
            encoded = orjson.dumps(reply)
        except orjson.JSONEncodeError:
            self._malformed(data, "nested too deeply")
            return
        await ws.send(encoded, text=True)

    async def _watch(self, ws: ClientConnection) -> None:
        """Ping the server, and close a half-open socket, saying why in ``_half_open``."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        next_ping = loop.time() + cfg.ping_interval
        tick = min(1.0, cfg.ping_timeout / 4, cfg.idle_timeout / 4, cfg.ping_interval / 2)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            reason = None
            if self._ping_id is not None and now - self._ping_sent >= cfg.ping_timeout:
                reason = f"no reply to ping in {cfg.ping_timeout:g} s (half-open socket)"
            elif now - self._last_rx >= cfg.idle_timeout:
                reason = f"no traffic for {cfg.idle_timeout:g} s (half-open socket)"
            if reason:
                self._half_open = reason
                await self._drop(ws)
                return
            if now >= next_ping and self._ping_id is None:
                request = protocol.request(Kind.PING.value, {"timestamp": time.time()})
                self._ping_id = request["id"]
                self._ping_sent = now
                next_ping = now + cfg.ping_interval
                try:
                    await ws.send(orjson.dumps(request), text=True)
                except ConnectionClosed:
                    return

    async def _drop(self, ws: ClientConnection) -> None:
        """Close the socket, gracefully when it still answers, else at once.

        Frames still in flight are read and discarded meanwhile: a full receive queue would stop the
        reading, and the server's close frame behind them would never be seen.
        """
        if self._ws is ws:
            self._ws = None
        self._flush(ws)
        discard = asyncio.create_task(_discard(ws))
        try:
            async with asyncio.timeout(self.config.close_timeout):
                await ws.close()
        except (TimeoutError, OSError, ConnectionClosed):
            ws.transport.abort()
        finally:
            discard.cancel()

    def _malformed(self, data: bytes, why: str) -> None:
        self.stats.malformed += 1
        self._problem(f"skipped a malformed frame ({why}): {self.secrets.excerpt(data)}")

    def _redact(self, message: str) -> str:
        """Servers may echo what they were sent; never pass a secret on, even to a caller's own sink."""
        return self.secrets.scrub(message)


class _Rejected(Exception):
    """The server refused the credentials."""


async def _discard(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed, ConcurrencyError):
        while True:
            await ws.recv(decode=False)


def _text(value: Any) -> str:
    """A scalar from the wire as text; anything else (a nested structure, maybe too deep to print) as ``?``."""
    if isinstance(value, str):
        return value[:300]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return "?" if value is not None else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused (is the port right and the server running?)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _closed_reason(exc: ConnectionClosed) -> str:
    sent = exc.sent
    if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
        limit = protocol.MAX_FRAME // 2**20
        return f"the server sent a frame over the {limit} MiB frame limit (closed with code 1009)"
    if exc.rcvd is None:
        if sent is not None and sent.code != CloseCode.NORMAL_CLOSURE:
            return f"closed by relay (code {sent.code}{': ' + sent.reason if sent.reason else ''})"
        return "closed without a close frame"
    reason = f": {exc.rcvd.reason}" if exc.rcvd.reason else ""
    return f"closed by the server (code {exc.rcvd.code}{reason})"
