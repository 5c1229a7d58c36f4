"""Calls the connected app controls (default traffic): their state, their running actions, the verbs' table.

Work in progress: filled in by the call-control change.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from relay_cli.emulator.farends import FarEnd

if TYPE_CHECKING:
    from relay_cli.emulator.methods import Handler
    from relay_cli.emulator.sessions import EmulatorCore

__all__ = ["CALL_METHODS", "CallControl"]


class CallControl:
    """The calls of one emulator, by call id."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core

    def start_inbound(
        self,
        *,
        context: str,
        from_number: str,
        to_number: str,
        caller: FarEnd,
        call_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        raise NotImplementedError

    def status(self, call_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def recording(self, recording_id: str) -> float | None:
        raise NotImplementedError


CALL_METHODS: Mapping[str, Handler] = MappingProxyType({})
