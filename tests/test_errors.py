"""One root for relay's errors: the library raises, each error knows its exit code, and the command line alone
turns one into a stderr line, adding the options that would fix it (the library never names a flag)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from harness import CREDS, relay

from relay_cli.errors import ExitCode, RelayError, Terminated, UsageError
from relay_cli.outbuf import OutputError
from relay_cli.pipeline import workers
from relay_cli.pipeline.filters import AmbiguousCallId, FilterError
from relay_cli.pipeline.reader import BadLine, InputError, Source, entries, where
from relay_cli.pipeline.recording import RecordingError
from relay_cli.pipeline.replay import load
from relay_cli.pipeline.stages import Pipeline
from relay_cli.pipeline.workers import WorkerDied
from relay_cli.run import Demo
from relay_cli.session import AuthError, EndpointError, SessionError, UntrustedCertificate, endpoint_url
from relay_cli.terminal import ExitCode as TerminalExitCode
from relay_cli.views.parse import Problem, parse_view
from relay_cli.views.printers import Style

PLAY = {"event_type": "calling.call.play", "params": {"call_id": "c1", "state": "playing"}}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SessionError, ExitCode.FAILURE),
        (AuthError, ExitCode.FAILURE),
        (UntrustedCertificate, ExitCode.FAILURE),
        (InputError, ExitCode.FAILURE),
        (RecordingError, ExitCode.FAILURE),
        (OutputError, ExitCode.FAILURE),
        (WorkerDied, ExitCode.FAILURE),
        (FilterError, ExitCode.USAGE),
        (AmbiguousCallId, ExitCode.USAGE),
        (EndpointError, ExitCode.USAGE),
        (UsageError, ExitCode.USAGE),
    ],
)
def test_every_library_error_is_a_relay_error_with_its_exit_code(error: type[RelayError], code: ExitCode) -> None:
    assert issubclass(error, RelayError) and error.exit_code == code


def test_errors_keep_the_bases_callers_caught_before() -> None:
    assert issubclass(FilterError, ValueError) and issubclass(OutputError, OSError)
    assert str(OutputError(28, "No space left on device")) == "cannot write to stdout: No space left on device"
    assert TerminalExitCode is ExitCode
    # A signal must not be stopped by an ``except Exception`` on its way to the edge.
    assert not issubclass(Terminated, Exception) and Terminated.exit_code == ExitCode.TERMINATED


@pytest.mark.parametrize(
    ("url", "host", "message"),
    [
        ("http://x", None, "url 'http://x' must look like wss://HOST[:PORT] or ws://127.0.0.1:PORT"),
        ("ws://example.com", None, "url 'ws://example.com': plain ws:// is only allowed to a loopback address"),
        (None, "a b", "host 'a b' must be a bare host name such as example.signalwire.com"),
    ],
)
def test_endpoint_errors_name_the_functions_arguments_not_the_flags(
    url: str | None, host: str | None, message: str
) -> None:
    with pytest.raises(EndpointError) as caught:
        endpoint_url(url=url, host=host)
    assert str(caught.value).startswith(message) and "--" not in str(caught.value)


def only_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_the_command_line_names_the_flag_or_the_variable_a_bad_space_came_from() -> None:
    flag = relay("tail", *CREDS, "--space", "wss://x.signalwire.com")
    assert flag.returncode == 2
    assert only_line(flag.stderr) == (
        "relay: --space 'wss://x.signalwire.com' must be a bare host name such as example.signalwire.com"
    )
    env = relay("tail", *CREDS, env={"SIGNALWIRE_SPACE": " x/y "})
    assert env.returncode == 2
    assert only_line(env.stderr) == (
        "relay: SIGNALWIRE_SPACE=' x/y ' (from the environment):"
        " must be a bare host name such as example.signalwire.com"
    )
    url = relay("tail", *CREDS, "--url", "ws://example.com:1")
    assert url.returncode == 2
    assert only_line(url.stderr) == (
        "relay: --url 'ws://example.com:1': plain ws:// is only allowed to a loopback address; use wss://"
    )


def test_a_usage_error_from_the_handler_is_one_line_and_exit_2() -> None:
    result = relay("replay", "-", "-")
    assert (result.returncode, result.stderr) == (2, "relay: stdin (-) can be read only once\n")


def test_a_missing_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = relay("calls", str(tmp_path / "none.jsonl"))
    assert (result.returncode, result.stderr) == (1, f"relay: {tmp_path / 'none.jsonl'}: no such file\n")


def test_serve_replay_suggests_its_own_command_line_for_a_compressed_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(40))
    result = relay("serve", "--replay", str(path))
    assert result.returncode == 1
    assert only_line(result.stderr) == f"relay: {path}: looks like gzip: try zcat {path} | relay serve --replay -"


def test_serve_replay_of_a_recording_without_events_is_one_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "frames.jsonl"
    path.write_bytes(b'{"jsonrpc": "2.0", "id": "1", "result": {}}\n')
    result = relay("serve", "--replay", str(path))
    assert (result.returncode, result.stderr) == (1, f"relay: {path}: no events to replay\n")


def test_serve_replay_reads_a_recording_as_replay_does(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(orjson.dumps(PLAY) + b'\n{"event_type": 7}\n[1]\n' + orjson.dumps(PLAY) + b"\n{oops")
    problems: list[tuple[str, str]] = []
    payloads = load(str(path), lambda at, message: problems.append((at, message)))
    assert payloads == [PLAY, PLAY]
    assert [at for at, _ in problems] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert problems[0][1] == "event_type must be a string, not a number"
    assert problems[2][1].endswith("(a truncated last line, skipped)")


def test_a_nested_payload_too_deep_to_send_is_a_bad_line_of_serve_replay(tmp_path: Path) -> None:
    deep = b'{"event_type": "x", "params": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}\n"
    path = tmp_path / "rec.jsonl"
    path.write_bytes(deep + orjson.dumps(PLAY) + b"\n")
    problems: list[tuple[str, str]] = []
    assert load(str(path), lambda at, message: problems.append((at, message))) == [PLAY]
    assert problems == [(f"{path}:1", "nested too deeply")]


def test_an_unused_demo_does_not_read_the_ca_file_variable() -> None:
    result = relay("tail", "--demo", "-n", "1", "-o", "json", "-q", env={"SIGNALWIRE_RELAY_CA_FILE": "/no/such.pem"})
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["event_type"]


def test_the_demo_session_keeps_its_calls_on_the_default_context() -> None:
    config = Demo().config([])
    assert (list(config.contexts), config.pass_calls, config.credentials.project) == (["default"], False, "demo")
    assert list(Demo().config(["office"]).contexts) == ["office"]


def test_a_plain_tail_does_not_import_the_emulator() -> None:
    command = [sys.executable, "-X", "importtime", "-m", "relay_cli", "tail", *CREDS, "--url", "ws://127.0.0.1:9"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    result = subprocess.run(
        [*command, "--timeout", "0.3", "-o", "none"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert result.returncode == 1
    assert "relay: timed out after 0.3 s without a session" in result.stderr
    assert "relay_cli.session" in result.stderr and "relay_cli.emulator" not in result.stderr


def test_the_parse_view_turns_entries_into_bytes_and_problems_without_any_io() -> None:
    source = Source("x.jsonl", lines=orjson.dumps(PLAY) + b'\n{"jsonrpc": "2.0", "id": "1", "result": {}}\n{oops\n')
    shown = list(
        parse_view(
            entries(source),
            lambda line: where(source, line),
            pretty=False,
            style=Style(False),
            strict=True,
            terminal=False,
        )
    )
    assert isinstance(shown[0], bytes) and orjson.loads(shown[0])["event_type"] == "calling.call.play"
    assert isinstance(shown[1], Problem) and shown[1].where == "x.jsonl:2" and not shown[1].failed
    assert isinstance(shown[2], Problem) and shown[2].where == "x.jsonl:3" and shown[2].failed


def test_a_bad_line_of_the_reader_is_a_failed_problem_of_the_view() -> None:
    shown = list(
        parse_view(
            [(4, None, BadLine("invalid JSON"))],
            lambda line: f"f:{line}",
            pretty=True,
            style=Style(False),
            strict=False,
            terminal=False,
        )
    )
    assert shown == [Problem("f:4", "invalid JSON")]


@pytest.mark.parametrize(
    ("options", "splittable"),
    [
        ({"stateless": True}, True),
        ({}, False),
        ({"stateless": True, "count": 5}, False),
        ({"stateless": True, "observe": print}, False),
    ],
)
def test_only_a_pipeline_that_keeps_nothing_between_events_may_be_split(
    options: dict[str, object], splittable: bool
) -> None:
    assert Pipeline(out=io.BytesIO(), printer=None, **options).splittable is splittable  # type: ignore[arg-type]


@pytest.mark.skipif(not workers.available(), reason="needs fork")
def test_the_worker_machinery_runs_any_function_on_the_spans_and_hands_back_results_in_order(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(1000)))
    data = path.read_bytes()
    cuts = [(start, min(start + 400, len(data))) for start in range(0, len(data), 400)]
    results: list[int] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        workers.run_spans(fd, cuts, lambda span: len(span), results.append, jobs=3, name=str(path))
    finally:
        os.close(fd)
    assert results == [end - start for start, end in cuts]


def test_every_hint_of_the_command_line_names_an_error_class_that_exists() -> None:
    import importlib

    from relay_cli.cli import _HINTS

    for name in _HINTS:
        module, _, cls = name.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), cls), RelayError), name


def test_the_command_line_adds_the_options_that_would_fix_an_error() -> None:
    from relay_cli.cli import _message

    assert _message(WorkerDied("x.jsonl: a worker process died"), "replay") == (
        "x.jsonl: a worker process died; --jobs 1 reads in this process"
    )
    assert _message(AuthError("authentication failed: no"), "tail").startswith(
        "authentication failed: no; check --project/SIGNALWIRE_PROJECT_ID"
    )
    assert _message(UntrustedCertificate("the TLS certificate of wss://x is not trusted (self-signed)"), "tail") == (
        "the TLS certificate of wss://x is not trusted (self-signed); pass --ca-file or set SIGNALWIRE_RELAY_CA_FILE"
    )
