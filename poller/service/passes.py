"""A pass as `once` and `serve` run it: reconnect and carry on after transient IMAP failures,
then record the pass (pass_log, metrics, summary line).

The reconnect loop is a plain loop around poller.backoff rather than tenacity's Retrying: it
gives up on its own count (attempts in a row that decided nothing) and a cron pass that finds
nothing new should not pay for importing a retry library.

Carrying on is re-running the pass on a new connection: the processed-message log makes that
safe and cheap (decided mail is skipped, unfinished flag/move steps are finished), so a retry
never applies anything twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING

from poller.backoff import exponential
from poller.clock import utc_now
from poller.config import Settings
from poller.errors import (
    MailboxError,
    MailboxUnavailable,
    ReaderError,
    StoreError,
    StoreUnavailable,
)
from poller.imap.mailbox import Mailbox
from poller.service.pass_config import PassConfig
from poller.service.pass_result import PassResult
from poller.service.worker import Worker
from poller.store.database import open_database
from poller.store.lease import LeaseLost
from poller.store.store import Store

if TYPE_CHECKING:
    from poller.service.reader import Reader

logger = logging.getLogger("poller")

Sleep = Callable[[float], object]
Track = Callable[[Mailbox | None], None]


def open_store(settings: Settings, fence: tuple[str, int] | None = None) -> Store:
    """Open (and create if needed) the configured database; FENCE: the lease its pass
    transactions check (poller.store.lease)."""
    db = open_database(settings.database.url, settings.database.password)
    store = Store(db, settings.ates.local_organization)
    store.fence = fence
    with db.atomic() if fence is not None else nullcontext():
        store.check_fence()
        store.prepare(utc_now())
    return store


@contextmanager
def opened_store(settings: Settings) -> Iterator[Store]:
    """Yield the configured store, closed again on the way out."""
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def run_pass(settings: Settings, store: Store, stop: threading.Event, *,
             sleep: Sleep | None = None, track: Track | None = None,
             result: PassResult | None = None, reader: Reader | None = None) -> PassResult:
    """Run one pass, reconnecting after MailboxUnavailable with capped exponential back-off.

    Gives up (re-raising the last error) after [retry] attempts in a row that made no
    progress, or when STOP is set. TRACK is told the live connection, so that a shutdown can
    cut it; SLEEP waits between attempts (default: STOP.wait, so a stop cuts the wait short).
    Counts go to RESULT when given, so that they survive a failure. READER: the reading helper
    kept across passes (`serve`); without, a pass with new mail starts one.
    """
    policy = settings.retry
    config = PassConfig.of(settings)
    result = result if result is not None else PassResult()
    fruitless = 0  # failed attempts in a row that decided nothing
    while True:
        before = result.decided()
        try:
            with Mailbox(settings.imap) as mailbox:
                if track:
                    track(mailbox)
                Worker(config, mailbox, store, stop=stop, reader=reader).run_pass(result)
            return result
        except MailboxUnavailable as exc:
            error = exc
        finally:
            if track:
                track(None)
        fruitless = 1 if result.decided() > before else fruitless + 1
        if fruitless >= policy.attempts or stop.is_set():
            raise error
        wait = exponential(fruitless, policy.initial_wait, policy.max_wait)
        logger.warning("IMAP unavailable (%s); reconnecting in %.1fs and carrying on "
                       "(attempt %d of %d)", error, wait, fruitless + 1, policy.attempts)
        (sleep or stop.wait)(wait)


def recorded_pass(settings: Settings, stop: threading.Event, *, sleep: Sleep | None = None,
                  track: Track | None = None, reader: Reader | None = None,
                  fence: tuple[str, int] | None = None) -> PassResult:
    """Run a pass and record it: pass_log row, metrics textfile, one summary log line. FENCE:
    the mailbox's lease (PostgreSQL), checked by every transaction of the pass. A good pass
    ends by looking at the [[expect]] deadlines that passed.

    Raises MailboxError, ReaderError or StoreError when the pass failed; a pass cut short by
    STOP is returned with interrupted set.
    """
    store = open_store(settings, fence)
    started = utc_now()
    result = PassResult()
    try:
        try:
            _deadlines(settings, store, started, check=False)
            run_pass(settings, store, stop, sleep=sleep, track=track, result=result,
                     reader=reader)
            if not result.interrupted:
                _deadlines(settings, store, utc_now(), check=True)
        except (MailboxError, ReaderError) as exc:
            if not (stop.is_set() and isinstance(exc, MailboxUnavailable)):
                _record_failure(store, settings, started, result, str(exc))
                raise
            result.interrupted = True  # the shutdown cut the connection
        except StoreUnavailable:
            raise  # the database is failing: recording the failure in it would fail too
        except Exception as exc:
            _record_failure(store, settings, started, result,
                            f"unexpected error: {type(exc).__name__}: {exc}")
            raise
        finished = utc_now()
        result.seconds = (finished - started).total_seconds()
        # An interrupted pass still shows a working mailbox, so it counts as a good one.
        store.log_pass(settings.imap.name, started, finished, True, result.summary(),
                       "stopped before the end (shutdown)" if result.interrupted else "")
    except StoreError as exc:
        if isinstance(exc, LeaseLost):
            raise
        raise StoreError(f"database error: {exc}") from None
    finally:
        write_metrics(settings)
        store.close()
    details = []
    if result.pending:
        details.append(f"{result.pending} mail left for the next pass")
    if result.failing:
        details.append(f"{result.failing} mailbox steps still refused (see poller status)")
    if result.interrupted:
        details.append("stopped before the end; the rest is left for the next pass")
    logger.info("pass done in %.2fs: %s%s", result.seconds, result.summary(),
                "".join(f"; {d}" for d in details),
                extra={"pass": {"seconds": round(result.seconds, 3), "counts": dict(result.counts),
                                "pending": result.pending, "failing": result.failing,
                                "interrupted": result.interrupted}})
    return result


def _deadlines(settings: Settings, store: Store, now: datetime, check: bool) -> None:
    """Open the windows of [[expect]] entries loaded for the first time, or look at the
    deadlines that passed (APScheduler's cron is loaded only when there are entries)."""
    if not settings.expectations:
        return
    from poller.service import deadlines

    if check:
        deadlines.check_deadlines(settings, store, now)
    else:
        deadlines.open_windows(settings, store, now)


def _record_failure(store: Store, settings: Settings, started: datetime, result: PassResult,
                    error: str) -> None:
    """Log a failed pass in pass_log, as far as the database lets us (the error comes first)."""
    try:
        store.log_pass(settings.imap.name, started, utc_now(), False,
                       result.summary() if result.decided() else "", error)
    except StoreError as exc:
        logger.warning("could not record the failed pass in the database: %s", exc)


def write_metrics(settings: Settings) -> None:
    """Rewrite the metrics textfile, if one is configured, from the database."""
    path = settings.metrics.textfile
    if not path:
        return
    from poller.service import metrics  # prometheus_client is only needed with a textfile

    try:
        db = open_database(settings.database.url, settings.database.password)
        metrics.write_textfile(path, db, settings.imap.name,
                               tuple(entry.name for entry in settings.expectations))
    except (OSError, StoreError) as exc:
        logger.warning("could not write metrics to %s: %s", path, exc)
