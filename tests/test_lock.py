"""One pass at a time per mailbox: overlapping cron runs, `once` next to `serve`, dead holders."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from poller.config import load_settings
from poller.service.lock import PassLock
from testkit.serving import SLOW, Child, append_many, count_tickets, query
from testkit.support import alert_mail, poller, token, write_settings

BUSY = "another pass is running on this mailbox"


def alerts(count: int) -> list[bytes]:
    return [alert_mail(subject=f"Alert {n}", tok=token(AlertID=f"Kaseya:{n}"))
            for n in range(count)]


def each_alert_once(db, count: int) -> bool:
    rows = query(db, "SELECT occurrences FROM ticket")
    return len(rows) == count and {r[0] for r in rows} == {1}


def test_two_overlapping_once_runs_process_each_mail_once(tmp_path, imap_account):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "2"},
                            schedule={"lock_wait": "0"})
    append_many(imap_account, alerts(10))
    slow = SLOW.format(delay=0.2)
    with Child(config, "once", prelude=slow) as first:
        first.wait_for("outcome=created")
        with Child(config, "once", prelude=slow) as second:
            assert second.wait() == 0
        assert first.wait() == 0
    assert BUSY in second.log and f"pid {first.process.pid}" in second.log
    assert BUSY not in first.log
    assert each_alert_once(tmp_path / "tickets.db", 10)


def test_the_second_once_waits_for_the_first_when_lock_wait_allows(tmp_path, imap_account):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "2"},
                            schedule={"lock_wait": "60"})
    append_many(imap_account, alerts(6))
    slow = SLOW.format(delay=0.2)
    with Child(config, "once", prelude=slow) as first:
        first.wait_for("outcome=created")
        with Child(config, "once", prelude=slow) as second:
            assert second.wait() == 0
        assert first.wait() == 0
    assert BUSY not in second.log and "pass done" in second.log
    assert each_alert_once(tmp_path / "tickets.db", 6)


def test_once_while_serve_is_in_a_pass_leaves_it_alone(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "2"},
                            schedule={"interval": "3600", "lock_wait": "0"})
    append_many(imap_account, alerts(10))
    with Child(config, "serve", prelude=SLOW.format(delay=0.2)) as serve:
        serve.wait_for("outcome=created")
        assert poller(config, "once") == 0
        assert f"{BUSY} (pid {serve.process.pid})" in capsys.readouterr().err
        serve.wait_for("pass done")
        assert serve.stop() == 0
    assert each_alert_once(tmp_path / "tickets.db", 10)


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "2"},
                            schedule={"lock_wait": "0"})
    append_many(imap_account, alerts(8))
    with Child(config, "once", prelude=SLOW.format(delay=0.2)) as killed:
        killed.wait_for("outcome=created")
        killed.signal(signal.SIGKILL)
        assert killed.wait() == -signal.SIGKILL
    lock_file = load_settings(config).schedule.lock_file
    assert Path(lock_file).exists()  # the file stays; the lock went with the pid
    assert poller(config, "once") == 0
    assert BUSY not in capsys.readouterr().err
    assert count_tickets(tmp_path / "tickets.db") == 8
    assert each_alert_once(tmp_path / "tickets.db", 8)


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    path = tmp_path / "sub" / "x.lock"
    first, second = PassLock(path), PassLock(path)
    assert first.acquire() is True
    assert second.acquire(wait=0.2) is False
    assert second.holder() == f"pid {os.getpid()}"
    first.release()
    assert second.acquire() is True
    second.release()
