"""``relay proxy`` as a user runs it: a subprocess between an app and a ``relay serve``, over loopback sockets.

The upstream is one emulator for the module (app mode, fast); each test's app uses a context of its own, so no
call is offered to another test's session. The apps are SignalWire's own SDK (over wss, trusting the proxy's
local CA through ``SIGNALWIRE_RELAY_CA_FILE``) and plain websockets clients against ``--plain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import relay_env
from harness import EmulatorThread
from signalwire.relay.call import Call
from signalwire.relay.client import RelayClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from relay_cli.emulator.farends import FarEnd
from relay_cli.pipeline.reader import read_frame
from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, ack, connect_params, redact, request

TOKEN = "PT-proxy-cli-secret-0123456789"
OWN = "+15550001111"
AGENT = "+15550002222"
START = re.compile(r"^relay: proxy on (wss?)://127\.0\.0\.1:(\d+) → (\S+)$")
WAIT = 10.0
"""Seconds any one thing may take before a test gives up on it."""
_contexts = itertools.count(1)
_calls = itertools.count(1)


def context() -> str:
    """A context no other test's app listens on."""
    return f"proxy-cli-{next(_contexts)}"


def new_call_id() -> str:
    """An id for the inbound call a test's app answers: ``c0ffee00-``, then one no other test's call has."""
    return f"c0ffee00-0000-4000-8000-{next(_calls):012d}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[EmulatorThread]:
    server = EmulatorThread(mode="app", speed=50, ping_interval=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One local CA for the module's proxies (the first run makes it)."""
    return tmp_path_factory.mktemp("proxy-ca") / "ca"


# -- running relay proxy -------------------------------------------------------------------------------------


def _env(**overrides: str) -> dict[str, str]:
    """relay's test environment without the SIGNALWIRE_ variables of this process (the SDK's CA file among them)."""
    env = {k: v for k, v in relay_env().items() if not k.startswith("SIGNALWIRE_")}
    env.update(overrides)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "relay_cli", "proxy", *args]


class Running:
    """A ``relay proxy`` subprocess; threads collect its stdout (unless told not to) and stderr, line by line."""

    def __init__(self, args: Sequence[str], *, read_stdout: bool = True) -> None:
        self.proc = one_shot(*args)
        self.out: list[str] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [threading.Thread(target=_collect, args=(self.proc.stderr, self.err), daemon=True)]
        if read_stdout:
            self._readers.append(threading.Thread(target=_collect, args=(self.proc.stdout, self.out), daemon=True))
        for reader in self._readers:
            reader.start()
        self.port = 0
        self.url = ""
        self.ca_file = ""

    def wait_started(self) -> None:
        """Until the start lines are out: the address from the first, the CA file from the last (wss)."""
        self.until(lambda: bool(self.err) and START.match(self.err[0].rstrip("\n")) is not None, "the start line")
        match = START.match(self.err[0].rstrip("\n"))
        assert match is not None
        scheme, port, _ = match.groups()
        self.port = int(port)
        self.url = f"{scheme}://127.0.0.1:{port}"
        last = "SIGNALWIRE_RELAY_CA_FILE=" if scheme == "wss" else "relay: point a client"
        self.until(lambda: any(line.startswith(last) for line in self.err), "the last start line")
        if scheme == "wss":
            self.ca_file = next(x for x in self.err if x.startswith(last)).rstrip("\n").split("=", 1)[1]

    @property
    def space(self) -> str:
        """What SIGNALWIRE_SPACE names: the proxy's address."""
        return f"127.0.0.1:{self.port}"

    def until(self, ready: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                self.join()
                if ready():
                    return
                raise AssertionError(f"relay proxy exited {self.proc.returncode} before {what}: {''.join(self.err)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {''.join(self.err)}")
            time.sleep(0.02)

    def stderr_has(self, text: str) -> Callable[[], bool]:
        return lambda: any(text in line for line in self.err)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send ``sig``; the exit code, all of stdout and all of stderr, which never holds a traceback."""
        self.proc.send_signal(sig)
        return self.wait()

    def wait(self) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=WAIT)
        self.join()
        err = "".join(self.err)
        assert "Traceback" not in err, err
        return code, "".join(self.out), err

    def join(self) -> None:
        for reader in self._readers:
            reader.join(WAIT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self.join()


def _collect(stream: Any, into: list[str]) -> None:
    with contextlib.suppress(ValueError, OSError):  # the test closed the stream itself
        for line in stream:
            into.append(line)


@contextlib.contextmanager
def proxying(*args: str, read_stdout: bool = True) -> Iterator[Running]:
    """``relay proxy --listen 127.0.0.1:0 ARGS``, started; killed at the end if the test left it running."""
    running = Running(["--listen", "127.0.0.1:0", *args], read_stdout=read_stdout)
    try:
        running.wait_started()
        yield running
    finally:
        running.kill()


def one_shot(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``relay proxy ARGS`` started with stdout and stderr piped, not waited for (a run, or one that ends itself)."""
    return subprocess.Popen(
        _command(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env or _env(),
    )


def finished(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"relay proxy kept running: {err}") from None
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def relay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay_cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(),
        timeout=30,
        check=False,
    )


def records(stdout: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


# -- the apps ------------------------------------------------------------------------------------------------


def run(main: Any, timeout: float = 20.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main, timeout)

    return asyncio.run(bounded())


def phone(number: str) -> dict[str, Any]:
    return {"type": "phone", "params": {"to_number": number, "from_number": OWN}}


@dataclass(frozen=True)
class Flow:
    """What an SDK app did through the proxy: the inbound call it answered (id chosen), the call it dialled."""

    context: str
    answered: str
    dialled: str


async def sdk_app(proxy: Running, upstream: EmulatorThread) -> Flow:
    """An SDK app: it pings, answers an inbound call (an id of the test's), plays to it and hangs up; then dials out
    and hangs up; then disconnects (7 requests in all). The SDK reads SIGNALWIRE_RELAY_CA_FILE (the proxy's CA)
    when it connects."""
    ctx = context()
    answered = new_call_id()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    async def answer(call: Call) -> None:
        try:
            await call.answer()
            played = await call.play_tts("Welcome, through relay proxy.")
            await played.wait()
            await call.hangup()
            await call.wait_for_ended()
            done.set_result(None)
        except Exception as exc:  # the test fails with what went wrong, not with a timeout
            done.set_exception(exc)

    client = RelayClient(project="proj", token=TOKEN, host=proxy.space, contexts=[ctx])
    await client.connect()
    try:
        client.on_call(answer)
        # A round trip first: the emulator sends a call offered the instant the connect result is out a second
        # time, as if it were a resumed session's backlog (an emulator bug; the proxy forwards both faithfully).
        await client.execute("signalwire.ping", {"timestamp": 0.0})
        emu = upstream.emulator
        upstream.call(
            lambda: emu.core.calls.start_inbound(
                context=ctx, from_number="+15557770000", to_number=OWN, caller=FarEnd(), call_id=answered
            )
        )
        await done
        dialled = await client.dial([[phone(AGENT)]])
        await dialled.hangup()
        await dialled.wait_for_ended()
    finally:
        await client.disconnect()
    assert dialled.call_id and dialled.call_id != answered
    return Flow(ctx, answered, dialled.call_id)


def through(proxy: Running, upstream: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> Flow:
    """Run the SDK app through ``proxy``, trusting its CA, until the proxy has seen the connection close."""
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", proxy.ca_file)
    flow: Flow = run(sdk_app(proxy, upstream))
    proxy.until(proxy.stderr_has("closed by the app"), "the app's connection to close")
    return flow


async def hello(url: str, ctx: str, protocol: str | None = None) -> tuple[ClientConnection, dict[str, Any]]:
    """A plain websockets app, connected and authenticated: its socket and its connect result."""
    ws = await connect(url, ping_interval=None)
    params = connect_params(project="proj", token=TOKEN, contexts=[ctx], protocol=protocol)
    await ws.send(orjson.dumps(request("signalwire.connect", params, "c-1")).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame.get("id") == "c-1":
            return ws, frame


async def answer_events(ws: ClientConnection, frames: int) -> None:
    """Receive ``frames`` frames, ACKing each event among them."""
    for _ in range(frames):
        frame = orjson.loads(await ws.recv())
        if frame.get("method") == "signalwire.event":
            await ws.send(orjson.dumps(ack(frame["id"])).decode())


def journal(upstream: EmulatorThread) -> list[Any]:
    """The emulator's journal, read on its own loop."""

    async def read() -> list[Any]:
        return list(upstream.emulator.journal.records())

    return upstream.run(read())


# -- start lines and the local CA ----------------------------------------------------------------------------


def test_start_lines_are_printed_to_copy_even_quiet_and_the_ca_is_made_once_then_reused(
    tmp_path: Path, upstream: EmulatorThread
) -> None:
    ca = tmp_path / "ca"
    with proxying("--upstream", upstream.url, "--ca-dir", str(ca), "-q") as first:
        code, _, err = first.stop()
    port = first.port
    cert = ca / "relay-ca.pem"
    assert code == 130
    assert err.splitlines() == [  # -q: the start lines, and no summary
        f"relay: proxy on wss://127.0.0.1:{port} → {upstream.url}",
        f"relay: made a local CA for relay: {cert} (trust it only for apps you run through relay)",
        "relay: run your app with:",
        f"SIGNALWIRE_SPACE=127.0.0.1:{port}",
        f"SIGNALWIRE_RELAY_CA_FILE={cert}",
    ]
    key = ca / "relay-ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    made = cert.read_bytes(), key.read_bytes()

    with proxying("--upstream", upstream.url, "--ca-dir", str(ca)) as second:
        code, _, err = second.stop(signal.SIGTERM)
    assert code == 143
    lines = err.splitlines()
    assert lines[:4] == [
        f"relay: proxy on wss://127.0.0.1:{second.port} → {upstream.url}",
        "relay: run your app with:",
        f"SIGNALWIRE_SPACE=127.0.0.1:{second.port}",
        f"SIGNALWIRE_RELAY_CA_FILE={cert}",
    ]
    assert not any("made a local CA" in line for line in lines)
    assert "relay: no requests" in lines  # the summary, on SIGTERM too
    assert (cert.read_bytes(), key.read_bytes()) == made


# -- an SDK app through the proxy ----------------------------------------------------------------------------


def test_an_sdk_app_shows_requests_with_their_latency_and_events_with_the_apps_ack_latency(
    upstream: EmulatorThread, ca_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with proxying("--upstream", upstream.url, "--ca-dir", str(ca_dir), "-o", "pretty", "--color", "never") as proxy:
        flow = through(proxy, upstream, monkeypatch)
        code, out, err = proxy.stop()
    assert code == 130
    lines = out.splitlines()
    clock = r"\d\d:\d\d:\d\d\.\d{3} #1  "
    took = r" · \d+(\.\d)? ms$"

    def shown(pattern: str) -> list[str]:
        return [line for line in lines if re.match(clock + pattern, line)]

    assert shown(r"→ signalwire\.connect +contexts " + re.escape(flow.context) + "$")
    assert shown(r"← signalwire\.connect +session \w+" + took)
    for method in ("calling.answer", "calling.play", "calling.end", "calling.dial"):
        assert shown(f"→ {re.escape(method)} "), method
        assert shown(f"← {re.escape(method)} .*200.*{took}"), method
    assert shown(r"→ calling\.play +c0ffee00 control \w+ tts \"Welcome, through relay proxy\.\"$")
    events = [line for line in lines if " ← calling.call." in line]
    assert len(events) >= 8
    assert all(re.search(r" · ack \d+(\.\d)? ms$", line) for line in events), out
    assert shown(r"← calling\.call\.play +c0ffee00 play finished · ack ")
    assert TOKEN not in out and TOKEN not in err
    assert "#1 closed by the app (1000)" in err


@dataclass(frozen=True)
class Session:
    """An SDK app's session through ``relay proxy -o json --record FILE``, stopped with SIGINT."""

    flow: Flow
    code: int
    out: str
    err: str
    recording: Path
    journal: list[Any]


@pytest.fixture(scope="module")
def session(upstream: EmulatorThread, ca_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Session:
    recording = tmp_path_factory.mktemp("proxy-record") / "app.jsonl"
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        proxying("--upstream", upstream.url, "--ca-dir", str(ca_dir), "-o", "json", "--record", str(recording)) as p,
    ):
        flow = through(p, upstream, monkeypatch)
        code, out, err = p.stop()
    return Session(flow, code, out, err, recording, journal(upstream))


def _upstream_frames(session: Session) -> list[Any]:
    """The emulator's frames of the session's connection (the one whose connect carried the app's context)."""
    mine = next(r for r in session.journal if session.flow.context.encode() in r.raw and r.direction == APP_TO_RELAY)
    return [r for r in session.journal if r.connection == mine.connection]


def test_json_output_is_one_frame_record_per_frame_both_ways_on_connection_one(session: Session) -> None:
    shown = records(session.out)
    upstream = _upstream_frames(session)
    assert [(r["dir"], r["conn"]) for r in shown if r["dir"] == APP_TO_RELAY] == [
        (r.direction, 1) for r in upstream if r.direction == APP_TO_RELAY
    ]
    assert [(r["dir"], r["conn"]) for r in shown if r["dir"] == RELAY_TO_APP] == [
        (r.direction, 1) for r in upstream if r.direction == RELAY_TO_APP
    ]
    for direction in (APP_TO_RELAY, RELAY_TO_APP):
        ids = [r["frame"]["id"] for r in shown if r["dir"] == direction]
        assert ids == [r.value["id"] for r in upstream if r.direction == direction]
    assert {r["dir"] for r in shown} == {APP_TO_RELAY, RELAY_TO_APP}
    assert all(isinstance(r["t"], float) for r in shown)
    assert shown[0]["frame"]["method"] == "signalwire.connect"
    assert shown[0]["frame"]["params"]["authentication"] == "[redacted]"


def test_the_token_reaches_relay_intact_but_never_stdout_stderr_or_the_recording(session: Session) -> None:
    connect_frame = next(r for r in _upstream_frames(session) if r.direction == APP_TO_RELAY)
    assert connect_frame.value["params"]["authentication"] == {"project": "proj", "token": TOKEN}
    assert TOKEN not in session.out
    assert TOKEN not in session.err
    assert TOKEN.encode() not in session.recording.read_bytes()


def test_interrupted_it_exits_130_with_a_summary_of_requests_events_acks_and_connections(session: Session) -> None:
    assert session.code == 130
    lines = session.err.splitlines()
    quantiles = r"p50 \d+(\.\d)? ms  p99 \d+(\.\d)? ms  max \d+(\.\d)? ms$"
    requests = lines.index("relay: requests by method (7)")
    methods = lines[requests + 1 : requests + 8]
    named = ("calling.answer", "calling.dial", "calling.end", "calling.play", "signalwire.connect", "signalwire.ping")
    for method in named:
        assert any(re.match(rf"relay:   {re.escape(method)} +\d+  {quantiles}", line) for line in methods), method
    events = next(line for line in lines if line.startswith("relay: events by type ("))
    assert any(re.match(r"relay:   calling\.call\.state +\d+$", line) for line in lines[lines.index(events) :])
    assert any(re.match(rf"relay: ACKs \d+  {quantiles[:-1]}  missing 0$", line) for line in lines)
    assert "relay: connections 1  reconnects 0  resumes 0" in lines


def test_the_recording_is_private_every_frame_a_record_of_connection_one_and_its_end_last(session: Session) -> None:
    assert stat.S_IMODE(session.recording.stat().st_mode) == 0o600
    *lines, end = [orjson.loads(line) for line in session.recording.read_bytes().splitlines()]
    assert end == {"_relay": {"t": end["_relay"]["t"], "conn": 1, "closed": 1000, "reason": "", "detail": "by the app"}}
    assert end["_relay"]["t"] >= lines[-1]["_relay"]["t"]
    assert len(lines) == len(records(session.out))
    for line in lines:
        mark = line["_relay"]
        assert set(mark) == {"dir", "t", "conn"}, mark
        assert mark["dir"] in (APP_TO_RELAY, RELAY_TO_APP) and mark["conn"] == 1 and isinstance(mark["t"], float)
        assert line["jsonrpc"] == "2.0"
    assert [line["_relay"]["dir"] for line in lines] == [r["dir"] for r in records(session.out)]


def test_replay_of_the_recording_shows_its_events_and_calls_builds_its_calls(session: Session) -> None:
    replayed = relay("replay", str(session.recording), "-o", "json")
    assert (replayed.returncode, replayed.stderr) == (0, "")
    events = [r["frame"]["params"] for r in records(session.out) if r["frame"].get("method") == "signalwire.event"]
    assert [e["event_type"] for e in records(replayed.stdout)] == [e["event_type"] for e in events]
    calls = relay("calls", str(session.recording), "--color", "never")
    assert calls.returncode == 0, calls.stderr
    assert "Traceback" not in calls.stderr
    heads = [line for line in calls.stdout.splitlines() if line.startswith("call ")]
    assert [line.split()[1:3] for line in heads] == [
        [session.flow.answered, "inbound"],
        [session.flow.dialled, "outbound"],
    ]
    assert re.search(r"\n  \+\d+\.\d{3}s  play +finished\n", calls.stdout)
    assert calls.stdout.count("state       ended (hangup)") == 2


# -- filters -------------------------------------------------------------------------------------------------


def _answers_follow(shown: list[dict[str, Any]], asked: list[dict[str, Any]]) -> bool:
    """Every answer shown answers a frame shown, the other way."""
    ids = {(r["dir"], r["frame"]["id"]) for r in asked}
    flip = {APP_TO_RELAY: RELAY_TO_APP, RELAY_TO_APP: APP_TO_RELAY}
    return all((flip[r["dir"]], r["frame"]["id"]) in ids for r in shown if "method" not in r["frame"])


def _by_method(shown: list[dict[str, Any]], flow: Flow) -> None:
    asked = [r for r in shown if "method" in r["frame"]]
    assert {r["frame"]["method"] for r in asked} == {"calling.answer", "calling.play", "calling.end", "calling.dial"}
    assert all(r["dir"] == APP_TO_RELAY for r in asked)
    assert len(shown) == 2 * len(asked) and _answers_follow(shown, asked)


def _by_direction(shown: list[dict[str, Any]], flow: Flow) -> None:
    assert {r["dir"] for r in shown} == {RELAY_TO_APP}
    assert any(r["frame"].get("method") == "signalwire.event" for r in shown)


def _by_direction_with_results(shown: list[dict[str, Any]], flow: Flow) -> None:
    """What RELAY sent includes its answers to the app's requests."""
    _by_direction(shown, flow)
    methods = {r["frame"]["result"].get("message") for r in shown if "result" in r["frame"]}
    assert {"Answered", "Playing", "Dialing"} <= methods


def _by_type(shown: list[dict[str, Any]], flow: Flow) -> None:
    events = [r for r in shown if "method" in r["frame"]]
    assert [r["frame"]["params"]["params"]["state"] for r in events] == ["playing", "finished"]
    assert all(r["frame"]["params"]["event_type"] == "calling.call.play" for r in events)
    assert len(shown) == 4 and _answers_follow(shown, events)  # and their ACKs


def _by_call(shown: list[dict[str, Any]], flow: Flow) -> None:
    asked = [r for r in shown if "method" in r["frame"]]
    assert {r["frame"]["method"] for r in asked} >= {"calling.answer", "calling.play", "calling.end"}
    for r in asked:
        params = r["frame"]["params"]
        ids = {params.get("call_id"), params.get("params", {}).get("call_id")}
        assert flow.answered in ids, r
    assert flow.dialled not in str(shown) and _answers_follow(shown, asked)


@pytest.mark.parametrize(
    ("option", "check"),
    [
        (["--method", "calling.*"], _by_method),
        (["--direction", "relay"], _by_direction),
        (["--direction", "relay>app"], _by_direction_with_results),
        (["--type", "calling.call.play"], _by_type),
        (["--call-id", "c0ffee00"], _by_call),  # a prefix: the answered call's, not the dialled one's
    ],
    ids=["method", "direction", "direction-results", "type", "call-id"],
)
def test_filters_narrow_what_stdout_shows(
    option: list[str],
    check: Callable[[list[dict[str, Any]], Flow], None],
    upstream: EmulatorThread,
    ca_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with proxying("--upstream", upstream.url, "--ca-dir", str(ca_dir), "-o", "json", *option) as proxy:
        flow = through(proxy, upstream, monkeypatch)
        code, out, err = proxy.stop()
    assert code == 130
    shown = records(out)
    assert shown, err
    check(shown, flow)
    # The summary counts every frame, shown or not.
    assert "relay: requests by method (7)" in err.splitlines(), err


def test_a_bad_filter_is_a_one_line_usage_error() -> None:
    cases = [
        (["--direction", "x"], "relay: --direction 'x': expected app>relay (or app) or relay>app (or relay)\n"),
        (["--method", ""], "relay: --method '': empty pattern; give a method or a glob such as 'calling.*'\n"),
    ]
    procs = [(one_shot("--listen", "127.0.0.1:0", "--plain", *args), message) for args, message in cases]
    for proc, message in procs:
        assert finished(proc) == (2, "", message)


# -- ACKs, reconnects, an upstream that is not there ---------------------------------------------------------


def test_an_event_the_app_does_not_ack_within_5_s_is_flagged(upstream: EmulatorThread) -> None:
    with proxying("--upstream", upstream.url, "--plain", "-o", "pretty", "--color", "never") as proxy:
        flagged = " · no ACK in 5 s"

        async def app() -> None:
            ws, _ = await hello(proxy.url, context())
            async with ws:
                frame = orjson.loads(await ws.recv())  # the authorization state event: not ACKed
                assert frame["method"] == "signalwire.event"
                deadline = time.monotonic() + WAIT
                while not any(flagged in line for line in proxy.out):
                    assert time.monotonic() < deadline, proxy.out
                    await asyncio.sleep(0.05)

        run(app())
        proxy.until(proxy.stderr_has("closed by the app"), "the app's connection to close")
        code, out, err = proxy.stop()
    assert code == 130
    [line] = [line for line in out.splitlines() if "signalwire.auth.state" in line]
    assert line.endswith(flagged)
    assert any(re.match(r"relay: ACKs 0  missing 1$", x) for x in err.splitlines()), err


def test_an_event_unacked_when_the_app_closes_reads_the_same_live_and_replayed(
    upstream: EmulatorThread, tmp_path: Path
) -> None:
    """The recording keeps the connection's end, so ``replay --frames`` says "no ACK, closed" as the live proxy
    did, not "no ACK" (awaited at exit); the event recordings' readers skip that line, and ``parse`` names it."""
    path = tmp_path / "rec.jsonl"
    with proxying(
        "--upstream", upstream.url, "--plain", "-o", "pretty", "--color", "never", "--record", str(path)
    ) as p:

        async def app() -> None:
            ws, _ = await hello(p.url, context())
            async with ws:
                frame = orjson.loads(await ws.recv())  # the authorization state event, never ACKed
                assert frame["method"] == "signalwire.event"

        run(app())
        p.until(p.stderr_has("closed by the app"), "the app's connection to close")
        code, out, _ = p.stop()
    assert code == 130
    [live] = [line for line in out.splitlines() if "signalwire.auth.state" in line]
    assert live.endswith(" · no ACK, closed")
    end = orjson.loads(path.read_bytes().splitlines()[-1])
    assert end["_relay"]["closed"] == 1000 and end["_relay"]["detail"] == "by the app"

    replayed = relay("replay", str(path), "--frames", "-o", "pretty", "--color", "never", "--summary")
    assert replayed.returncode == 0, replayed.stderr
    [again] = [line for line in replayed.stdout.splitlines() if "signalwire.auth.state" in line]
    assert again.split("  ", 1)[1] == live.split("  ", 1)[1]  # the same line after the clock
    assert "relay: ACKs 0  missing 1" in replayed.stderr.splitlines()
    events = relay("replay", str(path), "-o", "json")
    assert (events.returncode, events.stderr, len(events.stdout.splitlines())) == (0, "", 1)
    (tmp_path / "end.json").write_bytes(path.read_bytes().splitlines()[-1])
    named = relay("parse", str(tmp_path / "end.json"))
    assert named.returncode == 0  # named, as any frame that is not an event is
    assert named.stderr.endswith(
        ": not an event: a connection's end, not a frame (connection 1 closed by the app, code 1000)\n"
    )


def test_reconnects_are_numbered_and_counted(upstream: EmulatorThread) -> None:
    with proxying("--upstream", upstream.url, "--plain", "-o", "pretty", "--color", "never") as proxy:
        ctx = context()

        async def app() -> None:
            ws, first = await hello(proxy.url, ctx)
            async with ws:
                await answer_events(ws, 1)
            ws, _ = await hello(proxy.url, ctx, protocol=first["result"]["protocol"])
            async with ws:
                await ws.send(orjson.dumps(request("signalwire.ping", {}, "p-1")).decode())
                while orjson.loads(await ws.recv()).get("id") != "p-1":
                    pass

        run(app())
        proxy.until(proxy.stderr_has("#2 closed by the app"), "the second connection to close")
        code, out, err = proxy.stop()
    assert code == 130
    lines = out.splitlines()
    assert any(" #1  → signalwire.connect " in line for line in lines)
    assert any(" #2  → signalwire.connect " in line and line.endswith(" resuming") for line in lines)
    assert any(" #2  ← signalwire.connect " in line for line in lines)
    stderr = err.splitlines()
    assert any(line.startswith("relay: #1 app 127.0.0.1:") and " connected → " in line for line in stderr)
    assert any(line.startswith("relay: #2 app 127.0.0.1:") and " connected → " in line for line in stderr)
    assert "relay: connections 2  reconnects 1  resumes 1" in stderr


def _free_port() -> int:
    """A loopback port nobody listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_upstream_that_is_not_there_turns_the_app_away_with_502_and_the_proxy_keeps_running() -> None:
    gone = f"ws://127.0.0.1:{_free_port()}"
    with proxying("--upstream", gone, "--plain") as proxy:

        async def knock() -> int:
            with pytest.raises(InvalidStatus) as refused:
                await connect(proxy.url, ping_interval=None)
            return refused.value.response.status_code

        assert run(knock()) == 502
        proxy.until(proxy.stderr_has("turned away"), "the refusal")
        assert proxy.proc.poll() is None
        assert run(knock()) == 502  # and the next app too
        proxy.until(proxy.stderr_has("#2 app"), "the second refusal")
        code, _, err = proxy.stop()
    assert code == 130
    refusals = [line for line in err.splitlines() if "turned away" in line]
    assert len(refusals) == 2
    for number, line in enumerate(refusals, 1):
        assert re.match(
            rf"relay: #{number} app 127\.0\.0\.1:\d+ turned away \(HTTP 502\): cannot reach RELAY: connection refused"
            rf" \({re.escape(gone)}/\)$",
            line,
        ), line
    assert "refused 2" in err


# -- usage errors and runtime errors -------------------------------------------------------------------------


def test_usage_errors_are_one_line_each_with_exit_2(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = tmp_path / "missing.pem"
    cases: list[tuple[list[str], dict[str, str] | None, str]] = [
        (
            ["--plain", "--listen", "0.0.0.0:0"],
            None,
            "--plain listens without TLS: only on a loopback address, not 0.0.0.0",
        ),
        (["--plain", "--ca-dir", "X"], None, "--ca-dir is for TLS toward the app: --plain listens without it"),
        (
            ["--upstream", "ws://127.0.0.1:1", "--space", "x.signalwire.com"],
            None,
            "--upstream and --space cannot be used together: --upstream names the endpoint itself",
        ),
        (
            ["--upstream", "ws://10.0.0.1:80"],
            None,
            "--upstream 'ws://10.0.0.1:80': plain ws:// is only allowed to a loopback address; use wss://",
        ),
        (
            ["--listen", "nonsense"],
            None,
            "--listen 'nonsense': give HOST:PORT, such as 127.0.0.1:8766 (port 0 picks a free one)",
        ),
        (
            ["--listen", "127.0.0.1:99999"],
            None,
            "--listen '127.0.0.1:99999': give HOST:PORT, such as 127.0.0.1:8766 (port 0 picks a free one)",
        ),
        (
            ["--upstream", "ws://127.0.0.1:1", "--upstream-ca-file", str(garbage)],
            None,
            "--upstream-ca-file is for a wss:// upstream, not ws://127.0.0.1:1",
        ),
        (
            ["--upstream", "wss://127.0.0.1:1", "--upstream-ca-file", str(missing)],
            None,
            f"--upstream-ca-file {missing}: cannot load: [Errno 2] No such file or directory",
        ),
        (
            ["--upstream", "wss://127.0.0.1:1", "--upstream-ca-file", str(garbage)],
            None,
            f"--upstream-ca-file {garbage}: cannot load: [X509: NO_CERTIFICATE_OR_CRL_FOUND]",
        ),
        (
            ["--listen", "127.0.0.1:8766"],
            _env(SIGNALWIRE_SPACE="127.0.0.1:8766"),
            "SIGNALWIRE_SPACE='127.0.0.1:8766' (from the environment) is the proxy's own address (127.0.0.1:8766):"
            " it would forward to itself",
        ),
    ]
    started = [(one_shot(*args, env=env), args, message) for args, env, message in cases]
    for proc, args, message in started:
        code, out, err = finished(proc)
        assert (code, out) == (2, ""), (args, err)
        assert err.startswith(f"relay: {message}") and err.count("\n") == 1, (args, err)


def test_a_listen_port_in_use_is_a_one_line_error(upstream: EmulatorThread, ca_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = one_shot("--listen", f"127.0.0.1:{port}", "--upstream", upstream.url, "--plain")
        assert finished(proc) == (1, "", f"relay: cannot listen on 127.0.0.1:{port}: Address already in use\n")


def test_a_ca_key_others_can_read_is_refused_with_how_to_fix_it(tmp_path: Path, upstream: EmulatorThread) -> None:
    ca = tmp_path / "ca"
    with proxying("--upstream", upstream.url, "--ca-dir", str(ca), "-q") as first:
        first.stop()
    (ca / "relay-ca-key.pem").chmod(0o644)
    code, out, err = finished(one_shot("--listen", "127.0.0.1:0", "--upstream", upstream.url, "--ca-dir", str(ca)))
    assert (code, out) == (1, "")
    assert err.startswith("relay: ") and err.count("\n") == 1 and "chmod 600" in err, err


def test_recording_to_a_symbolic_link_or_a_directory_is_refused(tmp_path: Path, upstream: EmulatorThread) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    link = tmp_path / "rec.jsonl"
    link.symlink_to(target)
    cases = [
        (link, f"relay: cannot record to {link}: it is a symbolic link; give the file itself\n"),
        (tmp_path, f"relay: cannot record to {tmp_path}: Is a directory\n"),
    ]
    started = [
        (one_shot("--listen", "127.0.0.1:0", "--upstream", upstream.url, "--plain", "--record", str(p)), message)
        for p, message in cases
    ]
    for proc, message in started:
        assert finished(proc) == (1, "", message)
    assert target.read_text() == "precious\n"


def test_a_reader_of_stdout_that_goes_away_ends_the_proxy_with_exit_0(upstream: EmulatorThread) -> None:
    with proxying("--upstream", upstream.url, "--plain", "-o", "json", read_stdout=False) as proxy:
        assert proxy.proc.stdout is not None

        async def app() -> None:
            ws, _ = await hello(proxy.url, context())
            assert proxy.proc.stdout is not None
            proxy.proc.stdout.readline()  # the connect request: `relay proxy | head -1`
            proxy.proc.stdout.close()
            with contextlib.suppress(ConnectionClosed):
                async with ws:
                    deadline = time.monotonic() + WAIT
                    while proxy.proc.poll() is None:  # each ping is a frame printed to the closed pipe
                        assert time.monotonic() < deadline
                        await ws.send(orjson.dumps(request("signalwire.ping", {}, None)).decode())
                        await asyncio.sleep(0.05)

        run(app())
        code, _, err = proxy.wait()
    assert code == 0, err


def test_kill_9_loses_no_recorded_frame_that_was_forwarded(tmp_path: Path, upstream: EmulatorThread) -> None:
    """Each frame is written to the recording before it is forwarded, in one write(2): a proxy killed at any
    moment leaves every frame the app got (and every one RELAY answered) on disk, each line whole."""
    path = tmp_path / "rec.jsonl"
    received: list[Any] = []
    with proxying("--upstream", upstream.url, "--plain", "-o", "none", "--record", str(path)) as proxy:

        async def app() -> None:
            ws, connected = await hello(proxy.url, context())
            received.append(connected)
            for n in range(200):
                await ws.send(orjson.dumps(request("signalwire.ping", {}, f"p-{n}")).decode())
            while sum(str(frame.get("id")).startswith("p-") for frame in received) < 200:
                received.append(orjson.loads(await ws.recv(decode=False)))
            proxy.proc.kill()  # SIGKILL: no chance to flush anything
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()

        run(app())
        proxy.proc.wait(timeout=WAIT)
    frames = [read_frame(orjson.loads(line)) for line in path.read_bytes().splitlines()]
    assert None not in frames
    to_app = [orjson.loads(f[3]) for f in frames if f is not None and f[0] == RELAY_TO_APP]
    from_app = [orjson.loads(f[3]) for f in frames if f is not None and f[0] == APP_TO_RELAY]
    assert all(redact(frame) in to_app for frame in received)  # as recorded: secrets (the auth state) redacted
    assert sum(f.get("method") == "signalwire.ping" for f in from_app) == 200


def test_an_ambiguous_call_id_prefix_warns_once_and_never_ends_the_apps_session() -> None:
    from relay_cli.pipeline.filters import FrameFilter
    from relay_cli.run import ProxyWatch
    from relay_cli.views.proxy import ProxyView
    from relay_cli.views.text import Style

    warned: list[str] = []
    ended: list[bool] = []
    watch = ProxyWatch(ProxyView(Style(False), accept=FrameFilter(call_id="aa")), None, None, print, warned.append)
    watch.on_end = lambda: ended.append(True)
    for n, call in enumerate(("aa1", "aa2", "aa2")):
        payload = {"event_type": "calling.call.state", "params": {"call_id": call, "call_state": "ringing"}}
        watch.frame(RELAY_TO_APP, 1.0 + n, 1, orjson.dumps(request("signalwire.event", payload, f"e-{n}")), True)
    assert ended == [] and watch.error is None
    assert (
        len(warned) == 1 and "--call-id 'aa'" in warned[0] and warned[0].endswith("its frames are hidden from now on")
    )


def test_a_connections_end_that_cannot_be_recorded_ends_the_run_with_the_files_name() -> None:
    from relay_cli.pipeline.recording import FrameRecorder
    from relay_cli.proxy import Link
    from relay_cli.run import ProxyWatch
    from relay_cli.views.proxy import ProxyView
    from relay_cli.views.text import Style

    statuses: list[str] = []
    ended: list[bool] = []
    watch = ProxyWatch(ProxyView(Style(False)), None, FrameRecorder("/dev/full"), statuses.append, print)
    watch.on_end = lambda: ended.append(True)
    watch.link(Link(1, "closed", 2.0, "127.0.0.1:5", "by the app", 1000, ""))
    assert statuses == ["#1 closed by the app (1000)"]
    assert ended == [True] and watch.recorder is None
    assert str(watch.error) == "cannot write to /dev/full: No space left on device"
