"""Dispatching a parsed command line to the command's function."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from poller.cli import rules_commands as rules
from poller.cli import service_commands as service
from poller.cli import store_commands as store
from poller.cli import ticket_commands as ticket
from poller.config import Settings, load_settings

Command = Callable[[Settings, argparse.Namespace], int]

COMMANDS: dict[str, Command] = {
    "once": service.once,
    "serve": service.serve_command,
    "check": service.check_command,
    "status": service.status_command,
    "requeue": service.requeue_command,
    "import": store.import_command,
    "tickets": store.tickets_command,
    "ticket": ticket.ticket_command,
    "outbox": ticket.outbox_command,
    "messages": store.messages_command,
    "parse": store.parse_command,
    "rules": rules.rules_command,
}


def run(args: argparse.Namespace) -> int:
    """Load the settings and run the command named in args; return its exit code."""
    settings = load_settings(args.config)
    return COMMANDS[args.command](settings, args)
