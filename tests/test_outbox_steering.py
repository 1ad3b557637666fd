"""An outbox an operator can steer: one delivery lock per database, `delivered` final, an event
refused for good rejected (and no longer holding up its ticket), `outbox retry` and `outbox
drop`, delivered events pruned, listings newest first with --limit and --since. A real
receiver on 127.0.0.1."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from poller.config import load_settings
from poller.service.delivery import deliver_pending, outbox_lock
from poller.service.lock import PassLock
from poller.store import outbox
from poller.store.database import open_database
from testkit.support import alert_mail, poller, poller_json, token, write_settings
from testkit.webhooks import NOW, HookedBox, webhook_section


def alert(alert_id: str, body: str = "Disk C: is 99% full.") -> bytes:
    return alert_mail(body=body, tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                                           AlertID=f"Kaseya:{alert_id}"))


def test_two_mailboxes_on_one_database_share_one_delivery_lock(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver)
    other = load_settings(write_settings(tmp_path, None, webhook=webhook_section(receiver),
                                         imap={"folder": "Other", "username": "rmm"}))
    assert other.schedule.lock_file != box.settings.schedule.lock_file
    assert outbox_lock(other) == outbox_lock(box.settings)
    box.mailbox.add(alert("1"))
    box.run()
    held = PassLock(outbox_lock(other))
    assert held.acquire()
    try:
        run = deliver_pending(replace(box.settings, schedule=replace(box.settings.schedule,
                                                                     lock_wait=0)))
        assert run.busy and receiver.requests == []
    finally:
        held.release()


def test_delivered_never_goes_back(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver)
    box.mailbox.add(alert("1"))
    box.run()
    assert len(box.deliver().delivered) == 1
    db = open_database(box.settings.database.url)
    try:
        (row_id,) = db.execute_sql("SELECT id FROM outbox").fetchone()
        outbox.mark_failed(db, row_id, "late answer of a run that outlived its lock", NOW)
        assert outbox.retry(db, NOW) == 0
        assert not outbox.drop(db, box.outbox()[0]["id"], "by hand")
    finally:
        db.close()
    assert [(e["status"], e["last_error"]) for e in box.outbox()] == [("delivered", "")]


def test_an_event_refused_for_good_is_rejected_and_no_longer_blocks_its_ticket(tmp_path,
                                                                                 receiver):
    box = HookedBox(tmp_path, receiver, webhook={"max_attempts": "2"})
    box.mailbox.add(alert("1"), alert("1", body="again"))
    box.run()
    receiver.answers = [422, 422]
    assert box.deliver().failed == 1
    run = box.deliver(after=3600)
    assert run.rejected == 1 and len(run.delivered) == 1  # the ticket's later event went on
    assert [e["status"] for e in box.outbox()] == ["rejected", "delivered"]
    assert [d.event for d in receiver.taken] == ["appended"]


def test_throttling_answers_never_reject(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver, webhook={"max_attempts": "1"})
    box.mailbox.add(alert("1"))
    box.run()
    receiver.answers = [429, 408, 425]
    for n in range(3):
        box.deliver(after=3600 * n)
    assert [e["status"] for e in box.outbox()] == ["failed"]
    assert len(box.deliver(after=3 * 3600).delivered) == 1


def test_an_operator_retries_and_drops_events(tmp_path, receiver, capsys):
    box = HookedBox(tmp_path, receiver, webhook={"max_attempts": "1"})
    box.mailbox.add(alert("1"), alert("2"), alert("3"))
    box.run()
    receiver.answers = [404, 404, 404]
    box.deliver()
    first, second, third = (e["id"] for e in box.outbox())
    assert [e["status"] for e in box.outbox()] == ["rejected"] * 3
    assert poller(box.config, "outbox", "drop", third) == 0
    assert poller(box.config, "outbox", "retry", first) == 0
    assert [e["status"] for e in box.outbox()] == ["pending", "rejected", "dropped"]
    assert poller(box.config, "outbox", "retry", "--failed") == 0
    assert "1 event put back" in capsys.readouterr().out
    assert len(deliver_pending(box.settings).delivered) == 2  # due at once, by the clock
    assert [e["status"] for e in box.outbox()] == ["delivered", "delivered", "dropped"]
    assert box.outbox()[2]["last_error"].startswith("dropped by ")
    assert poller(box.config, "outbox", "drop", first) == 2  # delivered: stays
    assert poller(box.config, "outbox", "retry") == 2
    assert poller(box.config, "outbox", "frobnicate", first) == 2


def test_delivered_events_are_pruned_after_keep_days(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver, webhook={"keep_days": "7"})
    box.mailbox.add(alert("1"))
    box.run()
    box.deliver()
    assert box.deliver(after=6 * 86400).pruned == 0
    assert box.deliver(after=8 * 86400).pruned == 1
    assert box.outbox() == []


def test_listings_are_newest_first_with_a_limit_and_a_since(tmp_path, receiver, capsys):
    box = HookedBox(tmp_path, receiver)
    box.mailbox.add(*(alert(str(n)) for n in range(60)))
    box.run()
    events = poller_json(box.config, capsys, "outbox")
    assert len(events) == 50
    assert events == sorted(events, key=lambda e: e["created"], reverse=True)
    assert events[0]["id"] == box.outbox()[-1]["id"]
    assert len(poller_json(box.config, capsys, "outbox", "--limit", "0")) == 60
    assert len(poller_json(box.config, capsys, "outbox", "--limit", "3")) == 3
    assert poller_json(box.config, capsys, "outbox", "--since",
                       (NOW + timedelta(days=1)).date().isoformat()) == []
    messages = poller_json(box.config, capsys, "messages", "--limit", "2")
    assert [m["uid"] for m in messages] == [60, 59]
    assert poller_json(box.config, capsys, "messages", "--since", "2999-01-01") == []
    assert len(poller_json(box.config, capsys, "messages", "--since", "2000-01-01T00:00",
                           "--limit", "0")) == 60


def test_status_and_metrics_count_rejected_events(tmp_path, receiver, capsys):
    prom = tmp_path / "poller.prom"
    box = HookedBox(tmp_path, receiver, webhook={"max_attempts": "1"},
                    metrics={"textfile": str(prom)})
    box.mailbox.add(alert("1"))
    box.run()
    receiver.answers = [410]
    assert box.deliver().rejected == 1
    capsys.readouterr()
    assert poller(box.config, "status", "--no-mailbox", "--json") == 5  # the pass is NOW, long ago
    status = json.loads(capsys.readouterr().out)
    assert (status["undelivered_events"], status["rejected_events"]) == (0, 1)
    assert poller(box.config, "status", "--no-mailbox") == 5
    assert "REJECTED: 1" in capsys.readouterr().out
    assert 'ates_poller_webhook_rejected_events{mailbox=' in prom.read_text()
