"""The commands of one ticket and its events: ticket (show, complete, note) and outbox."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from poller.cli.exits import EXIT_CONFIG, EXIT_OK
from poller.cli.output import dumps, show
from poller.clock import utc_now
from poller.config import Settings
from poller.mail.printable import printable
from poller.service.delivery import deliver_pending
from poller.service.passes import opened_store
from poller.store import outbox, queries, technician
from poller.store.readonly import read_only_database

TEXT = "\n\t"  # the line breaks and tabs of a description or note stay


def ticket_command(settings: Settings, args: argparse.Namespace) -> int:
    misplaced = {"show": ("note", "by"), "complete": ("json",), "note": ("json", "note")}
    for option in misplaced[args.action]:
        if getattr(args, option):
            print(f"poller: ticket {'' if args.action == 'show' else args.action + ' '}"
                  f"does not take --{option}", file=sys.stderr)
            return EXIT_CONFIG
    if args.action == "complete":
        return complete(settings, args)
    if args.action == "note":
        return note(settings, args)
    return show_ticket(settings, args)


def default_by() -> str:
    """Return who runs the command: the user who ran sudo, else the login name."""
    if os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    try:
        return os.getlogin()
    except OSError:  # no controlling terminal (cron, systemd)
        return getpass.getuser()


def complete(settings: Settings, args: argparse.Namespace) -> int:
    by = args.by or default_by()
    with opened_store(settings) as store:
        done = technician.complete_ticket(store, args.number, by, args.note, utc_now(),
                                          settings.webhook.subscribed())
    if done is None:
        print(f"poller: no ticket {args.number}", file=sys.stderr)
        return EXIT_CONFIG
    if not done.changed:
        print(f"{done.number} is Complete already; nothing changed, nothing sent")
        return EXIT_OK
    print(f"{done.number} completed by {by}")
    if done.delivery_id is not None:
        run = deliver_pending(settings, budget=settings.webhook.budget)
        if done.delivery_id in run.delivered:
            print(f"completed event {done.delivery_id} delivered to "
                  f"{settings.webhook.shown_url()}")
        else:
            why = "another process is delivering" if run.busy else "see the log above"
            print(f"completed event {done.delivery_id} not delivered yet ({why}); it stays in "
                  "the outbox and is delivered after a later pass")
    return EXIT_OK


def note(settings: Settings, args: argparse.Namespace) -> int:
    by = args.by or default_by()
    with opened_store(settings) as store:
        number = technician.add_note(store, args.number, by, args.text, utc_now())
    if number is None:
        print(f"poller: no ticket {args.number}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"note by {by} added to {number}")
    return EXIT_OK


def show_ticket(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url, settings.database.password) as db:
        rows = queries.tickets(db, number=args.number)
    if not rows:
        print(f"poller: no ticket {args.number}", file=sys.stderr)
        return EXIT_CONFIG
    ticket = rows[0]
    if args.json:
        print(dumps(ticket))
        return EXIT_OK
    # what a sender wrote is printed with its control characters escaped: no terminal tricks
    for key in ("number", "title", "status", "queue", "priority", "source", "issue_type",
                "sub_issue", "organization", "device", "contact", "occurrences", "mailbox",
                "created", "updated", "completed"):
        print(f"{key:>12}: {printable(str(ticket[key])) if ticket[key] is not None else '-'}")
    for label, value in ticket["udfs"].items():
        print(f"{printable(label):>12}: {printable(value)}")
    print(f"\n{printable(ticket['description'], keep=TEXT)}\n")
    for item in ticket["notes"]:
        print(f"--- {item['created']} [{item['kind']}] {printable(item['title'])}\n"
              f"{printable(item['text'], keep=TEXT)}\n")
    for item in ticket["attachments"]:
        print(f"attachment: {printable(item['filename'])} ({printable(item['content_type'])}, "
              f"{item['size']} bytes)")
    return EXIT_OK


def outbox_command(settings: Settings, args: argparse.Namespace) -> int:
    words = list(args.words)
    if words:
        return steer_outbox(settings, args, words)
    if args.failed:
        return _misuse("outbox: --failed goes with retry: poller outbox retry --failed")
    with read_only_database(settings.database.url, settings.database.password) as db:
        rows = queries.outbox(db, args.status, limit=args.limit, since=args.since)
    show(rows, args.json, ("id", "event", "ticket", "status", "attempts", "last_error", "created",
                           "delivered"))
    return EXIT_OK


def steer_outbox(settings: Settings, args: argparse.Namespace, words: list[str]) -> int:
    """`outbox retry ID`, `outbox retry --failed`, `outbox drop ID`."""
    action, ids = words[0], words[1:]
    if action not in ("retry", "drop") or len(ids) > 1 or (action == "drop" and args.failed):
        return _misuse(f"outbox: expected 'retry ID', 'retry --failed' or 'drop ID', got "
                       f"{printable(' '.join(words))!r}")
    if bool(ids) == args.failed:
        return _misuse(f"outbox {action}: give one event id" +
                       (" or --failed" if action == "retry" else ""))
    with opened_store(settings) as store:
        if action == "retry":
            count = outbox.retry(store.db, utc_now(), ids[0] if ids else None)
        else:
            count = int(outbox.drop(store.db, ids[0], f"dropped by {default_by()}"))
    if ids and not count:
        return _misuse(f"outbox {action}: no event {printable(ids[0])} that is not delivered")
    print(f"{count} event{'s' if count != 1 else ''} " +
          ("put back: posted at the next delivery run" if action == "retry"
           else "dropped: kept in the outbox, never posted"))
    return EXIT_OK


def _misuse(message: str) -> int:
    print(f"poller: {message}", file=sys.stderr)
    return EXIT_CONFIG
