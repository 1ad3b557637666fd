"""A technician's side of a ticket: completing it by hand, adding a note.

Each change is one transaction that also writes the event it causes to the outbox, so the
change and its event are on disk together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from poller.ates import events
from poller.ates.outcomes import STATUS_COMPLETE
from poller.store.database import changing, iso
from poller.store.notes import write_note
from poller.store.outbox import add_event
from poller.store.store import Store


@dataclass(frozen=True)
class Completed:
    """A completion by hand: changed is False when the ticket was Complete already;
    delivery_id names the event written, if the completed event is subscribed."""

    number: str
    changed: bool
    delivery_id: str | None = None


def complete_ticket(store: Store, number: str, by: str, text: str | None, now: datetime,
                    subscribed: frozenset[str]) -> Completed | None:
    """Complete the ticket with a resolution note (and its event); None if there is no such
    ticket."""
    db = store.db
    with changing(store.db):
        ticket = store.ticket_by_number(number)
        if ticket is None:
            return None
        completion = events.technician_completion(ticket, by, text)
        if completion is None:
            return Completed(ticket.number, changed=False)
        write_note(db, ticket.id, "resolution", completion.title, completion.text, now)
        stamp = iso(now)
        db.sql("UPDATE ticket SET status = ?, completed = ?, updated = ? WHERE id = ?",
               (STATUS_COMPLETE, stamp, stamp, ticket.id))
        delivery_id = None
        if events.COMPLETED in subscribed:
            delivery_id = add_event(db, events.COMPLETED, ticket.id, by, completion.note, now)
    return Completed(ticket.number, changed=True, delivery_id=delivery_id)


def add_note(store: Store, number: str, by: str, text: str, now: datetime) -> str | None:
    """Add a technician's note to the ticket (no event); return its number, None if there is no
    such ticket."""
    db = store.db
    with changing(store.db):
        ticket = store.ticket_by_number(number)
        if ticket is None:
            return None
        write_note(db, ticket.id, "technician", f"Note by {by}", text, now)
        db.sql("UPDATE ticket SET updated = ? WHERE id = ?", (iso(now), ticket.id))
    return ticket.number
