"""``relay serve --tls``: wss:// from relay's local CA, so SignalWire's SDK runs against it with no certificate
made by hand. The app is the official SDK, configured only by the two lines the server prints."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import relay_env
from signalwire.relay.client import RelayClient

from relay_cli.certs import LocalCA
from relay_cli.cli import _say_app_settings
from relay_cli.terminal import Terminal

START = re.compile(r"^relay: RELAY emulator on wss://(\S+):(\d+) \(control plane on http://\S+\)$")
WAIT = 15.0


class Serving:
    """A ``relay serve --tls`` subprocess whose stderr a thread collects, line by line."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in relay_env().items() if not k.startswith("SIGNALWIRE_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay_cli", "serve", "--tls", "--port", "0", "--control-port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.err: list[str] = []
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self.err.extend, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

    def settings(self) -> dict[str, str]:
        """The ``NAME=value`` lines printed to run an app with, once the last of them is out."""
        deadline = time.monotonic() + WAIT
        while not any(line.startswith("SIGNALWIRE_RELAY_CA_FILE=") for line in self.err):
            assert self.proc.poll() is None, "".join(self.err)
            assert time.monotonic() < deadline, "".join(self.err)
            time.sleep(0.02)
        pairs = (line.rstrip("\n").split("=", 1) for line in self.err if line.startswith("SIGNALWIRE_"))
        return dict(pairs)

    def stop(self) -> tuple[int, list[str]]:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=WAIT)
        self._reader.join(WAIT)
        assert "Traceback" not in "".join(self.err)
        return code, [line.rstrip("\n") for line in self.err]


@contextmanager
def serving(*args: str) -> Iterator[Serving]:
    server = Serving(*args)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=WAIT)


async def dial_and_hang_up() -> str:
    """The SDK's whole outbound flow, configured from the environment alone: connect over wss, dial a number (the
    default far end answers), hang up."""
    client = RelayClient(contexts=["office"])
    await client.connect()
    try:
        call = await client.dial([[{"type": "phone", "params": {"to_number": "+15550003333", "from_number": "+1555"}}]])
        await call.hangup()
        await call.wait_for_ended()
        return call.call_id
    finally:
        await client.disconnect()


def test_an_sdk_app_runs_on_the_two_printed_settings_and_the_ca_is_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca"
    with serving("--ca-dir", str(ca), "--speed", "50", "-q") as first:
        settings = first.settings()
        for name, value in {**settings, "SIGNALWIRE_PROJECT_ID": "p", "SIGNALWIRE_API_TOKEN": "PT-tls-secret"}.items():
            monkeypatch.setenv(name, value)
        assert asyncio.run(asyncio.wait_for(dial_and_hang_up(), WAIT))
        code, lines = first.stop()
    assert code == 130
    match = START.match(lines[0])
    assert match is not None, lines
    host, port = match.groups()
    cert = ca / "relay-ca.pem"
    assert lines[:5] == [  # -q: the start lines only
        lines[0],
        f"relay: made a local CA for relay: {cert} (trust it only for apps you run through relay)",
        "relay: run your app with:",
        f"SIGNALWIRE_SPACE={host}:{port}",
        f"SIGNALWIRE_RELAY_CA_FILE={cert}",
    ]
    assert stat.S_IMODE((ca / "relay-ca-key.pem").stat().st_mode) == 0o600
    made = cert.read_bytes()

    with serving("--ca-dir", str(ca), "--host", "0.0.0.0", "-q") as second:  # noqa: S104
        settings = second.settings()
        code, lines = second.stop()
    assert code == 130
    assert not any("made a local CA" in line for line in lines)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", settings["SIGNALWIRE_SPACE"])  # what this machine dials for 0.0.0.0
    assert cert.read_bytes() == made


def _relay_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay_cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=relay_env(),
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--tls", "--certfile", "cert.pem", "--keyfile", "key.pem"),
            "relay: --tls signs a certificate with relay's local CA: it goes with neither --certfile nor --keyfile",
        ),
        (("--ca-dir", "ca"), "relay: --ca-dir is where the local CA for --tls is kept: give --tls too"),
    ],
)
def test_tls_options_that_do_not_go_together_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = _relay_serve(*args)
    assert (result.returncode, result.stderr.splitlines()[-1], result.stdout) == (2, message, "")


def test_a_local_ca_key_others_can_read_is_refused_in_one_line(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    with serving("--ca-dir", str(ca), "-q") as made:
        made.settings()
        made.stop()
    key = ca / "relay-ca-key.pem"
    os.chmod(key, 0o644)
    result = _relay_serve("--tls", "--ca-dir", str(ca), "--port", "0", "--control-port", "0")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"relay: {key} can be read by others (mode 0644): it signs certificates apps trust; make it private"
        f" (chmod 600) or remove {ca} for a new CA"
    ]


@pytest.mark.parametrize(
    ("url", "space"),
    [
        ("wss://127.0.0.1:8765", "127.0.0.1:8765"),
        ("wss://0.0.0.0:8765", "127.0.0.1:8765"),  # every IPv4 interface: dialled as loopback
        ("wss://[::]:8765", "[::1]:8765"),  # every IPv6 interface listens on IPv6 only: ::1, not 127.0.0.1
        ("wss://[::1]:8765", "[::1]:8765"),
        ("wss://relay.local:8765", "relay.local:8765"),
    ],
)
def test_the_space_printed_is_one_this_machine_can_dial(url: str, space: str, tmp_path: Path) -> None:
    err = io.StringIO()
    term = Terminal(stdout=io.BytesIO(), stderr=err, stdout_tty=False, stderr_tty=False)
    _say_app_settings(term, LocalCA(tmp_path / "ca"), False, url)
    assert err.getvalue().splitlines()[1:] == [
        f"SIGNALWIRE_SPACE={space}",
        f"SIGNALWIRE_RELAY_CA_FILE={tmp_path / 'ca' / 'relay-ca.pem'}",
    ]


def test_a_host_that_cannot_be_in_a_certificate_is_one_line_and_no_ca_is_made_by_a_run_that_fails(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca"
    bad = _relay_serve("--tls", "--ca-dir", str(ca), "--far-ends", str(tmp_path / "missing.json"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert not ca.exists()  # the next run announces the CA it makes
    result = _relay_serve("--tls", "--ca-dir", str(ca), "--host", "ex\u00e4mple..", "--port", "0")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == "relay: cannot sign a certificate for 'exämple..': not a valid host name"
