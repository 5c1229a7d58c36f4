"""Bursts of WebSocket text frames in one socket write: the one place relay leans on websockets' internals.

websockets' public ``send`` makes one ``transport.write`` per frame: a syscall, and usually a TCP segment, for
every event the emulator sends and every ACK the client returns. Under load that is most of what either peer
spends, so both write bursts instead, through the same calls ``send`` itself makes (``send_context``,
``protocol.send_text``, ``protocol.data_to_send``), joined into one write. ``tests/test_burst.py`` fails loudly
when a websockets release changes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

__all__ = ["BurstClientConnection", "BurstServerConnection"]


def _send_joined(conn: Connection) -> None:
    """``Connection.send_data`` with the pending frames joined into one write; EOF handled as the base class does."""
    chunks = conn.protocol.data_to_send()
    eof = bool(chunks) and not chunks[-1]
    data = b"".join(chunks)
    if data:
        conn.transport.write(data)
    if eof:
        if conn.transport.can_write_eof():
            with contextlib.suppress(Exception):
                conn.transport.write_eof()
        else:
            conn.transport.close()


async def _send_texts(conn: Connection, messages: Sequence[bytes]) -> None:
    async with conn.send_context():
        for message in messages:
            conn.protocol.send_text(message)


def _write_texts(conn: Connection, messages: Sequence[bytes]) -> None:
    if conn.protocol.state is State.OPEN:
        for message in messages:
            conn.protocol.send_text(message)
        conn.send_data()


class BurstServerConnection(ServerConnection):
    """A server connection with :meth:`send_texts` and :meth:`write_texts` (the emulator's)."""

    send_data = _send_joined

    async def send_texts(self, messages: Sequence[bytes]) -> None:
        """Send each UTF-8 message as one text frame, with ``send``'s checks and flow control."""
        await _send_texts(self, messages)

    def write_texts(self, messages: Sequence[bytes]) -> None:
        """Write text frames now, without waiting for the socket to drain; nothing on a closing connection.

        For frames written from a callback or from another connection's task: written synchronously they keep
        their place among this connection's own writes. Callers wait for ``drain`` where a slow reader must
        hold them back.
        """
        _write_texts(self, messages)


class BurstClientConnection(ClientConnection):
    """A client connection with :meth:`write_texts` (the session's ACKs: one write per burst of events)."""

    send_data = _send_joined

    def write_texts(self, messages: Sequence[bytes]) -> None:
        """As :meth:`BurstServerConnection.write_texts`."""
        _write_texts(self, messages)
