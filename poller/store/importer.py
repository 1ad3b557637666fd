"""Import of the directory (organizations, devices, contacts) from CSV files: all of a file or
nothing, idempotent by each kind's natural key (see poller.store.import_plan)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from poller.store.csvfile import Table, read_table
from poller.store.database import iso
from poller.store.import_plan import ENTITY, ImportOptions, Plan, plan_import, udf_parts
from poller.store.store import Store

__all__ = ["ImportOptions", "Plan", "Table", "import_file", "import_table", "plan_import",
           "read_table"]


def import_file(store: Store, kind: str, path: Path, now: datetime,
                options: ImportOptions | None = None) -> Plan:
    """Read PATH and import it as KIND; return what was added and changed."""
    return import_table(store, kind, read_table(path), now, options or ImportOptions())


def import_table(store: Store, kind: str, table: Table, now: datetime,
                 options: ImportOptions) -> Plan:
    """Import TABLE in a single transaction: every row, or none (ImportFileError naming the bad
    rows). Return the plan that was carried out."""
    try:
        with store.db.atomic():
            plan = plan_import(store.db, kind, table, options)
            _write(store, plan, now)
    except BaseException:
        store.forget_cached_udfs()  # UDF definitions made in the transaction are gone
        raise
    return plan


def _write(store: Store, plan: Plan, now: datetime) -> None:
    """Carry the plan out. Plain SQL: for tens of thousands of rows, peewee's query building
    would take most of the time."""
    entity = ENTITY[plan.kind]
    table = {"organizations": "organization", "devices": "device", "contacts": "contact"}[
        plan.kind]
    stamp = iso(now)
    sql, insert = store.db.sql, store.db.insert
    for row in plan.rows:
        entity_id = row.entity_id
        # the column names come from import_plan.FIXED, never from the file
        columns = list(row.values)
        if entity_id is None:
            extra = {"organizations": {"is_local": False},
                     "devices": {"organization_id": row.organization_id},
                     "contacts": {"organization_id": row.organization_id}}[plan.kind]
            names = [*columns, *extra, "created"]
            entity_id = insert(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                               f"({', '.join('?' * len(names))})",
                               (*row.values.values(), *extra.values(), stamp)).fetchall()[0][0]
        elif columns:
            sql(f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                (*row.values.values(), entity_id))
        for label, value in row.udfs.items():
            source, kind = udf_parts(entity, label)  # type: ignore[misc]  # checked when planned
            store.ensure_source(source, now)
            sql("INSERT INTO udf_value (udf_id, entity_id, value) VALUES (?, ?, ?) "
                "ON CONFLICT (udf_id, entity_id) DO UPDATE SET value = excluded.value",
                (store.udf_id(entity, label, source, kind, now), entity_id, value))
