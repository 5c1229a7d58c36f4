"""A local RELAY server: the far end of the protocol, for demos, benchmarks and tests of the client.

It speaks the server side of PROTOCOL.md over real WebSockets, with an HTTP control plane beside it. The package
is split by what may do I/O:

- ``sessions``: authentication, sessions and resume, ACK tracking, contexts, routing of inbound calls, the
  funnel every frame passes through (sans-I/O: no asyncio, no websockets, clocks passed in);
- ``methods``: the method table, method name to handler;
- ``outbox``: a timed outbox, a heap of what falls due when;
- ``journal``: a bounded journal of the frames both ways;
- ``flows``: the demo traffic, call and message flows as seeded generators;
- ``calls`` and ``verbs``: the calls an app controls and the ``calling.*`` verbs that drive them;
- ``messages``: ``messaging.send`` and inbound messages; ``farends``: the scripts of the virtual parties;
- ``scenarios`` and ``control``: the control plane's routes (``mock_relay``'s dialect and relay's own);
- ``playback``: a two-way recording played back to an app (``relay serve --playback``);
  ``audio``: the WAV files recordings are served as;
- ``server`` and ``http``: asyncio, websockets and h11 around the rest (:class:`Emulator`).

Frames are built and classified by :mod:`relay_cli.protocol` only, so client and emulator cannot drift apart on
the wire format.
"""

from relay_cli.emulator.journal import JOURNAL_SIZE, Journal
from relay_cli.emulator.methods import MAX_CONTEXT_LENGTH, MAX_CONTEXTS, METHODS
from relay_cli.emulator.server import CONNECT_TIMEOUT, Emulator
from relay_cli.emulator.sessions import (
    MAX_UNACKED,
    MAX_UNACKED_BYTES,
    RING_TIMEOUT,
    SESSION_TTL,
    EmulatorCore,
    EmulatorStats,
)
from relay_cli.protocol import MAX_FRAME

__all__ = [
    "CONNECT_TIMEOUT",
    "JOURNAL_SIZE",
    "MAX_CONTEXTS",
    "MAX_CONTEXT_LENGTH",
    "MAX_FRAME",
    "MAX_UNACKED",
    "MAX_UNACKED_BYTES",
    "METHODS",
    "RING_TIMEOUT",
    "SESSION_TTL",
    "Emulator",
    "EmulatorCore",
    "EmulatorStats",
    "Journal",
]
