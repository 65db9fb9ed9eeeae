"""`fusionbench VERB key=value ...`: one module per verb; ``main`` is the console entry point.

``main`` imports the command machinery (and with it torch) inside its own Ctrl-C handling, so an
interrupt while libraries load is ``interrupted`` and exit status 130, not a traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from fusionbench.cli.main import main as run_command
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return run_command(argv)
