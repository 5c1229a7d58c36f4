"""``relay serve`` as a user runs it: a subprocess on free ports, tailed by ``relay tail``, its frames on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from harness import CREDS, relay, spawn
from tls import certificate
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay_cli.protocol import AUTH_FAILED, CALL_PASS, INVALID_PARAMS, INVALID_REQUEST, ack, connect_params, request

START = re.compile(r"^relay: RELAY emulator on (wss?://\S+) \(control plane on (http://\S+)\)$")


@contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """Start ``relay serve --port 0 --control-port 0``; yield it with both URLs from its start line; stop it with
    SIGINT (exit 130, no traceback)."""
    proc = spawn("serve", "--port", "0", "--control-port", "0", *args)
    assert proc.stderr is not None
    line = proc.stderr.readline().rstrip("\n")
    match = START.match(line)
    try:
        assert match, line
        yield proc, match.group(1), match.group(2)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10)
            assert proc.returncode == 130, err
            assert "Traceback" not in err


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """``running``, for tests that need only the WebSocket URL."""
    with running(*args) as (_, url, _control):
        yield url


def test_serve_feeds_demo_traffic_to_tail() -> None:
    with serving("--demo", "--rate", "500", "--seed", "3") as url:
        result = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "50", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 50


def test_serve_accepts_only_the_given_credentials() -> None:
    with serving("--demo", "--project", "p-123", "--token", "other", "--rate", "100") as url:
        result = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "1")
    assert result.returncode == 1
    assert "Authentication service failed" in result.stderr


def test_serve_replays_a_recording(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    relay("tail", "--demo", "--rate", "0", "-n", "40", "--record", str(rec), "-o", "none")
    recorded = [orjson.loads(x) for x in rec.read_text().splitlines()]
    with serving("--replay", str(rec), "--rate", "0") as url:
        result = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "41", "-o", "json")
    shown = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert shown[0]["event_type"] == "signalwire.authorization.state"
    assert [e["params"] for e in shown[1:]] == [e["params"] for e in recorded]


def test_serve_wss_with_a_certificate_trusted_by_ca_file() -> None:
    cert, key = certificate()
    with serving("--demo", "--certfile", str(cert), "--keyfile", str(key), "--rate", "500") as url:
        assert url.startswith("wss://127.0.0.1:")
        trusted = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "5", "--ca-file", str(cert))
        untrusted = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "5", "--timeout", "3")
    assert trusted.returncode == 0, trusted.stderr
    assert len(trusted.stdout.splitlines()) == 5
    assert untrusted.returncode == 1
    assert f"the TLS certificate of {url} is not trusted (self-signed certificate)" in untrusted.stderr
    assert "pass --ca-file or set SIGNALWIRE_RELAY_CA_FILE" in untrusted.stderr


def test_serve_usage_errors() -> None:
    result = relay("serve", "--certfile", "x.pem")
    assert result.returncode == 2 and "--certfile and --keyfile go together" in result.stderr
    result = relay("serve", "--replay", "/no/such.jsonl")
    assert result.returncode == 1 and "/no/such.jsonl: no such file" in result.stderr


def test_serve_reports_a_port_in_use() -> None:
    with serving("--demo", "--rate", "1") as url:
        port = url.rsplit(":", 1)[1]
        result = relay("serve", "--port", port, "--control-port", "0")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


async def _reply(ws: ClientConnection, rid: Any) -> dict[str, Any]:
    """The reply with id ``rid``, ACKing the demo events that arrive before it."""
    async with asyncio.timeout(10):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("method") == "signalwire.event":
                await ws.send(orjson.dumps(ack(frame["id"])).decode())
            elif frame.get("id") == rid:
                return dict(frame)


async def _hostile_client(url: str) -> None:
    deep = "[" * 400 + "]" * 400
    async with connect(url, ping_interval=None) as ws:
        params = connect_params(project="p-123", token="PT-secret-token-value", contexts=["default"])
        await ws.send(orjson.dumps(request("signalwire.connect", params, "c-1")).decode())
        assert "result" in await _reply(ws, "c-1")
        frames = [
            ('{"jsonrpc":"2.0","id":"a","method":"signalwire.ping","params":"x"}', "a", INVALID_PARAMS),
            (f'{{"jsonrpc":"2.0","id":{deep},"method":"signalwire.ping"}}', None, INVALID_REQUEST),
            ('{"jsonrpc":"2.0","id":false,"method":"calling.pass"}', None, INVALID_REQUEST),
            (orjson.dumps(request(CALL_PASS, {"call_id": "c"}, "b")).decode(), "b", INVALID_PARAMS),
        ]
        for raw, rid, code in frames:
            await ws.send(raw)
            assert (await _reply(ws, rid))["error"]["code"] == code, raw[:60]
        await ws.send(f'{{"jsonrpc":"2.0","id":{deep},"result":{{}}}}')
        await ws.send(orjson.dumps(request("signalwire.ping", {"timestamp": 2.5}, "d")).decode())
        assert (await _reply(ws, "d"))["result"] == {"timestamp": 2.5}
    async with connect(url, ping_interval=None) as ws:  # a deep first frame
        await ws.send(f'{{"jsonrpc":"2.0","id":{deep},"method":"signalwire.connect"}}')
        assert (await _reply(ws, None))["error"]["code"] == AUTH_FAILED


def test_serve_survives_odd_frames_from_a_client_and_serves_the_next() -> None:
    with serving("--demo", "--rate", "500", "--seed", "3") as url:
        asyncio.run(_hostile_client(url))
        result = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "20", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 20


# -- an app's RELAY: the default traffic, its frames on stdout -------------------------------------------------


async def _connect_and_ping(url: str) -> None:
    async with connect(url, ping_interval=None) as ws:
        params = connect_params(project="p-123", token="PT-secret-token-value", contexts=["default"])
        await ws.send(orjson.dumps(request("signalwire.connect", params, "c-1")).decode())
        assert "result" in await _reply(ws, "c-1")
        await ws.send(orjson.dumps(request("calling.nothing", {"call_id": "x"}, "n-1")).decode())
        assert "error" in await _reply(ws, "n-1")


def _lines(proc: subprocess.Popen[str], n: int) -> list[str]:
    assert proc.stdout is not None
    return [proc.stdout.readline() for _ in range(n)]


def test_serve_prints_each_frame_both_ways_as_json_records() -> None:
    with running() as (proc, url, control):
        assert control.startswith("http://127.0.0.1:") and control != url.replace("ws", "http")
        asyncio.run(_connect_and_ping(url))
        records = [orjson.loads(line) for line in _lines(proc, 6)]
    assert {r["conn"] for r in records} == {1}
    assert (records[0]["dir"], records[0]["frame"]["method"]) == ("app>relay", "signalwire.connect")
    assert (records[1]["dir"], records[1]["frame"]["id"]) == ("relay>app", "c-1")
    assert records[0]["frame"]["params"]["authentication"] == "[redacted]"
    errors = [r for r in records if r["dir"] == "relay>app" and "error" in r["frame"]]
    assert errors and errors[0]["frame"]["id"] == "n-1"
    assert all(isinstance(r["t"], float) for r in records)


def test_serve_prints_pretty_lines_with_direction_marks_and_paired_results() -> None:
    with running("-o", "pretty", "--color", "never") as (proc, url, _):
        asyncio.run(_connect_and_ping(url))
        lines = _lines(proc, 5)
    text = "".join(lines)
    assert "#1  → signalwire.connect" in text and "#1  ← signalwire.connect" in text
    assert "← calling.nothing" in text and "error -32601" in text and " ms" in text
    assert "PT-secret-token-value" not in text


def test_serve_quiet_prints_only_the_start_line() -> None:
    with running("-q") as (proc, url, _):
        asyncio.run(_connect_and_ping(url))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (130, "", "")


def test_serve_stops_when_the_reader_of_its_frames_goes_away() -> None:
    with running("-o", "json") as (proc, url, _):
        assert proc.stdout is not None
        proc.stdout.close()
        # The first frame it prints finds the pipe closed: the server may be gone before the ping is answered.
        with contextlib.suppress(ConnectionClosed, OSError):
            asyncio.run(_connect_and_ping(url))
        proc.wait(timeout=10)
        assert proc.returncode == 0


def test_serve_demo_still_feeds_tail_demo() -> None:
    result = relay("tail", "--demo", "--rate", "0", "-n", "30", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 30


def test_serve_usage_errors_name_both_flags() -> None:
    cases = [
        (["--demo", "--scripted"], "--demo and --scripted cannot be used together"),
        (["--rate", "5"], "--rate paces demo traffic: it goes with --demo or --replay"),
        (["--scripted", "--events", "3"], "--events paces demo traffic: it goes with --demo or --replay"),
        (["--scripted", "--replay", "x.jsonl"], "--replay sends a recording's events: it cannot go with --scripted"),
        (["--speed", "0"], "--speed 0: must be above 0"),
        (["--demo", "--far-ends", "f.json"], "--far-ends scripts the parties an app talks to"),
        (["-o", "json", "-v"], "--verbose adds ACKs and pings to pretty output, but --format json"),
        (["--port", "65000"], "the control plane's default port 66000 is above 65535: give --control-port"),
        (["--port", "9000", "--control-port", "9000"], "--control-port 9000 is the WebSocket port"),
    ]
    for args, message in cases:
        result = relay("serve", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("relay: ") and message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr


def test_serve_refuses_a_bad_far_ends_file_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "far.json"
    cases = [
        (b'{"numbers": {"+15550001111": {"answer": "maybe"}}}', "numbers['+15550001111'].answer: must be one of"),
        (b'{"default": {"press": "12x"}}', "default.press: only digits 0-9, *, # and A-D can be pressed"),
        (b'{"default": {"answer": "busy",}}', "not JSON: line 1 column"),
        (b"[]", "far ends: must be an object, not an array"),
    ]
    for body, message in cases:
        path.write_bytes(body)
        result = relay("serve", "--far-ends", str(path))
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"relay: --far-ends {path}: {message}" + result.stderr.split(message, 1)[1]
        assert result.stderr.count("\n") == 1
    result = relay("serve", "--far-ends", str(tmp_path / "none.json"))
    assert (result.returncode, result.stderr) == (2, f"relay: --far-ends {tmp_path / 'none.json'}: no such file\n")


def test_serve_takes_a_good_far_ends_file(tmp_path: Path) -> None:
    path = tmp_path / "far.json"
    path.write_text('{"default": {"answer_after": 0.5}, "numbers": {"+15550009999": {"answer": "busy"}}}')
    with running("--far-ends", str(path), "--speed", "50") as (_, url, control):
        assert url.startswith("ws://") and control.startswith("http://")
