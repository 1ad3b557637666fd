"""What the rules are configured by: the [ates], [duplicates], [mailbox], [limits] and [tickets]
settings.

poller.config reads them from settings.ini; the defaults here are the documented ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

# How a secret is shown wherever settings or texts are printed.
MASK = "********"
CRITERIA = ("alert_id", "external_ticket_id", "ticket_number")
DEFAULT_CLEAR_PATTERN = r"(?i)\b(clear(ed)?|resolved|recovery|ok)\b"


@dataclass(frozen=True)
class AtesSettings:
    passwords: tuple[str, ...] = field(repr=False)
    id: str | None = None
    local_organization: str = "Local organization"


@dataclass(frozen=True)
class DuplicateSettings:
    criteria: tuple[str, ...] = CRITERIA
    action: str = "note"
    clear_pattern: str = DEFAULT_CLEAR_PATTERN


@dataclass(frozen=True)
class MailboxSettings:
    on_success: str = "flag"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    on_no_token: str = "leave"
    no_token_folder: str = "No token"
    keyword: str = "$AtesProcessed"


@dataclass(frozen=True)
class LimitSettings:
    """Bounds per mail. The rules read the first two; the service bounds reading a mail by
    max_read_seconds of CPU and the mail held at once by max_fetch_bytes."""

    max_message_bytes: int = 30 * 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_read_seconds: int = 10
    max_fetch_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class TicketSettings:
    """What the receiving mailbox gives each ticket it creates (ATES takes the fields a token
    does not carry from the mailbox's configuration); empty: none."""

    queue: str = "Monitoring Alert"
    priority: str = "Medium"
    source: str = "Monitoring Alert"
    issue_type: str = ""


@dataclass(frozen=True)
class Policy:
    """The settings the rules read, in one value."""

    ates: AtesSettings
    duplicates: DuplicateSettings = DuplicateSettings()
    mailbox: MailboxSettings = MailboxSettings()
    limits: LimitSettings = LimitSettings()
    tickets: TicketSettings = TicketSettings()

    @cached_property
    def clear_re(self) -> re.Pattern[str]:
        """Return the compiled clear pattern."""
        return re.compile(self.duplicates.clear_pattern)
