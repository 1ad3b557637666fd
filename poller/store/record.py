"""Writes a Decision into the store: tickets, notes, UDF values, attachments and the log row."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from poller.ates import events, udf
from poller.ates.decision import (
    STATUS_COMPLETE,
    STATUS_NEW,
    TICKET_OUTCOMES,
    TITLE_LIMIT,
    Decision,
    NewContact,
    Outcome,
    StepKind,
)
from poller.store.database import EFFECT_OUTCOMES, iso
from poller.store.engine import Engine
from poller.store.outbox import add_event
from poller.store.store import Store

if TYPE_CHECKING:  # a type only: the worker records without loading the token reader
    from poller.ates.alert import Alert

logger = logging.getLogger(__name__)


class RecordedMeanwhile(Exception):  # noqa: N818 - a state, not a failure
    """Another worker committed the same mail's effect while this one decided it: the caller
    rolls this mail back and decides it again (it is then a duplicate)."""


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

    def record(self, key: MessageKey, decision: Decision, alert: Alert | None, now: datetime,
               subject: str = "") -> tuple[int, str | None, Decision]:
        """Apply the decision and log the mail in the caller's transaction; attachment
        content goes to files under attachments_dir when it is set; the event the change
        causes goes to the outbox when it is one of the subscribed. A reply (NOTED) adds its
        note to the ticket; expected mail (EXPECTED) records its arrival and completes the
        ticket its misses opened.

        Returns the log row's id, the number of the ticket created or changed (or None) and
        the decision as carried out: an append, when another worker opened the ticket of a
        CREATED decision's key meanwhile. Raises RecordedMeanwhile when another worker
        recorded the same mail's effect meanwhile. The statements are plain SQL: they run
        once or more per mail, and building them with peewee costs far more than executing
        them.
        """
        store, db = self.store, self.store.db
        stamp = iso(now)
        ticket: tuple[int, str] | None = None
        if alert is not None and decision.outcome in TICKET_OUTCOMES:
            for source in alert.token.sources():
                store.ensure_source(source, now)
            if decision.outcome is Outcome.CREATED:
                ticket = _create(store, key.mailbox, decision, alert, now, self.attachments_dir)
                if ticket is None:  # another worker opened the ticket of this key meanwhile
                    decision = _appending(db, decision)
            if ticket is None:
                ticket = _update(db, decision, alert, now, self.attachments_dir)
            event = events.event_of(decision.outcome)
            if event in self.subscribed:
                note = None if decision.outcome is Outcome.CREATED else alert.description or None
                add_event(db, event, ticket[0], events.BY_ALERT, note, now)
        elif decision.outcome is Outcome.EXPECTED and decision.ticket_id is not None:
            ticket = _complete_missed(db, decision, subject, now)
            if events.COMPLETED in self.subscribed:
                add_event(db, events.COMPLETED, ticket[0], events.BY_ALERT, subject or None, now)
        elif decision.outcome is Outcome.NOTED and decision.reply is not None:
            ticket = _note_reply(db, decision, now)
            if events.NOTED in self.subscribed:
                add_event(db, events.NOTED, ticket[0], events.BY_ALERT,
                          decision.reply.text or None, now)
        rows = db.sql(
            "INSERT INTO processed_message (mailbox, folder, uidvalidity, uid, message_id, "
            "fingerprint, subject, outcome, reason, ticket_id, action, purpose, mailbox_done, "
            "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (fingerprint) WHERE outcome IN {EFFECT_OUTCOMES} DO NOTHING "
            "RETURNING id",
            (key.mailbox, key.folder, key.uidvalidity, key.uid, key.message_id, key.fingerprint,
             (alert.title if alert else subject)[:TITLE_LIMIT], decision.outcome.value,
             decision.reason, ticket[0] if ticket else decision.ticket_id, str(decision.step),
             decision.step.purpose.value, decision.step.kind is StepKind.NONE, stamp, stamp)
        ).fetchall()
        if not rows:
            raise RecordedMeanwhile(f"another worker recorded the same mail ({key.fingerprint}) "
                                    "meanwhile: decide it again")
        row_id = rows[0][0]
        if decision.outcome is Outcome.EXPECTED:
            arrived = min(decision.arrived, now) if decision.arrived is not None else now
            db.sql("INSERT INTO expected_arrival (name, arrived, message_id) VALUES (?, ?, ?)",
                   (decision.expected, iso(arrived), row_id))
        return row_id, ticket[1] if ticket else None, decision


def _insert(db: Engine, sql: str, params: tuple[object, ...]) -> int:
    """Run an INSERT … RETURNING id; return the id (the engines agree on RETURNING, not on
    lastrowid)."""
    return db.sql(sql, params).fetchall()[0][0]


def next_ticket_number(db: Engine, now: datetime) -> str:
    """Return the next number of the day, TYYYYMMDD.NNNN (local date, as Autotask shows it)."""
    day = now.astimezone().strftime("%Y%m%d")
    last = db.sql("INSERT INTO ticket_sequence (day, last) VALUES (?, 1) ON CONFLICT (day) "
                  "DO UPDATE SET last = ticket_sequence.last + 1 RETURNING last",
                  (day,)).fetchall()[0][0]
    return f"T{day}.{last:04d}"


def _appending(db: Engine, decision: Decision) -> Decision:
    """Return the decision to append to the open ticket that won the race for decision's key
    (it is committed: the INSERT that lost waited for it)."""
    row = db.sql("SELECT id FROM ticket WHERE organization_id = ? AND open_key = ? "
                 f"AND status <> '{STATUS_COMPLETE}'",
                 (decision.organization_id, decision.open_key)).fetchall()
    return replace(decision, outcome=Outcome.APPENDED, ticket_id=row[0][0],
                   reason="duplicate alert (its ticket was opened by another worker meanwhile)")


def _create(store: Store, mailbox: str, decision: Decision, alert: Alert, now: datetime,
            attachments_dir: Path | None) -> tuple[int, str] | None:
    """Open the ticket; None when an open ticket of the organization has the decision's key
    (a worker that decided at the same time won: its ticket is committed)."""
    db = store.db
    number = next_ticket_number(db, now)
    stamp = iso(now)
    fields = decision.fields
    rows = db.sql(
        "INSERT INTO ticket (number, title, description, status, organization_id, contact_id, "
        "device_id, occurrences, created, updated, mailbox, queue, priority, source, "
        "issue_type, sub_issue, open_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT (organization_id, open_key) WHERE status <> '{STATUS_COMPLETE}' "
        "DO NOTHING RETURNING id",
        (number, alert.title, alert.description, STATUS_NEW, decision.organization_id,
         decision.contact_id, decision.device_id, stamp, stamp, mailbox, fields.queue,
         fields.priority, fields.source, fields.issue_type, fields.sub_issue,
         decision.open_key),
    ).fetchall()
    if not rows:
        return None
    ticket_id = rows[0][0]
    if decision.new_contact is not None:  # made only for a ticket that is made
        contact_id = _create_contact(db, decision.organization_id, decision.new_contact, now)
        db.sql("UPDATE ticket SET contact_id = ? WHERE id = ?", (contact_id, ticket_id))
    for source, kind, value in decision.ticket_udfs:
        udf_id = store.udf_id("ticket", udf.label(source, kind), source, kind, now)
        db.sql("INSERT INTO udf_value (udf_id, entity_id, value) VALUES (?, ?, ?)",
               (udf_id, ticket_id, value))
    for text in decision.notes:
        write_note(db, ticket_id, "system", "Alert processing", text, now)
    _attach(db, ticket_id, None, decision, now, attachments_dir)
    return ticket_id, number


def _update(db: Engine, decision: Decision, alert: Alert, now: datetime,
            attachments_dir: Path | None) -> tuple[int, str]:
    found = db.sql("SELECT id, number FROM ticket WHERE id = ?",
                   (decision.ticket_id,)).fetchone()
    if found is None:
        raise LookupError(f"ticket id {decision.ticket_id} does not exist")
    ticket_id, number = found
    stamp = iso(now)
    if decision.outcome is Outcome.COMPLETED:
        note = write_note(db, ticket_id, "resolution", alert.title, alert.description, now)
        db.sql("UPDATE ticket SET status = ?, completed = ?, updated = ? WHERE id = ?",
               (STATUS_COMPLETE, stamp, stamp, ticket_id))
    else:
        note = write_note(db, ticket_id, "duplicate", alert.title, alert.description, now)
        db.sql("UPDATE ticket SET occurrences = occurrences + 1, updated = ? WHERE id = ?",
               (stamp, ticket_id))
    _attach(db, ticket_id, note, decision, now, attachments_dir)
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
    return _insert(
        db, "INSERT INTO contact (organization_id, first_name, last_name, email, created) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (organization_id, new.first_name, new.last_name, new.email.strip().lower(), iso(now)))


def write_note(db: Engine, ticket_id: int, kind: str, title: str, text: str,
               now: datetime) -> int:
    """Add a note to the ticket; return its id."""
    return _insert(
        db, "INSERT INTO ticket_note (ticket_id, kind, title, text, created) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (ticket_id, kind, title[:TITLE_LIMIT], text, iso(now)))


def _attach(db: Engine, ticket_id: int, note_id: int | None, decision: Decision,
            now: datetime, directory: Path | None) -> None:
    """Store the attachments the decision keeps, and a note for each one it refused."""
    for text in decision.refused_attachments:
        write_note(db, ticket_id, "system", "Attachment not stored", text, now)
    for item in decision.attachments:
        digest = hashlib.sha256(item.content).hexdigest()
        content: bytes | None = item.content
        path = None
        if directory is not None:
            content, path = None, str(content_file(directory, digest, item.content))
        db.sql(
            "INSERT INTO attachment (ticket_id, note_id, filename, content_type, size, sha256, "
            "content, path, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ticket_id, note_id, item.filename[:255], item.content_type, item.size, digest,
             content, path, iso(now)),
        )


def content_file(directory: Path, digest: str, content: bytes) -> Path:
    """Return the file that holds content at its content address under directory.

    It is written unless a file of the right size is there already (one of another size was
    cut short, or changed, and is written again): to a temporary file that is synced before it
    is renamed into place, and the rename is synced too, so the file is on disk before the
    decision that names it commits.
    """
    target = directory / digest[:2] / digest
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        size = None
    if size == len(content):
        return target
    if size is not None:
        logger.warning("attachment file %s has %d bytes instead of %d; writing it again",
                       target, size, len(content))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    for folder in (target.parent, directory):
        _sync_folder(folder)
    return target


def _sync_folder(folder: Path) -> None:
    """Make the entries of folder (a file renamed into it, a new sub-folder) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
