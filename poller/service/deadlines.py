"""The deadlines of the [[expect]] entries: cron expressions in [rules] timezone (APScheduler's
cron triggers), looked at after each good pass. `serve` also starts a pass at each deadline;
`once` looks at every deadline that passed since the last one looked at, so cron every few
minutes works the same. A pass whose mailbox could not be read looks at none: mail that could
not be read has not failed to arrive.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from poller.ates.expected import Expectation
from poller.config import Settings
from poller.store import expected
from poller.store.store import Store

logger = logging.getLogger(__name__)

# Deadlines looked at per entry and pass at most (a cron of every minute after a week down);
# the rest are looked at by the next pass.
MAX_DEADLINES = 1000


def trigger(entry: Expectation, timezone: str) -> CronTrigger:
    """Return the cron trigger of the entry's deadline ('' timezone: the system's)."""
    return CronTrigger.from_crontab(entry.deadline, timezone=ZoneInfo(timezone) if timezone
                                    else None)


def due(entry: Expectation, timezone: str, after: datetime, now: datetime) -> list[datetime]:
    """Return the entry's deadlines after AFTER up to NOW, oldest first (MAX_DEADLINES)."""
    cron = trigger(entry, timezone)
    found: list[datetime] = []
    moment = cron.get_next_fire_time(None, after + timedelta(microseconds=1))
    while moment is not None and moment <= now and len(found) < MAX_DEADLINES:
        found.append(moment)
        moment = cron.get_next_fire_time(None, moment + timedelta(microseconds=1))
    return found


def next_deadline(entry: Expectation, timezone: str, now: datetime) -> datetime | None:
    return trigger(entry, timezone).get_next_fire_time(None, now)


def open_windows(settings: Settings, store: Store, now: datetime) -> None:
    """Open the first window of entries loaded for the first time."""
    if settings.expectations:
        with store.db.atomic(lock_type="IMMEDIATE"):
            store.check_fence()
            expected.open_windows(store.db, [e.name for e in settings.expectations], now)


def check_deadlines(settings: Settings, store: Store, now: datetime) -> list[tuple[str, str]]:
    """Look at each deadline that passed; return (entry, ticket number) of each miss. Each
    deadline is looked at in its own transaction, with the ticket it opens or repeats."""
    missed: list[tuple[str, str]] = []
    timezone = settings.rules.timezone
    open_windows(settings, store, now)
    for entry in settings.expectations:
        state = expected.window(store.db, entry.name)
        if state is None:
            continue
        for deadline in due(entry, timezone, state.checked, now):
            with store.db.atomic(lock_type="IMMEDIATE"):
                store.check_fence()
                number = expected.close_window(
                    store.db, entry, deadline, mailbox=settings.imap.name,
                    local_organization=store.local_organization_id(),
                    tickets=settings.tickets, subscribed=settings.webhook.subscribed(), now=now)
            if number:
                missed.append((entry.name, number))
                logger.warning("expected mail %r did not arrive by %s: ticket %s", entry.name,
                               deadline.isoformat(timespec="minutes"), number)
    return missed
