"""A mail's outcome and mailbox step, and a ticket's status: the words the processed-mail log
and the ticket table are written in. What else the rules decide is poller.ates.decision's,
which only a pass with mail loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    CREATED = "created"
    APPENDED = "appended"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    NOTED = "noted"  # a reply to a ticket: a note on it, nothing else
    EXPECTED = "expected"  # the mail an [[expect]] entry waits for


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
