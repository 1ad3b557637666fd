"""Opening the database: SQLite pragmas, the schema version, upgrades of older databases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import peewee

from poller.errors import StoreError
from poller.paths import sqlite_file
from poller.store.schema import (
    MODELS,
    ExpectedArrival,
    ExpectedMail,
    Outbox,
    ProcessedMessage,
    Ticket,
    database,
)
from poller.store.views import create_views

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
SCHEMA_VERSION = 8
# The mailbox name the log of a database from before mailboxes had names is given.
UNNAMED_MAILBOX = "(before several mailboxes)"


def _create_missing_tables(db: peewee.Database) -> None:
    existing = set(db.get_tables())
    db.create_tables([m for m in MODELS if m._meta.table_name not in existing])


def _mailboxes_and_ticket_fields(db: peewee.Database) -> None:
    """Several mailboxes in one database: the processed-mail and pass logs name the mailbox
    (rows from before are named by step 5), and the exactly-once key includes it. Tickets get
    the fields their mailbox gives them, and the token's SubIssue."""
    for column in ("mailbox", "queue", "priority", "source", "issue_type", "sub_issue"):
        _add_column(db, "ticket", column, "TEXT")
    for table in ("processed_message", "pass_log"):
        _add_column(db, table, "mailbox", "TEXT NOT NULL DEFAULT ''")
    db.execute_sql('DROP INDEX IF EXISTS "processed_message_folder_uidvalidity_uid"')
    db.execute_sql('DROP INDEX IF EXISTS "processed_message_mailbox_done_folder"')
    ProcessedMessage.create_table(safe=True)  # the table is there: creates its new indexes


def _add_column(db: peewee.Database, table: str, column: str, definition: str) -> None:
    """Add a column unless the table has it (a table an earlier step created is current)."""
    if column not in {c.name for c in db.get_columns(table)}:
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {definition}')


def _add_outbox(db: peewee.Database) -> None:
    """The event outbox of round-trip closure (the views come with every upgrade)."""
    db.create_tables([Outbox], safe=True)


def _step_purpose_and_error(db: peewee.Database) -> None:
    """processed_message gets the purpose of its mailbox step (so that a pending step can be
    planned again from the settings) and the reason the server last refused it."""
    _add_column(db, "processed_message", "purpose", "TEXT NOT NULL DEFAULT 'done'")
    _add_column(db, "processed_message", "step_error", "TEXT NOT NULL DEFAULT ''")
    db.execute_sql("UPDATE processed_message SET purpose = 'quarantine' "
                   "WHERE outcome = 'quarantined'")
    db.execute_sql("UPDATE processed_message SET purpose = 'no_token' "
                   "WHERE outcome = 'skipped' AND reason LIKE 'no <Autotask> token%'")


def _message_id_index(db: peewee.Database) -> None:
    """processed_message is searched by Message-ID: a reply's In-Reply-To and References find
    the ticket whose mail they name."""
    db.execute_sql('CREATE INDEX IF NOT EXISTS "processed_message_message_id" '
                   'ON "processed_message" ("message_id")')


def _expected_mail(db: peewee.Database) -> None:
    """The [[expect]] entries' windows, misses and arrivals."""
    db.create_tables([ExpectedMail, ExpectedArrival], safe=True)


def _name_the_unnamed_log(db: peewee.Database) -> None:
    """The log rows (and tickets) from before mailboxes had names get UNNAMED_MAILBOX, here,
    once, whichever mailbox opens the database first: given to that mailbox they would have
    become its history, and their pending mailbox steps its own, to be done on its server
    (UIDs of another account). Mail of theirs still waiting in a folder is read again once
    and logged as a duplicate, as after renaming a mailbox."""
    for table in ("processed_message", "pass_log"):
        db.execute_sql(f'UPDATE "{table}" SET mailbox = ? WHERE mailbox = \'\'',
                       (UNNAMED_MAILBOX,))
    db.execute_sql('UPDATE "ticket" SET mailbox = ? WHERE mailbox IS NULL', (UNNAMED_MAILBOX,))


def _activity_indexes(db: peewee.Database) -> None:
    """Indexes for looking at alerts over time and at open tickets by organization or device."""
    for model in (Ticket, ProcessedMessage):
        model._schema.create_indexes(safe=True)


# version → the step that upgrades a database of the version before to it. Views are not
# steps: every upgrade creates them again at its end (views.py).
MIGRATIONS: dict[int, Callable[[peewee.Database], None]] = {
    1: _create_missing_tables,
    2: _add_outbox,
    3: _mailboxes_and_ticket_fields,
    4: _step_purpose_and_error,
    5: _message_id_index,
    6: _expected_mail,
    7: _name_the_unnamed_log,
    8: _activity_indexes,
}

_opening = threading.Lock()


def iso(moment: datetime) -> str:
    """Return an aware datetime as ISO-8601 UTC text, the one timestamp format of the schema."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@contextmanager
def changing(db: peewee.Database) -> Iterator[None]:
    """One IMMEDIATE transaction for a change a person asked for (a pass appending to the
    ticket meanwhile waits, rather than reading it open); the database staying locked past its
    busy timeout is a StoreError that says so, with nothing changed."""
    try:
        with db.atomic(lock_type="IMMEDIATE"):
            yield
    except peewee.OperationalError as exc:
        raise StoreError(f"nothing was changed: {exc} (another process held the database past "
                         "its busy timeout); try again") from None


def open_database(url: str) -> peewee.Database:
    """Connect to the SQLite database named by url, creating or upgrading its schema; return it.

    Raises StoreError when it cannot be opened, or was written by a newer version. Opening the
    same file again gives the same Database, which keeps one connection per thread, so the
    models stay bound to it while `serve` delivers events in one thread and passes in another.
    """
    try:
        with _opening:
            path = sqlite_file(url)
            db = database.obj if path is not None and getattr(
                database.obj, "poller_url", None) == url else None
            if db is None:
                if path is not None:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                db = peewee.SqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS)
                db.poller_url = url
                database.initialize(db)
        db.connect(reuse_if_open=True)
        if _version(db) != SCHEMA_VERSION:
            _upgrade(db)
    except (peewee.PeeweeException, OSError, RuntimeError) as exc:
        raise StoreError(f"cannot open database {url}: {exc}") from None
    return db


@contextmanager
def read_only_database(url: str) -> Iterator[peewee.Database]:
    """Yield the existing database named by url, opened for reading only, and close it.

    Nothing is created or changed: not a missing database (StoreError), not the schema of an
    older one (read as it is; should a table or column it lacks be read, the StoreError says
    that the next pass upgrades it), and, when no process has the database open (no WAL file),
    not even the WAL and shared-memory files: it is then opened immutable. An in-memory
    database holds nothing between runs and is opened as usual.
    """
    path = sqlite_file(url)
    if path is None:
        db = open_database(url)
    else:
        db = _open_read_only(url, path)
    try:
        yield db
    except peewee.DatabaseError as exc:
        try:
            version = _version(db)
        except peewee.DatabaseError:
            version = SCHEMA_VERSION
        if version < SCHEMA_VERSION:
            hint = (f" (the database has schema version {version}, older than this "
                    f"ates-poller's {SCHEMA_VERSION}: the next pass upgrades it)")
        elif isinstance(exc, peewee.OperationalError):
            hint = ""
        else:  # an immutable read that a pass starting meanwhile wrote under
            hint = " (a pass may have been writing it: try again)"
        raise StoreError(f"cannot read database {url}: {exc}{hint}") from None
    finally:
        db.close()


def open_read_only(url: str) -> peewee.Database:
    """Return the existing database named by url, opened for reading only, for a process that
    keeps it open while others write it (the web view): SQLite `mode=ro` and `query_only`,
    never immutable, so every query sees the latest commit. Each thread gets a connection of
    its own; the models are not bound to it (read it with plain SQL, poller.store.browse).

    Raises StoreError when there is no such database or a newer release wrote it. (Another
    engine plugs in here by the scheme of its URL.)
    """
    path = sqlite_file(url)
    if path is None:
        raise StoreError(f"{url}: not an SQLite database file; only those can be read here")
    if not Path(path).is_file():
        raise StoreError(f"database {path} does not exist; a pass (poller once) creates it, "
                         "or [database] url names another file")
    # a connection per thread (up to 40 in the web view): 4 MB of page cache each
    db = peewee.SqliteDatabase(f"file:{quote(path)}?mode=ro", uri=True,
                               pragmas={"query_only": 1, "busy_timeout": 10000,
                                        "cache_size": -4000})
    try:
        db.connect()
        version = _version(db)
    except peewee.PeeweeException as exc:
        raise StoreError(f"cannot open database {url}: {exc}") from None
    finally:
        db.close()
    if version > SCHEMA_VERSION:
        raise StoreError(f"the database has schema version {version}, newer than this "
                         f"ates-poller's {SCHEMA_VERSION}: upgrade ates-poller")
    return db


@contextmanager
def read_within(db: peewee.Database, seconds: float) -> Iterator[None]:
    """Run the block as one read transaction (one snapshot) on this thread's connection to db
    (opened by open_read_only), connecting first when needed; a statement still running
    SECONDS after the start is interrupted, and StoreError raised."""
    deadline = time.monotonic() + seconds
    db.connect(reuse_if_open=True)
    connection = db.connection()
    connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        with db.atomic():
            yield
    except peewee.OperationalError as exc:
        if "interrupted" not in str(exc):
            raise StoreError(f"cannot read the database: {exc}") from None
        raise StoreError(f"reading took longer than {seconds:g} s and was stopped") from None
    except peewee.DatabaseError as exc:
        raise StoreError(f"cannot read the database: {exc}") from None
    finally:
        connection.set_progress_handler(None, 0)


def _open_read_only(url: str, path: str) -> peewee.Database:
    if not Path(path).is_file():
        raise StoreError(f"database {path} does not exist; a pass (poller once) creates it, "
                         "or [database] url names another file")
    # With no WAL file, no process has the database open and all of it is in the main file;
    # immutable then reads it without creating the WAL and shared-memory files, which a
    # reading connection could not remove again. (A pass that starts meanwhile writes to a new
    # WAL; only its closing checkpoint touches the main file.)
    idle = not Path(path + "-wal").exists()
    uri = f"file:{quote(path)}?mode=ro{'&immutable=1' if idle else ''}"
    try:
        db = peewee.SqliteDatabase(uri, uri=True, pragmas={"query_only": 1, "busy_timeout": 10000})
        database.initialize(db)
        db.connect(reuse_if_open=True)
        version = _version(db)
    except peewee.PeeweeException as exc:
        raise StoreError(f"cannot open database {url}: {exc}") from None
    if version > SCHEMA_VERSION:
        db.close()
        raise StoreError(f"the database has schema version {version}, newer than this "
                         f"ates-poller's {SCHEMA_VERSION}: upgrade ates-poller")
    return db


def _version(db: peewee.Database) -> int:
    return db.execute_sql("PRAGMA user_version").fetchone()[0]


def _upgrade(db: peewee.Database) -> None:
    """Create the schema of a new database, or upgrade an older one in place, in one
    transaction that other processes opening the same file wait for."""
    with db.atomic(lock_type="IMMEDIATE"):
        version = _version(db)
        if version > SCHEMA_VERSION:
            raise StoreError(f"the database has schema version {version}, newer than this "
                             f"ates-poller's {SCHEMA_VERSION}: upgrade ates-poller")
        if "processed_message" not in db.get_tables():
            db.create_tables(MODELS)
        else:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](db)
        create_views(db)
        db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
