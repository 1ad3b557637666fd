"""What `status`, `check` and the metrics report: pass history and totals from the database,
and a look at the mailbox. Reads only, except `check`, which creates missing folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import peewee
from peewee import fn

from poller.config import Settings
from poller.errors import MailboxError, StoreError
from poller.lock import PassLock
from poller.mailbox import Mailbox
from poller.models import STATUS_COMPLETE, PassLog, ProcessedMessage, Ticket
from poller.rules import Outcome
from poller.store import Store, open_database


@dataclass(frozen=True)
class PassRecord:
    """One row of pass_log."""

    started: datetime
    finished: datetime
    seconds: float
    ok: bool
    counts: str
    error: str


@dataclass(frozen=True)
class Totals:
    """Everything counted from the database: passes, mails by outcome, open work."""

    passes_ok: int
    passes_failed: int
    mails: dict[str, int]
    open_tickets: int
    pending_steps: int
    last_pass: PassRecord | None
    last_good_pass: PassRecord | None


@dataclass(frozen=True)
class MailboxState:
    """Mail waiting in the watched folder and the size of the quarantine; None if unknown."""

    waiting: int | None = None
    quarantine: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Check:
    """The result of one part of `poller check`; part names the exit code."""

    part: str
    ok: bool
    detail: str


def totals() -> Totals:
    """Return the totals of the open database."""
    passes = dict(PassLog.select(PassLog.ok, fn.COUNT(PassLog.id)).group_by(PassLog.ok).tuples())
    by_outcome = dict(ProcessedMessage.select(ProcessedMessage.outcome, fn.COUNT(
        ProcessedMessage.id)).group_by(ProcessedMessage.outcome).tuples())
    return Totals(
        passes_ok=passes.get(True, 0),
        passes_failed=passes.get(False, 0),
        mails={outcome.value: by_outcome.get(outcome.value, 0) for outcome in Outcome},
        open_tickets=Ticket.select().where(Ticket.status != STATUS_COMPLETE).count(),
        pending_steps=ProcessedMessage.select().where(
            ProcessedMessage.mailbox_done == False).count(),  # noqa: E712
        last_pass=_pass(PassLog.select().order_by(PassLog.id.desc()).first()),
        last_good_pass=_pass(PassLog.select().where(PassLog.ok == True)  # noqa: E712
                             .order_by(PassLog.id.desc()).first()),
    )


def _pass(row: PassLog | None) -> PassRecord | None:
    if row is None:
        return None
    return PassRecord(started=datetime.fromisoformat(row.started),
                      finished=datetime.fromisoformat(row.finished), seconds=float(row.seconds),
                      ok=bool(row.ok), counts=row.counts, error=row.error)


def mailbox_state(settings: Settings, store: Store) -> MailboxState:
    """Connect once (no retries) and count waiting and quarantined mail."""
    folder = settings.imap.folder
    try:
        with Mailbox(settings.imap) as mailbox:
            uidvalidity = mailbox.select(folder, readonly=True)
            uids = mailbox.search(settings.imap.search)
            decided = store.decided(folder, uidvalidity, uids)
            quarantine = mailbox.count(settings.mailbox.quarantine_folder)
    except MailboxError as exc:
        return MailboxState(error=str(exc))
    return MailboxState(waiting=len(uids) - len(decided), quarantine=quarantine)


def check_database(settings: Settings) -> Check:
    """Open the database and make sure it takes a write (rolled back)."""
    try:
        db = open_database(settings.database.url)
        try:
            with db.atomic() as transaction:
                PassLog.insert(started="", finished="", seconds="0", ok=False).execute()
                transaction.rollback()
        finally:
            db.close()
    except StoreError as exc:
        return Check("database", False, str(exc))
    except peewee.PeeweeException as exc:
        return Check("database", False, f"cannot write to {settings.database.url}: {exc}")
    return Check("database", True, f"{settings.database.url} is writable")


def check_files(settings: Settings) -> list[Check]:
    """Check the lock file can be taken and the metrics textfile's folder is writable."""
    checks = []
    lock = PassLock(settings.schedule.lock_file)
    try:
        if lock.acquire(0):
            lock.release()
            checks.append(Check("files", True, f"lock file {lock.path} can be taken"))
        else:
            holder = lock.holder()
            checks.append(Check("files", True, f"lock file {lock.path} is held"
                                f"{f' by {holder}' if holder else ''}: a pass is running"))
    except StoreError as exc:
        checks.append(Check("files", False, str(exc)))
    if settings.metrics.textfile:
        folder = Path(settings.metrics.textfile).parent
        writable = folder.is_dir() and os.access(folder, os.W_OK)
        checks.append(Check("files", writable, f"metrics folder {folder} "
                            f"{'is writable' if writable else 'is missing or not writable'}"))
    return checks


def check_mailbox(settings: Settings) -> list[Check]:
    """Connect and log in, select the watched folder, create missing target folders."""
    s = settings.imap
    where = f"{s.host}:{s.port} ({s.security})"
    try:
        mailbox = Mailbox(s)
        mailbox.connect()
    except MailboxError as exc:
        return [Check("imap", False, str(exc))]
    checks = []
    try:
        idle = "offers IDLE" if mailbox.has_capability("IDLE") else "does not offer IDLE"
        checks.append(Check("imap", True, f"logged in to {where} as {s.username}; the server "
                            f"{idle}"))
        mailbox.select(s.folder, readonly=True)
        checks.append(Check("folders", True, f"{s.folder!r} can be selected"))
        for folder in _target_folders(settings):
            mailbox.ensure_folder(folder)
            checks.append(Check("folders", True, f"{folder!r} exists"))
    except MailboxError as exc:
        part = "imap" if len(checks) == 0 else "folders"
        checks.append(Check(part, False, str(exc)))
    finally:
        mailbox.close()
    return checks


def _target_folders(settings: Settings) -> list[str]:
    m = settings.mailbox
    folders = [m.quarantine_folder]
    if m.on_success == "move":
        folders.append(m.processed_folder)
    if m.on_no_token == "move":
        folders.append(m.no_token_folder)
    return folders
