"""Opening a database to read it only: for a command that reads and closes it, for deciding
against a directory that may not be there yet, and for a process that keeps it open while
others write it (the web view). On PostgreSQL a session of its own whose transactions cannot
write (the server refuses); on SQLite `mode=ro` and `query_only`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import peewee

from poller.errors import StoreError
from poller.paths import sqlite_file
from poller.store.database import SCHEMA_VERSION, _version, open_database
from poller.store.engine import (
    Engine,
    SqliteEngine,
    connect,
    is_postgres,
    postgres_engine,
    reason,
    shown,
    where,
)

# every transaction of the session reads only, whatever the statement
READ_ONLY_SESSION = "-c default_transaction_read_only=on"


@contextmanager
def read_only_database(url: str, password: str | None = None) -> Iterator[Engine]:
    """Yield the existing database named by url, opened for reading only, and close it.

    Nothing is created or changed: not a missing database (StoreError), not the schema of an
    older one (read as it is; should a table or column it lacks be read, the StoreError says
    that the next pass upgrades it), and, when no process has the database open (no WAL file),
    not even the WAL and shared-memory files: it is then opened immutable. An in-memory
    database holds nothing between runs and is opened as usual.
    """
    path = sqlite_file(url)
    if is_postgres(url):
        db = _open_postgres_read_only(url, password)
    elif path is None:
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
        raise StoreError(f"cannot read database {shown(url)}: {reason(exc)}{hint}") from None
    finally:
        db.close()


@contextmanager
def directory_to_read(url: str, password: str | None = None) -> Iterator[Engine]:
    """Yield the database opened read-only (read_only_database), or an empty one when it has
    no store yet (an SQLite file not there, a PostgreSQL database without the tables): to
    decide against an empty directory."""
    path = sqlite_file(url)
    empty = path is not None and not Path(path).exists()
    if not empty:
        try:
            with read_only_database(url, password) as db:
                yield db
            return
        except NoStoreYet:
            pass
    db = open_database("sqlite:///:memory:")
    try:
        yield db
    finally:
        db.close()


class NoStoreYet(StoreError):
    """The database exists but no pass has made the store in it yet."""


def open_read_only(url: str, password: str | None = None) -> Engine:
    """Return the existing database named by url, opened for reading only, for a process that
    keeps it open while others write it (the web view): on SQLite `mode=ro` and `query_only`,
    never immutable, so every query sees the latest commit; on PostgreSQL sessions whose
    transactions cannot write. Each thread gets a connection of its own; the models are not
    bound to it (read it with plain SQL, poller.store.browse).

    Raises StoreError when there is no such database or store, or a newer release wrote it.
    """
    if is_postgres(url):
        db = postgres_engine(url, password, options=READ_ONLY_SESSION)
    else:
        path = sqlite_file(url)
        if path is None:
            raise StoreError(f"{shown(url)}: neither an SQLite database file nor a PostgreSQL "
                             "database; only those can be read here")
        if not Path(path).is_file():
            raise StoreError(f"database {path} does not exist; a pass (poller once) creates "
                             "it, or [database] url names another file")
        # a connection per thread (up to 40 in the web view): 4 MB of page cache each
        db = SqliteEngine(f"file:{quote(path)}?mode=ro", uri=True,
                          pragmas={"query_only": 1, "busy_timeout": 10000, "cache_size": -4000})
        db.poller_url = url
    try:
        connect(db)
        version = _version(db)
    except peewee.PeeweeException as exc:
        raise StoreError(f"cannot open database {shown(url)}: {reason(exc)}") from None
    finally:
        db.close()
    if version == 0 and db.dialect == "postgresql":
        raise StoreError(f"database {where(db)} has no ates-poller tables yet; a pass "
                         "(poller once) creates them")
    _refuse_newer(db, version)
    return db


@contextmanager
def read_within(db: Engine, seconds: float) -> Iterator[None]:
    """Run the block as one read transaction (one snapshot) on this thread's connection to db
    (opened by open_read_only), connecting first when needed; a statement still running
    SECONDS after the start is interrupted, and StoreError raised."""
    db.connect(reuse_if_open=True)
    postgres = db.dialect == "postgresql"
    connection = None
    if not postgres:  # SQLite has no statement timeout: a progress handler interrupts instead
        deadline = time.monotonic() + seconds
        connection = db.connection()
        connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        with db.atomic():
            if postgres:
                db.sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                db.sql(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
            yield
    except peewee.OperationalError as exc:
        if "statement timeout" in str(exc) or "interrupted" in str(exc):
            raise StoreError(f"reading took longer than {seconds:g} s and was stopped") from None
        raise StoreError(f"cannot read the database: {reason(exc)}") from None
    except peewee.DatabaseError as exc:
        raise StoreError(f"cannot read the database: {reason(exc)}") from None
    finally:
        if connection is not None:
            connection.set_progress_handler(None, 0)


def _open_postgres_read_only(url: str, password: str | None) -> Engine:
    """A session of its own whose transactions cannot write (the server refuses)."""
    db = postgres_engine(url, password, options=READ_ONLY_SESSION)
    connect(db)
    try:
        version = _version(db)
    except peewee.PeeweeException as exc:
        db.close()
        raise StoreError(f"cannot open database {shown(url)}: {reason(exc)}") from None
    if version == 0:
        db.close()
        raise NoStoreYet(f"database {where(db)} has no ates-poller tables yet; a pass "
                         "(poller once) creates them")
    _refuse_newer(db, version)
    return db


def _refuse_newer(db: Engine, version: int) -> None:
    if version > SCHEMA_VERSION:
        db.close()
        raise StoreError(f"the database has schema version {version}, newer than this "
                         f"ates-poller's {SCHEMA_VERSION}: upgrade ates-poller")


def _open_read_only(url: str, path: str) -> Engine:
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
        db = SqliteEngine(uri, uri=True, pragmas={"query_only": 1, "busy_timeout": 10000})
        db.connect(reuse_if_open=True)
        version = _version(db)
    except peewee.PeeweeException as exc:
        raise StoreError(f"cannot open database {url}: {exc}") from None
    _refuse_newer(db, version)
    return db
