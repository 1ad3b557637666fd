"""Databases written by earlier releases (fixtures/databases/*.sql, dumps made with sqlite3's
.dump), restored into files for the upgrade tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

DUMPS = Path(__file__).resolve().parent.parent / "fixtures" / "databases"


def restore(dump: str, target: Path) -> Path:
    """Write the database of fixtures/databases/DUMP to target; return target."""
    with sqlite3.connect(target) as con:
        con.executescript((DUMPS / dump).read_text(encoding="utf-8"))
    con.close()
    return target
