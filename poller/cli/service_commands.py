"""The commands that work the mailbox: once, serve, check, status, requeue."""

from __future__ import annotations

import argparse
import json

from poller.cli.exits import (
    CHECK_EXIT,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_STALE,
    EXIT_UNAVAILABLE,
)
from poller.config import Settings
from poller.imap.mailbox import Mailbox
from poller.imap.requeue import requeue
from poller.service import health
from poller.service.lock import pass_lock
from poller.service.passes import recorded_pass
from poller.service.signals import Shutdown, SignalThread
from poller.service.worker import utc_now
from poller.store import queries
from poller.store.database import read_only_database
from poller.store.queries import PassRecord


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
    from poller.service.scheduler import serve  # APScheduler is only needed here

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
    # The database is read in two short looks, not held open while the server answers.
    with read_only_database(settings.database.url):
        totals = queries.totals()
    box = health.mailbox_state(settings) if args.mailbox else None
    waiting = None
    if box is not None and not box.error:
        with read_only_database(settings.database.url):
            waiting = box.waiting(settings.imap.folder)
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
            "waiting": waiting, "quarantine": box.quarantine if box else None,
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
            print(f"mail waiting:     {unknown if waiting is None else waiting}")
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


def _pass_json(record: PassRecord | None) -> dict[str, object] | None:
    if record is None:
        return None
    return {"started": record.started.isoformat(), "finished": record.finished.isoformat(),
            "seconds": record.seconds, "ok": record.ok, "counts": record.counts,
            "error": record.error}
