"""An in-memory mailbox with the interface a pass uses (poller.service.worker.MailboxPort), so
that the decision paths of the worker are tested in milliseconds, without a server.

It knows one watched folder of UID-numbered mails, the flags set on them and the folders they
were moved to. `search` understands the criteria a pass sends: the configured search (taken as
"not yet flagged"), optionally with `LARGER n`. IMAP behaviour proper (PEEK, MOVE fallbacks,
errors on the wire) is tested against the real Dovecot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from poller.errors import MailboxError

UIDVALIDITY = 7
_LARGER_RE = re.compile(r"\bLARGER (\d+)\b")


@dataclass
class FakeMailbox:
    """Mails by UID in the watched folder; flags and moves are recorded, never applied twice."""

    mails: dict[int, bytes] = field(default_factory=dict)
    uidvalidity: int = UIDVALIDITY
    flags: dict[int, set[str]] = field(default_factory=dict)
    moved: dict[int, str] = field(default_factory=dict)
    fetched: list[list[int]] = field(default_factory=list)
    folders: set[str] = field(default_factory=set)
    refuse_steps: bool = False  # flag and move answer NO, as a server with a full quota would
    next_uid: int = 1

    def add(self, *raws: bytes) -> list[int]:
        """Deliver mails to the folder; return their UIDs."""
        uids = list(range(self.next_uid, self.next_uid + len(raws)))
        self.next_uid += len(raws)
        self.mails.update(zip(uids, raws, strict=True))
        return uids

    def select(self, folder: str, readonly: bool = False) -> int:
        return self.uidvalidity

    def search(self, criteria: str) -> list[int]:
        larger = _LARGER_RE.search(criteria)
        return sorted(uid for uid, raw in self.mails.items()
                      if not self.flags.get(uid) and (larger is None
                                                      or len(raw) > int(larger.group(1))))

    def sizes(self, uids: list[int]) -> dict[int, int]:
        return {uid: len(self.mails[uid]) for uid in uids if uid in self.mails}

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        self.fetched.append(list(uids))
        return {uid: self.mails[uid] for uid in uids if uid in self.mails}

    def flag(self, uids: list[int], keyword: str) -> None:
        if self.refuse_steps:
            raise MailboxError("flagging mail: STORE failed: NO [OVERQUOTA]")
        for uid in uids:
            self.flags.setdefault(uid, set()).update({"\\Seen", keyword})

    def move(self, uids: list[int], folder: str) -> None:
        if self.refuse_steps:
            raise MailboxError(f"moving mail to {folder!r}: MOVE failed: NO [OVERQUOTA]")
        for uid in uids:
            if uid in self.mails:
                del self.mails[uid]
                self.moved[uid] = folder

    def ensure_folder(self, folder: str) -> str:
        if self.refuse_steps:
            raise MailboxError(f"creating folder {folder!r}: CREATE failed: NO [OVERQUOTA]")
        self.folders.add(folder)
        return folder

    def where(self, uid: int) -> str:
        """Return 'flagged', 'untouched' or the folder the mail was moved to."""
        if uid in self.moved:
            return self.moved[uid]
        return "flagged" if self.flags.get(uid) else "untouched"
