"""Who serves a mailbox when instances on several machines run it (PostgreSQL): the holder of
an advisory lock, on a session of its own, recorded with an epoch in mailbox_lease.

The lock goes with its session: a holder killed or crashed loses it at once (the server sees the
connection close); one frozen or cut off loses it when the server ends its session
(idle_session_timeout, which the heartbeat keeps from striking a live holder, and
tcp_user_timeout for a peer that stopped acknowledging). A holder that wakes up after that may
still have a pass in hand: every transaction of a pass first checks (FOR SHARE) that the
lease's epoch is still its own (fence), so it commits nothing once another instance took over,
and a take-over waits for a transaction that passed the check to end.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from poller.clock import utc_now
from poller.errors import StoreError, StoreUnavailable
from poller.store.database import iso
from poller.store.engine import Engine, PostgresEngine, connect, postgres_engine, reason

HEARTBEAT_SECONDS = 5.0  # the active instance checks it still holds the lock
STANDBY_POLL_SECONDS = 2.0  # a standby tries to take the lock
STANDBY_FRESH = timedelta(seconds=30)  # `status` lists standbys seen this recently
# The lock session's server-side limits: an idle session (a frozen holder sends no heartbeat)
# ends after 20 s, and so does one whose peer stops acknowledging (host gone, network cut).
_SECONDS = 20
LOCK_SESSION = {
    "options": f"-c idle_session_timeout={_SECONDS}s -c tcp_keepalives_idle=5 "
               f"-c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 "
               f"-c tcp_user_timeout={_SECONDS * 1000}",
    "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
    "tcp_user_timeout": _SECONDS * 1000,
}


class LeaseLost(StoreUnavailable):
    """Another instance took the mailbox over: this one commits nothing more and stands by."""


@dataclass(frozen=True)
class Instance:
    """An instance of the worker: where it runs and since when it has its role."""

    host: str
    pid: int
    since: datetime
    seen: datetime | None = None  # its last heartbeat (a standby: when it last tried)

    def describe(self) -> str:
        return f"{self.host} pid {self.pid}"


def me() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def _key(mailbox: str) -> str:
    return f"ates-poller mailbox {mailbox}"


class MailboxLease:
    """The lock of one mailbox, taken and kept on a session of its own."""

    def __init__(self, url: str, password: str | None, mailbox: str):
        self.mailbox = mailbox
        self.epoch: int | None = None  # set while this instance holds the lock
        # one session, whichever thread (the keeper's, or once's heartbeat) uses it
        self._db: PostgresEngine = postgres_engine(url, password, autoconnect=False,
                                                   thread_safe=False, **LOCK_SESSION)

    def fence(self) -> tuple[str, int] | None:
        """Return (mailbox, epoch) for a pass's transactions to check; None unless held."""
        return None if self.epoch is None else (self.mailbox, self.epoch)

    def try_acquire(self) -> bool:
        """Take the lock if no instance holds it; return whether this instance holds it."""
        if self.epoch is not None:
            return True
        try:
            connect(self._db)
            got = self._db.sql("SELECT pg_try_advisory_lock(hashtextextended(?, 0))",
                               (_key(self.mailbox),)).fetchone()[0]
            if not got:
                return False
            host, pid = me()
            stamp = iso(utc_now())
            self.epoch = self._db.sql(
                "INSERT INTO mailbox_lease (mailbox, epoch, host, pid, since, heartbeat) "
                "VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (mailbox) DO UPDATE SET "
                "epoch = mailbox_lease.epoch + 1, host = excluded.host, pid = excluded.pid, "
                "since = excluded.since, heartbeat = excluded.heartbeat RETURNING epoch",
                (self.mailbox, host, pid, stamp, stamp)).fetchone()[0]
            self._db.sql("DELETE FROM mailbox_standby WHERE mailbox = ? AND host = ? AND pid = ?",
                         (self.mailbox, host, pid))
            return True
        except peewee.PeeweeException as exc:
            self._drop()
            raise StoreError(f"cannot take the lock of mailbox {self.mailbox}: "
                             f"{reason(exc)}") from None

    def still_held(self) -> bool:
        """Heartbeat: return whether this instance still holds the lock (its session may have
        been ended by the server; a new session would not hold it)."""
        if self.epoch is None:
            return False
        try:
            held = self._db.sql(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND "
                "pid = pg_backend_pid() AND granted)").fetchone()[0]
            if held:
                self._db.sql("UPDATE mailbox_lease SET heartbeat = ? WHERE mailbox = ? AND "
                             "epoch = ?", (iso(utc_now()), self.mailbox, self.epoch))
                return True
        except peewee.PeeweeException:
            pass
        self._drop()
        return False

    def note_standby(self, since: datetime) -> None:
        """Record that this instance stands by (for `status`)."""
        host, pid = me()
        try:
            connect(self._db)
            self._db.sql(
                "INSERT INTO mailbox_standby (mailbox, host, pid, since, seen) VALUES "
                "(?, ?, ?, ?, ?) ON CONFLICT (mailbox, host, pid) DO UPDATE SET seen = "
                "excluded.seen", (self.mailbox, host, pid, iso(since), iso(utc_now())))
        except peewee.PeeweeException:
            self._drop()

    def holder(self) -> Instance | None:
        """Return the instance that holds the lock as mailbox_lease tells, None if unknown."""
        try:
            connect(self._db)
            return active_instance(self._db, self.mailbox)
        except (peewee.PeeweeException, StoreError):
            self._drop()
            return None

    def release(self) -> None:
        """Let go of the lock (ending the session ends it) and forget the connection."""
        if self.epoch is not None:
            try:
                self._db.sql("DELETE FROM mailbox_standby WHERE mailbox = ? AND pid = ? AND "
                             "host = ?", (self.mailbox, me()[1], me()[0]))
            except peewee.PeeweeException:
                pass
        self._drop()

    def _drop(self) -> None:
        self.epoch = None
        try:
            self._db.close()
        except peewee.PeeweeException:
            pass


def check_fence(db: Engine, fence: tuple[str, int]) -> None:
    """In the caller's transaction: raise LeaseLost unless the lease still has this epoch, and
    keep it (FOR SHARE) until the transaction ends."""
    if not db.sql("SELECT 1 FROM mailbox_lease WHERE mailbox = ? AND epoch = ? FOR SHARE",
                  fence).fetchall():
        raise LeaseLost(f"another instance took mailbox {fence[0]} over; this one stops its "
                        "pass and stands by")


def active_instance(db: Engine, mailbox: str) -> Instance | None:
    """Return the instance mailbox_lease names for mailbox (SQLite: none)."""
    if db.dialect == "sqlite":
        return None  # one machine: the lock file is the lease
    row = db.sql("SELECT host, pid, since, heartbeat FROM mailbox_lease WHERE mailbox = ?",
                 (mailbox,)).fetchone()
    return None if row is None else Instance(row[0], row[1], datetime.fromisoformat(row[2]),
                                             datetime.fromisoformat(row[3]))


def standbys(db: Engine, mailbox: str, now: datetime) -> list[Instance]:
    """Return the standbys of mailbox seen lately, oldest first."""
    if db.dialect == "sqlite":
        return []
    rows = db.sql("SELECT host, pid, since, seen FROM mailbox_standby WHERE mailbox = ? AND "
                  "seen >= ? ORDER BY since", (mailbox, iso(now - STANDBY_FRESH))).fetchall()
    return [Instance(host, pid, datetime.fromisoformat(since), datetime.fromisoformat(seen))
            for host, pid, since, seen in rows]
