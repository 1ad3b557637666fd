"""Mail is read in a helper process, each mail within a CPU budget: a mail that runs over it,
hangs or kills the helper costs only itself; memory held is bounded by bytes; no orphan."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from poller.ates.reading import Reading, read
from poller.errors import ReaderError
from poller.service.reader import Reader
from testkit import misreading
from testkit.support import alert_mail, poller, poller_json, run_subprocess, token, write_settings

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def mails(*subjects: str) -> dict[int, bytes]:
    """Alert mails; a subject starting with a word of testkit.misreading is marked with it."""
    out = {}
    for uid, subject in enumerate(subjects, start=1):
        raw = alert_mail(subject=subject, tok=token(AlertID=f"Kaseya:{uid}"))
        how = subject.split(":")[0].lower()
        out[uid] = misreading.misread(raw, how) if how in ("spin", "hang", "crash",
                                                             "locked", "bloat") else raw
    return out


def read_all(reader: Reader, raws: dict[int, bytes], plan: list[list[int]], seconds: int = 1,
             budget: int = 10**9):
    sizes = {uid: len(raw) for uid, raw in raws.items()}
    return list(reader.chunks(plan, sizes, lambda uids: {u: raws[u] for u in uids},
                              lambda: NOW, budget=budget, seconds=seconds))


@pytest.fixture(scope="module")
def misreader():
    with Reader(misreading.read) as reader:
        yield reader


def test_mail_is_read_in_the_helper_as_it_would_be_here(misreader):
    raws = mails("Disk full", "CPU high", "Cleared: disk")
    chunks = read_all(misreader, raws, [[1, 2], [3]])
    assert [uids for uids, _ in chunks] == [[1, 2], [3]]
    readings = {uid: r for _, found in chunks for uid, r in found.items()}
    assert readings == {uid: read(uid, raw, NOW) for uid, raw in raws.items()}


@pytest.mark.parametrize(("subject", "reason"), [
    ("SPIN: a pattern that backtracks for ages", "reading it took more than 1 s of CPU"),
    ("HANG: waits for ever", "reading it did not finish within"),
    ("CRASH: the helper is killed", "the reading helper ended while reading it (killed by "
                                    "signal 9, SIGKILL)"),
])
def test_a_mail_that_stops_the_helper_gets_the_reason_and_the_rest_is_read(misreader, subject,
                                                                           reason):
    raws = mails("Disk full", subject, "CPU high", "Disk full again")
    chunks = read_all(misreader, raws, [[1, 2], [3, 4]])
    readings = {uid: r for _, found in chunks for uid, r in found.items()}
    assert readings[2].alert is None and readings[2].problem.startswith(reason)
    assert not readings[2].no_token
    assert [readings[uid].alert.title for uid in (1, 3, 4)] == [
        "Disk full", "CPU high", "Disk full again"]


def test_a_mail_that_needs_more_memory_than_allowed_is_refused_and_the_rest_is_read(
        misreader):
    """26 MB of text with one 4-byte character decodes to 4 bytes a character, more than
    reading one mail may take (poller.service.reading_helper.READ_MEMORY): the helper is not killed."""
    big = alert_mail(subject="Huge", body=("x" * 70 + "\n") * 390_000 + "\N{GRINNING FACE}")
    raws = {1: mails("Disk full")[1], 2: big, 3: mails("x", "x", "CPU high")[3]}
    readings = {uid: r for _, found in read_all(misreader, raws, [[1], [2], [3]], seconds=30)
                for uid, r in found.items()}
    assert readings[2].alert is None and not readings[2].no_token
    assert readings[2].problem == "reading it needs more memory than reading one mail may take"
    assert [readings[uid].alert.title for uid in (1, 3)] == ["Disk full", "CPU high"]


def test_a_reading_too_big_to_hand_over_blames_its_own_mail_and_the_rest_is_read(misreader):
    """The helper runs out of memory pickling the readings of a chunk, not while reading: the
    mail whose reading is too big is blamed, not the last mail begun, and the others keep
    their readings (from the same helper)."""
    raws = mails("Disk full", "Bloat: a reading of 200 MB", "CPU high")
    readings = {uid: r for _, found in read_all(misreader, raws, [[1, 2, 3]], seconds=30)
                for uid, r in found.items()}
    assert readings[2].alert is None and "handing its reading over needs more memory" in \
        readings[2].problem
    assert [readings[uid].alert.title for uid in (1, 3)] == ["Disk full", "CPU high"]


def test_a_reading_handed_to_the_worker_carries_no_body_text():
    reading = read(1, alert_mail(body="Disk C: is 99% full."), NOW)
    assert (reading.message.text, reading.message.html) == ("", "")
    assert (reading.alert.message.text, reading.alert.description) == ("", "Disk C: is 99% full.")


def test_large_mail_read_before_the_helper_ended_keeps_its_reading(misreader):
    """Readings of large mail come back before the chunk is done (not to hold it in both
    processes); those the helper sent before it ended stand."""
    body = ("x" * 70 + "\n") * 70_000  # about 5 MB each
    raws = {uid: alert_mail(subject=f"Large {uid}", body=body, tok=token(AlertID=f"Kaseya:{uid}"))
            for uid in (1, 2)}
    raws[3] = misreading.misread(alert_mail(subject="Crashes"), "crash")
    ((_, readings),) = read_all(misreader, raws, [[1, 2, 3]])
    assert [readings[uid].alert.title for uid in (1, 2)] == ["Large 1", "Large 2"]
    assert readings[3].problem.startswith("the reading helper ended while reading it")


def test_a_lock_held_by_another_thread_at_the_start_does_not_reach_the_helper():
    """The helper is a new interpreter, not a fork: a lock held by a thread of the worker (as
    `serve` runs the scheduler, IDLE and signals in threads) is not held in the helper."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with misreading.LOCK:
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    try:
        with Reader(misreading.read) as reader:
            chunks = read_all(reader, mails("LOCKED: reads under the lock"), [[1]], seconds=5)
    finally:
        release.set()
        holder.join()
    ((_, readings),) = chunks
    assert readings[1].alert is not None and readings[1].problem == ""


def test_a_helper_that_cannot_start_is_an_error_not_a_quarantine():
    def unimportable(uid: int, raw: bytes, now: datetime) -> Reading:
        raise AssertionError("never called: the helper cannot import it")

    unimportable.__module__ = "testkit.no_such_module"
    with Reader(unimportable) as reader:
        with pytest.raises(ReaderError, match="ended while starting"):
            read_all(reader, mails("Disk full"), [[1]])


def test_the_chunk_read_ahead_is_fetched_only_while_both_fit_in_the_budget(misreader):
    raws = {uid: b"Subject: x\r\n\r\n" + b"y" * 986 for uid in range(1, 9)}  # 1000 bytes each
    sizes = {uid: len(raw) for uid, raw in raws.items()}
    events: list[str] = []

    def fetch(uids: list[int]) -> dict[int, bytes]:
        events.append(f"fetch {uids[0]}")
        return {uid: raws[uid] for uid in uids}

    def run(plan: list[list[int]], budget: int) -> list[str]:
        events.clear()
        for uids, _ in misreader.chunks(plan, sizes, fetch, lambda: NOW, budget=budget, seconds=5):
            events.append(f"handle {uids[0]}")
        return events

    pairs = [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert run(pairs, budget=4000) == ["fetch 1", "fetch 3", "handle 1", "fetch 5", "handle 3",
                                       "fetch 7", "handle 5", "handle 7"]
    assert run(pairs, budget=3000) == ["fetch 1", "handle 1", "fetch 3", "handle 3", "fetch 5",
                                       "handle 5", "fetch 7", "handle 7"]
    # a chunk larger than the budget goes alone
    assert run([[1, 2, 3, 4, 5], [6], [7]], budget=2000) == [
        "fetch 1", "handle 1", "fetch 6", "fetch 7", "handle 6", "handle 7"]


def test_a_stop_request_ends_the_wait_for_a_mail_in_the_helper():
    stop = threading.Event()
    raws = mails("HANG: waits for ever")
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    with Reader(misreading.read) as reader:
        chunks = list(reader.chunks([[1]], {1: 1}, lambda uids: raws, lambda: NOW, budget=10**6,
                                    seconds=60, stop=stop))
    assert chunks == []


def backlog(account) -> None:
    for n in range(6):
        account.append("INBOX", alert_mail(body=f"n{n}", tok=token(AlertID=f"Kaseya:{n % 3}")))


HELPER_PID_THEN_KILL = """
import os, signal
import poller.service.helper_process as helper_process
import poller.store.store as store
started = helper_process.HelperProcess.__init__
def helper_started(self, *args):
    started(self, *args)
    open({pidfile!r}, "w").write(str(self.process.pid))
helper_process.HelperProcess.__init__ = helper_started
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
    assert [m["outcome"] for m in poller_json(config, capsys, "messages")][::-1] == [
        "created", "created", "created", "appended", "appended", "appended"]


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie has ended: it only waits for its parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z" and os.path.exists(f"/proc/{pid}")
