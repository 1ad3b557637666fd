"""Output that cannot be forged: what a library logs about a mail in the reading helper reaches
the log escaped, whoever logged it; --json escapes C0/C1 controls and bidi overrides as
\\uXXXX; undecodable bytes in a technician's arguments exit 2 with a message; a database held
by another process past its busy timeout exits 3 with the message the README explains."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime

from poller.cli.output import TextFormatter, dumps
from poller.service.reader import Reader
from testkit import misreading
from testkit.support import alert_mail, poller, run_subprocess, token
from testkit.webhooks import HookedBox

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
FORGED = "Disk\x1b[2J\x1b]0;pwned\x07 \u202eok\x85 2026-11-29 10:00:00 INFO poller: all good"


def test_what_a_library_logs_in_the_reading_helper_is_escaped(caplog):
    raw = alert_mail(subject="x", tok=token(AlertID="Kaseya:1")).replace(
        b"Subject: x", b"Subject: " + FORGED.encode() + b"\n" + b" 2026 INFO poller: forged")
    raw = misreading.misread(raw, "log")
    with caplog.at_level(logging.INFO), Reader(misreading.read) as reader:
        chunks = list(reader.chunks([[1]], {1: len(raw)}, lambda uids: {1: raw},
                                    lambda: NOW, budget=10**9, seconds=5))
    assert chunks and chunks[0][1][1].alert is not None
    (line,) = [r.getMessage() for r in caplog.records if "Failed decoding" in r.getMessage()]
    assert "\x1b" not in line and "\u202e" not in line and "\x85" not in line
    assert "\n" not in line and "\\x1b[2J" in line


def test_a_text_log_line_escapes_its_message_whoever_logged_it():
    record = logging.LogRecord("msal", logging.ERROR, __file__, 1, "Token response: %s",
                               (FORGED + "\nFORGED LINE",), None)
    line = TextFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line


def test_json_output_escapes_c0_c1_and_bidi_controls():
    text = dumps({"subject": FORGED + "\u2028\u2066x\u2069\x7f"})
    assert all(c not in text for c in "\x1b\x07\u202e\x85\u2028\u2066\u2069\x7f")
    assert "\\u202e" in text and "\\u0085" in text and "\\u001b" in text
    assert json.loads(text) == {"subject": FORGED + "\u2028\u2066x\u2069\x7f"}
    assert "Zürich – ok" in dumps({"a": "Zürich – ok"})  # the rest stays readable


def test_the_json_listings_escape_what_the_sender_wrote(box, capsys):
    box.mailbox.add(alert_mail(subject="Disk \u202eSRV1\x85", tok=token(AlertID="Kaseya:1")))
    box.run()
    capsys.readouterr()
    assert poller(box.tmp_path / "settings.ini", "messages", "--json") == 0
    out = capsys.readouterr().out
    assert "\u202e" not in out and "\\u202e" in out


def test_undecodable_bytes_in_a_technicians_arguments_exit_2(tmp_path, receiver):
    hooked = HookedBox(tmp_path, receiver)
    hooked.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")))
    hooked.run()
    number = hooked.tickets()[0]["number"]
    for args in (("ticket", "note", number, "caf\udce9"), ("ticket", "complete", number,
                                                          "--note", "\udcff"),
                 ("ticket", "note", number, "ok", "--by", "b\udcffd")):
        done = run_subprocess(hooked.config, *args)
        assert done.returncode == 2, done.stderr
        assert "not valid UTF-8" in done.stderr and "Traceback" not in done.stderr


def test_a_database_held_past_the_busy_timeout_exits_3_with_the_readme_message(
        tmp_path, receiver):
    hooked = HookedBox(tmp_path, receiver)
    hooked.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")))
    hooked.run()
    number = hooked.tickets()[0]["number"]
    holder = sqlite3.connect(tmp_path / "tickets.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        prelude = ("import poller.store.database as d\n"
                   "d.SQLITE_PRAGMAS = dict(d.SQLITE_PRAGMAS, busy_timeout=300)")
        event = hooked.outbox()[0]["id"]
        for args in (("ticket", "note", number, "called"), ("ticket", "complete", number),
                     ("outbox", "drop", event), ("outbox", "retry", event)):
            done = run_subprocess(hooked.config, *args, prelude=prelude)
            assert done.returncode == 3, done.stderr
            assert "database is locked" in done.stderr and "Traceback" not in done.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    readme = (misreading.__file__.rsplit("/testkit/", 1)[0] + "/README.md")
    assert "| `database is locked` |" in open(readme, encoding="utf-8").read()
