"""Import of the directory (organizations, devices, contacts) from CSV files: all of a file or
nothing, idempotent by each kind's natural key (see poller.store.import_plan)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from poller.store.csvfile import Table, read_table
from poller.store.database import iso
from poller.store.import_plan import ENTITY, ImportOptions, Plan, plan_import, udf_parts
from poller.store.schema import Contact, Device, Organization, UdfValue
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
    entity = ENTITY[plan.kind]
    stamp = iso(now)
    for row in plan.rows:
        entity_id = row.entity_id
        if plan.kind == "organizations":
            if entity_id is None:
                entity_id = Organization.insert(name=row.values["name"], created=stamp).execute()
            elif row.values:
                Organization.update(**row.values).where(Organization.id == entity_id).execute()
        elif plan.kind == "devices":
            if entity_id is None:
                entity_id = Device.insert(organization=row.organization_id, created=stamp,
                                          **row.values).execute()
        elif entity_id is None:
            Contact.insert(organization=row.organization_id, created=stamp,
                           **row.values).execute()
        elif row.values:
            Contact.update(**row.values).where(Contact.id == entity_id).execute()
        for label, value in row.udfs.items():
            source, kind = udf_parts(entity, label)  # type: ignore[misc]  # checked when planned
            store.ensure_source(source, now)
            udf_id = store.udf_id(entity, label, source, kind, now)
            UdfValue.insert(udf=udf_id, entity_id=entity_id, value=value).on_conflict(
                conflict_target=[UdfValue.udf, UdfValue.entity_id],
                update={UdfValue.value: value}).execute()
