"""The benchmark's database: the directory the mails refer to, plus optional years of history.

The directory (organizations with Kaseya Customer IDs, devices with Kaseya Device IDs, one
contact per organization) goes in through the CSV importer, as an operator would load it.
History (`--store-size`) is bulk-inserted with sqlite3: completed and open tickets with an
alert-id UDF value, notes, and the processed-message rows of the mail that made them.
"""

from __future__ import annotations

import csv
import hashlib
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from poller.store.database import open_database
from poller.store.importer import import_file
from poller.store.store import Store
from testkit.synthetic import DEVICES, ORGANIZATIONS

LOCAL = "Acme MSP"
HISTORY_START = datetime(2022, 1, 1, tzinfo=UTC)


def build_directory(db_path: Path, workdir: Path) -> None:
    """Create the schema and import the directory through poller.store.importer."""
    db = open_database(f"sqlite:///{db_path}")
    now = datetime.now(UTC)
    store = Store(db, LOCAL)
    store.prepare(now)
    files = {
        "organizations": [["name", "Kaseya Customer ID"]]
        + [[f"Client {n}", str(n)] for n in range(100, 100 + ORGANIZATIONS)],
        "devices": [["name", "organization", "Kaseya Device ID"]]
        + [[f"SRV-{d:05d}", f"Client {100 + (d - 10000) // 10}", str(d)]
           for d in range(10000, 10000 + DEVICES)],
        "contacts": [["organization", "first_name", "last_name", "email", "email2", "email3"]]
        + [[f"Client {n}", "Ops", f"Team {n}", f"ops@client{n}.example", "", ""]
           for n in range(100, 100 + ORGANIZATIONS)],
    }
    for kind, rows in files.items():
        path = workdir / f"{kind}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        import_file(store, kind, path, now)
    store.close()


def add_history(db_path: Path, tickets: int, seed: int = 7) -> None:
    """Bulk-insert `tickets` old tickets (5 % still open, 30 % on the local organization) with
    an alert-id UDF value, notes and the log row of the mail that made each."""
    if tickets <= 0:
        return
    rng = random.Random(seed)
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("PRAGMA synchronous=off")
    udf = con.execute("SELECT id FROM udf_definition WHERE entity='ticket' AND label=?",
                      ("Kaseya Alert ID",)).fetchone()[0]
    local = con.execute("SELECT id FROM organization WHERE is_local").fetchone()[0]
    devices = con.execute("SELECT id, organization_id FROM device").fetchall()
    first = (con.execute("SELECT COALESCE(MAX(id), 0) FROM ticket").fetchone()[0]) + 1
    span = (datetime(2026, 11, 1, tzinfo=UTC) - HISTORY_START).total_seconds()
    per_day: dict[str, int] = {}
    batch = 20_000
    with con:
        for start in range(first, first + tickets, batch):
            ids = range(start, min(start + batch, first + tickets))
            t_rows, u_rows, n_rows, p_rows = [], [], [], []
            for ticket_id in ids:
                when = HISTORY_START + timedelta(seconds=span * (ticket_id - first) / tickets)
                day = when.strftime("%Y%m%d")
                per_day[day] = per_day.get(day, 0) + 1
                stamp = when.isoformat(timespec="seconds")
                device_id, org_id = devices[rng.randrange(len(devices))]
                if rng.random() < 0.3:  # unmatched alerts pile up on the local organization
                    org_id, device_id = local, None
                is_open = rng.random() < 0.05
                title = f"Disk space low on SRV-{rng.randrange(10000, 13000):05d} (C:)"
                t_rows.append((ticket_id, f"T{day}.{per_day[day]:04d}", title,
                               "Old alert text. " * 20, "New" if is_open else "Complete",
                               org_id, device_id, rng.randint(1, 4), stamp, stamp,
                               None if is_open else stamp))
                u_rows.append((udf, ticket_id, f"H-{ticket_id:09d}"))
                n_rows.append((ticket_id, "duplicate", title, "Repeated alert. " * 10, stamp))
                if not is_open:
                    n_rows.append((ticket_id, "resolution", f"RESOLVED: {title}",
                                   "Back to normal.", stamp))
                digest = hashlib.sha256(ticket_id.to_bytes(8, "big")).hexdigest()
                p_rows.append(("INBOX", 1, ticket_id, f"<{digest[:24]}@history.example>", digest,
                               title, "created", "new alert", ticket_id, "flag", 1, stamp, stamp))
            con.executemany(
                "INSERT INTO ticket (id, number, title, description, status, organization_id, "
                "device_id, occurrences, created, updated, completed) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)", t_rows)
            con.executemany("INSERT INTO udf_value (udf_id, entity_id, value) VALUES (?,?,?)",
                            u_rows)
            con.executemany("INSERT INTO ticket_note (ticket_id, kind, title, text, created) "
                            "VALUES (?,?,?,?,?)", n_rows)
            con.executemany(
                "INSERT INTO processed_message (folder, uidvalidity, uid, message_id, "
                "fingerprint, subject, outcome, reason, ticket_id, action, mailbox_done, "
                "created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", p_rows)
        con.executemany("INSERT OR REPLACE INTO ticket_sequence (day, last) VALUES (?, ?)",
                        per_day.items())
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
