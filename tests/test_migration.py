"""A database written by an earlier release is upgraded in place and keeps working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from poller.config import load_settings
from poller.errors import StoreError
from poller.service.pass_config import PassConfig
from poller.service.passes import opened_store
from poller.service.worker import Worker
from poller.store.database import SCHEMA_VERSION, UNNAMED_MAILBOX, open_database
from testkit.databases import restore
from testkit.fake_mailbox import FakeMailbox
from testkit.serving import query
from testkit.support import alert_mail, poller, poller_json, token, write_settings


@pytest.fixture
def old_database(tmp_path) -> Path:
    return restore("main-0627f17.sql", tmp_path / "tickets.db")


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as con:
        version = con.execute("PRAGMA user_version").fetchone()[0]
    con.close()
    return version


def test_a_database_from_before_schema_versions_is_upgraded_by_a_pass_not_by_readers(
        tmp_path, old_database, capsys):
    assert user_version(old_database) == 0
    config = write_settings(tmp_path, None)
    before = old_database.read_bytes()
    assert poller(config, "tickets") == 3  # reading commands change nothing, and say why
    assert "schema version 0, older than this ates-poller's" in capsys.readouterr().err
    assert old_database.read_bytes() == before
    with opened_store(load_settings(config)):  # a pass (or check, import) upgrades it
        pass
    assert user_version(old_database) == SCHEMA_VERSION
    tickets = poller_json(config, capsys, "tickets")
    assert [(t["number"], t["status"], t["occurrences"]) for t in tickets] == [
        ("T20261128.0001", "Complete", 2), ("T20261128.0002", "New", 1)]
    assert tickets[1]["udfs"] == {"Kaseya Alert ID": "77", "Kaseya Ticket ID": "KT-1"}
    assert [m["outcome"] for m in poller_json(config, capsys, "messages")][::-1] == [
        "created", "appended", "created", "completed", "quarantined", "skipped"]


def test_an_upgraded_database_takes_new_mail_against_its_old_tickets(tmp_path, old_database,
                                                                     capsys):
    settings = load_settings(write_settings(tmp_path, None))
    mailbox = FakeMailbox(next_uid=7)  # UIDs 1-6 were decided by the old release
    mailbox.add(alert_mail(subject="CPU high on SRV2",
                           tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:77")))
    with opened_store(settings) as store:
        result = Worker(PassConfig.of(settings), mailbox, store).run_pass()
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


def test_an_upgraded_database_gets_the_outbox_and_the_views(tmp_path, old_database, capsys):
    config = write_settings(tmp_path, None, webhook={
        "url": "http://127.0.0.1:1/hooks", "secret": "s", "events": "completed"})
    with opened_store(load_settings(config)):  # upgraded as a pass opens it
        pass
    assert poller_json(config, capsys, "outbox") == []
    assert user_version(old_database) == SCHEMA_VERSION
    with sqlite3.connect(old_database) as con:
        con.row_factory = sqlite3.Row
        (ticket,) = [dict(row) for row in con.execute(
            "SELECT number, status, organization, device, occurrences, udfs FROM open_tickets")]
        per_day = [tuple(row) for row in con.execute("SELECT * FROM alerts_per_day")]
    con.close()
    assert ticket == {"number": "T20261128.0002", "status": "New", "organization": "Contoso Ltd",
                      "device": None, "occurrences": 1,
                      "udfs": '{"Kaseya Alert ID":"77","Kaseya Ticket ID":"KT-1"}'}
    assert per_day == [("2026-11-28", "Contoso Ltd", 1, 1, 0, 0),
                       ("2026-11-28", "Northwind Traders", 3, 1, 1, 1)]

    # a technician completes an old ticket: the event is written with the change
    assert poller(config, "ticket", "complete", "T20261128.0002", "--by", "alice") == 0
    (event,) = poller_json(config, capsys, "outbox")
    assert (event["event"], event["ticket"], event["status"]) == (
        "completed", "T20261128.0002", "failed")
    assert query(old_database, "SELECT id, actor, attempts FROM outbox_events") == [
        (event["id"], "alice", 1)]
    assert query(old_database, "SELECT count(*) FROM open_tickets") == [(0,)]


def schema(path: Path) -> dict[str, object]:
    """Return each table's columns (name, type, not null, default) and each index's columns."""
    with sqlite3.connect(path) as con:
        tables = [name for (name,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out: dict[str, object] = {}
        for table in tables:
            out[table] = sorted(row[1:5] for row in con.execute(f'PRAGMA table_info("{table}")'))
            for _, index, unique, *_ in con.execute(f'PRAGMA index_list("{table}")'):
                columns = [row[2] for row in con.execute(f'PRAGMA index_info("{index}")')]
                out[f"index {index}"] = (unique, columns)
    con.close()
    return out


def test_an_upgraded_database_has_the_schema_of_a_new_one(tmp_path, old_database):
    open_database(f"sqlite:///{old_database}").close()
    open_database(f"sqlite:///{tmp_path / 'new.db'}").close()
    assert schema(old_database) == schema(tmp_path / "new.db")


def test_the_old_log_is_named_once_by_the_migration_and_new_tickets_get_their_fields(
        tmp_path, old_database, capsys):
    """Not given to whichever mailbox opens the database first: its history (and pending steps,
    UIDs of one account) would become another mailbox's."""
    with sqlite3.connect(old_database) as con:
        con.execute("UPDATE processed_message SET mailbox_done = 0 WHERE uid = 5")
    con.close()
    (tmp_path / "other").mkdir()
    other = write_settings(tmp_path / "other", None, imap={"name": "another mailbox"},
                           database={"url": f"sqlite:///{old_database}"})
    with opened_store(load_settings(other)) as store:  # the first to open it after the upgrade
        assert store.pending("another mailbox", "INBOX") == []
    config = write_settings(tmp_path, None, imap={"name": "Kaseya alerts"},
                            tickets={"queue": "Level I Support", "priority": "High"})
    messages = poller_json(config, capsys, "messages")
    assert {m["mailbox"] for m in messages} == {UNNAMED_MAILBOX}
    old = poller_json(config, capsys, "tickets")
    assert {(t["mailbox"], t["queue"], t["priority"], t["sub_issue"]) for t in old} == {
        (UNNAMED_MAILBOX, None, None, None)}
    settings = load_settings(config)
    mailbox = FakeMailbox(next_uid=7)
    mailbox.add(alert_mail(subject="Fan failed on SRV9",
                           tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:90",
                                     SubIssue="Hardware")))
    with opened_store(settings) as store:
        assert Worker(PassConfig.of(settings), mailbox, store).run_pass().counts == {"created": 1}
    new = poller_json(config, capsys, "tickets", "--queue", "Level I Support")
    assert [(t["title"], t["priority"], t["source"], t["sub_issue"], t["mailbox"])
            for t in new] == [("Fan failed on SRV9", "High", "Monitoring Alert", "Hardware",
                               "Kaseya alerts")]
    assert [m["mailbox"] for m in poller_json(config, capsys, "messages")][:2] == [
        "Kaseya alerts", UNNAMED_MAILBOX]


def test_an_upgraded_database_knows_what_each_mailbox_step_is_for(tmp_path, old_database):
    """A pending step keeps its purpose, so it is planned again from the settings
    (here a quarantine folder renamed since the decision)."""
    with sqlite3.connect(old_database) as con:
        con.execute("UPDATE processed_message SET mailbox_done = 0 WHERE uid = 5")
    con.close()
    settings = load_settings(write_settings(tmp_path, None,
                                            mailbox={"quarantine_folder": "Junk"}))
    mailbox = FakeMailbox(mails={5: alert_mail(tok=token(pw="wrong"))}, next_uid=7)
    with opened_store(settings) as store:
        rows = store.db.execute_sql("SELECT uid, purpose, step_error FROM processed_message "
                                    "ORDER BY uid").fetchall()
        assert rows == [(1, "done", ""), (2, "done", ""), (3, "done", ""), (4, "done", ""),
                        (5, "quarantine", ""), (6, "no_token", "")]
        Worker(PassConfig.of(settings), mailbox, store).run_pass()
        assert store.pending(settings.imap.name, "INBOX") == []
    assert mailbox.where(5) == "Junk"


def test_two_effects_of_one_mail_logged_by_an_older_release_do_not_stop_the_upgrade(
        tmp_path, old_database, capsys):
    with sqlite3.connect(old_database) as con:
        con.execute("UPDATE processed_message SET fingerprint = 'same' WHERE outcome IN "
                    "('created', 'appended')")
    con.close()
    config = write_settings(tmp_path, None)
    with opened_store(load_settings(config)):
        pass
    assert user_version(old_database) == SCHEMA_VERSION
    kept = query(old_database, "SELECT fingerprint FROM processed_message WHERE outcome IN "
                               "('created', 'appended') ORDER BY id")
    assert kept[0] == ("same",) and all(f.startswith("same:") for (f,) in kept[1:])
    assert len(kept) == 3
