"""A database written by an earlier release is upgraded in place and keeps working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from poller.config import load_settings
from poller.errors import StoreError
from poller.service.passes import opened_store
from poller.service.worker import Worker
from poller.store.database import SCHEMA_VERSION, open_database
from testkit.fake_mailbox import FakeMailbox
from testkit.support import alert_mail, poller, poller_json, token, write_settings

DUMPS = Path(__file__).resolve().parent.parent / "fixtures" / "databases"


def restore(dump: str, target: Path) -> Path:
    with sqlite3.connect(target) as con:
        con.executescript((DUMPS / dump).read_text(encoding="utf-8"))
    con.close()
    return target


@pytest.fixture
def old_database(tmp_path) -> Path:
    return restore("main-0627f17.sql", tmp_path / "tickets.db")


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as con:
        version = con.execute("PRAGMA user_version").fetchone()[0]
    con.close()
    return version


def test_a_database_from_before_schema_versions_is_read_as_it_is_then_upgraded(
        tmp_path, old_database, capsys):
    assert user_version(old_database) == 0
    config = write_settings(tmp_path, None)
    tickets = poller_json(config, capsys, "tickets")
    assert [(t["number"], t["status"], t["occurrences"]) for t in tickets] == [
        ("T20261128.0001", "Complete", 2), ("T20261128.0002", "New", 1)]
    assert tickets[1]["udfs"] == {"Kaseya Alert ID": "77", "Kaseya Ticket ID": "KT-1"}
    assert [m["outcome"] for m in poller_json(config, capsys, "messages")] == [
        "created", "appended", "created", "completed", "quarantined", "skipped"]
    assert user_version(old_database) == 0  # the reading commands upgrade nothing
    with opened_store(load_settings(config)):  # a pass (or check, import) does
        pass
    assert user_version(old_database) == SCHEMA_VERSION


def test_an_upgraded_database_takes_new_mail_against_its_old_tickets(tmp_path, old_database,
                                                                     capsys):
    settings = load_settings(write_settings(tmp_path, None))
    mailbox = FakeMailbox(next_uid=7)  # UIDs 1-6 were decided by the old release
    mailbox.add(alert_mail(subject="CPU high on SRV2",
                           tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:77")))
    with opened_store(settings) as store:
        result = Worker(settings, mailbox, store).run_pass()
    assert result.counts == {"appended": 1}
    (ticket,) = [t for t in poller_json(write_settings(tmp_path, None), capsys, "tickets")
                 if t["number"] == "T20261128.0002"]
    assert ticket["occurrences"] == 2


def test_a_database_from_a_newer_release_is_refused_with_a_clear_error(tmp_path, old_database,
                                                                       capsys):
    with sqlite3.connect(old_database) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer than this ates-poller"):
        open_database(f"sqlite:///{old_database}")
    assert poller(write_settings(tmp_path, None), "tickets") == 3
    assert "upgrade ates-poller" in capsys.readouterr().err
