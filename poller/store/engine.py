"""The two engines the store runs on, SQLite and PostgreSQL, behind one way to run SQL.

The store's statements are written once, with `?` placeholders, in the SQL both engines speak
(ON CONFLICT instead of INSERT OR IGNORE, no SQLite-only functions). `Engine.sql` runs one:
SQLite takes it as it is (the per-mail hot path pays nothing); PostgreSQL's driver gets `%s`
placeholders, the text converted once and cached. `Engine.insert` runs an INSERT whose new id
is wanted: RETURNING id on PostgreSQL, lastrowid on SQLite (where RETURNING costs three
times what the INSERT itself does).

psycopg is imported only when a postgresql:// URL is opened (the optional extra [postgres]);
poller/store/__init__.py keeps peewee from importing it on its own.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import peewee

from poller.errors import StoreError, StoreUnavailable
from poller.paths import POSTGRES_SCHEMES, masked_database_url

CONNECT_TIMEOUT = 10  # seconds, unless the URL's connect_timeout says otherwise


# The database's errors, translated once here into the error tree (poller.errors) while staying
# the peewee errors they were, so that the layers above never import peewee or the driver.
class DatabaseUnavailable(StoreUnavailable, peewee.OperationalError):
    """Connection lost, database locked, disk full, a statement cut off by the server."""


class DatabaseInterface(StoreUnavailable, peewee.InterfaceError):
    """No usable connection."""


class DatabaseRefused(StoreError, peewee.IntegrityError):
    """A constraint refused a write."""


class DatabaseFailed(StoreError, peewee.DatabaseError):
    """Any other error of the database or its driver."""


def translated(exc: peewee.PeeweeException) -> StoreError:
    """Return the error of the tree that stands for a peewee error (the message: the driver's,
    on one line)."""
    if isinstance(exc, StoreError):
        return exc
    for peewee_type, ours in ((peewee.OperationalError, DatabaseUnavailable),
                              (peewee.InterfaceError, DatabaseInterface),
                              (peewee.IntegrityError, DatabaseRefused)):
        if isinstance(exc, peewee_type):
            return ours(reason(exc))
    return DatabaseFailed(reason(exc))


class Inserted:
    """The new id of an INSERT on SQLite, read at once, as the cursor of a RETURNING id
    answers it: [(id,)], or [] when no row was inserted."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[tuple[int]]):
        self._rows = rows

    def fetchall(self) -> list[tuple[int]]:
        return self._rows


class _Translating:
    """Every statement, transaction and connection of an engine raises translated errors."""

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        try:
            return super().execute_sql(sql, params)  # type: ignore[misc]
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc

    def begin(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().begin(*args, **kwargs)  # type: ignore[misc]
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc

    def commit(self) -> None:
        try:
            super().commit()  # type: ignore[misc]
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc

    def rollback(self) -> None:
        try:
            super().rollback()  # type: ignore[misc]
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc

    def connect(self, reuse_if_open: bool = False) -> bool:
        try:
            return super().connect(reuse_if_open)  # type: ignore[misc]
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc


class SqliteEngine(_Translating, peewee.SqliteDatabase):
    """SQLite: the embedded default."""

    dialect = "sqlite"
    poller_url = ""
    # whether a statement's answer may be read later, saving a round trip (pipelined)
    pipelines = False

    def pipelined(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to do in a process's own database: see PostgresEngine.pipelined."""
        return contextlib.nullcontext()

    def sql(self, text: str, params: tuple | list = ()) -> Any:
        """Run one statement written with `?` placeholders; return the cursor."""
        return self.execute_sql(text, params)

    def insert(self, text: str, params: tuple | list = ()) -> Inserted:
        """Run an INSERT (… ON CONFLICT … DO NOTHING may leave its row out); return its id."""
        cursor = self.execute_sql(text, params)
        return Inserted([(cursor.lastrowid,)] if cursor.rowcount == 1 else [])

    def sql_many(self, text: str, rows: list[tuple]) -> None:
        """Run one statement once per row of parameters."""
        try:
            with peewee.__exception_wrapper__:
                self.cursor().executemany(text, rows)
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc


@functools.lru_cache(maxsize=1024)
def _pyformat(text: str) -> str:
    # the statements never hold a `?` in a literal: every value is a parameter
    return text.replace("%", "%%").replace("?", "%s")


def _without_nul(params: tuple | list) -> tuple | list:
    """Return the parameters with U+FFFD for each NUL in text: PostgreSQL's text cannot hold
    one (SQLite's can), and mail can carry one anywhere (a subject, a body, a Message-ID)."""
    if not any(type(value) is str and "\x00" in value for value in params):
        return params
    return [value.replace("\x00", "\ufffd") if type(value) is str else value
            for value in params]


@functools.cache
def _psycopg3() -> type:
    """Return peewee's psycopg 3 adapter bound to psycopg, imported now (peewee did not import
    it: poller.store keeps it from peewee)."""
    try:
        import psycopg
        from psycopg.pq import TransactionStatus
        from psycopg.types.json import Json, Jsonb
    except ImportError:
        raise StoreError("[database] url names a PostgreSQL database, but psycopg is not "
                         "installed: pip install 'ates-poller[postgres]'") from None

    class Adapter(peewee.Psycopg3Adapter):
        txn_idle = TransactionStatus.IDLE
        txn_inerror = TransactionStatus.INERROR
        txn_unknown = TransactionStatus.UNKNOWN

        def __init__(self) -> None:
            super().__init__()
            self.json_type, self.jsonb_type = Json, Jsonb

        def check_driver(self) -> None:
            pass

        def get_binary_type(self) -> Any:
            return psycopg.Binary

        def connect(self, db: Any, **params: Any) -> Any:
            return psycopg.connect(db.database, **params)

        def server_side_cursor(self, conn: Any) -> Any:
            in_transaction = conn.pgconn.transaction_status == TransactionStatus.INTRANS
            return conn.cursor(name=str(uuid.uuid1()), withhold=not in_transaction)

    return Adapter


class PostgresEngine(_Translating, peewee.PostgresqlDatabase):
    """PostgreSQL through psycopg 3."""

    dialect = "postgresql"
    poller_url = ""
    pipelines = True

    def init(self, database: str, **kwargs: Any) -> None:
        super().init(database, **kwargs)
        self._adapter = _psycopg3()()

    def sql(self, text: str, params: tuple | list = ()) -> Any:
        """Run one statement written with `?` placeholders; return the cursor."""
        return self.execute_sql(_pyformat(text), _without_nul(params))

    def insert(self, text: str, params: tuple | list = ()) -> Any:
        """Run an INSERT (… ON CONFLICT … DO NOTHING may leave its row out); return the cursor
        of its RETURNING id, to be read when the id is needed (pipelined: at the end)."""
        return self.sql(text + " RETURNING id", params)

    def sql_many(self, text: str, rows: list[tuple]) -> None:
        """Run one statement once per row of parameters (psycopg pipelines them)."""
        try:
            with peewee.__exception_wrapper__:
                self.cursor().executemany(_pyformat(text),
                                          [_without_nul(row) for row in rows])
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        """Send the statements of the block without waiting for each one's answer, until one
        whose result is read (psycopg's pipeline mode): a statement whose result is not read
        costs no round trip. An error may show at a later statement, or at the end."""
        try:
            with peewee.__exception_wrapper__, self.connection().pipeline():
                yield
        except peewee.PeeweeException as exc:
            raise translated(exc) from exc

    def begin(self, isolation_level: Any = None, lock_type: str | None = None) -> None:
        # lock_type is SQLite's (IMMEDIATE): PostgreSQL locks the rows a statement writes
        super().begin(isolation_level)


Engine = SqliteEngine | PostgresEngine


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def postgres_engine(url: str, password: str | None = None, *, autoconnect: bool = True,
                    thread_safe: bool = True, **options: Any) -> PostgresEngine:
    """Return an unconnected PostgreSQL engine for URL (postgres:// or postgresql://, libpq's
    query parameters passed through), with PASSWORD when one is given (else libpq finds it in
    the URL, PGPASSWORD or ~/.pgpass) and connect_timeout 10 s unless the URL sets one.
    OPTIONS go to the driver as they are (e.g. a lock session's timeouts); thread_safe False
    shares one connection between threads."""
    _psycopg3()  # a missing driver is told now, clearly
    parts = urlsplit(url)
    conninfo = urlunsplit(parts._replace(scheme="postgresql"))
    params: dict[str, Any] = dict(options)
    if "connect_timeout" not in dict(parse_qsl(parts.query)):
        params["connect_timeout"] = CONNECT_TIMEOUT
    if password is not None:
        params["password"] = password
    params.setdefault("application_name", f"ates-poller pid {os.getpid()}")
    engine = PostgresEngine(conninfo, autoconnect=autoconnect, thread_safe=thread_safe,
                            **params)
    engine.poller_url = url
    return engine


# Two processes turning a new SQLite file to WAL at once: SQLite refuses one of them at once
# (waiting would deadlock them) and the other finishes in milliseconds, so it is tried again.
LOCKED_TRIES, LOCKED_PAUSE = 100, 0.05


def connect(engine: Engine) -> None:
    """Connect (if not connected), translating a refusal into a StoreError that names the host
    and the server's or libpq's reason, never a password."""
    for attempt in range(1, LOCKED_TRIES + 1):
        try:
            engine.connect(reuse_if_open=True)
            return
        except peewee.PeeweeException as exc:
            if engine.dialect == "sqlite" and "locked" in str(exc) and attempt < LOCKED_TRIES:
                time.sleep(LOCKED_PAUSE)
                continue
            raise StoreError(f"cannot connect to database {where(engine)}: "
                             f"{reason(exc)}") from None


def where(engine: Engine) -> str:
    """Return how messages name the database: the file, or host:port/dbname of the URL."""
    if engine.dialect == "sqlite":
        return str(engine.database)
    parts = urlsplit(engine.poller_url)
    host = parts.hostname or "localhost (unix socket)"
    try:
        port = parts.port or 5432
    except ValueError:
        port = "?"
    return f"{host}:{port}/{parts.path.lstrip('/')}" if parts.path.strip("/") else \
        f"{host}:{port}"


def reason(exc: BaseException) -> str:
    """Return the driver's message on one line (libpq spreads it over several)."""
    return " ".join(str(exc).split())


def shown(url: str) -> str:
    """Return URL as messages may show it (no password)."""
    return masked_database_url(url)
