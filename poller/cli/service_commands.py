"""The commands that look at the mailbox and the store: check, status, requeue."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from poller.cli.exits import (
    CHECK_EXIT,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_STALE,
    EXIT_UNAVAILABLE,
)
from poller.clock import utc_now
from poller.config import Settings
from poller.imap.mailbox import Mailbox
from poller.imap.requeue import requeue
from poller.service import health
from poller.store import expected, queries
from poller.store.lease import Instance, active_instance, standbys
from poller.store.queries import PassRecord
from poller.store.readonly import read_only_database


def check_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.webhook_ping and not settings.webhook.url:
        print("poller: --webhook-ping: no [webhook] url is set", file=sys.stderr)
        return EXIT_CONFIG
    print(f"# effective settings from {settings.source} and the environment (secrets masked), "
          "each with the line or variable it came from")
    for section, values in settings.redacted().items():
        print(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                shown = "true" if value else "false"
            elif isinstance(value, tuple):
                shown = ", ".join(value)
            else:
                shown = "" if value is None else value
            print(f"{key} = {shown}    ({settings.origin(section, key)})")
        print()
    checks = [health.check_database(settings), *health.check_files(settings),
              *health.check_mailbox(settings)]
    checks += health.check_webhook(settings, ping_it=args.webhook_ping)
    for item in checks:
        print(f"{item.part:<9} {'ok' if item.ok else 'FAILED':<6} {item.detail}")
    failed = [item for item in checks if not item.ok]
    return CHECK_EXIT[failed[0].part] if failed else EXIT_OK


def status_command(settings: Settings, args: argparse.Namespace) -> int:
    max_age = args.max_age if args.max_age is not None else settings.status.max_age
    # The database is read in two short looks, not held open while the server answers.
    with read_only_database(settings.database.url, settings.database.password) as db:
        totals = queries.totals(db, settings.imap.name)
        active = active_instance(db, settings.imap.name)
        waiting_instances = standbys(db, settings.imap.name, utc_now())
    box = health.mailbox_state(settings) if args.mailbox else None
    waiting = None
    if box is not None and not box.error:
        with read_only_database(settings.database.url, settings.database.password) as db:
            waiting = box.waiting(db, settings.imap.name, settings.imap.folder)
    now = utc_now()
    good = totals.last_good_pass
    age = (now - good.finished).total_seconds() if good else None
    stale = age is None or age > max_age
    oldest = None if totals.oldest_undelivered is None else \
        (now - totals.oldest_undelivered).total_seconds()
    last = totals.last_pass
    awaited = _expected(settings, now)
    if args.json:
        print(json.dumps({
            "mailbox": settings.imap.name,
            "last_pass": _pass_json(last), "last_good_pass": _pass_json(good),
            "last_good_pass_age_seconds": None if age is None else round(age),
            "max_age_seconds": max_age, "stale": stale,
            "waiting": waiting, "deleted": box.deleted if box else None,
            "quarantine": box.quarantine if box else None,
            "mailbox_error": box.error if box else None, "open_tickets": totals.open_tickets,
            "pending_mailbox_steps": totals.pending_steps,
            "failing_mailbox_steps": totals.failing_steps, "step_error": totals.step_error or None,
            "passes_ok": totals.passes_ok,
            "passes_failed": totals.passes_failed, "mails": totals.mails,
            "undelivered_events": totals.undelivered_events,
            "active_instance": _instance_json(active),
            "standbys": [_instance_json(i) for i in waiting_instances],
            "oldest_undelivered_age_seconds": None if oldest is None else round(oldest),
            "expected": awaited,
            "rejected_events": totals.rejected_events,
        }, indent=2))
    else:
        print(f"mailbox:          {settings.imap.name}")
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
            print(f"mail waiting:     {unknown if waiting is None else waiting}")
            if box.deleted:
                print(f"flagged deleted:  {box.deleted} (not expunged: what a server without "
                      "MOVE and UIDPLUS keeps of moved mail)")
            print(f"quarantine:       {unknown if box.quarantine is None else box.quarantine}")
        if active is not None:
            print(f"active instance:  {active.describe()} since {active.since.isoformat()}"
                  + _heartbeat(active, now))
            print("standbys:         " + (", ".join(
                f"{i.describe()} since {i.since.isoformat()}" for i in waiting_instances)
                or "none seen lately"))
        print(f"open tickets:     {totals.open_tickets}")
        print(f"pending steps:    {totals.pending_steps}")
        print(f"webhook events:   {totals.undelivered_events} undelivered" +
              ("" if oldest is None else f", the oldest {oldest:.0f}s old") +
              (f"; REJECTED: {totals.rejected_events} (poller outbox --status rejected)"
               if totals.rejected_events else ""))
        for entry in awaited:
            print(f"expected mail:    {entry['name']}: last arrived "
                  f"{entry['last_arrival'] or 'never'}, next deadline {entry['next_deadline']}"
                  + (f", ticket {entry['open_ticket']} open" if entry["open_ticket"] else ""))
        if totals.failing_steps:
            print(f"FAILING steps:    {totals.failing_steps} refused by the server "
                  f"(latest: {totals.step_error})")
    if stale:
        return EXIT_STALE
    if box is not None and box.error:
        return EXIT_UNAVAILABLE
    return EXIT_PENDING if totals.failing_steps else EXIT_OK


def _expected(settings: Settings, now: datetime) -> list[dict[str, object]]:
    """Each [[expect]] entry: its last arrival, next deadline, misses and open ticket."""
    if not settings.expectations:
        return []
    with read_only_database(settings.database.url, settings.database.password) as db:
        windows = {entry.name: expected.window(db, entry.name)
                   for entry in settings.expectations
                   } if "expected_mail" in db.get_tables() else {}  # none before [[expect]]
    out = []
    for entry in settings.expectations:
        window = windows.get(entry.name)
        from poller.service.deadlines import next_deadline  # APScheduler: with entries only

        deadline = next_deadline(entry, settings.rules.timezone, now)
        out.append({"name": entry.name,
                    "last_arrival": window.last_arrival.isoformat() if window and
                    window.last_arrival else None,
                    "next_deadline": deadline.isoformat() if deadline else None,
                    "misses": window.misses if window else 0,
                    "open_ticket": window.ticket if window else None})
    return out


def requeue_command(settings: Settings, args: argparse.Namespace) -> int:
    with Mailbox(settings.imap) as mailbox:
        done = requeue(mailbox, settings.mailbox.quarantine_folder, settings.imap.folder,
                       settings.mailbox.keyword, None if args.all else args.message_ids)
    print(f"requeued {len(done.moved)} mail from {settings.mailbox.quarantine_folder!r} to "
          f"{settings.imap.folder!r}; the next pass processes them")
    for message_id in done.missing:
        print(f"not in the quarantine: {message_id}")
    return EXIT_CONFIG if done.missing else EXIT_OK


def _heartbeat(instance: Instance, now: datetime) -> str:
    if instance.seen is None:
        return ""
    return f", last heartbeat {(now - instance.seen).total_seconds():.0f}s ago"


def _instance_json(instance: Instance | None) -> dict[str, object] | None:
    if instance is None:
        return None
    return {"host": instance.host, "pid": instance.pid, "since": instance.since.isoformat(),
            "last_seen": None if instance.seen is None else instance.seen.isoformat()}


def _pass_json(record: PassRecord | None) -> dict[str, object] | None:
    if record is None:
        return None
    return {"started": record.started.isoformat(), "finished": record.finished.isoformat(),
            "seconds": record.seconds, "ok": record.ok, "counts": record.counts,
            "error": record.error}
