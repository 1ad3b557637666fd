"""The ticket store: the look-ups the rules make (the Directory protocol), the UDF definitions,
and the processed-mail and pass logs.

Ticket writes live in poller.store.record; both work on the database opened by
poller.store.database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from poller.ates import udf
from poller.ates.outcomes import Outcome
from poller.batches import SQL_BATCH, chunks
from poller.store.database import iso
from poller.store.engine import Engine
from poller.store.lease import check_fence

if TYPE_CHECKING:
    from poller.ates.directory import ContactMatch, DeviceMatch, Earlier, TicketRef
    from poller.ates.lookups import Lookups
    from poller.store.ahead import ReadAhead

LOCAL_ID = 0  # the id of the MSP's own organization in a store that passes made

# The outcomes whose mail a reply may answer: the mail a ticket was made from, appended,
# completed or noted with.
THREADED = (Outcome.CREATED, Outcome.APPENDED, Outcome.COMPLETED, Outcome.NOTED)
# written out in the statements, not bound (see poller.store.ahead)
THREADED_OUTCOMES = "(" + ", ".join(f"'{outcome.value}'" for outcome in THREADED) + ")"
# the ReadAhead answers of a Lookups field whose name differs
_ANSWERS = {"fingerprints": "earlier", "emails": "contacts"}


@dataclass(frozen=True)
class PendingStep:
    """A decision whose mailbox step is not done yet; error is why the server last refused it."""

    row_id: int
    uidvalidity: int
    uid: int
    action: str
    purpose: str
    error: str


class Store:
    """Reads for the rules (the Directory protocol) and the processed-mail log."""

    def __init__(self, db: Engine, local_organization: str):
        """Read what the look-ups cache; nothing is written (see prepare)."""
        self.db = db
        self._local_name = local_organization
        self._udf_ids: dict[tuple[str, str], int] = self._all_udfs()
        local = self._rows("SELECT id FROM organization WHERE is_local", ())
        self._local_id = local[0][0] if local else LOCAL_ID
        self._org_names: dict[int, str] = {}
        # (mailbox, epoch) of the lease a pass holds (PostgreSQL): its transactions check it
        self.fence: tuple[str, int] | None = None
        self._sources: set[str] = set()  # sources whose UDFs are known to exist
        # the answers of a chunk's look-ups, read at the start of its transaction (read_ahead)
        self.ahead: ReadAhead | None = None

    def check_fence(self) -> None:
        """At the start of a pass's transaction: raise LeaseLost when another instance took
        the mailbox over (nothing to check without a lease)."""
        if self.fence is not None:
            check_fence(self.db, self.fence)

    def read_ahead(self, wanted: Lookups) -> None:
        """Answer the look-ups WANTED from now on with what the database says now (call it in
        the transaction that decides, and forget_ahead when it ends)."""
        from poller.store.ahead import read_ahead  # not for a pass without mail

        self.ahead = read_ahead(self.db, self._known_udf, wanted)

    def forget_ahead(self) -> None:
        self.ahead = None

    def _answered(self, field: str, key: object) -> ReadAhead:
        """Return the read-ahead when it answers KEY of FIELD (a field of Lookups), else the
        answer for that one key, read now."""
        ahead = self.ahead
        if ahead is not None and key in getattr(ahead, _ANSWERS.get(field, field)):
            return ahead
        from poller.ates.lookups import Lookups
        from poller.store.ahead import read_ahead

        return read_ahead(self.db, self._known_udf, Lookups(**{field: {key}}))

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    # -- Directory -------------------------------------------------------------------------

    def local_organization_id(self) -> int:
        return self._local_id

    def organization_name(self, organization_id: int) -> str:
        if organization_id not in self._org_names:
            rows = self._rows("SELECT name FROM organization WHERE id = ?", (organization_id,))
            self._org_names[organization_id] = rows[0][0] if rows else \
                f"organization {organization_id}"
        return self._org_names[organization_id]

    # The look-ups below are answered from the chunk's read-ahead when it has the key, else by
    # the same queries for just this key (poller.store.ahead): each rule's SQL is written once.

    def organizations_by_udf(self, label: str, value: str) -> list[int]:
        key = (label, value)
        return self._answered("organizations", key).organizations.get(key, [])

    def organizations_by_name(self, name: str) -> list[int]:
        return self._answered("names", name).names[name]

    def contacts_by_email(self, email: str) -> list[ContactMatch]:
        address = email.strip().lower()
        return self._answered("emails", address).contacts[address]

    def devices_by_udf(self, label: str, value: str) -> list[DeviceMatch]:
        key = (label, value)
        return self._answered("devices", key).devices.get(key, [])

    def open_tickets_by_udf(self, organization_id: int, label: str, value: str) -> list[int]:
        key = (label, value)
        return self._answered("open_tickets", key).open_ticket_ids(key, organization_id)

    def ticket_by_number(self, number: str) -> TicketRef | None:
        rows = self._rows("SELECT id, number, organization_id, status FROM ticket WHERE number = ?",
                          (number.strip(),))
        return _ticket(rows)

    def ticket_by_message_ids(self, message_ids: tuple[str, ...]) -> TicketRef | None:
        """Return the ticket a mail with one of these Message-IDs was made from, appended or
        noted with (the latest such mail's), or None. An index search on the Message-ID."""
        if not message_ids:
            return None
        marks = ", ".join("?" * len(message_ids))
        rows = self._rows(
            "SELECT t.id, t.number, t.organization_id, t.status FROM processed_message p "
            f"JOIN ticket t ON t.id = p.ticket_id WHERE p.message_id IN ({marks}) "
            f"AND p.outcome IN {THREADED_OUTCOMES} ORDER BY p.id DESC LIMIT 1", message_ids)
        return _ticket(rows)

    def missed_ticket(self, name: str) -> TicketRef | None:
        """Return the ticket the misses of the [[expect]] entry opened, or None."""
        rows = self._rows("SELECT t.id, t.number, t.organization_id, t.status FROM expected_mail "
                          "e JOIN ticket t ON t.id = e.ticket_id WHERE e.name = ?", (name,))
        return _ticket(rows)

    def _all_udfs(self) -> dict[tuple[str, str], int]:
        return {(entity, label): udf_id for udf_id, entity, label in
                self._rows("SELECT id, entity, label FROM udf_definition", ())}

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[tuple]:
        """Run one of the per-mail statements: plain SQL, as peewee's query building costs
        about a hundred times more than the indexed look-up itself."""
        return self.db.sql(sql, params).fetchall()

    # -- UDF definitions ---------------------------------------------------------------------

    def _known_udf(self, entity: str, label: str) -> int | None:
        """Return the id of a UDF definition, or None if there is none (yet): another process
        on the same database (a second mailbox) may have created it since it was cached."""
        key = (entity, label)
        if key not in self._udf_ids:
            rows = self._rows("SELECT id FROM udf_definition WHERE entity = ? AND label = ?", key)
            if not rows:
                return None
            self._udf_ids[key] = rows[0][0]
        return self._udf_ids[key]

    def udf_id(self, entity: str, label: str, source: str, kind: str, now: datetime) -> int:
        """Return the id of a UDF definition, creating it the first time it is needed."""
        key = (entity, label)
        if key not in self._udf_ids:
            self.db.sql("INSERT INTO udf_definition (entity, label, source, kind, created) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity, label) DO NOTHING",
                        (entity, label, source, kind, iso(now)))
            self._udf_ids[key] = self._rows("SELECT id FROM udf_definition WHERE entity = ? "
                                            "AND label = ?", key)[0][0]
        return self._udf_ids[key]

    def ensure_source(self, source: str, now: datetime) -> None:
        """Create the UDFs of a partner application the first time its name is seen."""
        if source in self._sources:
            return
        for kind, entity in udf.ENTITY_OF.items():
            self.udf_id(entity, udf.label(source, kind), source, kind, now)
        self._sources.add(source)

    def forget_cached_udfs(self) -> None:
        """Drop the UDF id cache, e.g. after a transaction that created some was rolled back."""
        self._udf_ids = self._all_udfs()
        self._sources.clear()

    # -- processed-mail log ------------------------------------------------------------------

    def decided(self, mailbox: str, folder: str, uidvalidity: int, uids: list[int]) -> set[int]:
        """Return those of the given UIDs that the log already has a decision for."""
        return decided(self.db, mailbox, folder, uidvalidity, uids)

    def pending(self, mailbox: str, folder: str) -> list[PendingStep]:
        """Return the decisions of mailbox in folder whose mailbox step is not done, oldest
        first."""
        rows = self._rows(
            "SELECT id, uidvalidity, uid, action, purpose, step_error FROM processed_message "
            "WHERE NOT mailbox_done AND mailbox = ? AND folder = ? ORDER BY id",
            (mailbox, folder))
        return [PendingStep(*row) for row in rows]

    def replan(self, steps: list[tuple[int, str]], now: datetime) -> None:
        """Record (row id, step) of pending steps planned again; a refusal of the old one is
        forgotten."""
        with self.db.atomic():
            for row_id, action in steps:
                self.db.sql("UPDATE processed_message SET action = ?, step_error = '', "
                            "updated = ? WHERE id = ?", (action, iso(now), row_id))

    def refuse(self, refusals: list[tuple[int, str]], now: datetime) -> None:
        """Record (row id, reason) of mailbox steps the server refused; they stay pending."""
        with self.db.atomic():
            for row_id, reason in refusals:
                self.db.sql("UPDATE processed_message SET step_error = ?, updated = ? "
                            "WHERE id = ?", (reason, iso(now), row_id))

    def delivered_before(self, fingerprint: str) -> Earlier | None:
        """Return the earlier log row of the same mail if it had an effect, else None."""
        return self._answered("fingerprints", fingerprint).earlier[fingerprint]

    def mark_done(self, row_ids: list[int], now: datetime) -> None:
        """Record that the mailbox step of these log rows has happened."""
        for chunk in chunks(row_ids, SQL_BATCH):
            self.db.sql("UPDATE processed_message SET mailbox_done = ?, step_error = '', "
                        f"updated = ? WHERE id IN ({', '.join('?' * len(chunk))})",
                        (True, iso(now), *chunk))

    def log_pass(self, mailbox: str, started: datetime, finished: datetime, ok: bool,
                 counts: str, error: str = "") -> None:
        """Record one pass (for `poller status` and people reading the database)."""
        self.db.sql("INSERT INTO pass_log (mailbox, started, finished, seconds, ok, counts, "
                    "error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (mailbox, iso(started), iso(finished),
                     f"{(finished - started).total_seconds():.3f}", ok, counts, error))

    def prepare(self, now: datetime) -> None:
        """Make the store ready for writing: the MSP's own organization ("org 0") exists, with
        its configured name."""
        local = self._rows("SELECT id, name FROM organization WHERE is_local", ())
        if not local:
            self.db.sql("INSERT INTO organization (id, name, is_local, created) VALUES "
                        "(?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                        (LOCAL_ID, self._local_name, True, iso(now)))
        elif local[0][1] != self._local_name:
            self.db.sql("UPDATE organization SET name = ? WHERE id = ?",
                        (self._local_name, local[0][0]))


def _ticket(rows: list[tuple]) -> TicketRef | None:
    """Return the ticket of the first of ROWS (id, number, organization_id, status), if any."""
    # The look-ups' types load with the first mail that needs them, not with every pass.
    from poller.ates.directory import TicketRef

    return TicketRef(*rows[0]) if rows else None


def decided(db: Engine, mailbox: str, folder: str, uidvalidity: int, uids: list[int]) -> set[int]:
    """Return those of the given UIDs that the processed-mail log of mailbox has a decision
    for."""
    found: set[int] = set()
    for chunk in chunks(uids, SQL_BATCH):
        found.update(uid for (uid,) in db.sql(
            "SELECT uid FROM processed_message WHERE mailbox = ? AND folder = ? AND "
            f"uidvalidity = ? AND uid IN ({', '.join('?' * len(chunk))})",
            (mailbox, folder, uidvalidity, *chunk)).fetchall())
    return found
