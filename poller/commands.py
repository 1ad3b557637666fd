"""The body of each CLI command: load settings, open what it needs, print the result."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from urllib.parse import urlparse

from poller import report
from poller.alert import read_alert
from poller.config import Settings, load_settings
from poller.errors import MailboxError, MessageError
from poller.importer import import_file
from poller.mailbox import Mailbox
from poller.message import parse_message
from poller.rules import Policy, decide
from poller.store import Store, open_database
from poller.worker import Worker, utc_now

logger = logging.getLogger("poller")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the command named in args; return its exit code."""
    settings = load_settings(args.config)
    return _COMMANDS[args.command](settings, args)


def open_store(settings: Settings) -> Store:
    """Open (and create if needed) the configured database."""
    db = open_database(settings.database.url)
    return Store(db, settings.ates.local_organization, utc_now())


def once(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    started = utc_now()
    try:
        with Mailbox(settings.imap) as mailbox:
            result = Worker(settings, mailbox, store).run_pass()
    except MailboxError as exc:
        store.log_pass(started, utc_now(), False, "", str(exc))
        raise
    else:
        store.log_pass(started, utc_now(), True, result.summary())
    finally:
        store.close()
    logger.info("pass done in %.2fs: %s%s", result.seconds, result.summary(),
                f"; {result.pending} mail left for the next pass" if result.pending else "")
    return 1 if result.pending else 0


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    try:
        counts = import_file(store, args.kind, args.file, utc_now())
    finally:
        store.close()
    print(f"{args.kind}: " + ", ".join(f"{counts[k]} {k}"
                                       for k in ("created", "updated", "unchanged")))
    return 0


def tickets_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    try:
        rows = report.tickets(status=args.status)
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(_table(rows, ("number", "status", "occurrences", "organization", "device", "title")))
    return 0


def ticket_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    try:
        rows = report.tickets(number=args.number)
    finally:
        store.close()
    if not rows:
        print(f"poller: no ticket {args.number}")
        return 2
    ticket = rows[0]
    if args.json:
        print(json.dumps(ticket, indent=2, ensure_ascii=False))
        return 0
    for key in ("number", "title", "status", "organization", "device", "contact", "occurrences",
                "created", "updated", "completed"):
        print(f"{key:>12}: {ticket[key] if ticket[key] is not None else '-'}")
    for label, value in ticket["udfs"].items():
        print(f"{label:>12}: {value}")
    print(f"\n{ticket['description']}\n")
    for note in ticket["notes"]:
        print(f"--- {note['created']} [{note['kind']}] {note['title']}\n{note['text']}\n")
    for item in ticket["attachments"]:
        print(f"attachment: {item['filename']} ({item['content_type']}, {item['size']} bytes)")
    return 0


def messages_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    try:
        rows = report.messages(outcome=args.outcome)
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(_table(rows, ("uid", "outcome", "ticket", "subject", "reason")))
    return 0


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
        return 0
    out.update(title=alert.title, description=alert.description, token=alert.token.public())
    url = settings.database.url
    path = urlparse(url).path[1:] if url.startswith("sqlite:") else None
    if path is not None and not Path(path).exists():
        url = "sqlite:///:memory:"  # no store yet: decide against an empty directory
    db = open_database(url)
    with db.atomic() as transaction:
        store = Store(db, settings.ates.local_organization, now)
        decision = decide(alert, store, Policy(settings.ates, settings.duplicates))
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
    return 0


def _table(rows: list[dict[str, object]], columns: tuple[str, ...]) -> str:
    if not rows:
        return "(none)"
    cells = [[("-" if row[c] is None else str(row[c])).replace("\n", " ")[:60] for c in columns]
             for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


_COMMANDS = {
    "once": once,
    "import": import_command,
    "tickets": tickets_command,
    "ticket": ticket_command,
    "messages": messages_command,
    "parse": parse_command,
}
