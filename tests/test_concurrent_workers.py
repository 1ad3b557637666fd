"""Workers on many mailboxes sharing one store, deciding the same alerts at the same moment:
the database keeps one open ticket per alert (on both engines), and every mail is recorded
once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from poller.config import load_settings
from poller.service.pass_config import PassConfig
from poller.service.passes import opened_store
from poller.service.worker import Worker
from testkit.fake_mailbox import FakeMailbox
from testkit.harness import NOW, Harness
from testkit.support import alert_mail, token, write_settings

WORKERS = 3  # processes
MAILBOXES = 2  # per process
ALERTS = 15  # the same alerts arrive in every mailbox, each as a mail of its own


def _alert(mailbox: str, n: int, same_mail: bool) -> bytes:
    """Alert n; with same_mail, the same mail (Message-ID, Date) in every mailbox."""
    return alert_mail(subject=f"Disk full {n}",
                      message_id=f"<{'' if same_mail else mailbox}.{n}@mon.example>",
                      tok=token(CustomerID="Kaseya:100", AlertID=f"Kaseya:{n}"))


def _work(tmp: str, database_url: str, names: list[str], same_mail: bool, start) -> None:
    """One worker process: a pass over each of its mailboxes, a mail per transaction."""
    mailboxes = []
    for name in names:
        folder = Path(tmp) / name
        folder.mkdir()
        settings = load_settings(write_settings(
            folder, None, imap={"name": name, "fetch_chunk": "1"},
            database={"url": database_url}))
        box = FakeMailbox()
        box.add(*(_alert(name, n, same_mail) for n in range(ALERTS)))
        mailboxes.append((settings, box))
    start.wait(60)
    for settings, box in mailboxes:
        with opened_store(settings) as store:
            Worker(PassConfig.of(settings), box, store, clock=lambda: NOW).run_pass()


def _race(tmp_path, database_url: str, same_mail: bool) -> Harness:
    """Run the workers at once; return a harness on their store."""
    harness = Harness(tmp_path, None, database_url)  # the directory, imported once
    context = multiprocessing.get_context("spawn")  # no connection inherited
    start = context.Barrier(WORKERS)
    names = [[f"box{w}-{m}" for m in range(MAILBOXES)] for w in range(WORKERS)]
    # the mailboxes of different workers are passed in a different order, so that every
    # alert is decided by several workers at about the same time
    workers = [context.Process(target=_work, args=(str(tmp_path), database_url,
                                                    mine if w % 2 else mine[::-1], same_mail,
                                                    start))
               for w, mine in enumerate(names)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [w.exitcode for w in workers] == [0] * WORKERS
    return harness


def test_workers_racing_on_the_same_alerts_make_one_ticket_per_alert(tmp_path, database_url):
    harness = _race(tmp_path, database_url, same_mail=False)
    tickets = harness.tickets()
    assert sorted(t["udfs"]["Kaseya Alert ID"] for t in tickets) == \
        sorted(str(n) for n in range(ALERTS))
    assert {t["occurrences"] for t in tickets} == {WORKERS * MAILBOXES}
    outcomes = harness.outcomes()
    assert len(outcomes) == WORKERS * MAILBOXES * ALERTS
    assert outcomes.count("created") == ALERTS
    assert outcomes.count("appended") == ALERTS * (WORKERS * MAILBOXES - 1)
    assert all(len(t["notes"]) == WORKERS * MAILBOXES - 1 for t in tickets)


def test_the_same_mail_in_many_mailboxes_at_once_has_one_effect(tmp_path, database_url):
    harness = _race(tmp_path, database_url, same_mail=True)
    tickets = harness.tickets()
    assert len(tickets) == ALERTS
    assert {t["occurrences"] for t in tickets} == {1}
    outcomes = harness.outcomes()
    assert len(outcomes) == WORKERS * MAILBOXES * ALERTS
    assert outcomes.count("created") == ALERTS
    assert outcomes.count("duplicate") == ALERTS * (WORKERS * MAILBOXES - 1)
