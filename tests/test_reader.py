"""A backlog is read in a helper process: same results, nothing lost if it dies, no orphan."""

from __future__ import annotations

import os
import time
from pathlib import Path

from testkit.support import alert_mail, poller, poller_json, run_subprocess, token, write_settings

SEEN = b"\\Seen"


def backlog(account) -> None:
    """Eleven mails: new alerts, repeats, a clear, a broken token, no token, a mail twice."""
    twice = alert_mail(message_id="<twice@client.example>", tok=token(AlertID="Kaseya:T"))
    raws = [alert_mail(body=f"n{n}", tok=token(AlertID=f"Kaseya:{n % 3}")) for n in range(6)]
    raws += [
        alert_mail(subject="RESOLVED: disk", tok=token(AlertID="Kaseya:0")),
        alert_mail(tok='<Autotask><PW name="x"/><!DOCTYPE a></Autotask>'),
        b"Subject: lunch?\r\nMessage-ID: <l@x>\r\n\r\nPizza at noon.\r\n",
        twice,
        b"Received: from relay2 by mx; Thu, 26 Nov 2026 10:00:05 +0000\r\n" + twice,
    ]
    for raw in raws:
        account.append("INBOX", raw)


def outcomes(config, capsys) -> list[str]:
    return [m["outcome"] for m in poller_json(config, capsys, "messages")]


EXPECTED = ["created", "created", "created", "appended", "appended", "appended", "completed",
            "quarantined", "skipped", "created", "duplicate"]


def test_backlog_read_by_the_helper_is_handled_like_one_chunk(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "2"})
    backlog(imap_account)
    assert poller(config, "once") == 0
    assert outcomes(config, capsys) == EXPECTED
    tickets = poller_json(config, capsys, "tickets")
    assert sorted(t["occurrences"] for t in tickets) == [1, 2, 2, 2]
    assert [t["status"] for t in tickets].count("Complete") == 1
    inbox = imap_account.messages("INBOX")
    assert len(inbox) == 10 and len(imap_account.messages("Quarantine")) == 1
    assert sum(SEEN in flags for _, flags, _ in inbox) == 9  # all but the mail without token


HELPER_DIES = """
import os
import poller.service.reader as reader
main_pid = os.getpid()
original = reader.read
def read(uid, raw, now):
    if os.getpid() != main_pid and uid >= 5:
        os._exit(1)
    return original(uid, raw, now)
reader.read = read
"""


def test_a_helper_that_dies_costs_no_mail(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "2"})
    backlog(imap_account)
    run = run_subprocess(config, "once", prelude=HELPER_DIES)
    assert run.returncode == 0, run.stderr
    assert "reading helper failed" in run.stderr
    assert outcomes(config, capsys) == EXPECTED


HELPER_PID_THEN_KILL = """
import os, signal
import poller.service.reader as reader
import poller.store.store as store
started = reader._helper_started
def helper_started():
    open({pidfile!r}, "w").write(str(os.getpid()))
    started()
reader._helper_started = helper_started
def crash(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
store.Store.mark_done = crash
"""


def test_the_helper_does_not_outlive_a_killed_worker(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "2"})
    backlog(imap_account)
    pidfile = tmp_path / "helper.pid"
    crashed = run_subprocess(config, "once", prelude=HELPER_PID_THEN_KILL.format(
        pidfile=str(pidfile)))
    assert crashed.returncode == -9, crashed.stderr
    helper = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(helper)
    assert poller(config, "once") == 0
    assert outcomes(config, capsys) == EXPECTED


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie has ended: it only waits for its parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z" and os.path.exists(f"/proc/{pid}")
