"""Tests of the private Dovecot server that the integration tests run against."""

from __future__ import annotations

import re
import ssl

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from testkit import dovecot as dovecot_module
from testkit.dovecot import Dovecot, ImapAccount

ALERT = (
    b"From: monitor@example.test\r\n"
    b"To: alerts@example.test\r\n"
    b"Subject: =?utf-8?q?Temp=C3=A9rature_haute?=\r\n"
    b"Message-ID: <alert-1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Temp\xc3\xa9rature: 81 \xc2\xb0C\r\n"
    b"  trailing spaces kept   \r\n"
    b"\r\n"
)


def test_login_over_plain_imap(imap_account: ImapAccount) -> None:
    client = IMAPClient(imap_account.host, port=imap_account.port, ssl=False, timeout=10)
    try:
        assert b"STARTTLS" in client.capabilities()
        client.login(imap_account.username, imap_account.password)
        assert not isinstance(client.socket(), ssl.SSLSocket)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_starttls_verifies_against_cafile(imap_account: ImapAccount) -> None:
    context = ssl.create_default_context(cafile=str(imap_account.cafile))
    client = IMAPClient(imap_account.host, port=imap_account.port, ssl=False, timeout=10)
    try:
        client.starttls(context)
        client.login(imap_account.username, imap_account.password)
        assert isinstance(client.socket(), ssl.SSLSocket)
        assert client.socket().getpeercert()["subjectAltName"] == (
            ("IP Address", "127.0.0.1"),
            ("DNS", "localhost"),
        )
    finally:
        client.logout()


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_imaps_verifies_against_cafile(imap_account: ImapAccount, hostname: str) -> None:
    context = ssl.create_default_context(cafile=str(imap_account.cafile))
    # The handshake fails (SSLCertVerificationError) unless the test CA signed a certificate
    # for this name: connecting and logging in is the assertion.
    client = IMAPClient(hostname, port=imap_account.ssl_port, ssl=True, ssl_context=context)
    try:
        client.login(imap_account.username, imap_account.password)
    finally:
        client.logout()


def test_imaps_is_rejected_without_the_test_ca(imap_account: ImapAccount) -> None:
    context = ssl.create_default_context()  # system CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(imap_account.host, port=imap_account.ssl_port, ssl=True, ssl_context=context)


def test_client_helper_connects_both_ways(imap_account: ImapAccount) -> None:
    for use_ssl in (False, True):
        client = imap_account.client(ssl=use_ssl)
        try:
            assert isinstance(client.socket(), ssl.SSLSocket) is use_ssl
            client.noop()
        finally:
            client.logout()


def test_wrong_password_is_refused(imap_account: ImapAccount) -> None:
    with pytest.raises(LoginError):
        imap_account.server.client(imap_account.username, imap_account.password + "x")


def test_append_and_messages_round_trip_exact_bytes(imap_account: ImapAccount) -> None:
    second = ALERT.replace(b"alert-1", b"alert-2")
    imap_account.append("INBOX", ALERT)
    imap_account.append("INBOX", second, flags=[b"\\Seen", b"\\Flagged"])

    assert imap_account.messages("INBOX") == [
        (1, (), ALERT),
        (2, (b"\\Flagged", b"\\Seen"), second),  # flags come sorted
    ]
    # BODY.PEEK[] must not have marked the first message \Seen.
    assert imap_account.messages("INBOX")[0][1] == ()


def test_append_creates_missing_folders(imap_account: ImapAccount) -> None:
    assert imap_account.messages("Alerts/Processed") == []
    imap_account.append("Alerts/Processed", ALERT)
    imap_account.append("Failed.2024", ALERT)

    assert set(imap_account.folders()) == {"INBOX", "Alerts", "Alerts/Processed", "Failed.2024"}
    assert imap_account.messages("Alerts/Processed") == [(1, (), ALERT)]
    assert imap_account.messages("Alerts") == []


def test_users_are_isolated(dovecot: Dovecot) -> None:
    alice = dovecot.account()
    bob = dovecot.account()
    assert alice.username != bob.username

    alice.append("INBOX", ALERT)
    alice.append("Private", ALERT)

    assert bob.messages("INBOX") == []
    assert bob.folders() == ["INBOX"]
    with pytest.raises(LoginError):
        dovecot.client(bob.username, alice.password)


def test_add_user_with_chosen_name_and_bad_names(dovecot: Dovecot) -> None:
    name, password = dovecot.add_user("alerts-mailbox", "s3cret pass")
    assert (name, password) == ("alerts-mailbox", "s3cret pass")
    dovecot.client(name, password).logout()

    with pytest.raises(ValueError, match="already exists"):
        dovecot.add_user("alerts-mailbox")
    for bad in ("a:b", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="invalid user name"):
            dovecot.add_user(bad)


def test_capabilities_include_move_uidplus_idle(imap_account: ImapAccount) -> None:
    client = imap_account.client()
    try:
        capabilities = set(client.capabilities())
    finally:
        client.logout()
    assert {b"MOVE", b"UIDPLUS", b"IDLE"} <= capabilities


def test_uidplus_append_and_move(imap_account: ImapAccount) -> None:
    client = imap_account.client()
    try:
        response = client.append("INBOX", ALERT)
        assert re.match(rb"\[APPENDUID \d+ 1\] ", response)
        client.create_folder("Processed")
        client.select_folder("INBOX")
        client.move([1], "Processed")
    finally:
        client.logout()

    assert imap_account.messages("INBOX") == []
    assert imap_account.messages("Processed") == [(1, (), ALERT)]


def test_idle_reports_new_mail(imap_account: ImapAccount) -> None:
    client = imap_account.client()
    try:
        client.select_folder("INBOX")
        client.idle()
        imap_account.append("INBOX", ALERT)
        responses = client.idle_check(timeout=5)
        client.idle_done()
    finally:
        client.logout()
    assert (1, b"EXISTS") in responses


def test_restart_keeps_ports_users_and_mail(dovecot: Dovecot) -> None:
    account = dovecot.account()
    account.append("INBOX", ALERT, flags=[b"\\Flagged"])
    ports = (dovecot.port, dovecot.ssl_port)

    dovecot.restart()

    assert dovecot.running
    assert (dovecot.port, dovecot.ssl_port) == ports
    assert account.messages("INBOX") == [(1, (b"\\Flagged",), ALERT)]
    client = account.client(ssl=True)  # same CA after the restart
    client.logout()


def test_missing_dovecot_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(dovecot_module.os, "access", lambda path, mode: False)
    with pytest.raises(RuntimeError, match="install Debian's dovecot-imapd"):
        Dovecot()
