"""``relay tail`` against the real emulator over loopback sockets: output, filters, faults, endings."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import CREDS, emulator, interrupt, relay, spawn, wait_until

from relay_cli import protocol
from relay_cli.event import EVENT_CLASS_MAP, parse_event
from relay_cli.session import AuthError, Credentials, RelaySession, SessionConfig

SECRET = "PT-secret-token-value"


def json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_demo_prints_the_requested_number_of_valid_events() -> None:
    result = relay("tail", "--demo", "--rate", "200", "--count", "20", "--format", "json")
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    assert len(events) == 20
    for payload in events:
        parse_event(payload)
        assert isinstance(payload["timestamp"], float)
    assert "20 shown of 20 events" in result.stderr
    assert "connected (contexts: default)" in result.stderr


def test_demo_pretty_output_is_one_escaped_line_per_event() -> None:
    result = relay("tail", "--demo", "--rate", "200", "--count", "30", "--format", "pretty", "--color", "never")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 30
    assert all(line[2] == ":" and line[8] == "." for line in lines)
    assert "\x1b" not in result.stdout


def test_color_always_colours_event_types_and_call_ids() -> None:
    result = relay("tail", "--demo", "--rate", "200", "--count", "10", "-o", "pretty", "--color", "always")
    assert "\x1b[36m" in result.stdout and "\x1b[38;5;" in result.stdout


def test_frame_and_typed_formats() -> None:
    frames = json_lines(relay("tail", "--demo", "--rate", "200", "-n", "5", "-o", "frame").stdout)
    assert all(f["jsonrpc"] == "2.0" and f["method"] == "signalwire.event" and f["id"] for f in frames)
    typed = json_lines(relay("tail", "--demo", "--rate", "200", "-n", "5", "-o", "typed").stdout)
    assert next(t["class"] for t in typed) == "RelayEvent"
    assert all(t["class"] == EVENT_CLASS_MAP[t["event_type"]].__name__ for t in typed[1:])
    assert all(set(EVENT_CLASS_MAP[t["event_type"]].typed_fields) < set(t) for t in typed[1:])


def test_type_and_exclude_filters_apply_to_what_is_shown() -> None:
    shown = json_lines(
        relay("tail", "--demo", "--rate", "500", "-n", "15", "-t", "calling.call.*", "-x", "calling.call.state").stdout
    )
    assert len(shown) == 15
    assert all(e["event_type"].startswith("calling.call.") and e["event_type"] != "calling.call.state" for e in shown)


def test_where_filter_on_a_nested_path() -> None:
    shown = json_lines(relay("tail", "--demo", "--rate", "500", "-n", "5", "--where", "params.call_state=ended").stdout)
    assert [e["params"]["call_state"] for e in shown] == ["ended"] * 5


def test_call_id_prefix_follows_one_call() -> None:
    with emulator(rate=500, seed=3) as server:
        rec = relay("tail", "--url", server.url, *CREDS, "-c", "default", "-n", "400", "-o", "json")
    events = json_lines(rec.stdout)
    call_id = next(e["params"]["call_id"] for e in events if e["event_type"] == "calling.call.receive")
    with emulator(rate=500, seed=3) as server:
        result = relay(
            "tail",
            "--url",
            server.url,
            *CREDS,
            "-c",
            "default",
            "--call-id",
            call_id[:8],
            "--timeout",
            "2",
            "-o",
            "json",
        )
    mine = json_lines(result.stdout)
    assert mine and all(
        call_id in (e["params"].get("call_id"), e["params"].get("peer", {}).get("call_id")) for e in mine
    )


def test_record_writes_every_event_unfiltered_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    result = relay("tail", "--demo", "--rate", "500", "-n", "10", "-t", "messaging.*", "--record", str(path))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    recorded = json_lines(path.read_text())
    assert len(recorded) > 10
    assert sum(e["event_type"].startswith("messaging.") for e in recorded) == 10
    assert recorded[0]["event_type"] == "signalwire.authorization.state"
    assert recorded[0]["params"]["authorization_state"] == "[redacted]"
    parsed = relay("parse", str(path), "-o", "json")
    assert parsed.returncode == 0 and len(parsed.stdout.splitlines()) == len(recorded)


def test_record_to_an_unwritable_path_fails_before_connecting(tmp_path: Path) -> None:
    result = relay("tail", "--demo", "--record", str(tmp_path / "missing" / "rec.jsonl"))
    assert result.returncode == 1
    assert "cannot record to" in result.stderr and "No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_timeout_ends_a_quiet_session_cleanly() -> None:
    with emulator(mode="app") as server:
        result = relay("tail", "--url", server.url, *CREDS, "-c", "office", "--timeout", "0.5")
    assert result.returncode == 0
    assert "timed out after 0.5 s" in result.stderr
    assert "1 shown of 1 events" in result.stderr


def test_missing_context_is_warned_about() -> None:
    with emulator(mode="app") as server:
        result = relay("tail", "--url", server.url, *CREDS, "--timeout", "0.3")
    assert "no --context given: inbound calls and messages will not arrive" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "t"], "missing --project (or SIGNALWIRE_PROJECT_ID)"),
        (["--project", "p"], "missing --token (or SIGNALWIRE_API_TOKEN)"),
    ],
)
def test_missing_credentials_name_the_flag_and_the_variable(args: list[str], message: str) -> None:
    result = relay("tail", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_credentials_come_from_the_environment() -> None:
    with emulator(project="p-env", token="t-env", mode="app") as server:
        result = relay(
            "tail",
            "--url",
            server.url,
            "-c",
            "x",
            "--timeout",
            "0.3",
            env={"SIGNALWIRE_PROJECT_ID": "p-env", "SIGNALWIRE_API_TOKEN": "t-env"},
        )
    assert result.returncode == 0, result.stderr
    assert "connected" in result.stderr


def test_plain_ws_to_a_remote_host_is_refused() -> None:
    result = relay("tail", *CREDS, "--url", "ws://example.com:8080")
    assert result.returncode == 2
    assert "plain ws:// is only allowed to a loopback address" in result.stderr


def test_a_space_with_a_path_is_refused() -> None:
    result = relay("tail", *CREDS, "--space", "example.signalwire.com/evil")
    assert result.returncode == 2
    assert "must be a bare host name" in result.stderr


def test_rejected_credentials_stop_after_three_attempts_without_leaking_the_token() -> None:
    with emulator(project="p-123", token="right", mode="app") as server:
        result = relay("tail", "--url", server.url, *CREDS, "-c", "x", timeout=30)
        failures = server.emulator.stats.auth_failures
    assert result.returncode == 1
    assert "authentication failed 3 times, giving up: Authentication service failed" in result.stderr
    assert failures == 3
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_malformed_frames_are_reported_on_stderr_and_skipped() -> None:
    with emulator(mode="app") as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "x", "-o", "json")
        server.run(server.emulator.wait_for_connections(1))
        server.run(server.emulator.inject("this is not json \x1b[31m"))
        server.run(server.emulator.inject('{"jsonrpc":"2.0","method":"signalwire.event","id":"e1","params":[1]}'))
        server.run(server.emulator.inject('{"no": "rpc"}'))
        server.run(server.emulator.push({"event_type": "calling.call.play", "params": {"call_id": "c1"}}))
        wait_until(lambda: server.emulator.stats.events_acked >= 1, what="the ACK of the good event")
        out, err = interrupt(proc)
    assert proc.returncode == 130
    assert [e["event_type"] for e in json_lines(out)] == ["signalwire.authorization.state", "calling.call.play"]
    assert err.count("skipped a malformed frame") == 3
    assert "\x1b[31m" not in err and "\\x1b[31m" in err
    assert "3 malformed frames" in err


def test_sigterm_exits_143_with_a_summary() -> None:
    proc = spawn("tail", "--demo", "--rate", "50", "-o", "json")
    wait_until(lambda: proc.poll() is None, what="start")
    import time

    time.sleep(1.5)
    out, err = interrupt(proc, signal.SIGTERM)
    assert proc.returncode == 143
    assert "shown of" in err and "Traceback" not in err
    assert out.count("\n") >= 1


def test_abrupt_drop_resumes_the_session_and_gets_unacked_events_again() -> None:
    with emulator(rate=100, seed=1) as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "default", "-o", "json")
        server.run(server.emulator.wait_for_connections(1))
        wait_until(lambda: server.emulator.stats.events_acked > 20, what="events")
        server.run(server.emulator.drop())
        server.run(server.emulator.wait_for_connections(2, timeout=10))
        wait_until(lambda: server.emulator.stats.events_acked > 60, what="events after resume")
        out, err = interrupt(proc)
        resumed = server.emulator.stats.sessions_resumed
    assert resumed == 1
    assert "session resumed" in err
    assert "1 reconnects" in err
    lines = out.splitlines()
    assert len(lines) > 60
    assert len(set(lines)) == len(lines), "a redelivered event was shown twice"


def test_disconnect_with_restart_starts_a_fresh_session() -> None:
    with emulator(rate=100, seed=2) as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "default", "-o", "json")
        server.run(server.emulator.wait_for_connections(1))
        server.run(server.emulator.send_disconnect(restart=True))
        server.run(server.emulator.wait_for_connections(2, timeout=10))
        _out, err = interrupt(proc)
        created, resumed = server.emulator.stats.sessions_created, server.emulator.stats.sessions_resumed
    assert (created, resumed) == (2, 0)
    assert "the server asked to disconnect and restart" in err
    assert "fresh session" in err and "events in the gap may be missing" in err


def test_disconnect_without_restart_resumes() -> None:
    with emulator(rate=100, seed=2) as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "default", "-o", "json")
        server.run(server.emulator.wait_for_connections(1))
        server.run(server.emulator.send_disconnect(restart=False))
        server.run(server.emulator.wait_for_connections(2, timeout=10))
        _, err = interrupt(proc)
        resumed = server.emulator.stats.sessions_resumed
    assert resumed == 1 and "session resumed" in err


def test_half_open_socket_is_detected_by_an_unanswered_ping() -> None:
    async def scenario() -> tuple[list[str], int]:
        from relay_cli.emulator import Emulator

        statuses: list[str] = []
        async with Emulator(rate=50, ping_interval=0) as emu:
            config = SessionConfig(
                url=emu.url,
                credentials=Credentials("p", "t"),
                contexts=["default"],
                ping_interval=0.3,
                ping_timeout=0.5,
                idle_timeout=30,
                backoff_initial=0.1,
            )
            session = RelaySession(config, status=statuses.append, problem=statuses.append)
            seen = 0
            async for _ in session.events():
                seen += 1
                if seen == 5:
                    emu.freeze()
                    asyncio.get_running_loop().call_later(1.5, emu.thaw)
                if session.stats.reconnects >= 1 and seen > 10:
                    break
            await session.close()
        return statuses, session.stats.reconnects

    statuses, reconnects = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert reconnects == 1
    assert any("no reply to ping in 0.5 s (half-open socket)" in s for s in statuses)


def test_silence_longer_than_the_idle_limit_reconnects() -> None:
    async def scenario() -> list[str]:
        from relay_cli.emulator import Emulator

        statuses: list[str] = []
        async with Emulator(mode="app", ping_interval=0) as emu:
            config = SessionConfig(
                url=emu.url, credentials=Credentials("p", "t"), ping_interval=60, idle_timeout=0.5, backoff_initial=0.1
            )
            session = RelaySession(config, status=statuses.append, problem=statuses.append)

            async def consume() -> None:
                async for _ in session.events():
                    pass

            task = asyncio.create_task(consume())
            await emu.wait_for_connections(2, timeout=5)
            await session.close()
            task.cancel()
        return statuses

    statuses = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert any("no traffic for 0.5 s (half-open socket)" in s for s in statuses)


def test_library_session_raises_auth_error_with_the_server_reason() -> None:
    async def scenario() -> None:
        from relay_cli.emulator import Emulator

        async with Emulator(project="a", token="b", mode="app") as emu:
            config = SessionConfig(url=emu.url, credentials=Credentials("a", "wrong"), auth_attempts=1)
            async for _ in RelaySession(config).events():
                pass

    with pytest.raises(AuthError, match="authentication failed: Authentication service failed"):
        asyncio.run(scenario())


@pytest.mark.parametrize("key", sorted(protocol.SECRET_KEYS))
def test_the_byte_prefilter_lets_every_secret_key_through_to_redaction(key: str) -> None:
    payload = {"event_type": "calling.call.play", "params": {"device": {key: "S3CRET"}}}
    clean, raw = protocol.without_secrets(payload, orjson.dumps(payload))
    assert raw is None and clean["params"]["device"][key] == protocol.REDACTED


def test_secrets_never_reach_stdout_stderr_or_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    with emulator(rate=200) as server:
        result = relay(
            "tail", "--url", server.url, *CREDS, "-c", "default", "-n", "30", "-o", "frame", "--record", str(path)
        )
        logs = "\n".join(server.logs)
    everything = result.stdout + result.stderr + path.read_text()
    assert result.returncode == 0, result.stderr
    assert SECRET not in everything and SECRET not in logs
    assert '"authorization_state":"[redacted]"' in everything


def test_every_event_type_of_the_demo_parses_to_its_class() -> None:
    with emulator(rate=0, seed=5) as server:
        result = relay("tail", "--url", server.url, *CREDS, "-c", "default", "-n", "3000", "-o", "typed")
    typed = json_lines(result.stdout)
    classes = {t["event_type"]: t["class"] for t in typed}
    assert {k: classes[k] for k in EVENT_CLASS_MAP} == {k: v.__name__ for k, v in EVENT_CLASS_MAP.items()}


def test_help_lists_exit_codes_and_environment_variables() -> None:
    result = relay("tail", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    for text in (
        "SIGNALWIRE_PROJECT_ID",
        "SIGNALWIRE_API_TOKEN",
        "SIGNALWIRE_SPACE",
        "SIGNALWIRE_JWT_TOKEN",
        "130 interrupted",
    ):
        assert text in result.stdout
    assert os.environ.get("SIGNALWIRE_API_TOKEN", "\0") not in result.stdout


def test_an_event_delivered_twice_is_acked_twice_but_shown_once() -> None:
    frame = '{"jsonrpc":"2.0","id":"evt-1","method":"signalwire.event","params":{"event_type":"calling.call.play"}}'
    with emulator(mode="app") as server:
        proc = spawn("tail", "--url", server.url, *CREDS, "-c", "x", "-o", "json")
        server.run(server.emulator.wait_for_connections(1))
        server.run(server.emulator.inject(frame))
        server.run(server.emulator.inject(frame))
        server.run(server.emulator.push({"event_type": "calling.call.hold", "params": {}}))
        wait_until(lambda: server.emulator.stats.events_acked >= 1, what="the ACK of the last event")
        out, err = interrupt(proc)
    assert [e["event_type"] for e in json_lines(out)] == [
        "signalwire.authorization.state",
        "calling.call.play",
        "calling.call.hold",
    ]
    assert "1 redelivered duplicates hidden" in err


def test_the_prebuilt_ack_is_the_protocol_ack() -> None:
    from relay_cli import protocol

    for frame_id in ("evt-1", 7, 'ü"x'):
        assert protocol.ACK_HEAD + orjson.dumps(frame_id) + protocol.ACK_TAIL == orjson.dumps(protocol.ack(frame_id))


def test_a_refused_resume_falls_back_to_a_fresh_session() -> None:
    async def scenario() -> list[str]:
        from relay_cli.emulator import Emulator

        statuses: list[str] = []
        async with Emulator(rate=100, ping_interval=0) as emu:
            config = SessionConfig(
                url=emu.url, credentials=Credentials("p", "t"), contexts=["default"], backoff_initial=0.1
            )
            session = RelaySession(config, status=statuses.append, problem=statuses.append)
            seen = 0
            async for _ in session.events():
                seen += 1
                if seen == 5:
                    emu._sessions.clear()  # the server forgot the session, as after a restart of its own
                    await emu.drop()
                if emu.stats.sessions_created == 2:
                    break
            await session.close()
        return statuses

    statuses = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert any("the server refused to resume the session" in s for s in statuses)
    assert any("fresh session" in s and "events in the gap may be missing" in s for s in statuses)
