"""The event outbox: writing an event in the transaction of the change that causes it, and the
bookkeeping of its delivery (which events are due, delivered, failed, rejected, dropped).

`delivered` is final: no later update takes an event out of it (a run that outlived its lock,
an operator's retry). `rejected` (refused too often) and `dropped` (by an operator) are kept,
never deleted, and no longer hold up their ticket's later events; `poller outbox retry` puts
them back. Delivered events are pruned after [webhook] keep_days.

The body is made when the event is written and never again: every attempt sends the same bytes
with the same id and signature, and it tells the ticket as it was when the event happened.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from poller.ates import events
from poller.store.database import changing, iso
from poller.store.engine import Engine
from poller.store.views import ticket_snapshot

PENDING, FAILED, DELIVERED = "pending", "failed", "delivered"
REJECTED, DROPPED = "rejected", "dropped"
STATUSES = (PENDING, FAILED, DELIVERED, REJECTED, DROPPED)


@dataclass(frozen=True)
class Pending:
    """An event not delivered yet, without its body."""

    row_id: int
    delivery_id: str
    event: str
    ticket_id: int | None
    ticket_number: str
    attempts: int
    next_attempt: datetime


def add_event(db: Engine, event: str, ticket_id: int, by: str, note: str | None,
              now: datetime) -> str:
    """Write an event about the ticket as it is now; return its delivery id. Runs in the
    caller's transaction, which makes the event exactly as durable as the change."""
    ticket = ticket_snapshot(db, ticket_id)
    delivery_id = str(uuid.uuid4())
    stamp = iso(now)
    db.sql(
        "INSERT INTO outbox (delivery_id, event, ticket_id, ticket_number, body, status, "
        "attempts, last_error, next_attempt, created) VALUES (?, ?, ?, ?, ?, ?, 0, '', ?, ?)",
        (delivery_id, event, ticket_id, ticket["number"],
         events.body(delivery_id, event, stamp, by, note, ticket), PENDING, stamp, stamp))
    return delivery_id


def undelivered(db: Engine) -> list[Pending]:
    """Return the events not delivered yet, in the order they happened."""
    rows = db.sql(
        "SELECT id, delivery_id, event, ticket_id, ticket_number, attempts, next_attempt "
        "FROM outbox WHERE status IN (?, ?) ORDER BY id", (PENDING, FAILED)).fetchall()
    return [Pending(*row[:6], datetime.fromisoformat(row[6])) for row in rows]


def body(db: Engine, row_id: int) -> str:
    """Return the JSON body written with the event."""
    return db.sql("SELECT body FROM outbox WHERE id = ?", (row_id,)).fetchone()[0]


def mark_delivered(db: Engine, row_id: int, now: datetime) -> None:
    """Record that the receiver took the event (whatever else happened to it meanwhile)."""
    with db.atomic():
        db.sql("UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = '', "
               "delivered = ? WHERE id = ? AND status != ?",
               (DELIVERED, iso(now), row_id, DELIVERED))


def mark_failed(db: Engine, row_id: int, error: str, next_attempt: datetime,
                rejected: bool = False) -> None:
    """Record a failed attempt; the event is tried again from next_attempt on, or never
    (rejected). An event delivered, dropped or put back meanwhile is left as it is."""
    with db.atomic():
        db.sql("UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, "
               "next_attempt = ? WHERE id = ? AND status IN (?, ?)",
               (REJECTED if rejected else FAILED, error, iso(next_attempt), row_id,
                PENDING, FAILED))


def retry(db: Engine, now: datetime, delivery_id: str | None = None) -> int:
    """Put an event (delivery_id), or every failed and rejected one, back to be posted at the
    next run, its attempts counted from 0; return how many. A delivered event stays."""
    which = ("delivery_id = ? AND status != ?", (delivery_id, DELIVERED)) if delivery_id \
        else ("status IN (?, ?)", (FAILED, REJECTED))
    with changing(db):
        return db.sql(f"UPDATE outbox SET status = ?, attempts = 0, next_attempt = ? "
                      f"WHERE {which[0]}", (PENDING, iso(now), *which[1])).rowcount


def drop(db: Engine, delivery_id: str, why: str) -> bool:
    """Mark an event not delivered yet as dropped (kept, never posted); return whether one
    was."""
    with changing(db):
        return db.sql("UPDATE outbox SET status = ?, last_error = ? WHERE delivery_id = ? "
                      "AND status != ?", (DROPPED, why, delivery_id, DELIVERED)).rowcount > 0


def lock_delivery(db: Engine) -> bool | None:
    """PostgreSQL: take the database's delivery lock on this session (one deliverer per
    database, on any machine); return whether it was taken. SQLite: None (the lock file next
    to the database does it)."""
    if db.dialect == "sqlite":
        return None
    return db.sql("SELECT pg_try_advisory_lock(hashtextextended('ates-poller outbox', 0))"
                  ).fetchone()[0]


def unlock_delivery(db: Engine) -> None:
    """Let go of the delivery lock lock_delivery took."""
    db.sql("SELECT pg_advisory_unlock(hashtextextended('ates-poller outbox', 0))")


def prune(db: Engine, before: datetime) -> int:
    """Delete the events delivered before `before`; return how many."""
    with db.atomic():
        return db.sql("DELETE FROM outbox WHERE status = ? AND delivered < ?",
                      (DELIVERED, iso(before))).rowcount
