"""Delivering the outbox: after each pass of `once` and `serve`, and at once after a technician
completes a ticket.

A run takes the events not delivered yet in the order they happened and posts each one that is
due. A 2xx answer marks it delivered; anything else leaves it in the outbox with its attempt
counted and a capped exponential back-off (poller.backoff) before the next. After
[webhook] max_attempts refusals (other than 408, 425 and 429, which say "later") the event is
rejected: kept, no longer tried, no longer holding up its ticket. An event waits while an
earlier event of its ticket waits, so a receiver gets the events of a ticket in order. A
receiver that cannot be reached (or does not answer in time) ends the run: the rest waits for
the next one; so does the run's budget ([webhook] budget, for `once` and `ticket complete`)
and a stop request, which cuts the post in flight. Runs of different processes are kept apart
by one lock file per database (PostgreSQL: a lock in the database, for every machine), so two
never post the same ticket's events out of order.

`serve` delivers in a thread of its own (Deliverer), so a slow or absent receiver never holds a
pass up, and tries a failed event again as soon as its back-off ends; `once` tries it again
after a later pass. The mail side never waits for, or fails because of, a receiver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from poller.backoff import exponential
from poller.clock import Clock, utc_now
from poller.config import Settings
from poller.config.service import outbox_lock_file
from poller.config.webhook import WebhookSettings
from poller.errors import StoreError, WebhookError, WebhookRefused, WebhookUnreachable
from poller.service.lock import POLL_SECONDS, PassLock
from poller.service.passes import write_metrics
from poller.service.standby import uses_lease
from poller.service.webhooks import post
from poller.store import outbox
from poller.store.database import open_database
from poller.store.engine import Engine

logger = logging.getLogger("poller.webhook")

# Refusals that say "not now" rather than "never": they never make an event rejected.
LATER = frozenset({408, 425, 429})


@dataclass
class DeliveryRun:
    """What one run did: the ids of the events delivered, attempts that failed, events left in
    the outbox. busy is True when another process was delivering and this run left it to that
    one."""

    delivered: list[str] = field(default_factory=list)
    failed: int = 0
    left: int = 0
    busy: bool = False
    retry_at: datetime | None = None  # when the first event waiting out its back-off is due
    rejected: int = 0
    pruned: int = 0


def back_off(hook: WebhookSettings, attempts: int) -> float:
    """Return the seconds to wait after an event's attempts-th failed attempt."""
    return exponential(attempts, hook.initial_wait, hook.max_wait)


def outbox_lock(settings: Settings) -> Path:
    """Return the lock file that keeps delivery runs of several processes apart: one per
    database, whichever mailbox a process polls."""
    return Path(outbox_lock_file(settings.database.url))


def deliver_pending(settings: Settings, stop: threading.Event | None = None,
                    clock: Clock = utc_now, budget: float | None = None) -> DeliveryRun:
    """Post the due events of the outbox, within budget seconds if given (the rest waits for
    the next run); never raises for the receiver or the database (it logs them): the events
    stay and the next run tries again."""
    hook = settings.webhook
    if not hook.url:
        return DeliveryRun()
    stop = stop or threading.Event()
    try:
        if uses_lease(settings):
            return _deliver_coordinated(settings, stop, clock, budget)
        lock = PassLock(outbox_lock(settings))
        if not lock.acquire(settings.schedule.lock_wait, stop):
            logger.info("another process is delivering webhook events; leaving them to it")
            return DeliveryRun(busy=True)
        try:
            db = open_database(settings.database.url, settings.database.password)
            try:
                ends = None if budget is None else time.monotonic() + budget
                run = _deliver(db, hook, stop, clock, ends)
                if run.delivered or run.failed or run.rejected or run.pruned:
                    write_metrics(settings)
                return run
            finally:
                db.close()
        finally:
            lock.release()
    except StoreError as exc:
        logger.error("webhook events not delivered: %s; the next run tries again", exc)
        return DeliveryRun()


def _deliver_coordinated(settings: Settings, stop: threading.Event, clock: Clock,
                         budget: float | None) -> DeliveryRun:
    """PostgreSQL: one deliverer per database, on any machine, by a lock in the database (it
    goes with the session, however the process ends)."""
    db = open_database(settings.database.url, settings.database.password)
    try:
        waited = 0.0
        while not outbox.lock_delivery(db):
            if stop.is_set() or waited >= settings.schedule.lock_wait:
                logger.info("another instance is delivering webhook events; leaving them to it")
                return DeliveryRun(busy=True)
            stop.wait(POLL_SECONDS)
            waited += POLL_SECONDS
        try:
            ends = None if budget is None else time.monotonic() + budget
            run = _deliver(db, settings.webhook, stop, clock, ends)
            if run.delivered or run.failed or run.rejected or run.pruned:
                write_metrics(settings)
            return run
        finally:
            outbox.unlock_delivery(db)
    finally:
        db.close()


def _deliver(db: Engine, hook: WebhookSettings, stop: threading.Event,
             clock: Clock, ends: float | None) -> DeliveryRun:
    run = DeliveryRun(pruned=outbox.prune(db, clock() - timedelta(days=hook.keep_days)))
    pending = outbox.undelivered(db)
    waiting: set[str] = set()  # tickets with an earlier event still in the outbox
    for item in pending:
        left = None if ends is None else ends - time.monotonic()
        if stop.is_set() or (left is not None and left <= 0):
            if left is not None and left <= 0:
                logger.info("webhook: the run's budget of %gs is spent; the other events wait "
                            "for the next run", hook.budget)
            break
        if item.ticket_number in waiting:
            continue
        if item.next_attempt > clock():
            waiting.add(item.ticket_number)
            run.retry_at = min(run.retry_at or item.next_attempt, item.next_attempt)
            continue
        try:
            post(hook, item.delivery_id, item.event, outbox.body(db, item.row_id), stop, left)
        except WebhookError as exc:
            spent = ends is not None and time.monotonic() >= ends
            if stop.is_set() or (spent and isinstance(exc, WebhookUnreachable)):
                # cut, not failed: the same event, same id, is posted again later
                logger.info("webhook: the post of event %s was cut by %s; the other events "
                            "wait for the next run", item.delivery_id,
                            "the stop request" if stop.is_set() else
                            f"the run's budget of {hook.budget:g}s")
                break
            if not _failed(db, hook, item, exc, clock, run):
                waiting.add(item.ticket_number)
            if isinstance(exc, WebhookUnreachable):
                break
            continue
        outbox.mark_delivered(db, item.row_id, clock())
        run.delivered.append(item.delivery_id)
        logger.info("webhook: %s event %s of ticket %s delivered", item.event, item.delivery_id,
                    item.ticket_number)
    run.left = len(pending) - len(run.delivered) - run.rejected
    return run


def _failed(db: Engine, hook: WebhookSettings, item: outbox.Pending,
            exc: WebhookError, clock: Clock, run: DeliveryRun) -> bool:
    """Count a failed attempt: back off, or reject an event refused max_attempts times; return
    whether it was rejected."""
    attempt = item.attempts + 1
    wait = back_off(hook, attempt)
    retry_at = clock() + timedelta(seconds=wait)
    rejected = (isinstance(exc, WebhookRefused) and exc.status not in LATER
                and attempt >= hook.max_attempts)
    outbox.mark_failed(db, item.row_id, str(exc), retry_at, rejected=rejected)
    if rejected:
        run.rejected += 1
        logger.error("webhook: %s event %s of ticket %s rejected after %d refusals (the last: "
                     "%s); the ticket's later events go on; `poller outbox retry %s` sends it "
                     "again", item.event, item.delivery_id, item.ticket_number, attempt, exc,
                     item.delivery_id)
        return True
    run.failed += 1
    run.retry_at = min(run.retry_at or retry_at, retry_at)
    unreachable = isinstance(exc, WebhookUnreachable)
    if unreachable:
        run.retry_at = retry_at  # the receiver's back-off, not the next event's
    logger.warning(
        "webhook: %s event %s of ticket %s not delivered (attempt %d): %s; tried again "
        "in %.0fs at the earliest%s", item.event, item.delivery_id, item.ticket_number,
        attempt, exc, wait, "; the other events wait for the next run" if unreachable else "")
    return False


class Deliverer:
    """`serve`'s delivery thread: a run each time it is woken (after a pass), and when the back-off
    of a failed event ends; a wake during a run makes one more run after it, so no event waits
    for the next pass because the thread was busy."""

    def __init__(self, settings: Callable[[], Settings], stop: threading.Event,
                 clock: Clock = utc_now):
        self._settings = settings
        self._stop = stop
        self._clock = clock
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Ask for a delivery run (returns at once)."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Let the run in hand end (its stop event is set) and wait up to timeout seconds; an
        event posted but not yet marked is posted again later, with the same id."""
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        retry_at: datetime | None = None
        while True:
            timeout = None if retry_at is None else \
                max(0.0, (retry_at - self._clock()).total_seconds())
            self._wake.wait(timeout)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                retry_at = deliver_pending(self._settings(), self._stop, self._clock).retry_at
            except Exception:  # noqa: BLE001 - the thread must outlive a bug in one run
                logger.exception("webhook delivery failed unexpectedly (please report this)")
                retry_at = None
