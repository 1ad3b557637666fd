"""What `status` and `check` look at beyond the database's totals: the mailbox (mail waiting,
the quarantine), and each part `check` tries. Reads only, except `check`, which creates
missing folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poller.config import Settings
from poller.errors import (
    MailboxError,
    MailboxUnavailable,
    StoreError,
    StoreUnavailable,
    WebhookError,
)
from poller.imap import oauth2
from poller.imap.mailbox import Mailbox
from poller.paths import masked_database_url
from poller.service.lock import PassLock
from poller.service.standby import uses_lease
from poller.service.webhooks import ping
from poller.store.database import open_database, takes_a_write
from poller.store.engine import Engine
from poller.store.lease import active_instance
from poller.store.readonly import read_only_database
from poller.store.store import decided


@dataclass(frozen=True)
class MailboxState:
    """What the search finds in the watched folder (its UIDVALIDITY and the UIDs, decided or
    not), the mail there flagged \\Deleted (moved away by a server without UIDPLUS, see
    Mailbox.move) and the size of the quarantine; None if unknown, with the error."""

    uidvalidity: int | None = None
    uids: tuple[int, ...] = ()
    deleted: int | None = None
    quarantine: int | None = None
    error: str = ""

    def waiting(self, db: Engine, mailbox: str, folder: str) -> int | None:
        """Return how many of the UIDs the database has no decision for (of mailbox, its
        [imap] name)."""
        if self.uidvalidity is None:
            return None
        return len(self.uids) - len(decided(db, mailbox, folder, self.uidvalidity,
                                                    list(self.uids)))


@dataclass(frozen=True)
class Check:
    """The result of one part of `poller check`; part names the exit code."""

    part: str
    ok: bool
    detail: str


def mailbox_state(settings: Settings) -> MailboxState:
    """Connect once (no retries), search the watched folder, count the mail left flagged
    \\Deleted there and the quarantine."""
    try:
        with Mailbox(settings.imap) as mailbox:
            uidvalidity = mailbox.select(settings.imap.folder, readonly=True)
            uids = mailbox.search(settings.imap.search)
            deleted = mailbox.deleted()
            quarantine = mailbox.count(settings.mailbox.quarantine_folder)
    except MailboxError as exc:
        return MailboxState(error=str(exc))
    return MailboxState(uidvalidity, tuple(uids), deleted, quarantine)


def check_database(settings: Settings) -> Check:
    """Open the database and make sure it takes a write (rolled back)."""
    shown = masked_database_url(settings.database.url)
    try:
        db = open_database(settings.database.url, settings.database.password)
        try:
            takes_a_write(db)
        finally:
            db.close()
    except StoreUnavailable as exc:
        return Check("database", False, f"cannot write to {shown}: {exc}")
    except StoreError as exc:
        return Check("database", False, str(exc))
    return Check("database", True, f"{shown} is writable")


def check_files(settings: Settings) -> list[Check]:
    """Check the lock file can be taken (PostgreSQL: say who serves the mailbox instead) and
    the metrics textfile's folder is writable."""
    checks = []
    lock = PassLock(settings.schedule.lock_file)
    try:
        if uses_lease(settings):
            checks.append(Check("files", True, _served(settings)))
        elif lock.acquire(0):
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


def _served(settings: Settings) -> str:
    """Return who serves the mailbox, as the database's lease tells."""
    with read_only_database(settings.database.url, settings.database.password) as db:
        active = active_instance(db, settings.imap.name)
    return "the mailbox lock is kept in the database; " + (
        f"mailbox {settings.imap.name} is served by {active.describe()} since "
        f"{active.since.isoformat()}" if active else "no instance has served the mailbox yet")


def check_mailbox(settings: Settings) -> list[Check]:
    """Get an OAuth2 token (with auth = xoauth2 | oauthbearer), connect and log in, select the
    watched folder, create missing target folders: every folder is checked, each with the name
    it has on the server."""
    s = settings.imap
    where = f"{s.host}:{s.port} ({s.security})"
    checks = []
    if s.oauth2 is not None:
        try:
            tokens = oauth2.tokens_for(s)
            tokens.get()
        except MailboxError as exc:
            return [Check("oauth2", False, str(exc))]
        checks.append(Check("oauth2", True, f"got a token for {s.username} from the "
                            f"{s.oauth2.provider} token endpoint ({s.oauth2.endpoint}), valid "
                            f"for {tokens.valid_for() / 60:.0f} min"))
    try:
        mailbox = Mailbox(s)
        mailbox.connect()
    except MailboxError as exc:
        return [*checks, Check("imap", False, str(exc))]
    how = f" with {s.auth.upper()}" if s.auth != "password" else ""
    try:
        idle = "offers IDLE" if mailbox.has_capability("IDLE") else "does not offer IDLE"
        checks.append(Check("imap", True, f"logged in to {where} as {s.username}{how}; the "
                            f"server {idle}"))
        checks.append(_folder_check(mailbox, s.folder, "can be selected",
                                    lambda: mailbox.select(s.folder, readonly=True)))
        for folder in settings.target_folders():
            checks.append(_folder_check(mailbox, folder, "exists",
                                        lambda folder=folder: mailbox.ensure_folder(folder)))
    except MailboxError as exc:  # the connection itself failed
        checks.append(Check("imap", False, str(exc)))
    finally:
        mailbox.close()
    return checks


def _folder_check(mailbox: Mailbox, folder: str, done: str, attempt: Callable[[], object]
                  ) -> Check:
    """Return the check of one folder; raise MailboxUnavailable when the connection fails."""
    try:
        name = mailbox.server_name(folder)
        attempt()
    except MailboxUnavailable:
        raise
    except MailboxError as exc:
        return Check("folders", False, str(exc))  # it names the folder, as written and mapped
    shown = repr(folder) if name == folder else f"{folder!r} → {name!r}"
    return Check("folders", True, f"{shown} {done}")


def check_webhook(settings: Settings, ping_it: bool = False) -> list[Check]:
    """Say where events go; with ping_it, post a signed ping and report the answer."""
    hook = settings.webhook
    if not hook.url:
        return []
    checks = [Check("webhook", True, f"events {', '.join(hook.events)} go to {hook.shown_url()}, "
                                     "signed with the secret")]
    if ping_it:
        try:
            status = ping(hook)
        except WebhookError as exc:
            checks.append(Check("webhook", False, f"the ping was not taken: {exc}"))
        else:
            checks.append(Check("webhook", True, f"the receiver answered {status} to a signed "
                                                 "ping"))
    return checks
