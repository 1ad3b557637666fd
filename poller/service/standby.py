"""One active instance per mailbox on PostgreSQL, the others standing by (poller.store.lease):
`serve` keeps the lease in a thread of its own (a heartbeat while active, a try every few
seconds while standing by); `once` takes it for its pass, or leaves the mailbox to the
instance that serves it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from poller.clock import utc_now
from poller.config import Settings
from poller.errors import StoreError
from poller.store.database import open_database
from poller.store.engine import is_postgres
from poller.store.lease import HEARTBEAT_SECONDS, STANDBY_POLL_SECONDS, MailboxLease

logger = logging.getLogger("poller")


def uses_lease(settings: Settings) -> bool:
    """Return whether the mailbox is kept by a lease in the database (PostgreSQL) rather than
    by a lock file."""
    return is_postgres(settings.database.url)


def new_lease(settings: Settings) -> MailboxLease:
    """Return the (not yet taken) lease of the configured mailbox; its tables are made first."""
    open_database(settings.database.url, settings.database.password).close()
    return MailboxLease(settings.database.url, settings.database.password, settings.imap.name)


class LeaseKeeper:
    """`serve`'s lease thread: while active, a heartbeat every few seconds (a lost lock makes
    this instance a standby); while standing by, a try every few seconds, and ON_ACTIVE when
    the lock is taken."""

    def __init__(self, lease: MailboxLease, stop: threading.Event,
                 on_active: Callable[[], None]):
        self.lease = lease
        self._stop = stop
        self._on_active = on_active
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self.lease.release()

    def active(self) -> bool:
        return self.lease.epoch is not None

    def _run(self) -> None:
        announced = False
        since = utc_now()
        while not self._stop.is_set():
            if self.lease.epoch is not None:
                if not self.lease.still_held():
                    logger.error("lost the lock of mailbox %s (the database ended its "
                                 "session); standing by", self.lease.mailbox)
                    announced, since = False, utc_now()
                    continue
                self._stop.wait(HEARTBEAT_SECONDS)
                continue
            try:
                if self.lease.try_acquire():
                    logger.info("active: serving mailbox %s (epoch %d)", self.lease.mailbox,
                                self.lease.epoch)
                    self._on_active()
                    continue
                if not announced:
                    holder = self.lease.holder()
                    logger.info("standby: mailbox %s is served by %s", self.lease.mailbox,
                                holder.describe() if holder else "another instance")
                    announced = True
                self.lease.note_standby(since)
            except StoreError as exc:
                logger.warning("%s; trying again in %.0fs", exc, STANDBY_POLL_SECONDS)
            self._stop.wait(STANDBY_POLL_SECONDS)


@contextmanager
def held_mailbox(settings: Settings, stop: threading.Event) -> Iterator[MailboxLease | None]:
    """For `once`: hold the mailbox's lease for the block (waiting up to [schedule] lock_wait
    seconds), with a heartbeat; yield None, after saying who serves it, when another instance
    holds it."""
    lease = new_lease(settings)
    waited = 0.0
    while not lease.try_acquire():
        if stop.is_set() or waited >= settings.schedule.lock_wait:
            holder = lease.holder()
            logger.info("mailbox %s is served by %s%s; not starting a pass", lease.mailbox,
                        holder.describe() if holder else "another instance",
                        f" since {holder.since.isoformat()}" if holder else "")
            lease.release()
            yield None
            return
        stop.wait(STANDBY_POLL_SECONDS)
        waited += STANDBY_POLL_SECONDS
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            if not lease.still_held():
                logger.error("lost the lock of mailbox %s; the pass commits nothing more",
                             lease.mailbox)
                return

    heart = threading.Thread(target=beat, name="lease", daemon=True)
    heart.start()
    try:
        yield lease
    finally:
        done.set()
        heart.join(HEARTBEAT_SECONDS + 5)
        lease.release()
