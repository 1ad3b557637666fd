"""What `status` and `check` look at beyond the database's totals: the mailbox (mail waiting,
the quarantine), and each part `check` tries. Reads only, except `check`, which creates
missing folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import peewee

from poller.config import Settings
from poller.errors import MailboxError, StoreError
from poller.imap.mailbox import Mailbox
from poller.service.lock import PassLock
from poller.store import queries
from poller.store.database import open_database
from poller.store.schema import PassLog


@dataclass(frozen=True)
class MailboxState:
    """What the search finds in the watched folder (its UIDVALIDITY and the UIDs, decided or
    not) and the size of the quarantine; None if unknown, with the error."""

    uidvalidity: int | None = None
    uids: tuple[int, ...] = ()
    quarantine: int | None = None
    error: str = ""

    def waiting(self, folder: str) -> int | None:
        """Return how many of the UIDs the open database has no decision for."""
        if self.uidvalidity is None:
            return None
        return len(self.uids) - len(queries.decided(folder, self.uidvalidity, list(self.uids)))


@dataclass(frozen=True)
class Check:
    """The result of one part of `poller check`; part names the exit code."""

    part: str
    ok: bool
    detail: str


def mailbox_state(settings: Settings) -> MailboxState:
    """Connect once (no retries), search the watched folder and count the quarantine."""
    try:
        with Mailbox(settings.imap) as mailbox:
            uidvalidity = mailbox.select(settings.imap.folder, readonly=True)
            uids = mailbox.search(settings.imap.search)
            quarantine = mailbox.count(settings.mailbox.quarantine_folder)
    except MailboxError as exc:
        return MailboxState(error=str(exc))
    return MailboxState(uidvalidity, tuple(uids), quarantine)


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
