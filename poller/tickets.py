"""Writes a Decision into the store: tickets, notes, UDF values, attachments and the log row."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from poller.alert import Alert
from poller.message import Attachment as MailAttachment
from poller.models import (
    STATUS_COMPLETE,
    Attachment,
    Contact,
    ProcessedMessage,
    Ticket,
    TicketNote,
    TicketSequence,
    UdfValue,
)
from poller.rules import Decision, NewContact, Outcome, udf_label
from poller.store import Store, iso


@dataclass(frozen=True)
class MessageKey:
    """Where a mail was found and how to recognise the same mail delivered again."""

    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None
    fingerprint: str


@dataclass(frozen=True)
class AttachmentPolicy:
    max_bytes: int
    directory: Path | None = None


def record(
    store: Store,
    key: MessageKey,
    decision: Decision,
    alert: Alert | None,
    action: str,
    now: datetime,
    attachments: AttachmentPolicy,
    subject: str = "",
) -> tuple[int, str | None]:
    """Apply the decision and log the mail in the caller's transaction.

    Returns the log row's id and the number of the ticket created or changed (or None).
    """
    ticket: Ticket | None = None
    if alert is not None and decision.outcome in (
        Outcome.CREATED, Outcome.APPENDED, Outcome.COMPLETED
    ):
        for sourced in (alert.token.customer_id, alert.token.device_id, alert.token.device_guid,
                        alert.token.alert_id, alert.token.ticket_id):
            if sourced is not None:
                store.ensure_source(sourced.source, now)
        if decision.outcome is Outcome.CREATED:
            ticket = _create(store, decision, alert, now, attachments)
        else:
            ticket = _update(decision, alert, now, attachments)
    row_id = ProcessedMessage.insert(
        folder=key.folder,
        uidvalidity=key.uidvalidity,
        uid=key.uid,
        message_id=key.message_id,
        fingerprint=key.fingerprint,
        subject=(alert.title if alert else subject)[:250],
        outcome=decision.outcome.value,
        reason=decision.reason,
        ticket=ticket.id if ticket else decision.ticket_id,
        action=action,
        mailbox_done=action == "none",
        created=iso(now),
        updated=iso(now),
    ).execute()
    return row_id, ticket.number if ticket else None


def next_ticket_number(now: datetime) -> str:
    """Return the next number of the day, TYYYYMMDD.NNNN (local date, as Autotask shows it)."""
    day = now.astimezone().strftime("%Y%m%d")
    TicketSequence.insert(day=day, last=1).on_conflict(
        conflict_target=[TicketSequence.day],
        update={TicketSequence.last: TicketSequence.last + 1},
    ).execute()
    last = TicketSequence.get_by_id(day).last
    return f"T{day}.{last:04d}"


def _create(store: Store, decision: Decision, alert: Alert, now: datetime,
            attachments: AttachmentPolicy) -> Ticket:
    contact_id = decision.contact_id
    if decision.new_contact is not None:
        contact_id = _create_contact(decision.organization_id, decision.new_contact, now)
    ticket = Ticket.create(
        number=next_ticket_number(now),
        title=alert.title,
        description=alert.description,
        organization=decision.organization_id,
        contact=contact_id,
        device=decision.device_id,
        created=iso(now),
        updated=iso(now),
    )
    for source, kind, value in decision.ticket_udfs:
        udf = store.udf_id("ticket", udf_label(source, kind), source, kind, now)
        UdfValue.insert(udf=udf, entity_id=ticket.id, value=value).execute()
    for text in decision.notes:
        _note(ticket.id, "system", "Alert processing", text, now)
    _attach(ticket.id, None, alert.message.attachments, now, attachments)
    return ticket


def _update(decision: Decision, alert: Alert, now: datetime,
            attachments: AttachmentPolicy) -> Ticket:
    ticket = Ticket.get_by_id(decision.ticket_id)
    if decision.outcome is Outcome.COMPLETED:
        note = _note(ticket.id, "resolution", alert.title, alert.description, now)
        ticket.status = STATUS_COMPLETE
        ticket.completed = iso(now)
    else:
        note = _note(ticket.id, "duplicate", alert.title, alert.description, now)
        ticket.occurrences += 1
    ticket.updated = iso(now)
    ticket.save()
    _attach(ticket.id, note, alert.message.attachments, now, attachments)
    return ticket


def _create_contact(organization_id: int | None, new: NewContact, now: datetime) -> int:
    return Contact.insert(
        organization=organization_id,
        first_name=new.first_name,
        last_name=new.last_name,
        email=new.email.strip().lower(),
        created=iso(now),
    ).execute()


def _note(ticket_id: int, kind: str, title: str, text: str, now: datetime) -> int:
    return TicketNote.insert(
        ticket=ticket_id, kind=kind, title=title[:250], text=text, created=iso(now)
    ).execute()


def _attach(ticket_id: int, note_id: int | None, files: tuple[MailAttachment, ...],
            now: datetime, policy: AttachmentPolicy) -> None:
    budget = policy.max_bytes
    for item in files:
        if item.size > budget:
            _note(ticket_id, "system", "Attachment not stored",
                  f"{item.filename} ({item.size} bytes) exceeds the attachment limit of "
                  f"{policy.max_bytes} bytes per mail; it remains in the original mail.", now)
            continue
        budget -= item.size
        digest = hashlib.sha256(item.content).hexdigest()
        content: bytes | None = item.content
        path = None
        if policy.directory is not None:
            target = policy.directory / digest[:2] / digest
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".tmp")
                tmp.write_bytes(item.content)
                tmp.replace(target)
            content, path = None, str(target)
        Attachment.insert(
            ticket=ticket_id, note=note_id, filename=item.filename[:255],
            content_type=item.content_type, size=item.size, sha256=digest,
            content=content, path=path, created=iso(now),
        ).execute()
