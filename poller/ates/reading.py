"""Raw mail → Reading: the parsed message and its alert, or why there is none.

Reading is most of the work per mail and needs nothing from the store, so the service runs it
in a helper process; a Reading is a plain value that crosses processes. The worker imports this
module for Reading alone, so the MIME parser and the token reader are imported by the first
mail read, not here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from poller.errors import MessageError, TokenMissing
from poller.mail.fingerprint import fingerprint
from poller.mail.parsed import FORWARDED_TYPES, ParsedMessage

if TYPE_CHECKING:
    from poller.ates.alert import Alert
    from poller.ates.mailrules import RuleSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """One mail read: its message and alert, or the problem that left it without one.

    no_token is True when the mail is a mail but carries no token (its problem says so).
    fingerprint names the mail across deliveries; None when nothing tells a second delivery
    from a new mail (poller.mail.fingerprint). The message's body texts are left out once read
    (the alert's description holds what a ticket takes of them), so that a reading handed to
    the worker is no larger than the mail's attachments.
    """

    message: ParsedMessage | None
    alert: Alert | None
    problem: str
    no_token: bool
    fingerprint: str | None
    reply_text: str = ""


def unread(problem: str) -> Reading:
    """Return the reading of a mail that was never read (the rules quarantine it for PROBLEM)."""
    return Reading(None, None, problem, False, None)


def too_large(size: int, limit: int) -> Reading:
    """Return the reading of a mail over [limits] max_message_bytes (never downloaded)."""
    return unread(f"mail is {size} bytes, over the limit of {limit} bytes")


def refused_by_server(detail: str) -> Reading:
    """Return the reading of a mail the server would not hand over."""
    return unread(f"the server refused to return it: {detail}")


def read(uid: int, raw: bytes, now: datetime, rules: RuleSet | None = None) -> Reading:
    """Parse one mail and read its token, or, when it has none, try the rules on it; never
    raises (uid names the mail in a log line)."""
    from poller.ates.alert import read_alert  # see the module's docstring
    from poller.mail.message import parse_message

    message: ParsedMessage | None = None
    alert: Alert | None = None
    problem, no_token = "", False
    try:
        message = parse_message(raw)
        try:
            alert = read_alert(message, now)
        except TokenMissing as exc:
            if rules is None:
                raise
            from poller.ates.mailrules import by_rules

            alert, why = by_rules(rules, message, now)
            if alert is None:
                raise TokenMissing(f"{exc}{why}") from None
    except TokenMissing as exc:
        problem, no_token = str(exc), True
    except MessageError as exc:
        problem = str(exc)
    except MemoryError:
        message = None  # what was read is let go before anything else is tried
        problem = "reading it needs more memory than reading one mail may take"
    except Exception as exc:  # noqa: BLE001 - one mail must never stop the pass
        logger.exception("uid=%s could not be parsed", uid)
        problem = f"internal error while parsing: {type(exc).__name__}"
    mark = fingerprint(message, raw)
    reply = ""
    if message is not None:
        if no_token or (alert is not None and _maybe_a_reply(alert)):
            reply = _reply_text(message)
        message = replace(message, text="", html="")
        alert = replace(alert, message=message) if alert is not None else None
    return Reading(message, alert, problem, no_token, mark, reply)


def _maybe_a_reply(alert: Alert) -> bool:
    """Return whether the alert's token may be someone else's (poller.ates.rules decides): a
    mail a reply note could be made of."""
    from poller.mail.quoting import reply_prefix

    message = alert.message
    return bool(alert.quoted or message.references or reply_prefix(message.subject)
                or message.content_type in FORWARDED_TYPES)


def _reply_text(message: ParsedMessage) -> str:
    """Return what the writer of a mail wrote above what it quotes (for a reply note)."""
    from poller.ates.alert import DESCRIPTION_LIMIT
    from poller.mail.html import html_to_text
    from poller.mail.quoting import new_text

    return new_text(message.text or html_to_text(message.html))[:DESCRIPTION_LIMIT]
