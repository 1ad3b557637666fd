"""The commands that read or fill the store: import, tickets, messages, parse."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from poller.ates.alert import read_alert
from poller.ates.decision import Outcome
from poller.ates.rules import decide_alert
from poller.cli.exits import EXIT_OK
from poller.cli.output import dumps, show
from poller.clock import utc_now
from poller.config import Settings
from poller.errors import MessageError
from poller.mail.message import parse_message
from poller.paths import sqlite_file
from poller.service.passes import opened_store
from poller.store import queries
from poller.store.database import open_database, read_only_database
from poller.store.importer import import_file
from poller.store.store import Store


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    with opened_store(settings) as store:
        counts = import_file(store, args.kind, args.file, utc_now())
    print(f"{args.kind}: " + ", ".join(f"{counts[k]} {k}"
                                       for k in ("created", "updated", "unchanged")))
    return EXIT_OK


def tickets_command(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url):
        rows = queries.tickets(status=args.status, queue=args.queue, priority=args.priority)
    show(rows, args.json, ("number", "status", "queue", "priority", "occurrences",
                           "organization", "device", "mailbox", "title"))
    return EXIT_OK


def messages_command(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url):
        rows = queries.messages(outcome=args.outcome, limit=args.limit, since=args.since)
    show(rows, args.json, ("mailbox", "uid", "outcome", "ticket", "subject", "reason"))
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
        print(dumps(out))
        return EXIT_OK
    out.update(title=alert.title, description=alert.description, token=alert.token.public())
    url = settings.database.url
    path = sqlite_file(url)
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
        **({"fields": asdict(decision.fields)} if decision.outcome is Outcome.CREATED else {}),
    }
    print(dumps(out))
    return EXIT_OK
