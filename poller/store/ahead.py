"""A chunk's look-ups read ahead: one query of each kind at the start of its transaction
answers what decide will ask about every mail of the chunk (poller.ates.lookups), instead of a
few statements per mail, each a round trip on PostgreSQL.

The writes of the transaction change the answers they touch: a ticket opened or completed is
added or taken out, a mail logged drops its answer (the look-up then asks the database again).
What other processes commit meanwhile is settled by the unique indexes the writes meet. A
look-up the read-ahead has no answer for runs the same queries for its one key
(poller.store.store), so each rule's SQL is here only.

Statuses and outcomes are written out in the SQL, not bound: SQLite prepares a statement again
on every run when a bound value meets a column that a partial index filters on. CROSS JOIN
makes SQLite start from the (udf, value) index (left to itself it walks every ticket of the
organization); the join condition is in WHERE, as PostgreSQL takes no ON after CROSS JOIN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from poller.ates.directory import ContactMatch, DeviceMatch, Earlier
from poller.ates.lookups import Lookups, UdfKey
from poller.ates.outcomes import STATUS_COMPLETE, Outcome
from poller.batches import SQL_BATCH, chunks
from poller.store.database import EFFECT_OUTCOMES
from poller.store.engine import Engine


class ReadAhead:
    """The answers read ahead, by key; a key without an answer is asked of the database."""

    def __init__(self) -> None:
        self.earlier: dict[str, Earlier | None] = {}
        self.organizations: dict[UdfKey, list[int]] = {}
        self.devices: dict[UdfKey, list[DeviceMatch]] = {}
        # (ticket id, organization id) of the open tickets, newest first; the id of a ticket
        # the chunk made may be a function that reads it (poller.store.record.NewTicket)
        self.open_tickets: dict[UdfKey, list[tuple[int | Callable[[], int], int]]] = {}
        self.contacts: dict[str, list[ContactMatch]] = {}  # by address, stripped, lower case
        self.names: dict[str, list[int]] = {}  # organization ids by name

    def logged(self, fingerprint: str) -> None:
        """A mail with this fingerprint was logged."""
        self.earlier.pop(fingerprint, None)

    def opened(self, ticket: int | Callable[[], int], organization_id: int,
               keys: Iterable[UdfKey]) -> None:
        """A ticket (its id, or a function that reads it) of the organization with these (UDF
        label, value)s was opened."""
        for key in keys:
            if key in self.open_tickets:
                self.open_tickets[key].insert(0, (ticket, organization_id))

    def open_ticket_ids(self, key: UdfKey, organization_id: int) -> list[int]:
        """Return the ids of the organization's open tickets with the (UDF label, value) KEY,
        newest first (reading the id of a ticket the chunk made, when it is asked for)."""
        found = self.open_tickets.get(key, [])  # none: the ticket UDF does not exist yet
        for index, (ticket, organization) in enumerate(found):
            if callable(ticket) and organization == organization_id:
                found[index] = (ticket(), organization)
        return [ticket for ticket, organization in found  # type: ignore[misc]
                if organization == organization_id]

    def closed(self, ticket_id: int) -> None:
        """The ticket was completed."""
        for found in self.open_tickets.values():
            found[:] = [entry for entry in found if entry[0] != ticket_id]


def read_ahead(db: Engine, udf_id: Callable[[str, str], int | None],
               wanted: Lookups) -> ReadAhead:
    """Return the answers to the look-ups WANTED, read in one query per kind and SQL_BATCH
    keys (UDF_ID gives the id of an (entity, label), None for a UDF that does not exist, whose
    look-ups are left to the database)."""
    ahead = ReadAhead()
    for batch in chunks(sorted(wanted.fingerprints), SQL_BATCH):
        ahead.earlier.update(dict.fromkeys(batch))
        # The fingerprints are a table the log is joined to, not an IN list: given a long
        # list, SQLite would rather scan the log by outcome than search each fingerprint.
        # As delivered_before chooses: a row with an effect first, then the earliest.
        wanted_rows = ", ".join(["(?)"] * len(batch))
        for _half, fingerprint, row_id, ticket_id in sorted(db.sql(
                f"WITH wanted (fingerprint) AS (VALUES {wanted_rows}) "
                "SELECT 0, p.fingerprint, p.id, p.ticket_id FROM wanted w CROSS JOIN "
                "processed_message p WHERE p.fingerprint = w.fingerprint "
                f"AND p.outcome IN {EFFECT_OUTCOMES} UNION ALL "
                "SELECT 1, p.fingerprint, p.id, p.ticket_id FROM wanted w CROSS JOIN "
                "processed_message p WHERE p.fingerprint = w.fingerprint "
                f"AND p.outcome NOT IN {EFFECT_OUTCOMES} "
                f"AND p.outcome <> '{Outcome.QUARANTINED.value}'", batch).fetchall(),
                reverse=True):
            ahead.earlier[fingerprint] = Earlier(row_id, ticket_id)
    for (label, values), udf in _by_udf(wanted.organizations, "organization", udf_id):
        ahead.organizations.update(((label, value), []) for value in values)
        for value, entity_id in db.sql(
                f"SELECT value, entity_id FROM udf_value WHERE udf_id = ? AND value IN "
                f"({_marks(values)})", (udf, *values)).fetchall():
            ahead.organizations[label, value].append(entity_id)
    for (label, values), udf in _by_udf(wanted.devices, "device", udf_id):
        ahead.devices.update(((label, value), []) for value in values)
        for value, device_id, organization_id in db.sql(
                "SELECT v.value, d.id, d.organization_id FROM udf_value v CROSS JOIN device d "
                f"WHERE d.id = v.entity_id AND v.udf_id = ? AND v.value IN ({_marks(values)})",
                (udf, *values)).fetchall():
            ahead.devices[label, value].append(DeviceMatch(device_id, organization_id))
    for (label, values), udf in _by_udf(wanted.open_tickets, "ticket", udf_id):
        ahead.open_tickets.update(((label, value), []) for value in values)
        for value, ticket_id, organization_id in db.sql(
                "SELECT v.value, t.id, t.organization_id FROM udf_value v CROSS JOIN ticket t "
                f"WHERE t.id = v.entity_id AND v.udf_id = ? AND v.value IN ({_marks(values)}) "
                f"AND t.status <> '{STATUS_COMPLETE}' ORDER BY t.id DESC",
                (udf, *values)).fetchall():
            ahead.open_tickets[label, value].append((ticket_id, organization_id))
    _read_contacts(db, ahead, wanted.emails)
    _read_names(db, ahead, wanted.names)
    return ahead


def _read_contacts(db: Engine, ahead: ReadAhead, emails: set[str]) -> None:
    addresses = sorted({email.strip().lower() for email in emails})
    for batch in chunks(addresses, SQL_BATCH):
        ahead.contacts.update((address, []) for address in batch)
        marks = _marks(batch)
        for contact_id, organization_id, *fields in db.sql(
                "SELECT id, organization_id, email, email2, email3 FROM contact WHERE "
                f"email IN ({marks}) OR email2 IN ({marks}) OR email3 IN ({marks}) ORDER BY id",
                (*batch, *batch, *batch)).fetchall():
            # as contacts_by_email: each address the contact has, by its first field that has it
            for address in dict.fromkeys(fields):
                if address in ahead.contacts:
                    ahead.contacts[address].append(
                        ContactMatch(contact_id, organization_id, fields.index(address) + 1))


def _read_names(db: Engine, ahead: ReadAhead, names: set[str]) -> None:
    for batch in chunks(sorted(names), SQL_BATCH):
        ahead.names.update((name, []) for name in batch)
        for name, organization_id in db.sql(
                f"SELECT name, id FROM organization WHERE name IN ({_marks(batch)}) ORDER BY id",
                batch).fetchall():
            ahead.names[name].append(organization_id)


def _by_udf(keys: set[UdfKey], entity: str, udf_id: Callable[[str, str], int | None]
            ) -> Iterable[tuple[tuple[str, list[str]], int]]:
    """Yield ((label, values), UDF id) for the keys, grouped by label, SQL_BATCH values at a
    time; labels without a UDF are left out."""
    by_label: dict[str, list[str]] = {}
    for label, value in sorted(keys):
        by_label.setdefault(label, []).append(value)
    for label, values in by_label.items():
        udf = udf_id(entity, label)
        if udf is None:
            continue
        for batch in chunks(values, SQL_BATCH):
            yield (label, batch), udf


def _marks(values: list) -> str:
    return ", ".join("?" * len(values))
