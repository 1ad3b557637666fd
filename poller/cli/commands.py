"""Dispatching a parsed command line to the command's function.

A command's module is imported when the command runs, so that each command loads only what it
uses (a cron pass every minute pays its imports all day).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from poller.config import Settings

Command = Callable[["Settings", argparse.Namespace], int]

# command → (module in poller.cli, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "once": ("pass_commands", "once"),
    "serve": ("pass_commands", "serve_command"),
    "check": ("service_commands", "check_command"),
    "status": ("service_commands", "status_command"),
    "requeue": ("service_commands", "requeue_command"),
    "import": ("store_commands", "import_command"),
    "tickets": ("store_commands", "tickets_command"),
    "ticket": ("ticket_commands", "ticket_command"),
    "outbox": ("ticket_commands", "outbox_command"),
    "messages": ("store_commands", "messages_command"),
    "parse": ("store_commands", "parse_command"),
    "copy-database": ("copy_command", "copy_database_command"),
    "rules": ("rules_commands", "rules_command"),
    "web": ("web_commands", "web_command"),
}


def command(name: str) -> Command:
    """Return the function of command NAME, importing its module."""
    module, function = COMMANDS[name]
    return getattr(importlib.import_module(f"poller.cli.{module}"), function)


def run(args: argparse.Namespace) -> int:
    """Load the settings and run the command named in args; return its exit code."""
    from poller.config import load_settings  # not for --help and --version

    settings = load_settings(args.config)
    return command(args.command)(settings, args)
