"""What ``relay parse`` shows: each entry typed, as a table or as typed JSON, and what is wrong with the rest.

The view takes the reader's entries and gives back, in order, the bytes to print and the problems to
report; the process edge writes them. Frames that are no event are named for what they are: in a
table, a line of their own; in JSON, a problem that does not fail the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import orjson

from relay_cli.event import EVENT_CLASS_MAP, InvalidEvent, parse_event
from relay_cli.pipeline.reader import BadLine, Entry, to_event, unencodable
from relay_cli.protocol import PROTOCOL_EVENT_TYPES
from relay_cli.views.printers import Style, escape, event_json, pretty_block, terminal_json

__all__ = ["Problem", "parse_view"]


@dataclass(frozen=True, slots=True)
class Problem:
    """A ``WHERE: message`` line for stderr; ``failed`` says it makes the run fail (exit code 1)."""

    where: str
    message: str
    failed: bool = True


def parse_view(
    entries: Iterable[Entry],
    where: Callable[[int | str], str],
    *,
    pretty: bool,
    style: Style,
    strict: bool,
    terminal: bool,
) -> Iterator[bytes | Problem]:
    """For each entry, its rendering or its :class:`Problem` (a strict run also flags unknown event types).

    ``where(line)`` names an entry's place (``FILE:LINE``); ``terminal`` escapes JSON as a terminal needs.
    """
    for line, raw, value in entries:
        if isinstance(value, BadLine):
            yield Problem(where(line), value.message)
            continue
        try:
            payload, note = to_event(value)
            if note is not None:
                if pretty:
                    yield f"{style.dim}{escape(where(line))}{style.reset}  {escape(note)}\n\n".encode()
                else:
                    yield Problem(where(line), f"not an event: {note}", failed=False)
                continue
            if payload.__class__ is dict and "event_type" not in payload and "params" not in payload:
                raise InvalidEvent("not an event: an object with neither event_type nor params")
            event = parse_event(payload)
        except InvalidEvent as exc:
            yield Problem(where(line), str(exc))
            continue
        if strict and event.event_type not in EVENT_CLASS_MAP and event.event_type not in PROTOCOL_EVENT_TYPES:
            yield Problem(where(line), f"unknown event type {event.event_type!r}")
        try:
            if pretty:
                yield (pretty_block(event, style) + "\n").encode()
            else:
                data = orjson.dumps(event_json(event, raw if payload is value else None)) + b"\n"
                yield terminal_json(data) if terminal else data
        except (orjson.JSONEncodeError, RecursionError) as exc:
            yield Problem(where(line), unencodable(exc))
