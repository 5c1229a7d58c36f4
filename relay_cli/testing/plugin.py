"""The pytest plugin (registered through the ``pytest11`` entry point): the ``relay_server`` fixture and its marker.

Loaded by every pytest run where relay is installed, so it imports nothing heavy until a test asks for the
fixture. A failed test that used the fixture gets a ``relay_server`` section in its report: the seed to rerun it
with, the journal's last frames, the emulator's log and the output of apps it ran.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from relay_cli.testing.server import RelayServer, Tls

__all__ = ["relay_server"]

MARKER = "relay"
_OPTIONS = ("speed", "seed", "mode", "far_ends", "environ")
_MODES = ("app", "scripted", "demo")
_SERVER = pytest.StashKey["RelayServer"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(speed=20, seed=None, mode='app', far_ends=None, environ=True): how relay_server runs for this test"
        " (speed: simulated seconds per real second; seed: default from the test id; far_ends: rules as"
        " relay serve --far-ends takes; environ: set SIGNALWIRE_* in os.environ for the test)",
    )


@pytest.fixture(scope="session")
def _relay_tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """One local CA for the test session (in pytest's temporary directory), and a server context it signed."""
    from relay_cli.certs import LocalCA
    from relay_cli.testing.server import Tls

    ca = LocalCA(tmp_path_factory.mktemp("relay-ca") / "ca")
    ca.ensure()
    return Tls(str(ca.cert_path), ca.server_context(["127.0.0.1", "localhost"]))


@pytest.fixture
def relay_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _relay_tls: Tls
) -> Iterator[RelayServer]:
    """A local RELAY (``relay serve``'s default traffic) for this test, on free ports, over wss:// with a CA of
    its own; stopped after the test.

    Point the app at it with ``host=relay_server.host`` or, as a subprocess, with ``relay_server.env``; for the
    test's duration those ``SIGNALWIRE_*`` variables are set in ``os.environ`` too (so an SDK client made with no
    arguments in the test's process connects here, and trusts its CA), unless ``@pytest.mark.relay(environ=False)``.
    Start callers with ``relay_server.call(...)``, messages with ``relay_server.message(...)``, and wait on
    ``relay_server.wait_for(method=... | event_type=...)``.
    """
    __tracebackhide__ = True
    from relay_cli.testing.server import DEFAULT_SPEED, RelayServer

    options = _options(request)
    speed = options.get("speed", DEFAULT_SPEED)
    seed = options.get("seed")
    server = RelayServer(
        _relay_tls,
        speed=speed,
        seed=seed if seed is not None else seed_for(request.node.nodeid),
        mode=options.get("mode", "app"),
    )
    server.start()
    request.node.stash[_SERVER] = server
    try:
        if options.get("far_ends") is not None:
            server.far_ends(options["far_ends"])
        if options.get("environ", True):
            for name, value in server.env.items():
                monkeypatch.setenv(name, value)
            monkeypatch.delenv("SIGNALWIRE_JWT_TOKEN", raising=False)  # the SDK would prefer it to project/token
        yield server
    finally:
        server.stop()


def seed_for(nodeid: str) -> int:
    """A test's own seed: the same on every run of that test, different from its neighbours'."""
    return int.from_bytes(hashlib.sha256(nodeid.encode()).digest()[:4], "big")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    server = item.stash.get(_SERVER, None)
    if server is not None and report.when == "call" and report.failed:
        from relay_cli.testing.waiting import RelayTimeout

        timed_out = call.excinfo is not None and call.excinfo.errisinstance(RelayTimeout)
        try:
            report.sections.append(("relay_server", server.describe(frames=not timed_out)))
        except Exception as exc:  # a report that cannot be made must not hide the test's own failure
            report.sections.append(("relay_server", f"(no report: {exc})"))
    return report


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The marker's keywords, under an indirect parametrization's dict; checked, so a typo fails clearly."""
    __tracebackhide__ = True
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker(MARKER)
    sources: list[tuple[str, Any]] = []
    if marker is not None:
        if marker.args:
            pytest.fail(f"@pytest.mark.{MARKER}: takes keywords only ({', '.join(_OPTIONS)})", pytrace=False)
        sources.append((f"@pytest.mark.{MARKER}", marker.kwargs))
    param = getattr(request, "param", None)
    if param is not None:
        sources.append(("relay_server's parameter", param))
    for where, given in sources:
        if not isinstance(given, Mapping):
            pytest.fail(f"{where}: must be a dict of {', '.join(_OPTIONS)}", pytrace=False)
        for key, value in given.items():
            if key not in _OPTIONS:
                pytest.fail(f"{where}: unknown option {key!r} (options: {', '.join(_OPTIONS)})", pytrace=False)
            problem = _check(key, value)
            if problem:
                pytest.fail(f"{where}: {key} {problem}", pytrace=False)
            options[key] = value
    return options


def _check(key: str, value: Any) -> str:
    if key == "speed":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        return "" if ok else "must be a positive number"
    if key == "seed":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        return "" if ok else "must be an integer"
    if key == "mode":
        return "" if value in _MODES else f"must be one of {', '.join(_MODES)}"
    if key == "far_ends":
        return "" if value is None or isinstance(value, Mapping) else "must be a dict of rules"
    return "" if isinstance(value, bool) else "must be true or false"
