"""A technician's side of a ticket: `ticket complete`, `ticket note`, and what they send."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from poller.clock import utc_now
from poller.service.delivery import deliver_pending
from testkit.support import alert_mail, poller, token
from testkit.webhooks import HookedBox


@pytest.fixture
def box(tmp_path, receiver, database_url) -> HookedBox:
    hooked = HookedBox(tmp_path, receiver, database={"url": database_url})
    hooked.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:8932")))
    hooked.run()
    hooked.deliver()
    return hooked


def run(box, capsys, *args):
    capsys.readouterr()
    code = poller(box.config, *args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shown(box, capsys, number):
    code, out, _ = run(box, capsys, "ticket", number, "--json")
    assert code == 0
    return json.loads(out)


def test_complete_with_a_note_sends_the_completed_event_at_once(box, receiver, capsys):
    number = box.tickets()[0]["number"]
    code, out, _ = run(box, capsys, "ticket", "complete", number, "--note", "Disk replaced",
                       "--by", "alice")
    assert code == 0
    assert f"{number} completed by alice" in out and "delivered to http://127.0.0.1" in out
    ticket = shown(box, capsys, number)
    assert ticket["status"] == "Complete" and ticket["completed"]
    assert (ticket["notes"][-1]["kind"], ticket["notes"][-1]["text"]) == (
        "resolution", "Completed by alice: Disk replaced")
    created, completed = receiver.taken
    assert completed.signed and completed.event == "completed"
    assert (completed.body["by"], completed.body["note"]) == ("alice", "Disk replaced")
    assert completed.body["ticket"]["status"] == "Complete"
    assert completed.body["ticket"]["udfs"] == {"Kaseya Alert ID": "8932"}
    assert [e["status"] for e in box.outbox()] == ["delivered", "delivered"]


def test_completing_a_complete_ticket_changes_nothing_and_sends_nothing(box, receiver, capsys):
    number = box.tickets()[0]["number"]
    assert run(box, capsys, "ticket", "complete", number, "--by", "alice")[0] == 0
    before = shown(box, capsys, number)
    code, out, _ = run(box, capsys, "ticket", "complete", number, "--note", "again", "--by", "bob")
    assert code == 0 and "Complete already; nothing changed, nothing sent" in out
    assert shown(box, capsys, number) == before
    assert before["notes"][-1]["text"] == "Completed by alice."
    assert [d.event for d in receiver.taken] == ["created", "completed"]
    assert len(box.outbox()) == 2


def test_an_unknown_ticket_number_exits_2(box, capsys):
    for args in (("complete", "T19990101.0001"), ("note", "T19990101.0001", "hello")):
        code, _, err = run(box, capsys, "ticket", *args)
        assert code == 2 and "no ticket T19990101.0001" in err


def test_a_note_is_added_without_an_event(box, receiver, capsys):
    number = box.tickets()[0]["number"]
    code, out, _ = run(box, capsys, "ticket", "note", number, "Called", "the", "customer",
                       "--by", "bob")
    assert code == 0 and f"note by bob added to {number}" in out
    note = shown(box, capsys, number)["notes"][-1]
    assert (note["kind"], note["title"], note["text"]) == ("technician", "Note by bob",
                                                           "Called the customer")
    assert shown(box, capsys, number)["status"] == "New"
    assert len(box.outbox()) == 1 and [d.event for d in receiver.taken] == ["created"]


def test_the_next_occurrence_after_a_technician_completed_opens_a_new_ticket(box, receiver,
                                                                             capsys):
    first = box.tickets()[0]["number"]
    assert run(box, capsys, "ticket", "complete", first, "--by", "alice")[0] == 0
    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:8932")))
    assert box.run().counts == {"created": 1}
    box.deliver()
    assert [t["status"] for t in box.tickets()] == ["Complete", "New"]
    assert [(d.event, d.body["ticket"]["number"] == first) for d in receiver.taken] == [
        ("created", True), ("completed", True), ("created", False)]


def test_by_defaults_to_the_login_name(box, capsys, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "carol")
    number = box.tickets()[0]["number"]
    assert "completed by carol" in run(box, capsys, "ticket", "complete", number)[1]
    assert shown(box, capsys, number)["notes"][-1]["text"] == "Completed by carol."


def test_a_completion_while_the_receiver_is_down_is_delivered_after_a_later_pass(
        box, receiver, capsys):
    receiver.stop()
    number = box.tickets()[0]["number"]
    code, out, err = run(box, capsys, "ticket", "complete", number, "--by", "alice")
    assert code == 0 and "not delivered yet" in out and "cannot reach" in err
    assert shown(box, capsys, number)["status"] == "Complete"
    (event,) = box.outbox("failed")
    receiver.start()
    later = utc_now() + timedelta(hours=1)
    assert deliver_pending(box.settings, clock=lambda: later).delivered == [event["id"]]
    assert receiver.taken[-1].id == event["id"]


def test_showing_a_ticket_works_as_before_and_wrong_forms_exit_2(box, capsys):
    number = box.tickets()[0]["number"]
    code, out, _ = run(box, capsys, "ticket", number)
    assert code == 0 and "Disk full on SRV1" in out and "Kaseya Alert ID: 8932" in out
    for args in (("complete",), ("complete", number, "--json"), ("note", number),
                 (number, "--note", "x"), ("note", number, "x", "--note", "y"),
                 (number, "extra")):
        with pytest.raises(SystemExit) as exited:
            code = poller(box.config, "ticket", *args)
            raise SystemExit(code)
        assert exited.value.code == 2, args
