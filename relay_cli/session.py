"""A RELAY client session over WebSockets: connect, authenticate, ACK, keep alive, reconnect, resume.

The session is a library layer: it yields event payloads and reports its status through callbacks, so
``relay tail`` and any other program use it the same way. Every event is ACKed the moment it is read,
before it is handed on, so slow rendering or disk work never delays the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from relay_cli import protocol
from relay_cli.event import InvalidEvent, check_payload
from relay_cli.protocol import Kind

__all__ = [
    "AuthError",
    "Credentials",
    "Received",
    "RelaySession",
    "SessionConfig",
    "SessionError",
    "SessionStats",
    "endpoint_url",
]

DEFAULT_HOST = "relay.signalwire.com"
MAX_FRAME = 10 * 1024 * 1024
_SEEN_IDS = 10_000
_ACK_HEAD = b'{"jsonrpc":"2.0","id":'
_ACK_TAIL = b',"result":{}}'
_BAD_HOST_CHARS = frozenset("@/?# \r\n\t\\")


class SessionError(Exception):
    """A session that cannot go on: the message is one line for the user, with no secret in it."""


class AuthError(SessionError):
    """The server rejected the credentials before any session was established."""


class _Lost(Exception):
    """The connection is gone or unusable; reconnect."""


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


@dataclass
class SessionStats:
    received: int = 0
    duplicates: int = 0
    malformed: int = 0
    reconnects: int = 0
    connects: int = 0
    resumed: int = 0


@dataclass(slots=True)
class Received:
    """One event: its payload (the frame's params), the frame's id, and the payload re-encoded compactly."""

    payload: dict[str, Any]
    id: Any
    data: bytes


def endpoint_url(*, url: str | None = None, host: str | None = None) -> str:
    """The WebSocket URL to dial: ``--url`` as given, else ``wss://`` and the space host, with no path.

    Plain ``ws://`` is refused unless it points at this machine: credentials must not cross a network
    in clear text.
    """
    if url:
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise SessionError(f"--url {url!r} is not a valid URL: {exc}") from None
        if parts.scheme not in ("ws", "wss") or not hostname:
            raise SessionError(f"--url {url!r} must look like wss://HOST[:PORT] or ws://127.0.0.1:PORT")
        if parts.scheme == "ws" and not _is_loopback(hostname):
            raise SessionError(f"--url {url!r}: plain ws:// is only allowed to a loopback address; use wss://")
        return url
    host = (host or DEFAULT_HOST).strip()
    if not host or any(c in _BAD_HOST_CHARS for c in host):
        raise SessionError(f"--space {host!r} must be a bare host name such as example.signalwire.com")
    if host.startswith(("ws://", "wss://", "http://", "https://")):
        raise SessionError(f"--space {host!r} must be a bare host name, without a scheme (or use --url)")
    return f"wss://{host}"


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class RelaySession:
    """One logical RELAY session that survives reconnects, resuming where the server allows it."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        status: Callable[[str], None] = lambda _: None,
        problem: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.config = config
        self.stats = SessionStats()
        self.status = status
        self._problem = problem
        self._protocol: str | None = None
        self._auth_state: str | None = None
        self._ws: ClientConnection | None = None
        self._closing = False
        self._restart = False
        self._loop_time = 0.0
        self._last_rx = 0.0
        self._ping_id: str | None = None
        self._ping_sent = 0.0
        self._half_open: str | None = None
        # Ids of recent events, in two generations of at most _SEEN_IDS: a resumed session redelivers what
        # it did not see ACKed, and those the client had already shown are ACKed again but not shown twice.
        self._seen: set[str | int] = set()
        self._seen_before: set[str | int] = set()

    async def events(self) -> AsyncGenerator[Received, None]:
        """Every event the server sends, ACKed already, across reconnects, until :meth:`close`."""
        rejected = 0
        delay = self.config.backoff_initial
        ever_connected = False
        while not self._closing:
            try:
                ws = await self._open()
            except _Rejected as exc:
                rejected += 1
                if rejected >= self.config.auth_attempts:
                    raise AuthError(
                        f"authentication failed {rejected} times, giving up: {exc}"
                        if rejected > 1
                        else f"authentication failed: {exc}"
                    ) from None
                self.status(f"authentication rejected ({exc}); trying again in {delay:.0f} s")
            except _Lost as exc:
                self.status(f"cannot connect: {exc}; retrying in {delay:.1f} s")
            else:
                rejected = 0
                delay = self.config.backoff_initial
                if ever_connected:
                    self.stats.reconnects += 1
                ever_connected = True
                try:
                    async for item in self._receive(ws):
                        yield item
                except _Lost as exc:
                    if self._closing:
                        break
                    self.status(f"connection lost: {exc}; reconnecting in {delay:.1f} s")
                finally:
                    await self._drop(ws)
                if self._closing:
                    break
            if self._closing:
                break
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.config.backoff_max)

    async def close(self) -> None:
        """Stop reconnecting and close the socket cleanly."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def _open(self) -> ClientConnection:
        cfg = self.config
        resuming = self._protocol is not None and not self._restart
        self.status(f"connecting to {cfg.url}" + (" (resuming)" if resuming else ""))
        tls: dict[str, Any] = {"ssl": cfg.ssl} if cfg.ssl is not None and cfg.url.startswith("wss:") else {}
        try:
            ws = await connect(
                cfg.url,
                open_timeout=cfg.open_timeout,
                ping_interval=None,
                max_size=MAX_FRAME,
                compression=None,
                user_agent_header=protocol.AGENT,
                **tls,
            )
        except InvalidURI as exc:
            raise SessionError(f"invalid URL {cfg.url!r}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise SessionError(
                f"the TLS certificate of {cfg.url} is not trusted ({exc.verify_message}); "
                "pass --ca-file or set SIGNALWIRE_RELAY_CA_FILE"
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
        elif self.stats.connects:
            self.status(f"connected, fresh session (contexts: {contexts}); events in the gap may be missing")
        else:
            self.status(f"connected (contexts: {contexts})")
        self.stats.connects += 1
        self._restart = False
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
        request = protocol.request("signalwire.connect", params)
        reply = await self._call(ws, request)
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            if resuming and code in (protocol.AUTH_FAILED, protocol.BAD_AUTH_STATE):
                self.status(f"the server refused to resume the session ({message}); starting a fresh one")
                self._protocol = self._auth_state = None
                raise _Lost("resume refused")
            raise _Rejected(_redact_text(message, cfg.credentials) or f"error {code}")
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
                        await self._answer(ws, frame)
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
        """ACK or answer one frame; return it as an event when it is one."""
        try:
            frame = orjson.loads(data)
            if frame.__class__ is dict and frame.get("method") == "signalwire.event":
                kind = Kind.EVENT
            else:
                kind = protocol.classify(frame)
        except (orjson.JSONDecodeError, protocol.FrameError) as exc:
            self._malformed(data, str(exc) if isinstance(exc, protocol.FrameError) else "not JSON")
            return None
        if kind is Kind.EVENT:
            frame_id = frame.get("id")
            if frame_id is not None:
                await ws.send(_ACK_HEAD + orjson.dumps(frame_id) + _ACK_TAIL, text=True)
            payload: dict[str, Any] = frame.get("params")
            try:
                check_payload(payload)
            except InvalidEvent as exc:
                self._malformed(data, f"invalid event: {exc}")
                return None
            if frame_id.__class__ is str or frame_id.__class__ is int:
                if frame_id in self._seen or frame_id in self._seen_before:
                    self.stats.duplicates += 1
                    return None
                self._seen.add(frame_id)
                if len(self._seen) >= _SEEN_IDS:
                    self._seen_before, self._seen = self._seen, set()
            self.stats.received += 1
            if payload.get("event_type") == "signalwire.authorization.state":
                state = payload.get("params", {}).get("authorization_state")
                if isinstance(state, str) and state:
                    self._auth_state = state
            return Received(payload, frame_id, orjson.dumps(payload))
        if kind in (Kind.RESULT, Kind.ERROR):
            if frame.get("id") == self._ping_id:
                self._ping_id = None
            return None
        await self._answer(ws, frame)
        return None

    async def _answer(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        """Reply to a server request: every request with an id gets exactly one response."""
        method = frame.get("method")
        frame_id = frame.get("id")
        params: dict[str, Any] = frame["params"] if isinstance(frame.get("params"), dict) else {}
        if method == "signalwire.disconnect":
            self._restart = params.get("restart") is True
            if self._restart:
                self._protocol = self._auth_state = None
            self.status("the server asked to disconnect" + (" and restart" if self._restart else "; will resume"))
            if frame_id is not None:
                await ws.send(orjson.dumps(protocol.ack(frame_id)), text=True)
            return
        if frame_id is None:
            return
        if method == "signalwire.ping":
            echo = {"timestamp": params["timestamp"]} if "timestamp" in params else None
            reply = protocol.result(frame_id, echo)
        else:
            reply = protocol.error(frame_id, protocol.METHOD_NOT_FOUND, f"method not found: {method}")
        await ws.send(orjson.dumps(reply), text=True)

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
                request = protocol.request("signalwire.ping", {"timestamp": time.time()})
                self._ping_id = request["id"]
                self._ping_sent = now
                next_ping = now + cfg.ping_interval
                try:
                    await ws.send(orjson.dumps(request), text=True)
                except ConnectionClosed:
                    return

    async def _drop(self, ws: ClientConnection) -> None:
        """Close the socket, gracefully when it still answers, else at once."""
        if self._ws is ws:
            self._ws = None
        try:
            async with asyncio.timeout(2):
                await ws.close()
        except (TimeoutError, OSError, ConnectionClosed):
            ws.transport.abort()

    def _malformed(self, data: bytes, why: str) -> None:
        self.stats.malformed += 1
        text = data[:200].decode("utf-8", "replace")
        more = f" … ({len(data)} bytes)" if len(data) > 200 else ""
        self._problem(f"skipped a malformed frame ({why}): {text}{more}")


class _Rejected(Exception):
    """The server refused the credentials."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _closed_reason(exc: ConnectionClosed) -> str:
    if exc.rcvd is None:
        return "closed without a close frame"
    reason = f": {exc.rcvd.reason}" if exc.rcvd.reason else ""
    return f"closed by the server (code {exc.rcvd.code}{reason})"


def _redact_text(message: str, credentials: Credentials) -> str:
    """Servers may echo what they were sent; never pass a secret on to the user."""
    for secret in (credentials.token, credentials.jwt):
        if secret:
            message = message.replace(secret, protocol.REDACTED)
    return message
