"""Tokens that are not the sender's own: a person's reply that quotes an alert (in `>` lines,
below the line a mail client writes above what it forwards or quotes, in a cited HTML block, or
under a Re:/Fwd: subject), and a mail that is a whole forwarded message (top-level
message/rfc822). Each carries a token with the right
PW, and neither is the monitoring system speaking: no ticket is created or appended to, and the
processed-mail log and the log line say why. Passes over the in-memory mailbox."""

from __future__ import annotations

import logging

import pytest

from poller.ates.alert import read_alert
from poller.ates.rules import decide_alert
from poller.mail.message import parse_message
from testkit.harness import NOW, Harness
from testkit.rules import Directory, policy
from testkit.support import alert_mail, token

TOKEN = token(CustomerID="Kaseya:100", AlertID="Kaseya:5")


@pytest.fixture
def box(tmp_path, reader) -> Harness:
    harness = Harness(tmp_path, reader)
    harness.mailbox.add(alert_mail(subject="Disk full on SRV1", tok=TOKEN))
    harness.run()  # the alert itself: ticket 1, open
    return harness


def _reply(quote: str = "> ") -> bytes:
    quoted = "\n".join(quote + line for line in ["Disk C: is 99% full.", "", *TOKEN.split("\n")])
    return (f"From: Jane Tech <jane@msp.example>\nSubject: Re: Disk full on SRV1\n"
            f"Message-ID: <re1@msp.example>\nDate: Sun, 29 Nov 2026 10:05:00 +0000\n\n"
            f"I am on it.\n\nOn Sun, 29 Nov 2026, Kaseya VSA wrote:\n{quoted}\n").encode()


def _headers(subject: str, content_type: str = "text/plain") -> str:
    return (f"From: Jane Tech <jane@msp.example>\nSubject: {subject}\n"
            f"Message-ID: <r2@msp.example>\nMIME-Version: 1.0\n"
            f"Content-Type: {content_type}; charset=utf-8\n\n")


def _below(separator: str, subject: str = "Disk full on SRV1 - resolved?") -> bytes:
    """A reply or inline forward as Outlook, Thunderbird or Gmail write one, with no `>`."""
    return (_headers(subject) + f"Looks resolved to me.\n\n{separator}\nFrom: Kaseya VSA\n"
            f"Subject: Disk full on SRV1\n\nDisk C: is 99% full.\n\n{TOKEN}\n").encode()


def _cited_html() -> bytes:
    escaped = TOKEN.replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
    return (_headers("Disk full on SRV1 - resolved?", "text/html")
            + f"<p>Looks resolved.</p><blockquote type=\"cite\"><p>Disk C: is 99% full.</p>"
              f"<p>{escaped}</p></blockquote>").encode()


def _forward() -> bytes:
    inner = alert_mail(subject="Disk full on SRV1", tok=TOKEN)
    return (b"From: Jane Tech <jane@msp.example>\nSubject: Fwd: Disk full on SRV1\n"
            b"Message-ID: <fwd1@msp.example>\nMIME-Version: 1.0\n"
            b"Content-Type: message/rfc822\n\n" + inner)


@pytest.mark.parametrize(("raw", "why"), [
    (_reply(), "quoted"), (_reply(">"), "quoted"), (_reply(">> "), "quoted"),
    (_forward(), "forwarded message"),
    (_below("-----Original Message-----"), "below a forwarded or original message"),
    (_below("---------- Forwarded message ---------"), "below a forwarded or original message"),
    (_below("-------- Original Message --------"), "below a forwarded or original message"),
    (_below("Begin forwarded message:"), "below a forwarded or original message"),
    (_cited_html(), "in a cited block"),
    (alert_mail(subject="RE: Disk full on SRV1 - resolved?", tok=TOKEN), "reply or a forward"),
    (alert_mail(subject="FW: Disk full on SRV1", tok=TOKEN), "reply or a forward"),
    (alert_mail(subject="AW: Disk full on SRV1", tok=TOKEN), "reply or a forward"),
], ids=["reply", "reply-tight", "reply-twice", "forward", "outlook", "gmail-forward",
        "thunderbird", "apple-forward", "html-cite", "subject-re", "subject-fw", "subject-aw"])
def test_a_token_that_is_not_the_senders_creates_and_appends_nothing(box, raw, why, caplog):
    (uid,) = box.mailbox.add(raw)
    with caplog.at_level(logging.INFO, logger="poller.service.handling"):
        result = box.run()
    assert result.counts == {"skipped": 1}
    (ticket,) = box.tickets()
    assert ticket["occurrences"] == 1 and len(ticket["notes"]) == 0
    row = box.messages()[-1]
    assert row["outcome"] == "skipped" and why in row["reason"] and row["ticket"] is None
    assert why in caplog.text and f"uid={uid}" in caplog.text
    assert box.mailbox.where(uid) == "untouched"  # like mail without a token: on_no_token


def test_it_goes_where_mail_without_a_token_goes(box):
    box.configure(mailbox={"on_no_token": "move"})
    (uid,) = box.mailbox.add(_forward())
    box.run()
    assert box.mailbox.where(uid) == "No token"


def test_parse_shows_the_reason_too():
    decision = decide_alert(read_alert(parse_message(_reply()), NOW), Directory(), policy())
    assert decision.outcome.value == "skipped" and "quoted" in decision.reason


@pytest.mark.parametrize("line", ["Value > 90 % <Autotask>", "a> <Autotask>"])
def test_a_greater_than_sign_that_is_not_a_quote_is_text(line):
    body = TOKEN.replace("<Autotask>", line, 1)
    decision = decide_alert(read_alert(parse_message(alert_mail(tok=body)), NOW), Directory(),
                            policy())
    assert decision.outcome.value == "created"


@pytest.mark.parametrize("raw", [
    alert_mail(subject="Disk full on SRV1: re-check in 5 min", tok=TOKEN),
    alert_mail(subject="SRV1 disk full (RE:PLICA set)", tok=TOKEN),
    (_headers("Disk full on SRV1", "text/html") + "<p>Disk C: is 99% full.</p><blockquote><p>"
     + TOKEN.replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
     + "</p></blockquote>").encode(),
], ids=["re-inside-subject", "re-not-a-prefix", "plain-blockquote"])
def test_an_alert_that_only_looks_like_one_is_still_an_alert(raw):
    """Alert templates indent with plain <blockquote>; only type=cite marks a client's quote."""
    decision = decide_alert(read_alert(parse_message(raw), NOW), Directory(), policy())
    assert decision.outcome.value == "created"
