"""`poller once` end to end against the private servers, Dovecot and Cyrus IMAP: what the
mailbox sees of a pass (flags, moves, folders, TLS) and exactly-once across kill -9. The
decision paths are tested over a fake mailbox in test_worker.py; oversized mail on the wire in
test_hostile_mail.py, refused logins in test_faults.py."""

from __future__ import annotations

import pytest

from poller.config import load_settings
from poller.imap.mailbox import Mailbox
from testkit.proxy import TcpProxy
from testkit.support import (
    alert_mail,
    poller,
    poller_json,
    run_subprocess,
    token,
    write_settings,
)

SEEN = b"\\Seen"
KEYWORD = b"$AtesProcessed"


@pytest.fixture
def setup(tmp_path, server_account):
    """Return (account, settings path) with the directory imported, on each server."""
    config = write_settings(tmp_path, server_account)
    (tmp_path / "organizations.csv").write_text("name,Kaseya Customer ID\nClient One,100\nClient Two,200\n")
    (tmp_path / "devices.csv").write_text(
        "name,organization,Kaseya Device ID\nSRV1,Client One,123\n")
    (tmp_path / "contacts.csv").write_text(
        "organization,first_name,last_name,email,email2,email3\n"
        "Client Two,Jane,Doe,jane@two.example,,\n")
    for kind in ("organizations", "devices", "contacts"):
        assert poller(config, "import", kind, str(tmp_path / f"{kind}.csv")) == 0
    return server_account, config


def tickets(config, capsys):
    return poller_json(config, capsys, "tickets")


def messages(config, capsys):
    """The processed-mail log, oldest first."""
    return poller_json(config, capsys, "messages")[::-1]


def test_new_alert_becomes_a_ticket_and_the_mail_is_flagged(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                                                 AlertID="Kaseya:8932")))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert ticket["title"] == "Disk full on SRV1"
    assert ticket["description"] == "Disk C: is 99% full."
    assert (ticket["organization"], ticket["device"], ticket["status"]) == ("Client One", "SRV1",
                                                                            "New")
    assert ticket["udfs"] == {"Kaseya Alert ID": "8932"}
    assert ticket["number"].startswith("T") and len(ticket["number"]) == len("T20261127.0001")
    ((_, flags, _),) = account.messages("INBOX")
    assert SEEN in flags and KEYWORD in flags
    (row,) = messages(config, capsys)
    assert (row["outcome"], row["ticket"]) == ("created", ticket["number"])


def test_mail_without_token_is_left_untouched_and_not_parsed_again(setup, capsys):
    account, config = setup
    account.append("INBOX", b"Subject: lunch?\r\nMessage-ID: <l@x>\r\n\r\nPizza at noon.\r\n")
    assert poller(config, "once") == 0
    assert poller(config, "once") == 0
    ((_, flags, _),) = account.messages("INBOX")
    assert SEEN not in flags and KEYWORD not in flags
    (row,) = messages(config, capsys)  # deciding it again fails the pass on the log's unique key
    assert row["outcome"] == "skipped"


def test_move_mode_moves_processed_mail(tmp_path, setup, capsys):
    account, config = setup
    write_settings(tmp_path, account, mailbox={"on_success": "move",
                                               "processed_folder": "Done/Alerts"})
    account.append("INBOX", alert_mail())
    assert poller(config, "once") == 0
    assert account.messages("INBOX") == []
    assert len(account.messages("Done/Alerts")) == 1


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_connections_work_and_keep_the_login_off_the_wire(tmp_path, server_account, capsys,
                                                              security):
    """A certificate not signed by [imap] cafile is refused: test_faults.py."""
    port = server_account.ssl_port if security == "ssl" else server_account.port
    server_account.append("INBOX", alert_mail())
    with TcpProxy(port) as proxy:
        config = write_settings(tmp_path, server_account,
                                imap={"security": security, "port": str(proxy.port)})
        assert poller(config, "once") == 0
        sent = b"".join(proxy.sent)
    assert len(tickets(config, capsys)) == 1
    assert (b"STARTTLS" in sent) is (security == "starttls")
    assert b"LOGIN" not in sent.upper() and server_account.password.encode() not in sent


CRASH = """
import os, signal
import {module} as target
original = target.{cls}.{method}
calls = []
def crash(*args, **kwargs):
    calls.append(1)
    if len(calls) == {when}:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
target.{cls}.{method} = crash
"""


@pytest.mark.parametrize(
    ("module", "cls", "method", "when"),
    [
        ("poller.imap.mailbox", "Mailbox", "flag", 1),       # after commit, before the flag
        ("poller.store.store", "Store", "mark_done", 1),      # after the flag, before it is recorded
        ("poller.store.record", "MessageKey", "__init__", 3),  # in the middle of a chunk
    ],
)
def test_kill_at_any_point_then_rerun_gives_exactly_one_effect(
        tmp_path, setup, capsys, module, cls, method, when):
    account, config = setup
    write_settings(tmp_path, account, imap={"fetch_chunk": "2"})
    for n in range(4):
        account.append("INBOX", alert_mail(body=f"n{n}", tok=token(AlertID=f"Kaseya:{n % 2}")))
    prelude = CRASH.format(module=module, cls=cls, method=method, when=when)
    crashed = run_subprocess(config, "once", prelude=prelude)
    assert crashed.returncode == -9, crashed.stderr
    assert poller(config, "once") == 0
    found = tickets(config, capsys)
    assert sorted(t["occurrences"] for t in found) == [2, 2]
    notes = [n for t in found for n in t["notes"] if n["kind"] == "duplicate"]
    assert len(notes) == 2
    assert all(SEEN in flags and KEYWORD in flags for _, flags, _ in account.messages("INBOX"))
    assert len(messages(config, capsys)) == 4


def test_a_pass_creates_the_folders_first_with_the_servers_names(tmp_path, setup):
    account, config = setup
    write_settings(tmp_path, account, mailbox={"on_success": "move",
                                               "processed_folder": "ATES/Processed"})
    assert poller(config, "once") == 0  # no mail at all
    server = account.server
    assert {server.server_name("Quarantine"), server.server_name("ATES/Processed")} <= set(
        account.folders())


def test_check_prints_the_mapped_names_and_checks_every_folder(tmp_path, cyrus, capsys):
    account = cyrus.account()
    config = write_settings(tmp_path, account, mailbox={
        "quarantine_folder": "user/someone-else/Quarantine", "on_success": "move",
        "processed_folder": "ATES/Processed", "on_no_token": "move"})
    assert poller(config, "check") == 6
    out = capsys.readouterr().out
    assert "'ATES/Processed' → 'INBOX.ATES.Processed' exists" in out
    assert "'No token' → 'INBOX.No token' exists" in out
    assert "FAILED" in out and "'user/someone-else/Quarantine'" in out
    assert {"INBOX.ATES.Processed", "INBOX.No token"} <= set(account.folders())


def test_a_target_that_is_the_watched_folder_on_the_server_is_refused_not_looped(
        tmp_path, cyrus, capsys):
    """On Cyrus 'Alerts' and 'INBOX/Alerts' are one folder (INBOX.Alerts): moving mail there
    would make it new again every pass. The move is refused, and status shows it."""
    account = cyrus.account()
    account.append("INBOX.Alerts", alert_mail())
    config = write_settings(tmp_path, account, imap={"folder": "Alerts"},
                            mailbox={"on_success": "move", "processed_folder": "INBOX/Alerts"})
    assert poller(config, "once") == 1  # refused the first time
    assert poller(config, "once") == 0  # known since: no longer fails the pass
    assert [m["outcome"] for m in poller_json(config, capsys, "messages")] == ["created"]
    assert len(account.messages("INBOX.Alerts")) == 1 and len(tickets(config, capsys)) == 1
    capsys.readouterr()
    assert poller(config, "status", "--no-mailbox") == 1
    assert "that is the watched folder itself" in capsys.readouterr().out


def test_the_server_names_the_mail_larger_than_a_size(tmp_path, server_account):
    """What a pass fetches the size of (poller.service.fetching): the mail the server finds
    LARGER, of the UIDs asked about."""
    for body in ("small", "x" * 20_000, "small too"):
        server_account.append("INBOX", alert_mail(body=body))
    settings = load_settings(write_settings(tmp_path, server_account))
    with Mailbox(settings.imap) as mailbox:
        mailbox.select("INBOX")
        uids = mailbox.search("ALL")
        assert len(uids) == 3
        assert mailbox.larger(uids, 10_000) == {uids[1]}
        assert mailbox.larger([uids[0], uids[2]], 10_000) == set()
        assert mailbox.larger(uids, 100) == set(uids)
