"""Talking to the emulator's control plane over real HTTP (``http.client``), from a test thread or a coroutine."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["Reply", "acall", "call"]


class Reply:
    """A response: its status, headers, raw body and (for JSON) the decoded body as ``json``."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.json: Any = orjson.loads(body) if headers.get("content-type") == "application/json" else None

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


def call(base: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Reply:
    """One request on a fresh connection; ``body`` is sent as JSON, ``raw`` as is."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
    try:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        headers = {"content-type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


async def acall(base: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Reply:
    """:func:`call` from a coroutine, in a thread, so the emulator on this loop keeps running."""
    return await asyncio.to_thread(call, base, method, path, body, raw=raw)
