"""Read-only queries of the web view: tickets page by page, one ticket with everything it came
with, the quarantine and the undelivered events.

Each function takes an open database (poller.store.readonly.open_read_only) and reads a bounded
number of rows through an index, however large the store. The SQL is plain and the same on
every engine: `?` placeholders (turned into the engine's own), no engine's own functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from poller.ates.outcomes import STATUS_COMPLETE, Outcome
from poller.store.engine import Engine
from poller.store.outbox import DROPPED, FAILED, PENDING, REJECTED

PAGE = 50  # rows per page
WINDOW = 10_000  # tickets a filter without an index looks at (the newest)
COUNT_CAP = 10_000  # counts stop here: "10,000+" (an exact count would read every row)
DETAIL_ROWS = 500  # a ticket's notes, mails and events shown at most (each kind)
OPEN = "open"  # the status filter that means any status but Complete
ANY = "any"
UNDELIVERED = (PENDING, FAILED, REJECTED, DROPPED)  # every status but delivered


def rows(db: Engine, sql: str, params: tuple | list = ()) -> list[dict[str, object]]:
    """Return the rows of SQL (written with `?` placeholders) as dicts by column name."""
    cursor = db.sql(sql, tuple(params))
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass(frozen=True)
class TicketFilter:
    """What the ticket list shows: status OPEN (default), ANY or one status; the rest exact
    matches where given."""

    status: str = OPEN
    organization: int | None = None  # organization.id
    device: str | None = None  # device name (in any organization)
    queue: str | None = None
    priority: str | None = None


@dataclass(frozen=True)
class Page:
    """A page of rows, newest first; `older` is the `before` of the next page (None: last)."""

    rows: list[dict[str, object]]
    older: int | None
    count: int  # of all pages, at most COUNT_CAP + 1
    capped: bool  # more than COUNT_CAP


def _conditions(db: Engine, want: TicketFilter) -> tuple[str, list[object]]:
    """Return the WHERE clause over ticket t for WANT, and its parameters.

    Organization, device and the open status are read through indexes (the partial ones for
    open tickets); a status other than open next to an organization or device, a queue and a
    priority are not: with any of those, only the newest WINDOW tickets of the indexed part
    are looked at, so that no filter reads more than that many rows.
    """
    indexed: list[str] = []
    params: list[object] = []
    other: list[str] = []
    other_params: list[object] = []
    if want.status == OPEN:
        indexed.append(f"t.status != '{STATUS_COMPLETE}'")  # literal: the partial indexes
    elif want.status != ANY:
        (other if want.organization is not None or want.device else indexed).append(
            "t.status = ?")
        (other_params if other else params).append(want.status)
    if want.organization is not None:
        indexed.append("t.organization_id = ?")
        params.append(want.organization)
    if want.device:
        ids = [r["id"] for r in rows(db, "SELECT id FROM device WHERE name = ? LIMIT 100",
                                     (want.device,))] or [0]
        indexed.append(f"t.device_id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    for column in ("queue", "priority"):
        if getattr(want, column):
            other.append(f"t.{column} = ?")
            other_params.append(getattr(want, column))
    clause = " AND ".join(indexed) or "1 = 1"
    if not other:
        return clause, params
    return (f"t.id IN (SELECT t.id FROM ticket t WHERE {clause} ORDER BY t.id DESC "
            f"LIMIT {WINDOW}) AND {' AND '.join(other)}", [*params, *other_params])


def windowed(want: TicketFilter) -> bool:
    """Return whether the list of WANT looks at the newest WINDOW tickets only."""
    return bool(want.queue or want.priority or (
        want.status not in (OPEN, ANY) and (want.organization is not None or want.device)))


def ticket_page(db: Engine, want: TicketFilter, before: int | None = None,
                size: int = PAGE) -> Page:
    """Return the tickets WANT selects, newest first, `size` of them from (below) ticket id
    `before`, with how many there are in all (up to COUNT_CAP)."""
    clause, params = _conditions(db, want)
    count = rows(db, f"SELECT count(*) AS n FROM (SELECT 1 FROM ticket t WHERE {clause} "
                     f"LIMIT {COUNT_CAP + 1}) capped", params)[0]["n"]
    if before is not None:
        clause += " AND t.id < ?"
        params = [*params, before]
    found = rows(db, f"""
        SELECT t.id, t.number, t.title, t.status, t.organization_id, o.name AS organization,
               d.name AS device, t.queue, t.priority, t.occurrences, t.created, t.updated
        FROM ticket t
        JOIN organization o ON o.id = t.organization_id
        LEFT JOIN device d ON d.id = t.device_id
        WHERE {clause} ORDER BY t.id DESC LIMIT ?""", [*params, size + 1])
    older = found[size - 1]["id"] if len(found) > size else None
    return Page(found[:size], older, count, count > COUNT_CAP)


def organizations(db: Engine, limit: int = 1000) -> list[dict[str, object]]:
    """Return the organizations (id, name) by name, for the list's filter."""
    return rows(db, "SELECT id, name FROM organization ORDER BY name, id LIMIT ?", (limit,))


def ticket(db: Engine, number: str) -> dict[str, object] | None:
    """Return ticket NUMBER with its organization, device, contact, UDFs, notes (in order),
    attachments (names and sizes), the mails it came from and its webhook events; None when
    there is no such ticket. Notes, mails and events: the first DETAIL_ROWS of each, and
    `*_count` says how many there are."""
    found = rows(db, """
        SELECT t.id, t.number, t.title, t.description, t.status, t.occurrences, t.created,
               t.updated, t.completed, t.mailbox, t.queue, t.priority, t.source, t.issue_type,
               t.sub_issue, t.organization_id, o.name AS organization, d.name AS device,
               c.email AS contact
        FROM ticket t
        JOIN organization o ON o.id = t.organization_id
        LEFT JOIN device d ON d.id = t.device_id
        LEFT JOIN contact c ON c.id = t.contact_id
        WHERE t.number = ?""", (number,))
    if not found:
        return None
    one = found[0]
    key = (one["id"],)
    one["udfs"] = rows(db, """
        SELECT u.label, v.value FROM udf_value v JOIN udf_definition u ON u.id = v.udf_id
        WHERE u.entity = 'ticket' AND v.entity_id = ? ORDER BY u.label""", key)
    parts = {
        "notes": "SELECT id, kind, title, text, created FROM ticket_note WHERE ticket_id = ? "
                 "ORDER BY id",
        "attachments": "SELECT filename, content_type, size, created FROM attachment "
                       "WHERE ticket_id = ? ORDER BY id",
        "messages": "SELECT message_id, subject, outcome, reason, mailbox, folder, created "
                    "FROM processed_message WHERE ticket_id = ? ORDER BY id",
        "events": "SELECT delivery_id, event, status, attempts, last_error, created, delivered "
                  "FROM outbox WHERE ticket_id = ? ORDER BY id",
    }
    for name, sql in parts.items():
        one[name] = rows(db, f"{sql} LIMIT {DETAIL_ROWS}", key)
        one[f"{name}_count"] = len(one[name]) if len(one[name]) < DETAIL_ROWS else rows(
            db, f"SELECT count(*) AS n FROM ({sql}) every", key)[0]["n"]
    return one


def quarantine(db: Engine, before: int | None = None, size: int = PAGE) -> Page:
    """Return the quarantined mail, newest first: Message-ID, subject, reason, when, where."""
    return _log_page(db, "m.outcome = ?", [Outcome.QUARANTINED.value], before, size, """
        SELECT m.id, m.message_id, m.subject, m.reason, m.mailbox, m.folder, m.mailbox_done,
               m.created FROM processed_message m""", "m.id DESC")


def undelivered(db: Engine, before: int | None = None, size: int = PAGE) -> Page:
    """Return the events not delivered (yet), newest first, with their tickets' numbers."""
    marks = ", ".join("?" * len(UNDELIVERED))
    return _log_page(db, f"m.status IN ({marks})", list(UNDELIVERED), before, size, """
        SELECT m.id, m.delivery_id, m.event, m.ticket_number, m.status, m.attempts,
               m.last_error, m.created, m.next_attempt FROM outbox m""", "m.id DESC")


def _log_page(db: Engine, where: str, params: list[object], before: int | None,
              size: int, select: str, order: str) -> Page:
    table = select.rsplit("FROM", 1)[1]
    count = rows(db, f"SELECT count(*) AS n FROM (SELECT 1 FROM {table} WHERE {where} "
                     f"LIMIT {COUNT_CAP + 1}) capped", params)[0]["n"]
    if before is not None:
        where += " AND m.id < ?"
        params = [*params, before]
    found = rows(db, f"{select} WHERE {where} ORDER BY {order} LIMIT ?", [*params, size + 1])
    older = found[size - 1]["id"] if len(found) > size else None
    return Page(found[:size], older, count, count > COUNT_CAP)
