"""The client side of a live tail against a small scripted RELAY server on loopback: an observer that
passes the calls it is offered, ACKs only what it recorded, survives hostile frames, and connects,
backs off and ends the way scripts expect."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from harness import CREDS, emulator, interrupt, relay, spawn, wait_until
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from relay_cli import protocol
from relay_cli.session import Credentials, RelaySession, SessionConfig, SessionError

T = TypeVar("T")
SECRET = "PT-secret-token-value"


class Conn:
    """One client connection: what it sent (decoded), and ways to talk to it."""

    def __init__(self, ws: ServerConnection, index: int) -> None:
        self.ws = ws
        self.index = index
        self.connect: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()

    async def read(self) -> None:
        try:
            async for message in self.ws:
                self.frames.append(orjson.loads(message))
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._arrived.set()

    async def event(self, payload: dict[str, Any], frame_id: str) -> None:
        await self.ws.send(orjson.dumps(protocol.event_frame(payload, frame_id)).decode())

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                self._arrived.clear()
                for frame in self.frames:
                    if predicate(frame):
                        return frame
                if self.closed.is_set():
                    raise AssertionError("the client went away first")
                await self._arrived.wait()

    async def acked(self, frame_id: str) -> None:
        await self.wait_for(lambda f: f.get("id") == frame_id and "result" in f and "method" not in f)

    async def pass_request(self, call_id: str) -> dict[str, Any]:
        return await self.wait_for(
            lambda f: f.get("method") == protocol.CALL_PASS and f["params"]["call_id"] == call_id
        )


Script = Callable[[Conn], Awaitable[None]]


class TinyRelay:
    """Just enough of a RELAY server: it answers ``signalwire.connect`` (or refuses a resume, when told),
    then runs ``script`` on the connection. The close code each client sent is kept in ``close_codes``."""

    def __init__(self, script: Script, *, refuse_resume: bool = False) -> None:
        self.script = script
        self.refuse_resume = refuse_resume
        self.conns: list[Conn] = []
        self.close_codes: list[int | None] = []
        self.url = ""

    async def __aenter__(self) -> TinyRelay:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Conn(ws, len(self.conns))
        self.conns.append(conn)
        try:
            conn.connect = orjson.loads(await ws.recv())
            rid = conn.connect["id"]
            if self.refuse_resume and conn.connect["params"].get("protocol"):
                message = f"bad state {conn.connect['params'].get('authorization_state')}"
                await ws.send(orjson.dumps(protocol.error(rid, protocol.AUTH_FAILED, message)).decode())
                await ws.wait_closed()
                return
            session = protocol.make_protocol("p-123")
            await ws.send(orjson.dumps(protocol.result(rid, {"protocol": session})).decode())
            reader = asyncio.create_task(conn.read())
            await self.script(conn)
            await reader
        except ConnectionClosed:
            pass
        finally:
            self.close_codes.append(ws.close_code)


class Served:
    """A :class:`TinyRelay` on an event loop of its own, in a thread, for tests that run the CLI."""

    def __init__(self, relay: TinyRelay, loop: asyncio.AbstractEventLoop) -> None:
        self.relay = relay
        self.loop = loop

    @property
    def url(self) -> str:
        return self.relay.url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def served(script: Script, **options: Any) -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = TinyRelay(script, **options)
    asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(10)
    try:
        yield Served(server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def offer(call_id: str, node_id: str = "node-1") -> dict[str, Any]:
    params = {"call_state": "created", "direction": "inbound", "call_id": call_id, "node_id": node_id}
    return {"event_type": "calling.call.receive", "context": "office", "params": params}


def play(call_id: str, **extra: Any) -> dict[str, Any]:
    return {"event_type": "calling.call.play", "params": {"call_id": call_id, "state": "playing", **extra}}


def methods(frames: list[dict[str, Any]]) -> list[str]:
    """What the client sent, in order: ``ack:ID`` or ``METHOD:CALL_ID``."""
    out = []
    for f in frames:
        if f.get("method") == protocol.CALL_PASS:
            out.append(f"pass:{f['params']['call_id']}")
        elif "result" in f:
            out.append(f"ack:{f['id']}")
    return out


def config(url: str, **options: Any) -> SessionConfig:
    return SessionConfig(url=url, credentials=Credentials("p-123", SECRET), contexts=["office"], **options)


# -- 1. an observer must not take calls ------------------------------------------------------------------


def test_each_offered_call_is_passed_once_right_after_its_ack_without_waiting_for_the_result() -> None:
    outcome: dict[str, Any] = {}

    async def script(conn: Conn) -> None:
        await conn.event(offer("c1"), "e1")
        first = await conn.pass_request("c1")  # not answered yet: the client must go on regardless
        await conn.event(offer("c1"), "e2")  # the same call offered again: shown, not passed again
        await conn.event(offer("c2", "node-2"), "e3")
        second = await conn.pass_request("c2")
        await conn.event(offer("c3"), "e4")
        third = await conn.pass_request("c3")
        await conn.acked("e4")
        await conn.ws.send(orjson.dumps(protocol.result(first["id"], {"code": "200", "message": "ok"})).decode())
        gone = {"code": protocol.CALL_NOT_FOUND, "message": "Call not found"}
        await conn.ws.send(orjson.dumps(protocol.result(second["id"], gone)).decode())
        error = protocol.error(third["id"], protocol.METHOD_NOT_FOUND, "Method not found")
        await conn.ws.send(orjson.dumps(error).decode())
        await conn.event(play("c1"), "e5")
        await conn.acked("e5")
        outcome["sent"] = methods(conn.frames)
        outcome["targets"] = [f["params"] for f in conn.frames if f.get("method") == protocol.CALL_PASS]
        await conn.closed.wait()

    with served(script) as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "office", "-o", "pretty", "--color", "never", "-v")
        wait_until(lambda: "sent" in outcome, timeout=20, what="the script")
        out, err = interrupt(proc)
    assert proc.returncode == 130, err
    assert outcome["sent"] == ["ack:e1", "pass:c1", "ack:e2", "ack:e3", "pass:c2", "ack:e4", "pass:c3", "ack:e5"]
    assert outcome["targets"][:2] == [{"node_id": "node-1", "call_id": "c1"}, {"node_id": "node-2", "call_id": "c2"}]
    assert "passed call c1 (200 ok)" in err
    assert "could not pass call c2: 404 Call not found (the call is gone already)" in err
    assert "could not pass call c3: error -32601: Method not found" in err
    assert "call c1 offered again: passed already, left alone" in err
    assert "inbound messages cannot be passed" not in err  # loopback: an emulator, no app to miss them
    offers = [line for line in out.splitlines() if " calling.call.receive " in line]
    assert len(offers) == 4 and all(line.endswith("· passed") for line in offers)
    assert "Traceback" not in err


def test_keep_calls_passes_nothing() -> None:
    sent: list[str] = []

    async def script(conn: Conn) -> None:
        await conn.event(offer("c1"), "e1")
        await conn.event(play("c1"), "e2")
        await conn.acked("e2")
        sent.extend(methods(conn.frames))
        await conn.closed.wait()

    with served(script) as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "office", "-o", "json", "--keep-calls")
        wait_until(lambda: bool(sent), what="the script")
        out, err = interrupt(proc)
    assert proc.returncode == 130, err
    assert sent == ["ack:e1", "ack:e2"]
    assert len(out.splitlines()) == 2


def test_demo_keeps_the_calls_it_is_offered() -> None:
    result = relay("tail", "--demo", "--rate", "0", "-n", "300", "-o", "pretty", "--color", "never", "-v")
    assert result.returncode == 0, result.stderr
    offers = [line for line in result.stdout.splitlines() if " calling.call.receive " in line]
    assert offers and not any("passed" in line for line in offers)
    assert "passed call" not in result.stderr and "could not pass" not in result.stderr


def test_help_says_what_keep_calls_means() -> None:
    text = " ".join(relay("tail", "--help", env={"COLUMNS": "300"}).stdout.split())
    assert "--keep-calls" in text
    assert "only for a context no app serves" in text
    assert "--demo always keeps them" in text
    assert "It serves no app, so its calls are kept" in text


def test_library_session_passes_calls_and_keeps_them_when_told() -> None:
    async def scenario(pass_calls: bool) -> list[str]:
        async def script(conn: Conn) -> None:
            await conn.event(offer("c9"), "e1")
            await conn.event(play("c9"), "e2")
            await conn.acked("e2")
            await conn.ws.close()

        async with TinyRelay(script) as server:
            session = RelaySession(config(server.url, pass_calls=pass_calls))
            async for item in session.events():
                if item.id == "e2":
                    break
            await session.close()
            await asyncio.sleep(0)
        return methods(server.conns[0].frames)

    assert asyncio.run(asyncio.wait_for(scenario(True), 20))[:2] == ["ack:e1", "pass:c9"]
    assert asyncio.run(asyncio.wait_for(scenario(False), 20))[:2] == ["ack:e1", "ack:e2"]


# -- 2a. an ACK means the event is in the recording --------------------------------------------------------


def test_every_recorded_event_is_on_disk_before_its_ack(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    checks: list[bool] = []

    async def script(conn: Conn) -> None:
        for i in range(30):
            body = "x" * (3_000_000 if i % 10 == 9 else 100)
            await conn.event(play(f"c{i}", marker=f"m-{i}-end", body=body), f"e{i}")
            await conn.acked(f"e{i}")
            checks.append(f'"m-{i}-end"'.encode() in path.read_bytes())
        await conn.closed.wait()

    with served(script) as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "office", "-o", "none", "--record", str(path))
        wait_until(lambda: len(checks) == 30, timeout=30, what="30 ACKs")
        _, err = interrupt(proc)
    assert proc.returncode == 130, err
    assert checks == [True] * 30
    assert len(path.read_bytes().splitlines()) == 30


# -- 4a, 4d, 4f: hostile frames ----------------------------------------------------------------------------


def test_a_payload_nested_too_deeply_to_re_encode_is_acked_reported_and_skipped() -> None:
    deep = "[" * 300 + "]" * 300
    payload = f'{{"event_type":"x","params":{{"v":{deep}}}}}'
    frame = f'{{"jsonrpc":"2.0","id":"deep","method":"signalwire.event","params":{payload}}}'
    acked: list[bool] = []

    async def script(conn: Conn) -> None:
        await conn.ws.send(frame)
        await conn.acked("deep")
        acked.append(True)
        await conn.event(play("c1"), "e1")
        await conn.closed.wait()

    with served(script) as server:
        result = relay("tail", "--url", server.url, *CREDS, "-c", "office", "-o", "json", "-n", "1")
    assert result.returncode == 0, result.stderr
    assert acked == [True]
    assert [e["event_type"] for e in map(orjson.loads, result.stdout.splitlines())] == ["calling.call.play"]
    assert "skipped a malformed frame (nested too deeply)" in result.stderr
    assert "1 malformed frames" in result.stderr and "Traceback" not in result.stderr


def test_a_big_frame_of_countless_arrays_is_reported_without_decoding_it() -> None:
    """Decoded, 2 MiB of ``[]`` would take tens of MB; 10 MiB of it, 300 MB: the frame is skipped unread."""
    flood = ",".join(["[]"] * 700_000)
    payload = f'{{"event_type":"x","params":{{"v":[{flood}]}}}}'
    frame = f'{{"jsonrpc":"2.0","id":"flood","method":"signalwire.event","params":{payload}}}'

    async def script(conn: Conn) -> None:
        await conn.ws.send(frame)
        await conn.event(play("c1"), "e1")
        await conn.closed.wait()

    with served(script) as server:
        result = relay("tail", "--url", server.url, *CREDS, "-c", "office", "-o", "json", "-n", "1")
    assert result.returncode == 0, result.stderr
    assert [e["event_type"] for e in map(orjson.loads, result.stdout.splitlines())] == ["calling.call.play"]
    assert "skipped a malformed frame (over 100,000 arrays and objects)" in result.stderr
    assert "Traceback" not in result.stderr


def test_reconnects_back_off_until_a_connection_stays_up() -> None:
    """A server that delivers the same frame and drops every connection gets fewer and fewer attempts."""

    async def scenario(stable_after: float) -> tuple[list[str], int]:
        async def script(conn: Conn) -> None:
            await conn.event(play("c1"), "same")
            await conn.acked("same")
            await conn.ws.close()

        async with TinyRelay(script) as server:
            statuses: list[str] = []
            options = {"backoff_initial": 0.02, "backoff_max": 0.16, "stable_after": stable_after}
            session = RelaySession(config(server.url, **options), status=statuses.append, problem=statuses.append)

            async def consume() -> None:
                async for _ in session.events():
                    pass

            task = asyncio.create_task(consume())
            while len(server.conns) < 6:
                await asyncio.sleep(0.01)
            await session.close()
            task.cancel()
        return [s.split("reconnecting in ")[1] for s in statuses if "connection lost" in s][
            :5
        ], session.stats.duplicates

    delays, duplicates = asyncio.run(asyncio.wait_for(scenario(30), 20))
    assert delays == ["0.0 s", "0.0 s", "0.1 s", "0.2 s", "0.2 s"]  # 0.02, 0.04, 0.08, 0.16, 0.16
    assert duplicates >= 4  # redelivered each time: ACKed again, not shown again
    delays, _ = asyncio.run(asyncio.wait_for(scenario(0), 20))
    assert delays == ["0.0 s"] * 5


def test_a_frame_over_the_limit_is_reported_as_such() -> None:
    async def run() -> list[str]:
        async def script(conn: Conn) -> None:
            if conn.index == 0:
                await conn.ws.send("[" + "0," * (11 * 1024 * 1024 // 2) + "0]")
            await conn.closed.wait()

        async with TinyRelay(script) as server:
            statuses: list[str] = []
            session = RelaySession(
                config(server.url, backoff_initial=0.05), status=statuses.append, problem=statuses.append
            )

            async def consume() -> None:
                async for _ in session.events():
                    pass

            task = asyncio.create_task(consume())
            while len(server.conns) < 2:
                await asyncio.sleep(0.01)
            await session.close()
            task.cancel()
        return statuses

    statuses = asyncio.run(asyncio.wait_for(run(), 20))
    lost = [s for s in statuses if s.startswith("connection lost")]
    assert lost and "a frame over the 10 MiB frame limit (closed with code 1009)" in lost[0]
    assert "without a close frame" not in lost[0]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_huge_frame_ids_do_not_grow_memory_and_duplicates_are_still_hidden() -> None:
    done: list[bool] = []
    long_id = "i" * 200_000

    async def script(conn: Conn) -> None:
        for i in range(600):
            await conn.event(play("c1", n=i), f"{i:06d}{long_id}")
        await conn.event(play("c1", n=0), f"{0:06d}{long_id}")  # a redelivery of the first
        await conn.event(play("c2"), "last")
        await conn.acked("last")
        done.append(True)
        await conn.closed.wait()

    with served(script) as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "office", "-o", "json")
        wait_until(lambda: bool(done), timeout=60, what="600 frames with 200 KB ids")
        rss = _rss_mb(proc.pid)
        out, err = interrupt(proc)
    assert proc.returncode == 130, err
    assert rss < 100, f"{rss:.0f} MB"
    assert len(out.splitlines()) == 601
    assert "1 redelivered duplicates hidden" in err


# -- 4c: a closed stdout ------------------------------------------------------------------------------------


def test_a_closed_stdout_ends_the_tail_quietly_with_a_clean_close() -> None:
    async def script(conn: Conn) -> None:
        for i in range(2000):
            if conn.closed.is_set():
                return
            await conn.event(play(f"c{i}"), f"e{i}")
            await asyncio.sleep(0.01)

    with served(script) as server:
        proc = subprocess.Popen(
            [*spawn_args(), "tail", "--url", server.url, *CREDS, "-c", "office", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read().decode()
        proc.wait(20)
        wait_until(lambda: bool(server.relay.close_codes), what="the server to see the close")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert server.relay.close_codes == [1000]


def spawn_args() -> list[str]:
    import sys

    return [sys.executable, "-m", "relay_cli"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}


# -- 5. connections that never happened, refused resumes, a prompt close -------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_wrong_port_fails_after_a_few_quick_retries() -> None:
    url = f"ws://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    result = relay("tail", "--url", url, *CREDS, "-c", "office")
    assert result.returncode == 1
    assert f"cannot connect to {url}: connection refused" in result.stderr
    assert "(tried 4 times)" in result.stderr
    assert result.stderr.count("retrying in") == 3
    assert "shown of" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_a_host_that_does_not_resolve_fails_and_warns_about_messages_first() -> None:
    result = relay("tail", *CREDS, "--space", "no-such-host.invalid", "-c", "office")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "inbound messages cannot be passed" in lines[0]
    assert "messages relay receives on a context an app serves do not reach the app" in lines[0]
    assert "cannot connect to wss://no-such-host.invalid: cannot resolve the host name" in result.stderr


def test_timeout_without_any_session_is_a_failure() -> None:
    url = f"ws://127.0.0.1:{_free_port()}"
    result = relay("tail", "--url", url, *CREDS, "-c", "office", "--timeout", "0.8")
    assert result.returncode == 1
    assert "timed out after 0.8 s without a session: connection refused" in result.stderr


def test_a_server_starting_up_is_waited_for() -> None:
    async def scenario() -> list[str]:
        port = _free_port()
        statuses: list[str] = []

        async def script(conn: Conn) -> None:
            await conn.event(play("c1"), "e1")
            await conn.closed.wait()

        session = RelaySession(
            config(f"ws://127.0.0.1:{port}", connect_retry_delay=0.2), status=statuses.append, problem=statuses.append
        )
        events = session.events()
        first = asyncio.ensure_future(anext(events))
        while not any("cannot connect" in s for s in statuses):
            await asyncio.sleep(0.01)
        server = TinyRelay(script)
        server._server = await serve(server._handle, "127.0.0.1", port)
        try:
            item = await first
            assert item.id == "e1"
        finally:
            await session.close()
            await events.aclose()
            server._server.close()
        return statuses

    statuses = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert statuses[1].startswith("cannot connect: connection refused")
    assert any(s.startswith("connected") for s in statuses)


def test_after_a_first_session_reconnecting_goes_on_past_the_first_retries() -> None:
    async def scenario() -> tuple[int, list[str]]:
        statuses: list[str] = []

        async def script(conn: Conn) -> None:
            await conn.ws.close()

        server = TinyRelay(script)
        await server.__aenter__()
        session = RelaySession(
            config(server.url, backoff_initial=0.01, backoff_max=0.02), status=statuses.append, problem=statuses.append
        )

        async def consume() -> None:
            async for _ in session.events():
                pass

        task = asyncio.create_task(consume())
        while not server.conns:
            await asyncio.sleep(0.01)
        await server.__aexit__()
        while sum("cannot connect" in s for s in statuses) < 8:
            await asyncio.sleep(0.01)
            assert not task.done(), task
        await session.close()
        task.cancel()
        return session.stats.connects, statuses

    connects, statuses = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert connects == 1
    assert sum("cannot connect" in s for s in statuses) >= 8


def test_a_refused_resume_connects_fresh_at_once_with_one_line_and_no_secret() -> None:
    state = "STATE-" + "s" * 60

    async def scenario() -> list[str]:
        async def script(conn: Conn) -> None:
            if conn.index == 0:
                auth = {"event_type": "signalwire.authorization.state", "params": {"authorization_state": state}}
                await conn.event(auth, "a1")
                await conn.acked("a1")
                await conn.ws.close()
            else:
                await conn.event(play("c1"), "e1")
                await conn.closed.wait()

        async with TinyRelay(script, refuse_resume=True) as server:
            statuses: list[str] = []
            session = RelaySession(
                config(server.url, backoff_initial=0.05, backoff_max=60),
                status=statuses.append,
                problem=statuses.append,
            )
            async for item in session.events():
                if item.id == "e1":
                    break
            await session.close()
        return statuses

    statuses = asyncio.run(asyncio.wait_for(scenario(), 20))
    after = statuses[statuses.index(next(s for s in statuses if s.startswith("connection lost"))) + 1 :]
    assert after[0].endswith("(resuming)")
    assert after[1].startswith("connecting to") and "resuming" not in after[1]
    assert after[2] == (
        "the server refused to resume the session (bad state [redacted]): connected, fresh session "
        "(contexts: office); events in the gap may be missing"
    )
    assert len(after) == 3
    assert not any(state in s for s in statuses)


def test_ending_against_a_fast_server_closes_promptly() -> None:
    """The close handshake is not stuck behind unread frames: with a 60 s close timeout the test would
    time out if the client waited for it."""

    async def scenario() -> list[int | None]:
        async def script(conn: Conn) -> None:
            i = 0
            while not conn.closed.is_set():
                await conn.event(play("c1", n=i), f"e{i}")
                i += 1

        async with TinyRelay(script) as server:
            session = RelaySession(config(server.url, close_timeout=60))
            seen = 0
            async for _ in session.events():
                seen += 1
                if seen == 200:
                    break
            await session.close()
            while not server.close_codes:
                await asyncio.sleep(0.01)
        return server.close_codes

    assert asyncio.run(asyncio.wait_for(scenario(), 15)) == [1000]


def test_rejected_credentials_say_what_to_check() -> None:
    with emulator(project="p-123", token="right", mode="app") as server:
        result = relay("tail", "--url", server.url, *CREDS, "-c", "x", timeout=30)
    assert result.returncode == 1
    assert (
        "authentication failed 3 times, giving up: Authentication service failed" in result.stderr
        and "check --project/SIGNALWIRE_PROJECT_ID, --token/SIGNALWIRE_API_TOKEN (or --jwt/SIGNALWIRE_JWT_TOKEN)"
        " and --space/SIGNALWIRE_SPACE"
        in result.stderr
    )
    assert SECRET not in result.stderr


def test_malformed_frame_excerpts_from_the_session_hide_the_token() -> None:
    async def scenario() -> list[str]:
        async def script(conn: Conn) -> None:
            await conn.ws.send(f'{{"token": "{SECRET}", "oops"')
            await conn.event(play("c1"), "e1")
            await conn.closed.wait()

        async with TinyRelay(script) as server:
            problems: list[str] = []
            session = RelaySession(config(server.url), problem=problems.append)
            async for _ in session.events():
                break
            await session.close()
        return problems

    problems = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert len(problems) == 1 and "skipped a malformed frame (not JSON)" in problems[0]
    assert SECRET not in problems[0]


def test_library_session_gives_up_with_a_session_error() -> None:
    async def scenario() -> None:
        session = RelaySession(config(f"ws://127.0.0.1:{_free_port()}", connect_retries=1, connect_retry_delay=0.01))
        async for _ in session.events():
            pass

    with pytest.raises(SessionError, match=r"cannot connect to ws://127\.0\.0\.1:\d+: connection refused .*tried 2"):
        asyncio.run(asyncio.wait_for(scenario(), 20))
