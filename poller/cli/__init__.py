"""The command line: argument parsing, the commands, their output (tables, JSON), and every
exit code (poller.cli.exits). Errors raised below are turned into messages and exit codes here,
at the boundary, and nowhere else.

May import: everything in poller.
"""

from poller.cli.main import console, main

__all__ = ["console", "main"]
