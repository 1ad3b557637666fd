"""Replies threaded onto their ticket: a mail that answers a ticket (its In-Reply-To or
References name a mail of the ticket, its subject carries the ticket's number, or the token it
quotes carries its TicketNumber) is a note of kind `reply` on it, never a new ticket, an
occurrence or a completion, whatever it quotes or says. Passes over the in-memory mailbox with
a real store; the webhook event over a real receiver on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from poller.ates.directory import TicketRef
from poller.ates.reading import read
from poller.ates.rules import decide
from testkit.harness import NOW, Harness
from testkit.rules import Directory, policy
from testkit.support import alert_mail, token
from testkit.webhooks import HookedBox

TOKEN = token(CustomerID="Kaseya:100", AlertID="Kaseya:5")
ALERT_ID = "<alert-1001@rmm.client.example>"
REPLIES = Path(__file__).resolve().parent.parent / "fixtures" / "replies"


def _reply(subject: str = "Re: Disk full on SRV1", body: str = "I am on it.",
           message_id: str = "<r1@msp.example>", in_reply_to: str | None = ALERT_ID,
           quoted: str = TOKEN) -> bytes:
    threading = (f"In-Reply-To: {in_reply_to}\nReferences: {in_reply_to}\n"
                 if in_reply_to else "")
    quote = "\n".join(f"> {line}" for line in ["Disk C: is 99% full.", "", *quoted.split("\n")])
    return (f"From: Jane Tech <jane@msp.example>\nTo: alerts@msp.example\nSubject: {subject}\n"
            f"Message-ID: {message_id}\n{threading}Date: Sun, 29 Nov 2026 10:05:00 +0000\n\n"
            f"{body}\n\nOn Sun, 29 Nov 2026, Kaseya VSA wrote:\n{quote}\n").encode()


@pytest.fixture
def box(tmp_path, reader) -> Harness:
    harness = Harness(tmp_path, reader)
    harness.mailbox.add(alert_mail(subject="Disk full on SRV1", tok=TOKEN, message_id=ALERT_ID))
    harness.run()  # the alert itself: ticket 1, open
    return harness


def _only_ticket(box: Harness) -> dict:
    (ticket,) = box.tickets()
    assert ticket["status"] == "New" and ticket["occurrences"] == 1
    return ticket


def test_a_reply_to_the_alert_mail_is_a_note_on_its_ticket(box):
    (uid,) = box.mailbox.add(_reply())
    assert box.run().counts == {"noted": 1}
    ticket = _only_ticket(box)
    (note,) = ticket["notes"]
    assert note["kind"] == "reply" and note["title"] == "Re: Disk full on SRV1"
    assert note["text"] == "From: Jane Tech <jane@msp.example>\n\nI am on it."
    row = box.messages()[-1]
    assert row["outcome"] == "noted" and row["ticket"] == ticket["number"]
    assert "In-Reply-To/References" in row["reason"]
    assert box.mailbox.where(uid) == "flagged"  # done with, like processed mail


@pytest.mark.parametrize("path", sorted(REPLIES.glob("*_reply_*.eml")),
                         ids=lambda p: p.stem)
def test_each_clients_reply_is_noted_with_what_the_person_wrote(box, path):
    box.mailbox.add(path.read_bytes())
    assert box.run().counts == {"noted": 1}
    (note,) = _only_ticket(box)["notes"]
    written = note["text"].split("\n\n", 1)[1]
    assert written.split("\n")[0] in path.with_suffix(".expected.json").read_text()
    assert "Autotask" not in written and "99% full" not in written


@pytest.mark.parametrize("subject", [
    "[EXTERNAL] RE: RESOLVED: Disk full on SRV1", "RE: Disk full on SRV1 - cleared",
    "Re: Disk full on SRV1 - recovered, close it"])
def test_a_reply_that_says_clear_completes_nothing(box, subject):
    box.mailbox.add(_reply(subject=subject, body="RESOLVED"))
    assert box.run().counts == {"noted": 1}
    _only_ticket(box)


def test_a_reply_all_storm_makes_one_note_per_mail_on_one_ticket(box):
    for n in range(6):
        box.mailbox.add(_reply(message_id=f"<storm{n}@msp.example>", body=f"Reply {n}",
                               in_reply_to=ALERT_ID if n == 0 else f"<storm{n - 1}@msp.example>"))
    assert box.run().counts == {"noted": 6}
    notes = _only_ticket(box)["notes"]
    assert [n["text"].rsplit("\n", 1)[-1] for n in notes] == [f"Reply {n}" for n in range(6)]


def test_the_same_reply_delivered_twice_is_noted_once(box):
    box.mailbox.add(_reply(), _reply())
    assert box.run().counts == {"noted": 1, "duplicate": 1}
    assert len(_only_ticket(box)["notes"]) == 1


@pytest.mark.parametrize("template", ["Re: Disk full [{n}]", "Update on {n}: done",
                                      "Ticket#{n}"])
def test_a_subject_with_the_ticket_number_is_a_reply_without_any_header(box, template):
    number = box.tickets()[0]["number"]
    box.mailbox.add(_reply(subject=template.format(n=number), in_reply_to=None, quoted="x"))
    assert box.run().counts == {"noted": 1}
    row = box.messages()[-1]
    assert row["ticket"] == number and "subject" in row["reason"]


def test_a_quoted_token_with_a_ticket_number_names_the_ticket(box):
    number = box.tickets()[0]["number"]
    box.mailbox.add(_reply(subject="Disk full on SRV1", in_reply_to=None,
                           quoted=token(TicketNumber=number)))
    assert box.run().counts == {"noted": 1}
    assert "TicketNumber" in box.messages()[-1]["reason"]


@pytest.mark.parametrize("raw", [
    _reply(in_reply_to="<somewhere-else@msp.example>"),
    _reply(subject="Re: Disk full [T20990101.0001]", in_reply_to=None),
    _reply(subject="Re: T20261129.00011x", in_reply_to=None),
], ids=["unknown-message-id", "unknown-number", "not-a-number"])
def test_a_reply_to_nothing_known_is_handled_like_any_other_mail(box, raw):
    box.mailbox.add(raw)
    assert box.run().counts == {"skipped": 1}
    assert _only_ticket(box)["notes"] == []


def test_an_alert_with_its_own_token_is_an_alert_even_when_it_names_the_thread(box):
    """A monitoring system that threads its mail (References) still appends and completes."""
    raw = alert_mail(subject="Disk full on SRV1", tok=TOKEN, message_id="<alert-1002@x>")
    raw = raw.replace(b"Subject:", f"References: {ALERT_ID}\nSubject:".encode(), 1)
    box.mailbox.add(raw)
    assert box.run().counts == {"appended": 1}


def test_a_mail_without_a_token_is_noted_on_the_ticket_its_thread_names():
    reading = read(1, _reply(quoted="x"), NOW)
    assert reading.alert is None and reading.reply_text == "I am on it."
    assert decide(reading, Directory(), policy()).outcome.value == "skipped"
    ticket = TicketRef(7, "T20261129.0007", 100, "Complete")
    decision = decide(reading, Directory(threads={ALERT_ID: ticket}), policy())
    assert (decision.outcome.value, decision.ticket_id) == ("noted", 7)
    assert decision.reply.text == "I am on it." and decision.reply.sender.startswith("Jane")


def test_a_noted_reply_is_sent_as_a_noted_event_when_events_name_it(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver, webhook={"events": "completed, noted"})
    box.mailbox.add(alert_mail(subject="Disk full on SRV1", tok=TOKEN, message_id=ALERT_ID))
    box.run()
    box.mailbox.add(_reply())
    assert box.run().counts == {"noted": 1}
    assert [e["event"] for e in box.outbox()] == ["noted"]
    box.deliver()
    (noted,) = receiver.taken
    assert noted.event == "noted" and noted.body["note"] == "I am on it."
    assert noted.body["ticket"]["status"] == "New"


def test_no_noted_event_unless_events_name_it(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver)
    box.mailbox.add(alert_mail(subject="Disk full on SRV1", tok=TOKEN, message_id=ALERT_ID))
    box.run()
    box.mailbox.add(_reply(subject="RE: RESOLVED: Disk full on SRV1"))
    assert box.run().counts == {"noted": 1}
    assert "noted" not in box.settings.webhook.events
    assert [e["event"] for e in box.outbox()] == ["created"]  # the alert's own; no completed


def test_the_reply_text_leaves_the_pw_of_a_quoted_token_out():
    reading = read(1, _reply(), NOW)
    assert re.search(r"PW|Autotask", reading.reply_text) is None
