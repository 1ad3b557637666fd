"""`poller serve` against the private Dovecot: IDLE, signals, reload, a server that goes away."""

from __future__ import annotations

import signal
import time

import pytest

from testkit.proxy import TcpProxy
from testkit.serving import SLOW, Child, append_many, count_tickets, query, wait_until
from testkit.support import alert_mail, token, write_settings

SEEN = b"\\Seen"
KEYWORD = b"$AtesProcessed"
FAST_RETRY = {"initial_wait": "0.1", "max_wait": "0.5", "attempts": "5"}


def alerts(count: int, start: int = 0) -> list[bytes]:
    return [alert_mail(subject=f"Alert {n}", body=f"alert {n}",
                       tok=token(AlertID=f"Kaseya:{n}")) for n in range(start, start + count)]


def assert_each_alert_once(db, count: int) -> None:
    rows = query(db, "SELECT t.occurrences, v.value FROM ticket t JOIN udf_value v "
                     "ON v.entity_id = t.id JOIN udf_definition d ON d.id = v.udf_id "
                     "WHERE d.entity = 'ticket'")
    assert sorted(int(value) for _, value in rows) == list(range(count))
    assert {occurrences for occurrences, _ in rows} == {1}


def test_idle_makes_a_ticket_within_seconds_without_waiting_for_the_interval(
        tmp_path, server_account):
    imap_account = server_account
    config = write_settings(tmp_path, imap_account,
                            schedule={"interval": "3600", "idle": "true"})
    db = tmp_path / "tickets.db"
    with Child(config, "serve") as serve:
        serve.wait_for("waiting for new mail in 'INBOX' with IMAP IDLE")
        serve.wait_for("pass done")
        for n in range(3):
            imap_account.append("INBOX", alert_mail(tok=token(AlertID=f"Kaseya:{n}")))
            # The interval is an hour: only IDLE can start this pass.
            wait_until(lambda n=n: count_tickets(db) == n + 1, 15, lambda: serve.log)
        assert serve.stop() == 0
    assert_each_alert_once(db, 3)
    assert all(SEEN in flags and KEYWORD in flags
               for _, flags, _ in imap_account.messages("INBOX"))


def test_idle_is_renewed_and_comes_back_after_its_connection_is_cut(tmp_path, imap_account):
    with TcpProxy(imap_account.port, refuse=b"IDLE") as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                schedule={"interval": "3600", "idle": "true", "idle_renew": "1"},
                                retry=FAST_RETRY)
        db = tmp_path / "tickets.db"
        with Child(config, "serve", verbose=True) as serve:
            serve.wait_for("IDLE interrupted")  # the proxy cut the first IDLE
            serve.wait_for("waiting for new mail in 'INBOX' with IMAP IDLE", times=2)
            serve.wait_for("IDLE renewed", times=2)
            imap_account.append("INBOX", alert_mail())
            wait_until(lambda: count_tickets(db) == 1, 15, lambda: serve.log)
            assert serve.stop() == 0
        assert proxy.faults == 1


# SIGTERM comes while the 7th mail (UID 7, in the middle of the 2nd chunk) is in hand; that
# mail goes on once the stop request is seen.
TERM_WITH_THE_7TH_MAIL_IN_HAND = """
import os, signal, time
import poller.service.handling as _h
_original = _h.NewMail._handle_one
_calls = []
def _handle(self, *args, **kwargs):
    _calls.append(1)
    if len(_calls) == 7:
        os.kill(os.getpid(), signal.SIGTERM)
        while not self.stop.is_set():
            time.sleep(0.01)
    return _original(self, *args, **kwargs)
_h.NewMail._handle_one = _handle
"""


@pytest.mark.parametrize("command", ["serve", "once"])
def test_sigterm_in_the_middle_of_a_pass_finishes_the_mail_in_hand_and_exits_0(
        tmp_path, imap_account, dovecot, command):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "5"},
                            schedule={"interval": "3600"})
    db = tmp_path / "tickets.db"
    append_many(imap_account, alerts(20))
    with Child(config, command, prelude=TERM_WITH_THE_7TH_MAIL_IN_HAND) as child:
        assert child.wait() == 0
    assert "received SIGTERM: finishing the mail in hand" in child.log
    assert "stopped before the end" in child.log
    rows = query(db, "SELECT uid, mailbox_done FROM processed_message")
    decided = {uid for uid, _ in rows}
    assert sorted(decided) == list(range(1, 8)) and all(done for _, done in rows)
    for uid, flags, _ in imap_account.messages("INBOX"):
        assert (SEEN in flags and KEYWORD in flags) == (uid in decided)
    user = imap_account.username

    def ended() -> list[str]:
        return [line for line in dovecot.log_path.read_text().splitlines()
                if f"imap({user})" in line and "Disconnected" in line]

    wait_until(lambda: len(ended()) == dovecot.log_path.read_text().count(f"user=<{user}>"))
    assert ended() and all("Logged out" in line for line in ended())
    # The rest is left for the next pass, which makes each ticket once.
    with Child(config, "once") as once:
        assert once.wait() == 0
    assert_each_alert_once(db, 20)


def test_sigterm_while_the_server_hangs_cuts_the_connection_after_stop_grace(
        tmp_path, imap_account):
    append_many(imap_account, alerts(3))
    with TcpProxy(imap_account.port, stall=b"BODY.PEEK[]") as proxy:
        config = write_settings(tmp_path, imap_account,
                                imap={"port": str(proxy.port), "timeout": "120"},
                                schedule={"interval": "3600", "stop_grace": "1"})
        with Child(config, "serve") as serve:
            wait_until(lambda: proxy.faults == 1, 15, lambda: serve.log)
            assert serve.stop() == 0
        assert "did not end within 1s of the stop request; cutting the IMAP connection" in \
            serve.log
        assert "exiting anyway" not in serve.log  # the cut ended the pass, not the last resort
    assert count_tickets(tmp_path / "tickets.db") == 0
    assert query(tmp_path / "tickets.db", "SELECT count(*) FROM processed_message") == [(0,)]


NO_CUT = "import poller.imap.mailbox as m\nm.Mailbox.abort = lambda self: None\n"


def test_a_pass_that_even_the_cut_does_not_end_is_left_and_serve_exits(tmp_path, imap_account):
    append_many(imap_account, alerts(3))
    with TcpProxy(imap_account.port, stall=b"BODY.PEEK[]") as proxy:
        config = write_settings(tmp_path, imap_account,
                                imap={"port": str(proxy.port), "timeout": "300"},
                                schedule={"interval": "3600", "stop_grace": "1"})
        with Child(config, "serve", prelude=NO_CUT) as serve:
            wait_until(lambda: proxy.faults == 1, 15, lambda: serve.log)
            # Without the last resort the process would wait for the 300 s socket timeout.
            assert serve.stop() == 0
        assert "did not end within 6s of the stop request; exiting anyway" in serve.log
    assert query(tmp_path / "tickets.db", "SELECT count(*) FROM processed_message") == [(0,)]


def test_dovecot_stopped_and_restarted_while_serving_loses_and_doubles_nothing(
        tmp_path, imap_account, dovecot):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "5"},
                            schedule={"interval": "1", "idle": "true"}, retry=FAST_RETRY)
    db = tmp_path / "tickets.db"
    append_many(imap_account, alerts(30))
    with Child(config, "serve", prelude=SLOW.format(delay=0.2)) as serve:
        serve.wait_for("outcome=created", times=5)
        try:
            dovecot.stop()  # in the middle of the pass, and of IDLE
            serve.wait_for("IMAP unavailable")
            time.sleep(2)
        finally:
            dovecot.start()
        wait_until(lambda: count_tickets(db) == 30, 60, lambda: serve.log)
        serve.wait_for("waiting for new mail in 'INBOX' with IMAP IDLE", times=2)
        append_many(imap_account, alerts(5, start=30))
        wait_until(lambda: count_tickets(db) == 35, 30, lambda: serve.log)
        assert serve.process.poll() is None
        assert serve.stop() == 0
        assert "Traceback" not in serve.log
        assert imap_account.password not in serve.log
    assert_each_alert_once(db, 35)
    assert query(db, "SELECT count(*), sum(mailbox_done) FROM processed_message") == [(35, 35)]
    assert all(SEEN in flags for _, flags, _ in imap_account.messages("INBOX"))


def test_sighup_reloads_the_settings_and_a_bad_file_keeps_the_old_ones(tmp_path, imap_account):
    config = write_settings(tmp_path, imap_account, schedule={"interval": "3600"})
    db = tmp_path / "tickets.db"
    with Child(config, "serve") as serve:
        serve.wait_for("pass done")
        write_settings(tmp_path, imap_account, schedule={"interval": "3600"},
                       mailbox={"on_success": "move", "processed_folder": "Done"})
        imap_account.append("INBOX", alert_mail())
        serve.signal(signal.SIGHUP)
        serve.wait_for("settings reloaded")
        wait_until(lambda: count_tickets(db) == 1, 15, lambda: serve.log)
        wait_until(lambda: len(imap_account.messages("Done")) == 1, 15, lambda: serve.log)
        config.write_text("[imap]\nhost = 127.0.0.1\n")
        serve.signal(signal.SIGHUP)
        serve.wait_for("settings not reloaded, keeping the old ones")
        assert "[imap] username: is required" in serve.log
        assert serve.process.poll() is None
        assert serve.stop() == 0


def test_wrong_password_is_reported_once_per_interval_without_retries(tmp_path, imap_account):
    config = write_settings(tmp_path, imap_account, imap={"password": "Wr0ngPassw0rd"},
                            schedule={"interval": "1", "idle": "true"}, retry=FAST_RETRY)
    with Child(config, "serve") as serve:
        serve.wait_for("refused the login; check [imap] username and password; trying again in 1 s",
                       times=3)
        assert serve.process.poll() is None
        assert serve.stop() == 0
    log = serve.log
    assert "reconnecting" not in log  # a refused login is not retried
    assert log.count("IDLE paused") == 1  # the IDLE side says it once, not every attempt
    assert "check [imap] username and password" in log
    assert "Wr0ngPassw0rd" not in log and imap_account.password not in log
    failed = query(tmp_path / "tickets.db", "SELECT count(*) FROM pass_log WHERE ok = 0")
    assert failed[0][0] >= 3


CRASH_FIRST_PASS = """
import poller.service.worker as _w
_original = _w.Worker.run_pass
_calls = []
def _crash(self, *args, **kwargs):
    _calls.append(1)
    if len(_calls) == 1:
        raise RuntimeError("injected failure")
    return _original(self, *args, **kwargs)
_w.Worker.run_pass = _crash
"""


def test_an_unexpected_error_in_a_pass_is_logged_and_serving_goes_on(tmp_path, imap_account):
    config = write_settings(tmp_path, imap_account, schedule={"interval": "1"})
    imap_account.append("INBOX", alert_mail())
    with Child(config, "serve", prelude=CRASH_FIRST_PASS) as serve:
        serve.wait_for("a pass failed unexpectedly")
        wait_until(lambda: count_tickets(tmp_path / "tickets.db") == 1, 15, lambda: serve.log)
        assert serve.stop() == 0
    assert "RuntimeError: injected failure" in serve.log
    assert "Traceback" in serve.log  # the listener logs the whole story once
    assert serve.log.count("injected failure") == 2  # the line and the traceback's last line
