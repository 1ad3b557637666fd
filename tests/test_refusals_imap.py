"""A mail the server refuses must not stop every pass, against the private Dovecot: a message
file Dovecot cannot read (it ends the session on every FETCH of it), and FETCH, MOVE or a
folder answered NO (a proxy on 127.0.0.1 answers in the server's place). The decision paths
are tested over a fake mailbox in test_refusals.py."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from testkit.proxy import TcpProxy, refusing
from testkit.serving import append_many, count_tickets
from testkit.support import alert_mail, poller, poller_json, token, write_settings

FAST_RETRY = {"initial_wait": "0.05", "max_wait": "0.2"}


def failing_steps_metric(textfile) -> float:
    """Return the value of ates_poller_failing_mailbox_steps in the metrics textfile."""
    (value,) = re.findall(r"(?m)^ates_poller_failing_mailbox_steps\{mailbox=\"[^\"]*\"\} (\S+)$",
                          textfile.read_text())
    return float(value)


def alerts(account, count: int) -> None:
    append_many(account, [alert_mail(subject=f"Alert {n}", tok=token(AlertID=f"Kaseya:{n}"))
                          for n in range(count)])


def status(config, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = poller(config, "status", "--no-mailbox", "--json")
    return code, json.loads(capsys.readouterr().out)


def quarantined(config, capsys) -> list[dict]:
    return [m for m in poller_json(config, capsys, "messages") if m["outcome"] == "quarantined"]


def test_a_fetch_answered_no_quarantines_only_that_mail(tmp_path, imap_account, capsys):
    alerts(imap_account, 5)
    with TcpProxy(imap_account.port, deny=refusing(3)) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)})
        assert poller(config, "once") == 0
        assert proxy.denied
    assert count_tickets(tmp_path / "tickets.db") == 4
    (row,) = quarantined(config, capsys)
    assert row["uid"] == 3
    assert row["reason"].startswith("the server refused to return it: fetching mail:")
    assert "refused by the test proxy" in row["reason"]
    assert len(imap_account.messages("Quarantine")) == 1
    assert len(imap_account.messages("INBOX")) == 4


def test_a_mail_whose_move_is_refused_too_fails_one_pass_and_is_shown_by_status(
        tmp_path, imap_account, capsys):
    alerts(imap_account, 4)
    metrics = tmp_path / "poller.prom"
    with TcpProxy(imap_account.port, deny=refusing(3, b"MOVE", b"COPY")) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                metrics={"textfile": str(metrics)})
        assert poller(config, "once") == 1  # refused for the first time: left for next pass
        assert "mailbox step 'move:Quarantine' refused for 1 mail (uid=3)" in \
            capsys.readouterr().err
        assert poller(config, "once") == 0  # known, recorded: no longer fails the pass
        assert "refused again for 1 mail (uid=3)" in capsys.readouterr().err
        code, report = status(config, capsys)
        assert code == 1
        assert (report["pending_mailbox_steps"], report["failing_mailbox_steps"]) == (1, 1)
        assert "refused by the test proxy" in report["step_error"]
        assert failing_steps_metric(metrics) == 1
        capsys.readouterr()
        assert poller(config, "status", "--no-mailbox") == 1
        assert "FAILING steps:    1 refused by the server" in capsys.readouterr().out
    config = write_settings(tmp_path, imap_account, metrics={"textfile": str(metrics)})
    assert poller(config, "once") == 0  # the server takes the move now
    assert status(config, capsys)[0] == 0
    assert failing_steps_metric(metrics) == 0
    assert len(imap_account.messages("Quarantine")) == 1
    assert count_tickets(tmp_path / "tickets.db") == 3


def test_a_message_file_dovecot_cannot_read_is_quarantined_and_the_pass_goes_on(
        tmp_path, imap_account, capsys):
    """Dovecot ends the session on every FETCH of a message file it cannot read: the pass
    reconnects, fetches that chunk one mail at a time, and quarantines the mail whose FETCH
    alone lost the connection twice; the rest become tickets."""
    alerts(imap_account, 5)
    (damaged,) = [path for path in _message_files(imap_account)
                  if b"Subject: Alert 2\n" in path.read_bytes().replace(b"\r\n", b"\n")]
    damaged.chmod(0)
    config = write_settings(tmp_path, imap_account, retry=FAST_RETRY)
    try:
        assert poller(config, "once") == 0
    finally:
        for path in _message_files(imap_account):
            path.chmod(0o600)
    assert "reconnecting in" in capsys.readouterr().err
    assert count_tickets(tmp_path / "tickets.db") == 4
    (row,) = quarantined(config, capsys)
    assert row["uid"] == 3 and row["reason"].startswith(
        "the server refused to return it: the connection was lost each of the 2 times")
    ((_, _, raw),) = imap_account.messages("Quarantine")
    assert b"Subject: Alert 2" in raw


def test_a_step_to_a_folder_the_server_refuses_is_planned_again_once_it_is_fixed(
        tmp_path, imap_account, capsys):
    alerts(imap_account, 3)
    refused = b'"ATES/Processed"'
    with TcpProxy(imap_account.port, deny=lambda line: refused in line) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                mailbox={"on_success": "move",
                                         "processed_folder": "ATES/Processed"})
        assert poller(config, "once") == 1
        assert poller(config, "once") == 0
        code, report = status(config, capsys)
        assert (code, report["failing_mailbox_steps"]) == (1, 3)
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                mailbox={"on_success": "move", "processed_folder": "Done"})
        assert poller(config, "once") == 0
    assert "3 mailbox steps planned again from the current settings" in capsys.readouterr().err
    assert len(imap_account.messages("Done")) == 3 and imap_account.messages("INBOX") == []
    code, report = status(config, capsys)
    assert (code, report["pending_mailbox_steps"]) == (0, 0)


def _message_files(account) -> list[Path]:
    maildir = Path(account.server.mail_dir) / account.username / "Maildir"
    return [Path(root) / name for root, _, names in os.walk(maildir)
            for name in names if Path(root).name in ("new", "cur")]
