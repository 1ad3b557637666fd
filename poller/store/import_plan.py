"""What an import would do: a file's columns mapped to the fields of a kind, each row checked and
matched against the directory by its natural key, and compared with it field by field. Reads
only; poller.store.importer writes the plan."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from poller.ates import udf
from poller.errors import ImportFileError
from poller.store.csvfile import Table
from poller.store.engine import Engine
from poller.store.snapshot import Snapshot

ENTITY = {"organizations": "organization", "devices": "device", "contacts": "contact"}
FIXED = {"organizations": ("name",), "devices": ("name", "organization"),
         "contacts": ("organization", "first_name", "last_name", "email", "email2", "email3")}
REQUIRED = {"organizations": ("name",), "devices": ("name", "organization"),
            "contacts": ("organization",)}
NATURAL_KEY = {"organizations": "one row per organization name and --organization-by value",
               "devices":
               "one row per device name and organization",
               "contacts": "one row per e-mail address (or name, without one) and organization"}
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class ImportOptions:
    """--column "HEADER=FIELD" mappings (none: the header names the fields), and the
    organization UDF whose values the organization column holds (organizations: the UDF
    they are matched by) instead of names."""

    columns: tuple[str, ...] = ()
    organization_by: str | None = None


@dataclass(frozen=True)
class Change:
    """A row that adds or changes an entity: (field, old value or None, new value) each."""

    line: int
    action: str  # add | change
    what: str
    fields: tuple[tuple[str, str | None, str | None], ...]


@dataclass(frozen=True)
class Row:
    """What to write for one row: entity_id None adds the entity."""

    line: int
    entity_id: int | None
    organization_id: int | None
    values: dict[str, str | None]  # the entity's own fields to set
    udfs: dict[str, str]  # UDF label → value to set


@dataclass
class Plan:
    kind: str
    table: Table
    ignored: tuple[str, ...]
    rows: list[Row] = field(default_factory=list)  # those that add or change something
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        """Return how many rows add, change and leave alone an entity."""
        added = sum(1 for c in self.changes if c.action == "add")
        return {"added": added, "changed": len(self.changes) - added,
                "unchanged": self.unchanged}


class RowError(Exception):
    """A row that cannot be imported; the message says why (the line is added)."""


def udf_parts(entity: str, label: str) -> tuple[str, str] | None:
    """Return (source, kind) when LABEL is a UDF label of ENTITY ('Kaseya Device ID'), else None."""
    for kind in udf.kinds_of(entity):
        if label.endswith(" " + kind) and len(label) > len(kind) + 1:
            return label[: -len(kind) - 1], kind
    return None


def plan_import(db: Engine, kind: str, table: Table, options: ImportOptions) -> Plan:
    """Return what importing TABLE as KIND would add and change; raise ImportFileError naming
    every bad row (the first MAX_PROBLEMS of them) and column."""
    mapping, ignored = map_columns(kind, table, options.columns)
    by = options.organization_by
    if by is not None:
        if udf_parts("organization", by) is None:
            raise ImportFileError(f"--organization-by {by!r}: not an organization UDF label "
                                  f"(e.g. '{udf.label('Kaseya', udf.CUSTOMER_ID)}')")
        if kind == "organizations" and by not in mapping:
            raise ImportFileError(f"--organization-by {by!r}: no column gives it (map one with "
                                  f'--column "HEADER={by}")')
    plan = Plan(kind, table, ignored)
    snapshot = Snapshot(db)
    planner = _PLANNERS[kind]
    seen: dict[object, int] = {}
    problems: list[tuple[int, str]] = []
    for line, cells in table.rows:
        values = {name: cells[index] for name, index in mapping.items()}
        try:
            keys, row, change = planner(snapshot, line, values, by)
        except RowError as exc:
            problems.append((line, str(exc)))
            continue
        if row.entity_id is not None:  # two keys may lead to one entity
            keys = (*keys, ("id", row.entity_id))
        first = next((seen[key] for key in keys if key in seen), None)
        if first is not None:
            what = change.what if change else "it"
            problems.append((line, f"{what} is on line {first} already ({NATURAL_KEY[kind]})"))
            continue
        seen.update(dict.fromkeys(keys, line))
        if change is None:
            plan.unchanged += 1
        else:
            plan.rows.append(row)
            plan.changes.append(change)
    if problems:
        shown = [f"{table.path}:{line}: {message}" for line, message in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more rows like these")
        raise ImportFileError("\n".join([*shown, "nothing was imported"]))
    return plan


def map_columns(kind: str, table: Table, columns: tuple[str, ...]
                ) -> tuple[dict[str, int], tuple[str, ...]]:
    """Return field → column index, and the names of the columns not read."""
    entity = ENTITY[kind]
    mapping: dict[str, int] = {}
    if not columns:
        for index, name in enumerate(table.header):
            if not name:
                continue
            if name not in FIXED[kind] and udf_parts(entity, name) is None:
                raise ImportFileError(f"{table.path}:1: unknown column {name!r} (expected "
                                      f"{_fields(kind)}; or map it: --column \"{name}=FIELD\")")
            if name in mapping:
                raise ImportFileError(f"{table.path}:1: two columns are named {name!r}")
            mapping[name] = index
    for spec in columns:
        header, equals, name = (part.strip() for part in spec.rpartition("="))
        if not equals or not header or not name:
            raise ImportFileError(f"--column {spec!r}: expected \"HEADER=FIELD\"")
        if name not in FIXED[kind] and udf_parts(entity, name) is None:
            raise ImportFileError(f"--column {spec!r}: {name!r} is not a field of {kind} "
                                  f"(expected {_fields(kind)})")
        if name in mapping:
            raise ImportFileError(f"--column {spec!r}: {name!r} is given by another column too")
        mapping[name] = _column(table, spec, header)
    missing = [name for name in REQUIRED[kind] if name not in mapping]
    if missing:
        raise ImportFileError(f"{table.path}: no column gives {missing[0]!r} (name one "
                              f"{missing[0]!r}, or map one: --column \"HEADER={missing[0]}\")")
    read = set(mapping.values())
    ignored = tuple(name or f"column {index + 1} (no name)"
                    for index, name in enumerate(table.header) if index not in read)
    return mapping, ignored


def _fields(kind: str) -> str:
    fixed = ", ".join(FIXED[kind])
    kinds = udf.kinds_of(ENTITY[kind])
    if not kinds:
        return fixed
    return fixed + " or a UDF label: " + " or ".join(f"'{udf.label('<source>', k)}'"
                                                      for k in kinds)


def _column(table: Table, spec: str, header: str) -> int:
    found = [i for i, name in enumerate(table.header) if name == header] or \
        [i for i, name in enumerate(table.header) if name.casefold() == header.casefold()]
    if len(found) > 1:
        raise ImportFileError(f"--column {spec!r}: the file has {len(found)} columns named "
                              f"{header!r}")
    if not found:
        close = difflib.get_close_matches(header, [n for n in table.header if n], n=1)
        hint = f"did you mean {close[0]!r}?" if close else \
            "its columns: " + ", ".join(repr(n) for n in table.header if n)
        raise ImportFileError(f"--column {spec!r}: the file has no column {header!r} ({hint})")
    return found[0]


def _required(values: dict[str, str], name: str) -> str:
    value = values.get(name, "")
    if not value:
        raise RowError(f"{name} is empty")
    return value


def _organization_of(snapshot: Snapshot, values: dict[str, str], by: str | None
                     ) -> tuple[int, str]:
    """Return the id of the row's organization, and how to name it in messages."""
    value = _required(values, "organization")
    if by is None:
        found = snapshot.organizations_by_name().get(value, [])
        missing = f"organization {value!r} does not exist; import organizations first"
    else:
        found = snapshot.organizations_by_udf(by).get(value, [])
        missing = (f"organization {value!r} does not exist: no organization has {by} "
                   f"{value!r}; import organizations with that column first")
    if not found:
        raise RowError(missing)
    if len(found) > 1:
        raise RowError(f"organization {value!r} is not unique: {len(found)} organizations "
                       f"{'have that name' if by is None else f'have {by} {value!r}'}")
    return found[0], snapshot.organization_name(found[0])


def _compare(snapshot: Snapshot, entity: str, entity_id: int | None,
             old: dict[str, str | None], new: dict[str, str | None], udfs: dict[str, str]
             ) -> tuple[dict[str, str | None], dict[str, str], list[tuple[str, str | None,
                                                                          str | None]]]:
    """Return the fields and UDFs that differ from the directory's, and (field, old, new) of
    each. An empty UDF cell leaves the UDF as it is."""
    fields = {k: v for k, v in new.items() if entity_id is None or old.get(k) != v}
    current = {label: None if entity_id is None else
               snapshot.udf_values(entity, label).get(entity_id) for label in udfs}
    changed_udfs = {label: value for label, value in udfs.items() if current[label] != value}
    diffs = [(k, None if entity_id is None else old.get(k), v) for k, v in fields.items()]
    diffs += [(label, current[label], value) for label, value in changed_udfs.items()]
    return fields, changed_udfs, diffs


Planned = tuple[tuple[object, ...], Row, Change | None]  # its natural keys, what to write


def _udfs(values: dict[str, str], fixed: tuple[str, ...]) -> dict[str, str]:
    return {name: value for name, value in values.items() if name not in fixed and value}


def _organization(snapshot: Snapshot, line: int, values: dict[str, str], by: str | None
                  ) -> Planned:
    name = _required(values, "name")
    udfs = _udfs(values, FIXED["organizations"])
    if by is None:
        found = snapshot.organizations_by_name().get(name, [])
        if len(found) > 1:
            raise RowError(f"organization name {name!r} is not unique in the directory")
        keys: tuple[object, ...] = (name,)
        what = f"organization {name!r}"
    else:
        value = _required(values, by)
        found = snapshot.organizations_by_udf(by).get(value, [])
        if len(found) > 1:
            raise RowError(f"{by} {value!r} belongs to {len(found)} organizations")
        if not found:  # an organization of that name without a value for it: this one
            found = [i for i in snapshot.organizations_by_name().get(name, [])
                     if snapshot.udf_values("organization", by).get(i) is None][:1]
        taken = [i for i in snapshot.organizations_by_name().get(name, []) if i not in found]
        if taken:  # two organizations of one name: alerts and imports by name could not tell
            other = snapshot.udf_values("organization", by).get(taken[0])
            raise RowError(f"organization name {name!r} is taken by another organization"
                           + (f" (the one with {by} {other!r})" if other else ""))
        keys, what = ((by, value), name), f"organization {name!r} ({by} {value!r})"
    entity_id = found[0] if found else None
    old = {"name": snapshot.organization_name(entity_id)} if entity_id is not None else {}
    fields, changed, diffs = _compare(snapshot, "organization", entity_id, old, {"name": name},
                                      udfs)
    return keys, Row(line, entity_id, None, fields, changed), _change(line, entity_id, what, diffs)


def _device(snapshot: Snapshot, line: int, values: dict[str, str], by: str | None) -> Planned:
    name = _required(values, "name")
    organization_id, organization = _organization_of(snapshot, values, by)
    entity_id = snapshot.devices().get((organization_id, name))
    what = f"device {name!r} of {organization!r}"
    new = {"name": name} if entity_id is None else {}
    fields, changed, diffs = _compare(snapshot, "device", entity_id, {}, new,
                                      _udfs(values, FIXED["devices"]))
    row = Row(line, entity_id, organization_id, fields, changed)
    return ((organization_id, name),), row, _change(line, entity_id, what, diffs)


def _contact(snapshot: Snapshot, line: int, values: dict[str, str], by: str | None) -> Planned:
    organization_id, organization = _organization_of(snapshot, values, by)
    new: dict[str, str | None] = {}
    for name in FIXED["contacts"][1:]:
        if name in values:
            value = values[name]
            new[name] = (value.lower() or None) if name.startswith("email") else value
            if name.startswith("email") and value and "@" not in value:
                raise RowError(f"{name} {value!r} is not an e-mail address")
    email, first, last = new.get("email"), new.get("first_name", ""), new.get("last_name", "")
    if not (email or first or last):
        raise RowError("a contact needs an email or a name")
    key = (organization_id, "email", email) if email else (organization_id, "name", first, last)
    existing = snapshot.contacts().get(key)
    entity_id = existing["id"] if existing else None
    if entity_id is None:
        new = {"first_name": "", "last_name": "", **new}
    shown = email or f"{first} {last}".strip()
    what = f"contact {shown!r} of {organization!r}"
    fields, _, diffs = _compare(snapshot, "contact", entity_id, existing or {}, new, {})
    row = Row(line, entity_id, organization_id, fields, {})
    return (key,), row, _change(line, entity_id, what, diffs)


def _change(line: int, entity_id: int | None, what: str,
            diffs: list[tuple[str, str | None, str | None]]) -> Change | None:
    if entity_id is None:  # the fields it gets, without the empty ones
        return Change(line, "add", what, tuple(d for d in diffs if d[2]))
    return Change(line, "change", what, tuple(diffs)) if diffs else None


_PLANNERS = {"organizations": _organization, "devices": _device, "contacts": _contact}
