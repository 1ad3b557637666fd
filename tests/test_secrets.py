"""Secrets never leave the process: not in logs (even -vv with IMAP tracing), not in the
store's reports, not in tickets; and a settings file others can read is warned about."""

from __future__ import annotations

import json
import logging

from poller.config import load_settings
from testkit.support import alert_mail, run_subprocess, token, write_settings

# A password with characters IMAP must quote, and distinctive PWs to search for.
IMAP_PASSWORD = 'Imap-S3cret "quoted" \\back'
RIGHT_PW = "Right-Ates-PW-7f3a9c=="
OLD_PW = "Rotated-Ates-PW-19b2e4=="
WRONG_PW = "Wrong-Ates-PW-55d0aa=="


def _mails() -> list[bytes]:
    return [
        alert_mail(subject="Disk full", tok=token(pw=RIGHT_PW, AlertID="Kaseya:1")),
        alert_mail(subject="Disk full again", tok=token(pw=RIGHT_PW, AlertID="Kaseya:1")),
        alert_mail(subject=f"Template test {RIGHT_PW}", body=f"The key is {RIGHT_PW}.",
                   tok=token(pw=RIGHT_PW, AlertID="Kaseya:2")),
        alert_mail(subject="Wrong key", body=f"Sent with {WRONG_PW}",
                   tok=token(pw=WRONG_PW, AlertID="Kaseya:3")),
        alert_mail(subject="Two tokens", body=token(pw=OLD_PW, AlertID="Kaseya:4") + "\n\nnow:",
                   tok=token(pw=RIGHT_PW, AlertID="Kaseya:5")),
        alert_mail(subject="Old then wrong", body=token(pw=RIGHT_PW) + "\n\nnow:",
                   tok=token(pw=WRONG_PW, AlertID="Kaseya:6")),
    ]


def test_no_secret_in_debug_trace_reports_or_tickets(tmp_path, dovecot):
    account = dovecot.account(password=IMAP_PASSWORD)
    config = write_settings(tmp_path, account, ates={"password": f"{RIGHT_PW}, {OLD_PW}"})
    for raw in _mails():
        account.append("INBOX", raw)

    run = run_subprocess(config, "-vv", "once")
    assert run.returncode == 0, run.stderr
    assert "imapclient" in run.stderr and "FETCH" in run.stderr  # the protocol trace was on
    assert "LOGIN **REDACTED**" in run.stderr
    outputs = {"log": run.stderr}
    for command in (["messages", "--json"], ["tickets", "--json"]):
        result = run_subprocess(config, *command)
        assert result.returncode == 0, result.stderr
        outputs[command[0]] = result.stdout
    tickets = json.loads(outputs["tickets"])
    assert len(tickets) == 3  # Kaseya:1 (with a note), 2, 5
    assert any(t["notes"] for t in tickets)
    for ticket in tickets:
        shown = run_subprocess(config, "ticket", ticket["number"])
        outputs[f"ticket {ticket['number']}"] = shown.stdout
    outcomes = [m["outcome"] for m in json.loads(outputs["messages"])]
    assert outcomes.count("quarantined") == 2

    for where, text in outputs.items():
        for secret in (IMAP_PASSWORD, RIGHT_PW, OLD_PW, WRONG_PW):
            assert secret not in text, f"{secret!r} appears in {where}"
    assert "********" in outputs["tickets"]  # the PW shown in the alert text was masked


def test_world_readable_settings_with_a_password_is_warned_about(tmp_path, caplog):
    path = tmp_path / "settings.ini"
    path.write_text("[imap]\nhost = 127.0.0.1\nusername = u\npassword = Sup3r-Secret\n"
                    f"[ates]\npassword = {RIGHT_PW}\n", encoding="utf-8")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="poller"):
        load_settings(path, environ={})
    (record,) = [r for r in caplog.records if "readable by other users" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert str(path) in record.getMessage() and "chmod 600" in record.getMessage()
    assert "Sup3r-Secret" not in caplog.text and RIGHT_PW not in caplog.text

    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="poller"):
        load_settings(path, environ={})
    assert "readable by other users" not in caplog.text


def test_world_readable_settings_without_a_password_is_not_warned_about(tmp_path, caplog):
    secret = tmp_path / "imap.secret"
    secret.write_text("Sup3r-Secret\n", encoding="utf-8")
    secret.chmod(0o600)
    path = tmp_path / "settings.ini"
    path.write_text("[imap]\nhost = 127.0.0.1\nusername = u\npassword_file = imap.secret\n",
                    encoding="utf-8")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="poller"):
        load_settings(path, environ={"POLLER_ATES_PASSWORD": RIGHT_PW})
    assert "readable by other users" not in caplog.text
