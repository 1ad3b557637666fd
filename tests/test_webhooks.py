"""Ticket events to a real receiver on 127.0.0.1: what is posted, signed, retried and ordered.

The mail side runs over an in-memory mailbox (testkit.fake_mailbox); the receiver is the
standard library's http.server in a thread (testkit.webhook_receiver), which checks every
signature itself. What `once` and `serve` do with a receiver is in test_webhook_service.py.
"""

from __future__ import annotations

import pytest

from poller.config import load_settings
from poller.errors import ConfigError
from poller.service.delivery import back_off
from testkit.support import alert_mail, poller, token, write_settings
from testkit.webhooks import SECRET, HookedBox, webhook_section


@pytest.fixture
def box(tmp_path, receiver, database_url) -> HookedBox:
    return HookedBox(tmp_path, receiver, database={"url": database_url})


def alert(subject: str = "Disk full on SRV1", body: str = "Disk C: is 99% full.",
          alert_id: str = "8932") -> bytes:
    return alert_mail(subject=subject, body=body,
                      tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                                AlertID=f"Kaseya:{alert_id}", TicketID="Kaseya:KT-1"))


def test_created_appended_and_completed_from_mail_are_posted_signed_in_order(box, receiver):
    box.mailbox.add(alert(), alert(body="Disk C: is 100% full."),
                    alert(subject="RESOLVED: Disk full on SRV1", body="Disk C: 60% full."))
    assert box.run().counts == {"created": 1, "appended": 1, "completed": 1}
    assert receiver.requests == [], "nothing is posted before the delivery after the pass"

    run = box.deliver()
    assert (len(run.delivered), run.failed, run.left) == (3, 0, 0)
    created, appended, completed = receiver.taken
    assert [d.event for d in receiver.taken] == ["created", "appended", "completed"]
    assert all(d.signed and d.body["id"] == d.id and d.body["event"] == d.event
               for d in receiver.taken)
    assert created.body["ticket"] == {
        "number": created.body["ticket"]["number"], "title": "Disk full on SRV1", "status": "New",
        "organization": "Client One", "device": "SRV1", "occurrences": 1,
        "queue": "Monitoring Alert", "priority": "Medium", "source": "Monitoring Alert",
        "issue_type": None, "sub_issue": None, "mailbox": "alerts@imap.invalid/INBOX",
        "udfs": {"Kaseya Alert ID": "8932", "Kaseya Ticket ID": "KT-1"}}
    assert (created.body["by"], created.body["note"]) == ("alert", None)
    assert created.body["occurred"] == "2026-11-29T10:00:00+00:00"
    assert (appended.body["ticket"]["occurrences"], appended.body["note"]) == (
        2, "Disk C: is 100% full.")
    assert (completed.body["ticket"]["status"], completed.body["note"]) == (
        "Complete", "Disk C: 60% full.")
    assert {d.body["ticket"]["number"] for d in receiver.taken} == {box.tickets()[0]["number"]}
    assert [e["status"] for e in box.outbox()] == ["delivered"] * 3
    assert box.deliver().delivered == [], "a delivered event is never posted again"
    assert len(receiver.requests) == 3


def test_only_the_subscribed_events_are_written(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver, webhook={"events": "completed"})
    box.mailbox.add(alert(), alert(), alert(subject="Cleared: disk full"))
    box.run()
    assert [e["event"] for e in box.outbox()] == ["completed"]


def test_without_a_url_no_event_is_written(tmp_path):
    settings = load_settings(write_settings(tmp_path, None, webhook={"events": "created"}))
    assert settings.webhook.subscribed() == frozenset()


def test_a_receiver_down_for_several_passes_gets_every_event_once_and_in_order(box, receiver):
    receiver.stop()
    box.mailbox.add(alert(alert_id="1"))
    box.run()
    first = box.deliver()
    assert (first.delivered, first.failed, first.left) == ([], 1, 1)
    box.mailbox.add(alert(alert_id="1"), alert(alert_id="2"))
    box.run()
    # alert 1's event waits out its back-off, its appended event waits behind it; alert 2's
    # event is tried, and the receiver is still down
    second = box.deliver()
    assert (second.delivered, second.failed, second.left) == ([], 1, 3)
    assert box.deliver(after=1).failed == 0, "nothing is tried again before its back-off"
    (failed,) = [e for e in box.outbox() if e["attempts"] == 1 and e["ticket"] == box.tickets()[0]
                 ["number"]]
    assert "cannot reach" in failed["last_error"] and "refused" in failed["last_error"]
    assert box.mailbox.where(1) == box.mailbox.where(3) == "flagged", "the mail side went on"

    receiver.start()
    done = box.deliver(after=60)
    assert (len(done.delivered), done.failed, done.left) == (3, 0, 0)
    assert len(receiver.taken) == 3 and len({d.id for d in receiver.taken}) == 3
    one = [(d.event, d.body["ticket"]["occurrences"]) for d in receiver.taken
           if d.body["ticket"]["udfs"]["Kaseya Alert ID"] == "1"]
    assert one == [("created", 1), ("appended", 2)]
    assert [e["status"] for e in box.outbox()] == ["delivered"] * 3


def test_a_receiver_answering_500_gets_the_event_again_with_the_same_id(box, receiver):
    receiver.answers = [500]
    box.mailbox.add(alert())
    box.run()
    assert box.deliver().failed == 1
    (event,) = box.outbox()
    assert (event["status"], event["attempts"]) == ("failed", 1)
    assert "answered HTTP 500" in event["last_error"]
    assert box.deliver(after=5).failed == 0, "waits out the back-off"
    assert len(box.deliver(after=10).delivered) == 1
    first, second = receiver.requests
    assert (first.status, second.status) == (500, 200)
    assert first.id == second.id == event["id"]
    assert box.outbox()[0]["status"] == "delivered"


def test_every_retry_sends_the_same_id_and_the_same_signed_bytes(box, receiver):
    receiver.answers = [503, 500, 502]
    box.mailbox.add(alert())
    box.run()
    for n in range(4):
        box.deliver(after=60 * n)
    assert [d.status for d in receiver.requests] == [503, 500, 502, 200]
    assert len({(d.id, d.raw) for d in receiver.requests}) == 1
    assert all(d.signed for d in receiver.requests)
    assert box.outbox()[0]["attempts"] == 4


def test_an_event_refused_holds_up_its_own_ticket_but_not_the_others(box, receiver):
    receiver.answers = [400]
    box.mailbox.add(alert(alert_id="1"), alert(alert_id="1"), alert(alert_id="2"))
    box.run()
    run = box.deliver()
    assert (len(run.delivered), run.failed, run.left) == (1, 1, 2)
    assert [(d.event, d.body["ticket"]["udfs"]["Kaseya Alert ID"]) for d in receiver.taken] == [
        ("created", "2")]
    box.deliver(after=10)
    assert [(d.event, d.body["ticket"]["udfs"]["Kaseya Alert ID"]) for d in receiver.taken] == [
        ("created", "2"), ("created", "1"), ("appended", "1")]


def test_a_receiver_that_hangs_is_given_up_on_after_the_timeout(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver, webhook={"timeout": "0.5"})
    receiver.hang()
    box.mailbox.add(alert(alert_id="1"), alert(alert_id="2"))
    box.run()
    run = box.deliver()
    assert (run.delivered, run.failed, run.left) == ([], 1, 2), "one wait, not one per event"
    assert "no answer from" in box.outbox()[0]["last_error"]
    receiver.release()
    assert len(box.deliver(after=10).delivered) == 2
    assert [d.status for d in receiver.requests] == [0, 200, 200]
    assert receiver.requests[0].id == receiver.requests[1].id


def test_back_off_doubles_up_to_the_cap(tmp_path, receiver):
    settings = load_settings(write_settings(tmp_path, None, webhook=webhook_section(
        receiver, initial_wait="10", max_wait="60")))
    assert [back_off(settings.webhook, n) for n in (1, 2, 3, 4, 5, 10_000)] == [
        10, 20, 40, 60, 60, 60]


@pytest.mark.parametrize(("webhook", "message"), [
    ({"url": "https://rmm.example/hooks"}, "[webhook] secret: is required (or set secret_file)"),
    ({"url": "ftp://rmm.example/hooks", "secret": "s"}, "is not an http:// or https:// URL"),
    ({"url": "https://rmm.example/hooks", "secret": "s", "events": "closed"},
     "[webhook] events: unknown closed"),
    ({"url": "https://rmm.example/hooks", "secret_file": "missing.txt"},
     "[webhook] secret_file: cannot read"),
    ({"url": "http://127.0.0.1:99999/hooks", "secret": "s"}, "with a port from 1 to 65535"),
    ({"url": "http://127.0.0.1/hooks?token=s3cr3t tok", "secret": "s"},
     "'http://127.0.0.1/********?********' is not an http:// or https:// URL"),
])
def test_bad_webhook_settings_exit_2_before_any_io(tmp_path, capsys, webhook, message):
    config = write_settings(tmp_path, None, webhook=webhook)
    assert poller(config, "once") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "tickets.db").exists()
    with pytest.raises(ConfigError):
        load_settings(config)


def test_the_secret_can_come_from_the_first_line_of_a_file(tmp_path):
    (tmp_path / "webhook-secret").write_text(f"{SECRET}\nnot this line\n")
    settings = load_settings(write_settings(tmp_path, None, webhook={
        "url": "https://rmm.example/hooks", "secret_file": "webhook-secret"}))
    assert settings.webhook.secret == SECRET
    assert settings.webhook.subscribed() == {"completed"}
