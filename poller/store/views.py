"""SQL views for people who look at the database with sqlite3 or psql, and the ticket as events
show it. The views are the same on both engines; the few functions they differ in are in
_DIALECT.

Views hold no data: every schema upgrade drops and creates them again after the tables are
upgraded, so a view may name any column of the current schema.
"""

from __future__ import annotations

import json

from poller.ates.outcomes import STATUS_COMPLETE
from poller.store.engine import Engine

# A ticket's UDF values as one JSON object (text) by label, e.g. {"Kaseya Alert ID": "8932"}.
_UDFS = ("(SELECT {json_object} FROM (SELECT u.label AS label, v.value AS value"
         " FROM udf_definition u CROSS JOIN udf_value v"
         " WHERE v.udf_id = u.id AND u.entity = 'ticket' AND v.entity_id = t.id"
         " ORDER BY u.label) AS udfs)")

# what the two engines spell differently: engine → name → SQL
_DIALECT = {
    "sqlite": {
        "json_object": "json_group_object(label, value)",
        "actor": "json_extract(body, '$.by')",
        "waiting": "CAST(strftime('%s', 'now') - strftime('%s', created) AS INTEGER)",
    },
    "postgresql": {
        "json_object": "COALESCE(json_object_agg(label, value ORDER BY label)::text, '{}')",
        "actor": "CAST(body AS json) ->> 'by'",
        "waiting": "CAST(extract(epoch FROM now() - CAST(created AS timestamptz)) AS INTEGER)",
    },
}

# The ticket as the views show it and as an event's "ticket" carries it: (name, SQL over ticket
# t, organization o, device d). A new ticket field is one more line here.
TICKET_COLUMNS = (
    ("number", "t.number"),
    ("title", "t.title"),
    ("status", "t.status"),
    ("organization", "o.name"),
    ("device", "d.name"),
    ("occurrences", "t.occurrences"),
    ("queue", "t.queue"),
    ("priority", "t.priority"),
    ("source", "t.source"),
    ("issue_type", "t.issue_type"),
    ("sub_issue", "t.sub_issue"),
    ("mailbox", "t.mailbox"),
    ("udfs", _UDFS),
)
_JSON_COLUMNS = {"udfs"}

_TICKET_SUMMARY = f"""
SELECT t.id AS id,
       {", ".join(f"{sql} AS {name}" for name, sql in TICKET_COLUMNS)},
       c.email AS contact, t.created AS created, t.updated AS updated, t.completed AS completed
FROM ticket t
JOIN organization o ON o.id = t.organization_id
LEFT JOIN device d ON d.id = t.device_id
LEFT JOIN contact c ON c.id = t.contact_id
ORDER BY t.id"""

_OPEN_TICKETS = f"SELECT * FROM ticket_summary WHERE status != '{STATUS_COMPLETE}' ORDER BY id"

_OUTBOX_EVENTS = """
SELECT delivery_id AS id, event, ticket_number AS ticket, {actor} AS actor,
       status, attempts, last_error, created, next_attempt, delivered,
       CASE WHEN delivered IS NULL THEN {waiting} END AS waiting_seconds
FROM outbox ORDER BY outbox.id"""

_ALERTS_PER_DAY = """
SELECT substr(m.created, 1, 10) AS day, o.name AS organization, count(*) AS alerts,
       sum(CASE WHEN m.outcome = 'created' THEN 1 ELSE 0 END) AS created,
       sum(CASE WHEN m.outcome = 'appended' THEN 1 ELSE 0 END) AS appended,
       sum(CASE WHEN m.outcome = 'completed' THEN 1 ELSE 0 END) AS completed
FROM processed_message m
JOIN ticket t ON t.id = m.ticket_id
JOIN organization o ON o.id = t.organization_id
WHERE m.outcome IN ('created', 'appended', 'completed')
GROUP BY day, o.id
ORDER BY day, organization"""

# name → SQL, in the order they are created (a view may use the ones before it)
VIEWS = {
    "ticket_summary": _TICKET_SUMMARY,
    "open_tickets": _OPEN_TICKETS,
    "outbox_events": _OUTBOX_EVENTS,
    "alerts_per_day": _ALERTS_PER_DAY,
}


def create_views(db: Engine) -> None:
    """Drop the views and create them as defined here, in the caller's transaction."""
    for name in reversed(VIEWS):
        db.sql(f"DROP VIEW IF EXISTS {name}")
    for name, sql in VIEWS.items():
        db.sql(f"CREATE VIEW {name} AS {sql.strip().format(**_DIALECT[db.dialect])}")


def ticket_snapshot(db: Engine, ticket_id: int) -> dict[str, object]:
    """Return the ticket's TICKET_COLUMNS as they are now (in the caller's transaction)."""
    names = [name for name, _ in TICKET_COLUMNS]
    row = db.sql(f"SELECT {', '.join(names)} FROM ticket_summary WHERE id = ?",
                 (ticket_id,)).fetchone()
    if row is None:
        raise LookupError(f"ticket id {ticket_id} does not exist")
    return {name: json.loads(value) if name in _JSON_COLUMNS else value
            for name, value in zip(names, row, strict=True)}
