"""Every delivery ends in time, whatever the receiver sends: an overall deadline per POST (a
receiver that trickles its answer a byte at a time, each byte well within the timeout, is
given up on after [webhook] timeout), a budget per delivery run of `once`, and a stop request
that cuts the post in flight. Real receivers on 127.0.0.1."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from poller.service.delivery import deliver_pending
from testkit.serving import Child, wait_until
from testkit.support import alert_mail, token, write_settings
from testkit.webhooks import NOW, HookedBox, webhook_section


def alert(alert_id: str) -> bytes:
    return alert_mail(tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                                AlertID=f"Kaseya:{alert_id}"))


@pytest.mark.parametrize("trickle", ["status", "continue", "body"])
def test_a_trickling_receiver_is_given_up_on_at_the_timeout(tmp_path, receiver, trickle):
    box = HookedBox(tmp_path, receiver, webhook={"timeout": "1"})
    receiver.trickle, receiver.trickle_pause = trickle, 0.1  # every read well within 1 s
    box.mailbox.add(alert("1"))
    box.run()
    started = time.monotonic()
    run = box.deliver()
    took = time.monotonic() - started
    assert (run.delivered, run.failed) == ([], 1)
    assert took < 10, f"the post went on for {took:.1f}s past a 1 s timeout"
    assert "no answer from" in box.outbox()[0]["last_error"]


def test_a_delivery_run_of_once_stops_at_its_budget(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver, webhook={"timeout": "5", "budget": "1"})
    receiver.delay = 0.4  # each answer in time, but not five of them within the budget
    box.mailbox.add(*(alert(str(n)) for n in range(5)))
    box.run()
    started = time.monotonic()
    run = deliver_pending(box.settings, budget=box.settings.webhook.budget,
                          clock=lambda: NOW)
    took = time.monotonic() - started
    assert 1 <= len(run.delivered) <= 3 and run.failed == 0 and took < 3
    assert run.left == 5 - len(run.delivered)
    # the rest not tried, or cut by the budget: no attempt counted, no back-off
    assert [(e["status"], e["attempts"]) for e in box.outbox("pending")] == [
        ("pending", 0)] * run.left
    receiver.delay = 0
    assert len(box.deliver().delivered) == run.left


def test_a_stop_request_cuts_the_post_in_flight(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver, webhook={"timeout": "30"})
    receiver.hang()
    box.mailbox.add(alert("1"))
    box.run()
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    run = deliver_pending(box.settings, stop, clock=lambda: NOW)
    took = time.monotonic() - started
    receiver.release()
    assert took < 5 and run.delivered == [] and run.failed == 0
    (event,) = box.outbox()
    assert (event["status"], event["attempts"]) == ("pending", 0)  # posted again later, same id


def test_sigterm_ends_once_while_a_receiver_trickles(tmp_path, imap_account, receiver):
    config = write_settings(tmp_path, imap_account, webhook=webhook_section(
        receiver, timeout="60", budget="120"), schedule={"stop_grace": "1"})
    receiver.trickle = "body"
    imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:1")))
    child = Child(config, "once")
    try:
        assert receiver.arrived.wait(30), child.log
        time.sleep(0.3)
        child.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        wait_until(lambda: child.process.poll() is not None, 10,
                   lambda: f"once still running 10 s after SIGTERM\n{child.log}")
        assert time.monotonic() - started < 10
        assert child.process.returncode == 0, child.log
        assert "cut by the stop request" in child.log
    finally:
        if child.process.poll() is None:
            child.process.kill()


def test_once_delivers_within_its_budget_and_leaves_the_rest(tmp_path, imap_account, receiver):
    config = write_settings(tmp_path, imap_account, webhook=webhook_section(
        receiver, timeout="5", budget="1"))
    receiver.delay = 0.4
    for n in range(6):
        imap_account.append("INBOX", alert_mail(tok=token(AlertID=f"Kaseya:{n}")))
    child = Child(config, "once")
    wait_until(lambda: child.process.poll() is not None, 60, lambda: child.log)
    assert child.process.returncode == 0, child.log
    assert "budget of 1s" in child.log
    assert 1 <= len(receiver.taken) <= 4  # six events at 0.4 s each would take 2.4 s
