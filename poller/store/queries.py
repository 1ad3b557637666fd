"""Read-only queries for the commands: tickets with their notes, the processed-mail log, the
event outbox, and the totals that `status` and the metrics report. Each takes the engine it
reads (plain SQL, the same on both engines)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from poller.ates.outcomes import STATUS_COMPLETE, Outcome
from poller.batches import SQL_BATCH, chunks
from poller.store.database import iso
from poller.store.engine import Engine
from poller.store.outbox import DELIVERED, FAILED, PENDING, REJECTED


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


_PASS = "SELECT started, finished, seconds, ok, counts, error FROM pass_log WHERE mailbox = ?"


def totals(db: Engine, mailbox: str) -> Totals:
    """Return the totals of one mailbox (its [imap] name): its passes, its mail and the
    tickets it created."""
    passes = {bool(ok): n for ok, n in db.sql(
        "SELECT ok, COUNT(*) FROM pass_log WHERE mailbox = ? GROUP BY ok", (mailbox,))}
    by_outcome = dict(db.sql("SELECT outcome, COUNT(*) FROM processed_message WHERE mailbox = ? "
                             "GROUP BY outcome", (mailbox,)).fetchall())
    undelivered, oldest = db.sql("SELECT COUNT(*), MIN(created) FROM outbox WHERE status IN "
                                 "(?, ?)", (PENDING, FAILED)).fetchone()
    pending, failing = db.sql(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN step_error <> '' THEN 1 ELSE 0 END), 0) "
        "FROM processed_message WHERE mailbox = ? AND NOT mailbox_done", (mailbox,)).fetchone()
    latest = db.sql("SELECT step_error FROM processed_message WHERE mailbox = ? AND NOT "
                    "mailbox_done AND step_error <> '' ORDER BY updated DESC, id DESC LIMIT 1",
                    (mailbox,)).fetchone()
    (open_tickets,) = db.sql("SELECT COUNT(*) FROM ticket WHERE status <> ? AND mailbox = ?",
                             (STATUS_COMPLETE, mailbox)).fetchone()
    (rejected,) = db.sql("SELECT COUNT(*) FROM outbox WHERE status = ?", (REJECTED,)).fetchone()
    return Totals(
        passes_ok=passes.get(True, 0),
        passes_failed=passes.get(False, 0),
        mails={outcome.value: by_outcome.get(outcome.value, 0) for outcome in Outcome},
        open_tickets=open_tickets,
        pending_steps=pending,
        failing_steps=failing,
        step_error=latest[0] if latest else "",
        last_pass=_pass(db.sql(f"{_PASS} ORDER BY id DESC LIMIT 1", (mailbox,)).fetchone()),
        last_good_pass=_pass(db.sql(f"{_PASS} AND ok ORDER BY id DESC LIMIT 1",
                                    (mailbox,)).fetchone()),
        undelivered_events=undelivered,
        oldest_undelivered=datetime.fromisoformat(oldest) if oldest else None,
        rejected_events=rejected,
    )


def _pass(row: tuple | None) -> PassRecord | None:
    if row is None:
        return None
    started, finished, seconds, ok, counts, error = row
    return PassRecord(started=datetime.fromisoformat(started),
                      finished=datetime.fromisoformat(finished), seconds=float(seconds),
                      ok=bool(ok), counts=counts, error=error)


_TICKET_FIELDS = ("number", "title", "description", "status", "organization", "device",
                  "contact", "mailbox", "queue", "priority", "source", "issue_type",
                  "sub_issue", "occurrences", "created", "updated", "completed")


def tickets(db: Engine, status: str | None = None, number: str | None = None,
            queue: str | None = None, priority: str | None = None) -> list[dict[str, object]]:
    """Return tickets (oldest first) as JSON-ready dicts with their UDFs, notes and attachments;
    only those with the given status, number, queue and priority, where given."""
    where, params = [], []
    for column, value in (("status", status), ("number", number), ("queue", queue),
                          ("priority", priority)):
        if value:
            where.append(f"t.{column} = ?")
            params.append(value)
    rows = db.sql(
        "SELECT t.id, t.number, t.title, t.description, t.status, o.name, d.name, c.email, "
        "t.mailbox, t.queue, t.priority, t.source, t.issue_type, t.sub_issue, t.occurrences, "
        "t.created, t.updated, t.completed FROM ticket t "
        "JOIN organization o ON o.id = t.organization_id "
        "LEFT JOIN device d ON d.id = t.device_id LEFT JOIN contact c ON c.id = t.contact_id"
        f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY t.id", params).fetchall()
    ids = [row[0] for row in rows]
    udfs, notes, files = _udfs(db, ids), _notes(db, ids), _attachments(db, ids)
    out = []
    for ticket_id, *values in rows:
        fields = dict(zip(_TICKET_FIELDS, values, strict=True))
        out.append({**{k: fields[k] for k in _TICKET_FIELDS[:13]}, "udfs": udfs.get(ticket_id, {}),
                    **{k: fields[k] for k in _TICKET_FIELDS[13:]},
                    "notes": notes.get(ticket_id, []), "attachments": files.get(ticket_id, [])})
    return out


def _newest(table: str, where: list[str], params: list[object], limit: int,
            since: datetime | None) -> str:
    """Return the WHERE, ORDER BY (newest first) and LIMIT of a listing of the table (its name
    or alias), adding to params."""
    if since is not None:
        where.append(f"{table}.created >= ?")
        params.append(iso(since))
    text = f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {table}.id DESC"
    if limit:
        params.append(limit)
        text += " LIMIT ?"
    return text


def messages(db: Engine, outcome: str | None = None, limit: int = 0,
             since: datetime | None = None) -> list[dict[str, object]]:
    """Return the processed-mail log, newest first: at most limit rows (0: all), those written
    since `since` if given."""
    names = ("message_id", "subject", "outcome", "reason", "ticket", "mailbox", "folder",
             "uidvalidity", "uid", "mailbox_done", "created")
    where, params = (["m.outcome = ?"], [outcome]) if outcome else ([], [])
    rows = db.sql(
        "SELECT m.message_id, m.subject, m.outcome, m.reason, t.number, m.mailbox, m.folder, "
        "m.uidvalidity, m.uid, m.mailbox_done, m.created FROM processed_message m "
        "LEFT JOIN ticket t ON t.id = m.ticket_id"
        + _newest("m", where, params, limit, since),
        params).fetchall()
    return [{**dict(zip(names, row, strict=True)), "mailbox_done": bool(row[9])} for row in rows]


def outbox(db: Engine, status: str | None = None, limit: int = 0,
           since: datetime | None = None) -> list[dict[str, object]]:
    """Return the events of the outbox without their bodies, newest first: at most limit rows
    (0: all), those written since `since` if given."""
    names = ("id", "event", "ticket", "status", "attempts", "last_error", "next_attempt",
             "created", "delivered")
    where, params = (["status = ?"], [status]) if status else ([], [])
    rows = db.sql(
        "SELECT delivery_id, event, ticket_number, status, attempts, last_error, next_attempt, "
        "created, delivered FROM outbox" + _newest("outbox", where, params, limit, since),
        params).fetchall()
    events = [dict(zip(names, row, strict=True)) for row in rows]
    for event in events:
        if event["status"] == DELIVERED:
            event["next_attempt"] = None
    return events


def _udfs(db: Engine, ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = defaultdict(dict)
    for chunk in chunks(ids, SQL_BATCH):
        for ticket_id, label, value in db.sql(
                "SELECT v.entity_id, d.label, v.value FROM udf_value v JOIN udf_definition d "
                "ON d.id = v.udf_id WHERE d.entity = 'ticket' AND v.entity_id IN "
                f"({', '.join('?' * len(chunk))}) ORDER BY v.id", chunk).fetchall():
            out[ticket_id][label] = value
    return out


def _notes(db: Engine, ids: list[int]) -> dict[int, list[dict[str, object]]]:
    out: dict[int, list[dict[str, object]]] = defaultdict(list)
    for chunk in chunks(ids, SQL_BATCH):
        for ticket_id, kind, title, text, created in db.sql(
                "SELECT ticket_id, kind, title, text, created FROM ticket_note WHERE ticket_id "
                f"IN ({', '.join('?' * len(chunk))}) ORDER BY id", chunk).fetchall():
            out[ticket_id].append({"kind": kind, "title": title, "text": text,
                                   "created": created})
    return out


def _attachments(db: Engine, ids: list[int]) -> dict[int, list[dict[str, object]]]:
    out: dict[int, list[dict[str, object]]] = defaultdict(list)
    for chunk in chunks(ids, SQL_BATCH):
        for ticket_id, filename, size, content_type, sha256 in db.sql(
                "SELECT ticket_id, filename, size, content_type, sha256 FROM attachment "
                f"WHERE ticket_id IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                chunk).fetchall():
            out[ticket_id].append({"filename": filename, "size": size,
                                   "content_type": content_type, "sha256": sha256})
    return out
