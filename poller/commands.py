"""The body of each CLI command: load settings, open what it needs, print the result."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from urllib.parse import urlparse

from poller import health, report
from poller.alert import read_alert
from poller.cli import CHECK_EXIT, EXIT_CONFIG, EXIT_OK, EXIT_PENDING, EXIT_STALE, EXIT_UNAVAILABLE
from poller.config import Settings, load_settings
from poller.errors import MessageError
from poller.importer import import_file
from poller.lock import pass_lock
from poller.mailbox import Mailbox
from poller.message import parse_message
from poller.passes import opened_store, recorded_pass
from poller.requeue import requeue
from poller.rules import Policy, decide
from poller.signals import Shutdown, SignalThread
from poller.store import Store, open_database
from poller.worker import utc_now

logger = logging.getLogger("poller")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the command named in args; return its exit code."""
    settings = load_settings(args.config)
    return _COMMANDS[args.command](settings, args)


def once(settings: Settings, args: argparse.Namespace) -> int:
    shutdown = Shutdown(settings.schedule.stop_grace)
    with SignalThread(lambda why: shutdown.request(f"received {why}")):
        with pass_lock(settings.schedule.lock_file, settings.schedule.lock_wait,
                       shutdown.event) as lock:
            if lock is None:
                return EXIT_OK
            result = recorded_pass(settings, shutdown.event, track=shutdown.track)
    return EXIT_PENDING if result.pending else EXIT_OK


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    from poller.scheduler import serve  # APScheduler is only needed here

    return serve(settings, args.config, verbosity=-1 if args.quiet else args.verbose)


def check_command(settings: Settings, args: argparse.Namespace) -> int:
    print(f"# effective settings from {settings.source} (secrets masked)")
    for section, values in settings.redacted().items():
        print(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                shown = "true" if value else "false"
            elif isinstance(value, tuple):
                shown = ", ".join(value)
            else:
                shown = "" if value is None else value
            print(f"{key} = {shown}")
        print()
    checks = [health.check_database(settings), *health.check_files(settings),
              *health.check_mailbox(settings)]
    for item in checks:
        print(f"{item.part:<9} {'ok' if item.ok else 'FAILED':<6} {item.detail}")
    failed = [item for item in checks if not item.ok]
    return CHECK_EXIT[failed[0].part] if failed else EXIT_OK


def status_command(settings: Settings, args: argparse.Namespace) -> int:
    max_age = args.max_age if args.max_age is not None else settings.status.max_age
    with opened_store(settings) as store:
        totals = health.totals()
        box = health.mailbox_state(settings, store) if args.mailbox else None
    now = utc_now()
    good = totals.last_good_pass
    age = (now - good.finished).total_seconds() if good else None
    stale = age is None or age > max_age
    last = totals.last_pass
    if args.json:
        print(json.dumps({
            "last_pass": _pass_json(last), "last_good_pass": _pass_json(good),
            "last_good_pass_age_seconds": None if age is None else round(age),
            "max_age_seconds": max_age, "stale": stale,
            "waiting": box.waiting if box else None, "quarantine": box.quarantine if box else None,
            "mailbox_error": box.error if box else None, "open_tickets": totals.open_tickets,
            "pending_mailbox_steps": totals.pending_steps, "passes_ok": totals.passes_ok,
            "passes_failed": totals.passes_failed, "mails": totals.mails,
        }, indent=2))
    else:
        if last is None:
            print("last pass:        none yet")
        else:
            result = "ok" if last.ok else "FAILED"
            print(f"last pass:        {last.finished.isoformat()} {result} ({last.seconds:.2f}s)"
                  f" {last.counts}{f' - {last.error}' if last.error else ''}")
        print("last good pass:   " + ("none" if good is None else
                                      f"{good.finished.isoformat()}, {age:.0f}s ago") +
              f" ({'STALE: ' if stale else ''}limit {max_age}s)")
        if box is not None:
            unknown = f"unknown ({box.error})"
            print(f"mail waiting:     {unknown if box.waiting is None else box.waiting}")
            print(f"quarantine:       {unknown if box.quarantine is None else box.quarantine}")
        print(f"open tickets:     {totals.open_tickets}")
        print(f"pending steps:    {totals.pending_steps}")
    if stale:
        return EXIT_STALE
    return EXIT_UNAVAILABLE if box is not None and box.error else EXIT_OK


def requeue_command(settings: Settings, args: argparse.Namespace) -> int:
    with Mailbox(settings.imap) as mailbox:
        done = requeue(mailbox, settings, None if args.all else args.message_ids)
    print(f"requeued {len(done.moved)} mail from {settings.mailbox.quarantine_folder!r} to "
          f"{settings.imap.folder!r}; the next pass processes them")
    for message_id in done.missing:
        print(f"not in the quarantine: {message_id}")
    return EXIT_CONFIG if done.missing else EXIT_OK


def _pass_json(record: health.PassRecord | None) -> dict[str, object] | None:
    if record is None:
        return None
    return {"started": record.started.isoformat(), "finished": record.finished.isoformat(),
            "seconds": record.seconds, "ok": record.ok, "counts": record.counts,
            "error": record.error}


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    with opened_store(settings) as store:
        counts = import_file(store, args.kind, args.file, utc_now())
    print(f"{args.kind}: " + ", ".join(f"{counts[k]} {k}"
                                       for k in ("created", "updated", "unchanged")))
    return 0


def tickets_command(settings: Settings, args: argparse.Namespace) -> int:
    with opened_store(settings):
        rows = report.tickets(status=args.status)
    return _show(rows, args.json, ("number", "status", "occurrences", "organization", "device",
                                   "title"))


def ticket_command(settings: Settings, args: argparse.Namespace) -> int:
    with opened_store(settings):
        rows = report.tickets(number=args.number)
    if not rows:
        print(f"poller: no ticket {args.number}", file=sys.stderr)
        return EXIT_CONFIG
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
    with opened_store(settings):
        rows = report.messages(outcome=args.outcome)
    return _show(rows, args.json, ("uid", "outcome", "ticket", "subject", "reason"))


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


def _show(rows: list[dict[str, object]], as_json: bool, columns: tuple[str, ...]) -> int:
    """Print rows as JSON or as a table of the given columns; return the exit code."""
    print(json.dumps(rows, indent=2, ensure_ascii=False) if as_json else _table(rows, columns))
    return EXIT_OK


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
    "serve": serve_command,
    "check": check_command,
    "status": status_command,
    "requeue": requeue_command,
    "import": import_command,
    "tickets": tickets_command,
    "ticket": ticket_command,
    "messages": messages_command,
    "parse": parse_command,
}
