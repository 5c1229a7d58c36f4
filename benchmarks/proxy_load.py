"""The parties of the ``proxy`` benchmarks: an upstream that sends events, an app that ACKs them, a bare forwarder.

Each runs as its own process (``python -c SCRIPT``), so the proxy under test competes with them for the machine's
cores exactly as the bare forwarder does; they are as small as a websockets + orjson program can be, so that the
proxy in the middle, not the ends, sets the pace:

* :data:`UPSTREAM` plays RELAY: it answers the app's ``signalwire.connect`` and then sends ``signalwire.event``
  frames, the real payloads of the benchmark's log, either as fast as the connection takes them (``flood``) or at
  a fixed rate with the send time in each frame (``paced``), reading the app's ACKs as they come.
* :data:`APP` plays the app: it connects, ACKs every event, and prints what it measured as one JSON line: the
  seconds from its first event to its last, and, for paced events, each event's one-way delay (both ends read
  the same system-wide ``CLOCK_MONOTONIC``).
* :data:`BARE_FORWARDER` is the floor a proxy is measured against: for each app connection one upstream
  connection, and two loops copying frames unchanged, with no parsing, no view and no recording.
"""

from __future__ import annotations

__all__ = ["APP", "BARE_FORWARDER", "LISTENING", "UPSTREAM"]

LISTENING = r"listening on (ws://\S+)"
"""What the upstream and the bare forwarder print on stderr once they listen."""

UPSTREAM = r"""
import asyncio
import sys
import time

import orjson
from websockets.asyncio.server import serve

MODE, COUNT, RATE, LOG = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with open(LOG, "rb") as log:
    payloads = [orjson.loads(line) for _, line in zip(range(min(COUNT, 50_000)), log)]
dumps = orjson.dumps
frames = [
    dumps({"jsonrpc": "2.0", "id": f"ev-{n}", "method": "signalwire.event", "params": p})
    for n, p in enumerate(payloads)
]


async def drain(ws):
    async for _ in ws:
        pass


async def session(ws):
    first = orjson.loads(await ws.recv(decode=False))
    await ws.send(dumps({"jsonrpc": "2.0", "id": first["id"], "result": {"protocol": "bench", "sessionid": "s"}}),
                  text=True)
    acks = asyncio.ensure_future(drain(ws))
    if MODE == "flood":
        size = len(frames)
        for n in range(COUNT):
            await ws.send(frames[n % size], text=True)
    else:
        start = time.monotonic()
        for n in range(COUNT):
            due = start + n / RATE
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = payloads[n % len(payloads)]
            frame = {"jsonrpc": "2.0", "id": f"ev-{n}", "method": "signalwire.event", "params": payload,
                     "sent": time.monotonic()}
            await ws.send(dumps(frame), text=True)
    await acks


async def main():
    async with serve(session, "127.0.0.1", 0, ping_interval=None, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.Future()


asyncio.run(main())
"""

APP = r"""
import asyncio
import sys
import time

import orjson
from websockets.asyncio.client import connect

URL, COUNT = sys.argv[1], int(sys.argv[2])
CONNECT = {"jsonrpc": "2.0", "id": "c", "method": "signalwire.connect",
           "params": {"version": {"major": 2, "minor": 0, "revision": 0}, "agent": "bench", "event_acks": True,
                      "authentication": {"project": "p", "token": "t"}, "contexts": ["default"]}}


async def main():
    dumps, loads = orjson.dumps, orjson.loads
    delays = []
    async with connect(URL, ping_interval=None, compression=None, max_size=None, open_timeout=30) as ws:
        await ws.send(dumps(CONNECT), text=True)
        await ws.recv(decode=False)
        seen = 0
        first = 0.0
        while seen < COUNT:
            frame = loads(await ws.recv(decode=False))
            now = time.monotonic()
            if not seen:
                first = now
            sent = frame.get("sent")
            if sent is not None:
                delays.append(now - sent)
            await ws.send(b'{"jsonrpc":"2.0","id":' + dumps(frame["id"]) + b',"result":{}}', text=True)
            seen += 1
        last = time.monotonic()
    print(orjson.dumps({"seconds": last - first, "events": seen, "delays": delays}).decode())


asyncio.run(main())
"""

BARE_FORWARDER = r"""
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

UPSTREAM = sys.argv[1]


async def copy(source, target):
    try:
        while True:
            await target.send(await source.recv(decode=False), text=True)
    except Exception:
        pass
    await target.close()


async def pair(app):
    async with connect(UPSTREAM, ping_interval=None, compression=None, max_size=None) as relay:
        await asyncio.gather(copy(app, relay), copy(relay, app))


async def main():
    async with serve(pair, "127.0.0.1", 0, ping_interval=None, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.Future()


asyncio.run(main())
"""
