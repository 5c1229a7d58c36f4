"""``relay serve`` as a user runs it: a subprocess on a free port, tailed by ``relay tail``."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from harness import CREDS, relay, spawn
from websockets.asyncio.client import ClientConnection, connect

from relay_cli.protocol import AUTH_FAILED, CALL_PASS, INVALID_PARAMS, INVALID_REQUEST, ack, connect_params, request


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """Start ``relay serve --port 0``, yield its URL from the status line, stop it with SIGINT."""
    proc = spawn("serve", "--port", "0", *args)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"emulator listening on (wss?://\S+)", line)
    try:
        assert match, line
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 130, err
        assert "Traceback" not in err


def test_serve_feeds_demo_traffic_to_tail() -> None:
    with serving("--rate", "500", "--seed", "3") as url:
        result = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "50", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 50


def test_serve_accepts_only_the_given_credentials() -> None:
    with serving("--project", "p-123", "--token", "other", "--rate", "100") as url:
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


def test_serve_wss_with_a_certificate_trusted_by_ca_file(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with serving("--certfile", str(cert), "--keyfile", str(key), "--rate", "500") as url:
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
    with serving("--rate", "1") as url:
        port = url.rsplit(":", 1)[1]
        result = relay("serve", "--port", port)
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
    with serving("--rate", "500", "--seed", "3") as url:
        asyncio.run(_hostile_client(url))
        result = relay("tail", "--url", url, *CREDS, "-c", "default", "-n", "20", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 20
