"""The root of every error relay raises, and the exit code each kind of error means.

The library raises; only the process edge (:mod:`relay_cli.cli`) turns an error into a line on stderr and
an exit code, in one place. Each error is one line for the user, with no secret in it. The classes that
derive from these keep their names where they are raised (``SessionError`` in ``session``, ``InputError``
in ``pipeline.reader``, ...), so a program using the library catches what it knows, or ``RelayError``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

__all__ = ["ExitCode", "RelayError", "Terminated", "UsageError"]


class ExitCode(IntEnum):
    """The exit codes ``relay`` documents in its help and README."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130
    TERMINATED = 143


class RelayError(Exception):
    """Something relay cannot do: a connection, the credentials, the input, the output (exit code 1)."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE


class UsageError(RelayError):
    """A value given to relay that cannot work: a bad option or a conflict between options (exit code 2)."""

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


class Terminated(BaseException):
    """SIGTERM arrived while the library handled it itself (replay worker processes must be stopped first).

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no ``except Exception`` stops it on its way out.
    """

    exit_code: ClassVar[ExitCode] = ExitCode.TERMINATED
