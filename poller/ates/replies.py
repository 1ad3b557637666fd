"""Mail that is not an alert but concerns a ticket: a reply to one (which ticket it answers,
and the note it makes), and the mail an [[expect]] entry waits for. poller.ates.rules.decide
calls these; the step is its to plan."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from poller.ates.decision import Decision, Reply
from poller.ates.outcomes import STATUS_COMPLETE, Outcome, Step

if TYPE_CHECKING:  # types only: the worker decides without loading the token reader or RE2
    from poller.ates.directory import Directory, TicketRef
    from poller.ates.expected import Expectation
    from poller.ates.reading import Reading

# A ticket number as this service writes them, TYYYYMMDD.NNNN, alone or in brackets.
_TICKET_NUMBER_RE = re.compile(r"(?<![\w.])T\d{8}\.\d{4,6}(?![\w.])")
_SUBJECT_NUMBERS = 5  # the ticket numbers of a subject looked up, at most


def answered(reading: Reading, directory: Directory) -> tuple[TicketRef | None, str]:
    """Return the ticket the mail answers and how that is known, or (None, '').

    A mail answers a ticket when its In-Reply-To or References name a mail the ticket was made
    from, appended or noted with, when its subject carries the ticket's number, or when the
    token it quotes carries the ticket's TicketNumber (tried in that order).
    """
    message = reading.message
    if message is None:
        return None, ""
    if message.references:
        ticket = directory.ticket_by_message_ids(message.references)
        if ticket is not None:
            return ticket, "In-Reply-To/References name a mail of the ticket"
    for number in _TICKET_NUMBER_RE.findall(message.subject)[:_SUBJECT_NUMBERS]:
        ticket = directory.ticket_by_number(number)
        if ticket is not None:
            return ticket, "the subject names it"
    quoted = reading.alert.token.ticket_number if reading.alert is not None else None
    if quoted:
        ticket = directory.ticket_by_number(quoted)
        if ticket is not None:
            return ticket, "the quoted token's TicketNumber names it"
    return None, ""


def noted(reading: Reading, ticket: TicketRef, how: str, directory: Directory,
          step: Step) -> Decision:
    """Return the decision for a reply to ticket: a note on it (its sender, its subject and
    what was written above the quote), never a new ticket, an occurrence or a completion,
    whatever it quotes or says; the same reply delivered again is a duplicate."""
    earlier = (directory.delivered_before(reading.fingerprint)
               if reading.fingerprint is not None else None)
    if earlier is not None and earlier.ticket_id is not None:
        return Decision(Outcome.DUPLICATE, step,
                        reason="the same mail was already processed", ticket_id=earlier.ticket_id)
    message = reading.message
    assert message is not None
    return Decision(Outcome.NOTED, step,
                    reason=f"a reply to ticket {ticket.number} ({how}): noted on it",
                    ticket_id=ticket.id,
                    reply=Reply(message.sender, message.subject, reading.reply_text))


def arrived(reading: Reading, entry: Expectation, directory: Directory, step: Step) -> Decision:
    """Return the decision for the mail an [[expect]] entry waits for: recorded, done with
    like processed mail, and the completion of the ticket a missed deadline opened."""
    earlier = (directory.delivered_before(reading.fingerprint)
               if reading.fingerprint is not None else None)
    if earlier is not None:
        return Decision(Outcome.DUPLICATE, step,
                        reason="the same mail was already processed", ticket_id=earlier.ticket_id)
    missed = directory.missed_ticket(entry.name)
    open_id = missed.id if missed is not None and missed.status != STATUS_COMPLETE else None
    assert reading.message is not None
    return Decision(Outcome.EXPECTED, step, reason=f"the expected mail {entry.name!r}",
                    ticket_id=open_id, expected=entry.name, arrived=reading.message.date)
