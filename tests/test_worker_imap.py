"""`poller once` end to end against the private Dovecot: every ATES rule and mailbox guarantee."""

from __future__ import annotations

import hashlib
import json

import pytest

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
def setup(tmp_path, imap_account):
    """Return (account, settings path) with the directory imported."""
    config = write_settings(tmp_path, imap_account)
    (tmp_path / "organizations.csv").write_text("name,Kaseya Customer ID\nClient One,100\nClient Two,200\n")
    (tmp_path / "devices.csv").write_text(
        "name,organization,Kaseya Device ID\nSRV1,Client One,123\n")
    (tmp_path / "contacts.csv").write_text(
        "organization,first_name,last_name,email,email2,email3\n"
        "Client Two,Jane,Doe,jane@two.example,,\n")
    for kind in ("organizations", "devices", "contacts"):
        assert poller(config, "import", kind, str(tmp_path / f"{kind}.csv")) == 0
    return imap_account, config


def tickets(config, capsys):
    return poller_json(config, capsys, "tickets")


def messages(config, capsys):
    return poller_json(config, capsys, "messages")


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


def test_wrong_pw_is_quarantined_with_its_reason(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok=token(pw="not-the-key", AlertID="Kaseya:1")))
    assert poller(config, "once") == 0
    assert tickets(config, capsys) == []
    assert account.messages("INBOX") == []
    assert len(account.messages("Quarantine")) == 1
    (row,) = messages(config, capsys)
    assert row["outcome"] == "quarantined" and "PW" in row["reason"]
    assert "not-the-key" not in json.dumps(row)


def test_unknown_customer_goes_to_local_organization_with_a_note(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:999", DeviceID="Kaseya:777")))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert ticket["organization"] == "Acme MSP" and ticket["device"] is None
    texts = " ".join(n["text"] for n in ticket["notes"])
    assert "Kaseya Customer ID '999'" in texts and "777" in texts


def test_email_maps_organization_and_contact(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok=token(Email="Jane@Two.example")))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert (ticket["organization"], ticket["contact"]) == ("Client Two", "jane@two.example")


def test_contact_element_creates_a_missing_contact(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok=token(Customer="Client One", Email="fred@one.example",
                                                 Contact="Fred Jones")))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert (ticket["organization"], ticket["contact"]) == ("Client One", "fred@one.example")


def test_repeated_alert_is_appended_as_a_note(setup, capsys):
    account, config = setup
    for n in range(3):
        account.append("INBOX", alert_mail(body=f"occurrence {n}",
                                           tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:5")))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert ticket["occurrences"] == 3
    assert [n["text"] for n in ticket["notes"] if n["kind"] == "duplicate"] == [
        "occurrence 1", "occurrence 2"]
    assert [m["outcome"] for m in messages(config, capsys)] == ["created", "appended", "appended"]


def test_same_alert_id_in_other_organization_or_source_is_a_new_ticket(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:5")))
    account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:5")))
    account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Nagios:5")))
    assert poller(config, "once") == 0
    assert len(tickets(config, capsys)) == 3


def test_action_new_creates_a_ticket_per_alert(tmp_path, setup, capsys):
    account, config = setup
    write_settings(tmp_path, account, duplicates={"action": "new"})
    for _ in range(2):
        account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:5")))
    assert poller(config, "once") == 0
    assert len(tickets(config, capsys)) == 2


def test_external_ticket_id_and_ticket_number(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100", TicketID="Kaseya:K-1")))
    assert poller(config, "once") == 0
    (first,) = tickets(config, capsys)
    account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100", TicketID="Kaseya:K-1")))
    account.append("INBOX", alert_mail(tok=token(TicketNumber=first["number"])))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert ticket["occurrences"] == 3
    assert ticket["udfs"] == {"Kaseya Ticket ID": "K-1"}


def test_clear_completes_then_same_alert_opens_a_new_ticket(setup, capsys):
    account, config = setup
    tok = token(CustomerID="Kaseya:100", AlertID="Kaseya:77")
    account.append("INBOX", alert_mail(subject="CPU high on SRV1", tok=tok))
    account.append("INBOX", alert_mail(subject="RESOLVED: CPU high on SRV1", body="back to 10%",
                                       tok=tok))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert ticket["status"] == "Complete" and ticket["completed"]
    assert ticket["notes"][-1]["kind"] == "resolution"
    assert ticket["notes"][-1]["text"] == "back to 10%"
    account.append("INBOX", alert_mail(subject="CPU high on SRV1", tok=tok))
    assert poller(config, "once") == 0
    assert [t["status"] for t in tickets(config, capsys)] == ["Complete", "New"]


def test_clear_with_nothing_open_is_recorded_and_creates_nothing(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(subject="Cleared: disk", tok=token(AlertID="Kaseya:404")))
    assert poller(config, "once") == 0
    assert tickets(config, capsys) == []
    (row,) = messages(config, capsys)
    assert row["outcome"] == "skipped" and "no open ticket" in row["reason"]
    ((_, flags, _),) = account.messages("INBOX")
    assert SEEN in flags  # handled: it will not be looked at again


def test_mail_without_token_is_left_untouched_and_not_parsed_again(setup, capsys):
    account, config = setup
    account.append("INBOX", b"Subject: lunch?\r\nMessage-ID: <l@x>\r\n\r\nPizza at noon.\r\n")
    assert poller(config, "once") == 0
    assert poller(config, "once") == 0
    ((_, flags, _),) = account.messages("INBOX")
    assert SEEN not in flags and KEYWORD not in flags
    (row,) = messages(config, capsys)  # one row: the second pass did not parse it again
    assert row["outcome"] == "skipped"


def test_mail_without_token_can_be_moved(tmp_path, setup, capsys):
    account, config = setup
    write_settings(tmp_path, account, mailbox={"on_no_token": "move", "no_token_folder": "Other"})
    account.append("INBOX", b"Subject: lunch?\r\n\r\nPizza at noon.\r\n")
    assert poller(config, "once") == 0
    assert account.messages("INBOX") == []
    assert len(account.messages("Other")) == 1


def test_move_mode_moves_processed_mail(tmp_path, setup, capsys):
    account, config = setup
    write_settings(tmp_path, account, mailbox={"on_success": "move",
                                               "processed_folder": "Done/Alerts"})
    account.append("INBOX", alert_mail())
    assert poller(config, "once") == 0
    assert account.messages("INBOX") == []
    assert len(account.messages("Done/Alerts")) == 1


def test_same_mail_delivered_twice_has_one_effect(setup, capsys):
    account, config = setup
    raw = alert_mail(message_id="<once@client.example>", tok=token(AlertID="Kaseya:3"))
    account.append("INBOX", raw)
    account.append("INBOX", b"Received: from relay2 by mx; Thu, 26 Nov 2026 10:00:05 +0000\r\n"
                   + raw)
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert ticket["occurrences"] == 1
    assert [n for n in ticket["notes"] if n["kind"] == "duplicate"] == []
    assert [m["outcome"] for m in messages(config, capsys)] == ["created", "duplicate"]


def test_attachments_are_stored_with_the_ticket(setup, capsys):
    account, config = setup
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    account.append("INBOX", alert_mail(attachments=(("report.pdf", pdf, "application/pdf"),)))
    assert poller(config, "once") == 0
    (ticket,) = tickets(config, capsys)
    assert ticket["attachments"] == [
        {"filename": "report.pdf", "size": len(pdf), "content_type": "application/pdf",
         "sha256": hashlib.sha256(pdf).hexdigest()}]


def test_oversized_mail_is_quarantined_without_a_ticket(tmp_path, setup, capsys):
    account, config = setup
    write_settings(tmp_path, account, limits={"max_message_bytes": "4096"})
    account.append("INBOX", alert_mail(body="x" * 10_000))
    account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:2")))
    assert poller(config, "once") == 0
    assert len(tickets(config, capsys)) == 1
    assert len(account.messages("Quarantine")) == 1
    reasons = [m["reason"] for m in messages(config, capsys) if m["outcome"] == "quarantined"]
    assert len(reasons) == 1 and "over the limit of 4096 bytes" in reasons[0]


def test_broken_token_is_quarantined_and_the_pass_goes_on(setup, capsys):
    account, config = setup
    account.append("INBOX", alert_mail(tok='<Autotask><PW name="x"/><!DOCTYPE a></Autotask>'))
    account.append("INBOX", b"\x00\xff garbage that is no mail at all")
    account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:9")))
    assert poller(config, "once") == 0
    assert len(tickets(config, capsys)) == 1
    quarantined = [m for m in messages(config, capsys) if m["outcome"] == "quarantined"]
    assert any("DTD" in m["reason"] for m in quarantined)


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_connections_verify_against_cafile(tmp_path, imap_account, capsys, security):
    port = imap_account.ssl_port if security == "ssl" else imap_account.port
    config = write_settings(tmp_path, imap_account, imap={"security": security, "port": str(port)})
    imap_account.append("INBOX", alert_mail())
    assert poller(config, "once") == 0
    assert len(tickets(config, capsys)) == 1


def test_wrong_imap_password_fails_with_exit_3_and_no_secret(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"password": "Wr0ngPassw0rd"})
    assert poller(config, "once") == 3
    err = capsys.readouterr().err
    assert "refused the login" in err and "Wr0ngPassw0rd" not in err


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
