"""What the rules decide for one mail: the outcome, the ticket changes, the mailbox step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from poller.mail.parsed import Attachment


class Outcome(StrEnum):
    CREATED = "created"
    APPENDED = "appended"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    NOTED = "noted"  # a reply to a ticket: a note on it, nothing else
    EXPECTED = "expected"  # the mail an [[expect]] entry waits for


# The longest ticket title and description ATES makes of an alert.
TITLE_LIMIT = 250
DESCRIPTION_LIMIT = 8000

# Ticket statuses: a ticket is New until a clear alert (or a technician) completes it.
STATUS_NEW = "New"
STATUS_COMPLETE = "Complete"

# The outcomes that change a ticket.
TICKET_OUTCOMES = (Outcome.CREATED, Outcome.APPENDED, Outcome.COMPLETED)


class Purpose(StrEnum):
    """What a mailbox step is for. A step still to be done is planned again from its purpose
    with the settings of the day (poller.ates.rules.plan), so a changed folder name applies."""

    DONE = "done"  # the rules are done with the mail: flag it, or move it to processed_folder
    QUARANTINE = "quarantine"  # move it to quarantine_folder
    NO_TOKEN = "no_token"  # leave it, or move it to no_token_folder


class StepKind(StrEnum):
    FLAG = "flag"  # set [mailbox] keyword
    MOVE = "move"  # move to the step's folder
    NONE = "none"  # leave the mail as it is


@dataclass(frozen=True)
class Step:
    """What happens to the mail in the mailbox once its decision is on disk: flag it, move it
    to folder, or nothing. Written to the processed-mail log as 'flag', 'move:<folder>' or
    'none', beside its purpose."""

    kind: StepKind
    folder: str = ""
    purpose: Purpose = field(default=Purpose.DONE, compare=False)

    def __str__(self) -> str:
        return f"move:{self.folder}" if self.kind is StepKind.MOVE else self.kind.value

    @classmethod
    def parse(cls, text: str) -> Step:
        """Return the step written as text in the processed-mail log."""
        kind, _, folder = text.partition(":")
        return cls(StepKind(kind), folder)


FLAG = Step(StepKind.FLAG)
NOTHING = Step(StepKind.NONE, purpose=Purpose.NO_TOKEN)


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
