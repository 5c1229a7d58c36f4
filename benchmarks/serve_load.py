"""The load generator behind the ``serve`` benchmarks: many SDK-style app sessions on one asyncio loop.

Each session speaks exactly what SignalWire's SDK sends (EMULATOR.md section 2): ``signalwire.connect`` with
``version``, ``agent``, ``event_acks``, ``authentication`` and ``contexts``; an ACK ``{"result": {}}`` for every
event, sent before the event is acted on; a result for every server ``signalwire.ping``. For each inbound call
offered to it, it answers, plays one TTS prompt, waits for that play's ``finished`` event and hangs up, as a
small IVR written with the SDK would. Calls are placed from outside through the control plane
(``POST /relay/calls``) on a fixed schedule, so the offered load is a rate, not whatever the server keeps up
with: a closed loop would hide latency behind its own back-pressure.

The same sessions can run *blind* against a server that has no calls at all (the bare floor of
:data:`BARE_SERVER`): the schedule then starts the same three requests itself, with the same pause for the
media, so both servers see the same frames at the same rate.

Every call-control request is timed from just before its send to the moment its reply is read; replies that
are errors or carry a non-2xx ``code`` are counted apart, and still timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay_cli.protocol import JSONRPC, Kind

__all__ = ["BARE_SERVER", "PROMPT", "Load", "Phase"]

SDK_VERSION = {"major": 2, "minor": 0, "revision": 0}
SDK_AGENT = "signalwire-agents-python/1.0"
"""What signalwire-sdk 3.7 sends as ``version`` and ``agent`` (its ``constants.py``)."""
PROMPT = "Thanks for calling. All our agents are busy."
"""The TTS text every call plays: a short prompt, a second or two at a speaking rate before ``--speed``."""
REQUEST_TIMEOUT = 10.0
"""Seconds a request waits for its reply before it is counted as timed out."""
EVENT_TIMEOUT = 10.0
"""Seconds a call waits for its play to finish."""
HTTP_CONNECTIONS = 4
"""Keep-alive connections the schedule places calls over, so one slow reply does not hold the next call."""
_TERMINAL_PLAY = ("finished", "error")
_RECEIVE = "calling.call.receive"
_PLAY_EVENT = "calling.call.play"

BARE_SERVER = r"""
import asyncio
import sys

import orjson
from websockets.asyncio.server import serve

CONNECTED = {
    "protocol": "bare-protocol", "identity": "bare", "sessionid": "bare-session",
    "authorization": {"project_id": "p"},
}


async def answer(ws):
    loads, dumps = orjson.loads, orjson.dumps
    async for message in ws:
        frame = loads(message)
        if "method" not in frame:
            continue
        if frame["method"] == "signalwire.connect":
            body = CONNECTED
        else:
            params = frame.get("params") or {}
            body = {"code": "200", "message": "OK", "call_id": params.get("call_id")}
        await ws.send(dumps({"jsonrpc": "2.0", "id": frame["id"], "result": body}), text=True)


async def main():
    async with serve(answer, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"bare: listening on ws://127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


asyncio.run(main())
"""
"""The floor for the request-rate row: websockets + orjson answering every request with a canned result.

No calls, no events, no journal: what any Python server on this stack pays per frame; also the baseline of
the start-up row (it prints its URL on stderr once it listens, like ``relay serve``)."""


@dataclass
class Phase:
    """What one paced phase measured, over every session."""

    offered: float
    """Requests per second the schedule aimed at."""
    seconds: float
    """Wall time from the first request sent to the last reply read."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from send to reply, one per reply, in arrival order."""
    failed: Counter[str] = field(default_factory=Counter)
    """Replies that were errors or non-2xx codes, by method and code."""
    timeouts: int = 0
    calls_placed: int = 0
    calls_done: int = 0
    events: int = 0
    play_waits: list[float] = field(default_factory=list)
    """Seconds from each play's result to its ``finished`` event (blind calls: the pause taken instead)."""
    place_errors: Counter[str] = field(default_factory=Counter)
    lags: list[float] = field(default_factory=list)
    """Seconds the generator's loop woke late for a 1 ms timer, sampled through the phase: its own delay, part
    of every latency it measures."""
    cpu: float = 0.0
    """CPU seconds this process (the generator) used during the phase."""
    wall: float = 0.0
    """Wall time of the whole phase, place to last call done."""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0


class _Recorder:
    """The counters of the phase running now; sessions write into it."""

    def __init__(self, offered: float) -> None:
        self.phase = Phase(offered=offered, seconds=0.0)
        self.first_sent = 0.0
        self.last_reply = 0.0


class _Session:
    """One SDK-style connection: requests with futures by id, events ACKed at once, calls handled as tasks."""

    def __init__(self, ws: ClientConnection, index: int, load: Load) -> None:
        self.ws = ws
        self.index = index
        self.load = load
        self.pending: dict[str, tuple[asyncio.Future[dict[str, Any]], float]] = {}
        self.plays: dict[str, asyncio.Future[str]] = {}
        self.ids = itertools.count()
        self.prefix = str(uuid.uuid4())[:24]
        self.reader: asyncio.Task[None] | None = None
        self.calls: set[asyncio.Task[None]] = set()

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Send one request and wait for its reply; None on a timeout or a closed socket."""
        rec = self.load.recorder
        rid = f"{self.prefix}{next(self.ids):012x}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        frame = orjson.dumps({"jsonrpc": JSONRPC, "id": rid, "method": method, "params": params})
        sent = time.perf_counter()
        self.pending[rid] = (future, sent)
        if rec is not None and not rec.first_sent:
            rec.first_sent = sent
        try:
            await self.ws.send(frame, text=True)
            return await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except (TimeoutError, ConnectionClosed):
            if rec is not None:
                rec.phase.timeouts += 1
            return None
        finally:
            self.pending.pop(rid, None)

    async def read(self) -> None:
        """Take every frame the server sends: replies resolve requests, events are ACKed then handled."""
        loads, dumps = orjson.loads, orjson.dumps
        ws = self.ws
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                now = time.perf_counter()
                frame = loads(message)
                method = frame.get("method")
                if method is None:
                    self._reply(frame, now)
                    continue
                # The SDK answers every server request (events, pings, disconnect) with an empty result.
                await ws.send(dumps({"jsonrpc": JSONRPC, "id": frame.get("id"), "result": {}}), text=True)
                if method == Kind.EVENT.value:
                    self._event(frame.get("params") or {})

    def _reply(self, frame: dict[str, Any], now: float) -> None:
        rid = frame.get("id")
        entry = self.pending.pop(rid, None) if isinstance(rid, str) else None
        if entry is None:
            return
        future, sent = entry
        rec = self.load.recorder
        if rec is not None:
            rec.phase.latencies.append(now - sent)
            rec.last_reply = now
        if not future.done():
            future.set_result(frame)

    def _event(self, payload: dict[str, Any]) -> None:
        rec = self.load.recorder
        if rec is not None:
            rec.phase.events += 1
        event_type = payload.get("event_type")
        params = payload.get("params") or {}
        if event_type == _PLAY_EVENT:
            future = self.plays.get(params.get("control_id", ""))
            if future is not None and not future.done() and params.get("state") in _TERMINAL_PLAY:
                future.set_result(params["state"])
        elif event_type == _RECEIVE:
            self._start(self._call(params["call_id"], params.get("node_id", "")))

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _call(self, call_id: str, node_id: str) -> None:
        """What the SDK app does with an offered call: answer, play a prompt to its end, hang up."""
        base = {"node_id": node_id, "call_id": call_id}
        reply = await self.request("calling.answer", base)
        self._check("calling.answer", reply)
        control_id = str(uuid.uuid4())
        finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.plays[control_id] = finished
        try:
            params = {**base, "control_id": control_id, "play": [{"type": "tts", "params": {"text": PROMPT}}]}
            reply = await self.request("calling.play", params)
            started = time.perf_counter()
            if self._check("calling.play", reply):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished, EVENT_TIMEOUT)
                    rec = self.load.recorder
                    if rec is not None:
                        rec.phase.play_waits.append(time.perf_counter() - started)
        finally:
            del self.plays[control_id]
        self._check("calling.end", await self.request("calling.end", {**base, "reason": "hangup"}))
        self._done()

    async def blind_call(self, pause: float) -> None:
        """The same three requests for a call the server does not know, the media's time taken as a pause."""
        base = {"node_id": "bare-node", "call_id": str(uuid.uuid4())}
        self._check("calling.answer", await self.request("calling.answer", base))
        play = {**base, "control_id": str(uuid.uuid4()), "play": [{"type": "tts", "params": {"text": PROMPT}}]}
        self._check("calling.play", await self.request("calling.play", play))
        await asyncio.sleep(pause)
        rec = self.load.recorder
        if rec is not None:
            rec.phase.play_waits.append(pause)
        self._check("calling.end", await self.request("calling.end", {**base, "reason": "hangup"}))
        self._done()

    def _check(self, method: str, reply: dict[str, Any] | None) -> bool:
        """Whether the reply is a success as the SDK judges it (no error, ``code`` absent or 2xx)."""
        if reply is None:
            return False
        rec = self.load.recorder
        if "error" in reply:
            if rec is not None:
                rec.phase.failed[f"{method} {reply['error'].get('code')}"] += 1
            return False
        code = (reply.get("result") or {}).get("code")
        if isinstance(code, str) and not (len(code) == 3 and code.startswith("2")):
            if rec is not None:
                rec.phase.failed[f"{method} {code}"] += 1
            return False
        return True

    def _done(self) -> None:
        rec = self.load.recorder
        if rec is not None:
            rec.phase.calls_done += 1


class _Http:
    """A small HTTP/1.1 client over keep-alive connections: enough to place calls on the control plane."""

    def __init__(self, base: str) -> None:
        rest = base.split("://", 1)[-1].rstrip("/")
        host, _, port = rest.partition(":")
        self.host, self.port = host, int(port or 80)
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.opened = 0

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """POST a JSON body; the status and the response body. Opens a connection when none is idle."""
        if self.idle.empty() and self.opened < HTTP_CONNECTIONS:
            self.opened += 1
            try:
                self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
            except OSError:
                self.opened -= 1
                raise
        reader, writer = await self.idle.get()
        data = orjson.dumps(body)
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        try:
            status_line = await reader.readline()
            length, keep = 0, True
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                elif name.strip().lower() == "connection" and value.strip().lower() == "close":
                    keep = False
            payload = await reader.readexactly(length) if length else b""
            status = int(status_line.split()[1])
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            writer.close()
            self.opened -= 1
            raise
        if keep:
            self.idle.put_nowait((reader, writer))
        else:
            writer.close()
            self.opened -= 1
        return status, payload

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Load:
    """``sessions`` SDK-style sessions connected to ``url`` on ``context``, driven phase by phase.

    ``control`` is the control plane's base URL; without it the sessions run blind (see the module docstring).
    """

    def __init__(self, url: str, *, sessions: int, control: str = "", context: str = "default") -> None:
        self.url = url
        self.count = sessions
        self.control = control
        self.context = context
        self.sessions: list[_Session] = []
        self.recorder: _Recorder | None = None
        self.http = _Http(control) if control else None

    async def __aenter__(self) -> Load:
        try:
            self.sessions = list(await asyncio.gather(*(self._open(i) for i in range(self.count))))
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self, index: int) -> _Session:
        ws = await connect(self.url, ping_interval=None, compression=None, max_size=10 * 2**20, open_timeout=30)
        session = _Session(ws, index, self)
        params = {
            "version": SDK_VERSION,
            "agent": SDK_AGENT,
            "event_acks": True,
            "authentication": {"project": "bench-project", "token": "bench-token"},
            "contexts": [self.context],
        }
        connect_id = str(uuid.uuid4())
        await ws.send(
            orjson.dumps({"jsonrpc": JSONRPC, "id": connect_id, "method": Kind.CONNECT.value, "params": params}),
            text=True,
        )
        async with asyncio.timeout(30):
            while True:
                frame = orjson.loads(await ws.recv())
                if frame.get("id") == connect_id:
                    break
                if "method" in frame:  # nothing should come first, but whatever does is answered
                    await ws.send(orjson.dumps({"jsonrpc": JSONRPC, "id": frame.get("id"), "result": {}}), text=True)
        if "result" not in frame:
            await ws.close()
            raise ConnectionError(f"signalwire.connect refused: {frame.get('error')}")
        session.reader = asyncio.create_task(session.read())
        return session

    async def close(self) -> None:
        for session in self.sessions:
            for task in list(session.calls):
                task.cancel()
            with contextlib.suppress(Exception):
                await session.ws.close()
            if session.reader is not None:
                session.reader.cancel()
        if self.http is not None:
            await self.http.close()

    async def phase(
        self, calls_per_second: float, seconds: float, *, pause: float = 0.0, settle: float = 15.0
    ) -> Phase:
        """Place calls at ``calls_per_second`` for ``seconds`` on a fixed schedule, then wait (at most
        ``settle`` s) for the calls under way to finish. Three requests per call: the offered request rate is
        three times the call rate. ``pause``: the media time of a blind call."""
        rec = _Recorder(offered=3 * calls_per_second)
        self.recorder = rec
        loop = asyncio.get_running_loop()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        placing: set[asyncio.Task[None]] = set()
        total = max(1, round(calls_per_second * seconds))
        origin = loop.time()
        turn = itertools.cycle(self.sessions)
        watch = asyncio.create_task(_watch_loop(rec.phase.lags))
        for n in range(total):
            delay = origin + n / calls_per_second - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            rec.phase.calls_placed += 1
            if self.http is None:
                session = next(turn)
                session._start(session.blind_call(pause))
            else:
                task = asyncio.create_task(self._place(n))
                placing.add(task)
                task.add_done_callback(placing.discard)
        deadline = loop.time() + settle
        while loop.time() < deadline and (
            placing or any(s.calls for s in self.sessions) or rec.phase.calls_done + self._lost(rec) < total
        ):
            await asyncio.sleep(0.01)
        watch.cancel()
        rec.phase.cpu = time.process_time() - cpu0
        rec.phase.wall = time.perf_counter() - wall0
        rec.phase.seconds = rec.last_reply - rec.first_sent if rec.first_sent else 0.0
        self.recorder = None
        return rec.phase

    @staticmethod
    def _lost(rec: _Recorder) -> int:
        """Calls that never reached a session: their placing failed."""
        return sum(rec.phase.place_errors.values())

    async def _place(self, n: int) -> None:
        assert self.http is not None
        rec = self.recorder
        body = {"to_number": "+15550100002", "from_number": f"+1555{n % 10_000_000:07d}", "context": self.context}
        try:
            status, payload = await self.http.post("/relay/calls", body)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            if rec is not None:
                rec.phase.place_errors[f"{type(exc).__name__}"] += 1
            return
        if status // 100 != 2 and rec is not None:
            rec.phase.place_errors[f"{status} {payload[:120].decode('utf-8', 'replace')}"] += 1


async def _watch_loop(lags: list[float], every: float = 0.001) -> None:
    """Record how late a short timer fires, over and over: the generator's own scheduling delay."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every
        await asyncio.sleep(every)
        lags.append(loop.time() - due)
