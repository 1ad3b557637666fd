"""What the rules are configured by: the [ates], [duplicates], [mailbox], [limits] and [tickets]
settings.

poller.config reads them from settings.ini; the defaults here are the documented ones.
"""

from __future__ import annotations

import re
import re._constants as sre
import re._parser
from dataclasses import dataclass, field
from functools import cached_property

# How a secret is shown wherever settings or texts are printed.
MASK = "********"
CRITERIA = ("alert_id", "external_ticket_id", "ticket_number")
# Documented in README.md and settings.ini (tests/test_config.py holds them to this). "OK" is
# not in it: it is far too common in problem subjects ("service check not OK").
DEFAULT_CLEAR_PATTERN = r"(?i)\b(clear(ed)?|resolved|recover(y|ed))\b"


_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


def compile_clear_pattern(pattern: str) -> re.Pattern[str]:
    """Return the compiled clear pattern; raise ValueError when it is not a regex, or when a
    repetition holds another repetition or alternatives (`(a+)+`, `(a|ab)+`), whose matching
    time can grow exponentially with the subject a sender writes. (The parse tree is read with
    the re module's own parser.)"""
    try:
        compiled = re.compile(pattern)
        tree = re._parser.parse(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regex: {exc}") from None
    if _nested_repeat(tree, inside=False):
        raise ValueError("a repetition of a repetition or of alternatives (like (a+)+ or "
                         "(a|ab)+) can take exponential time on a hostile subject; write it "
                         "without")
    return compiled


def _nested_repeat(node: object, inside: bool) -> bool:
    """Return whether node (a parse tree or a part of one) repeats a repetition or a choice."""
    if isinstance(node, re._parser.SubPattern):
        node = node.data
    if not isinstance(node, list | tuple):
        return False
    if len(node) == 2 and node[0] == sre.BRANCH and inside:
        return True
    if len(node) == 2 and node[0] in _REPEATS:
        _low, high, body = node[1]
        if high > 1:
            return inside or _nested_repeat(body, inside=True)
        return _nested_repeat(body, inside)
    return any(_nested_repeat(child, inside) for child in node)


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
    expectations: tuple = ()  # poller.ates.expected.Expectation: the [[expect]] entries

    @cached_property
    def clear_re(self) -> re.Pattern[str]:
        """Return the compiled clear pattern."""
        return compile_clear_pattern(self.duplicates.clear_pattern)
