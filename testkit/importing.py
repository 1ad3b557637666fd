"""What the importer tests share: a settings file, running `poller import`, reading back the
directory it wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from poller.cli.main import main

SETTINGS = """[imap]
host = 127.0.0.1
username = alerts
password = imap-secret
[ates]
password = ates-secret
local_organization = Acme MSP
"""
ORGS = "name,Kaseya Customer ID\nNorthwind Traders,100\nContoso Ltd,200\n"


def settings_file(tmp_path: Path, database_url: str | None = None) -> Path:
    """Write settings.ini for an import into DATABASE_URL (default: tmp_path/tickets.db; no
    mailbox is used)."""
    path = tmp_path / "settings.ini"
    path.write_text(SETTINGS + (f"[database]\nurl = {database_url}\n" if database_url else ""),
                    encoding="utf-8")
    path.chmod(0o600)
    return path


def poller(config: Path, capsys, *args: object) -> tuple[int, str, str]:
    """Run poller with CONFIG; return the exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(["--config", str(config), *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8", bom: bytes = b"") -> Path:
    """Write TEXT to tmp_path/NAME in ENCODING, after BOM."""
    path = tmp_path / name
    path.write_bytes(bom + text.encode(encoding))
    return path


def rows(tmp_path: Path, sql: str) -> list[tuple]:
    """Return the rows SQL selects from the store of tmp_path/settings.ini (tickets.db there,
    or the PostgreSQL database its [database] url names)."""
    for line in (tmp_path / "settings.ini").read_text(encoding="utf-8").splitlines():
        if line.startswith("url = postgresql://"):
            import psycopg

            with psycopg.connect(line.split(" = ", 1)[1]) as pg:
                return [tuple(row) for row in pg.execute(sql).fetchall()]
    with sqlite3.connect(tmp_path / "tickets.db") as db:
        return db.execute(sql).fetchall()


def devices(tmp_path: Path) -> list[tuple]:
    """Return (organization, device) of every device, by device name."""
    return rows(tmp_path, "SELECT o.name, d.name FROM device d JOIN organization o "
                          "ON o.id = d.organization_id ORDER BY d.name")


def udfs(tmp_path: Path) -> list[tuple]:
    """Return (label, value) of every UDF value."""
    return rows(tmp_path, "SELECT d.label, v.value FROM udf_value v JOIN udf_definition d "
                          "ON d.id = v.udf_id ORDER BY d.label, v.value")


def imported(config: Path, capsys, tmp_path: Path, kind: str, text: str, *options: str,
             expect: int = 0) -> str:
    """Import TEXT as KIND; check the exit code; return stdout (exit 0) or stderr."""
    path = write(tmp_path, f"{kind}.csv", text)
    code, out, err = poller(config, capsys, "import", kind, path, *options)
    assert code == expect, err
    return out if expect == 0 else err
