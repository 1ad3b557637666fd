"""Raw mail → Reading: the parsed message and its alert, or why there is none.

Reading is most of the work per mail and needs nothing from the store, so the service may run
it in a helper process; a Reading is a plain value that crosses processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from poller.ates.alert import DESCRIPTION_LIMIT, Alert, read_alert
from poller.ates.mailrules import RuleSet, by_rules
from poller.errors import MessageError, TokenMissing
from poller.mail.fingerprint import fingerprint
from poller.mail.html import html_to_text
from poller.mail.message import FORWARDED_TYPES, ParsedMessage, parse_message
from poller.mail.quoting import new_text, reply_prefix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """One mail read: its message and alert, or the problem that left it without one.

    no_token is True when the mail is a mail but carries no token (its problem says so).
    fingerprint names the mail across deliveries; None when nothing tells a second delivery
    from a new mail (poller.mail.fingerprint). The message's body texts are left out once read
    (the alert's description holds what a ticket takes of them), so that a reading handed to
    the worker is no larger than the mail's attachments.

    reply_text is what the writer of a mail that may be a reply wrote, above what it quotes
    (a ticket's reply note takes it); '' for an alert that is its sender's own.
    """

    message: ParsedMessage | None
    alert: Alert | None
    problem: str
    no_token: bool
    fingerprint: str | None
    reply_text: str = ""


def read(uid: int, raw: bytes, now: datetime, rules: RuleSet | None = None) -> Reading:
    """Parse one mail and read its token, or, when it has none, try the rules on it; never
    raises (uid names the mail in a log line)."""
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
            reply = new_text(message.text or html_to_text(message.html))[:DESCRIPTION_LIMIT]
        message = replace(message, text="", html="")
        alert = replace(alert, message=message) if alert is not None else None
    return Reading(message, alert, problem, no_token, mark, reply)


def _maybe_a_reply(alert: Alert) -> bool:
    """Return whether the alert's token may be someone else's (poller.ates.rules decides): a
    mail a reply note could be made of."""
    message = alert.message
    return bool(alert.quoted or message.references or reply_prefix(message.subject)
                or message.content_type in FORWARDED_TYPES)
