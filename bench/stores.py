"""The store a benchmark round runs against: a fresh copy of the prepared template, as an
SQLite file or (--database postgresql) a new database on a private PostgreSQL on 127.0.0.1,
filled by `copy-database`; and what the round left in it, for the result check."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from poller.store.copy import copy_database
from poller.store.database import open_database
from testkit.postgres import Postgres


def fresh_store(template: Path, work: Path, postgres: Postgres | None) -> str:
    """Return the URL of a fresh copy of the template database."""
    if postgres is None:
        target = work / "run.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, target)
        # Write the copy out now: its writeback would otherwise compete with the measured
        # run's own disk writes (a 1M-ticket store is 1.5 GB).
        os.sync()
        return f"sqlite:///{target}"
    url = postgres.database()
    copy_database(f"sqlite:///{template}", None, url)
    return url


def store_result(url: str, folder: str, history: int) -> tuple[dict[str, int], tuple, int]:
    """Return what a round left: outcomes of FOLDER's mail, (tickets, complete, occurrences)
    beyond the HISTORY tickets, and mailbox steps not done."""
    db = open_database(url)
    try:
        outcomes = dict(db.sql(
            "SELECT outcome, COUNT(*) FROM processed_message WHERE folder = ? GROUP BY outcome",
            (folder,)).fetchall())
        tickets = tuple(db.sql(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'Complete' THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(occurrences), 0) FROM ticket WHERE id > ?", (history,)).fetchone())
        pending = db.sql("SELECT COUNT(*) FROM processed_message WHERE folder = ? AND NOT "
                         "mailbox_done", (folder,)).fetchone()[0]
    finally:
        db.close()
    return outcomes, tickets, pending


@contextmanager
def closing_postgres(postgres: Postgres | None) -> Iterator[None]:
    """Start POSTGRES (when given) for the block, and stop and remove it after."""
    if postgres is None:
        yield
        return
    try:
        postgres.start()
        yield
    finally:
        postgres.close()
