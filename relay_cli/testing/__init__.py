"""Test a RELAY app with pytest, with no account: the ``relay_server`` fixture and what it hands a test.

Installing relay registers :mod:`relay_cli.testing.plugin` with pytest (the ``pytest11`` entry point), so a test
only names the fixture::

    def test_the_app_answers(relay_server):
        with relay_server.app(sys.executable, "app.py"):
            call = relay_server.call(to="+15550001000", press="1")
            assert call.wait().answered

The names below are importable for type hints (``relay_server: RelayServer``); they load on first use, so that
pytest's start-up in a project with relay installed does not pay for the emulator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_cli.testing.handles import CallHandle, CallResult, MessageHandle, MessageResult
    from relay_cli.testing.journal import Journal
    from relay_cli.testing.server import RelayServer
    from relay_cli.testing.waiting import RelayTimeout

__all__ = ["CallHandle", "CallResult", "Journal", "MessageHandle", "MessageResult", "RelayServer", "RelayTimeout"]


_HOMES = {
    "CallHandle": "handles",
    "CallResult": "handles",
    "MessageHandle": "handles",
    "MessageResult": "handles",
    "Journal": "journal",
    "RelayServer": "server",
    "RelayTimeout": "waiting",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"relay_cli.testing.{home}")
    return getattr(module, name)
