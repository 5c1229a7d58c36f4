"""The method table: what the emulator does with each request a connected client sends, by method name.

A handler gets the core and the request and returns the reply frame (or None for no reply); methods not in the
table get ``-32601``. The call-control verbs (``calling.answer``, ``calling.play``, ...) are added here as more
entries: a handler may answer at once and put the events that follow on the session's outbox
(:meth:`EmulatorCore.schedule`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from relay_cli.protocol import CALL_PASS, INVALID_PARAMS, INVALID_REQUEST, RECEIVE, UNRECEIVE, Kind, error, result

if TYPE_CHECKING:
    from relay_cli.emulator.sessions import EmulatorCore, Peer, Session

__all__ = [
    "MAX_CONTEXTS",
    "MAX_CONTEXT_LENGTH",
    "METHODS",
    "RECEIVE",
    "UNRECEIVE",
    "Handler",
    "Request",
    "parse_contexts",
]

RECEIVE_MESSAGE = "Receiving all inbound related to the requested relay contexts and available scopes"
UNRECEIVE_MESSAGE = "No longer receiving inbound related to the requested relay contexts"
MAX_CONTEXTS = 100
"""Contexts one session may receive on."""
MAX_CONTEXT_LENGTH = 256
"""Characters in one context name."""
TOO_MANY_CONTEXTS = f"at most {MAX_CONTEXTS} contexts per session"


@dataclass(slots=True)
class Request:
    """A request from a connected client, its id and params already checked (params is an object)."""

    peer: Peer
    session: Session
    id: Any
    method: str
    params: dict[str, Any]


Handler = Callable[["EmulatorCore", Request], "dict[str, Any] | None"]


def ping(core: EmulatorCore, req: Request) -> dict[str, Any]:
    """Echo the client's timestamp (or give the server's when it sent none usable)."""
    stamp = req.params.get("timestamp")
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        stamp = core.wall()
    return result(req.id, {"timestamp": stamp})


def contexts(core: EmulatorCore, req: Request) -> dict[str, Any]:
    """``signalwire.receive`` and ``signalwire.unreceive``: change the contexts the session receives on."""
    try:
        names = parse_contexts(req.params.get("contexts"))
    except ValueError as exc:
        return error(req.id, INVALID_PARAMS, str(exc))
    add = req.method == RECEIVE
    problem = core.receive_contexts(req.peer, req.session, req.method, names, add)
    if problem:
        return error(req.id, INVALID_PARAMS, problem)
    return result(req.id, {"code": "200", "message": RECEIVE_MESSAGE if add else UNRECEIVE_MESSAGE})


def pass_call(core: EmulatorCore, req: Request) -> dict[str, Any]:
    """``calling.pass``: give an offered inbound call back to routing."""
    for name in ("call_id", "node_id"):
        value = req.params.get(name)
        if not isinstance(value, str) or not value:
            return error(req.id, INVALID_PARAMS, f"Invalid params: {name} must be a non-empty string")
    return core.pass_call(req.session, req.id, req.params["call_id"])


def already_connected(core: EmulatorCore, req: Request) -> dict[str, Any]:
    return error(req.id, INVALID_REQUEST, "already connected")


def parse_contexts(value: Any) -> list[str]:
    """The contexts as a list without duplicates; ValueError saying what is wrong with them otherwise."""
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise ValueError("contexts must be a list of non-empty strings")
    if len(value) > MAX_CONTEXTS:
        raise ValueError(TOO_MANY_CONTEXTS)
    if any(len(c) > MAX_CONTEXT_LENGTH for c in value):
        raise ValueError(f"a context is at most {MAX_CONTEXT_LENGTH} characters")
    return list(dict.fromkeys(value))


METHODS: Mapping[str, Handler] = MappingProxyType(
    {
        Kind.PING.value: ping,
        RECEIVE: contexts,
        UNRECEIVE: contexts,
        CALL_PASS: pass_call,
        Kind.CONNECT.value: already_connected,
    }
)
"""Every method a connected client may call; build a new mapping from it to add more."""
