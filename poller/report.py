"""Read-only views of the store for the CLI: tickets, notes and the processed-mail log as dicts."""

from __future__ import annotations

from collections import defaultdict

from peewee import JOIN

from poller.batches import SQL_BATCH, chunks
from poller.models import (
    Attachment,
    Contact,
    Device,
    Organization,
    ProcessedMessage,
    Ticket,
    TicketNote,
    UdfDefinition,
    UdfValue,
)


def tickets(status: str | None = None, number: str | None = None) -> list[dict[str, object]]:
    """Return tickets (oldest first) as JSON-ready dicts with their UDFs, notes and attachments."""
    query = (
        Ticket.select(Ticket, Organization.name.alias("organization_name"),
                      Device.name.alias("device_name"), Contact.email.alias("contact_email"))
        .join(Organization)
        .switch(Ticket)
        .join(Device, join_type=JOIN.LEFT_OUTER)
        .switch(Ticket)
        .join(Contact, join_type=JOIN.LEFT_OUTER)
        .order_by(Ticket.id)
        .objects()
    )
    if status:
        query = query.where(Ticket.status == status)
    if number:
        query = query.where(Ticket.number == number)
    rows = list(query)
    ids = [t.id for t in rows]
    udfs, notes, files = _udfs(ids), _notes(ids), _attachments(ids)
    return [
        {
            "number": t.number,
            "title": t.title,
            "description": t.description,
            "status": t.status,
            "organization": t.organization_name,
            "device": t.device_name,
            "contact": t.contact_email,
            "udfs": udfs.get(t.id, {}),
            "occurrences": t.occurrences,
            "created": t.created,
            "updated": t.updated,
            "completed": t.completed,
            "notes": notes.get(t.id, []),
            "attachments": files.get(t.id, []),
        }
        for t in rows
    ]


def messages(outcome: str | None = None) -> list[dict[str, object]]:
    """Return the processed-mail log, oldest first."""
    query = (
        ProcessedMessage.select(ProcessedMessage, Ticket.number.alias("ticket_number"))
        .join(Ticket, join_type=JOIN.LEFT_OUTER)
        .order_by(ProcessedMessage.id)
        .objects()
    )
    if outcome:
        query = query.where(ProcessedMessage.outcome == outcome)
    return [
        {
            "message_id": m.message_id,
            "subject": m.subject,
            "outcome": m.outcome,
            "reason": m.reason,
            "ticket": m.ticket_number,
            "folder": m.folder,
            "uidvalidity": m.uidvalidity,
            "uid": m.uid,
            "mailbox_done": m.mailbox_done,
            "created": m.created,
        }
        for m in query
    ]


def _udfs(ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = defaultdict(dict)
    for chunk in chunks(ids, SQL_BATCH):
        query = (
            UdfValue.select(UdfValue.entity_id, UdfDefinition.label, UdfValue.value)
            .join(UdfDefinition)
            .where((UdfDefinition.entity == "ticket") & UdfValue.entity_id.in_(chunk))
        )
        for ticket_id, label, value in query.tuples():
            out[ticket_id][label] = value
    return out


def _notes(ids: list[int]) -> dict[int, list[dict[str, object]]]:
    out: dict[int, list[dict[str, object]]] = defaultdict(list)
    for chunk in chunks(ids, SQL_BATCH):
        query = TicketNote.select().where(TicketNote.ticket.in_(chunk)).order_by(TicketNote.id)
        for note in query:
            out[note.ticket_id].append(
                {"kind": note.kind, "title": note.title, "text": note.text, "created": note.created}
            )
    return out


def _attachments(ids: list[int]) -> dict[int, list[dict[str, object]]]:
    out: dict[int, list[dict[str, object]]] = defaultdict(list)
    for chunk in chunks(ids, SQL_BATCH):
        query = (
            Attachment.select(Attachment.ticket, Attachment.filename, Attachment.size,
                              Attachment.content_type, Attachment.sha256)
            .where(Attachment.ticket.in_(chunk))
            .order_by(Attachment.id)
        )
        for ticket_id, filename, size, content_type, sha256 in query.tuples():
            out[ticket_id].append({"filename": filename, "size": size,
                                   "content_type": content_type, "sha256": sha256})
    return out
