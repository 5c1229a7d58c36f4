"""``relay serve --record FILE``: every frame of its journal, both ways, a line each, as a user runs it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from harness import relay, spawn, wait_until
from websockets.asyncio.client import ClientConnection, connect

from relay_cli.pipeline.reader import read_close, read_frame
from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, RecordedClose, ack, connect_params, request

START = re.compile(r"^relay: RELAY emulator on (wss?://\S+) \(control plane on (http://\S+)\)$")
TOKEN = "PT-secret-token-value"


@contextmanager
def serving(record: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``relay serve --port 0 --record FILE``, with its WebSocket URL from the start line; killed if still running."""
    proc = spawn("serve", "--port", "0", "--control-port", "0", "--record", str(record), *args)
    assert proc.stderr is not None
    line = proc.stderr.readline().rstrip("\n")
    match = START.match(line)
    try:
        assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
        yield proc, match.group(1)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate(timeout=10)


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    return out, err


class App:
    """A websockets client that keeps every frame it sent and received, as bytes."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    async def send(self, raw: bytes) -> None:
        self.sent.append(raw)
        await self.ws.send(raw.decode(), text=True)

    async def reply(self, rid: str) -> dict[str, object]:
        """The answer to ``rid``, ACKing each event that comes before it."""
        async with asyncio.timeout(10):
            while True:
                raw = await self.ws.recv(decode=False)
                self.received.append(raw)
                frame = orjson.loads(raw)
                if frame.get("method") == "signalwire.event":
                    await self.send(orjson.dumps(ack(frame["id"])))
                elif frame.get("id") == rid:
                    return dict(frame)

    async def events(self, count: int) -> None:
        """Receive (and ACK) events until ``count`` have come in all."""
        async with asyncio.timeout(10):
            while sum(b'"signalwire.event"' in raw for raw in self.received) < count:
                raw = await self.ws.recv(decode=False)
                self.received.append(raw)
                frame = orjson.loads(raw)
                if frame.get("method") == "signalwire.event":
                    await self.send(orjson.dumps(ack(frame["id"])))


async def _session(url: str, events: int = 0) -> App:
    async with connect(url, ping_interval=None, compression=None) as ws:
        app = App(ws)
        params = connect_params(project="p-123", token=TOKEN, contexts=["default"])
        await app.send(orjson.dumps(request("signalwire.connect", params, "c-1")))
        await app.reply("c-1")
        await app.send(b'{ "jsonrpc": "2.0", "id": "n-1", "method": "calling.nothing", "params": {"call_id": "x"} }')
        await app.reply("n-1")
        await app.send(b"hello? not JSON")
        await app.send(b'{"jsonrpc":"2.0","id":"p-1","method":"signalwire.ping","params":{}}')
        await app.reply("p-1")
        await app.events(events)
    return app


def _records(path: Path) -> list[tuple[bytes, tuple[str, float, int, bytes, bool]]]:
    """Every frame record, with its line; every other line must be a connection's end."""
    records = []
    for line in path.read_bytes().splitlines():
        frame = read_frame(orjson.loads(line))
        if frame is None:
            assert read_close(orjson.loads(line)) is not None, line
            continue
        records.append((line, frame))
    return records


def _closes(path: Path) -> list[RecordedClose]:
    return [c for line in path.read_bytes().splitlines() if (c := read_close(orjson.loads(line))) is not None]


def _spliced(raw: bytes, line: bytes) -> bool:
    """``line`` is ``raw`` as it crossed the wire, with the ``"_relay"`` key before its last brace."""
    body = raw.strip()
    return line.startswith(body[:-1] + b',"_relay":{')


def test_serve_records_every_frame_both_ways_as_it_crossed_the_wire(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    with serving(path, "-o", "json") as (proc, url):
        first = asyncio.run(_session(url))
        second = asyncio.run(_session(url))
        out, _ = stop(proc)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    records = _records(path)
    printed = [orjson.loads(line) for line in out.splitlines()]
    # The printer and the recording number connections alike, frame for frame.
    assert [(r["dir"], r["conn"]) for r in printed] == [(f[0], f[2]) for _, f in records]
    for number, app in ((1, first), (2, second)):
        mine = [(line, f) for line, f in records if f[2] == number]
        sent = [line for line, f in mine if f[0] == APP_TO_RELAY]
        received = [line for line, f in mine if f[0] == RELAY_TO_APP]
        assert len(sent) == len(app.sent) and len(received) == len(app.received)
        connect_line, *rest = sent
        assert TOKEN.encode() not in connect_line
        assert orjson.loads(connect_line)["params"]["authentication"] == "[redacted]"
        for raw, line in zip(app.sent[1:], rest, strict=True):
            if raw.startswith(b"{"):
                assert _spliced(raw, line), (raw, line)
            else:
                assert orjson.loads(line)["_relay"]["raw"] == raw.decode()
        for raw, line in zip(app.received, received, strict=True):
            if b"authorization_state" in raw:  # a secret: the value redacted, the rest kept
                assert orjson.loads(line)["params"]["params"]["authorization_state"] == "[redacted]"
            else:
                assert _spliced(raw, line), (raw, line)
    assert TOKEN.encode() not in path.read_bytes()
    # Each connection's end, after its last frame: the app closed both.
    closes = _closes(path)
    assert [(c.connection, c.code, c.detail) for c in closes] == [(1, 1000, "by the app"), (2, 1000, "by the app")]
    lines = [orjson.loads(line)["_relay"] for line in path.read_bytes().splitlines()]
    for number in (1, 2):
        last_frame = max(i for i, m in enumerate(lines) if m["conn"] == number and "dir" in m)
        [end] = [i for i, m in enumerate(lines) if m["conn"] == number and "closed" in m]
        assert end > last_frame


def test_a_connection_that_never_spoke_leaves_no_close_and_a_drop_says_so(tmp_path: Path) -> None:
    """A socket that sent nothing is no connection of the recording; one cut off (no close frame) is recorded
    as dropped by the app, with no code."""
    path = tmp_path / "drops.jsonl"
    with serving(path, "-q") as (proc, url):

        async def silent_then_cut() -> None:
            async with connect(url, ping_interval=None):
                pass  # closed without a frame
            async with connect(url, ping_interval=None, compression=None) as ws:
                params = connect_params(project="p-123", token=TOKEN, contexts=["default"])
                await ws.send(orjson.dumps(request("signalwire.connect", params, "c-1")).decode())
                await ws.recv()
                ws.transport.abort()

        asyncio.run(silent_then_cut())
        wait_until(lambda: bool(_closes(path)), what="the dropped connection's end")
        stop(proc)
    assert [(c.connection, c.code, c.reason, c.detail) for c in _closes(path)] == [(1, None, "", "dropped by the app")]
    assert {f[2] for _, f in _records(path)} == {1}


def test_serve_records_bursts_of_demo_events_and_replay_shows_them(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    with serving(path, "--demo", "--rate", "0", "--events", "40", "-q") as (proc, url):
        app = asyncio.run(_session(url, events=41))  # the authorization state, then the demo's 40
        stop(proc)
    records = _records(path)
    events = [orjson.loads(raw)["params"] for raw in app.received if b'"signalwire.event"' in raw]
    assert len(events) == 41
    acks = [f for _, f in records if f[0] == APP_TO_RELAY and f[3].endswith(b',"result":{}}')]
    assert len(acks) == len(app.sent) - 4 == 41  # all but connect, the two requests and the text
    sent = [f for _, f in records if f[0] == RELAY_TO_APP and b'"signalwire.event"' in f[3]]
    assert len(sent) == 41
    assert len({f[1] for f in sent}) < len(sent)  # bursts: events journaled together, at one time
    result = relay("replay", str(path), "-o", "json")
    assert (result.returncode, result.stderr) == (0, "")
    shown = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(shown) == len(events)
    assert [e["event_type"] for e in shown] == [e["event_type"] for e in events]
    assert shown[1:] == events[1:]  # the first holds a secret, redacted in the recording


def test_serve_record_killed_mid_traffic_leaves_every_earlier_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl"
    with serving(path, "--demo", "--rate", "0", "-q") as (proc, url):

        async def traffic() -> None:
            async with connect(url, ping_interval=None) as ws:
                params = connect_params(project="p-123", token=TOKEN, contexts=["default"])
                await ws.send(orjson.dumps(request("signalwire.connect", params, "c-1")).decode())
                async with asyncio.timeout(10):
                    while path.stat().st_size < 200_000:
                        frame = orjson.loads(await ws.recv())
                        if frame.get("method") == "signalwire.event":
                            await ws.send(orjson.dumps(ack(frame["id"])).decode())
                    proc.send_signal(signal.SIGKILL)

        with contextlib.suppress(Exception):  # the server is gone mid-frame: that is the point
            asyncio.run(traffic())
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    lines = path.read_bytes().split(b"\n")
    assert len(lines) > 100
    for line in lines[:-1]:
        assert read_frame(orjson.loads(line)) is not None
    replayed = relay("replay", str(path), "-o", "none")
    assert replayed.returncode == 0, replayed.stderr


def test_serve_record_refuses_a_symbolic_link_and_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    target.chmod(0o644)
    link = tmp_path / "rec.jsonl"
    link.symlink_to(target)
    cases = [
        (link, f"relay: cannot record to {link}: it is a symbolic link; give the file itself\n"),
        (tmp_path, f"relay: cannot record to {tmp_path}: Is a directory\n"),
    ]
    for given, message in cases:
        result = relay("serve", "--port", "0", "--control-port", "0", "--record", str(given))
        assert (result.returncode, result.stderr, result.stdout) == (1, message, "")
    assert target.read_text() == "precious\n" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_serve_stops_with_one_line_when_its_recording_cannot_be_written() -> None:
    proc = spawn("serve", "--port", "0", "--control-port", "0", "--record", "/dev/full", "-q")
    assert proc.stderr is not None
    match = START.match(proc.stderr.readline().rstrip("\n"))
    assert match

    async def knock() -> None:
        with contextlib.suppress(Exception):  # closed as the server stops
            async with connect(match.group(1), ping_interval=None) as ws:
                params = connect_params(project="p-123", token=TOKEN)
                await ws.send(orjson.dumps(request("signalwire.connect", params, "c-1")).decode())
                await asyncio.wait_for(ws.recv(), 10)

    asyncio.run(knock())
    wait_until(lambda: proc.poll() is not None, what="relay serve to stop")
    out, err = proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (1, "", "relay: cannot write to /dev/full: No space left on device\n")
