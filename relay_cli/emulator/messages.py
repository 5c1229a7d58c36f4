"""Messages: ``messaging.send`` and inbound messages from far ends, walked through their states.

Work in progress: filled in by the messaging change.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_cli.emulator.methods import Handler
    from relay_cli.emulator.sessions import EmulatorCore

__all__ = ["MESSAGE_METHODS", "Messaging"]


class Messaging:
    """The messages of one emulator, by message id."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core

    def start_inbound(
        self,
        *,
        context: str,
        from_number: str,
        to_number: str,
        body: str,
        media: list[str] | None = None,
        session_id: str | None = None,
    ) -> str:
        raise NotImplementedError

    def status(self, message_id: str) -> dict[str, Any] | None:
        raise NotImplementedError


MESSAGE_METHODS: Mapping[str, Handler] = MappingProxyType({})
