"""What a pass needs of the settings, read once from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from poller.ates.policy import Policy
from poller.config import Settings

if TYPE_CHECKING:
    from poller.ates.mailrules import RuleSet


@dataclass(frozen=True)
class PassConfig:
    """The settings a pass reads: the mailbox's name and watched folder, the SEARCH that finds
    new mail, mails per FETCH, the rules' policy (with [mailbox] and [limits]), the folders mail
    may be moved to, the webhook events to put in the outbox, where attachments go (None:
    in the database), and the rules for mail without a token (None: no rules file)."""

    name: str
    folder: str
    search: str
    fetch_chunk: int
    policy: Policy
    target_folders: tuple[str, ...]
    subscribed: frozenset[str]
    attachments_dir: Path | None
    rules: RuleSet | None = None

    @classmethod
    def of(cls, settings: Settings) -> PassConfig:
        """Return the pass configuration of SETTINGS."""
        imap, directory = settings.imap, settings.database.attachments_dir
        return cls(name=imap.name, folder=imap.folder, search=imap.search,
                   fetch_chunk=imap.fetch_chunk, policy=settings.policy(),
                   target_folders=tuple(settings.target_folders()),
                   subscribed=settings.webhook.subscribed(),
                   attachments_dir=Path(directory) if directory else None,
                   rules=settings.rule_set)
