"""Moving quarantined mail back to the watched folder, to be processed again once the cause
(a missing organization, an old ATES password) is fixed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from poller.imap.mailbox import Mailbox
from poller.mail.printable import printable

logger = logging.getLogger("poller")


@dataclass
class Requeued:
    """Message-IDs moved back, and those asked for that are not in the quarantine."""

    moved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def requeue(mailbox: Mailbox, quarantine: str, inbox: str, keyword: str,
            message_ids: list[str] | None) -> Requeued:
    """Move the quarantined mails with these Message-IDs (all when None) from the QUARANTINE
    folder to INBOX (the watched folder); return what was moved and what was not found.

    They lose \\Seen and the processed KEYWORD, so the next pass takes them as new mail; the
    store decides them afresh (a quarantined mail never counts as delivered before).
    """
    wanted = None if message_ids is None else {_bare(m): m for m in message_ids}
    out = Requeued()
    if not mailbox.exists(quarantine):
        out.missing = list(message_ids or [])
        return out
    mailbox.select(quarantine)
    ids = mailbox.message_ids(mailbox.search("ALL"))
    chosen = [uid for uid, mid in sorted(ids.items()) if wanted is None or _bare(mid) in wanted]
    if chosen:
        mailbox.unflag(chosen, keyword)
        mailbox.move(chosen, inbox)
    out.moved = [ids[uid] or f"(no Message-ID, uid {uid})" for uid in chosen]
    for mid in out.moved:
        logger.info("requeued %s from %r to %r", printable(mid), quarantine, inbox)
    if wanted is not None:
        found = {_bare(ids[uid]) for uid in chosen}
        out.missing = [original for bare, original in wanted.items() if bare not in found]
    return out


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()
