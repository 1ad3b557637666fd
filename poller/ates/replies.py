"""Which ticket a mail answers: the look-ups that make a mail a reply to a ticket."""

from __future__ import annotations

import re

from poller.ates.directory import Directory, TicketRef
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
