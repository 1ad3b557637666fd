"""The directory as an import sees it: organizations, devices, contacts and UDF values, each read
once in one query (an import of many rows asks about each of them)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from poller.store.engine import Engine


class Snapshot:
    """Read-only views of the directory, each loaded the first time it is asked for."""

    def __init__(self, db: Engine):
        self._db = db
        self._cache: dict[object, Any] = {}

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
        return self._db.sql(sql, params).fetchall()

    def _once(self, key: object, load: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def organization_name(self, organization_id: int) -> str:
        """Return the name of an organization that exists."""
        return self._once("names", lambda: dict(self._rows("SELECT id, name FROM organization"))
                          )[organization_id]

    def organizations_by_name(self) -> dict[str, list[int]]:
        """Return name → ids of the organizations of that name."""
        def load() -> dict[str, list[int]]:
            found: dict[str, list[int]] = defaultdict(list)
            for organization_id, name in self._rows("SELECT id, name FROM organization "
                                                    "ORDER BY id"):
                found[name].append(organization_id)
            return dict(found)
        return self._once("by name", load)

    def organizations_by_udf(self, label: str) -> dict[str, list[int]]:
        """Return value → ids of the organizations with that value of the UDF LABEL."""
        def load() -> dict[str, list[int]]:
            found: dict[str, list[int]] = defaultdict(list)
            for organization_id, value in self.udf_values("organization", label).items():
                found[value].append(organization_id)
            return dict(found)
        return self._once(("by udf", label), load)

    def udf_values(self, entity: str, label: str) -> dict[int, str]:
        """Return entity id → value of the UDF LABEL of ENTITY (empty if it is not defined)."""
        return self._once(("udf", entity, label), lambda: dict(self._rows(
            "SELECT v.entity_id, v.value FROM udf_value v JOIN udf_definition d "
            "ON d.id = v.udf_id WHERE d.entity = ? AND d.label = ?", (entity, label))))

    def devices(self) -> dict[tuple[int, str], int]:
        """Return (organization id, name) → device id."""
        return self._once("devices", lambda: {
            (organization_id, name): device_id for device_id, organization_id, name in
            self._rows("SELECT id, organization_id, name FROM device")})

    def contacts(self) -> dict[tuple[object, ...], dict[str, Any]]:
        """Return (organization id, 'email', email) and (organization id, 'name', first,
        last) → the contact (its id and fields); the oldest where several match."""
        def load() -> dict[tuple[object, ...], dict[str, Any]]:
            found: dict[tuple[object, ...], dict[str, Any]] = {}
            for row in self._rows("SELECT id, organization_id, first_name, last_name, email, "
                                  "email2, email3 FROM contact ORDER BY id"):
                contact = dict(zip(("id", "organization", "first_name", "last_name", "email",
                                    "email2", "email3"), row, strict=True))
                if contact["email"]:
                    found.setdefault((row[1], "email", contact["email"]), contact)
                found.setdefault((row[1], "name", row[2], row[3]), contact)
            return found
        return self._once("contacts", load)
