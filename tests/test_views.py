"""The views people use in the sqlite3 shell or psql (the same rows on both engines), and
README's examples run as they stand."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from testkit.support import alert_mail, poller, token
from testkit.webhook_receiver import Receiver
from testkit.webhooks import SECRET, HookedBox

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def database(tmp_path, capsys, database_url):
    """Two open tickets (one repeated), one completed, a quarantined mail; the receiver took
    the first events, then went away. A connection of the engine's own shell library."""
    with Receiver(SECRET) as receiver:
        box = HookedBox(tmp_path, receiver, database={"url": database_url})
        box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                                             AlertID="Kaseya:8932", TicketID="Kaseya:KT-1")))
        box.run()
        box.deliver()
        receiver.stop()
        box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:8932")),
                        alert_mail(subject="CPU high", tok=token(AlertID="Kaseya:5")),
                        alert_mail(subject="Fan", tok=token(CustomerID="Kaseya:100",
                                                            AlertID="Kaseya:6")),
                        alert_mail(tok=token(pw="wrong")))
        box.run()
        box.deliver()
        fan = [t["number"] for t in box.tickets() if t["title"] == "Fan"][0]
        assert poller(box.config, "ticket", "complete", fan, "--by", "alice") == 0
    if database_url.startswith("postgresql"):
        import psycopg
        from psycopg.rows import dict_row

        connection = psycopg.connect(database_url, row_factory=dict_row, autocommit=True)
    else:
        connection = sqlite3.connect(tmp_path / "tickets.db")
        connection.row_factory = sqlite3.Row
    yield connection
    connection.close()


def rows(connection, sql):
    return [dict(row) for row in connection.execute(sql)]


def values(row) -> tuple:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def test_open_tickets_have_organization_device_and_udfs_by_label(database):
    found = rows(database, "SELECT number, organization, device, occurrences, udfs FROM "
                           "open_tickets")
    assert [(r["organization"], r["device"], r["occurrences"], json.loads(r["udfs"]))
            for r in found] == [
        ("Client One", "SRV1", 2, {"Kaseya Alert ID": "8932", "Kaseya Ticket ID": "KT-1"}),
        ("Acme MSP", None, 1, {"Kaseya Alert ID": "5"})]
    assert [r["status"] for r in rows(database, "SELECT status FROM ticket_summary")] == [
        "New", "New", "Complete"]


def test_the_outbox_view_says_what_waits_and_who_did_it(database):
    events = rows(database, "SELECT event, actor, status, attempts, waiting_seconds "
                            "FROM outbox_events")
    assert [(e["event"], e["actor"], e["status"]) for e in events] == [
        ("created", "alert", "delivered"), ("appended", "alert", "failed"),
        ("created", "alert", "pending"), ("created", "alert", "pending"),
        ("completed", "alice", "pending")]
    assert events[0]["waiting_seconds"] is None
    assert all(e["waiting_seconds"] is not None for e in events[1:])


def test_alerts_are_counted_per_organization_per_day(database):
    (day,) = {r["day"] for r in rows(database, "SELECT day FROM alerts_per_day")}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", day)
    assert [(r["organization"], r["alerts"], r["created"], r["appended"], r["completed"])
            for r in rows(database, "SELECT * FROM alerts_per_day")] == [
        ("Acme MSP", 1, 1, 0, 0), ("Client One", 3, 2, 1, 0)]


def readme_examples() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## The database", 1)[1].split("\n## ")[0]
    statements = []
    for block in re.findall(r"```sql\n(.*?)```", section, re.S):
        statements += [s.strip() for s in block.split(";") if s.strip()]
    statements += re.findall(r"sqlite3 -header -column \S+ '([^']+)'", section)
    return statements


def test_every_example_in_the_readme_runs(database):
    if not isinstance(database, sqlite3.Connection):
        return  # the examples are for the sqlite3 shell; the views are checked above on both
    examples = readme_examples()
    assert len(examples) >= 6
    for sql in examples:
        database.execute(sql).fetchall()
    by_alert = database.execute(examples[0]).fetchall()
    assert [tuple(r)[2:] for r in by_alert] == [("Client One", "SRV1")]
    waiting = database.execute(examples[2]).fetchall()
    assert len(waiting) == 4
