"""Expected mail in the store: the window of each [[expect]] entry, its arrivals, and the
ticket a missed deadline opens (or repeats), written in the transaction that records the
deadline as looked at, so that a restart never opens a second ticket for one window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from poller.ates import events
from poller.ates.expected import MISSED_TITLE, Expectation, missed_description
from poller.ates.outcomes import STATUS_COMPLETE, STATUS_NEW
from poller.ates.policy import TicketSettings
from poller.store.database import iso
from poller.store.engine import Engine
from poller.store.notes import write_note
from poller.store.numbers import next_ticket_number
from poller.store.outbox import add_event

# "by" of the events a missed deadline causes
BY_DEADLINE = "deadline"


@dataclass(frozen=True)
class Window:
    """An entry's state: when its window opened, the last deadline looked at, its open ticket
    (number, or None), its misses and its last arrival."""

    name: str
    window_start: datetime
    checked: datetime
    ticket: str | None
    misses: int
    last_arrival: datetime | None


def open_windows(db: Engine, names: list[str], now: datetime) -> None:
    """Open the first window of each entry not seen before, at now."""
    stamp = iso(now)
    for name in names:
        db.sql("INSERT INTO expected_mail (name, window_start, checked, misses, created) "
               "VALUES (?, ?, ?, 0, ?) ON CONFLICT (name) DO NOTHING",
               (name, stamp, stamp, stamp))


def window(db: Engine, name: str) -> Window | None:
    """Return the entry's state, or None before its first window opened."""
    row = db.sql(
        "SELECT e.window_start, e.checked, t.number, e.misses, "
        "(SELECT MAX(arrived) FROM expected_arrival a WHERE a.name = e.name) "
        "FROM expected_mail e LEFT JOIN ticket t ON t.id = e.ticket_id AND t.status != ? "
        "WHERE e.name = ?", (STATUS_COMPLETE, name)).fetchone()
    if row is None:
        return None
    start, checked, number, misses, last = row
    return Window(name, datetime.fromisoformat(start), datetime.fromisoformat(checked), number,
                  misses, datetime.fromisoformat(last) if last else None)


def record_arrival(db: Engine, name: str, arrived: datetime, row_id: int | None) -> None:
    db.sql("INSERT INTO expected_arrival (name, arrived, message_id) VALUES (?, ?, ?)",
           (name, iso(arrived), row_id))


def missed_ticket_id(db: Engine, name: str) -> int | None:
    row = db.sql("SELECT ticket_id FROM expected_mail WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def forget_ticket(db: Engine, name: str) -> None:
    db.sql("UPDATE expected_mail SET ticket_id = NULL WHERE name = ?", (name,))


def close_window(db: Engine, entry: Expectation, deadline: datetime, *, mailbox: str,
                 local_organization: int, tickets: TicketSettings,
                 subscribed: frozenset[str], now: datetime) -> str | None:
    """Look at one deadline of the entry: when no mail arrived in its window, open the entry's
    ticket, or add an occurrence to it while it is open; then open the next window at the
    deadline. Returns the number of the ticket opened or repeated, or None."""
    # the entry's row locked first (PostgreSQL; SQLite's IMMEDIATE transaction holds the
    # database): another process looking at the same deadline waits, then sees it looked at
    db.sql("UPDATE expected_mail SET checked = checked WHERE name = ?", (entry.name,))
    state = window(db, entry.name)
    assert state is not None
    if deadline <= state.checked:
        return None  # looked at already (by another process on the same database)
    came = db.sql("SELECT 1 FROM expected_arrival WHERE name = ? AND arrived >= ? AND "
                  "arrived < ? LIMIT 1", (entry.name, iso(state.window_start),
                                          iso(deadline))).fetchone()
    number = None
    if came is None:
        text = missed_description(entry.name, state.window_start, deadline)
        ticket_id = _open_ticket_id(db, entry.name)
        if ticket_id is not None:
            write_note(db, ticket_id, "duplicate", MISSED_TITLE.format(name=entry.name), text,
                       now)
            db.sql("UPDATE ticket SET occurrences = occurrences + 1, updated = ? "
                   "WHERE id = ?", (iso(now), ticket_id))
            event = events.APPENDED
        else:
            ticket_id = _create(db, entry, text, mailbox, local_organization, tickets, now)
            event = events.CREATED
        if event in subscribed:
            add_event(db, event, ticket_id, BY_DEADLINE, None if event == events.CREATED
                      else text, now)
        number = db.sql("SELECT number FROM ticket WHERE id = ?",
                        (ticket_id,)).fetchone()[0]
        db.sql("UPDATE expected_mail SET ticket_id = ?, misses = misses + 1 WHERE name = ?",
               (ticket_id, entry.name))
    db.sql("UPDATE expected_mail SET window_start = ?, checked = ? WHERE name = ?",
           (iso(deadline), iso(deadline), entry.name))
    return number


def _open_ticket_id(db: Engine, name: str) -> int | None:
    row = db.sql("SELECT t.id FROM expected_mail e JOIN ticket t ON t.id = e.ticket_id "
                 "WHERE e.name = ? AND t.status != ?", (name, STATUS_COMPLETE)).fetchone()
    return row[0] if row else None


def _create(db: Engine, entry: Expectation, text: str, mailbox: str,
            local_organization: int, tickets: TicketSettings, now: datetime) -> int:
    notes = []
    found = [row[0] for row in db.sql("SELECT id FROM organization WHERE name = ?",
                                      (entry.organization,)).fetchall()]
    organization = found[0] if len(found) == 1 else local_organization
    if len(found) != 1:
        notes.append(f"Assigned to the local organization: {len(found) or 'no'} organizations "
                     f"are named {entry.organization!r}.")
    device = None
    if entry.device:
        row = db.sql("SELECT id FROM device WHERE organization_id = ? AND name = ?",
                     (organization, entry.device)).fetchone()
        device = row[0] if row else None
        if device is None:
            notes.append(f"No device {entry.device!r} in the organization; the ticket has none.")
    stamp = iso(now)
    ticket_id = db.insert(
        "INSERT INTO ticket (number, title, description, status, organization_id, device_id, "
        "occurrences, created, updated, mailbox, queue, priority, source, issue_type) "
        "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
        (next_ticket_number(db, now), MISSED_TITLE.format(name=entry.name), text, STATUS_NEW,
         organization, device, stamp, stamp, mailbox, tickets.queue or None,
         entry.priority or tickets.priority or None, tickets.source or None,
         tickets.issue_type or None)).fetchall()[0][0]
    for note in notes:
        write_note(db, ticket_id, "system", "Expected mail", note, now)
    return ticket_id
