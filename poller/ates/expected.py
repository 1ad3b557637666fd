"""Expected mail: [[expect]] entries of the rules file name mail that should come by a deadline
(a nightly backup report). Which mail is the expected one, when it counts as arrived, and what
a missed deadline makes, are decided here; the deadlines themselves (cron expressions) are
the service's to compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from poller.ates.mailrules import compile_pattern, matchable, sender_address
from poller.mail.parsed import ParsedMessage

MISSED_TITLE = "Expected mail did not arrive: {name}"


@dataclass(frozen=True)
class Expectation:
    """One [[expect]] entry: the patterns on the From address and the subject that name the
    mail, the deadline (5-field cron, in [rules] timezone), and the ticket a miss opens: for the
    organization (a name), with the device (a name) and priority when given."""

    name: str
    patterns: tuple[tuple[str, str], ...]
    deadline: str
    organization: str
    device: str = ""
    priority: str = ""

    def matches(self, message: ParsedMessage) -> bool:
        """Return whether every pattern the entry gives matches the mail."""
        texts = {"from": matchable(sender_address(message.sender)),
                 "subject": matchable(message.subject)}
        return all(compile_pattern(pattern).search(texts[field]) is not None
                   for field, pattern in self.patterns)


def expected_by(expectations: tuple[Expectation, ...], message: ParsedMessage
                ) -> Expectation | None:
    """Return the first entry the mail is the expected mail of, or None."""
    return next((entry for entry in expectations if entry.matches(message)), None)


def arrived_at(message: ParsedMessage, now: datetime) -> datetime:
    """Return when the mail counts as arrived: its Date, unless it has none or a Date in the
    future (then now). A mail written before a deadline and read after it counts for the
    deadline it was written for, so a pass that runs a little after the deadline opens no
    ticket for it."""
    date = message.date
    if date is None or date.tzinfo is None or date > now:
        return now
    return date


def missed_description(name: str, opened: datetime, deadline: datetime) -> str:
    """Return the text of a miss: what did not arrive, in which window."""
    return (f"No mail matching the [[expect]] entry {name!r} arrived between "
            f"{opened.isoformat(timespec='minutes')} and {deadline.isoformat(timespec='minutes')}.")
