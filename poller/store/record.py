"""Writes a Decision into the store: tickets, notes, UDF values, attachments and the log row."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poller.ates import events, udf
from poller.ates.decision import TITLE_LIMIT, Decision, NewContact
from poller.ates.outcomes import STATUS_COMPLETE, STATUS_NEW, TICKET_OUTCOMES, Outcome, StepKind
from poller.store.database import EFFECT_OUTCOMES, iso
from poller.store.engine import Engine
from poller.store.notes import attach, note_with_id, write_note
from poller.store.numbers import TicketNumbers
from poller.store.outbox import add_event
from poller.store.store import Store

if TYPE_CHECKING:  # a type only: the worker records without loading the token reader
    from poller.ates.alert import Alert


class RecordedMeanwhile(Exception):  # noqa: N818 - a state, not a failure
    """Another worker committed what the decision rests on while this one decided it (the same
    mail's effect, or the completion of the ticket it appends to or completes): the caller
    rolls this mail back and decides it again (then a duplicate, or a ticket of its own)."""


@dataclass(frozen=True)
class MessageKey:
    """Where a mail was found (the [imap] name of the mailbox, its folder, UIDVALIDITY and UID)
    and how to recognise the same mail delivered again."""

    mailbox: str
    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None
    fingerprint: str


class Recorder:
    """Writes decisions into the store for one pass: built once per pass with what stays the
    same for it (the store, where attachment content goes, the events the webhook takes)."""

    def __init__(self, store: Store, attachments_dir: Path | None,
                 subscribed: frozenset[str] = frozenset()):
        self.store = store
        self.attachments_dir = attachments_dir
        self.subscribed = subscribed
        self._numbers = TicketNumbers()
        # log rows and tickets whose id is read by finish
        self._unread: list[LogRow | NewTicket] = []

    def begin(self) -> None:
        """Start recording in a new transaction."""
        self._numbers = TicketNumbers()
        self._unread = []

    def finish(self) -> None:
        """Write what recording keeps until the end of a transaction, and read the ids of the
        log rows and tickets; call it before the commit. Raises RecordedMeanwhile as record
        does."""
        self._numbers.save(self.store.db)
        for row in self._unread:
            row.id()
        self._unread = []

    def record(self, key: MessageKey, decision: Decision, alert: Alert | None, now: datetime,
               subject: str = "", wait: bool = True) -> tuple[LogRow, str | None, Decision]:
        """Apply the decision and log the mail in the caller's transaction; attachment
        content goes to files under attachments_dir when it is set; the event the change
        causes goes to the outbox when it is one of the subscribed. A reply (NOTED) adds its
        note to the ticket; expected mail (EXPECTED) records its arrival and completes the
        ticket its misses opened.

        Returns the log row, the number of the ticket created or changed (or None) and the
        decision as carried out: an append, when another worker opened the ticket of a
        CREATED decision's key meanwhile. Raises RecordedMeanwhile when another worker
        recorded the same mail's effect, or completed the ticket the decision appends to or
        completes, meanwhile; without WAIT, the log row's id is read,
        and RecordedMeanwhile raised, by finish (on PostgreSQL the statements then go on
        without waiting for the answer). The statements are plain SQL: they run once or more
        per mail, and building them with peewee costs far more than executing them.
        """
        numbers = self._numbers.copy()
        # SQLite has no round trips to save, and its unread statements would hold the
        # savepoints and the commit of the transaction up
        wait = wait or not self.store.db.pipelines
        try:
            row, ticket, decision, new = self._record(key, decision, alert, now, subject, wait)
            if wait:
                row.id()
            else:
                self._unread += [row] if new is None else [row, new]
            return row, ticket, decision
        except BaseException:
            # What this mail wrote is rolled back: so are the numbers it took, and the answers
            # read ahead that its writes changed (the rest of the chunk asks the database).
            self._numbers = numbers
            self.store.forget_ahead()
            raise

    def _record(self, key: MessageKey, decision: Decision, alert: Alert | None, now: datetime,
                subject: str, wait: bool
                ) -> tuple[LogRow, str | None, Decision, NewTicket | None]:
        store, db = self.store, self.store.db
        stamp = iso(now)
        ticket: tuple[int, str] | None = None  # (id, number) of the ticket changed
        new: NewTicket | None = None  # the ticket made
        if alert is not None and decision.outcome in TICKET_OUTCOMES:
            for source in alert.token.sources():
                store.ensure_source(source, now)
            if decision.outcome is Outcome.CREATED:
                new = _create(store, self._numbers.next(db, now), key.mailbox, decision, alert,
                              now, self.attachments_dir, wait)
                if new is None:  # another worker opened the ticket of this key meanwhile
                    self._numbers.unused(now)
                    decision = _appending(db, decision)
                if store.ahead is not None:  # the ticket made, or the other worker's
                    store.ahead.opened(new.id if new else decision.ticket_id,
                                       decision.organization_id,
                                       [(udf.label(source, kind), value)
                                        for source, kind, value in decision.ticket_udfs])
            if new is None:
                ticket = _update(db, decision, alert, now, self.attachments_dir)
                if decision.outcome is Outcome.COMPLETED and store.ahead is not None:
                    store.ahead.closed(ticket[0])
            event = events.event_of(decision.outcome)
            if event in self.subscribed:
                note = None if decision.outcome is Outcome.CREATED else alert.description or None
                add_event(db, event, new.id() if new else ticket[0], events.BY_ALERT, note, now)
        elif decision.outcome is Outcome.EXPECTED and decision.ticket_id is not None:
            ticket = _complete_missed(db, decision, subject, now)
            if store.ahead is not None:
                store.ahead.closed(ticket[0])
            if events.COMPLETED in self.subscribed:
                add_event(db, events.COMPLETED, ticket[0], events.BY_ALERT, subject or None, now)
        elif decision.outcome is Outcome.NOTED and decision.reply is not None:
            ticket = _note_reply(db, decision, now)
            if events.NOTED in self.subscribed:
                add_event(db, events.NOTED, ticket[0], events.BY_ALERT,
                          decision.reply.text or None, now)
        ticket_sql, ticket_param = (new.sql() if new else
                                    ("?", ticket[0] if ticket else decision.ticket_id))
        row = LogRow(store, key.fingerprint, db.insert(
            "INSERT INTO processed_message (mailbox, folder, uidvalidity, uid, message_id, "
            "fingerprint, subject, outcome, reason, ticket_id, action, purpose, mailbox_done, "
            f"created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {ticket_sql}, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (fingerprint) WHERE outcome IN {EFFECT_OUTCOMES} DO NOTHING",
            (key.mailbox, key.folder, key.uidvalidity, key.uid, key.message_id, key.fingerprint,
             (alert.title if alert else subject)[:TITLE_LIMIT], decision.outcome.value,
             decision.reason, ticket_param, str(decision.step),
             decision.step.purpose.value, decision.step.kind is StepKind.NONE, stamp, stamp)))
        if store.ahead is not None:
            store.ahead.logged(key.fingerprint)
        if decision.outcome is Outcome.EXPECTED:
            arrived = min(decision.arrived, now) if decision.arrived is not None else now
            db.sql("INSERT INTO expected_arrival (name, arrived, message_id) VALUES (?, ?, ?)",
                   (decision.expected, iso(arrived), row.id()))
        return row, new.number if new else ticket[1] if ticket else None, decision, new


class NewTicket:
    """A ticket just inserted: its number, and its id, read from the INSERT when first asked
    for (what follows names the ticket by its number, so on PostgreSQL it need not wait)."""

    def __init__(self, number: str, cursor: Any):
        self.number, self._cursor = number, cursor
        self._id: int | None = None

    def read(self) -> int | None:
        """Return the ticket's id, or None when it was not inserted: an open ticket of the
        organization had the decision's key (another worker's, committed meanwhile)."""
        if self._cursor is not None:
            rows, self._cursor = self._cursor.fetchall(), None
            self._id = rows[0][0] if rows else None
        return self._id

    @property
    def known(self) -> bool:
        """Whether the ticket's id has been read (and the ticket inserted)."""
        return self._cursor is None and self._id is not None

    def sql(self) -> tuple[str, int | str]:
        """Return how a statement names the ticket, and the parameter that goes with it: its
        id once read, else its number (so as not to wait for the id)."""
        if self._cursor is None and self._id is not None:
            return "?", self._id
        return "(SELECT id FROM ticket WHERE number = ?)", self.number

    def id(self) -> int:
        """Return the ticket's id; raise RecordedMeanwhile when it was not inserted."""
        ticket_id = self.read()
        if ticket_id is None:
            raise RecordedMeanwhile("another worker opened the ticket of this alert meanwhile: "
                                    "decide the mail again")
        return ticket_id


class LogRow:
    """The processed_message row of one mail, its id read when first asked for."""

    def __init__(self, store: Store, fingerprint: str, cursor: Any):
        self._store, self._fingerprint, self._cursor = store, fingerprint, cursor
        self._id: int | None = None

    def id(self) -> int:
        """Return the row's id; raise RecordedMeanwhile when the row was not written, as
        another worker recorded the same mail's effect meanwhile."""
        if self._id is None:
            rows = self._cursor.fetchall()
            if not rows:
                if self._store.ahead is not None:  # deciding again is to see the other's row
                    self._store.ahead.logged(self._fingerprint)
                raise RecordedMeanwhile(f"another worker recorded the same mail "
                                        f"({self._fingerprint}) meanwhile: decide it again")
            self._id, self._cursor = rows[0][0], None
        return self._id


def _appending(db: Engine, decision: Decision) -> Decision:
    """Return the decision to append to the open ticket that won the race for decision's key
    (it is committed: the INSERT that lost waited for it)."""
    row = db.sql("SELECT id FROM ticket WHERE organization_id = ? AND open_key = ? "
                 f"AND status <> '{STATUS_COMPLETE}'",
                 (decision.organization_id, decision.open_key)).fetchall()
    return replace(decision, outcome=Outcome.APPENDED, ticket_id=row[0][0],
                   reason="duplicate alert (its ticket was opened by another worker meanwhile)")


def _create(store: Store, number: str, mailbox: str, decision: Decision, alert: Alert,
            now: datetime, attachments_dir: Path | None, wait: bool) -> NewTicket | None:
    """Open the ticket NUMBER. With WAIT, or when a contact, notes or attachments come with
    it, its id is read at once, and None returned when an open ticket of the organization has
    the decision's key (a worker that decided at the same time won: its ticket is committed);
    else that shows when the id is asked for."""
    db = store.db
    stamp = iso(now)
    fields = decision.fields
    new = NewTicket(number, db.insert(
        "INSERT INTO ticket (number, title, description, status, organization_id, contact_id, "
        "device_id, occurrences, created, updated, mailbox, queue, priority, source, "
        "issue_type, sub_issue, open_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT (organization_id, open_key) WHERE status <> '{STATUS_COMPLETE}' "
        "DO NOTHING",
        (number, alert.title, alert.description, STATUS_NEW, decision.organization_id,
         decision.contact_id, decision.device_id, stamp, stamp, mailbox, fields.queue,
         fields.priority, fields.source, fields.issue_type, fields.sub_issue,
         decision.open_key)))
    more = bool(decision.new_contact or decision.notes or decision.attachments
                or decision.refused_attachments)
    if (wait or more) and new.read() is None:
        return None
    for source, kind, value in decision.ticket_udfs:
        udf_id = store.udf_id("ticket", udf.label(source, kind), source, kind, now)
        if new.known:
            db.sql("INSERT INTO udf_value (udf_id, entity_id, value) VALUES (?, ?, ?)",
                   (udf_id, new.id(), value))
        else:  # by its number: a ticket that was not inserted gets no value
            db.sql("INSERT INTO udf_value (udf_id, entity_id, value) "
                   "SELECT ?, id, ? FROM ticket WHERE number = ?", (udf_id, value, new.number))
    if not more:
        return new
    ticket_id = new.id()
    if decision.new_contact is not None:  # made only for a ticket that is made
        contact_id = _create_contact(db, decision.organization_id, decision.new_contact, now)
        if store.ahead is not None:
            store.ahead.contacts.pop(decision.new_contact.email.strip().lower(), None)
        db.sql("UPDATE ticket SET contact_id = ? WHERE id = ?", (contact_id, ticket_id))
    for text in decision.notes:
        write_note(db, ticket_id, "system", "Alert processing", text, now)
    attach(db, ticket_id, None, decision, now, attachments_dir)
    return new


def _update(db: Engine, decision: Decision, alert: Alert, now: datetime,
            attachments_dir: Path | None) -> tuple[int, str]:
    """Append to or complete the open ticket the decision names."""
    stamp = iso(now)
    if decision.outcome is Outcome.COMPLETED:
        kind, change = "resolution", db.sql(
            f"UPDATE ticket SET status = '{STATUS_COMPLETE}', completed = ?, updated = ? "
            f"WHERE id = ? AND status <> '{STATUS_COMPLETE}' RETURNING id, number",
            (stamp, stamp, decision.ticket_id))
    else:
        kind, change = "duplicate", db.sql(
            "UPDATE ticket SET occurrences = occurrences + 1, updated = ? WHERE id = ? "
            f"AND status <> '{STATUS_COMPLETE}' RETURNING id, number",
            (stamp, decision.ticket_id))
    found = change.fetchall()
    if not found:
        if db.sql("SELECT 1 FROM ticket WHERE id = ?", (decision.ticket_id,)).fetchall():
            # completed since the chunk's look-ups were read (on PostgreSQL, by another worker
            # or a technician): decided on an open ticket, the mail is decided again
            raise RecordedMeanwhile(f"ticket id {decision.ticket_id} was completed meanwhile: "
                                    "decide the mail again")
        raise LookupError(f"ticket id {decision.ticket_id} does not exist")
    ticket_id, number = found[0]
    # the note's id only for the attachments that come with it
    note = (note_with_id if decision.attachments else write_note)(
        db, ticket_id, kind, alert.title, alert.description, now)
    attach(db, ticket_id, note, decision, now, attachments_dir)
    return ticket_id, number


def _complete_missed(db: Engine, decision: Decision, subject: str,
                     now: datetime) -> tuple[int, str]:
    """Complete the ticket the expected mail's missed deadlines opened, with a note."""
    ticket_id, number = db.sql("SELECT id, number FROM ticket WHERE id = ?",
                               (decision.ticket_id,)).fetchone()
    write_note(db, ticket_id, "resolution", f"Expected mail arrived: {decision.expected}",
               f"The expected mail arrived: {subject}", now)
    db.sql("UPDATE ticket SET status = ?, completed = ?, updated = ? WHERE id = ?",
           (STATUS_COMPLETE, iso(now), iso(now), ticket_id))
    db.sql("UPDATE expected_mail SET ticket_id = NULL WHERE name = ?",
           (decision.expected,))
    return ticket_id, number


def _note_reply(db: Engine, decision: Decision, now: datetime) -> tuple[int, str]:
    """Add a reply's note (kind 'reply': who wrote it, what they wrote above the quote) to the
    ticket it answers; nothing else of the ticket changes but its time of update."""
    reply = decision.reply
    assert reply is not None
    found = db.sql("SELECT id, number FROM ticket WHERE id = ?",
                   (decision.ticket_id,)).fetchone()
    if found is None:
        raise LookupError(f"ticket id {decision.ticket_id} does not exist")
    text = f"From: {reply.sender}\n\n{reply.text}" if reply.sender else reply.text
    write_note(db, found[0], "reply", reply.subject or "Reply", text, now)
    db.sql("UPDATE ticket SET updated = ? WHERE id = ?", (iso(now), found[0]))
    return found[0], found[1]


def _create_contact(db: Engine, organization_id: int | None, new: NewContact,
                    now: datetime) -> int:
    return db.insert(
        "INSERT INTO contact (organization_id, first_name, last_name, email, created) "
        "VALUES (?, ?, ?, ?, ?)",
        (organization_id, new.first_name, new.last_name, new.email.strip().lower(),
         iso(now))).fetchall()[0][0]
