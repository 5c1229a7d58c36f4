"""``relay call`` and ``relay message``: placing inbound calls and messages on a running ``relay serve``.

Most tests run the commands against a real ``relay serve`` subprocess and a small WebSocket app that answers;
the exit codes of ``--wait`` and the wording of a refusal are also checked against a stand-in control plane on
a loopback port (real HTTP, answering as the contract says), which can play states a real run takes long to reach.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from harness import relay
from test_serve import running
from websockets.asyncio.client import connect

from relay_cli.protocol import ack, connect_params, request

NUMBER = "+15550002222"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- a stand-in control plane ------------------------------------------------------------------------------


class Plane:
    """Answers POST /relay/calls and /relay/messages, then plays ``states`` to GET, one per look."""

    def __init__(self, states: list[dict[str, Any]], refuse: str | None = None) -> None:
        self.states = states
        self.refuse = refuse
        self.bodies: list[Any] = []
        self.looks = 0


@contextmanager
def stand_in(plane: Plane) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            plane.bodies.append(json.loads(self.rfile.read(size)))
            if plane.refuse:
                self.answer(400, {"error": plane.refuse})
            elif self.path == "/relay/calls":
                self.answer(201, {"call_id": "8d19821f-aaaa", "sent_to": ["s-1"]})
            else:
                self.answer(201, {"message_id": "7a7a7a7a-bbbb"})

        def do_GET(self) -> None:
            state = plane.states[min(plane.looks, len(plane.states) - 1)]
            plane.looks += 1
            self.answer(200, state)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_call_sends_the_script_and_prints_the_call_id() -> None:
    plane = Plane([])
    with stand_in(plane) as url:
        result = relay(
            "call", "--to", NUMBER, "--from", "+15550001111", "--press", "12#", "--say", "sales",
            "--hangup-after", "3", "--machine", "--fax", "-c", "office", "--control", url,
        )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "8d19821f-aaaa\n", "")
    assert plane.bodies == [
        {
            "to_number": NUMBER,
            "context": "office",
            "from_number": "+15550001111",
            "press": "12#",
            "say": "sales",
            "hangup_after": 3.0,
            "machine": True,
            "fax": True,
        }
    ]


def test_call_wait_follows_the_states_and_exits_0_when_answered() -> None:
    states = [
        {"state": "ringing", "answered": False},
        {"state": "answered", "answered": True},
        {"state": "ended", "answered": True, "end_reason": "hangup"},
    ]
    with stand_in(Plane(states)) as url:
        result = relay("call", "--to", NUMBER, "--control", url, "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "8d19821f-aaaa\n"
    assert result.stderr.splitlines() == [
        "relay: call 8d19821f: ringing",
        "relay: call 8d19821f: answered",
        "relay: call 8d19821f: answered, ended (hangup)",
    ]


def test_call_wait_exits_1_when_the_call_ended_unanswered() -> None:
    states = [{"state": "ringing", "answered": False}, {"state": "ended", "answered": False, "end_reason": "noAnswer"}]
    with stand_in(Plane(states)) as url:
        result = relay("call", "--to", NUMBER, "--control", url, "--wait")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "relay: call 8d19821f: ended (noAnswer) unanswered"


def test_message_wait_exits_1_when_undelivered() -> None:
    states = [{"state": "queued"}, {"state": "undelivered", "reason": "carrier rejected"}]
    with stand_in(Plane(states)) as url:
        result = relay("message", "--to", NUMBER, "--from", "+1555", "--body", "hi", "--control", url, "--wait")
    assert (result.returncode, result.stdout) == (1, "7a7a7a7a-bbbb\n")
    assert result.stderr.splitlines()[-1] == "relay: message 7a7a7a7a: undelivered (carrier rejected)"


def test_message_wait_exits_0_when_received() -> None:
    plane = Plane([{"state": "received"}])
    with stand_in(plane) as url:
        result = relay("message", "--to", NUMBER, "--from", "+1555", "--body", "hi", "--control", url, "--wait")
    assert result.returncode == 0, result.stderr
    assert plane.bodies == [{"to_number": NUMBER, "from_number": "+1555", "body": "hi", "context": "default"}]


def test_a_refusal_of_the_control_plane_is_its_message_and_exit_1() -> None:
    with stand_in(Plane([], refuse="to_number: must be a non-empty string")) as url:
        result = relay("call", "--to", "", "--control", url)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "relay: relay serve refused the call: to_number: must be a non-empty string\n"


def test_no_server_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = relay("call", "--to", NUMBER, "--control", url)
    assert (result.returncode, result.stderr) == (
        1,
        f"relay: no relay serve control plane at {url}: connection refused\n",
    )
    result = relay("message", "--to", NUMBER, "--from", "+1", "--body", "x", env={"RELAY_CONTROL": url})
    assert (result.returncode, result.stderr) == (
        1,
        f"relay: no relay serve control plane at {url}: connection refused\n",
    )


def test_the_default_control_plane_is_port_9765() -> None:
    result = relay("call", "--help", env={"COLUMNS": "200"})
    assert "http://127.0.0.1:9765" in result.stdout


def test_bad_digits_and_urls_are_usage_errors_before_any_request() -> None:
    plane = Plane([])
    with stand_in(plane) as url:
        result = relay("call", "--to", NUMBER, "--press", "12x", "--control", url)
        assert (result.returncode, result.stderr) == (
            2,
            "relay: --press '12x': only digits 0-9, *, # and A-D can be pressed\n",
        )
        assert plane.bodies == []
    result = relay("call", "--to", NUMBER, "--control", "ftp://x")
    assert result.returncode == 2 and "--control ftp://x: must be an http:// URL" in result.stderr
    result = relay("call", "--to", NUMBER, env={"RELAY_CONTROL": "localhost:9765"})
    assert result.returncode == 2
    assert "RELAY_CONTROL='localhost:9765' (from the environment): must be an http:// URL" in result.stderr
    result = relay("message", "--to", NUMBER, "--body", "x")
    assert result.returncode == 2 and "--from" in result.stderr


# -- against a real relay serve ----------------------------------------------------------------------------


async def _answering_app(url: str, ready: threading.Event, stop: threading.Event) -> None:
    """An app on ``default``: answers every call offered, ACKs every event."""
    async with connect(url, ping_interval=None) as ws:
        params = connect_params(project="p", token="t", contexts=["default"])
        await ws.send(orjson.dumps(request("signalwire.connect", params, "c-1")).decode())
        while not stop.is_set():
            try:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 0.2))
            except TimeoutError:
                continue
            if frame.get("id") == "c-1":
                ready.set()
            if frame.get("method") == "signalwire.event":
                await ws.send(orjson.dumps(ack(frame["id"])).decode())
                payload = frame["params"]
                if payload.get("event_type") == "calling.call.receive":
                    call = payload["params"]
                    answer = request("calling.answer", {"node_id": call.get("node_id"), "call_id": call["call_id"]})
                    await ws.send(orjson.dumps(answer).decode())


@contextmanager
def app_on(url: str) -> Iterator[None]:
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=asyncio.run, args=(_answering_app(url, ready, stop),), daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the app did not connect"
        yield
    finally:
        stop.set()
        thread.join(10)


def test_call_against_relay_serve_answered_and_hung_up_exits_0() -> None:
    with running("--speed", "50", "-o", "none") as (_, url, control), app_on(url):
        result = relay("call", "--to", NUMBER, "--hangup-after", "2", "--control", control, "--wait", timeout=30)
    assert result.returncode == 0, result.stderr
    call_id = result.stdout.strip()
    assert len(call_id) >= 8
    assert result.stderr.splitlines()[-1].startswith(f"relay: call {call_id[:8]}: answered, ended")


def test_call_against_relay_serve_nobody_answers_exits_1() -> None:
    with running("--speed", "100", "-o", "none") as (_, _url, control):
        result = relay("call", "--to", NUMBER, "--control", control, "--wait", timeout=30)
    assert result.returncode == 1, result.stderr
    assert "no app receives on context 'default'" in result.stderr
    assert result.stderr.splitlines()[-1].endswith("unanswered")


def test_message_against_relay_serve_prints_its_id() -> None:
    with running("-o", "none") as (_, url, control), app_on(url):
        result = relay("message", "--to", NUMBER, "--from", "+15550001111", "--body", "hi", "--control", control)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) >= 8


def test_a_bad_call_is_refused_by_relay_serve_with_its_reason() -> None:
    with running("-o", "none") as (_, _url, control):
        result = relay("call", "--to", "", "--control", control)
    assert result.returncode == 1
    assert result.stderr.startswith("relay: relay serve refused the call: ") and "to_number" in result.stderr
