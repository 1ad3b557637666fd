"""A parsed mail → Alert: its token, and the ticket title and description ATES makes of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from poller.ates.decision import DESCRIPTION_LIMIT, TITLE_LIMIT
from poller.ates.policy import MASK
from poller.ates.token import AtesToken, find_token
from poller.mail.parsed import ParsedMessage


@dataclass(frozen=True)
class Alert:
    """A mail's token with the ticket title and description made of it; quoted says how the
    token stands where a reply or forward quotes a mail ('' when it does not).

    An alert a rule made of a mail without a token (poller.ates.mailrules) names the rule, has
    a token without PW, and clears says whether the rule's clear pattern matched (None: the
    [duplicates] clear_pattern decides, as for a token)."""

    message: ParsedMessage
    token: AtesToken
    title: str
    description: str
    quoted: str = ""
    rule: str = ""
    clears: bool | None = None


def read_alert(message: ParsedMessage, now: datetime) -> Alert:
    """Return the alert a parsed mail carries; raise a MessageError subclass saying why there is
    none (TokenMissing, TokenInvalid)."""
    located, token = find_token(message.text, message.html)
    return Alert(
        message=message,
        token=token,
        title=ticket_title(message, token, now),
        description=_redact(located.above.strip(), token)[:DESCRIPTION_LIMIT],
        quoted=located.quoted,
    )


def ticket_title(message: ParsedMessage, token: AtesToken, now: datetime) -> str:
    """Return the subject cut to ATES's limit, or 'New Ticket - <date/time>' when it is empty."""
    subject = _redact(message.subject, token)
    if not subject:
        when = message.date or now
        subject = f"New Ticket - {when:%Y-%m-%d %H:%M}"
    return subject[:TITLE_LIMIT]


def _redact(text: str, token: AtesToken) -> str:
    """Remove the token's PW should a template also print it outside the token."""
    return text.replace(token.pw, MASK) if token.pw and token.pw in text else text
