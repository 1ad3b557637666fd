"""Tests of the private Cyrus IMAP server that the core scenarios also run against."""

from __future__ import annotations

import pytest
from imapclient.exceptions import IMAPClientError, LoginError

from testkit import cyrus as cyrus_module
from testkit.cyrus import Cyrus

ALERT = b"From: monitor@example.test\r\nSubject: CPU high\r\nMessage-ID: <c1@example.test>\r\n\r\nx\r\n"


def test_debians_stock_namespace_refuses_top_level_folders(cyrus: Cyrus) -> None:
    account = cyrus.account()
    client = account.client()
    try:
        assert client.namespace().personal == (("INBOX.", "."),)
        with pytest.raises(IMAPClientError, match="Permission denied"):
            client.create_folder("Processed")
        client.create_folder("INBOX.Processed")
        assert {b"MOVE", b"UIDPLUS", b"IDLE", b"NAMESPACE"} <= set(client.capabilities())
    finally:
        client.logout()


def test_users_log_in_with_their_own_password_only(cyrus: Cyrus) -> None:
    alice, bob = cyrus.account(), cyrus.account()
    alice.append("INBOX", ALERT)
    assert bob.messages("INBOX") == []
    with pytest.raises(LoginError):
        cyrus.client(bob.username, alice.password)


def test_restart_keeps_ports_users_and_mail(cyrus: Cyrus) -> None:
    account = cyrus.account()
    account.append("ATES/Processed", ALERT, flags=[b"\\Flagged"])
    ports = (cyrus.port, cyrus.ssl_port)
    cyrus.restart()
    assert (cyrus.port, cyrus.ssl_port) == ports
    assert account.messages("ATES/Processed") == [(1, (b"\\Flagged",), ALERT)]
    account.client(ssl=True).logout()


def test_missing_cyrus_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(cyrus_module, "UNPACKED", tmp_path / "nothing-here")
    monkeypatch.setattr(cyrus_module, "SYSTEM", tmp_path / "nothing-either")
    with pytest.raises(RuntimeError, match="run scripts/prepare"):
        Cyrus()
