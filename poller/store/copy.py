"""`poller copy-database`: everything of one store into an empty one, on either engine, in one
transaction, checked by row counts.

The target gets the schema of this version first (the numbered migrations, the views); then
every table in the order its foreign keys need, with the ids as they are, so that the ticket
numbers, the processed-mail log and the outbox go on where the source stopped. Who serves a
mailbox (mailbox_lease, mailbox_standby) is not copied: the instances that use the target
take it anew.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import peewee

from poller.errors import StoreError
from poller.store.database import SCHEMA_VERSION, _version, open_database
from poller.store.engine import Engine, reason, shown
from poller.store.readonly import read_only_database
from poller.store.schema import MODELS, Lease, Standby

BATCH = 1000
COPIED = tuple(m for m in MODELS if m not in (Lease, Standby))


class TargetNotEmpty(StoreError):
    """The target database holds rows already: nothing was copied."""


@dataclass(frozen=True)
class Copied:
    """Rows per table, as counted in the source and in the target before the commit."""

    counts: dict[str, tuple[int, int]]


def copy_database(source_url: str, source_password: str | None, target_url: str) -> Copied:
    """Copy the store at source_url into the empty database at target_url (its password from
    the URL, PGPASSWORD or ~/.pgpass); return the row counts. Raises TargetNotEmpty, or
    StoreError when either cannot be used or the counts differ (then nothing is committed)."""
    if target_url == source_url:
        raise TargetNotEmpty("the target is the configured database itself")
    with read_only_database(source_url, source_password) as source:
        version = _version(source)
        if version != SCHEMA_VERSION:
            raise StoreError(f"the source has schema version {version}, not this "
                             f"ates-poller's {SCHEMA_VERSION}: run a pass on it first")
        target = open_database(target_url)
        try:
            with _failures(target_url), _snapshot(source), target.atomic():
                full = [m._meta.table_name for m in COPIED if _count(target, m) > 0]
                if full:
                    raise TargetNotEmpty(f"the target {shown(target_url)} is not empty "
                                         f"({', '.join(full)} hold rows); nothing was copied")
                counts = {}
                for model in COPIED:
                    _copy_table(source, target, model)
                    counts[model._meta.table_name] = (_count(source, model),
                                                      _count(target, model))
                if target.dialect == "postgresql":
                    _restart_sequences(target)
                wrong = [name for name, (a, b) in counts.items() if a != b]
                if wrong:
                    raise StoreError(f"row counts differ in {', '.join(wrong)}; nothing was "
                                     "copied")
        finally:
            target.close()
    return Copied(counts)


@contextmanager
def _failures(target_url: str) -> Iterator[None]:
    try:
        yield
    except peewee.PeeweeException as exc:
        raise StoreError(f"copying into {shown(target_url)} failed, nothing was copied: "
                         f"{reason(exc)}") from None


@contextmanager
def _snapshot(source: Engine) -> Iterator[None]:
    """Read the source in one transaction, as of its start (a pass may be writing it)."""
    with source.atomic():
        if source.dialect == "postgresql":
            source.sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _count(db: Engine, model: type[peewee.Model]) -> int:
    return db.sql(f"SELECT count(*) FROM {model._meta.table_name}").fetchone()[0]


def _copy_table(source: Engine, target: Engine, model: type[peewee.Model]) -> None:
    fields = model._meta.sorted_fields
    columns = [f.column_name for f in fields]
    flags = [isinstance(f, peewee.BooleanField) for f in fields]
    table = model._meta.table_name
    order = model._meta.primary_key.column_name
    cursor = source.sql(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    insert = (f"INSERT INTO {table} ({', '.join(columns)}) "
              f"VALUES ({', '.join('?' * len(columns))})")
    while rows := cursor.fetchmany(BATCH):
        target.sql_many(insert, [
            tuple(bool(v) if flag and v is not None else
                  bytes(v) if isinstance(v, memoryview) else v
                  for v, flag in zip(row, flags, strict=True)) for row in rows])


def _restart_sequences(target: Engine) -> None:
    """Make the next id of each table follow the copied ones (PostgreSQL's serial columns)."""
    for model in COPIED:
        key = model._meta.primary_key
        if isinstance(key, peewee.AutoField):
            table = model._meta.table_name
            target.sql(f"SELECT setval(pg_get_serial_sequence('{table}', '{key.column_name}'), "
                       f"COALESCE(MAX({key.column_name}), 0) + 1, false) FROM {table}")
