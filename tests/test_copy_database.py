"""`poller copy-database`: SQLite to PostgreSQL and back, everything or nothing, and the copy
goes on where the source stopped."""

from __future__ import annotations

from testkit.harness import Harness
from testkit.support import alert_mail, poller, token

TABLES = ("organization", "contact", "device", "udf_definition", "udf_value", "ticket",
          "ticket_sequence", "ticket_note", "attachment", "processed_message", "pass_log",
          "outbox")


HOOK = {"url": "http://127.0.0.1:9/hook", "secret": "s" * 32}  # events wait in the outbox


def _store(tmp_path, url: str) -> Harness:
    box = Harness(tmp_path, None, url, webhook=HOOK)
    box.mailbox.add(
        alert_mail(tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                             AlertID="Kaseya:1"),
                   attachments=(("log.txt", b"disk log", "text/plain"),)),
        alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")),
        alert_mail(subject="Fan", tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:2")),
        alert_mail(tok=token(pw="wrong")))
    box.run()
    return box


def _copy(box: Harness, target: str, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = poller(box.settings_path, "copy-database", target)
    out, err = capsys.readouterr()
    return code, out, err


def _shown(box: Harness) -> tuple[list, list]:
    """What the store tells of its tickets (with notes and attachments) and mail."""
    return box.tickets(), box.messages()


def test_sqlite_to_postgresql_and_back_carries_everything_on(tmp_path, postgres, capsys):
    source = _store(tmp_path, f"sqlite:///{tmp_path}/tickets.db")
    on_sqlite = _shown(source)
    assert len(on_sqlite[0]) == 2 and len(on_sqlite[1]) == 4
    with postgres.scratch_database() as pg:
        code, out, err = _copy(source, pg, capsys)
        assert code == 0, err
        assert "the row counts match" in out
        for table in TABLES:
            assert table in out
        # point the settings at the copy: the same tickets and log, and it goes on
        source.database_url = pg
        source.configure(webhook=HOOK)
        assert _shown(source) == on_sqlite
        source.mailbox.add(
            alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")),
            alert_mail(subject="New", tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:3")))
        assert source.run().counts == {"appended": 1, "created": 1}
        tickets = source.tickets()
        assert [t["occurrences"] for t in tickets] == [3, 1, 1]
        numbers = [t["number"] for t in tickets]
        assert numbers[2].endswith(".0003") and len(set(numbers)) == 3

        # and back into a new SQLite file: the same again
        back = f"sqlite:///{tmp_path}/back.db"
        code, out, err = _copy(source, back, capsys)
        assert code == 0, err
        on_pg = _shown(source)
        source.database_url = back
        source.configure(webhook=HOOK)
        assert _shown(source) == on_pg
        assert on_pg[0][0]["attachments"][0]["filename"] == "log.txt"


def test_a_target_that_holds_rows_is_refused_and_left_as_it_was(tmp_path, database_url,
                                                                capsys):
    box = _store(tmp_path, database_url)
    (tmp_path / "other").mkdir()
    target = tmp_path / "other" / "target.db"
    other = Harness(tmp_path / "other", None, f"sqlite:///{target}")  # a directory only
    before = target.read_bytes()
    code, _, err = _copy(box, f"sqlite:///{target}", capsys)
    assert code == 2
    assert "not empty" in err and "organization" in err
    assert target.read_bytes() == before
    assert other.tickets() == []
