"""Read-only queries for the commands: tickets with their notes, the processed-mail log, the
event outbox, and the totals that `status` and the metrics report."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from peewee import JOIN, fn

from poller.ates.decision import STATUS_COMPLETE, Outcome
from poller.batches import SQL_BATCH, chunks
from poller.store.database import iso
from poller.store.outbox import DELIVERED, FAILED, PENDING, REJECTED
from poller.store.schema import (
    Attachment,
    Contact,
    Device,
    Organization,
    Outbox,
    PassLog,
    ProcessedMessage,
    Ticket,
    TicketNote,
    UdfDefinition,
    UdfValue,
)


@dataclass(frozen=True)
class PassRecord:
    """One row of pass_log."""

    started: datetime
    finished: datetime
    seconds: float
    ok: bool
    counts: str
    error: str


@dataclass(frozen=True)
class Totals:
    """Everything counted from the database: passes, mails by outcome, open work."""

    passes_ok: int
    passes_failed: int
    mails: dict[str, int]
    open_tickets: int
    pending_steps: int
    failing_steps: int  # pending steps the server refused when last tried
    step_error: str  # why, for the most recent of them
    last_pass: PassRecord | None
    last_good_pass: PassRecord | None
    undelivered_events: int = 0
    oldest_undelivered: datetime | None = None  # when the oldest undelivered event was written
    rejected_events: int = 0  # refused [webhook] max_attempts times, no longer tried


def decided(mailbox: str, folder: str, uidvalidity: int, uids: list[int]) -> set[int]:
    """Return those of the given UIDs that the processed-mail log of mailbox has a decision
    for."""
    found: set[int] = set()
    for chunk in chunks(uids, SQL_BATCH):
        query = ProcessedMessage.select(ProcessedMessage.uid).where(
            (ProcessedMessage.mailbox == mailbox)
            & (ProcessedMessage.folder == folder)
            & (ProcessedMessage.uidvalidity == uidvalidity)
            & (ProcessedMessage.uid.in_(chunk))
        )
        found.update(uid for (uid,) in query.tuples())
    return found


def totals(mailbox: str) -> Totals:
    """Return the totals of one mailbox (its [imap] name) in the open database: its passes, its
    mail and the tickets it created."""
    mine = ProcessedMessage.mailbox == mailbox
    passes = dict(PassLog.select(PassLog.ok, fn.COUNT(PassLog.id)).where(
        PassLog.mailbox == mailbox).group_by(PassLog.ok).tuples())
    by_outcome = dict(ProcessedMessage.select(ProcessedMessage.outcome, fn.COUNT(
        ProcessedMessage.id)).where(mine).group_by(ProcessedMessage.outcome).tuples())
    passes_of = PassLog.select().where(PassLog.mailbox == mailbox).order_by(PassLog.id.desc())
    undelivered, oldest = Outbox.select(fn.COUNT(Outbox.id), fn.MIN(Outbox.created)).where(
        Outbox.status.in_((PENDING, FAILED))).tuples().get()
    rejected = Outbox.select().where(Outbox.status == REJECTED).count()
    failing = ProcessedMessage.select(ProcessedMessage.step_error).where(
        mine & (ProcessedMessage.mailbox_done == False)  # noqa: E712
        & (ProcessedMessage.step_error != ""))
    latest = failing.order_by(ProcessedMessage.updated.desc(), ProcessedMessage.id.desc()).first()
    return Totals(
        passes_ok=passes.get(True, 0),
        passes_failed=passes.get(False, 0),
        mails={outcome.value: by_outcome.get(outcome.value, 0) for outcome in Outcome},
        open_tickets=Ticket.select().where((Ticket.status != STATUS_COMPLETE)
                                           & (Ticket.mailbox == mailbox)).count(),
        pending_steps=ProcessedMessage.select().where(
            mine & (ProcessedMessage.mailbox_done == False)).count(),  # noqa: E712
        failing_steps=failing.count(),
        step_error=latest.step_error if latest else "",
        last_pass=_pass(passes_of.first()),
        last_good_pass=_pass(passes_of.where(PassLog.ok == True).first()),  # noqa: E712
        undelivered_events=undelivered,
        oldest_undelivered=datetime.fromisoformat(oldest) if oldest else None,
        rejected_events=rejected,
    )


def _pass(row: PassLog | None) -> PassRecord | None:
    if row is None:
        return None
    return PassRecord(started=datetime.fromisoformat(row.started),
                      finished=datetime.fromisoformat(row.finished), seconds=float(row.seconds),
                      ok=bool(row.ok), counts=row.counts, error=row.error)


def tickets(status: str | None = None, number: str | None = None, queue: str | None = None,
            priority: str | None = None) -> list[dict[str, object]]:
    """Return tickets (oldest first) as JSON-ready dicts with their UDFs, notes and attachments;
    only those with the given status, number, queue and priority, where given."""
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
    if queue:
        query = query.where(Ticket.queue == queue)
    if priority:
        query = query.where(Ticket.priority == priority)
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
            "mailbox": t.mailbox,
            "queue": t.queue,
            "priority": t.priority,
            "source": t.source,
            "issue_type": t.issue_type,
            "sub_issue": t.sub_issue,
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


def messages(outcome: str | None = None, limit: int = 0,
             since: datetime | None = None) -> list[dict[str, object]]:
    """Return the processed-mail log, newest first: at most limit rows (0: all), those written
    since `since` if given."""
    query = (
        ProcessedMessage.select(ProcessedMessage, Ticket.number.alias("ticket_number"))
        .join(Ticket, join_type=JOIN.LEFT_OUTER)
        .order_by(ProcessedMessage.id.desc())
        .objects()
    )
    if outcome:
        query = query.where(ProcessedMessage.outcome == outcome)
    if since is not None:
        query = query.where(ProcessedMessage.created >= iso(since))
    if limit:
        query = query.limit(limit)
    return [
        {
            "message_id": m.message_id,
            "subject": m.subject,
            "outcome": m.outcome,
            "reason": m.reason,
            "ticket": m.ticket_number,
            "mailbox": m.mailbox,
            "folder": m.folder,
            "uidvalidity": m.uidvalidity,
            "uid": m.uid,
            "mailbox_done": m.mailbox_done,
            "created": m.created,
        }
        for m in query
    ]


def outbox(status: str | None = None, limit: int = 0,
           since: datetime | None = None) -> list[dict[str, object]]:
    """Return the events of the outbox without their bodies, newest first: at most limit rows
    (0: all), those written since `since` if given."""
    query = Outbox.select().order_by(Outbox.id.desc())
    if status:
        query = query.where(Outbox.status == status)
    if since is not None:
        query = query.where(Outbox.created >= iso(since))
    if limit:
        query = query.limit(limit)
    return [
        {
            "id": e.delivery_id,
            "event": e.event,
            "ticket": e.ticket_number,
            "status": e.status,
            "attempts": e.attempts,
            "last_error": e.last_error,
            "next_attempt": None if e.status == DELIVERED else e.next_attempt,
            "created": e.created,
            "delivered": e.delivered,
        }
        for e in query
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
