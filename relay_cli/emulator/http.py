"""The control plane's HTTP/1.1 server: asyncio streams and h11 around the routes of ``control``.

h11 parses and frames; this module only moves bytes and enforces bounds, so a caller cannot hurt the emulator:
a request head over :data:`MAX_HEAD` bytes, a body over :data:`MAX_BODY` (413), malformed HTTP (400), or a
client that stops sending (closed after :data:`READ_TIMEOUT`) each cost that one connection and nothing else.
Connections are kept alive between requests, one request at a time each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import h11

from relay_cli.emulator.control import Response, json_response

__all__ = ["IDLE_TIMEOUT", "MAX_BODY", "MAX_HEAD", "READ_TIMEOUT", "ControlServer", "Handler"]

MAX_BODY = 2**20
"""Bytes in a request body; more is refused with 413."""
MAX_DISCARD = 16 * 2**20
"""Bytes of a refused body read and dropped before closing: a client still sending would get a reset instead of
the 413."""
MAX_HEAD = 16 * 1024
"""Bytes in a request line and its headers."""
READ_TIMEOUT = 30.0
DRAIN_IDLE = 2.0
"""Seconds of silence that end the reading of a refused body."""
"""Seconds a client may pause in the middle of a request."""
IDLE_TIMEOUT = 120.0
"""Seconds a kept-alive connection may wait for its next request."""
_READ = 65_536
SERVER = "relay-emulator"

Handler = Callable[[str, str, bytes], Awaitable[Response]]
"""Method, request target, body → the response."""


class _Refused(Exception):
    def __init__(self, status: int, message: str, discard: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.discard = discard
        """Body bytes to read and drop after answering, so the client can finish sending and read the answer."""


class ControlServer:
    """Serves ``handler`` over HTTP on ``host:port`` (0: a free port; :attr:`port` after :meth:`start`)."""

    def __init__(self, handler: Handler, host: str, port: int, log: Callable[[str], None] = lambda _: None) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.log = log
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.CancelledError):
            pass  # the client went away or stalled, or the server is closing
        except Exception as exc:  # a bug costs this connection only
            self.log(f"control plane: internal error, closing a connection: {exc!r}")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(reader, writer)
        conn = client.conn
        while True:
            try:
                request = await client.next(IDLE_TIMEOUT)
                if not isinstance(request, h11.Request):
                    return  # closed between requests
                if client.fed - len(conn.trailing_data[0]) > MAX_HEAD:
                    raise h11.RemoteProtocolError(f"request head over {MAX_HEAD} bytes", 431)
                body = await client.body(request)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
                await _raw(writer, json_response(status, {"error": f"malformed HTTP request: {exc}"}))
                return
            except _Refused as exc:
                await client.send(json_response(exc.status, {"error": str(exc)}), close=True)
                await client.drop(exc.discard)
                return
            target = request.target.decode("latin-1")
            response = await self.handler(request.method.decode("latin-1"), target, body)
            await client.send(response)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
            client.fed = len(conn.trailing_data[0])


class _Client:
    """One connection: its h11 state and streams, and the bytes fed to h11 since its current request began."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.reader = reader
        self.writer = writer
        self.fed = 0

    async def next(self, timeout: float) -> object:
        """The next h11 event, reading as needed; after the first read of a request, READ_TIMEOUT applies."""
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(timeout):
                data = await self.reader.read(_READ)
            self.fed += len(data)
            conn.receive_data(data)
            timeout = READ_TIMEOUT

    async def body(self, request: h11.Request) -> bytes:
        for name, value in request.headers:
            if name == b"content-length" and int(value) > MAX_BODY:
                length = int(value)
                message = f"request body too large: {length} bytes (at most {MAX_BODY})"
                raise _Refused(413, message, min(length, MAX_DISCARD) - len(self.conn.trailing_data[0]))
        if self.conn.they_are_waiting_for_100_continue:
            self.writer.write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self.next(READ_TIMEOUT)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise _Refused(413, f"request body too large: over {MAX_BODY} bytes", MAX_DISCARD)
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise h11.RemoteProtocolError("connection closed in the middle of a request")

    async def send(self, response: Response, close: bool = False) -> None:
        conn, writer = self.conn, self.writer
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            ("server", SERVER),
            *response.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        data = (data or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await writer.drain()

    async def drop(self, size: int) -> None:
        """Read and forget up to ``size`` bytes, until the client stops sending for :data:`DRAIN_IDLE` seconds."""
        with contextlib.suppress(TimeoutError):
            while size > 0:
                async with asyncio.timeout(DRAIN_IDLE):
                    data = await self.reader.read(min(size, _READ))
                if not data:
                    return
                size -= len(data)


async def _raw(writer: asyncio.StreamWriter, response: Response) -> None:
    """A response written without h11, for a request h11 could not parse (its state machine is in ERROR)."""
    head = (
        f"HTTP/1.1 {response.status} {_reason(response.status).decode()}\r\n"
        f"content-type: {response.content_type}\r\ncontent-length: {len(response.body)}\r\n"
        f"server: {SERVER}\r\nconnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + response.body)
    await writer.drain()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
