"""CSV import of the directory (organizations, devices, contacts), idempotent by natural key."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from poller.ates import udf
from poller.errors import ImportFileError
from poller.store.database import iso
from poller.store.schema import Contact, Device, Organization, UdfValue
from poller.store.store import Store

CONTACT_COLUMNS = ("organization", "first_name", "last_name", "email", "email2", "email3")


def import_file(store: Store, kind: str, path: Path, now: datetime) -> Counter[str]:
    """Import one CSV file in a single transaction; return counts of created/updated/unchanged."""
    rows = _read(path)
    counts: Counter[str] = Counter()
    with store.db.atomic():
        try:
            for line, row in rows:
                try:
                    counts[_IMPORTERS[kind](store, row, now)] += 1
                except ImportFileError as exc:
                    raise ImportFileError(f"{path}:{line}: {exc}") from None
        except ImportFileError:
            store.forget_cached_udfs()
            raise
    return counts


def _read(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise ImportFileError(f"{path}: the file is empty; the first line must name columns")
            rows = [(reader.line_num, row) for row in _rows(reader)]
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: not a UTF-8 CSV file: {exc}") from None
    return rows


def _rows(reader: csv.DictReader) -> Iterator[dict[str, str]]:
    for row in reader:
        if None in row:
            raise ImportFileError(f"line {reader.line_num}: more cells than columns")
        cleaned = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if any(cleaned.values()):
            yield cleaned


def _udf_columns(row: dict[str, str], entity: str, fixed: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Return (label, source, kind) for each UDF column; reject columns that are not UDFs."""
    out = []
    for column in row:
        if column in fixed:
            continue
        for suffix in udf.kinds_of(entity):
            if column.endswith(" " + suffix) and len(column) > len(suffix) + 1:
                out.append((column, column[: -len(suffix) - 1], suffix))
                break
        else:
            allowed = " or ".join(f"'{udf.label('<source>', s)}'" for s in udf.kinds_of(entity))
            raise ImportFileError(f"unknown column {column!r} (expected {', '.join(fixed)} "
                                  f"or {allowed})")
    return out


def _required(row: dict[str, str], column: str) -> str:
    value = row.get(column, "")
    if not value:
        raise ImportFileError(f"column {column!r} is empty or missing")
    return value


def _organization_id(row: dict[str, str]) -> int:
    name = _required(row, "organization")
    found = [o.id for o in Organization.select(Organization.id).where(Organization.name == name)]
    if not found:
        raise ImportFileError(f"organization {name!r} does not exist; import organizations first")
    if len(found) > 1:
        raise ImportFileError(f"organization name {name!r} is not unique")
    return found[0]


def _set_udfs(store: Store, entity: str, entity_id: int, row: dict[str, str],
              fixed: tuple[str, ...], now: datetime) -> bool:
    changed = False
    for label, source, kind in _udf_columns(row, entity, fixed):
        value = row[label]
        if not value:
            continue
        store.ensure_source(source, now)
        udf_id = store.udf_id(entity, label, source, kind, now)
        current = UdfValue.get_or_none((UdfValue.udf == udf_id) & (UdfValue.entity_id == entity_id))
        if current is None:
            UdfValue.insert(udf=udf_id, entity_id=entity_id, value=value).execute()
            changed = True
        elif current.value != value:
            current.value = value
            current.save()
            changed = True
    return changed


def _organization(store: Store, row: dict[str, str], now: datetime) -> str:
    name = _required(row, "name")
    _udf_columns(row, "organization", ("name",))
    org = Organization.get_or_none(Organization.name == name)
    created = org is None
    if created:
        org = Organization.create(name=name, created=iso(now))
    changed = _set_udfs(store, "organization", org.id, row, ("name",), now)
    return "created" if created else ("updated" if changed else "unchanged")


def _device(store: Store, row: dict[str, str], now: datetime) -> str:
    fixed = ("name", "organization")
    name = _required(row, "name")
    _udf_columns(row, "device", fixed)
    org_id = _organization_id(row)
    device = Device.get_or_none((Device.organization == org_id) & (Device.name == name))
    created = device is None
    if created:
        device = Device.create(organization=org_id, name=name, created=iso(now))
    changed = _set_udfs(store, "device", device.id, row, fixed, now)
    return "created" if created else ("updated" if changed else "unchanged")


def _contact(store: Store, row: dict[str, str], now: datetime) -> str:
    unknown = [c for c in row if c not in CONTACT_COLUMNS]
    if unknown:
        raise ImportFileError(f"unknown column {unknown[0]!r} (expected {', '.join(CONTACT_COLUMNS)})")
    org_id = _organization_id(row)
    values = {
        "first_name": row.get("first_name", ""),
        "last_name": row.get("last_name", ""),
        "email": row.get("email", "").lower() or None,
        "email2": row.get("email2", "").lower() or None,
        "email3": row.get("email3", "").lower() or None,
    }
    for column in ("email", "email2", "email3"):
        if values[column] and "@" not in values[column]:
            raise ImportFileError(f"{column} {values[column]!r} is not an e-mail address")
    if not (values["email"] or values["first_name"] or values["last_name"]):
        raise ImportFileError("a contact needs an email or a name")
    if values["email"]:
        match = (Contact.organization == org_id) & (Contact.email == values["email"])
    else:
        match = ((Contact.organization == org_id) & (Contact.first_name == values["first_name"])
                 & (Contact.last_name == values["last_name"]))
    contact = Contact.get_or_none(match)
    if contact is None:
        Contact.create(organization=org_id, created=iso(now), **values)
        return "created"
    if all(getattr(contact, k) == v for k, v in values.items()):
        return "unchanged"
    Contact.update(**values).where(Contact.id == contact.id).execute()
    return "updated"


_IMPORTERS = {"organizations": _organization, "devices": _device, "contacts": _contact}
