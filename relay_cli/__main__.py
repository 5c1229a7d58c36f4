"""``python -m relay_cli`` and the ``relay`` console script.

The command line is imported here, inside the handler: Ctrl-C while it loads (a tenth of a second) exits 130
with no traceback, as it does once a command runs.
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from relay_cli.cli import main

        main()
    except KeyboardInterrupt:
        from relay_cli.errors import ExitCode

        sys.stderr.write("\n")
        raise SystemExit(ExitCode.INTERRUPTED) from None


if __name__ == "__main__":
    run()
