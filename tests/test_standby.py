"""Active and standby per mailbox on PostgreSQL: `serve` on several instances, one of them
active; a standby takes over when the active one is killed; `once` leaves a served mailbox
alone; a holder that lost the lock commits nothing (fencing)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

from poller.errors import StoreError
from poller.service.pass_config import PassConfig
from poller.service.passes import open_store
from poller.service.worker import Worker
from poller.store.lease import LeaseLost, MailboxLease
from testkit.harness import NOW, Harness
from testkit.proxy import TcpProxy
from testkit.serving import Child, wait_until
from testkit.support import alert_mail, run_subprocess, token, write_settings
from testkit.webhooks import HookedBox


def _tickets(config) -> list[dict]:
    done = run_subprocess(config, "tickets", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextmanager
def _active_and_standby(first_config, second_config) -> Iterator[tuple[Child, Child]]:
    """`serve` with each settings file: the first active, the second a standby; both killed
    after the block (a frozen one too)."""
    children: list[Child] = []
    try:
        children.append(Child(first_config, "serve"))
        children[0].wait_for("active: serving mailbox", timeout=30)
        children.append(Child(second_config, "serve"))
        children[1].wait_for("standby: mailbox", timeout=30)
        yield children[0], children[1]
    finally:
        for child in children:
            if child.process.poll() is None:
                child.signal(signal.SIGCONT)
                child.signal(signal.SIGKILL)
                child.wait(10)


def test_a_standby_takes_over_within_seconds_of_a_kill_9(tmp_path, imap_account, pg_url):
    config = write_settings(tmp_path, imap_account, database={"url": pg_url},
                            schedule={"interval": "5"})
    with _active_and_standby(config, config) as (first, second):
        assert f"pid {first.process.pid}" in second.log

        # `once` on a mailbox another instance serves: exit 0, saying who serves it
        done = run_subprocess(config, "once")
        assert done.returncode == 0, done.stderr
        assert "is served by" in done.stderr and f"pid {first.process.pid}" in done.stderr

        wait_until(lambda: json.loads(run_subprocess(
            config, "status", "--no-mailbox", "--json").stdout)["standbys"], 15,
            lambda: "the standby is not listed")
        status = json.loads(run_subprocess(config, "status", "--no-mailbox", "--json").stdout)
        assert status["active_instance"]["pid"] == first.process.pid
        assert [s["pid"] for s in status["standbys"]] == [second.process.pid]

        first.signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        second.wait_for("active: serving mailbox", timeout=10)
        assert time.monotonic() - killed < 10

        imap_account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100",
                                                          AlertID="Kaseya:42")))
        wait_until(lambda: len(_tickets(config)) == 1, 30, lambda: second.log)
        time.sleep(6)  # another interval: nothing is doubled
        assert [t["occurrences"] for t in _tickets(config)] == [1]
        status = json.loads(run_subprocess(config, "status", "--no-mailbox", "--json").stdout)
        assert status["active_instance"]["pid"] == second.process.pid


def test_a_frozen_active_instance_is_replaced_and_stands_by_when_it_wakes(tmp_path, imap_account,
                                                                        pg_url):
    config = write_settings(tmp_path, imap_account, database={"url": pg_url},
                            schedule={"interval": "5"})
    with _active_and_standby(config, config) as (first, second):
        first.signal(signal.SIGSTOP)  # frozen: its sessions fall silent
        frozen = time.monotonic()
        second.wait_for("active: serving mailbox", timeout=60)
        assert time.monotonic() - frozen < 60
        imap_account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100",
                                                          AlertID="Kaseya:9")))
        wait_until(lambda: len(_tickets(config)) == 1, 30, lambda: second.log)
        first.signal(signal.SIGCONT)  # wakes up: finds its lock gone, and stands by
        first.wait_for("standby: mailbox", timeout=30)
        assert f"pid {second.process.pid}" in first.log.split("lost the lock")[-1]
        time.sleep(6)  # an interval of both: nothing is doubled
        assert [t["occurrences"] for t in _tickets(config)] == [1]
        done = run_subprocess(config, "messages", "--json")
        assert [m["outcome"] for m in json.loads(done.stdout)] == ["created"]


def test_an_active_instance_cut_off_from_the_database_is_replaced_and_stands_by_after(
        tmp_path, imap_account, pg_url):
    """The network between the active instance and the database holds every packet: the
    server ends the silent lock session and a standby takes over; when the network is back,
    the cut-off instance finds its lock gone, commits nothing, and stands by."""
    parts = urlsplit(pg_url)
    with TcpProxy(parts.port) as network:
        cut_url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{network.port}"))
        (tmp_path / "cut").mkdir()
        (tmp_path / "direct").mkdir()
        schedule = {"interval": "5"}
        cut_config = write_settings(tmp_path / "cut", imap_account, database={"url": cut_url},
                                    schedule=schedule)
        config = write_settings(tmp_path / "direct", imap_account, database={"url": pg_url},
                                schedule=schedule)
        with _active_and_standby(cut_config, config) as (first, second):
            network.hold()
            cut = time.monotonic()
            second.wait_for("active: serving mailbox", timeout=60)
            assert time.monotonic() - cut < 60
            imap_account.append("INBOX", alert_mail(tok=token(CustomerID="Kaseya:100",
                                                              AlertID="Kaseya:7")))
            wait_until(lambda: len(_tickets(config)) == 1, 30, lambda: second.log)
            network.release()
            first.wait_for("standby: mailbox", timeout=60)
            time.sleep(6)  # an interval of both: nothing is doubled
            assert [t["occurrences"] for t in _tickets(config)] == [1]
            done = run_subprocess(config, "messages", "--json")
            assert [m["outcome"] for m in json.loads(done.stdout)] == ["created"]


def test_a_holder_that_lost_the_lock_commits_nothing(tmp_path, pg_url, postgres):
    box = Harness(tmp_path, None, pg_url)
    name = box.settings.imap.name
    old = MailboxLease(pg_url, None, name)
    assert old.try_acquire()
    fence = old.fence()
    # the server ends the frozen holder's lock session, and another instance takes over
    postgres.admin("SELECT pg_terminate_backend(pid) FROM pg_locks "
                   "WHERE locktype = 'advisory' AND granted")
    new = MailboxLease(pg_url, None, name)
    assert new.try_acquire()
    assert new.epoch == fence[1] + 1
    assert not old.still_held()

    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")))
    with pytest.raises(LeaseLost):
        store = open_store(box.settings, fence)
    store = open_store(box.settings)  # as a pass that began before the take-over
    store.fence = fence
    with pytest.raises(StoreError, match="took mailbox .* over"):
        Worker(PassConfig.of(box.settings), box.mailbox, store, clock=lambda: NOW).run_pass()
    store.close()
    assert box.tickets() == [] and box.messages() == []
    assert box.mailbox.where(1) != "flagged"
    # the instance that holds the lease now does the work
    store = open_store(box.settings, new.fence())
    result = Worker(PassConfig.of(box.settings), box.mailbox, store, clock=lambda: NOW).run_pass()
    store.close()
    assert result.counts == {"created": 1}
    new.release()


def test_one_deliverer_per_database_on_any_machine(tmp_path, pg_url, receiver):
    import psycopg

    box = HookedBox(tmp_path, receiver, database={"url": pg_url},
                    schedule={"lock_wait": "0"})
    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:3")))
    box.run()
    # another instance (any machine) delivering: its session holds the database's lock
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended('ates-poller outbox', 0))")
        run = box.deliver()
        assert run.busy and not run.delivered and receiver.taken == []
    run = box.deliver()  # its session ended: the lock with it
    assert len(run.delivered) == 1 and len(receiver.taken) == 1
