"""Rules for alert mail without a token end to end against the private Dovecot: `poller once`
with the shipped rules file makes, repeats and completes tickets of mail without a token, and
neither a forged sender nor a reply opens or closes one."""

from __future__ import annotations

from pathlib import Path

from testkit.support import poller, poller_json, write_settings

RULES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
KEYWORD = b"$AtesProcessed"


def test_mail_without_a_token_becomes_tickets_by_rules(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, rules={
        "file": str(RULES / "rules.toml"), "authserv_id": "mx.msp.example"})
    (tmp_path / "orgs.csv").write_text("name,Nagios Customer ID,Veeam Customer ID\n"
                                       "Client One,client-one.example,backup.client-one.example\n")
    assert poller(config, "import", "organizations", str(tmp_path / "orgs.csv")) == 0
    names = ["01_nagios_problem", "02_nagios_problem_again", "07_veeam_failed",
             "08_veeam_forged", "10_unknown_tool"]
    for name in names:
        imap_account.append("INBOX", (RULES / f"{name}.eml").read_bytes())
    reply = (RULES / "03_nagios_recovery.eml").read_bytes().replace(
        b"Subject: **", b"Subject: RE: **").replace(b"<nagios-3@", b"<re-3@")
    imap_account.append("INBOX", reply)
    assert poller(config, "once") == 0
    imap_account.append("INBOX", (RULES / "03_nagios_recovery.eml").read_bytes())
    assert poller(config, "once") == 0

    rows = poller_json(config, capsys, "messages")[::-1]  # oldest first, as delivered
    assert [r["outcome"] for r in rows] == ["created", "appended", "created", "skipped",
                                            "skipped", "skipped", "completed"]
    tickets = {t["title"]: t for t in poller_json(config, capsys, "tickets")}
    disk = tickets["srv1 Disk Usage is CRITICAL"]
    assert (disk["organization"], disk["status"], disk["occurrences"]) == ("Client One",
                                                                           "Complete", 2)
    assert tickets["Veeam Backup job DC01: Failed"]["status"] == "New"
    flags = [KEYWORD in f for _, f, _ in imap_account.messages("INBOX")]
    assert flags == [True, True, True, False, False, False, True]


def test_once_opens_a_ticket_for_each_missed_window_and_the_mail_completes_it(
        tmp_path, imap_account, capsys):
    """`once` looks at the deadlines that passed since its last run: here the last run is made
    three days old in the database, as if cron had not run it since."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    (tmp_path / "rules.toml").write_text(
        '[[expect]]\nname = "nightly backup"\nsubject = "^\\\\[Success\\\\] Backup Job DC01"\n'
        'deadline = "30 5 * * *"\norganization = "Client One"\n')
    config = write_settings(tmp_path, imap_account, rules={"file": "rules.toml",
                                                           "timezone": "UTC"})
    (tmp_path / "orgs.csv").write_text("name\nClient One\n")
    assert poller(config, "import", "organizations", str(tmp_path / "orgs.csv")) == 0
    assert poller(config, "once") == 0  # the first window opens
    assert poller_json(config, capsys, "tickets") == []
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="seconds")
    with sqlite3.connect(tmp_path / "tickets.db") as con:
        con.execute("UPDATE expected_mail SET window_start = ?, checked = ?", (old, old))
    assert poller(config, "once") == 0
    assert poller(config, "once") == 0  # looked at once: no second ticket, no occurrence
    (ticket,) = poller_json(config, capsys, "tickets")
    assert ticket["title"] == "Expected mail did not arrive: nightly backup"
    assert ticket["organization"] == "Client One" and ticket["occurrences"] in (3, 4)

    imap_account.append("INBOX", b"From: reports@backup.example\nSubject: [Success] Backup Job "
                                 b"DC01 (2 VMs)\nMessage-ID: <b1@backup.example>\n\nSuccess: 2\n")
    assert poller(config, "once") == 0
    (ticket,) = poller_json(config, capsys, "tickets")
    assert ticket["status"] == "Complete"
    (row,) = poller_json(config, capsys, "messages")
    assert row["outcome"] == "expected" and row["ticket"] == ticket["number"]
    ((_, flags, _),) = imap_account.messages("INBOX")
    assert KEYWORD in flags
