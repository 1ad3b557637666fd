"""The commands that read or fill the store: import, tickets, ticket, messages, parse."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from poller.ates.alert import read_alert
from poller.ates.rules import decide_alert
from poller.cli.exits import EXIT_CONFIG, EXIT_OK
from poller.cli.output import show
from poller.config import Settings
from poller.errors import MessageError
from poller.mail.headers import printable
from poller.mail.message import parse_message
from poller.service.passes import opened_store
from poller.service.worker import utc_now
from poller.store import queries
from poller.store.database import open_database, read_only_database, sqlite_path
from poller.store.importer import import_file
from poller.store.store import Store

TEXT = "\n\t"  # the line breaks and tabs of a description or note stay


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    with opened_store(settings) as store:
        counts = import_file(store, args.kind, args.file, utc_now())
    print(f"{args.kind}: " + ", ".join(f"{counts[k]} {k}"
                                       for k in ("created", "updated", "unchanged")))
    return EXIT_OK


def tickets_command(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url):
        rows = queries.tickets(status=args.status)
    show(rows, args.json, ("number", "status", "occurrences", "organization", "device", "title"))
    return EXIT_OK


def ticket_command(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url):
        rows = queries.tickets(number=args.number)
    if not rows:
        print(f"poller: no ticket {args.number}", file=sys.stderr)
        return EXIT_CONFIG
    ticket = rows[0]
    if args.json:
        print(json.dumps(ticket, indent=2, ensure_ascii=False))
        return EXIT_OK
    # what a sender wrote is printed with its control characters escaped: no terminal tricks
    for key in ("number", "title", "status", "organization", "device", "contact", "occurrences",
                "created", "updated", "completed"):
        print(f"{key:>12}: {printable(str(ticket[key])) if ticket[key] is not None else '-'}")
    for label, value in ticket["udfs"].items():
        print(f"{printable(label):>12}: {printable(value)}")
    print(f"\n{printable(ticket['description'], keep=TEXT)}\n")
    for note in ticket["notes"]:
        print(f"--- {note['created']} [{note['kind']}] {printable(note['title'])}\n"
              f"{printable(note['text'], keep=TEXT)}\n")
    for item in ticket["attachments"]:
        print(f"attachment: {printable(item['filename'])} ({printable(item['content_type'])}, "
              f"{item['size']} bytes)")
    return EXIT_OK


def messages_command(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url):
        rows = queries.messages(outcome=args.outcome)
    show(rows, args.json, ("uid", "outcome", "ticket", "subject", "reason"))
    return EXIT_OK


def parse_command(settings: Settings, args: argparse.Namespace) -> int:
    raw = args.file.read_bytes()
    now = utc_now()
    out: dict[str, object] = {"file": str(args.file)}
    try:
        message = parse_message(raw)
        out.update(message_id=message.message_id, subject=message.subject,
                   attachments=[{"filename": a.filename, "size": a.size,
                                 "content_type": a.content_type} for a in message.attachments])
        alert = read_alert(message, now)
    except MessageError as exc:
        out.update(error=type(exc).__name__, reason=str(exc))
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    out.update(title=alert.title, description=alert.description, token=alert.token.public())
    url = settings.database.url
    path = sqlite_path(url)
    if path is not None and not Path(path).exists():
        url = "sqlite:///:memory:"  # no store yet: decide against an empty directory
    db = open_database(url)
    with db.atomic() as transaction:
        store = Store(db, settings.ates.local_organization, now)
        decision = decide_alert(alert, store, settings.policy())
        transaction.rollback()
    store.close()
    out["decision"] = {
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "organization_id": decision.organization_id,
        "device_id": decision.device_id,
        "ticket_id": decision.ticket_id,
        "notes": list(decision.notes),
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return EXIT_OK
