"""One redaction path for every stderr line: secrets by value, secret JSON keys, URL credentials; and -q."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from harness import CREDS, emulator, interrupt, relay, spawn, wait_until
from websockets.asyncio.server import ServerConnection, serve

from relay_cli import protocol
from relay_cli.protocol import REDACTED, Secrets
from relay_cli.terminal import Terminal

SECRET = "PT-secret-token-value"
STATE = "c3RhdGUtYmxvYi1vZi10aGUtc2Vzc2lvbg=="


def terminal(**options: Any) -> tuple[Terminal, io.StringIO]:
    err = io.StringIO()
    return Terminal(stdout=io.BytesIO(), stderr=err, stdout_tty=False, stderr_tty=False, **options), err


def test_a_secret_is_redacted_by_value_wherever_it_occurs() -> None:
    secrets = Secrets(SECRET, None)
    assert secrets.scrub(f"server said: bad token {SECRET}!") == f"server said: bad token {REDACTED}!"


def test_a_value_too_short_to_be_a_secret_does_not_mangle_text() -> None:
    secrets = Secrets("t", "demo")
    assert secrets.scrub("Authentication service failed") == "Authentication service failed"
    assert protocol.MIN_SECRET_LENGTH == 8


def test_learned_authorization_states_are_redacted_and_bounded() -> None:
    secrets = Secrets(SECRET)
    secrets.add(STATE)
    assert secrets.scrub(f"refused ({STATE})") == f"refused ({REDACTED})"
    for i in range(100):
        secrets.add(f"state-number-{i:04d}")
    assert len(secrets.values) == 1 + 8 and SECRET in secrets.values


def test_secret_keys_in_a_json_excerpt_are_redacted_even_when_cut_off() -> None:
    text = '{"authentication":{"project":"p","token":"abc"},"jwt_token":"e\\"y","authorization_state":"ab'
    assert protocol.redact_text(text) == (
        '{"authentication":{"project":"p","token":"[redacted]"},"jwt_token":"[redacted]",'
        '"authorization_state":"[redacted]"'
    )


def test_an_excerpt_cut_inside_a_secret_hides_the_prefix_too() -> None:
    data = b'{"echo":"' + b"x" * 180 + SECRET.encode() + b'"}'
    shown = protocol.excerpt(data, 200, [SECRET])
    assert shown.endswith(f"{REDACTED} … ({len(data)} bytes)")
    assert "PT-secr" not in shown


def test_urls_are_shown_without_credentials_or_query_string() -> None:
    assert protocol.display_url("wss://user:pa%40ss@relay.example.com:443/api?token=abc#x") == (
        "wss://relay.example.com:443/api"
    )
    shown = protocol.redact_text("connecting to ws://u:p@127.0.0.1:9/?jwt=abc now")
    assert shown == "connecting to ws://127.0.0.1:9/ now"


def test_every_terminal_line_goes_through_the_redaction() -> None:
    term, err = terminal(secrets=Secrets(SECRET))
    term.secrets.add(STATE)
    term.status(f"closed by the server (code 4000: {SECRET})")
    term.warn(f'skipped a malformed frame: {{"authorization_state":"{STATE}"}}')
    term.problem("rec.jsonl:3", f"bad line with {SECRET}")
    out = err.getvalue()
    assert SECRET not in out and STATE not in out
    assert out.count(REDACTED) == 3


def test_quiet_leaves_out_status_lines_but_not_warnings_or_problems() -> None:
    term, err = terminal(quiet=True)
    term.status("connected")
    term.warn("connection lost")
    term.problem("f:1", "not JSON")
    assert err.getvalue() == "relay: connection lost\nf:1: not JSON\n"


@contextmanager
def closing_server(reason: str) -> Iterator[str]:
    """A RELAY server that accepts signalwire.connect, then closes with ``reason``; its ws:// URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    url: list[str] = []
    stop: asyncio.Future[None] | None = None

    async def handler(ws: ServerConnection) -> None:
        request = orjson.loads(await ws.recv())
        await ws.send(orjson.dumps(protocol.result(request["id"], {"protocol": "signalwire_x"})))
        await ws.close(4000, reason)

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url.append(f"ws://127.0.0.1:{port}")
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield url[0]
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)


def test_a_close_reason_echoing_the_token_is_redacted() -> None:
    with closing_server(f"bad token {SECRET}") as url:
        result = relay("tail", "--url", url, *CREDS, "-c", "x", "--timeout", "2")
    assert "closed by the server (code 4000: bad token [redacted])" in result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_frame_excerpt_hides_the_token_and_secret_keys() -> None:
    with emulator(mode="app") as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "x", "-o", "json")
        server.run(server.emulator.wait_for_connections(1))
        server.run(server.emulator.inject(orjson.dumps({"echo": SECRET, "token": "their-own-token"})))
        server.run(server.emulator.push({"event_type": "calling.call.play", "params": {"call_id": "c1"}}))
        wait_until(lambda: server.emulator.stats.events_acked >= 1, what="the ACK of the good event")
        _, err = interrupt(proc)
    assert proc.returncode == 130
    assert "skipped a malformed frame" in err and '"echo":"[redacted]","token":"[redacted]"' in err
    assert SECRET not in err and "their-own-token" not in err


def test_url_credentials_and_query_are_never_echoed() -> None:
    with emulator(mode="app") as server:
        url = server.url.replace("ws://", "ws://someone:hunter22@") + "/?signature=s3cr3t-query"
        result = relay("tail", "--url", url, *CREDS, "-c", "x", "--timeout", "1")
    assert "hunter22" not in result.stderr and "s3cr3t-query" not in result.stderr
    assert f"connecting to {server.url}/" in result.stderr


def test_a_short_token_does_not_mangle_the_servers_message() -> None:
    with emulator(project="p-123", token="right", mode="app") as server:
        result = relay("tail", "--url", server.url, "--project", "p-123", "--token", "t", "-c", "x", timeout=30)
    assert result.returncode == 1
    assert "Authentication service failed" in result.stderr and "Au[redacted]" not in result.stderr


def test_tail_quiet_prints_nothing_on_success_and_errors_still() -> None:
    ok = relay("tail", "--demo", "--rate", "200", "-n", "3", "-o", "json", "-q")
    assert ok.returncode == 0 and ok.stderr == "" and len(ok.stdout.splitlines()) == 3
    failed = relay("tail", "--demo", "-q", "--record", "/nonexistent/dir/rec.jsonl")
    assert failed.returncode == 1
    assert failed.stderr == "relay: cannot record to /nonexistent/dir/rec.jsonl: No such file or directory\n"


def test_tail_quiet_on_ctrl_c_prints_no_summary() -> None:
    proc = spawn("tail", "--demo", "--rate", "50", "-o", "json", "-q")
    assert proc.stdout is not None
    proc.stdout.readline()
    _, err = interrupt(proc)
    assert proc.returncode == 130 and err == ""


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_serve_quiet_prints_only_its_start_line_and_errors() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = spawn("serve", "--port", str(port), "--control-port", "0", "-q")
    try:
        wait_until(lambda: listening(port), what="the emulator to listen")
        _, err = interrupt(proc, signal.SIGINT)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert re.fullmatch(
        rf"relay: RELAY emulator on ws://127\.0\.0\.1:{port} \(control plane on http://127\.0\.0\.1:\d+\)\n", err
    ), err
    bad = relay("serve", "-q", "--certfile", "cert.pem")
    assert bad.returncode == 2 and bad.stderr == "relay: --certfile and --keyfile go together\n"


def test_may_hold_secret_sees_a_key_spelled_with_an_escape() -> None:
    assert protocol.may_hold_secret(b'{"\\u0074oken":"SECRETB"}')
    assert protocol.may_hold_secret(b'{"a":"\\"","tok\\u0065n":1}')
    assert not protocol.may_hold_secret(b'{"a":"\\"quoted\\" \\n"}')


def test_redact_text_redacts_the_value_of_a_secret_key_spelled_with_escapes() -> None:
    text = '{"a":"\\u0041","\\u0074oken":"SECRETB","x":"y","jwt\\u005ftoken" : "SECRETC'
    shown = protocol.redact_text(text)
    assert "SECRETB" not in shown and "SECRETC" not in shown
    assert shown == '{"a":"\\u0041","\\u0074oken":"[redacted]","x":"y","jwt\\u005ftoken" : "[redacted]"'
    assert protocol.redact_text('{"\\u0078":"kept","bad\\u00":"kept"}') == '{"\\u0078":"kept","bad\\u00":"kept"}'


def test_without_secrets_never_keeps_bytes_holding_a_key_given_twice() -> None:
    raw = b'{"event_type":"x","params":{"token":"SECRET3"},"params":{}}'
    value, kept = protocol.without_secrets(orjson.loads(raw), raw)
    assert kept is None and value == {"event_type": "x", "params": {}}
    plain = b'{"event_type":"x","params":{}}'
    assert protocol.without_secrets(orjson.loads(plain), plain)[1] is plain
