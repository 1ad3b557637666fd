"""The commands that only read (tickets, ticket, messages, status) never create or change a
database: a missing one is a clear error (exit 3); one of an older schema version is not
upgraded (test_migration.py)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest

from poller.config import load_settings
from poller.store.database import open_database
from poller.store.store import Store
from testkit.databases import restore
from testkit.support import alert_mail, poller, poller_json, token, write_settings

READERS = [("tickets",), ("ticket", "T20261128.0002"), ("messages",), ("status", "--no-mailbox")]


@pytest.mark.parametrize("command", READERS, ids=[c[0] for c in READERS])
def test_a_missing_database_is_an_error_and_is_not_created(tmp_path, command, capsys):
    config = write_settings(tmp_path, None,
                            database={"url": f"sqlite:///{tmp_path}/state/tickets.db"})
    assert poller(config, *command) == 3
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("command", READERS, ids=[c[0] for c in READERS])
def test_reading_changes_no_byte_and_leaves_no_file(tmp_path, command, capsys):
    path = restore("main-0627f17.sql", tmp_path / "tickets.db")
    open_database(f"sqlite:///{path}").close()  # upgraded, as by a pass
    before = path.read_bytes()
    config = write_settings(tmp_path, None, ates={"local_organization": "Renamed MSP"})
    # status: the last good pass in the dump is days old, hence 5 (stale)
    assert poller(config, *command) == (5 if command[0] == "status" else 0)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.ini", "tickets.db"]


def test_a_table_an_older_schema_lacks_gives_a_clear_error(tmp_path, capsys):
    path = restore("main-0627f17.sql", tmp_path / "tickets.db")
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE pass_log")
    con.close()
    assert poller(write_settings(tmp_path, None), "status", "--no-mailbox") == 3
    error = capsys.readouterr().err
    assert "no such table: pass_log" in error and "the next pass upgrades it" in error


def test_what_a_running_pass_committed_is_read(tmp_path, capsys):
    config = write_settings(tmp_path, None)
    writer = open_database(f"sqlite:///{tmp_path}/tickets.db")  # held open, as by a pass
    try:
        now = datetime.now(UTC)
        Store(writer, "Acme MSP").log_pass(load_settings(config).imap.name, now, now, True,
                                           "created=1")
        assert (tmp_path / "tickets.db-wal").stat().st_size > 0  # not yet in the main file
        status = poller_json(config, capsys, "status", "--no-mailbox")
    finally:
        writer.close()
    assert status["passes_ok"] == 1 and status["last_pass"]["counts"] == "created=1"


def test_parse_decides_on_an_older_store_without_upgrading_or_changing_it(tmp_path, capsys):
    path = restore("main-0627f17.sql", tmp_path / "tickets.db")
    before = path.read_bytes()
    mail = tmp_path / "alert.eml"
    mail.write_bytes(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:77")))
    capsys.readouterr()
    assert poller(write_settings(tmp_path, None), "parse", str(mail)) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["decision"]["outcome"] == "created"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alert.eml", "settings.ini",
                                                          "tickets.db"]
