"""The commands that read or fill the store: import, tickets, messages, parse."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from poller.ates.outcomes import Outcome
from poller.ates.rules import decide
from poller.cli.exits import EXIT_OK
from poller.cli.output import dumps, show
from poller.clock import utc_now
from poller.config import Settings
from poller.service.passes import opened_store
from poller.service.reader import read_one
from poller.store import queries
from poller.store.importer import ImportOptions, Plan, import_table, plan_import, read_table
from poller.store.readonly import directory_to_read, read_only_database
from poller.store.store import Store

SHOWN_CHANGES = 10  # `import` prints the first changes, field by field


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    # the file is read (and refused) before the database is opened
    table = read_table(args.file, "\t" if args.delimiter == "tab" else args.delimiter)
    options = ImportOptions(tuple(args.column), args.organization_by)
    if args.dry_run:
        with directory_to_read(settings.database.url, settings.database.password) as db:
            plan = plan_import(db, args.kind, table, options)
    else:
        with opened_store(settings) as store:
            plan = import_table(store, args.kind, table, utc_now(), options)
    if args.json:
        print(json.dumps(_plan_json(plan, args.dry_run), indent=2, ensure_ascii=False))
    else:
        print("\n".join(_plan_lines(plan, args.dry_run)))
    return EXIT_OK


def _plan_lines(plan: Plan, dry_run: bool) -> list[str]:
    counts = plan.counts()
    lines = [f"{plan.table.path}: {plan.table.describe()}"]
    if plan.ignored:
        lines.append("ignored columns: " + ", ".join(repr(name) for name in plan.ignored))
    if dry_run:
        lines.append(f"{plan.kind} (dry run, nothing written): {counts['added']} to add, "
                     f"{counts['changed']} to change, {counts['unchanged']} unchanged")
    else:
        lines.append(f"{plan.kind}: {counts['added']} added, {counts['changed']} changed, "
                     f"{counts['unchanged']} unchanged")
    for change in plan.changes[:SHOWN_CHANGES]:
        fields = ", ".join(f"{name} {new!r}" if change.action == "add" else
                           f"{name} {old!r} → {new!r}" for name, old, new in change.fields)
        lines.append(f"  line {change.line}: {change.action} {change.what}: {fields}")
    if len(plan.changes) > SHOWN_CHANGES:
        lines.append(f"  ... and {len(plan.changes) - SHOWN_CHANGES} more (--json lists all)")
    return lines


def _plan_json(plan: Plan, dry_run: bool) -> dict[str, object]:
    return {
        "file": str(plan.table.path), "kind": plan.kind, "dry_run": dry_run,
        "encoding": plan.table.encoding,
        "delimiter": plan.table.delimiter, "rows": len(plan.table.rows),
        "ignored_columns": list(plan.ignored), **plan.counts(),
        "changes": [{"line": c.line, "action": c.action, "what": c.what,
                     "fields": [{"field": name, "old": old, "new": new}
                                for name, old, new in c.fields]} for c in plan.changes],
    }


def tickets_command(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url, settings.database.password) as db:
        rows = queries.tickets(db, status=args.status, queue=args.queue, priority=args.priority)
    show(rows, args.json, ("number", "status", "queue", "priority", "occurrences",
                           "organization", "device", "mailbox", "title"))
    return EXIT_OK


def messages_command(settings: Settings, args: argparse.Namespace) -> int:
    with read_only_database(settings.database.url, settings.database.password) as db:
        rows = queries.messages(db, outcome=args.outcome, limit=args.limit, since=args.since)
    show(rows, args.json, ("mailbox", "uid", "outcome", "ticket", "subject", "reason"))
    return EXIT_OK


def parse_command(settings: Settings, args: argparse.Namespace) -> int:
    raw = args.file.read_bytes()
    now = utc_now()
    out: dict[str, object] = {"file": str(args.file)}
    # read as a pass reads (helper process, time budget), decided by the same rules
    reading = read_one(raw, now, settings.limits)
    message, alert = reading.message, reading.alert
    if message is not None:
        out.update(message_id=message.message_id, subject=message.subject,
                   attachments=[{"filename": a.filename, "size": a.size,
                                 "content_type": a.content_type} for a in message.attachments])
    if alert is None:
        out.update(error="TokenMissing" if reading.no_token else "MessageError",
                   reason=reading.problem)
    else:
        out.update(title=alert.title, description=alert.description, token=alert.token.public())
    with directory_to_read(settings.database.url, settings.database.password) as db:
        decision = decide(reading, Store(db, settings.ates.local_organization),
                          settings.policy())
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
