"""Far ends: the scripts of the virtual parties on the other end of the emulator's calls and messages.

A far end says how a party behaves (EMULATOR.md section 5): whether it answers a call (after how long) or is busy,
does not answer, or declines; what it presses or says when the app prompts it; whether it is an answering machine
or a fax; when it hangs up; whether a message to it is delivered. Outbound dials and messages look their number up
in :class:`FarEnds` (per-number rules over a default); an inbound call started by hand carries its caller's own
script. Rules come from JSON (``relay serve --far-ends FILE``, the control plane), read by :func:`parse_far_ends`,
which names the first thing wrong.

Times are simulated seconds: the emulator divides them by ``--speed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay_cli.event import json_type

__all__ = ["ANSWERS", "DELIVERIES", "FarEnd", "FarEndError", "FarEnds", "parse_far_end", "parse_far_ends"]

ANSWERS = ("answer", "busy", "no-answer", "decline")
"""How a far end takes a call: it answers; or the dial fails busy, rings out unanswered, or is declined."""
DELIVERIES = ("delivered", "undelivered", "failed")
"""What becomes of a message sent to it."""
MAX_NUMBERS = 10_000
"""Per-number rules one set may hold."""
_TEXT_LIMIT = 4096


class FarEndError(ValueError):
    """A far-end script or rule set that cannot be used; the message names the field and what is wrong."""


@dataclass(frozen=True, slots=True)
class FarEnd:
    """One party's script."""

    answer: str = "answer"
    """One of :data:`ANSWERS`."""
    answer_after: float = 1.0
    """Seconds it rings before answering (or before the busy or decline)."""
    press: str = "1"
    """DTMF it presses when prompted for digits (``0-9``, ``*``, ``#``, ``A-D``); empty: it presses nothing."""
    say: str = "hello"
    """What it says when prompted for speech, and on a recording; empty: it stays silent (``no_input``)."""
    machine: bool = False
    """An answering machine: machine detection says so, and it speaks a greeting before the beep."""
    fax: bool = False
    """A fax machine: fax detection finds its tone and a fax to it is received."""
    hangup_after: float | None = None
    """Seconds after the call is answered when it hangs up; None: it stays until the app ends the call."""
    message: str = "delivered"
    """One of :data:`DELIVERIES`: what becomes of a message sent to this party."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class FarEnds:
    """The rules for outbound numbers: an exact number's rule, else the default."""

    default: FarEnd = field(default_factory=FarEnd)
    numbers: dict[str, FarEnd] = field(default_factory=dict)

    def for_number(self, number: str) -> FarEnd:
        return self.numbers.get(number, self.default)

    def to_json(self) -> dict[str, Any]:
        return {"default": self.default.to_json(), "numbers": {n: f.to_json() for n, f in self.numbers.items()}}


_FIELDS = {f.name: f for f in dataclasses.fields(FarEnd)}
_DIGITS = frozenset("0123456789*#ABCD")


def parse_far_end(value: Any, where: str = "far end", base: FarEnd | None = None) -> FarEnd:
    """A script from its JSON object; fields left out take ``base``'s values (the defaults without one)."""
    if not isinstance(value, Mapping):
        raise FarEndError(f"{where}: must be an object, not {json_type(value)}")
    unknown = [k for k in value if k not in _FIELDS]
    if unknown:
        raise FarEndError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(_FIELDS)})")
    changes: dict[str, Any] = {}
    for name, raw in value.items():
        changes[name] = _check(name, raw, f"{where}.{name}")
    return dataclasses.replace(base or FarEnd(), **changes)


def parse_far_ends(value: Any, base: FarEnds | None = None) -> FarEnds:
    """A rule set from ``{"default": {...}, "numbers": {"+1555...": {...}}}``; both keys are optional.

    A number's rule is laid over the default, so it says only how that number differs. With ``base`` the new
    rules are added to it (a number given again is replaced); the result is a new object either way.
    """
    if not isinstance(value, Mapping):
        raise FarEndError(f"far ends: must be an object, not {json_type(value)}")
    unknown = [k for k in value if k not in ("default", "numbers")]
    if unknown:
        raise FarEndError(f"far ends: unknown key {unknown[0]!r} (keys: default, numbers)")
    start = base or FarEnds()
    default = start.default
    if "default" in value:
        default = parse_far_end(value["default"], "default")
    numbers = dict(start.numbers)
    rules = value.get("numbers", {})
    if not isinstance(rules, Mapping):
        raise FarEndError(f"numbers: must be an object of number to far end, not {json_type(rules)}")
    for number, rule in rules.items():
        if not number or len(number) > 64:
            raise FarEndError("numbers: a number must be 1 to 64 characters")
        numbers[number] = parse_far_end(rule, f"numbers[{number!r}]", default)
    if len(numbers) > MAX_NUMBERS:
        raise FarEndError(f"numbers: at most {MAX_NUMBERS} rules")
    return FarEnds(default, numbers)


def _check(name: str, raw: Any, where: str) -> Any:
    if name == "answer":
        if raw not in ANSWERS:
            raise FarEndError(f"{where}: must be one of {', '.join(ANSWERS)}")
        return raw
    if name == "message":
        if raw not in DELIVERIES:
            raise FarEndError(f"{where}: must be one of {', '.join(DELIVERIES)}")
        return raw
    if name in ("machine", "fax"):
        if not isinstance(raw, bool):
            raise FarEndError(f"{where}: must be true or false")
        return raw
    if name in ("answer_after", "hangup_after"):
        if raw is None and name == "hangup_after":
            return None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 86_400:
            raise FarEndError(f"{where}: must be a number of seconds from 0 to 86400")
        return float(raw)
    if not isinstance(raw, str) or len(raw) > _TEXT_LIMIT:
        raise FarEndError(f"{where}: must be a string of at most {_TEXT_LIMIT} characters")
    if name == "press" and not set(raw) <= _DIGITS:
        raise FarEndError(f"{where}: only digits 0-9, *, # and A-D can be pressed")
    return raw
