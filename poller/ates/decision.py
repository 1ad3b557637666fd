"""What the rules decide for one mail: the outcome, the ticket changes, the mailbox step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from poller.ates.outcomes import Outcome, Step

if TYPE_CHECKING:
    from poller.mail.parsed import Attachment


# The longest ticket title and description ATES makes of an alert.
TITLE_LIMIT = 250
DESCRIPTION_LIMIT = 8000


@dataclass(frozen=True)
class NewContact:
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True)
class TicketFields:
    """The fields a new ticket gets from the mailbox that received the alert ([tickets]) and
    the token's SubIssue; None where there is none."""

    queue: str | None = None
    priority: str | None = None
    source: str | None = None
    issue_type: str | None = None
    sub_issue: str | None = None


@dataclass(frozen=True)
class Reply:
    """The note a reply to a ticket makes: who wrote it, its subject, and what they wrote
    above what they quote."""

    sender: str
    subject: str
    text: str


@dataclass(frozen=True)
class Decision:
    """What to do with one mail. For the TICKET_OUTCOMES the ticket fields are set: the
    organization and so on, the ticket's UDF values (source, kind, value), the system notes
    for the ticket, the attachments to store and the notes on those over the budget; a new
    ticket also gets its fields (queue, priority and so on). A reply (NOTED) names the ticket
    and carries its note; expected mail (EXPECTED) names its [[expect]] entry, and the ticket
    its miss opened, which it completes."""

    outcome: Outcome
    step: Step
    reason: str = ""
    organization_id: int | None = None
    contact_id: int | None = None
    new_contact: NewContact | None = None
    device_id: int | None = None
    ticket_id: int | None = None
    ticket_udfs: tuple[tuple[str, str, str], ...] = ()
    notes: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    refused_attachments: tuple[str, ...] = ()
    fields: TicketFields = TicketFields()
    # CREATED: the key ("label=value") no other open ticket of the organization may have, when
    # the duplicates policy appends to an open ticket with this key; None when none applies
    open_key: str | None = None
    reply: Reply | None = None
    expected: str = ""  # EXPECTED: the [[expect]] entry's name...
    arrived: datetime | None = None  # ...and when the mail counts as arrived
