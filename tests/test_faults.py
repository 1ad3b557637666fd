"""Faults against the private Dovecot, some through a proxy that breaks connections:
transient ones are retried and the pass carries on, permanent ones fail fast with one line."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading

import pytest

from poller.config import load_settings
from poller.errors import MailboxUnavailable
from poller.service.passes import open_store, run_pass
from testkit.proxy import TcpProxy
from testkit.serving import append_many, count_tickets, query
from testkit.support import alert_mail, poller, token, write_settings

SEEN = b"\\Seen"
FAST_RETRY = {"initial_wait": "0.05", "max_wait": "0.2", "attempts": "3"}


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory):
    """A CA certificate that did not sign the test server's certificate."""
    folder = tmp_path_factory.mktemp("other-ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", folder / "ca.key",
                    "-out", folder / "ca.crt", "-days", "30", "-subj", "/CN=someone else"],
                   check=True, capture_output=True)
    return folder / "ca.crt"


def alerts(count: int, body_bytes: int = 0) -> list[bytes]:
    filler = "x" * body_bytes
    return [alert_mail(subject=f"Alert {n}", body=f"alert {n}\n{filler}",
                       tok=token(AlertID=f"Kaseya:{n}")) for n in range(count)]


def test_connection_cut_in_the_middle_of_a_fetch_is_resumed_without_doubles(
        tmp_path, imap_account, capsys):
    append_many(imap_account, alerts(12, body_bytes=20_000))
    # Cut the 1st connection 40 KB into the first chunk (4 mails of ~20 KB), the 2nd later on.
    with TcpProxy(imap_account.port, cuts=[40_000, 150_000]) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port),
                                                               "fetch_chunk": "4"},
                                retry=FAST_RETRY)
        assert poller(config, "once") == 0
        assert proxy.faults == 2 and proxy.connections == 3
    err = capsys.readouterr().err
    assert err.count("reconnecting in") == 2
    assert imap_account.password not in err
    db = tmp_path / "tickets.db"
    assert count_tickets(db) == 12
    assert query(db, "SELECT count(*), sum(mailbox_done) FROM processed_message") == [(12, 12)]
    assert all(SEEN in flags for _, flags, _ in imap_account.messages("INBOX"))


def test_server_bye_in_the_middle_of_a_pass_is_retried(tmp_path, imap_account, capsys):
    append_many(imap_account, alerts(3))
    with TcpProxy(imap_account.port, bye=b"FETCH") as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                retry=FAST_RETRY)
        assert poller(config, "once") == 0
        assert proxy.faults == 1
    err = capsys.readouterr().err
    assert err.count("reconnecting in") == 1 and "Server shutting down" in err
    assert count_tickets(tmp_path / "tickets.db") == 3


@pytest.mark.parametrize("fault", ["swallow", "refuse"])
def test_connection_lost_in_the_middle_of_a_move_moves_each_mail_once(
        tmp_path, imap_account, capsys, fault):
    """swallow: the server moved the mail but the answer never came; refuse: it never moved."""
    append_many(imap_account, alerts(3))
    with TcpProxy(imap_account.port, **{fault: b"MOVE"}) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                mailbox={"on_success": "move", "processed_folder": "Done"},
                                retry=FAST_RETRY)
        assert poller(config, "once") == 0
        assert proxy.faults == 1
    assert capsys.readouterr().err.count("reconnecting in") == 1
    assert count_tickets(tmp_path / "tickets.db") == 3
    assert imap_account.messages("INBOX") == []
    assert len(imap_account.messages("Done")) == 3


# The capabilities of a server without MOVE and UIDPLUS (Dovecot's, with those two hidden)
WITHOUT_MOVE_AND_UIDPLUS = ((b" MOVE", b" XOVE"), (b" UIDPLUS", b" XIDPLUS"))


def test_without_move_and_uidplus_moved_mail_stays_flagged_deleted_and_nothing_is_deleted(
        tmp_path, imap_account, capsys):
    append_many(imap_account, alerts(3))
    with TcpProxy(imap_account.port, rewrite=WITHOUT_MOVE_AND_UIDPLUS) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                mailbox={"on_success": "move", "processed_folder": "Done"})
        assert poller(config, "once") == 0
        assert poller(config, "once") == 0  # the originals left behind are not new mail
        capsys.readouterr()
        assert poller(config, "status") == 0
        sent = b"".join(proxy.sent)
    assert b"MOVE" not in sent and b"EXPUNGE" not in sent and b"COPY" in sent
    assert count_tickets(tmp_path / "tickets.db") == 3
    assert len(imap_account.messages("Done")) == 3
    originals = imap_account.messages("INBOX")
    assert len(originals) == 3 and all(b"\\Deleted" in flags for _, flags, _ in originals)
    out = capsys.readouterr().out
    assert "mail waiting:     0" in out and "flagged deleted:  3" in out


def test_starttls_hidden_by_the_network_is_refused_and_the_password_never_sent(
        tmp_path, imap_account, capsys):
    with TcpProxy(imap_account.port, rewrite=((b"STARTTLS", b"STARTTLX"),)) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port),
                                                               "security": "starttls"})
        assert poller(config, "once") == 3
        sent = b"".join(proxy.sent)
    assert b"LOGIN" not in sent.upper() and imap_account.password.encode() not in sent
    assert "does not offer STARTTLS" in capsys.readouterr().err


def test_starttls_with_an_untrusted_certificate_fails_without_a_plaintext_login(
        tmp_path, imap_account, capsys, other_ca):
    with TcpProxy(imap_account.port) as proxy:
        config = write_settings(tmp_path, imap_account, imap={
            "port": str(proxy.port), "security": "starttls", "cafile": str(other_ca)})
        assert poller(config, "once") == 3
        sent = b"".join(proxy.sent)
    assert b"STARTTLS" in sent.upper() and b"LOGIN" not in sent.upper()
    assert imap_account.password.encode() not in sent
    err = capsys.readouterr().err
    assert "certificate is not trusted" in err and "reconnecting" not in err


def test_untrusted_certificate_fails_fast_with_what_to_fix(tmp_path, imap_account, capsys,
                                                           other_ca):
    config = write_settings(tmp_path, imap_account, imap={
        "port": str(imap_account.ssl_port), "security": "ssl", "cafile": str(other_ca)},
        retry={"initial_wait": "30"})  # a retry would make this test hang
    assert poller(config, "once") == 3
    err = capsys.readouterr().err
    assert "certificate is not trusted" in err and "[imap] cafile" in err
    assert "reconnecting" not in err and err.count("\n") == 1


def test_ssl_against_a_plain_port_says_which_setting_is_wrong(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"security": "ssl"},
                            retry={"initial_wait": "30"})
    assert poller(config, "once") == 3
    err = capsys.readouterr().err
    assert "does not speak TLS on this port" in err and "reconnecting" not in err


def test_wrong_password_fails_fast_without_retries(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"password": "Wr0ngPassw0rd"},
                            retry={"initial_wait": "30"})
    assert poller(config, "once") == 3
    err = capsys.readouterr().err
    assert "refused the login" in err and "reconnecting" not in err
    assert "Wr0ngPassw0rd" not in err


def test_folder_that_cannot_be_selected_fails_fast(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"folder": "No such folder"},
                            retry={"initial_wait": "30"})
    assert poller(config, "once") == 3
    err = capsys.readouterr().err
    assert "'No such folder'" in err and "check that the folder exists" in err
    assert "reconnecting" not in err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_retried_with_capped_exponential_back_off(
        tmp_path, imap_account, caplog):
    config = write_settings(tmp_path, imap_account, imap={"port": str(closed_port())},
                            retry={"attempts": "5", "initial_wait": "1", "max_wait": "3"})
    settings = load_settings(config)
    waits: list[float] = []
    store = open_store(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="poller"), \
                pytest.raises(MailboxUnavailable, match="Connection refused"):
            run_pass(settings, store, threading.Event(), sleep=waits.append)
    finally:
        store.close()
    assert waits == [1, 2, 3, 3]
    retries = [r for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(retries) == 4 and all(r.levelno == logging.WARNING for r in retries)
    assert imap_account.password not in caplog.text


def test_a_stop_request_ends_the_retries(tmp_path, imap_account):
    config = write_settings(tmp_path, imap_account, imap={"port": str(closed_port())},
                            retry={"attempts": "100", "initial_wait": "1"})
    settings = load_settings(config)
    stop = threading.Event()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            stop.set()

    store = open_store(settings)
    try:
        with pytest.raises(MailboxUnavailable):
            run_pass(settings, store, stop, sleep=sleep)
    finally:
        store.close()
    assert len(waits) == 2


def test_progress_resets_the_attempt_budget(tmp_path, imap_account, capsys):
    """A connection that drops every few mails still gets through a long backlog."""
    append_many(imap_account, alerts(10, body_bytes=20_000))
    # Every connection is cut after ~2 mails; attempts = 2 would not be enough without resets.
    with TcpProxy(imap_account.port, cuts=[60_000] * 8) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port),
                                                               "fetch_chunk": "1"},
                                retry={"attempts": "2", "initial_wait": "0.01"})
        assert poller(config, "once") == 0
        assert proxy.faults >= 3
    assert count_tickets(tmp_path / "tickets.db") == 10
