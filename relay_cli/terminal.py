"""Where output goes: data to stdout, everything else to stderr, chosen once from the terminal's state.

Every command gets one :class:`Terminal`, so tests and the CLI agree on which stream is a terminal,
whether colour is on, and what a status line looks like.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO

from relay_cli.errors import ExitCode
from relay_cli.protocol import Secrets
from relay_cli.views.printers import Format, Style, escape

__all__ = ["Color", "ExitCode", "Terminal"]


class Color(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


@dataclass
class Terminal:
    """The process's streams and what they are connected to."""

    stdout: IO[bytes] = field(default_factory=lambda: sys.stdout.buffer)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdout_tty: bool = field(default_factory=lambda: sys.stdout.isatty())
    stderr_tty: bool = field(default_factory=lambda: sys.stderr.isatty())
    stdin_tty: bool = field(default_factory=lambda: _isatty(0))
    quiet: bool = False
    """Leave out informational status lines; warnings and errors still print."""
    secrets: Secrets = field(default_factory=Secrets)
    """What no stderr line may show; the session adds each ``authorization_state`` it learns."""

    def style(self, color: Color) -> Style:
        """Colour on stdout: ``always``/``never`` win; ``auto`` means a terminal and no ``NO_COLOR``."""
        if color is Color.always:
            return Style(True)
        if color is Color.never or os.environ.get("NO_COLOR"):
            return Style(False)
        return Style(self.stdout_tty and os.environ.get("TERM") != "dumb")

    def default_format(self, fmt: Format | None) -> Format:
        return fmt or (Format.pretty if self.stdout_tty else Format.json)

    def status(self, message: str) -> None:
        """An informational line on stderr (connecting, connected, the summary), left out when quiet."""
        if not self.quiet:
            self.warn(message)

    def warn(self, message: str) -> None:
        """A warning or an error on stderr, printed even when quiet.

        Every line is redacted, then escaped: messages quote the wire and the server, which may echo a
        secret or hold terminal control sequences.
        """
        self.stderr.write(f"relay: {escape(self.secrets.scrub(message))}\n")
        self.stderr.flush()

    def say(self, line: str) -> None:
        """A line on stderr as it is, with no ``relay:`` prefix: one meant to be copied (``VAR=value``)."""
        self.stderr.write(f"{escape(self.secrets.scrub(line))}\n")
        self.stderr.flush()

    def problem(self, where: str, message: str) -> None:
        """A ``FILE:LINE: message`` line on stderr, as compilers print them; redacted and escaped."""
        self.stderr.write(f"{escape(where)}: {escape(self.secrets.scrub(message))}\n")
        self.stderr.flush()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
