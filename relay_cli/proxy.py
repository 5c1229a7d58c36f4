"""The transparent proxy: an app's RELAY session, forwarded frame by frame and watched on the way.

For every app connection the proxy opens one connection to the real RELAY (or a local ``relay serve``) while the
app's handshake is still in progress, so an upstream that cannot be reached is an HTTP 502 to the app, as a
failed dial would be. From then on each direction is one task copying messages unchanged: the bytes that arrived,
as text or binary as they arrived, in order, with ``on_frame`` told of each just before it is forwarded. The proxy
adds nothing of its own (no pings, ACKs, retries or compression toward the app) and lets close codes, reasons and
drops through, so the app's own liveness, reconnect and resume logic runs as it would without the proxy.

Which frames are text is the one thing websockets' ``recv(decode=False)`` does not say. The connections here note
each message's opcode as its first frame arrives (:func:`_note`): a deque append per message, against decoding
every frame to ``str`` and encoding it back, and a text frame that is not valid UTF-8 still passes unchanged. They
count the messages that arrived whole, too: when several are waiting (a burst of events), they are forwarded in one
socket write, as :mod:`relay_cli.burst` writes bursts, instead of one write each.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import BINARY, CONT, TEXT, CloseCode, Frame
from websockets.http11 import Request, Response
from websockets.protocol import Event
from websockets.uri import parse_uri

from relay_cli.burst import BurstClientConnection, BurstServerConnection
from relay_cli.protocol import APP_TO_RELAY, MAX_FRAME, RELAY_TO_APP, display_url

__all__ = ["PROXY_MAX_SIZE", "Link", "OnFrame", "OnLink", "Proxy"]

PROXY_MAX_SIZE = 4 * MAX_FRAME
"""The largest frame the proxy carries at all: one over RELAY's 10 MiB limit is still forwarded as it is (and
reported); beyond this the side that sent it is closed with 1009, and so is the other."""

OnFrame = Callable[[str, float, int, bytes, bool], None]
"""(direction, at, connection, data, text): every data frame, in order, called BEFORE the frame is forwarded (so a
recorder writing here loses nothing that was forwarded). ``at`` is ``time.time()`` when it was received, ``data``
its bytes exactly as received (a text frame's UTF-8), ``text`` False for a binary frame. Must not raise: the
proxy does not catch (it drops both sides of that connection and the error reaches websockets' log)."""

_BATCH = 64
"""The most waiting messages forwarded in one write."""
_CLOSING_GRACE = 10.0
"""Seconds a side has to finish its closing handshake, or to take the last bytes of a drop, before it is cut."""


@dataclass(frozen=True, slots=True)
class Link:
    """Something that happened to a connection pair, for status lines and the summary."""

    connection: int
    """1, 2, 3... in the order apps connected."""
    what: Literal["open", "refused", "closed"]
    at: float
    """``time.time()`` when it happened."""
    peer: str
    """The app's address, ``127.0.0.1:54321``."""
    detail: str
    """open: the upstream URL (fit to print); refused: why the upstream could not be reached, one line; closed:
    who ended it ("by the app", "by RELAY", "dropped by the app", "dropped by RELAY", "by the proxy", or why the
    proxy had to: "the app sent a frame over the 40 MiB limit" ...)."""
    code: int | None = None
    """closed: the close code that passed through (None when none did: a drop)."""
    reason: str = ""


OnLink = Callable[[Link], None]


class _Messages:
    """What a connection's ``recv`` will return, noted as frames arrive: whether each message is text, in order,
    and how many have arrived whole (so that many ``recv`` calls return at once)."""

    __slots__ = ("texts", "whole")

    def __init__(self) -> None:
        self.texts: deque[bool] = deque()
        self.whole = 0

    def note(self, event: Event) -> None:
        """Continuations have neither opcode; messages reach ``recv`` in the order their first frames arrived."""
        if type(event) is not Frame:
            return
        opcode = event.opcode
        if opcode is TEXT:
            self.texts.append(True)
        elif opcode is BINARY:
            self.texts.append(False)
        elif opcode is not CONT:  # a control frame: nothing for recv
            return
        if event.fin:
            self.whole += 1


class _RelaySide(BurstClientConnection):
    """The proxy's connection to RELAY."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages = _Messages()

    def process_event(self, event: Event) -> None:
        self.messages.note(event)
        super().process_event(event)


class _AppSide(BurstServerConnection):
    """An app's connection to the proxy, holding its RELAY connection from the handshake until it is served."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages = _Messages()
        self.number = 0
        self.upstream = ""
        self.relay: _RelaySide | None = None
        """Set once RELAY answered, during the handshake; taken (None again) by the connection's handler."""
        self.lost = False

    def process_event(self, event: Event) -> None:
        self.messages.note(event)
        super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lost = True
        relay, self.relay = self.relay, None
        if relay is not None:  # the handshake failed after RELAY answered: no handler will run
            relay.transport.abort()


class _Pair:
    """One app connection and its RELAY connection."""

    __slots__ = ("app", "ended", "number", "peer", "relay")

    def __init__(self, app: _AppSide, relay: _RelaySide) -> None:
        self.app = app
        self.relay = relay
        self.number = app.number
        self.peer = _address(app.remote_address)
        self.ended = False
        """Set by the first side seen to end: that one decides how the other is closed and what is reported."""


class Proxy:
    """A transparent RELAY proxy listening on ``host:port`` (port 0 picks one; read :attr:`url` once started).

    ``upstream`` is a ``ws://`` or ``wss://`` URL; without a path of its own, each app's request path and query are
    appended. ``ssl`` serves ``wss://`` to apps; ``upstream_ssl`` is the trust for a ``wss://`` upstream (None: the
    system store). Whether plain ``ws://`` is safe to use is the caller's to decide.
    """

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8766,
        ssl: _ssl.SSLContext | None = None,
        upstream_ssl: _ssl.SSLContext | None = None,
        on_frame: OnFrame | None = None,
        on_link: OnLink | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        try:
            parse_uri(upstream)
        except InvalidURI:
            raise ValueError(f"not a ws:// or wss:// URL: {display_url(upstream)!r}") from None
        if open_timeout <= 0:
            raise ValueError("open_timeout must be positive")
        parts = urlsplit(upstream)
        self.upstream = upstream
        self._base = upstream.rstrip("/") if parts.path in ("", "/") and not parts.query else None
        self._secure = parts.scheme.lower() == "wss"
        self.host = host
        self.port = port
        self.ssl = ssl
        self.upstream_ssl = upstream_ssl
        self.on_frame = on_frame
        self.on_link = on_link
        self.open_timeout = open_timeout
        self.url = ""
        self._server: Server | None = None
        self._count = 0
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; :attr:`url` and :attr:`port` are valid afterwards. OSError when the address cannot be used."""
        if self._server is not None:
            return
        self._closing = False
        self._server = await serve(
            self._serve,
            self.host,
            self.port,
            ssl=self.ssl,
            process_request=self._open,
            open_timeout=self.open_timeout + _CLOSING_GRACE,  # the app's handshake includes RELAY's
            close_timeout=_CLOSING_GRACE,
            ping_interval=None,
            compression=None,
            max_size=PROXY_MAX_SIZE,
            create_connection=_AppSide,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'wss' if self.ssl else 'ws'}://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and close every pair: apps and RELAY get close code 1001 (going away)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        server.close()
        await server.wait_closed()

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the handshake: RELAY first --------------------------------------------------------------------------

    def upstream_url(self, target: str) -> str:
        """The URL dialled for an app that asked for ``target`` (its request path and query)."""
        return self.upstream if self._base is None else self._base + target

    async def _open(self, connection: ServerConnection, request: Request) -> Response:
        """Answer the app's handshake: connect to RELAY first, and refuse the app (502) if that fails."""
        assert isinstance(connection, _AppSide)
        response = connection.protocol.accept(request)
        if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            return response  # not a WebSocket handshake: nothing to forward
        self._count += 1
        connection.number = self._count
        url = connection.upstream = self.upstream_url(request.path)
        headers = request.headers
        deflate = any("permessage-deflate" in offer for offer in headers.get_all("Sec-WebSocket-Extensions"))
        agent = next(iter(headers.get_all("User-Agent")), None)
        tls: dict[str, Any] = {"ssl": self.upstream_ssl} if self._secure and self.upstream_ssl is not None else {}
        try:
            relay = await connect(
                url,
                open_timeout=self.open_timeout,
                close_timeout=_CLOSING_GRACE,
                ping_interval=None,
                max_size=PROXY_MAX_SIZE,
                compression="deflate" if deflate else None,  # what the app would have had with RELAY
                user_agent_header=agent,
                create_connection=_RelaySide,
                **tls,
            )
        except Exception as exc:  # every way RELAY can fail to answer is the app's 502, never a traceback
            why = f"{_refusal(exc)} ({display_url(url)})"
            self._link(Link(connection.number, "refused", time.time(), _address(connection.remote_address), why))
            return connection.respond(http.HTTPStatus.BAD_GATEWAY, f"relay proxy: cannot reach RELAY: {why}\n")
        assert isinstance(relay, _RelaySide)
        if connection.lost or self._closing:
            relay.transport.abort()
            why = "the proxy is shutting down" if self._closing else "the app went away during the handshake"
            self._link(Link(connection.number, "refused", time.time(), _address(connection.remote_address), why))
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, f"relay proxy: {why}\n")
        connection.relay = relay
        return response

    # -- forwarding ------------------------------------------------------------------------------------------

    async def _serve(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _AppSide)
        relay, connection.relay = connection.relay, None
        if relay is None:  # cannot happen: a handshake without RELAY is refused
            return
        pair = _Pair(connection, relay)
        self._link(Link(pair.number, "open", time.time(), pair.peer, display_url(connection.upstream)))
        down = asyncio.create_task(self._pump(relay, connection, RELAY_TO_APP, pair))
        try:
            await self._pump(connection, relay, APP_TO_RELAY, pair)
        finally:
            await down

    async def _pump(
        self, source: _AppSide | _RelaySide, sink: _AppSide | _RelaySide, direction: str, pair: _Pair
    ) -> None:
        """Hot path: copy one direction's messages until either side ends, then let :meth:`_ended` settle it.

        One message waiting is sent as websockets sends it; several are sent together (see :func:`_send_all`)."""
        recv, send, messages = source.recv, sink.send, source.messages
        texts = messages.texts
        on_frame, number, clock = self.on_frame, pair.number, time.time
        batch: list[bytes] = []
        kinds: list[bool] = []
        try:
            while True:
                try:
                    data = await recv(decode=False)
                    messages.whole -= 1
                    if messages.whole:
                        batch.append(data)
                        kinds.append(texts.popleft())
                        while messages.whole and len(batch) < _BATCH:
                            batch.append(await recv(decode=False))  # whole already: returns at once
                            messages.whole -= 1
                            kinds.append(texts.popleft())
                except ConnectionClosed as exc:
                    await self._ended(pair, source, exc)
                    return
                try:
                    if batch:
                        if on_frame is not None:
                            at = clock()
                            for data, text in zip(batch, kinds, strict=True):
                                on_frame(direction, at, number, data, text)
                        await _send_all(sink, batch, kinds)
                        batch.clear()
                        kinds.clear()
                    else:
                        text = texts.popleft()
                        if on_frame is not None:
                            on_frame(direction, clock(), number, data, text)
                        await send(data, text=text)
                except ConnectionClosed as exc:
                    await self._ended(pair, sink, exc)
                    return
        except BaseException:  # a bug in on_frame, or cancelled: neither side may outlive this pair
            pair.ended = True
            pair.app.transport.abort()
            pair.relay.transport.abort()
            raise

    async def _ended(self, pair: _Pair, side: Connection, exc: ConnectionClosed) -> None:
        """``side`` ended as ``exc`` says: end the other side the same way and report it, once per pair."""
        if pair.ended:
            return
        pair.ended = True
        by_app = side is pair.app
        who = "the app" if by_app else "RELAY"
        other: Connection = pair.relay if by_app else pair.app
        rcvd, sent = exc.rcvd, exc.sent
        code: int | None
        if rcvd is not None and (sent is None or exc.rcvd_then_sent):  # the peer closed first
            code, reason, detail = rcvd.code, rcvd.reason, f"by {who}"
        elif sent is not None:  # this end closed it: a frame over the limit, a protocol error, or close()
            code, reason = sent.code, sent.reason
            detail = "by the proxy" if self._closing else _failure(who, sent.code, sent.reason)
        else:
            code, reason, detail = None, "", f"dropped by {who}"
        if code is None:
            await _drop(other)
        elif code == CloseCode.NO_STATUS_RCVD:
            await _close_empty(other)
        else:
            await other.close(code, reason)
        # Stamped once the other side is closed too: frames forwarded meanwhile come before the end, in time as well.
        self._link(Link(pair.number, "closed", time.time(), pair.peer, detail, code, reason))

    def _link(self, link: Link) -> None:
        if self.on_link is not None:
            self.on_link(link)


async def _send_all(conn: BurstServerConnection | BurstClientConnection, batch: list[bytes], kinds: list[bool]) -> None:
    """``send`` for several messages in one socket write: the calls :mod:`relay_cli.burst` makes for a burst of
    text frames (``send_context``, ``protocol.send_text``, a joined ``send_data``), binary frames allowed."""
    async with conn.send_context():
        protocol = conn.protocol
        for data, text in zip(batch, kinds, strict=True):
            if text:
                protocol.send_text(data)
            else:
                protocol.send_binary(data)


async def _drop(conn: Connection) -> None:
    """End ``conn`` without a close frame, so its peer sees a drop too, but after the bytes already forwarded."""
    conn.transport.close()  # flushes the write buffer first, unlike abort()
    try:
        async with asyncio.timeout(_CLOSING_GRACE):
            await conn.wait_closed()
    except TimeoutError:
        conn.transport.abort()


async def _close_empty(conn: Connection) -> None:
    """Close with an empty close frame: what a peer that closed "with no status" (1005) sent."""
    with contextlib.suppress(ConnectionClosed):
        async with conn.send_context():
            conn.protocol.send_close()


def _failure(who: str, code: int, reason: str) -> str:
    if code == CloseCode.MESSAGE_TOO_BIG:
        return f"{who} sent a frame over the {PROXY_MAX_SIZE // 2**20} MiB limit"
    if code == CloseCode.PROTOCOL_ERROR:
        return f"{who} broke the WebSocket protocol ({reason})" if reason else f"{who} broke the WebSocket protocol"
    return f"by the proxy (code {code}{': ' + reason if reason else ''})"


def _refusal(exc: Exception) -> str:
    """Why RELAY could not be reached, in one line."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused"
    if isinstance(exc, _ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, InvalidStatus):
        return f"it answered HTTP {exc.response.status_code}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, InvalidHandshake):
        return f"bad WebSocket handshake ({exc})"
    return " ".join(str(exc).split()) or type(exc).__name__


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
        return f"{host}:{address[1]}"
    return str(address or "?")
