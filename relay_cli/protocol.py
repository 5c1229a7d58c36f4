"""The RELAY JSON-RPC protocol without I/O: building frames, telling them apart, hiding secrets.

Both ends of the wire use this module, the client session and the emulator, so the two can only
disagree about the protocol in one place. Nothing here touches a socket or the clock of the event loop.
"""

from __future__ import annotations

import enum
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from relay_cli import __version__

__all__ = [
    "AGENT",
    "AUTH_FAILED",
    "BAD_AUTH_STATE",
    "INVALID_PARAMS",
    "METHOD_NOT_FOUND",
    "REDACTED",
    "SECRET_KEYS",
    "VERSION",
    "FrameError",
    "Kind",
    "ack",
    "classify",
    "connect_params",
    "describe",
    "error",
    "event_frame",
    "is_success",
    "make_protocol",
    "may_hold_secret",
    "new_id",
    "redact",
    "request",
    "result",
    "without_secrets",
]

JSONRPC = "2.0"
VERSION: dict[str, int] = {"major": 2, "minor": 0, "revision": 0}
AGENT = f"relay-cli/{__version__}"

AUTH_FAILED = -32002
BAD_AUTH_STATE = -32003
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601

SECRET_KEYS = frozenset({"token", "jwt_token", "authorization_state", "authentication"})
REDACTED = "[redacted]"


class FrameError(ValueError):
    """A message that is not a JSON-RPC 2.0 object."""


class Kind(enum.Enum):
    """What a JSON-RPC frame is, from the point of view of either end."""

    EVENT = "signalwire.event"
    PING = "signalwire.ping"
    DISCONNECT = "signalwire.disconnect"
    CONNECT = "signalwire.connect"
    REQUEST = "request"
    RESULT = "result"
    ERROR = "error"


_METHOD_KINDS = {k.value: k for k in (Kind.EVENT, Kind.PING, Kind.DISCONNECT, Kind.CONNECT)}


def classify(frame: Any) -> Kind:
    """Say what a decoded frame is; raise :class:`FrameError` when it is not JSON-RPC at all."""
    if not isinstance(frame, dict):
        raise FrameError("not a JSON object")
    method = frame.get("method")
    if method is not None:
        if not isinstance(method, str):
            raise FrameError("method is not a string")
        return _METHOD_KINDS.get(method, Kind.REQUEST)
    if "error" in frame:
        return Kind.ERROR
    if "result" in frame:
        return Kind.RESULT
    raise FrameError("neither a request nor a response (no method, result or error)")


def new_id() -> str:
    """A request id, a UUID string as every SDK sends."""
    return str(uuid.uuid4())


def request(method: str, params: Mapping[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": id or new_id(), "method": method, "params": dict(params)}


def result(id: Any, value: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": id, "result": dict(value or {})}


def ack(id: Any) -> dict[str, Any]:
    """The reply to a ``signalwire.event``; also the reply to ``signalwire.disconnect``."""
    return {"jsonrpc": JSONRPC, "id": id, "result": {}}


def error(id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": JSONRPC, "id": id, "error": body}


def event_frame(payload: Mapping[str, Any], id: str | None = None) -> dict[str, Any]:
    return request(Kind.EVENT.value, payload, id)


def connect_params(
    *,
    project: str | None = None,
    token: str | None = None,
    jwt: str | None = None,
    contexts: Iterable[str] = (),
    protocol: str | None = None,
    authorization_state: str | None = None,
    agent: str = AGENT,
) -> dict[str, Any]:
    """The params of ``signalwire.connect``; a JWT wins over project and token when both are given."""
    if jwt:
        authentication: dict[str, str] = {"jwt_token": jwt}
    elif project and token:
        authentication = {"project": project, "token": token}
    else:
        raise ValueError("signalwire.connect needs a project and token, or a JWT")
    params: dict[str, Any] = {
        "version": dict(VERSION),
        "agent": agent,
        "event_acks": True,
        "authentication": authentication,
    }
    contexts = list(contexts)
    if contexts:
        params["contexts"] = contexts
    if protocol:
        params["protocol"] = protocol
    if authorization_state:
        params["authorization_state"] = authorization_state
    return params


def is_success(value: Any) -> bool:
    """A call-control result succeeded: no ``code``, or a ``2xx`` code (sent as a string)."""
    if not isinstance(value, dict) or "code" not in value:
        return True
    return str(value["code"]).startswith("2")


def make_protocol(project_id: str) -> str:
    """A session id in the real format: ``signalwire_<64 hex>_<uuid>_<project uuid>``."""
    return f"signalwire_{os.urandom(32).hex()}_{uuid.uuid4()}_{project_id}"


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret replaced, at any depth; other values are shared, not copied."""
    if isinstance(value, dict):
        if not _has_secret(value):
            return value
        return {k: REDACTED if k in SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        if not any(isinstance(v, (dict, list)) and _has_secret(v) for v in value):
            return value
        return [redact(v) for v in value]
    return value


def may_hold_secret(raw: bytes) -> bool:
    """Whether encoded JSON could hold a secret key: a substring test that rules out almost every event.

    Two searches cover the four keys ("token" is in "jwt_token", "auth" in the other two): each costs
    about a nanosecond a byte, and a live tail makes them for every event it prints.
    """
    return b"token" in raw or b"auth" in raw


def without_secrets(value: dict[str, Any], raw: bytes | None) -> tuple[dict[str, Any], bytes | None]:
    """The value and its encoded bytes, redacted when they hold a secret; the bytes kept when they do not.

    A byte search rules out almost every event cheaply, so the hot path rarely walks the value.
    """
    if raw is not None and not may_hold_secret(raw):
        return value, raw
    clean = redact(value)
    if clean is value:
        return value, raw
    return clean, None


def _has_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in SECRET_KEYS or _has_secret(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_secret(v) for v in value)
    return False


def describe(frame: Any) -> str:
    """One line saying what a JSON-RPC frame is, for frames that are not events; secrets never shown."""
    kind = classify(frame)
    if kind is Kind.ERROR:
        err = frame.get("error")
        if isinstance(err, dict):
            return f"JSON-RPC error {err.get('code', '?')}: {err.get('message', '')}".rstrip(": ")
        return "JSON-RPC error"
    if kind is Kind.RESULT:
        value = frame.get("result")
        if isinstance(value, dict):
            if "protocol" in value:
                restored = " (session restored)" if value.get("session_restored") else ""
                return f"signalwire.connect result{restored}"
            if "result" in value and isinstance(value["result"], dict):
                value = value["result"]
            if "code" in value:
                outcome = "success" if is_success(value) else "failure"
                message = value.get("message", "")
                return f"call-control result {value['code']} ({outcome}): {message}".rstrip(": ")
            if not value:
                return "empty result (an ACK or a reply to a ping or disconnect)"
        return "JSON-RPC result"
    method = frame["method"]
    if kind is Kind.CONNECT:
        params = frame.get("params")
        resume = isinstance(params, dict) and bool(params.get("protocol"))
        return "signalwire.connect request" + (" (resuming a session)" if resume else "")
    if kind is Kind.DISCONNECT:
        params = frame.get("params")
        restart = isinstance(params, dict) and params.get("restart") is True
        return "signalwire.disconnect request" + (" (restart)" if restart else "")
    return f"{method} request"
