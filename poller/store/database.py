"""Opening the database: SQLite pragmas, the schema version, upgrades of older databases."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import peewee

from poller.ates.outcomes import STATUS_COMPLETE
from poller.errors import StoreError
from poller.paths import sqlite_file
from poller.store.engine import (
    Engine,
    SqliteEngine,
    connect,
    is_postgres,
    postgres_engine,
    reason,
    shown,
)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    # FULL: a commit is on disk (the WAL synced) before it returns, so a mail is never flagged
    # or moved ahead of its decision, even across a power loss. (NORMAL survives a killed
    # process but may lose the last commits to a power loss.) Commits come once per chunk of
    # mail and per batch of mailbox steps, so the cost is a few syncs per pass.
    "synchronous": "full",
    "busy_timeout": 10000,
    "cache_size": -16000,
}

# PRAGMA user_version of a database with the schema of schema.py. A database made before the
# version was recorded reads 0.
SCHEMA_VERSION = 10
# The mailbox name the log of a database from before mailboxes had names is given.
UNNAMED_MAILBOX = "(before several mailboxes)"


# The steps below import the models as they run: opening a database of the current version
# does not load them (peewee's model classes are a tenth of what an empty pass imports).


def _create_missing_tables(db: Engine) -> None:
    from poller.store.schema import MODELS

    existing = set(db.get_tables())
    db.create_tables([m for m in MODELS if m._meta.table_name not in existing])


def _mailboxes_and_ticket_fields(db: Engine) -> None:
    """Several mailboxes in one database: the processed-mail and pass logs name the mailbox
    (rows from before are named by step 5), and the exactly-once key includes it. Tickets get
    the fields their mailbox gives them, and the token's SubIssue."""
    from poller.store.schema import ProcessedMessage

    for column in ("mailbox", "queue", "priority", "source", "issue_type", "sub_issue"):
        _add_column(db, "ticket", column, "TEXT")
    for table in ("processed_message", "pass_log"):
        _add_column(db, table, "mailbox", "TEXT NOT NULL DEFAULT ''")
    db.sql('DROP INDEX IF EXISTS "processed_message_folder_uidvalidity_uid"')
    db.sql('DROP INDEX IF EXISTS "processed_message_mailbox_done_folder"')
    ProcessedMessage.create_table(safe=True)  # the table is there: creates its new indexes


def _add_column(db: Engine, table: str, column: str, definition: str) -> None:
    """Add a column unless the table has it (a table an earlier step created is current)."""
    if column not in {c.name for c in db.get_columns(table)}:
        db.sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {definition}')


def _add_outbox(db: Engine) -> None:
    """The event outbox of round-trip closure (the views come with every upgrade)."""
    from poller.store.schema import Outbox

    db.create_tables([Outbox], safe=True)


def _step_purpose_and_error(db: Engine) -> None:
    """processed_message gets the purpose of its mailbox step (so that a pending step can be
    planned again from the settings) and the reason the server last refused it."""
    _add_column(db, "processed_message", "purpose", "TEXT NOT NULL DEFAULT 'done'")
    _add_column(db, "processed_message", "step_error", "TEXT NOT NULL DEFAULT ''")
    db.sql("UPDATE processed_message SET purpose = 'quarantine' "
           "WHERE outcome = 'quarantined'")
    db.sql("UPDATE processed_message SET purpose = 'no_token' "
           "WHERE outcome = 'skipped' AND reason LIKE 'no <Autotask> token%'")


# "Create unless an open ticket has this key", enforced by the database on both engines: an
# INSERT … ON CONFLICT with this index's columns and WHERE (record.py) appends instead.
OPEN_KEY_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS ticket_open_key ON ticket "
                  f"(organization_id, open_key) WHERE status <> '{STATUS_COMPLETE}'")


# "The same mail twice has one effect": one log row with an effect on a ticket per mail
# (fingerprint); record.py's INSERT … ON CONFLICT names this index's column and WHERE.
EFFECT_OUTCOMES = "('created', 'appended', 'completed')"
SAME_MAIL_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS processed_message_same_mail ON "
                   f"processed_message (fingerprint) WHERE outcome IN {EFFECT_OUTCOMES}")


def _race_free_keys(db: Engine) -> None:
    """Tickets get the key that no two open tickets of an organization share (older tickets
    have none: they are found by their UDF values as before); a mail has one effect; the
    tables of who serves a mailbox (poller.store.lease)."""
    from poller.store.schema import Lease, Standby

    _add_column(db, "ticket", "open_key", "TEXT")
    db.sql(OPEN_KEY_INDEX)
    # Should an older release have logged two effects of one mail, the later rows get a
    # fingerprint of their own (the first keeps it, so a new copy is still a duplicate).
    db.sql("UPDATE processed_message SET fingerprint = fingerprint || ':' || CAST(id AS TEXT) "
           f"WHERE outcome IN {EFFECT_OUTCOMES} AND id NOT IN (SELECT MIN(id) FROM "
           f"processed_message WHERE outcome IN {EFFECT_OUTCOMES} GROUP BY fingerprint)")
    db.sql(SAME_MAIL_INDEX)
    db.create_tables([Lease, Standby], safe=True)


# The rest of the log (duplicates, skipped, quarantined, …) by fingerprint: with
# SAME_MAIL_INDEX, each row is in one of the two. A full index would hold every row twice, and
# keeping a random key in order is most of what logging a mail costs SQLite.
EFFECTLESS_INDEX = ("CREATE INDEX IF NOT EXISTS processed_message_fingerprint_effectless ON "
                    f"processed_message (fingerprint) WHERE outcome NOT IN {EFFECT_OUTCOMES}")


def _one_fingerprint_index(db: Engine) -> None:
    """processed_message's fingerprints are in one of two partial indexes, not in a third,
    full one. Indexes that others begin with are gone: on processed_message.outcome
    ((outcome, created) serves its queries) and on udf_value.udf_id."""
    for index in ("processed_message_fingerprint", "processed_message_outcome",
                  "udf_value_udf_id"):
        db.sql(f'DROP INDEX IF EXISTS "{index}"')
    db.sql(EFFECTLESS_INDEX)


# What a new database gets besides the tables of schema.py (indexes peewee cannot declare).
FRESH = (lambda db: db.sql(OPEN_KEY_INDEX), lambda db: db.sql(SAME_MAIL_INDEX),
         lambda db: db.sql(EFFECTLESS_INDEX))

def _message_id_index(db: Engine) -> None:
    """processed_message is searched by Message-ID: a reply's In-Reply-To and References find
    the ticket whose mail they name."""
    db.sql('CREATE INDEX IF NOT EXISTS "processed_message_message_id" '
           'ON "processed_message" ("message_id")')


def _expected_mail(db: Engine) -> None:
    """The [[expect]] entries' windows, misses and arrivals."""
    from poller.store.schema import ExpectedArrival, ExpectedMail

    db.create_tables([ExpectedMail, ExpectedArrival], safe=True)


def _name_the_unnamed_log(db: Engine) -> None:
    """The log rows (and tickets) from before mailboxes had names get UNNAMED_MAILBOX, here,
    once, whichever mailbox opens the database first: given to that mailbox they would have
    become its history, and their pending mailbox steps its own, to be done on its server
    (UIDs of another account). Mail of theirs still waiting in a folder is read again once
    and logged as a duplicate, as after renaming a mailbox."""
    for table in ("processed_message", "pass_log"):
        db.sql(f'UPDATE "{table}" SET mailbox = ? WHERE mailbox = \'\'',
               (UNNAMED_MAILBOX,))
    db.sql('UPDATE "ticket" SET mailbox = ? WHERE mailbox IS NULL', (UNNAMED_MAILBOX,))


def _activity_indexes(db: Engine) -> None:
    """Indexes for looking at alerts over time and at open tickets by organization or device."""
    from poller.store.schema import ProcessedMessage, Ticket

    for model in (Ticket, ProcessedMessage):
        model._schema.create_indexes(safe=True)


# version → the step that upgrades a database of the version before to it. Views are not
# steps: every upgrade creates them again at its end (views.py).
MIGRATIONS: dict[int, Callable[[Engine], None]] = {
    1: _create_missing_tables,
    2: _add_outbox,
    3: _mailboxes_and_ticket_fields,
    4: _step_purpose_and_error,
    5: _message_id_index,
    6: _expected_mail,
    7: _name_the_unnamed_log,
    8: _activity_indexes,
    9: _race_free_keys,
    10: _one_fingerprint_index,
}

_opening = threading.Lock()
# url → its engine: the one way a process reaches a database (each thread gets a connection
# of its own from it)
_engines: dict[str, Engine] = {}


@functools.lru_cache(maxsize=16)  # a mail's writes are stamped with one moment, several times
def iso(moment: datetime) -> str:
    """Return an aware datetime as ISO-8601 UTC text, the one timestamp format of the schema."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@contextmanager
def changing(db: Engine) -> Iterator[None]:
    """One IMMEDIATE transaction for a change a person asked for (a pass appending to the
    ticket meanwhile waits, rather than reading it open); the database staying locked past its
    busy timeout is a StoreError that says so, with nothing changed."""
    try:
        with db.atomic(lock_type="IMMEDIATE"):
            yield
    except peewee.OperationalError as exc:
        raise StoreError(f"nothing was changed: {reason(exc)} (another process held the "
                         "database past its busy timeout); try again") from None


def open_database(url: str, password: str | None = None) -> Engine:
    """Connect to the database named by url (SQLite, or PostgreSQL with PASSWORD when given),
    creating or upgrading its schema; return it.

    Raises StoreError when it cannot be opened, or was written by a newer version. Opening the
    same URL again gives the same engine, which keeps one connection per thread, so that
    `serve` delivers events in one thread and passes in another on one engine.
    """
    try:
        with _opening:
            db = _engines.get(url)
            if db is None:
                db = _engine(url, password)
                if sqlite_file(url) is not None or is_postgres(url):  # not :memory:
                    _engines[url] = db
        connect(db)
        if _version(db) != SCHEMA_VERSION:
            _upgrade(db)
    except (peewee.PeeweeException, OSError, RuntimeError) as exc:
        raise StoreError(f"cannot open database {shown(url)}: {reason(exc)}") from None
    return db


def close_database(url: str) -> None:
    """Close the engine open_database keeps for url (this thread's connection) and forget it."""
    with _opening:
        db = _engines.pop(url, None)
    if db is not None:
        db.close()


def _engine(url: str, password: str | None) -> Engine:
    if is_postgres(url):
        # a transaction left open by a frozen holder ends, so that a take-over waiting for
        # its lease row goes on (poller.store.lease)
        return postgres_engine(url, password,
                               options="-c idle_in_transaction_session_timeout=20s")
    path = sqlite_file(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = SqliteEngine(path or ":memory:", pragmas=SQLITE_PRAGMAS)
    db.poller_url = url
    return db


def takes_a_write(db: Engine) -> None:
    """Write a row and roll it back: raise StoreUnavailable when the database takes none."""
    with db.atomic() as transaction:
        db.sql("INSERT INTO pass_log (started, finished, seconds, ok, counts, error, mailbox) "
               "VALUES ('', '', '0', ?, '', '', '')", (False,))
        transaction.rollback()


# PostgreSQL has no user_version: the version is the one row of this table.
VERSION_TABLE = "poller_schema"


def _version(db: Engine) -> int:
    if db.dialect == "sqlite":
        return db.sql("PRAGMA user_version").fetchone()[0]
    if not db.sql("SELECT to_regclass(?) IS NOT NULL", (VERSION_TABLE,)).fetchone()[0]:
        return 0
    row = db.sql(f"SELECT version FROM {VERSION_TABLE}").fetchone()
    return row[0] if row else 0


def _set_version(db: Engine, version: int) -> None:
    if db.dialect == "sqlite":
        db.sql(f"PRAGMA user_version = {int(version)}")
        return
    db.sql(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
    db.sql(f"DELETE FROM {VERSION_TABLE}")
    db.sql(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (version,))


def _upgrade(db: Engine) -> None:
    """Create the schema of a new database, or upgrade an older one in place, in one
    transaction that other processes opening the same database wait for."""
    with db.atomic(lock_type="IMMEDIATE"):
        if db.dialect == "postgresql":  # the one upgrade at a time; others wait, then see it
            db.sql("SELECT pg_advisory_xact_lock(hashtextextended('ates-poller schema', 0))")
        version = _version(db)
        if version > SCHEMA_VERSION:
            raise StoreError(f"the database has schema version {version}, newer than this "
                             f"ates-poller's {SCHEMA_VERSION}: upgrade ates-poller")
        if version == SCHEMA_VERSION:
            return
        from poller.store.schema import MODELS

        with db.bind_ctx(MODELS):  # the models' DDL, on this engine
            if "processed_message" not in db.get_tables():
                db.create_tables(MODELS)
                for step in FRESH:
                    step(db)
            else:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[step](db)
        from poller.store.views import create_views

        create_views(db)
        _set_version(db, SCHEMA_VERSION)
